//! Paired wall time (`--paired`): base and head timed side by side in one job, so that the
//! paired test (`stats::paired_test`, called by `compare`) can judge wall time at all.
//!
//! While a side is measured, its `suite` and `wall_time` binaries are copied to
//! `<out>/raw/<side>/paired/bin/` ([`keep_binaries`]): the base's worktree is removed after its
//! measurement, and both copies then sit at paths of the same length (a binary's path length
//! moves what its allocator does first). Once both sides are measured, [`run_rounds`] gives each
//! a freshly seeded database of its own (the measured ones were dirtied by the load suite and
//! dropped), seeded by the side's own `suite prepare`; when the two hold the same migrations,
//! schema and rows ([`contents`]), both sides are timed against the first, so that no
//! difference between two databases seeded alike passes for one between the commits (seen: a
//! steady 10% in one query between two such databases of one commit). It then lists the
//! benchmarks both sides have (criterion's `--list`), and runs them in
//! rounds, one benchmark at a time: each round times every benchmark on both sides, back to
//! back, before the next benchmark, base first for one benchmark and head first for the next,
//! the order flipping again each round (ABBA), so that neither side always runs on the warmer
//! or the quieter machine. A benchmark's base and head samples of one round are so about 1.5 s
//! apart, not a whole side's run of every benchmark (about 25 s for 17): on a runner whose
//! speed drifts over seconds, only samples that close are pairs. Each run is a short criterion
//! run of one benchmark; its median is that round's sample. Then, while the paired test leaves some benchmarks undecided
//! (`compare::undecided_benchmarks`: a suggestive p-value the family's threshold does not reach,
//! an interval straddling the minimum effect), more interleaved rounds of only those benchmarks
//! (criterion's filter naming them exactly) are appended to their samples, a batch at a time,
//! up to `paired.max_rounds` rounds and `paired.max_extra_seconds`. Both databases are dropped
//! whatever happened.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::compare::{self, PairedSamples, RoundSamples};
use crate::config::{PairedConfig, Thresholds};
use crate::record::Suite;

use super::child::{self, run_tool};
use super::contents;
use super::{
    Checkout, SuiteContext, SuiteError, ToolFilter, create_database, drop_database, prepare_args,
    tool, tool_filter, wall_time,
};

/// Rounds measured by default: enough for the test at alpha 0.05 (6) with room for outliers.
pub const DEFAULT_ROUNDS: u32 = 10;

/// criterion's settings for one side of one round: short, since the rounds, not one long run,
/// carry the statistics.
const ROUND_CRITERION_ARGS: [&str; 7] = [
    "--noplot",
    "--warm-up-time",
    "0.3",
    "--measurement-time",
    "1",
    "--sample-size",
    "10",
];

/// One side's binaries, kept for the rounds.
#[derive(Debug, Clone)]
pub struct PairedSide {
    /// `base` or `head`.
    pub label: String,
    pub commit: String,
    /// The side's `suite` binary (seeds its database).
    pub suite: PathBuf,
    /// The side's criterion `wall_time` benchmark binary.
    pub wall_time: PathBuf,
}

/// Copies the checkout's freshly built `suite` and `wall_time` binaries to `raw/paired/bin/`.
/// Call while the build is held (the binaries cannot change underneath).
pub async fn keep_binaries(checkout: &Checkout<'_>, raw: &Path) -> Result<PairedSide, SuiteError> {
    let mut locate = tool(super::cargo_program(), checkout);
    locate.args([
        "bench",
        "--package",
        "bench-suite",
        "--bench",
        "wall_time",
        "--no-run",
        "--message-format=json",
    ]);
    let stdout = run_tool(
        locate,
        &format!(
            "{}: locating the wall_time benchmark binary",
            checkout.label
        ),
        &raw.join("paired-locate.log"),
    )
    .await?;
    let built = wall_time_executable(&stdout).ok_or_else(|| SuiteError::Output {
        suite: "paired",
        detail: format!(
            "cargo named no executable of the wall_time benchmark (log: {})",
            raw.join("paired-locate.log").display()
        ),
    })?;
    Ok(PairedSide {
        label: checkout.label.to_owned(),
        commit: checkout.commit.to_owned(),
        suite: keep(
            &checkout.target_dir.join("release").join("suite"),
            raw,
            "suite",
        )?,
        wall_time: keep(&built, raw, "wall_time")?,
    })
}

/// Copies `from` to `<raw>/paired/bin/<name>`.
fn keep(from: &Path, raw: &Path, name: &str) -> Result<PathBuf, SuiteError> {
    let bin = raw.join("paired").join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| SuiteError::Output {
        suite: "paired",
        detail: format!("cannot create {}: {e}", bin.display()),
    })?;
    let to = bin.join(name);
    std::fs::copy(from, &to).map_err(|e| SuiteError::Output {
        suite: "paired",
        detail: format!("cannot copy {} to {}: {e}", from.display(), to.display()),
    })?;
    Ok(to)
}

impl PairedSide {
    /// The same binaries kept again for a side of another `label`, under its raw directory
    /// `raw` (at a path of the same length when the labels are): an A/A pair of one commit
    /// (`calibrate --paired`).
    pub fn copy_as(&self, label: &str, raw: &Path) -> Result<PairedSide, SuiteError> {
        Ok(PairedSide {
            label: label.to_owned(),
            commit: self.commit.clone(),
            suite: keep(&self.suite, raw, "suite")?,
            wall_time: keep(&self.wall_time, raw, "wall_time")?,
        })
    }
}

/// The `wall_time` executable named in cargo's `--message-format=json` output.
fn wall_time_executable(cargo_json: &str) -> Option<PathBuf> {
    cargo_json
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "wall_time")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
}

/// Which side runs first in `slot` (counting from 0; a round's `n`th benchmark is at slot
/// `round + n`): base in even slots, head in odd ones.
pub fn round_order(slot: u32) -> [usize; 2] {
    if slot.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
}

/// How many rounds to measure, and what decides whether a benchmark needs more.
#[derive(Debug, Clone, Copy)]
pub struct RoundsPlan<'a> {
    /// Rounds of every selected benchmark (`--paired-rounds`).
    pub rounds: u32,
    /// The thresholds whose minimum effects the verdicts, and so the undecided rows, rest on.
    pub thresholds: &'a Thresholds,
    /// The family adjustment and the adaptive rounds' limits
    /// (`[workspace.metadata.perf.paired]`).
    pub paired: PairedConfig,
    /// Time only these benchmarks (metric names, `wall_time/<group>/<bench>`), whatever else
    /// the filter selects: `perf bisect --paired`'s metric, an unpaired run's far moves
    /// (`compare::far_unpaired_moves`). `None`: every benchmark the filter selects.
    pub only: Option<&'a [String]>,
}

/// What the rounds measured, and what the record should say about them.
#[derive(Debug, Default)]
pub struct Rounds {
    pub samples: PairedSamples,
    /// How many extra rounds were measured and of which benchmarks; a time limit that stopped
    /// them.
    pub notes: Vec<String>,
}

/// Seeds a database per side, runs `plan.rounds` interleaved rounds of both `wall_time`
/// binaries, then, while some benchmarks are undecided (`compare::undecided_benchmarks`),
/// more rounds of only those, a batch at a time, up to `paired.max_rounds` rounds and
/// `paired.max_extra_seconds`; returns each benchmark's per-round medians, base and head.
/// Benchmarks that are not in every run of both sides (new, removed or failed) are left out.
pub async fn run_rounds(
    ctx: &SuiteContext<'_>,
    sides: [&PairedSide; 2],
    plan: RoundsPlan<'_>,
) -> Result<Rounds, SuiteError> {
    let filter = tool_filter(ctx.filter, Suite::WallTime.prefix());
    if filter == ToolFilter::Skip {
        return Ok(Rounds::default());
    }
    let databases = sides.map(|side| format!("perf_{}_pair_{}", ctx.run_id, side.label));
    let mut created = Vec::new();
    let mut result = Ok(Rounds::default());
    for database in &databases {
        match create_database(ctx.services, database).await {
            Ok(()) => created.push(database),
            Err(error) => {
                result = Err(error);
                break;
            }
        }
    }
    if result.is_ok() {
        let rounds = RoundRunner::seed(ctx, sides, &databases).await;
        result = match rounds {
            Ok(runner) => runner.run(filter.criterion_regex(), plan).await,
            Err(error) => Err(error),
        };
    }
    for database in created {
        let dropped = drop_database(ctx.services, database).await;
        if result.is_ok() {
            dropped?;
        }
    }
    result
}

/// How long one round of one benchmark (both sides) has taken so far: what the adaptive rounds
/// estimate a batch by, so that no batch starts that would pass `paired.max_extra_seconds`.
#[derive(Debug, Default, Clone, Copy)]
struct Pace {
    seconds: f64,
    benchmark_rounds: f64,
}

impl Pace {
    fn add(&mut self, took: std::time::Duration, rounds: u32, benchmarks: usize) {
        self.seconds += took.as_secs_f64();
        self.benchmark_rounds += f64::from(rounds) * benchmarks as f64;
    }

    /// The time `rounds` rounds of `benchmarks` benchmarks should take (zero before any).
    fn estimate(&self, rounds: u32, benchmarks: usize) -> std::time::Duration {
        if self.benchmark_rounds <= 0.0 {
            return std::time::Duration::ZERO;
        }
        let per = self.seconds / self.benchmark_rounds;
        std::time::Duration::from_secs_f64(per * f64::from(rounds) * benchmarks as f64)
    }
}

/// Both sides' seeded databases, ready for rounds.
struct RoundRunner<'a> {
    ctx: &'a SuiteContext<'a>,
    sides: [&'a PairedSide; 2],
    urls: [String; 2],
    raws: [PathBuf; 2],
    redis_url: String,
    /// Why each side was timed against its own database, when they were: the record says so,
    /// since a difference between the two databases then adds to the commits'.
    database_note: Option<String>,
}

/// Per side, per run (round), each benchmark's median.
type SideMedians = [Vec<Vec<(String, f64)>>; 2];

impl<'a> RoundRunner<'a> {
    /// Seeds each side's fresh database with the side's own `suite prepare`.
    async fn seed(
        ctx: &'a SuiteContext<'a>,
        sides: [&'a PairedSide; 2],
        databases: &[String; 2],
    ) -> Result<Self, SuiteError> {
        let runner = Self {
            ctx,
            sides,
            urls: databases
                .clone()
                .map(|database| ctx.services.postgres_url(&database)),
            raws: sides.map(|side| ctx.layout.raw_dir(&side.label).join("paired")),
            redis_url: ctx.services.redis_url(),
            database_note: None,
        };
        for (index, side) in sides.iter().enumerate() {
            ctx.progress.line(&format!(
                "paired: seeding a fresh database for {}",
                side.label
            ));
            let mut prepare = runner.command(index, &side.suite, "prepare");
            prepare.args(prepare_args(&ctx.seed));
            run_tool(
                prepare,
                &format!("paired: {} suite prepare", side.label),
                &runner.raws[index].join("prepare.log"),
            )
            .await?;
        }
        runner.share_identical_database(databases).await
    }

    /// When both sides' seeded databases hold the same migrations, schema and rows, points both
    /// sides at the first, so that a benchmark's pair of samples runs against one database
    /// (`contents`' reasons); otherwise each side keeps its own.
    async fn share_identical_database(
        mut self,
        databases: &[String; 2],
    ) -> Result<Self, SuiteError> {
        let base = contents::read_database(self.ctx.services, &databases[0]).await?;
        let head = contents::read_database(self.ctx.services, &databases[1]).await?;
        match base.difference(&head) {
            None => {
                self.urls[1] = self.urls[0].clone();
                self.ctx.progress.line(
                    "paired: both seeded databases are identical (migrations, schema and rows): \
                     both sides are timed against the first",
                );
            }
            Some(difference) => {
                let note = format!(
                    "--paired: each side was timed against its own seeded database, since \
                     {difference}; a difference between the two databases adds to the commits'"
                );
                self.ctx.progress.line(&note);
                self.database_note = Some(note);
            }
        }
        Ok(self)
    }

    /// The first rounds of every benchmark `regex` selects, then the adaptive ones.
    async fn run(self, regex: Option<String>, plan: RoundsPlan<'_>) -> Result<Rounds, SuiteError> {
        let selected = match plan.only {
            Some(names) => Some(exact_names_regex(names)),
            None => regex,
        };
        let names = self.list(selected.as_deref()).await?;
        let timing = Instant::now();
        let first = self.measure(&names, 0..plan.rounds).await?;
        let mut pace = Pace::default();
        pace.add(timing.elapsed(), plan.rounds, names.len());
        let mut rounds = Rounds {
            samples: collect_samples(&first),
            notes: self.database_note.iter().cloned().collect(),
        };
        let adaptive = plan.paired.adaptive();
        let limit = std::time::Duration::from_secs(plan.paired.max_extra_seconds);
        let started = Instant::now();
        let mut next_round = plan.rounds;
        let mut extra: Vec<(String, u32)> = Vec::new();
        loop {
            let undecided = compare::undecided_benchmarks(
                &rounds.samples,
                plan.thresholds,
                plan.paired.family,
                &adaptive,
            );
            if undecided.is_empty() {
                break;
            }
            let fewest = undecided
                .iter()
                .map(|name| rounds.samples[name].base.len())
                .min()
                .unwrap_or(adaptive.max_rounds);
            let count = adaptive.batch.min(adaptive.max_rounds - fewest) as u32;
            let batch = pace.estimate(count, undecided.len());
            if started.elapsed() + batch > limit {
                rounds.notes.push(format!(
                    "--paired: {} benchmark(s) still undecided ({}): {count} more rounds (about \
                     {:.0} s) would have passed the extra rounds' time limit ({} s, \
                     paired.max_extra_seconds)",
                    undecided.len(),
                    undecided.join(", "),
                    batch.as_secs_f64(),
                    plan.paired.max_extra_seconds
                ));
                break;
            }
            self.ctx.progress.line(&format!(
                "paired: {} undecided ({}): {count} more rounds of them",
                undecided.len(),
                undecided.join(", ")
            ));
            let timing = Instant::now();
            let more = self
                .measure(&undecided, next_round..next_round + count)
                .await?;
            pace.add(timing.elapsed(), count, undecided.len());
            next_round += count;
            append_samples(&mut rounds.samples, &more, &undecided, adaptive.max_rounds);
            extra.push((undecided.join(", "), count));
        }
        if !extra.is_empty() {
            let batches: Vec<String> = extra
                .iter()
                .map(|(names, count)| format!("{count} of {names}"))
                .collect();
            rounds.notes.push(format!(
                "--paired: extra rounds of undecided benchmarks: {}",
                batches.join("; ")
            ));
        }
        Ok(rounds)
    }

    /// The benchmarks (metric names) `regex` selects (all without one) that both sides have, in
    /// head's order: criterion's `--list`, which runs nothing. A benchmark only one side has
    /// cannot be paired.
    async fn list(&self, regex: Option<&str>) -> Result<Vec<String>, SuiteError> {
        let mut listed: [Vec<String>; 2] = [Vec::new(), Vec::new()];
        for (index, side) in self.sides.iter().enumerate() {
            let mut list = self.command(index, &side.wall_time, "list");
            list.args(["--bench", "--list"]).args(regex);
            let stdout = run_tool(
                list,
                &format!("paired: {} wall_time --list", side.label),
                &self.raws[index].join("list.log"),
            )
            .await?;
            listed[index] = parse_benchmark_list(&stdout);
        }
        let [base, head] = listed;
        Ok(head
            .into_iter()
            .filter(|name| base.contains(name))
            .collect())
    }

    /// Rounds `rounds` of the benchmarks `names`, one benchmark at a time, both sides back to
    /// back ([`round_order`] of the round plus the benchmark's position).
    async fn measure(
        &self,
        names: &[String],
        rounds: std::ops::Range<u32>,
    ) -> Result<SideMedians, SuiteError> {
        let total = rounds.end;
        let mut medians: SideMedians = [Vec::new(), Vec::new()];
        for round in rounds {
            let started = Instant::now();
            let homes = self
                .raws
                .each_ref()
                .map(|raw| raw.join(format!("round-{round:02}")));
            for home in &homes {
                let _ = std::fs::remove_dir_all(home);
            }
            for (position, name) in (0u32..).zip(names) {
                for index in round_order(round + position) {
                    self.time_one(index, name, round, &homes[index]).await?;
                }
            }
            for (index, home) in homes.iter().enumerate() {
                medians[index].push(
                    wall_time::read_results(home)?
                        .into_iter()
                        .map(|metric| (metric.name, metric.value))
                        .collect(),
                );
            }
            self.ctx.progress.line(&format!(
                "paired: round {} of {total} ({} benchmark(s), each side by side) in {:.0} s",
                round + 1,
                names.len(),
                started.elapsed().as_secs_f64()
            ));
        }
        Ok(medians)
    }

    /// One short criterion run of benchmark `name` on side `index`, its results under `home`.
    async fn time_one(
        &self,
        index: usize,
        name: &str,
        round: u32,
        home: &Path,
    ) -> Result<(), SuiteError> {
        let side = self.sides[index];
        let mut bench = self.command(index, &side.wall_time, &round.to_string());
        bench
            .arg("--bench")
            .args(ROUND_CRITERION_ARGS)
            .arg(exact_names_regex(&[name.to_owned()]))
            .env("CRITERION_HOME", home);
        let id = name.strip_prefix(Suite::WallTime.prefix()).unwrap_or(name);
        run_tool(
            bench,
            &format!("paired: round {round} {} {id}", side.label),
            &self.raws[index].join(format!("round-{round:02}-{}.log", id.replace('/', "-"))),
        )
        .await?;
        Ok(())
    }

    /// A kept binary of side `index` as a child process, with the side's database, Redis and
    /// a cache namespace of this step's own.
    fn command(&self, index: usize, program: &Path, step: &str) -> tokio::process::Command {
        let side = self.sides[index];
        side_command(
            program,
            &self.raws[index],
            &self.urls[index],
            &self.redis_url,
            &format!("{}:pair:{}:{step}", self.ctx.run_id, side.label),
        )
    }
}

/// A criterion filter that selects exactly the benchmarks of these metric names
/// (`wall_time/<group>/<bench>`, criterion's id without the prefix).
fn exact_names_regex(names: &[String]) -> String {
    let ids: Vec<&str> = names
        .iter()
        .map(|name| name.strip_prefix(Suite::WallTime.prefix()).unwrap_or(name))
        .collect();
    wall_time::exact_ids_regex(&ids)
}

/// The metric names (`wall_time/<id>`) in criterion's `--list` output (`<id>: benchmark`).
fn parse_benchmark_list(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.strip_suffix(": benchmark"))
        .map(|id| format!("{}{id}", Suite::WallTime.prefix()))
        .collect()
}

/// Appends the extra rounds' medians of `names` to their samples: a round counts for a
/// benchmark only when both sides measured it, and no benchmark gets more than `max_rounds`.
fn append_samples(
    samples: &mut PairedSamples,
    more: &SideMedians,
    names: &[String],
    max_rounds: usize,
) {
    let find = |run: &[(String, f64)], name: &str| {
        run.iter().find(|(n, _)| n == name).map(|(_, value)| *value)
    };
    for name in names {
        let Some(rounds) = samples.get_mut(name) else {
            continue;
        };
        for (base_run, head_run) in more[0].iter().zip(&more[1]) {
            if rounds.base.len() >= max_rounds {
                break;
            }
            if let (Some(base), Some(head)) = (find(base_run, name), find(head_run, name)) {
                rounds.base.push(base);
                rounds.head.push(head);
            }
        }
    }
}

/// Per benchmark, its median in every round of both sides; a benchmark missing from any run is
/// left out.
fn collect_samples(medians: &SideMedians) -> PairedSamples {
    let mut samples = PairedSamples::new();
    let Some(first) = medians[0].first() else {
        return samples;
    };
    for (name, _) in first {
        let per_side = medians.each_ref().map(|runs| {
            runs.iter()
                .map(|run| run.iter().find(|(n, _)| n == name).map(|(_, v)| *v))
                .collect::<Option<Vec<f64>>>()
        });
        if let [Some(base), Some(head)] = per_side {
            samples.insert(name.clone(), RoundSamples { base, head });
        }
    }
    samples
}

/// A kept binary of one side as a child process: run in `dir`, in a process group of its own,
/// with the side's database, Redis and cache namespace.
fn side_command(
    program: &Path,
    dir: &Path,
    database_url: &str,
    redis_url: &str,
    namespace: &str,
) -> tokio::process::Command {
    let _ = std::fs::create_dir_all(dir);
    let mut command = child::command(program, dir);
    command
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url)
        .env("PERF_CACHE_NAMESPACE", namespace);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_alternate_which_side_runs_first() {
        let firsts: Vec<usize> = (0..4).map(|round| round_order(round)[0]).collect();
        assert_eq!(firsts, [0, 1, 0, 1]);
        for round in 0..4 {
            let mut order = round_order(round);
            order.sort_unstable();
            assert_eq!(order, [0, 1], "each side runs once per round");
        }
    }

    #[test]
    fn a_batch_is_estimated_from_the_time_per_benchmark_round_so_far() {
        let mut pace = Pace::default();
        assert_eq!(pace.estimate(5, 3), std::time::Duration::ZERO);
        // 10 rounds of 17 benchmarks in 510 s: 3 s per benchmark-round.
        pace.add(std::time::Duration::from_secs(510), 10, 17);
        assert_eq!(pace.estimate(5, 2), std::time::Duration::from_secs(30));
        // A faster batch pulls the pace down: 540 s over 180 benchmark-rounds.
        pace.add(std::time::Duration::from_secs(30), 5, 2);
        assert_eq!(pace.estimate(1, 1), std::time::Duration::from_secs(3));
    }

    #[test]
    fn benchmarks_are_read_from_criterions_list() {
        let stdout = "query/due_cards: benchmark\nquery/due_cards_next_page: benchmark\n\n\
                      Gnuplot not found, using plotters backend\n";
        assert_eq!(
            parse_benchmark_list(stdout),
            [
                "wall_time/query/due_cards",
                "wall_time/query/due_cards_next_page"
            ]
        );
        assert!(parse_benchmark_list("").is_empty());
    }

    #[test]
    fn the_executable_is_read_from_cargo_json_lines() {
        let lines = [
            r#"{"reason":"compiler-artifact","target":{"name":"bench_suite"},"executable":null}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"instructions"},"executable":"/t/release/deps/instructions-1"}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"wall_time"},"executable":"/t/release/deps/wall_time-2"}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            wall_time_executable(&lines),
            Some(PathBuf::from("/t/release/deps/wall_time-2"))
        );
        assert_eq!(wall_time_executable(lines.lines().next().unwrap()), None);
    }

    #[test]
    fn extra_rounds_select_exactly_the_undecided_benchmarks() {
        let names = [
            "wall_time/query/due_cards".to_owned(),
            "wall_time/import/bulk_10k".to_owned(),
        ];
        let regex = exact_names_regex(&names);
        // Anchored, so that `due_cards` does not also select `due_cards_next_page`.
        assert_eq!(regex, r"^(query/due_cards|import/bulk_10k)$");
    }

    #[test]
    fn extra_rounds_are_appended_where_both_sides_measured_them_up_to_the_limit() {
        let run = |pairs: &[(&str, f64)]| -> Vec<(String, f64)> {
            pairs.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect()
        };
        let mut samples = PairedSamples::from([
            (
                "wall_time/a".to_owned(),
                RoundSamples {
                    base: vec![1.0; 10],
                    head: vec![1.1; 10],
                },
            ),
            (
                "wall_time/b".to_owned(),
                RoundSamples {
                    base: vec![2.0; 19],
                    head: vec![2.2; 19],
                },
            ),
        ]);
        let more = [
            vec![
                run(&[("wall_time/a", 1.01), ("wall_time/b", 2.01)]),
                run(&[("wall_time/a", 1.02), ("wall_time/b", 2.02)]),
                run(&[("wall_time/a", 1.03)]),
            ],
            vec![
                run(&[("wall_time/a", 1.11), ("wall_time/b", 2.21)]),
                run(&[("wall_time/b", 2.22)]),
                run(&[("wall_time/a", 1.13)]),
            ],
        ];
        let names = ["wall_time/a".to_owned(), "wall_time/b".to_owned()];
        append_samples(&mut samples, &more, &names, 20);
        // a: rounds 0 and 2 (head missed it in round 1); b: only up to 20 rounds.
        assert_eq!(samples["wall_time/a"].base[10..], [1.01, 1.03]);
        assert_eq!(samples["wall_time/a"].head[10..], [1.11, 1.13]);
        assert_eq!(samples["wall_time/b"].base.len(), 20);
        assert_eq!(samples["wall_time/b"].head[19], 2.21);
    }

    #[test]
    fn only_benchmarks_measured_in_every_run_of_both_sides_are_paired() {
        let run = |pairs: &[(&str, f64)]| -> Vec<(String, f64)> {
            pairs.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect()
        };
        let medians = [
            vec![
                run(&[("wall_time/a", 1.0), ("wall_time/b", 2.0)]),
                run(&[("wall_time/a", 1.1), ("wall_time/b", 2.1)]),
            ],
            vec![
                run(&[("wall_time/a", 1.5), ("wall_time/b", 2.5)]),
                // b failed to report in head's second run.
                run(&[("wall_time/a", 1.6)]),
            ],
        ];
        let samples = collect_samples(&medians);
        assert_eq!(samples.keys().collect::<Vec<_>>(), ["wall_time/a"]);
        assert_eq!(samples["wall_time/a"].base, [1.0, 1.1]);
        assert_eq!(samples["wall_time/a"].head, [1.5, 1.6]);
    }
}
