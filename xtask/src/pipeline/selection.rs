//! A selection (`--filter`, or the configured `suites`) checked before any service starts: one
//! that selects nothing would measure nothing and pass the gate, so it is refused with the
//! names to choose from. The check lists what the selection selects, which builds HEAD; its
//! time is a phase of the run.

use anyhow::{Result, bail};

use crate::config::Config;
use crate::progress::Progress;
use crate::record::Phase;
use crate::shutdown::Shutdown;
use crate::suites;

/// Refuses a selection that selects nothing (`None`: everything); the names it selects (as
/// `--list` prints them) and the phase of its listing.
pub async fn check(
    config: &Config,
    filter: Option<&str>,
    selection: Option<&str>,
    progress: &Progress,
    shutdown: &mut Shutdown,
) -> Result<(Vec<String>, Phase)> {
    progress.line(&format!(
        "list: what {} selects",
        selection.map_or_else(|| "the whole run".to_owned(), |s| format!("{s:?}"))
    ));
    let started = std::time::Instant::now();
    let listed = shutdown
        .until_interrupted(suites::listing::list(&config.layout, selection, progress))
        .await?;
    if listed.is_empty() {
        bail!(
            "{} selects no benchmark, scenario or plan: nothing would be measured.\n  fix: run `cargo xtask perf --list` to see the names, and correct the selection",
            config.describe_selection(filter)
        );
    }
    // Listing builds HEAD (the measuring build then finds it done): a phase of its own, so
    // that the time line shows where the build went.
    let phase = Phase {
        name: "list: build and list".to_owned(),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((listed.into_iter().map(|entry| entry.name).collect(), phase))
}
