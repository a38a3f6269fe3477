//! The RunRecord: one versioned JSON document per measured commit (what was measured, where,
//! and every metric with its unit and kind), and its atomic storage as a file.
//!
//! Reading a record never guesses: a file that is not a record, or whose `schema_version` is
//! newer than this harness knows, is an error naming the file, and the file is left untouched.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the services are provided.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[cfg_attr(feature = "harness", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ServicesMode {
    Auto,
    Docker,
    Native,
    External,
}

impl fmt::Display for ServicesMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Docker => "docker",
            Self::Native => "native",
            Self::External => "external",
        })
    }
}

/// What was started, for the record and the report.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct ServicesDescription {
    /// The mode that actually serves (never `auto`).
    pub mode: ServicesMode,
    /// Why this mode was chosen, e.g. "auto: no Docker engine answers at ...; native servers found on PATH".
    pub reason: String,
    /// `SHOW server_version`, e.g. "15.18 (Debian 15.18-0+deb12u1)".
    pub postgres_version: String,
    /// `redis_version` from `INFO server`, e.g. "7.0.15".
    pub redis_version: String,
    /// Image references (with digest/id when known) in docker mode.
    pub postgres_image: Option<String>,
    pub redis_image: Option<String>,
}

/// The version of the record format this harness writes and reads. Bump it before changing
/// the shape of [`RunRecord`].
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one run measured at one commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunRecord {
    pub schema_version: u32,
    /// Full sha of the measured commit.
    pub commit: String,
    /// True when the work tree had uncommitted changes: never stored as a baseline.
    pub dirty: bool,
    pub branch: Option<String>,
    pub created_at: DateTime<Utc>,
    pub profile: Profile,
    pub environment: Environment,
    /// Wall time of each phase of the run, in order.
    pub phases: Vec<Phase>,
    pub metrics: Vec<Metric>,
    /// What the run could not measure and why, in words (e.g. server resource use against
    /// external servers). Absent in older records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Regressions and broken budgets a maintainer accepted for this run (`--accept`), with
    /// who and why. Absent in older records and in runs that accepted nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance: Option<Acceptance>,
    /// What the report shows of *where* a count moved, beside the numbers: the statements'
    /// texts and the plans' `EXPLAIN`. Absent in older records, which then show no text.
    #[serde(default, skip_serializing_if = "Details::is_empty")]
    pub details: Details,
    /// The shard of a sharded run (`perf --shard k/n`) this record is one part of: never a
    /// baseline alone, only merged with the other parts (`perf merge`). Absent in whole runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// The wall-time benchmarks this run timed side by side with its base (`--paired`, or an
    /// unpaired run's far moves): what the paired test judged, so that a merged record of
    /// shards, or `perf --from-record`, judges them again. Absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<PairedRounds>,
}

/// The wall-time benchmarks a run timed side by side with its base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PairedRounds {
    /// Full sha of the base they were timed against.
    pub base: String,
    /// Each benchmark's per-round medians, by metric name (`wall_time/...`).
    pub samples: BTreeMap<String, RoundSamples>,
}

/// One wall-time benchmark measured side by side (`--paired`): round `i` gave `base[i]` and
/// `head[i]`, each the median time per iteration of one short criterion run, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RoundSamples {
    pub base: Vec<f64>,
    pub head: Vec<f64>,
}

/// Which part of a sharded run a record holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShardInfo {
    /// The shard, 1-based: `index` of `count`.
    pub index: u32,
    pub count: u32,
    /// The benchmarks, scenarios, plans and load mixes this shard measured, as `--list` names
    /// them; a metric belongs to the unit it is, or is below.
    pub units: Vec<String>,
    /// A digest of the whole partition (every unit and its shard): the same in every shard of
    /// one run.
    pub partition: String,
    /// The `--filter` the shards split (absent when they split the whole run): the merged
    /// record of a filtered run is never a baseline either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// The texts behind a record's metrics, for the report's "where" of a moved count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Details {
    /// The normalized text of each statement an `io/<scenario>/sql/<label>` metric counts (every
    /// constant and parameter as `?`), by label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub statements: BTreeMap<String, String>,
    /// The `EXPLAIN` of each `plans/<query>` plan in Postgres's text form (costs and row
    /// estimates included: shown, never compared), by query.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plans: BTreeMap<String, String>,
    /// The functions of each `instructions/…` benchmark, from its Callgrind output, largest
    /// inclusive count first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub functions: BTreeMap<String, Vec<FunctionCost>>,
    /// The call edges of each `instructions/…` benchmark, from its Callgrind output: only the
    /// edges of at least 0.1% of the benchmark's instructions (`MIN_CALL_SHARE`), largest
    /// first. They draw `report.html`'s differential flame graph. Absent in older records,
    /// which then show no flame graph.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub calls: BTreeMap<String, Vec<CallEdge>>,
}

impl Details {
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
            && self.plans.is_empty()
            && self.functions.is_empty()
            && self.calls.is_empty()
    }
}

/// The smallest share of a benchmark's instructions a call edge must carry to be kept in the
/// record: 0.1%. A benchmark's profile has thousands of edges, most of them tiny (startup,
/// formatting, allocator paths); the flame graph draws nothing narrower than 0.25% of its
/// width anyway (about 3 of its 1200 pixels), so thinner edges would only make the record
/// larger. Keeping 0.1% rather than 0.25% leaves head a margin below what is drawn, so that a
/// path that only just crosses the drawn width still has its base side's edges; a base edge
/// under the threshold reads as 0, an error of at most 0.1% of the benchmark.
pub const MIN_CALL_SHARE: f64 = 0.001;

/// One caller→callee edge of a benchmark's Callgrind profile, summed over every call site:
/// what the callee cost (inclusive) when `caller` called it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CallEdge {
    /// Demangled, as Callgrind names it.
    pub caller: String,
    pub callee: String,
    /// The callee's instructions and those of everything it called, within these calls.
    pub inclusive: u64,
}

/// One function's instructions in one benchmark run (Callgrind's `Ir`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FunctionCost {
    /// Demangled, as Callgrind names it.
    pub name: String,
    /// Its own instructions.
    pub exclusive: u64,
    /// Its own and those of everything it called.
    pub inclusive: u64,
}

/// An intentional regression, accepted: the gate then says success, and the record and the
/// report say who accepted what and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Acceptance {
    /// Who accepted: `--accepted-by` (in GitHub Actions, the labeller of `perf-accept`), else
    /// git's `user.name`, else `unknown`.
    pub by: String,
    pub reason: String,
    /// The regressed metrics and broken budgets that were accepted.
    pub accepted: Vec<String>,
}

/// How long the wall-time suite measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Quick,
    Full,
}

/// Whether the metric (or unit) `name` is `ancestor` or below it (`ancestor/...`): how an
/// exact `--filter` alternative selects, and which metrics a shard's unit owns.
pub fn is_at_or_below(name: &str, ancestor: &str) -> bool {
    name.strip_prefix(ancestor)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Profile {
    /// The profile `--quick` (or its absence) asks for.
    pub fn of(quick: bool) -> Self {
        if quick { Self::Quick } else { Self::Full }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Quick => "quick",
            Self::Full => "full",
        })
    }
}

/// Where and with what a record was measured: records are compared only when this matches on
/// what matters (see `compare::fingerprint_mismatches`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Environment {
    pub machine_class: String,
    pub cpu_model: String,
    pub cores: usize,
    pub os: String,
    pub rustc: String,
    pub valgrind: Option<String>,
    pub gungraun_runner: Option<String>,
    pub services: ServicesDescription,
    /// Hash of the configuration that changes the measured data (seed sizes).
    pub config_hash: String,
}

/// One phase of a run and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
}

/// Which suite produced a metric.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    WallTime,
    Instructions,
    IoCounts,
    Plans,
    /// Heap use of the scenarios (`mem/...`), from the `suite` binary's counting allocator.
    Memory,
    /// Open-loop load runs (`load/...`): latency, throughput, server resource use.
    Load,
}

impl Suite {
    /// Every suite, in the order a run measures them (load last: it dirties the caches and
    /// the tables the others read). The one list the suites' metric prefixes, `--filter`'s
    /// suite prefixes and the record's suite names come from.
    pub const ALL: [Suite; 6] = [
        Suite::IoCounts,
        Suite::Memory,
        Suite::Plans,
        Suite::WallTime,
        Suite::Instructions,
        Suite::Load,
    ];

    /// What the names of this suite's metrics start with (`--filter` selects a suite by it).
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::WallTime => "wall_time/",
            Self::Instructions => "instructions/",
            Self::IoCounts => "io/",
            Self::Plans => "plans/",
            Self::Memory => "mem/",
            Self::Load => "load/",
        }
    }

    /// The suite a metric of that name belongs to.
    pub fn of_metric(name: &str) -> Option<Suite> {
        Self::ALL
            .into_iter()
            .find(|suite| name.starts_with(suite.prefix()))
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WallTime => "wall_time",
            Self::Instructions => "instructions",
            Self::IoCounts => "io_counts",
            Self::Plans => "plans",
            Self::Memory => "memory",
            Self::Load => "load",
        })
    }
}

/// How a metric may be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// The same commit gives the same value (instruction counts, I/O counts).
    Deterministic,
    /// A sample of a noisy quantity (wall time): judged only when measured side by side.
    Statistical,
    /// A label that changes or not (plan shapes).
    Categorical,
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Deterministic => "deterministic",
            Self::Statistical => "statistical",
            Self::Categorical => "categorical",
        })
    }
}

/// The unit of a metric's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Nanoseconds,
    Instructions,
    Statements,
    Rows,
    Commands,
    Count,
    /// Nodes of a query plan (the value of a plan metric, whose label is its shape).
    Nodes,
    /// Shared buffer accesses of Postgres (8 kB pages found in or read into shared buffers).
    Buffers,
    Bytes,
    Microseconds,
    Milliseconds,
    /// Events per second (throughput: the one unit where higher is better).
    PerSecond,
}

impl Unit {
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Nanoseconds => "ns",
            Self::Instructions => "instr",
            Self::Statements => "stmts",
            Self::Rows => "rows",
            Self::Commands => "cmds",
            Self::Count => "",
            Self::Nodes => "nodes",
            Self::Buffers => "bufs",
            Self::Bytes => "B",
            Self::Microseconds => "µs",
            Self::Milliseconds => "ms",
            Self::PerSecond => "/s",
        }
    }
}

/// One measured quantity. Lower is better for every metric of this harness except throughput
/// (`Unit::PerSecond`), which is statistical and never gated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metric {
    /// Unique within a record, e.g. `wall_time/cache/l1_hit`, `io/due_cards/sql_statements`.
    pub name: String,
    pub suite: Suite,
    pub unit: Unit,
    pub kind: MetricKind,
    /// The summary value: the count, or the median for a statistical metric.
    pub value: f64,
    /// 95% confidence interval of `value` (statistical metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<[f64; 2]>,
    /// Per-sample values (statistical metrics), for paired tests and distributions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
    /// The label of a categorical metric: a query plan's canonical shape (`value` is then its
    /// node count). Absent from other metrics and from records written before plans existed,
    /// which is why it did not need a new `schema_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<String>,
}

/// Which way a metric gets better: what a change beyond its threshold is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Time, instructions, statements, commands, misses, errors, bytes: growth is a regression.
    LowerIsBetter,
    /// Cache hits, hit ratios, coalesced lookups, throughput: a fall is a regression.
    HigherIsBetter,
    /// A count that describes what a scenario did rather than how well (keys invalidated, rows
    /// due): a change either way is a regression, since it means the scenario did something
    /// else.
    Unchanging,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LowerIsBetter => "lower is better",
            Self::HigherIsBetter => "higher is better",
            Self::Unchanging => "must not change",
        })
    }
}

/// The cache counters (`io/<scenario>/observed/<namespace>.<counter>`) where more is better.
const HIGHER_IS_BETTER_COUNTERS: [&str; 6] = [
    "l1_hits",
    "l1_negative_hits",
    "l2_hits",
    "l2_negative_hits",
    "coalesced",
    "hit_permille",
];

/// The cache counters where less is better; any other observation must not change.
const LOWER_IS_BETTER_COUNTERS: [&str; 6] = [
    "misses",
    "loads",
    "negative_fills",
    "errors",
    "redis_commands",
    "redis_round_trips",
];

impl Metric {
    /// Which way this metric gets better, from its unit and name.
    pub fn direction(&self) -> Direction {
        direction_of(&self.name, self.unit)
    }
}

/// Which way a metric named `name` in `unit` gets better: throughput (`/s`) and the cache's
/// hits and hit ratios are better higher; a scenario's other observations (what it did, not
/// how well) must not change; everything else (time, instructions, I/O, misses, errors,
/// memory) is better lower.
pub fn direction_of(name: &str, unit: Unit) -> Direction {
    if unit == Unit::PerSecond {
        return Direction::HigherIsBetter;
    }
    let Some(observed) = name
        .strip_prefix("io/")
        .and_then(|rest| rest.split_once("/observed/"))
        .map(|(_, key)| key)
    else {
        return Direction::LowerIsBetter;
    };
    let counter = observed.rsplit('.').next().unwrap_or(observed);
    if HIGHER_IS_BETTER_COUNTERS.contains(&counter) {
        Direction::HigherIsBetter
    } else if LOWER_IS_BETTER_COUNTERS.contains(&counter) {
        Direction::LowerIsBetter
    } else {
        Direction::Unchanging
    }
}

/// Whether a record that ran scenario `io/<scenario>/…` but has no metric `name` measured 0 for
/// it: the per-command, per-statement and observed counts of a scenario leave zeros out, so
/// for them absence in a record that ran the scenario means zero, not "not measured".
pub fn absent_means_zero(record: &RunRecord, name: &str) -> bool {
    let Some(rest) = name.strip_prefix("io/") else {
        return false;
    };
    let Some((scenario, counter)) = rest.split_once('/') else {
        return false;
    };
    let omits_zeros = ["redis/", "sql/", "observed/"]
        .iter()
        .any(|family| counter.starts_with(family));
    omits_zeros
        && record
            .metric(&format!("io/{scenario}/sql_statements"))
            .is_some()
}

/// Errors reading or writing a record file.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read record {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "record {path} is not a valid run record ({detail}); it was left untouched.\n  fix: move it away or delete it, then run again (the revision will be measured anew)"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "record {path} has schema_version {found}, newer than the {supported} this harness reads; it was left untouched.\n  fix: update this checkout (the record was written by a newer harness), or remove the file"
    )]
    NewerVersion {
        path: PathBuf,
        found: u64,
        supported: u32,
    },
    #[error("cannot write record {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RunRecord {
    /// The file name of this record in a runs directory: `<sha>[-dirty].json`.
    pub fn file_name(&self) -> String {
        record_file_name(&self.commit, self.dirty)
    }

    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

/// `<sha>.json` or `<sha>-dirty.json`.
pub fn record_file_name(commit: &str, dirty: bool) -> String {
    if dirty {
        format!("{commit}-dirty.json")
    } else {
        format!("{commit}.json")
    }
}

/// Parses a record, checking its version before its shape.
pub fn parse_record(text: &str, path: &Path) -> Result<RunRecord, RecordError> {
    let corrupt = |detail: String| RecordError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    let version = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| corrupt("no numeric schema_version".to_owned()))?;
    if version > u64::from(SCHEMA_VERSION) {
        return Err(RecordError::NewerVersion {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
}

/// Reads the record at `path`; `Ok(None)` when there is no such file.
pub fn read_record(path: &Path) -> Result<Option<RunRecord>, RecordError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_record(&text, path).map(Some),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RecordError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `contents` to `path` atomically: a temp file in the same directory, then a rename,
/// so a reader sees the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), RecordError> {
    let write_error = |source: std::io::Error| RecordError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write_error)?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(write_error)?;
    file.write_all(contents).map_err(write_error)?;
    file.as_file().sync_all().map_err(write_error)?;
    file.persist(path).map_err(|e| write_error(e.error))?;
    Ok(())
}

/// Stores a record as `<dir>/<sha>[-dirty].json`, atomically; returns the path.
pub fn store_record(dir: &Path, record: &RunRecord) -> Result<PathBuf, RecordError> {
    let path = dir.join(record.file_name());
    let mut json = serde_json::to_vec_pretty(record).expect("a record serializes");
    json.push(b'\n');
    write_atomically(&path, &json)?;
    Ok(path)
}

/// Where the record's JSON Schema lives, relative to the workspace root.
pub const SCHEMA_FILE: &str = "baselines/record.schema.json";

/// The JSON Schema (draft 2020-12) of [`RunRecord`], derived from these types: the file
/// [`SCHEMA_FILE`] is this, pretty-printed, and a test keeps the two equal.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(RunRecord).to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "description".to_owned(),
            serde_json::Value::String(format!(
                "A perf-harness run record, schema_version {SCHEMA_VERSION}: everything one run measured at one commit. See baselines/README.md."
            )),
        );
    }
    schema
}

/// A record for tests, on a fixed environment (a 2-core Linux machine of class
/// `linux-x86_64-2c-0000abcd`, rustc 1.95.0, valgrind, native Postgres 15.18 and Redis 7.0.15),
/// made on 2026-01-01 on `main` with the quick profile, clean, without phases or metrics unless
/// told: the one fixture of xtask's unit tests. Fields it has no setter for are public on the
/// [`RunRecord`] it builds.
#[cfg(test)]
pub(crate) struct TestRecord(RunRecord);

#[cfg(test)]
impl TestRecord {
    pub(crate) fn new(commit: &str) -> Self {
        Self(RunRecord {
            schema_version: SCHEMA_VERSION,
            commit: commit.to_owned(),
            dirty: false,
            branch: Some("main".to_owned()),
            created_at: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .expect("a date")
                .with_timezone(&Utc),
            profile: Profile::Quick,
            environment: Environment {
                machine_class: "linux-x86_64-2c-0000abcd".to_owned(),
                cpu_model: "cpu".to_owned(),
                cores: 2,
                os: "linux x86_64".to_owned(),
                rustc: "rustc 1.95.0".to_owned(),
                valgrind: Some("valgrind-3.19.0".to_owned()),
                gungraun_runner: Some("gungraun-runner 0.20.0".to_owned()),
                services: ServicesDescription {
                    mode: ServicesMode::Native,
                    reason: "--services native".to_owned(),
                    postgres_version: "15.18".to_owned(),
                    redis_version: "7.0.15".to_owned(),
                    postgres_image: None,
                    redis_image: None,
                },
                config_hash: "0123456789abcdef".to_owned(),
            },
            phases: Vec::new(),
            metrics: Vec::new(),
            notes: Vec::new(),
            acceptance: None,
            details: Details::default(),
            shard: None,
            paired: None,
        })
    }

    // Only tests of harness modules (the store, the base lookup) set these two.
    #[cfg(feature = "harness")]
    pub(crate) fn machine_class(mut self, machine_class: &str) -> Self {
        machine_class.clone_into(&mut self.0.environment.machine_class);
        self
    }

    /// `created_at` in RFC 3339, e.g. `2026-01-02T00:00:00Z`.
    #[cfg(feature = "harness")]
    pub(crate) fn created_at(mut self, created_at: &str) -> Self {
        self.0.created_at = DateTime::parse_from_rfc3339(created_at)
            .expect("an RFC 3339 date")
            .with_timezone(&Utc);
        self
    }

    /// The servers' versions, as `SHOW server_version` and `INFO server` give them.
    pub(crate) fn server_versions(mut self, postgres: &str, redis: &str) -> Self {
        postgres.clone_into(&mut self.0.environment.services.postgres_version);
        redis.clone_into(&mut self.0.environment.services.redis_version);
        self
    }

    pub(crate) fn metrics(mut self, metrics: Vec<Metric>) -> Self {
        self.0.metrics = metrics;
        self
    }

    pub(crate) fn build(self) -> RunRecord {
        self.0
    }
}

/// [`TestRecord`] of `commit` holding `metrics`: for tests that care only about the metrics.
#[cfg(test)]
pub(crate) fn test_record(commit: &str, metrics: Vec<Metric>) -> RunRecord {
    TestRecord::new(commit).metrics(metrics).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suite_has_its_own_prefix_and_a_metric_name_finds_its_suite() {
        let prefixes: std::collections::BTreeSet<&str> =
            Suite::ALL.iter().map(|suite| suite.prefix()).collect();
        assert_eq!(prefixes.len(), Suite::ALL.len(), "{prefixes:?}");
        for suite in Suite::ALL {
            let name = format!("{}some/metric", suite.prefix());
            assert_eq!(Suite::of_metric(&name), Some(suite), "{name}");
        }
        assert_eq!(
            Suite::of_metric("io/due_cards/sql_statements"),
            Some(Suite::IoCounts)
        );
        assert_eq!(Suite::of_metric("due_cards"), None);
        assert_eq!(Suite::of_metric("iox/due_cards"), None);
    }

    fn committed_schema_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(SCHEMA_FILE)
    }

    /// The committed schema is the one these types derive; `PERF_UPDATE_SCHEMA=1 cargo test -p
    /// xtask committed_schema` rewrites it after a change of the record's shape.
    #[test]
    fn committed_schema_is_current() {
        let mut generated = serde_json::to_string_pretty(&json_schema()).unwrap();
        generated.push('\n');
        let path = committed_schema_path();
        if std::env::var_os("PERF_UPDATE_SCHEMA").is_some() {
            write_atomically(&path, generated.as_bytes()).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is not the schema of RunRecord; run `PERF_UPDATE_SCHEMA=1 cargo test -p xtask committed_schema` and commit it",
            path.display()
        );
    }

    /// The details of [`sample_record`]: one of each kind.
    fn sample_details() -> Details {
        Details {
            statements: BTreeMap::from([(
                "select_words_0a1b2c3d".to_owned(),
                "SELECT id FROM words WHERE id = ?".to_owned(),
            )]),
            plans: BTreeMap::from([(
                "due_cards".to_owned(),
                "Limit  (cost=0.29..8.31 rows=1 width=8)".to_owned(),
            )]),
            functions: BTreeMap::from([(
                "instructions/query/decode/page".to_owned(),
                vec![FunctionCost {
                    name: "bench::decode".to_owned(),
                    exclusive: 900,
                    inclusive: 1000,
                }],
            )]),
            calls: BTreeMap::from([(
                "instructions/query/decode/page".to_owned(),
                vec![CallEdge {
                    caller: "bench::decode".to_owned(),
                    callee: "alloc".to_owned(),
                    inclusive: 100,
                }],
            )]),
        }
    }

    fn sample_record() -> RunRecord {
        RunRecord {
            schema_version: SCHEMA_VERSION,
            commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            dirty: false,
            branch: Some("main".to_owned()),
            created_at: DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            profile: Profile::Quick,
            environment: Environment {
                machine_class: "x86_64-2c".to_owned(),
                cpu_model: "cpu".to_owned(),
                cores: 2,
                os: "linux".to_owned(),
                rustc: "rustc 1.90.0".to_owned(),
                valgrind: Some("valgrind-3.24.0".to_owned()),
                gungraun_runner: None,
                services: ServicesDescription {
                    mode: ServicesMode::Native,
                    reason: "asked".to_owned(),
                    postgres_version: "15".to_owned(),
                    redis_version: "7".to_owned(),
                    postgres_image: None,
                    redis_image: None,
                },
                config_hash: "abc".to_owned(),
            },
            phases: vec![Phase {
                name: "seed".to_owned(),
                seconds: 1.5,
            }],
            metrics: vec![
                Metric {
                    name: "wall_time/cache/l1_hit".to_owned(),
                    suite: Suite::WallTime,
                    unit: Unit::Nanoseconds,
                    kind: MetricKind::Statistical,
                    value: 250.0,
                    interval: Some([240.0, 260.0]),
                    samples: vec![249.0, 251.0],
                    shape: None,
                },
                Metric {
                    name: "plans/due_cards".to_owned(),
                    suite: Suite::Plans,
                    unit: Unit::Nodes,
                    kind: MetricKind::Categorical,
                    value: 2.0,
                    interval: None,
                    samples: Vec::new(),
                    shape: Some("Limit > Index Scan".to_owned()),
                },
            ],
            notes: vec!["a note".to_owned()],
            acceptance: Some(Acceptance {
                by: "someone".to_owned(),
                reason: "intended".to_owned(),
                accepted: vec!["io/x".to_owned()],
            }),
            details: sample_details(),
            shard: Some(ShardInfo {
                index: 2,
                count: 3,
                units: vec![
                    "plans/due_cards".to_owned(),
                    "wall_time/cache/l1_hit".to_owned(),
                ],
                partition: "0123456789abcdef".to_owned(),
                filter: Some("plans/,wall_time/".to_owned()),
            }),
            paired: Some(PairedRounds {
                base: "fedcba9876543210fedcba9876543210fedcba98".to_owned(),
                samples: BTreeMap::from([(
                    "wall_time/cache/l1_hit".to_owned(),
                    RoundSamples {
                        base: vec![250.0, 251.0],
                        head: vec![249.0, 252.0],
                    },
                )]),
            }),
        }
    }

    #[test]
    fn records_validate_against_the_committed_schema_and_broken_ones_do_not() {
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(committed_schema_path()).unwrap())
                .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let record = serde_json::to_value(sample_record()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&record)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");

        let mut unknown_unit = record.clone();
        unknown_unit["metrics"][0]["unit"] = serde_json::json!("furlongs");
        assert!(!validator.is_valid(&unknown_unit));
        let mut no_commit = record.clone();
        no_commit.as_object_mut().unwrap().remove("commit");
        assert!(!validator.is_valid(&no_commit));
        let mut bad_interval = record;
        bad_interval["metrics"][0]["interval"] = serde_json::json!([1.0]);
        assert!(!validator.is_valid(&bad_interval));
    }

    #[test]
    fn garbage_is_corrupt_and_names_the_file() {
        let error = parse_record("{not json", Path::new("runs/abc.json")).unwrap_err();
        assert!(matches!(error, RecordError::Corrupt { .. }));
        assert!(error.to_string().contains("runs/abc.json"));
    }

    #[test]
    fn missing_version_is_corrupt() {
        let error = parse_record("{\"commit\": \"abc\"}", Path::new("x.json")).unwrap_err();
        assert!(error.to_string().contains("schema_version"), "{error}");
    }

    #[test]
    fn newer_version_is_refused_before_its_shape_is_read() {
        let text = format!("{{\"schema_version\": {}}}", SCHEMA_VERSION + 1);
        let error = parse_record(&text, Path::new("x.json")).unwrap_err();
        assert!(
            matches!(error, RecordError::NewerVersion { found, .. } if found == u64::from(SCHEMA_VERSION) + 1)
        );
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs").join("r.json");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temp file is left behind");
    }
}
