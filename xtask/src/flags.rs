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
    Perf(PerfFlags),
}

#[derive(Debug, Clone, Args)]
pub struct PerfFlags {
    /// Shorter wall-time measurement (for PRs and laptops); deterministic suites are unchanged.
    #[arg(long)]
    pub quick: bool,

    /// How Postgres and Redis are provided.
    #[arg(long, value_enum, default_value_t = ServicesMode::Auto)]
    pub services: ServicesMode,

    /// The revision to compare with (any git revision; `none` to skip the comparison).
    /// Default: the merge-base with the target branch (its first parent when HEAD is on it
    /// and clean). A stored comparable record is used when there is one; otherwise the
    /// revision is built and measured in a git worktree in this run.
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,

    /// Only benchmarks and scenarios whose name contains this text.
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,

    /// List the benchmarks and scenarios (as `--filter` selects them) and exit: builds
    /// `bench-suite`, starts no server, measures nothing.
    #[arg(long)]
    pub list: bool,

    /// Where records (`runs/`) and reports go. Default: `target/perf`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// CI mode: no colours, the Markdown report is appended to `GITHUB_STEP_SUMMARY`.
    #[arg(long)]
    pub ci: bool,
}
