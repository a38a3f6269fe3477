//! Where a moved count moved: for each regressed or improved total of a comparison, the parts
//! it sums that moved with it, read from the two records, so that a report says *which*
//! statement or command, not only how many more:
//!
//! - `io/<scenario>/sql_statements` and `…/sql_rows`: the statements (`io/<scenario>/sql/<label>`)
//!   whose calls changed, largest change first, with their normalized text; a statement that
//!   appears or vanishes is a change from or to 0;
//! - `io/<scenario>/redis_commands` (and a namespace's `observed/….redis_round_trips`): the
//!   command types whose counts changed, and the scenario's round trips to Redis, in all and
//!   per cache lookup (a pipeline is one round trip, so a batch that stops pipelining shows
//!   here even where the commands stay the same);
//! - `plans/<query>`: head's `EXPLAIN` (base's when head has none);
//! - `instructions/…`: the functions (from both records' Callgrind profiles) whose own or
//!   inclusive instructions changed, largest change of their own first, each marked in or
//!   outside the files the change touched; a row whose moved functions are all outside it is
//!   labelled so (shared code's codegen, or the data it was given, moved), rather than presented
//!   as the change's cost.
//!
//! Pure: no I/O. Must never invent a part: every part is a metric of one of the two records,
//! and a record without texts (older ones) shows labels only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::compare::{Comparison, MetricComparison, Verdict};
use crate::record::RunRecord;

/// Where one row moved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// The parts of the row's total that changed, largest change first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartChange>,
    /// The plan as `EXPLAIN` prints it, for a plan row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<String>,
    /// For an instruction row: the functions whose counts changed most (at most
    /// [`TOP_FUNCTIONS`]), largest change of their own instructions first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<FunctionChange>,
    /// Every function whose own instructions moved is outside the files the change touched (and
    /// the change touched no build configuration): the move is shared code's codegen or its data, not the
    /// change's own cost.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outside_change: bool,
    /// For a Redis row: the scenario's round trips to Redis, base and head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_trips: Option<RoundTrips>,
}

/// A scenario's round trips to Redis and cache lookups, summed over its cache namespaces
/// (`io/<scenario>/observed/<namespace>.<counter>`), base and head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundTrips {
    pub base: u64,
    pub head: u64,
    /// Lookups: hits of either level (values and cached "missing"), coalesced waits and misses.
    pub base_lookups: u64,
    pub head_lookups: u64,
}

impl RoundTrips {
    /// Round trips per lookup, base and head; `None` for a side without lookups.
    pub fn per_lookup(&self) -> [Option<f64>; 2] {
        [
            (self.base, self.base_lookups),
            (self.head, self.head_lookups),
        ]
        .map(|(trips, lookups)| (lookups > 0).then(|| trips as f64 / lookups as f64))
    }

    /// `60 -> 110 round trips (1.20 -> 2.20 per lookup)`, per lookup only where both have
    /// lookups.
    pub fn summary(&self) -> String {
        let per = match self.per_lookup() {
            [Some(base), Some(head)] => format!(" ({base:.2} -> {head:.2} per lookup)"),
            _ => String::new(),
        };
        format!("{} -> {} round trips to Redis{per}", self.base, self.head)
    }
}

/// The cache counters that count one lookup each.
const LOOKUP_COUNTERS: [&str; 6] = [
    "l1_hits",
    "l1_negative_hits",
    "l2_hits",
    "l2_negative_hits",
    "coalesced",
    "misses",
];

/// How many functions an instruction row's location lists.
pub const TOP_FUNCTIONS: usize = 10;

/// One function's instructions in base and head (0 where a side does not have it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionChange {
    pub name: String,
    pub base_exclusive: u64,
    pub head_exclusive: u64,
    pub base_inclusive: u64,
    pub head_inclusive: u64,
    /// Whether the function is in a file the change touched; `None` when the changed files
    /// are not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_change: Option<bool>,
}

impl FunctionChange {
    pub fn exclusive_change(&self) -> i64 {
        self.head_exclusive as i64 - self.base_exclusive as i64
    }

    pub fn inclusive_change(&self) -> i64 {
        self.head_inclusive as i64 - self.base_inclusive as i64
    }
}

/// One part of a total, base and head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartChange {
    /// The part's metric, e.g. `io/due_cards/sql/select_words_0a1b2c3d`.
    pub name: String,
    pub base: f64,
    pub head: f64,
    /// The statement's normalized text, when the record has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl PartChange {
    /// The part's own name: the statement's label or the command.
    pub fn short_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }
}

/// Fills in [`MetricComparison::location`] for every regressed or improved row it can explain.
/// `changed_files` are the paths (from the workspace root) the change between base and head
/// touched; empty when not known.
pub fn locate(
    comparison: &mut Comparison,
    base: &RunRecord,
    head: &RunRecord,
    changed_files: &[String],
) {
    let change = Change::of(changed_files);
    for row in &mut comparison.rows {
        if !matches!(row.verdict, Verdict::Regression | Verdict::Improvement) {
            continue;
        }
        row.location = location_of(row, base, head, change.as_ref()).map(Box::new);
        if row.location.as_ref().is_some_and(|l| l.outside_change) {
            row.rule.push_str(
                "; every function whose own instructions moved is outside the files this \
                 change touched: shared code's codegen, or the data it was given, moved, not this \
                 change's own code",
            );
        }
    }
}

fn location_of(
    row: &MetricComparison,
    base: &RunRecord,
    head: &RunRecord,
    change: Option<&Change>,
) -> Option<Location> {
    if let Some(query) = row.name.strip_prefix("plans/") {
        let explain = head
            .details
            .plans
            .get(query)
            .or_else(|| base.details.plans.get(query))?;
        return Some(Location {
            explain: Some(explain.clone()),
            ..Location::default()
        });
    }
    if row.name.starts_with("instructions/") {
        return function_location(&row.name, base, head, change);
    }
    let (scenario, total) = row.name.strip_prefix("io/")?.split_once('/')?;
    let redis = is_redis_row(&row.name);
    let family = match total {
        "sql_statements" | "sql_rows" => "sql/",
        _ if redis => "redis/",
        _ => return None,
    };
    let parts = changed_parts(&format!("io/{scenario}/{family}"), base, head);
    let round_trips = redis.then(|| round_trips(scenario, base, head)).flatten();
    (!parts.is_empty() || round_trips.is_some()).then_some(Location {
        parts,
        round_trips,
        ..Location::default()
    })
}

/// Whether a row counts Redis commands or round trips (its parts are commands, not statements).
pub fn is_redis_row(name: &str) -> bool {
    name.starts_with("io/")
        && (name.ends_with("/redis_commands") || name.ends_with(".redis_round_trips"))
}

/// The scenario's round trips to Redis and lookups, summed over its namespaces; `None` when
/// neither record counted a round trip (records before the counter, or no Redis at all).
fn round_trips(scenario: &str, base: &RunRecord, head: &RunRecord) -> Option<RoundTrips> {
    let prefix = format!("io/{scenario}/observed/");
    let sum = |record: &RunRecord, counters: &[&str]| -> (u64, bool) {
        let mut total = 0.0;
        let mut any = false;
        for metric in &record.metrics {
            let Some(key) = metric.name.strip_prefix(&prefix) else {
                continue;
            };
            let counter = key.rsplit('.').next().unwrap_or(key);
            if key.contains('.') && counters.contains(&counter) {
                total += metric.value;
                any = true;
            }
        }
        (total as u64, any)
    };
    let (base_trips, base_any) = sum(base, &["redis_round_trips"]);
    let (head_trips, head_any) = sum(head, &["redis_round_trips"]);
    if !base_any && !head_any {
        return None;
    }
    Some(RoundTrips {
        base: base_trips,
        head: head_trips,
        base_lookups: sum(base, &LOOKUP_COUNTERS).0,
        head_lookups: sum(head, &LOOKUP_COUNTERS).0,
    })
}

/// The functions of an instruction benchmark whose counts changed, from both records'
/// Callgrind profiles.
fn function_location(
    name: &str,
    base: &RunRecord,
    head: &RunRecord,
    change: Option<&Change>,
) -> Option<Location> {
    let (before, after) = (
        base.details.functions.get(name)?,
        head.details.functions.get(name)?,
    );
    let mut functions: BTreeMap<&str, FunctionChange> = BTreeMap::new();
    for (side, costs) in [(0, before), (1, after)] {
        for cost in costs {
            let entry = functions
                .entry(cost.name.as_str())
                .or_insert_with(|| FunctionChange {
                    name: cost.name.clone(),
                    base_exclusive: 0,
                    head_exclusive: 0,
                    base_inclusive: 0,
                    head_inclusive: 0,
                    in_change: change.map(|c| c.contains(&cost.name)),
                });
            if side == 0 {
                (entry.base_exclusive, entry.base_inclusive) = (cost.exclusive, cost.inclusive);
            } else {
                (entry.head_exclusive, entry.head_inclusive) = (cost.exclusive, cost.inclusive);
            }
        }
    }
    let mut moved: Vec<FunctionChange> = functions
        .into_values()
        .filter(|f| f.exclusive_change() != 0 || f.inclusive_change() != 0)
        .collect();
    moved.sort_by(|a, b| {
        let key = |f: &FunctionChange| (f.exclusive_change().abs(), f.inclusive_change().abs());
        key(b).cmp(&key(a)).then_with(|| a.name.cmp(&b.name))
    });
    let own_moves = moved.iter().filter(|f| f.exclusive_change() != 0);
    let outside_change = change.is_some()
        && moved.iter().any(|f| f.exclusive_change() != 0)
        && own_moves.clone().all(|f| f.in_change == Some(false));
    moved.truncate(TOP_FUNCTIONS);
    (!moved.is_empty()).then_some(Location {
        functions: moved,
        outside_change,
        ..Location::default()
    })
}

/// What a change between base and head touched, as the module paths of its Rust sources.
struct Change {
    modules: Vec<String>,
}

impl Change {
    /// `None` when the files are not known, or when the change touched the build's
    /// configuration (manifests, the lockfile, cargo's config, the toolchain, a build script):
    /// then any function's code may have moved because of it.
    fn of(changed_files: &[String]) -> Option<Self> {
        if changed_files.is_empty() {
            return None;
        }
        let configures_build = |file: &str| {
            let name = file.rsplit('/').next().unwrap_or(file);
            matches!(name, "Cargo.toml" | "Cargo.lock" | "build.rs")
                || name.starts_with("rust-toolchain")
                || file.starts_with(".cargo/")
        };
        if changed_files.iter().any(|f| configures_build(f)) {
            return None;
        }
        Some(Self {
            modules: changed_files.iter().filter_map(|f| module_of(f)).collect(),
        })
    }

    /// Whether a function (its demangled name) is in one of the changed modules: the module's
    /// path occurs in the name as a whole path prefix (`bench_suite::query::cards::…`, or a
    /// type of that module in an `impl … for bench_suite::query::cards::Page`).
    fn contains(&self, function: &str) -> bool {
        self.modules.iter().any(|module| {
            function.match_indices(module.as_str()).any(|(at, _)| {
                let before = function[..at].chars().next_back();
                let after = &function[at + module.len()..];
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                    && (after.is_empty()
                        || after.starts_with("::")
                        || !after.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
            })
        })
    }
}

/// The Rust module path of a source file of the workspace: `bench-suite/src/query/cards.rs` is
/// `bench_suite::query::cards`, `…/src/lib.rs` the crate, `…/src/x/mod.rs` `crate::x`,
/// `…/src/bin/suite.rs` and `…/benches/render.rs` their own crates (`suite`, `render`).
fn module_of(file: &str) -> Option<String> {
    let path = file.strip_suffix(".rs")?;
    let parts: Vec<&str> = path.split('/').collect();
    let (package, rest) = parts.split_first()?;
    match rest {
        ["benches" | "examples", name] | ["src", "bin", name] => Some((*name).to_owned()),
        ["src", "lib" | "main"] => Some(package.replace('-', "_")),
        ["src", modules @ ..] if !modules.is_empty() => {
            let modules = match modules {
                [init @ .., "mod"] => init,
                all => all,
            };
            let mut path = vec![package.replace('-', "_")];
            path.extend(modules.iter().map(|m| (*m).to_owned()));
            Some(path.join("::"))
        }
        _ => None,
    }
}

/// The metrics named `<prefix><part>` whose values differ between the records (absent is 0:
/// these counts leave zeros out), largest change first, then by name.
fn changed_parts(prefix: &str, base: &RunRecord, head: &RunRecord) -> Vec<PartChange> {
    let value = |record: &RunRecord, name: &str| record.metric(name).map_or(0.0, |m| m.value);
    let mut names: Vec<&str> = base
        .metrics
        .iter()
        .chain(&head.metrics)
        .map(|m| m.name.as_str())
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut parts: Vec<PartChange> = names
        .into_iter()
        .map(|name| {
            let label = &name[prefix.len()..];
            let text = head
                .details
                .statements
                .get(label)
                .or_else(|| base.details.statements.get(label));
            PartChange {
                name: name.to_owned(),
                base: value(base, name),
                head: value(head, name),
                text: text.cloned(),
            }
        })
        .filter(|part| part.base != part.head)
        .collect();
    parts.sort_by(|a, b| {
        let change = |p: &PartChange| (p.head - p.base).abs();
        change(b)
            .total_cmp(&change(a))
            .then_with(|| a.name.cmp(&b.name))
    });
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Metric, MetricKind, Suite, TestRecord, Unit};

    fn count(name: &str, value: f64) -> Metric {
        Metric {
            name: name.to_owned(),
            suite: Suite::IoCounts,
            unit: Unit::Statements,
            kind: MetricKind::Deterministic,
            value,
            interval: None,
            samples: Vec::new(),
            shape: None,
        }
    }

    fn row(name: &str, verdict: Verdict) -> MetricComparison {
        MetricComparison {
            name: name.to_owned(),
            suite: Suite::of_metric(name).expect("a suite's metric"),
            unit: Unit::Statements,
            kind: MetricKind::Deterministic,
            direction: crate::record::Direction::LowerIsBetter,
            base: None,
            head: None,
            change_pct: None,
            base_interval: None,
            head_interval: None,
            verdict,
            rule: String::new(),
            base_shape: None,
            head_shape: None,
            paired: None,
            location: None,
        }
    }

    #[test]
    fn a_redis_row_gives_its_commands_and_round_trips_per_lookup() {
        let base = TestRecord::new("b")
            .metrics(vec![
                count("io/read/redis_commands", 100.0),
                count("io/read/redis/get", 50.0),
                count("io/read/redis/set", 50.0),
                count("io/read/observed/words.misses", 50.0),
                count("io/read/observed/words.redis_round_trips", 51.0),
                count("io/read/observed/due.l2_hits", 10.0),
                count("io/read/observed/due.redis_round_trips", 10.0),
                // Not a namespace's counter: neither a lookup nor a round trip.
                count("io/read/observed/due_now", 7.0),
            ])
            .build();
        // Same commands, no longer pipelined: a round trip per SET.
        let head = TestRecord::new("h")
            .metrics(vec![
                count("io/read/redis_commands", 100.0),
                count("io/read/redis/get", 50.0),
                count("io/read/redis/set", 50.0),
                count("io/read/observed/words.misses", 50.0),
                count("io/read/observed/words.redis_round_trips", 100.0),
                count("io/read/observed/due.l2_hits", 10.0),
                count("io/read/observed/due.redis_round_trips", 10.0),
            ])
            .build();
        let mut comparison = Comparison {
            rows: vec![
                row(
                    "io/read/observed/words.redis_round_trips",
                    Verdict::Regression,
                ),
                row("io/read/sql_statements", Verdict::Regression),
            ],
        };
        locate(&mut comparison, &base, &head, &[]);
        let location = comparison.rows[0].location.as_ref().expect("a location");
        assert!(location.parts.is_empty(), "{location:?}");
        let trips = location.round_trips.expect("round trips");
        assert_eq!(
            trips,
            RoundTrips {
                base: 61,
                head: 110,
                base_lookups: 60,
                head_lookups: 60,
            }
        );
        assert_eq!(
            trips.summary(),
            "61 -> 110 round trips to Redis (1.02 -> 1.83 per lookup)"
        );
        // A statement total has no round trips, and no statement moved.
        assert_eq!(comparison.rows[1].location, None);

        // Records without the counter (older ones) show the commands only.
        let without = |record: &RunRecord| {
            let mut record = record.clone();
            record.metrics.retain(|m| !m.name.contains("observed/"));
            record
        };
        let mut head_more = without(&head);
        head_more.metrics[1].value = 55.0;
        let mut comparison = Comparison {
            rows: vec![row("io/read/redis_commands", Verdict::Regression)],
        };
        locate(&mut comparison, &without(&base), &head_more, &[]);
        let location = comparison.rows[0].location.as_ref().expect("a location");
        assert_eq!(location.round_trips, None);
        assert_eq!(location.parts[0].short_name(), "get");
        assert!(is_redis_row("io/read/redis_commands"));
        assert!(!is_redis_row("io/read/sql_statements"));
    }

    #[test]
    fn an_n_plus_one_names_its_statement_first_with_its_text() {
        let base = TestRecord::new("b")
            .metrics(vec![
                count("io/due/sql_statements", 2.0),
                count("io/due/sql/select_review_cards_11111111", 1.0),
                count("io/due/sql/begin_22222222", 1.0),
                count("io/due/redis_commands", 3.0),
                count("io/due/redis/get", 3.0),
            ])
            .build();
        let mut head = TestRecord::new("h")
            .metrics(vec![
                count("io/due/sql_statements", 53.0),
                count("io/due/sql/select_review_cards_11111111", 2.0),
                count("io/due/sql/select_words_33333333", 50.0),
                count("io/due/sql/begin_22222222", 1.0),
                count("io/due/redis_commands", 3.0),
                count("io/due/redis/get", 3.0),
            ])
            .build();
        head.details.statements.insert(
            "select_words_33333333".to_owned(),
            "SELECT lemma FROM words WHERE id = ?".to_owned(),
        );
        let mut comparison = Comparison {
            rows: vec![
                row("io/due/sql_statements", Verdict::Regression),
                row("io/due/redis_commands", Verdict::Unchanged),
            ],
        };
        locate(&mut comparison, &base, &head, &[]);
        let location = comparison.rows[0].location.as_ref().expect("a location");
        let names: Vec<&str> = location.parts.iter().map(PartChange::short_name).collect();
        assert_eq!(
            names,
            ["select_words_33333333", "select_review_cards_11111111"]
        );
        assert_eq!(
            (location.parts[0].base, location.parts[0].head),
            (0.0, 50.0)
        );
        assert_eq!(
            location.parts[0].text.as_deref(),
            Some("SELECT lemma FROM words WHERE id = ?")
        );
        assert_eq!(location.parts[1].text, None, "no text in either record");
        assert_eq!(
            comparison.rows[1].location, None,
            "unchanged rows are not located"
        );
    }

    fn functions(record: &mut RunRecord, costs: &[(&str, u64, u64)]) {
        record.details.functions.insert(
            "instructions/query/decode/page".to_owned(),
            costs
                .iter()
                .map(
                    |&(name, exclusive, inclusive)| crate::record::FunctionCost {
                        name: name.to_owned(),
                        exclusive,
                        inclusive,
                    },
                )
                .collect(),
        );
    }

    fn instruction_row_after(
        base: &[(&str, u64, u64)],
        head: &[(&str, u64, u64)],
        changed: &[&str],
    ) -> MetricComparison {
        let (mut before, mut after) = (TestRecord::new("b").build(), TestRecord::new("h").build());
        functions(&mut before, base);
        functions(&mut after, head);
        let mut comparison = Comparison {
            rows: vec![row("instructions/query/decode/page", Verdict::Regression)],
        };
        let changed: Vec<String> = changed.iter().map(|f| (*f).to_owned()).collect();
        locate(&mut comparison, &before, &after, &changed);
        comparison.rows.remove(0)
    }

    const FROM_ROW: &str = "bench_suite::query::cards::<impl sqlx_core::from_row::FromRow<sqlx_postgres::row::PgRow> for bench_suite::model::DueCard>::from_row";

    #[test]
    fn an_instruction_regression_names_the_function_it_is_in_first() {
        let base = [
            ("main", 10, 3000),
            (FROM_ROW, 1000, 2000),
            ("sqlx_core::row::Row::try_get", 1000, 1000),
        ];
        let head = [
            ("main", 10, 4900),
            (FROM_ROW, 2800, 3800),
            ("sqlx_core::row::Row::try_get", 1000, 1000),
            ("core::str::converts::from_utf8", 100, 100),
        ];
        let row = instruction_row_after(&base, &head, &["bench-suite/src/query/cards.rs"]);
        let location = row.location.expect("a location");
        let names: Vec<&str> = location.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, [FROM_ROW, "core::str::converts::from_utf8", "main"]);
        assert_eq!(location.functions[0].exclusive_change(), 1800);
        assert_eq!(location.functions[0].inclusive_change(), 1800);
        assert_eq!(location.functions[0].in_change, Some(true));
        assert_eq!(location.functions[1].in_change, Some(false));
        assert!(!location.outside_change, "the change's own function moved");
        assert!(!row.rule.contains("outside"), "{}", row.rule);
    }

    #[test]
    fn a_move_confined_to_functions_outside_the_change_is_labelled_so() {
        let base = [
            ("sqlx_core::row::Row::try_get", 1000, 1000),
            (FROM_ROW, 500, 1500),
        ];
        let head = [
            ("sqlx_core::row::Row::try_get", 1010, 1010),
            (FROM_ROW, 500, 1510),
        ];
        let row = instruction_row_after(&base, &head, &["bench-suite/src/cache/l2.rs"]);
        let location = row.location.expect("a location");
        assert!(location.outside_change);
        assert!(
            row.rule.contains("outside the files this change touched"),
            "{}",
            row.rule
        );
        // A changed manifest may move any function's code: no label then.
        let row =
            instruction_row_after(&base, &head, &["bench-suite/src/cache/l2.rs", "Cargo.lock"]);
        let location = row.location.expect("a location");
        assert!(!location.outside_change);
        assert_eq!(location.functions[0].in_change, None);
        // Unknown changed files: no label either.
        let row = instruction_row_after(&base, &head, &[]);
        assert!(!row.location.expect("a location").outside_change);
    }

    #[test]
    fn source_files_map_to_their_module_paths() {
        assert_eq!(
            module_of("bench-suite/src/query/cards.rs").as_deref(),
            Some("bench_suite::query::cards")
        );
        assert_eq!(
            module_of("bench-suite/src/cache/mod.rs").as_deref(),
            Some("bench_suite::cache")
        );
        assert_eq!(
            module_of("bench-suite/src/lib.rs").as_deref(),
            Some("bench_suite")
        );
        assert_eq!(
            module_of("bench-suite/src/bin/suite.rs").as_deref(),
            Some("suite")
        );
        assert_eq!(
            module_of("xtask/benches/render.rs").as_deref(),
            Some("render")
        );
        assert_eq!(module_of("README.md"), None);
        let change = Change::of(&["bench-suite/src/query/cards.rs".to_owned()]).unwrap();
        assert!(change.contains(FROM_ROW));
        assert!(change.contains("<bench_suite::query::cards::Page as Clone>::clone"));
        assert!(!change.contains("bench_suite::query::cards_extra::f"));
        assert!(!change.contains("other::bench_suite::query::cards::f"));
    }

    #[test]
    fn a_vanished_command_and_a_plan_are_located() {
        let mut base = TestRecord::new("b")
            .metrics(vec![
                count("io/s/redis_commands", 2.0),
                count("io/s/redis/set", 1.0),
                count("io/s/redis/get", 1.0),
            ])
            .build();
        base.details
            .plans
            .insert("due".to_owned(), "Seq Scan on review_cards".to_owned());
        let head = TestRecord::new("h")
            .metrics(vec![
                count("io/s/redis_commands", 1.0),
                count("io/s/redis/get", 1.0),
            ])
            .build();
        let mut comparison = Comparison {
            rows: vec![
                row("io/s/redis_commands", Verdict::Improvement),
                row("plans/due", Verdict::Regression),
                row("io/s/observed/loads", Verdict::Regression),
            ],
        };
        locate(&mut comparison, &base, &head, &[]);
        let commands = comparison.rows[0].location.as_ref().unwrap();
        assert_eq!(commands.parts.len(), 1);
        assert_eq!(commands.parts[0].short_name(), "set");
        assert_eq!((commands.parts[0].base, commands.parts[0].head), (1.0, 0.0));
        let plan = comparison.rows[1].location.as_ref().unwrap();
        assert_eq!(plan.explain.as_deref(), Some("Seq Scan on review_cards"));
        assert_eq!(comparison.rows[2].location, None);
    }
}
