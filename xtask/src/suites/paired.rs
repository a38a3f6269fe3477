//! Paired wall time (`--paired`): base and head timed side by side in one job, so that the
//! paired test (`stats::paired_test`, called by `compare`) can judge wall time at all.
//!
//! While a side is measured, its `suite` and `wall_time` binaries are copied to
//! `<out>/raw/<side>/paired/bin/` ([`keep_binaries`]): the base's worktree is removed after its
//! measurement, and both copies then sit at paths of the same length (a binary's path length
//! moves what its allocator does first). Once both sides are measured, [`run_rounds`] gives each
//! a freshly seeded database of its own (the measured ones were dirtied by the load suite and
//! dropped) and runs the two `wall_time` binaries in interleaved rounds: base first in even
//! rounds and head first in odd ones (ABBA), so that neither side always runs on the warmer or
//! the quieter machine. Each run is a short criterion run; its per-benchmark median is that
//! round's sample. Both databases are dropped whatever happened.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::compare::{PairedSamples, RoundSamples};
use crate::record::Suite;

use super::child::{self, run_tool};
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
    let bin = raw.join("paired").join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| SuiteError::Output {
        suite: "paired",
        detail: format!("cannot create {}: {e}", bin.display()),
    })?;
    let copy = |from: &Path, name: &str| -> Result<PathBuf, SuiteError> {
        let to = bin.join(name);
        std::fs::copy(from, &to).map_err(|e| SuiteError::Output {
            suite: "paired",
            detail: format!("cannot copy {} to {}: {e}", from.display(), to.display()),
        })?;
        Ok(to)
    };
    Ok(PairedSide {
        label: checkout.label.to_owned(),
        commit: checkout.commit.to_owned(),
        suite: copy(&checkout.target_dir.join("release").join("suite"), "suite")?,
        wall_time: copy(&built, "wall_time")?,
    })
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

/// Which side runs first in `round` (counting from 0): base in even rounds, head in odd ones.
pub fn round_order(round: u32) -> [usize; 2] {
    if round.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
}

/// Seeds a database per side, runs `rounds` interleaved rounds of both `wall_time` binaries
/// and returns each benchmark's per-round medians, base and head. Benchmarks that are not in
/// every run of both sides (new, removed or failed) are left out.
pub async fn run_rounds(
    ctx: &SuiteContext<'_>,
    sides: [&PairedSide; 2],
    rounds: u32,
) -> Result<PairedSamples, SuiteError> {
    let filter = tool_filter(ctx.filter, Suite::WallTime.prefix());
    if filter == ToolFilter::Skip {
        return Ok(PairedSamples::new());
    }
    let databases = sides.map(|side| format!("perf_{}_pair_{}", ctx.run_id, side.label));
    let mut created = Vec::new();
    let mut result = Ok(PairedSamples::new());
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
        result = seed_and_run(ctx, sides, &databases, filter.pattern(), rounds).await;
    }
    for database in created {
        let dropped = drop_database(ctx.services, database).await;
        if result.is_ok() {
            dropped?;
        }
    }
    result
}

async fn seed_and_run(
    ctx: &SuiteContext<'_>,
    sides: [&PairedSide; 2],
    databases: &[String; 2],
    pattern: Option<&str>,
    rounds: u32,
) -> Result<PairedSamples, SuiteError> {
    let redis_url = ctx.services.redis_url();
    let urls = databases
        .clone()
        .map(|database| ctx.services.postgres_url(&database));
    let raws = sides.map(|side| ctx.layout.raw_dir(&side.label).join("paired"));
    for (index, side) in sides.iter().enumerate() {
        ctx.progress.line(&format!(
            "paired: seeding a fresh database for {}",
            side.label
        ));
        let mut prepare = side_command(
            &side.suite,
            &raws[index],
            &urls[index],
            &redis_url,
            &format!("{}:pair:{}:prepare", ctx.run_id, side.label),
        );
        prepare.args(prepare_args(&ctx.seed));
        run_tool(
            prepare,
            &format!("paired: {} suite prepare", side.label),
            &raws[index].join("prepare.log"),
        )
        .await?;
    }

    let mut medians: [Vec<Vec<(String, f64)>>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let started = Instant::now();
        for index in round_order(round) {
            let side = sides[index];
            let home = raws[index].join(format!("round-{round:02}"));
            let _ = std::fs::remove_dir_all(&home);
            let mut bench = side_command(
                &side.wall_time,
                &raws[index],
                &urls[index],
                &redis_url,
                &format!("{}:pair:{}:{round}", ctx.run_id, side.label),
            );
            bench
                .arg("--bench")
                .args(ROUND_CRITERION_ARGS)
                .args(pattern.map(wall_time::regex_escape))
                .env("CRITERION_HOME", &home);
            run_tool(
                bench,
                &format!("paired: round {round} {}", side.label),
                &raws[index].join(format!("round-{round:02}.log")),
            )
            .await?;
            medians[index].push(
                wall_time::read_results(&home)?
                    .into_iter()
                    .map(|metric| (metric.name, metric.value))
                    .collect(),
            );
        }
        ctx.progress.line(&format!(
            "paired: round {} of {rounds} ({} first) in {:.0} s",
            round + 1,
            sides[round_order(round)[0]].label,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(collect_samples(&medians))
}

/// Per benchmark, its median in every round of both sides; a benchmark missing from any run is
/// left out.
fn collect_samples(medians: &[Vec<Vec<(String, f64)>>; 2]) -> PairedSamples {
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
