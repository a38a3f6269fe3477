//! Command-line flags of `cargo xtask`, as plain structs (clap derive). No behaviour here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::provision::ServicesMode;

/// The project's task runner.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
pub struct Xtask {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start Postgres and Redis, run the benchmarks, compare with the baseline, report.
    ///
    /// Exit codes: 0 no regression, 1 regression found, 2 harness or usage error.
    Perf(Box<PerfFlags>),
    /// Install what this machine lacks for `cargo xtask perf` (which does the same when it
    /// needs to): the native servers and valgrind from the system's packages when running as
    /// root with apt-get (only when no Docker engine with the images can serve), and
    /// gungraun-runner at the Cargo.lock version into the harness's own directory
    /// (`PERF_TOOLS_DIR`, default `~/.cache/perf-harness`). Idempotent.
    ///
    /// Exit codes: 0 ready, 2 something is missing that it cannot install (the message gives
    /// the command).
    Setup(SetupFlags),
}

/// How a command that measures measures: declared once, flattened into `perf`, `calibrate`
/// and `baseline record`.
#[derive(Debug, Clone, Args)]
pub struct MeasureFlags {
    /// Shorter wall-time measurement (for PRs and laptops); deterministic suites are unchanged.
    #[arg(long)]
    pub quick: bool,

    /// How Postgres and Redis are provided.
    #[arg(long, value_enum, default_value_t = ServicesMode::Auto)]
    pub services: ServicesMode,
}

/// What a run measures and where its outputs go: declared once, flattened into `perf` and
/// `calibrate`.
#[derive(Debug, Clone, Args)]
pub struct SelectFlags {
    /// Only benchmarks and scenarios whose name contains this text.
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,

    /// Where records (`runs/`), reports and `calibration.json` go. Default: `target/perf`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `cargo xtask setup`.
#[derive(Debug, Clone, Args)]
pub struct SetupFlags {
    /// How Postgres and Redis will be provided (as `perf --services`).
    #[arg(long, value_enum, default_value_t = ServicesMode::Auto)]
    pub services: ServicesMode,
}

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PerfFlags {
    /// Keep the target branch's records (default: measure and report).
    #[command(subcommand)]
    pub action: Option<PerfAction>,

    #[command(flatten)]
    pub measure: MeasureFlags,

    /// The revision to compare with (any git revision; `none` to skip the comparison).
    /// Default: the merge-base with the target branch (its first parent when HEAD is on it
    /// and clean). A stored comparable record is used when there is one; otherwise the
    /// revision is built and measured in a git worktree in this run.
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,

    #[command(flatten)]
    pub select: SelectFlags,

    /// List the benchmarks and scenarios (as `--filter` selects them) and exit: builds
    /// `bench-suite`, starts no server, measures nothing.
    #[arg(long)]
    pub list: bool,

    /// Accept this run's regressions and broken budgets as intended: the exit code says
    /// success, and the record and the report say who accepted them and why.
    #[arg(long, value_name = "REASON")]
    pub accept: Option<String>,

    /// Who accepts (with --accept): a name or login, recorded with the reason. Default: git's
    /// `user.name`. In GitHub Actions, pass the labeller (`github.event.sender.login` of the
    /// `labeled` event), not `GITHUB_ACTOR`.
    #[arg(long, value_name = "NAME", requires = "accept")]
    pub accepted_by: Option<String>,

    /// Judge wall time: measure the base in this job (never from a stored record), then time
    /// base and head side by side in interleaved rounds (each benchmark on both sides back to
    /// back, in ABBA order), and let the paired test decide each wall-time benchmark: a
    /// regression when significantly slower by more than `thresholds.wall_time_pct` (default
    /// 5%). Without it, wall time is shown for information only. Each round runs every selected
    /// wall-time benchmark of both sides for about 1.5 s.
    #[arg(long)]
    pub paired: bool,

    /// How many interleaved rounds `--paired` measures (at least 6: with fewer, the test at
    /// alpha 0.05 could never find a change).
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::suites::paired::DEFAULT_ROUNDS,
        value_parser = clap::value_parser!(u32).range(6..=100),
        requires = "paired"
    )]
    pub paired_rounds: u32,

    /// Measure one part of the selection: the k-th of n shards (e.g. `2/3`), for a run split
    /// over several machines (a GitHub Actions matrix). Every shard lists the same selection
    /// and splits it the same way, balanced by the base record's measuring times (else an
    /// estimate per suite). A shard's record holds its part (`shard` in the record), goes
    /// under `<out>/filtered/` and is never a baseline alone: `perf merge` makes the commit's
    /// record from every shard's.
    #[arg(long, value_name = "K/N", conflicts_with = "list")]
    pub shard: Option<crate::shard::ShardSpec>,

    /// Judge, report and publish a record measured earlier instead of measuring: the merged
    /// record of a sharded run (`perf merge`), so that one job gates and comments once. Its
    /// commit must be HEAD's; its base is chosen as usual and must have a comparable record
    /// (the baseline branch, or the runs directory where `perf merge` put the shards' parts of
    /// the base). Starts no service.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["shard", "list", "paired"])]
    pub from_record: Option<PathBuf>,

    /// With --from-record: the base's record to compare with (the merge of the shards' parts of
    /// the base, `perf merge <shard out>/filtered/base/*.json`), instead of looking one up. It
    /// must be comparable (same machine class, toolchain, service versions, configuration).
    /// With --from-record, `--filter` says the records are of a filtered run.
    #[arg(long, value_name = "FILE", requires = "from_record")]
    pub base_record: Option<PathBuf>,

    /// CI mode: no colours, the Markdown report is appended to `GITHUB_STEP_SUMMARY` and, in a
    /// workflow run by a pull request, published as its sticky comment (as `perf publish`; a
    /// comment that cannot be published is a warning, never a change of the exit code).
    #[arg(long)]
    pub ci: bool,

    /// Print every row of the comparison on the terminal, not only the regressions and
    /// improvements and a line per suite (`--ci` always prints every row, for logs).
    #[arg(long)]
    pub verbose: bool,
}

/// What `cargo xtask perf` does besides measuring.
#[derive(Debug, Clone, Subcommand)]
pub enum PerfAction {
    /// The baseline branch: records of the target branch per (machine class, commit), kept in a
    /// git branch of this repository (see baselines/README.md).
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Persistent shifts in the target branch's stored records (change points), which a
    /// per-PR threshold lets through one small step at a time, and plan shape changes.
    History(HistoryFlags),
    /// Repeated A/A runs of HEAD on one set of services: the false-alarm rate of every metric
    /// under the configured verdict rules, and how far each moved. Exit 1 when any metric
    /// alarmed, with the threshold that would quiet it.
    Calibrate(CalibrateFlags),
    /// The first commit on the first-parent path from --good to --bad where a deterministic
    /// metric (an instruction, SQL, row or Redis count) crosses its threshold. Uses stored
    /// records where they exist (the baseline branch, the runs directory, filtered runs,
    /// earlier bisections)
    /// and measures only the commits it must, each in a worktree and only the metric's
    /// scenario or benchmark; each measured commit's record is kept in `<out>/bisect/`, so a
    /// second bisection is instant.
    ///
    /// Exit codes: 0 found, 2 a harness or usage error (a bad revision or metric, ends that
    /// do not differ beyond the threshold, a wall-time metric).
    Bisect(BisectFlags),
    /// One record of a commit from the records of its shards (`perf --shard k/n`): checks that
    /// they are of one commit, one machine class and one partition, that no shard is missing or
    /// given twice and that together they cover the partition, then writes the merged record to
    /// `<out>/runs/<sha>.json` (a whole run's record, a baseline candidate like any other;
    /// `<out>/filtered/` when the shards split a `--filter` run).
    ///
    /// Exit codes: 0 merged, 2 a record that cannot be read or the shards do not make one run
    /// (the message names the record and the fix; nothing is written).
    Merge(MergeFlags),
    /// Publish a run's report: append it to the job summary (`GITHUB_STEP_SUMMARY`) and
    /// create, or update in place, ONE comment on the pull request (found by a hidden marker).
    /// Reads `GITHUB_TOKEN`, `GITHUB_REPOSITORY`, `GITHUB_API_URL` (default
    /// https://api.github.com) and, without --pr, the event at `GITHUB_EVENT_PATH`. Retries
    /// server errors and rate limits with exponential backoff (4 attempts).
    ///
    /// Exit codes: 0 the comment was created or updated, or the token may not comment (a pull
    /// request from a fork): then a warning, and the comment is saved in `<report>/comment/`
    /// for `--from-artifact` (the perf verdict is the run's exit code, not publishing's);
    /// 2 a missing or bad input (report, artifact, environment variable) or GitHub still
    /// failing after the last attempt. Never 1.
    Publish(PublishFlags),
}

/// `cargo xtask perf publish`.
#[derive(Debug, Clone, Args)]
pub struct PublishFlags {
    /// The run's output directory, which holds `report.md` (as `--out`). Default: `target/perf`.
    #[arg(long, value_name = "DIR", conflicts_with = "from_artifact")]
    pub report: Option<PathBuf>,
    /// The pull request to comment on. Default: the event's (`GITHUB_EVENT_PATH`); with
    /// --from-artifact, the artifact's (and it must match).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub pr: Option<u64>,
    /// Post the comment a publication saved because its token could not (`<report>/comment/`,
    /// downloaded as an artifact). For a `workflow_run` workflow, which never runs the pull
    /// request's code: this reads the two files and nothing else.
    #[arg(long, value_name = "DIR")]
    pub from_artifact: Option<PathBuf>,
}

/// `cargo xtask perf merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeFlags {
    /// Every shard's record (`<out>/filtered/<sha>.json` of each `perf --shard k/n` run).
    #[arg(value_name = "RECORD", required = true)]
    pub records: Vec<PathBuf>,
    /// Where the merged record goes (`<DIR>/runs/<sha>.json`). Default: `target/perf`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `cargo xtask perf bisect`.
#[derive(Debug, Clone, Args)]
pub struct BisectFlags {
    /// The metric's full name, as the report and `perf --list` show it.
    #[arg(long, value_name = "NAME")]
    pub metric: String,
    /// A commit where the metric is as before (default: the record before the latest change
    /// point of the metric in `perf history`).
    #[arg(long, value_name = "REV")]
    pub good: Option<String>,
    /// A commit where it crossed (default: the first record after that change point).
    #[arg(long, value_name = "REV")]
    pub bad: Option<String>,
    /// How many first-parent commits of the target branch `history` reads for the defaults,
    /// and the longest path from --good to --bad.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub depth: u32,
    /// Bisect a wall-time metric: measure the good end once, then time each commit the search
    /// looks at side by side with it (interleaved rounds, as `perf --paired`) and let the
    /// paired test say whether it crossed. Without it, wall time is refused: one measurement
    /// per commit cannot place it.
    #[arg(long)]
    pub paired: bool,
    /// How many interleaved rounds each `--paired` step measures.
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::suites::paired::DEFAULT_ROUNDS,
        value_parser = clap::value_parser!(u32).range(6..=100),
        requires = "paired"
    )]
    pub paired_rounds: u32,
    /// How Postgres and Redis are provided when a commit must be measured.
    #[arg(long, value_enum, default_value_t = ServicesMode::Auto)]
    pub services: ServicesMode,
    /// Where measured commits' records go (`bisect/`). Default: `target/perf`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `cargo xtask perf calibrate`.
#[derive(Debug, Clone, Args)]
pub struct CalibrateFlags {
    /// How many times HEAD is measured (at least 2; each run is compared with the one before).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=100))]
    pub runs: u32,
    /// Paired A/A runs instead: HEAD is built once and timed against itself in interleaved
    /// rounds (as `perf --paired` times base and head, adaptive rounds included) --runs times;
    /// each run's wall-time rows are judged as one family, and the runs with any false alarm
    /// and the false alarms per metric are reported (`calibration-paired.json`).
    #[arg(long)]
    pub paired: bool,
    /// First rounds of each paired run (with --paired).
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::suites::paired::DEFAULT_ROUNDS,
        value_parser = clap::value_parser!(u32).range(6..=100),
        requires = "paired"
    )]
    pub paired_rounds: u32,
    #[command(flatten)]
    pub measure: MeasureFlags,
    #[command(flatten)]
    pub select: SelectFlags,
}

/// `cargo xtask perf history`.
#[derive(Debug, Clone, Args)]
pub struct HistoryFlags {
    /// The newest commit of the history (default: the target branch).
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// How many first-parent commits, back from --rev, are read.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub depth: u32,
    /// Only metrics whose name contains this text.
    #[arg(long, value_name = "PATTERN")]
    pub metric: Option<String>,
    /// Whose records (default: this machine's class).
    #[arg(long, value_name = "CLASS")]
    pub machine_class: Option<String>,
    /// The fewest records on each side of a shift.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub min_segment: usize,
    /// The smallest shift reported, in percent.
    #[arg(long, value_name = "PCT", default_value_t = 0.5)]
    pub min_shift_pct: f64,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BaselineCommand {
    /// List the stored records: machine class, commit, size.
    List,
    /// Print the stored record of a revision, of this machine's class unless given.
    Show {
        /// Any git revision (branch, tag, sha).
        rev: String,
        /// The machine class whose record to show (default: this machine's).
        #[arg(long, value_name = "CLASS")]
        machine_class: Option<String>,
    },
    /// Fetch the remote's baseline branch and merge it into the local one.
    Fetch {
        /// A remote's name, path or URL.
        #[arg(long, default_value = "origin")]
        remote: String,
    },
    /// Push the local baseline branch; when another push won a race, fetch, merge and retry.
    Push {
        /// A remote's name, path or URL.
        #[arg(long, default_value = "origin")]
        remote: String,
    },
    /// Store a run's record file (from `<out>/runs/`) in the baseline branch. A record of a
    /// dirty work tree is refused.
    Add {
        /// The record file.
        file: PathBuf,
    },
    /// Measure a revision in a git worktree (services started as for a run) and store its
    /// record on the baseline branch, and in `target/perf/runs/`. For maintainers filling the
    /// target branch's history; a re-measurement replaces the stored record.
    Record {
        /// Any git revision (branch, tag, sha) of the target branch.
        rev: String,
        #[command(flatten)]
        measure: MeasureFlags,
    },
    /// Keep the newest records of each machine class, remove the others (one commit).
    Prune {
        /// How many records to keep per machine class.
        #[arg(long, value_name = "N")]
        keep: usize,
    },
}
