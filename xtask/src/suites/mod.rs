//! Running the suites of one checkout (HEAD's work tree, or a base revision's worktree):
//! build its `bench-suite`, create and seed a database of its own, then count I/O and heap use
//! per scenario, check scenarios for leaks, capture the key queries' plan shapes, time with
//! criterion, count instructions with Gungraun, and last run an open-loop load while measuring
//! the servers. Every tool is a child process in its own process group, killed with its
//! children if the run is interrupted.
//!
//! The checkout is driven only through stable entry points (`suite prepare|scenario|leak|load|
//! list|plans`, the `wall_time` and `instructions` benches), so the HEAD harness can measure
//! any revision that has them (a revision without `leak`/`load`/`plans` is measured without
//! them, and the record's notes say so for `leak`/`load`).
//!
//! Adding a suite: a variant of `record::Suite` with its metric prefix (the one list of
//! suites: `--filter`'s suite prefixes come from it), a module here that turns its tool's
//! output into metrics, its step in `measure_in_database` (which fixes the order: the
//! scenarios' one pass yields both I/O counts and heap use, and load runs last), and its
//! names in `listing`. The suites are steps of one pass over one seeded database rather than
//! implementations of one trait: memory is measured in the I/O counts' scenario runs and the
//! leak checks need their scenario list, so a suite-per-trait split would run the scenarios
//! twice or hide that coupling.

pub mod build_guard;
pub mod callgrind;
pub mod child;
pub mod contents;
pub mod instructions;
pub mod io_counts;
pub mod listing;
pub mod load;
pub mod memory;
pub mod paired;
pub mod plans;
pub mod resources;
pub mod wall_time;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sqlx::{Connection, PgConnection};

use crate::config::Seed;
use crate::progress::Progress;
use crate::provision::Services;
use crate::record::{Metric, Phase, Suite};
use crate::render::short_sha;
use crate::workspace::Layout;
use child::{Interactive, run_tool, tool_in};
use listing::ListedScenario;

/// Errors of a suite run.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error(
        "revision {commit} cannot be measured: {detail}.\n  fix: choose a --base that has the bench-suite entry points (`suite` binary, `wall_time` and `instructions` benches), or `--base none`"
    )]
    NoEntryPoints { commit: String, detail: String },
    #[error("{what} failed ({status}); full log: {log}\n{tail}")]
    Tool {
        what: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("cannot start {program}: {detail}")]
    Spawn { program: String, detail: String },
    /// What the instructions suite needs could not be found or installed (the message says
    /// what and the fix).
    #[error("{0}")]
    Setup(String),
    #[error("{suite}: {detail}")]
    Output { suite: &'static str, detail: String },
    #[error("counting I/O: {0}")]
    Probe(String),
    #[error("database setup: {0}")]
    Database(String),
}

/// What the suites of one run share.
pub struct SuiteContext<'a> {
    pub layout: &'a Layout,
    pub services: &'a Services,
    pub seed: Seed,
    pub quick: bool,
    pub filter: Option<&'a str>,
    pub progress: &'a Progress,
    /// Unique per harness run: names databases and cache namespaces.
    pub run_id: String,
    /// Keep the checkout's `suite` and `wall_time` binaries for paired rounds (`--paired`).
    pub keep_for_pairing: bool,
}

/// A tree to measure.
pub struct Checkout<'a> {
    /// `head` or `base`: names the raw output directory and the database.
    pub label: &'a str,
    pub dir: &'a Path,
    pub commit: &'a str,
    /// Cargo's target directory for this checkout's binaries (HEAD and bases use separate
    /// ones, so that measuring a base does not make HEAD's next run rebuild).
    pub target_dir: &'a Path,
    /// Whether the harness made this checkout for the run (a base's worktree): then its
    /// files' modification times are the harness's to set (`build_guard::build_checkout`).
    pub harness_worktree: bool,
}

/// The metrics and phase times of one checkout.
#[derive(Debug, Default)]
pub struct Measurement {
    pub metrics: Vec<Metric>,
    pub phases: Vec<Phase>,
    /// What could not be measured and why.
    pub notes: Vec<String>,
    /// The statements' texts and the plans' `EXPLAIN` behind the metrics.
    pub details: crate::record::Details,
    /// The binaries kept for paired rounds (with [`SuiteContext::keep_for_pairing`], when the
    /// filter selects wall time).
    pub paired_side: Option<paired::PairedSide>,
}

impl Measurement {
    /// Records that the phase `name` ran from `started` until now.
    fn phase_done(&mut self, name: String, started: Instant) {
        self.phases.push(Phase {
            name,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
}

/// The cargo that runs the harness (`CARGO`), else the one on PATH.
fn cargo_program() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

impl SuiteContext<'_> {
    fn matches(&self, name: &str) -> bool {
        self.filter
            .is_none_or(|filter| filter_matches(filter, name))
    }

    /// Whether the filter selects something under `prefix` (e.g. `mem/due_cards`): the name
    /// contains the filter, or the filter names something below it
    /// (`mem/due_cards/peak_bytes`).
    fn selects(&self, prefix: &str) -> bool {
        self.filter.is_none_or(|filter| {
            filter_alternatives(filter).any(|alternative| alternative.selects(prefix))
        })
    }
}

/// What `--filter` means for one suite's tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolFilter<'a> {
    /// The filter names another suite: do not run this one.
    Skip,
    /// Run every benchmark of this suite.
    All,
    /// Pass this pattern on (the filter, without the suite's prefix).
    Pattern(&'a str),
    /// Run exactly these benchmarks (their names without the suite's prefix): the filter's
    /// `=name` alternatives, as a shard selects its part.
    Exact(Vec<&'a str>),
}

impl<'a> ToolFilter<'a> {
    /// The pattern to pass on, if any.
    pub fn pattern(&self) -> Option<&'a str> {
        match self {
            ToolFilter::Pattern(pattern) => Some(pattern),
            ToolFilter::Skip | ToolFilter::All | ToolFilter::Exact(_) => None,
        }
    }

    /// criterion's filter (a regex over `group/bench`): the escaped pattern, or the exact
    /// names anchored at both ends; `None` runs every benchmark.
    pub fn criterion_regex(&self) -> Option<String> {
        match self {
            ToolFilter::Pattern(pattern) => Some(wall_time::regex_escape(pattern)),
            ToolFilter::Exact(ids) => Some(wall_time::exact_ids_regex(ids)),
            ToolFilter::Skip | ToolFilter::All => None,
        }
    }
}

/// One alternative of a `--filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alternative<'a> {
    /// Plain text: selects every name that contains it.
    Contains(&'a str),
    /// `=name`: exactly one benchmark, scenario, plan or load mix as `--list` names it, and
    /// the metrics below it (`=io/dashboard_warm` selects `io/dashboard_warm/sql_statements`,
    /// never `io/dashboard_warm_twice`).
    Exact(&'a str),
}

impl Alternative<'_> {
    /// Whether this alternative selects the benchmark, scenario or metric `name`.
    pub fn matches(self, name: &str) -> bool {
        match self {
            Alternative::Contains(pattern) => name.contains(pattern),
            Alternative::Exact(exact) => {
                crate::record::is_at_or_below(name, exact)
                    || crate::record::is_at_or_below(exact, name)
            }
        }
    }

    /// Whether this alternative selects something under `prefix` (a scenario's `mem/<name>`,
    /// the load mix): as [`Alternative::matches`], or it names something below `prefix`.
    fn selects(self, prefix: &str) -> bool {
        match self {
            Alternative::Contains(pattern) => {
                prefix.contains(pattern) || pattern.starts_with(prefix)
            }
            Alternative::Exact(_) => self.matches(prefix),
        }
    }
}

/// The alternatives of a `--filter`: comma-separated, any of which selects a metric
/// (`plans/,io/due_cards`); plain text selects the names that contain it, `=name` exactly that
/// name. Empty alternatives are ignored.
pub fn filter_alternatives(filter: &str) -> impl Iterator<Item = Alternative<'_>> {
    filter
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "=")
        .map(|p| match p.strip_prefix('=') {
            Some(exact) => Alternative::Exact(exact.trim()),
            None => Alternative::Contains(p),
        })
}

/// Whether `filter` selects the benchmark, scenario or metric `name`.
pub fn filter_matches(filter: &str, name: &str) -> bool {
    filter_alternatives(filter).any(|alternative| alternative.matches(name))
}

/// `=name` alternatives for exactly `names` (a shard's part of a selection): the filter that
/// selects them and nothing else.
pub fn exact_filter<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|name| format!("={}", name.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Metric names start with their suite: `wall_time/`, `instructions/`, `io/`, `plans/`,
/// `mem/`, `load/`. A filter that starts with one of them selects that suite (and, after the
/// prefix, its benchmarks); any other filter is passed to every suite. Of a filter with
/// several alternatives, a suite gets what its alternatives select together: nothing when
/// none selects it, one pattern when only one does, exact names when all that do are exact,
/// else all of it (and the run keeps only the metrics the filter selects).
pub fn tool_filter<'a>(filter: Option<&'a str>, suite_prefix: &str) -> ToolFilter<'a> {
    let Some(filter) = filter else {
        return ToolFilter::All;
    };
    let mut combined = ToolFilter::Skip;
    for alternative in filter_alternatives(filter) {
        combined = match (combined, one_tool_filter(alternative, suite_prefix)) {
            (ToolFilter::Skip, other) | (other, ToolFilter::Skip) => other,
            (ToolFilter::Exact(mut ids), ToolFilter::Exact(more)) => {
                ids.extend(more);
                ToolFilter::Exact(ids)
            }
            _ => ToolFilter::All,
        };
    }
    combined
}

/// [`tool_filter`] of one alternative.
fn one_tool_filter<'a>(alternative: Alternative<'a>, suite_prefix: &str) -> ToolFilter<'a> {
    let pattern = match alternative {
        Alternative::Exact(name) => {
            return match name.strip_prefix(suite_prefix) {
                Some(id) if !id.is_empty() => ToolFilter::Exact(vec![id]),
                _ if suite_prefix.trim_end_matches('/') == name => ToolFilter::All,
                _ => ToolFilter::Skip,
            };
        }
        Alternative::Contains(pattern) => pattern,
    };
    if let Some(rest) = pattern.strip_prefix(suite_prefix) {
        return if rest.is_empty() {
            ToolFilter::All
        } else {
            ToolFilter::Pattern(rest)
        };
    }
    if suite_prefix.starts_with(pattern) {
        return ToolFilter::All;
    }
    if Suite::of_metric(pattern).is_some() {
        return ToolFilter::Skip;
    }
    ToolFilter::Pattern(pattern)
}

/// Builds, seeds and measures one checkout.
pub async fn measure(
    ctx: &SuiteContext<'_>,
    checkout: &Checkout<'_>,
) -> Result<Measurement, SuiteError> {
    let raw = ctx.layout.raw_dir(checkout.label);
    let mut measurement = Measurement::default();
    let label = checkout.label;
    let started = Instant::now();
    // Held until the measurement is done: no other run rebuilds these binaries meanwhile.
    let _built = build(ctx, checkout, &raw).await?;
    measurement.phase_done(format!("{label}: build"), started);
    if ctx.keep_for_pairing && tool_filter(ctx.filter, Suite::WallTime.prefix()) != ToolFilter::Skip
    {
        measurement.paired_side = Some(paired::keep_binaries(checkout, &raw).await?);
    }

    let database = format!("perf_{}_{label}", ctx.run_id);
    create_database(ctx.services, &database).await?;
    let result = measure_in_database(ctx, checkout, &database, &raw, &mut measurement).await;
    let dropped = drop_database(ctx.services, &database).await;
    result?;
    dropped?;
    measurement.metrics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(measurement)
}

/// Checks the checkout's entry points, empties its raw output directory `raw` and builds its
/// `bench-suite`; the binaries stay as built while the returned guard is held.
async fn build(
    ctx: &SuiteContext<'_>,
    checkout: &Checkout<'_>,
    raw: &Path,
) -> Result<build_guard::BuiltCheckout, SuiteError> {
    check_entry_points(checkout)?;
    let _ = std::fs::remove_dir_all(raw);
    std::fs::create_dir_all(raw).map_err(|e| SuiteError::Output {
        suite: "setup",
        detail: format!("cannot create {}: {e}", raw.display()),
    })?;
    let label = checkout.label;
    ctx.progress.line(&format!(
        "{label}: building bench-suite at {}",
        short_sha(checkout.commit)
    ));
    build_guard::build_checkout(
        checkout.dir,
        checkout.target_dir,
        checkout.harness_worktree,
        |message| ctx.progress.line(&format!("{label}: {message}")),
        || {
            build_bench_suite(
                checkout.dir,
                checkout.target_dir,
                label,
                raw,
                BuildScope::for_filter(ctx.filter),
            )
        },
    )
    .await
}

/// Builds one checkout and keeps its `suite` and `wall_time` binaries for paired rounds,
/// measuring nothing else (`calibrate --paired`).
pub async fn build_for_pairing(
    ctx: &SuiteContext<'_>,
    checkout: &Checkout<'_>,
) -> Result<paired::PairedSide, SuiteError> {
    let raw = ctx.layout.raw_dir(checkout.label);
    let _built = build(ctx, checkout, &raw).await?;
    paired::keep_binaries(checkout, &raw).await
}

/// One checkout's measurement in its own database: what each suite's step needs.
struct InDatabase<'a> {
    ctx: &'a SuiteContext<'a>,
    checkout: &'a Checkout<'a>,
    database: &'a str,
    raw: &'a Path,
    suite_bin: PathBuf,
    database_url: String,
    redis_url: String,
}

impl<'a> InDatabase<'a> {
    fn new(
        ctx: &'a SuiteContext<'a>,
        checkout: &'a Checkout<'a>,
        database: &'a str,
        raw: &'a Path,
    ) -> Self {
        Self {
            ctx,
            checkout,
            database,
            raw,
            suite_bin: checkout.target_dir.join("release").join("suite"),
            database_url: ctx.services.postgres_url(database),
            redis_url: ctx.services.redis_url(),
        }
    }

    fn label(&self) -> &'a str {
        self.checkout.label
    }

    /// A progress line about this checkout.
    fn say(&self, text: &str) {
        self.ctx.progress.line(&format!("{}: {text}", self.label()));
    }

    /// The checkout's `suite` binary as a child process.
    fn suite(&self) -> tokio::process::Command {
        tool(&self.suite_bin, self.checkout)
    }

    /// Gives `command` the run's database and Redis, and the cache namespace of `step`.
    fn with_services(&self, command: &mut tokio::process::Command, step: &str) {
        command
            .env("DATABASE_URL", &self.database_url)
            .env("REDIS_URL", &self.redis_url)
            .env(
                "PERF_CACHE_NAMESPACE",
                format!("{}:{}:{step}", self.ctx.run_id, self.label()),
            );
    }
}

/// Measures every selected suite of a built checkout in its database, in this order: seed,
/// instructions (first: some benchmarks read their rows in their setup, so their counts depend
/// on the data, which must be the seed's whatever else the run selects, or a shard of the run
/// would count other rows than the whole run), I/O counts and heap use per scenario, plans
/// (after the I/O counts, which they must not warm), leak checks, wall time, and load last (it
/// dirties the caches and the tables the other suites read).
async fn measure_in_database(
    ctx: &SuiteContext<'_>,
    checkout: &Checkout<'_>,
    database: &str,
    raw: &Path,
    measurement: &mut Measurement,
) -> Result<(), SuiteError> {
    let run = InDatabase::new(ctx, checkout, database, raw);
    seed(&run, measurement).await?;
    let filter = tool_filter(ctx.filter, Suite::Instructions.prefix());
    if filter != ToolFilter::Skip {
        count_instructions(&run, &filter, measurement).await?;
    }
    let scenarios = measure_scenarios(&run, measurement).await?;
    if tool_filter(ctx.filter, Suite::Plans.prefix()) != ToolFilter::Skip
        && has_plans_command(&run.suite_bin, checkout, ctx, raw).await?
    {
        capture_plans(&run, measurement).await?;
    }
    check_leaks(&run, &scenarios, measurement).await?;
    let filter = tool_filter(ctx.filter, Suite::WallTime.prefix());
    if filter != ToolFilter::Skip {
        time_with_criterion(&run, &filter, measurement).await?;
    }
    if ctx.selects(&format!("load/{}", load::MIX)) {
        run_load(&run, measurement).await?;
    }
    Ok(())
}

/// Seeds the checkout's database (`suite prepare`).
async fn seed(run: &InDatabase<'_>, measurement: &mut Measurement) -> Result<(), SuiteError> {
    let (label, seed) = (run.label(), &run.ctx.seed);
    let started = Instant::now();
    run.say(&format!(
        "seeding {} users, {} words, {} cards",
        seed.users, seed.words, seed.cards
    ));
    let mut prepare = run.suite();
    prepare.args(prepare_args(seed));
    run.with_services(&mut prepare, "prepare");
    run_tool(
        prepare,
        &format!("{label}: suite prepare"),
        &run.raw.join("prepare.log"),
    )
    .await?;
    measurement.phase_done(format!("{label}: seed"), started);
    Ok(())
}

/// Lists the checkout's scenarios (`suite list`) and runs each one the filter selects once,
/// counting its I/O on the servers and reading its heap use; returns every scenario listed.
async fn measure_scenarios(
    run: &InDatabase<'_>,
    measurement: &mut Measurement,
) -> Result<Vec<ListedScenario>, SuiteError> {
    let (ctx, label) = (run.ctx, run.label());
    let started = Instant::now();
    let mut list = run.suite();
    list.arg("list");
    let listed = run_tool(
        list,
        &format!("{label}: suite list"),
        &run.raw.join("list.log"),
    )
    .await?;
    let scenarios = listing::parse_scenarios(&listed);
    let io_scenarios: Vec<&ListedScenario> = scenarios
        .iter()
        .filter(|s| ctx.matches(&format!("io/{}", s.name)) || selects_memory(ctx, s))
        .collect();
    if !io_scenarios.is_empty() {
        let mut probe =
            io_counts::IoProbe::connect(&ctx.services.postgres_url("postgres"), &run.redis_url)
                .await?;
        for scenario in io_scenarios {
            measure_scenario(run, &mut probe, scenario, measurement).await?;
        }
    }
    measurement.phase_done(format!("{label}: io_counts"), started);
    Ok(scenarios)
}

/// Whether the filter selects a scenario's heap use (`mem/<scenario>`): only named scenarios
/// have one, a benchmark's counted call does not.
fn selects_memory(ctx: &SuiteContext<'_>, scenario: &ListedScenario) -> bool {
    scenario.benchmark.is_none() && ctx.selects(&format!("mem/{}", scenario.name))
}

/// Runs one scenario (`suite scenario`) under the handshake; records its I/O counts and heap
/// use as the filter selects them.
async fn measure_scenario(
    run: &InDatabase<'_>,
    probe: &mut io_counts::IoProbe,
    listed: &ListedScenario,
    measurement: &mut Measurement,
) -> Result<(), SuiteError> {
    let (ctx, label, scenario) = (run.ctx, run.label(), listed.name.as_str());
    run.say(&format!("io_counts {scenario}"));
    let mut command = run.suite();
    command.args(["scenario", scenario]);
    run.with_services(&mut command, scenario);
    let (stdout, counts) = run_scenario(
        command,
        (probe, run.database),
        &format!("{label}: scenario {scenario}"),
        &run.raw.join(format!("scenario-{scenario}.log")),
    )
    .await?;
    if ctx.matches(&format!("io/{scenario}")) {
        let observations: BTreeMap<String, u64> = stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line).ok())
            .unwrap_or_default();
        measurement.metrics.extend(io_counts::scenario_metrics(
            scenario,
            &counts,
            &observations,
        ));
        measurement.details.statements.extend(counts.texts.clone());
    }
    if selects_memory(ctx, listed) {
        let made_io =
            counts.sql_statements > 0 || counts.redis_commands.values().any(|&calls| calls > 0);
        measurement
            .metrics
            .extend(memory::scenario_metrics(scenario, &stdout, made_io)?);
    }
    Ok(())
}

/// Captures the plan shapes of the key queries (`suite plans`: `EXPLAIN`).
async fn capture_plans(
    run: &InDatabase<'_>,
    measurement: &mut Measurement,
) -> Result<(), SuiteError> {
    let label = run.label();
    let started = Instant::now();
    run.say("plans");
    let mut explain = run.suite();
    explain.arg("plans");
    run.with_services(&mut explain, "plans");
    let stdout = run_tool(
        explain,
        &format!("{label}: suite plans"),
        &run.raw.join("plans.log"),
    )
    .await?;
    let (metrics, texts) = plans::parse_output(&stdout)?;
    measurement.details.plans.extend(
        texts
            .into_iter()
            .filter(|(query, _)| run.ctx.matches(&format!("plans/{query}"))),
    );
    measurement.metrics.extend(
        metrics
            .into_iter()
            .filter(|metric| run.ctx.matches(&metric.name)),
    );
    measurement.phase_done(format!("{label}: plans"), started);
    Ok(())
}

/// Checks each scenario the filter selects for leaks (`suite leak`), or notes that this
/// revision cannot.
async fn check_leaks(
    run: &InDatabase<'_>,
    scenarios: &[ListedScenario],
    measurement: &mut Measurement,
) -> Result<(), SuiteError> {
    let (ctx, label) = (run.ctx, run.label());
    let leak_scenarios: Vec<&str> = scenarios
        .iter()
        .filter(|scenario| selects_memory(ctx, scenario))
        .map(|scenario| scenario.name.as_str())
        .collect();
    if leak_scenarios.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    if has_subcommand(&run.suite_bin, run.checkout, "leak").await {
        let rounds = memory::leak_rounds(ctx.quick);
        for scenario in leak_scenarios {
            run.say(&format!("leak check {scenario} ({rounds} rounds)"));
            let mut command = run.suite();
            command.args(["leak", scenario, "--rounds", &rounds.to_string()]);
            run.with_services(&mut command, &format!("leak:{scenario}"));
            let stdout = run_tool(
                command,
                &format!("{label}: suite leak {scenario}"),
                &run.raw.join(format!("leak-{scenario}.log")),
            )
            .await?;
            measurement
                .metrics
                .push(memory::leak_metric(scenario, &stdout)?);
        }
    } else {
        measurement.notes.push(format!(
            "{label}: no leak check: this revision's `suite` has no `leak` command"
        ));
    }
    measurement.phase_done(format!("{label}: leak checks"), started);
    Ok(())
}

/// Times the `wall_time` benchmarks with criterion.
async fn time_with_criterion(
    run: &InDatabase<'_>,
    filter: &ToolFilter<'_>,
    measurement: &mut Measurement,
) -> Result<(), SuiteError> {
    let (ctx, label) = (run.ctx, run.label());
    let started = Instant::now();
    run.say(&format!(
        "wall_time (criterion, {} profile)",
        if ctx.quick { "quick" } else { "full" }
    ));
    let home = run.raw.join("criterion");
    let mut bench = tool(cargo_program(), run.checkout);
    bench
        .args([
            "bench",
            "--package",
            "bench-suite",
            "--bench",
            "wall_time",
            "--",
        ])
        .args(wall_time::criterion_args(
            ctx.quick,
            filter.criterion_regex(),
        ))
        .env("CRITERION_HOME", &home);
    run.with_services(&mut bench, "wall_time");
    run_tool(
        bench,
        &format!("{label}: criterion"),
        &run.raw.join("wall_time.log"),
    )
    .await?;
    // Several patterns of one suite run all of it: keep only what the filter selects.
    let timed = wall_time::read_results(&home)?;
    measurement
        .metrics
        .extend(timed.into_iter().filter(|metric| ctx.matches(&metric.name)));
    measurement.phase_done(format!("{label}: wall_time"), started);
    Ok(())
}

/// Counts instructions with Gungraun: `bench-suite`'s `instructions` benchmark and the
/// harness's own where the checkout has it.
async fn count_instructions(
    run: &InDatabase<'_>,
    filter: &ToolFilter<'_>,
    measurement: &mut Measurement,
) -> Result<(), SuiteError> {
    let (ctx, label, checkout) = (run.ctx, run.label(), run.checkout);
    let started = Instant::now();
    run.say("instructions (gungraun)");
    let runner_dir =
        crate::setup::gungraun_runner(checkout.dir, &ctx.layout.target_dir, ctx.progress)
            .await
            .map_err(|e| SuiteError::Setup(format!("{e:#}")))?;
    for (package, bench_name) in instructions::BENCHES {
        let source = checkout
            .dir
            .join(package)
            .join("benches")
            .join(format!("{bench_name}.rs"));
        if package != "bench-suite" && !source.is_file() {
            // An older revision without the harness's own benchmark: nothing to count.
            continue;
        }
        let home = run.raw.join("gungraun").join(bench_name);
        for (index, pattern) in instructions::gungraun_patterns(filter).iter().enumerate() {
            let log = match index {
                0 => format!("instructions-{bench_name}.log"),
                _ => format!("instructions-{bench_name}-{index}.log"),
            };
            let mut bench = tool(cargo_program(), checkout);
            bench
                .args(bench_target_args(package, bench_name))
                .arg("--")
                .args(instructions::gungraun_args(pattern.as_deref()))
                .env("GUNGRAUN_HOME", &home);
            runner_first_on_path(&mut bench, runner_dir.as_deref());
            // Row decoding reads its rows from the seeded database in its setup.
            run.with_services(&mut bench, "instructions");
            let stdout = run_tool(
                bench,
                &format!("{label}: gungraun ({package} {bench_name})"),
                &run.raw.join(log),
            )
            .await?;
            let mut metrics = instructions::parse_output(&stdout)?;
            metrics.retain(|metric| ctx.matches(&metric.name));
            keep_profiles(&home, &metrics, &mut measurement.details);
            measurement.metrics.extend(metrics);
        }
    }
    measurement.phase_done(format!("{label}: instructions"), started);
    Ok(())
}

/// Keeps the Callgrind functions and call edges of the benchmarks `metrics` counted, from the
/// outputs Gungraun wrote under `home`.
fn keep_profiles(home: &Path, metrics: &[Metric], details: &mut crate::record::Details) {
    let mut profiles = callgrind::read_home(home);
    profiles.retain(|name, _| metrics.iter().any(|metric| &metric.name == name));
    for (name, profile) in profiles {
        details.functions.insert(name.clone(), profile.functions);
        if !profile.calls.is_empty() {
            details.calls.insert(name, profile.calls);
        }
    }
}

/// Runs the open-loop load (`suite load`) while measuring the servers, or notes that this
/// revision cannot.
async fn run_load(run: &InDatabase<'_>, measurement: &mut Measurement) -> Result<(), SuiteError> {
    let (ctx, label) = (run.ctx, run.label());
    let started = Instant::now();
    if has_subcommand(&run.suite_bin, run.checkout, "load").await {
        run.say(&format!(
            "load ({} req/s for {} s, open loop)",
            load::RATE,
            load::duration(ctx.quick).as_secs()
        ));
        let mut command = run.suite();
        command.args(load::args(ctx.quick));
        run.with_services(&mut command, "load");
        let result = load::run(
            command,
            ctx.services.server_processes(),
            ctx.quick,
            &format!("{label}: suite load"),
            &run.raw.join("load.log"),
        )
        .await?;
        run.say(&format!("load: {}", result.summary));
        for note in &result.notes {
            run.say(note);
        }
        measurement.metrics.extend(result.metrics);
        measurement.notes.extend(result.notes);
    } else {
        measurement.notes.push(format!(
            "{label}: no load run: this revision's `suite` has no `load` command"
        ));
    }
    measurement.phase_done(format!("{label}: load"), started);
    Ok(())
}

/// `suite prepare`'s arguments: seed a database of the configured size.
fn prepare_args(seed: &Seed) -> Vec<String> {
    vec![
        "prepare".to_owned(),
        "--users".to_owned(),
        seed.users.to_string(),
        "--words".to_owned(),
        seed.words.to_string(),
        "--cards".to_owned(),
        seed.cards.to_string(),
    ]
}

/// `cargo bench --package <package> --bench <bench>` with the features runs build that
/// benchmark with: building, listing and running a benchmark all take its target from here, so
/// none of them builds a variant the others do not use.
pub(crate) fn bench_target_args<'a>(package: &'a str, bench: &'a str) -> Vec<&'a str> {
    let mut args = vec!["bench", "--package", package, "--bench", bench];
    args.extend(instructions::cargo_feature_args(package));
    args
}

/// Which of a checkout's binaries a run needs: the `suite` binary always, the benchmarks only
/// when the selection runs wall time or instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BuildScope {
    SuiteOnly,
    SuiteAndBenches,
}

impl BuildScope {
    pub(crate) fn for_filter(filter: Option<&str>) -> Self {
        let benches = [
            tool_filter(filter, Suite::WallTime.prefix()),
            tool_filter(filter, Suite::Instructions.prefix()),
        ];
        if benches.iter().all(|f| *f == ToolFilter::Skip) {
            Self::SuiteOnly
        } else {
            Self::SuiteAndBenches
        }
    }
}

/// Builds the checkout's `suite` binary and, as `scope` says, its benchmarks and the harness's
/// own Gungraun benchmark where the checkout has it (release), logging to `raw`.
async fn build_bench_suite(
    dir: &Path,
    target_dir: &Path,
    label: &str,
    raw: &Path,
    scope: BuildScope,
) -> Result<(), SuiteError> {
    let cargo = cargo_program();
    let mut build = tool_in(&cargo, dir, target_dir);
    build.args([
        "build",
        "--release",
        "--package",
        "bench-suite",
        "--bin",
        "suite",
    ]);
    run_tool(
        build,
        &format!("{label}: cargo build (suite)"),
        &raw.join("build.log"),
    )
    .await?;
    if scope == BuildScope::SuiteOnly {
        return Ok(());
    }
    let mut build_benches = tool_in(&cargo, dir, target_dir);
    build_benches.args(["bench", "--package", "bench-suite", "--no-run"]);
    run_tool(
        build_benches,
        &format!("{label}: cargo bench --no-run"),
        &raw.join("build-benches.log"),
    )
    .await?;
    for (package, bench) in instructions::BENCHES {
        if package == "bench-suite"
            || !dir
                .join(package)
                .join("benches")
                .join(format!("{bench}.rs"))
                .is_file()
        {
            continue;
        }
        let mut build_bench = tool_in(&cargo, dir, target_dir);
        build_bench
            .args(bench_target_args(package, bench))
            .arg("--no-run");
        run_tool(
            build_bench,
            &format!("{label}: cargo bench --package {package} --bench {bench} --no-run"),
            &raw.join(format!("build-{bench}.log")),
        )
        .await?;
    }
    Ok(())
}

/// Whether the checkout's `suite` has the `plans` command (revisions before it have not: their
/// records simply have no plan metrics).
async fn has_plans_command(
    suite_bin: &Path,
    checkout: &Checkout<'_>,
    ctx: &SuiteContext<'_>,
    raw: &Path,
) -> Result<bool, SuiteError> {
    let mut help = tool(suite_bin, checkout);
    help.arg("--help");
    let text = run_tool(
        help,
        &format!("{}: suite --help", checkout.label),
        &raw.join("suite-help.log"),
    )
    .await?;
    let known = text
        .lines()
        .any(|line| line.trim_start().starts_with("plans "));
    if !known {
        ctx.progress.line(&format!(
            "{}: plans skipped: `suite` of {} has no `plans` command",
            checkout.label,
            short_sha(checkout.commit)
        ));
    }
    Ok(known)
}

/// Whether the checkout's `suite` binary has `subcommand` (older revisions lack `leak`/`load`).
async fn has_subcommand(suite_bin: &Path, checkout: &Checkout<'_>, subcommand: &str) -> bool {
    let mut help = tool(suite_bin, checkout);
    help.args([subcommand, "--help"]);
    child::succeeds(help).await
}

fn check_entry_points(checkout: &Checkout<'_>) -> Result<(), SuiteError> {
    let manifest = checkout.dir.join("bench-suite").join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| SuiteError::NoEntryPoints {
        commit: checkout.commit.to_owned(),
        detail: format!("no {} ({e})", manifest.display()),
    })?;
    for needed in ["\"suite\"", "\"wall_time\"", "\"instructions\""] {
        if !text.contains(needed) {
            return Err(SuiteError::NoEntryPoints {
                commit: checkout.commit.to_owned(),
                detail: format!("bench-suite/Cargo.toml declares no {needed} target"),
            });
        }
    }
    Ok(())
}

/// A Gungraun benchmark binary runs `gungraun-runner` from PATH: put the harness's own first
/// when `setup` chose it.
pub(crate) fn runner_first_on_path(
    command: &mut tokio::process::Command,
    runner_dir: Option<&Path>,
) {
    if let Some(dir) = runner_dir {
        let mut paths = vec![dir.to_path_buf()];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        if let Ok(joined) = std::env::join_paths(paths) {
            command.env("PATH", joined);
        }
    }
}

/// A tool of the checkout as a child process (see [`child::tool_in`]): in its directory, with
/// its target directory.
fn tool(program: impl AsRef<std::ffi::OsStr>, checkout: &Checkout<'_>) -> tokio::process::Command {
    tool_in(program, checkout.dir, checkout.target_dir)
}

/// How long one I/O scenario may run.
const SCENARIO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs one I/O scenario under the handshake protocol and counts its I/O in `database`: the
/// scenario does its setup (connections, warm-up), prints `{"ready":true}` on stdout and waits
/// for a line on stdin; the harness then zeroes the servers' statistics and answers `go`, so
/// only the measured part is counted. The counts are read when the scenario exits, or, when it
/// prints `{"measured":true}` (it has something to undo), right then, before the harness
/// answers and the scenario undoes it. A scenario that never sends the handshake (an older
/// revision) is counted from its start. Returns the scenario's stdout after the handshake and
/// its counts.
async fn run_scenario(
    command: tokio::process::Command,
    (probe, database): (&mut io_counts::IoProbe, &str),
    what: &str,
    log: &Path,
) -> Result<(String, io_counts::IoCounts), SuiteError> {
    let output_error = |doing: &str, e: std::io::Error| SuiteError::Output {
        suite: "io_counts",
        detail: format!("{doing}: {e}"),
    };
    probe.reset().await?;
    let mut child = Interactive::spawn(command)?;
    let exchange = async {
        let mut measured = String::new();
        let (mut handshake, mut counts) = (false, None);
        while let Some(line) = child
            .next_line()
            .await
            .map_err(|e| output_error("reading the scenario's output", e))?
        {
            if !handshake && Interactive::is_ready(&line) {
                handshake = true;
                probe.reset().await?;
            } else if counts.is_none() && Interactive::is_measured(&line) {
                counts = Some(probe.read(database).await?);
            } else {
                measured.push_str(&line);
                measured.push('\n');
                continue;
            }
            child
                .answer_go()
                .await
                .map_err(|e| output_error("answering the scenario's handshake", e))?;
        }
        let status = child.wait().await?;
        let counts = match counts {
            Some(counts) => counts,
            None => probe.read(database).await?,
        };
        Ok::<_, SuiteError>((status, measured, counts))
    };
    let (status, measured, counts) = tokio::time::timeout(SCENARIO_TIMEOUT, exchange)
        .await
        .map_err(|_| SuiteError::Output {
            suite: "io_counts",
            detail: format!(
                "{what} did not finish within {} s",
                SCENARIO_TIMEOUT.as_secs()
            ),
        })??;
    Ok((child.finish(what, status, measured, log).await?, counts))
}

async fn admin_connection(services: &Services) -> Result<PgConnection, SuiteError> {
    PgConnection::connect(&services.postgres_url("postgres"))
        .await
        .map_err(|e| SuiteError::Database(format!("cannot connect to Postgres: {e}")))
}

/// Creates the run's own database (the harness drops only databases it created).
async fn create_database(services: &Services, database: &str) -> Result<(), SuiteError> {
    let mut admin = admin_connection(services).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{database}\""
    )))
    .execute(&mut admin)
    .await
    .map_err(|e| SuiteError::Database(format!("CREATE DATABASE {database}: {e}")))?;
    Ok(())
}

async fn drop_database(services: &Services, database: &str) -> Result<(), SuiteError> {
    let mut admin = admin_connection(services).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .map_err(|e| SuiteError::Database(format!("DROP DATABASE {database}: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_reaches_each_suite_as_it_should() {
        use ToolFilter::{All, Exact, Pattern, Skip};
        // (filter, what criterion gets, what gungraun gets)
        let cases = [
            (None, All, All),
            (
                Some("due_cards"),
                Pattern("due_cards"),
                Pattern("due_cards"),
            ),
            (Some("wall_time/cache"), Pattern("cache"), Skip),
            (Some("wall_time/"), All, Skip),
            (Some("io/due_cards"), Skip, Skip),
            (Some("plans/"), Skip, Skip),
            (Some("instr"), Pattern("instr"), All),
            // Alternatives: each suite gets what its alternatives select together.
            (Some("plans/,io/due_cards"), Skip, Skip),
            (Some("plans/,wall_time/cache"), Pattern("cache"), Skip),
            (Some("wall_time/cache,wall_time/query"), All, Skip),
            (Some("io/,instructions/query"), Skip, Pattern("query")),
            (Some(","), Skip, Skip),
            (Some("mem/"), Skip, Skip),
            (Some("load/mixed"), Skip, Skip),
            // Exact names: exactly those, per suite; mixed with a pattern, all of the suite.
            (
                Some("=wall_time/cache/get,=instructions/q/f/id,=wall_time/query/due"),
                Exact(vec!["cache/get", "query/due"]),
                Exact(vec!["q/f/id"]),
            ),
            (Some("=io/dashboard_warm,=plans/due"), Skip, Skip),
            (Some("=wall_time/cache/get,wall_time/query"), All, Skip),
            (Some("=wall_time"), All, Skip),
            (Some("=wall_time/"), Skip, Skip),
            (Some("=,="), Skip, Skip),
        ];
        assert_eq!(tool_filter(Some("plans/"), "plans/"), All);
        assert_eq!(tool_filter(Some("io/,plans/due"), "plans/"), Pattern("due"));
        for (filter, wall_time, instructions) in cases {
            assert_eq!(tool_filter(filter, "wall_time/"), wall_time, "{filter:?}");
            assert_eq!(
                tool_filter(filter, "instructions/"),
                instructions,
                "{filter:?}"
            );
        }
    }

    #[test]
    fn an_exact_name_selects_it_and_what_is_below_it_never_a_longer_name() {
        let filter = "=io/dashboard_warm,=instructions/q/f/id";
        for (name, selected) in [
            ("io/dashboard_warm", true),
            ("io/dashboard_warm/sql_statements", true),
            ("io/dashboard_warm_twice", false),
            ("io/dashboard", false),
            ("mem/dashboard_warm", false),
            ("instructions/q/f/id", true),
            ("instructions/q/f/id2", false),
            ("instructions/q/f", true), // the benchmark's group of ids: it names one below
        ] {
            assert_eq!(filter_matches(filter, name), selected, "{name}");
        }
        // Plain text still selects what contains it; both kinds mix.
        assert!(filter_matches("warm,=plans/x", "io/dashboard_warm_twice"));
        assert!(filter_matches("warm,=plans/x", "plans/x"));
        assert!(!filter_matches("warm,=plans/x", "plans/xy"));
        assert_eq!(
            exact_filter(&["io/a", "wall_time/b/c"]),
            "=io/a,=wall_time/b/c"
        );
    }
}
