//! `cargo xtask perf --list`: the benchmarks, scenarios and plans a selection selects, from
//! each tool's own listing. Builds `bench-suite`, starts no server, measures nothing.

use anyhow::{Result, bail};

use crate::config::Config;
use crate::exit::Outcome;
use crate::flags::PerfFlags;
use crate::progress::{Progress, ProgressStyleChoice};
use crate::shutdown::Shutdown;
use crate::suites;

/// Prints what `--filter` (else the configured `suites`) selects; an error when nothing.
pub async fn run(config: &Config, flags: &PerfFlags, shutdown: &mut Shutdown) -> Result<Outcome> {
    let progress = Progress::with_style(ProgressStyleChoice::detect(flags.ci));
    let filter = flags.select.filter.as_deref();
    let selection = config.selection(filter);
    progress.line("list: building bench-suite to ask its tools for their benchmarks");
    let listed = shutdown
        .until_stopped(suites::listing::list(
            &config.layout,
            selection.as_deref(),
            &progress,
        ))
        .await?;
    progress.finish();
    if listed.is_empty() {
        bail!(
            "{} selects no benchmark or scenario.\n  fix: run `cargo xtask perf --list` to see the names",
            config.describe_selection(filter)
        );
    }
    print!("{}", suites::listing::render(&listed));
    Ok(Outcome::Success)
}
