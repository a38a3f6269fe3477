//! `cargo xtask perf history`: reads the stored records of a revision and its first parents
//! (`baseline::Lineage`, one machine class, only those measured like the newest), finds the
//! persistent shifts and plan shape changes in them (`history::find_shifts`, pure) and prints
//! them. Always a success when the history could be read: the history informs, the per-PR
//! gate fails builds.

use anyhow::{Result, bail};

use crate::baseline::{BaselineError, BaselineStore, GitRepo, Lineage};
use crate::config::Config;
use crate::exit::Outcome;
use crate::flags::HistoryFlags;
use crate::history::{find_shifts, render_history};
use crate::render::short_sha;
use crate::shutdown::Shutdown;
use crate::stats::ChangePointOptions;

/// Reads the history and prints what it holds (on a blocking thread, stopped by a signal).
pub async fn run(
    config: &Config,
    flags: &HistoryFlags,
    shutdown: &mut Shutdown,
) -> Result<Outcome> {
    let (config, flags) = (config.clone(), flags.clone());
    shutdown
        .until_stopped_blocking("history", move || print_history(&config, &flags))
        .await
}

fn print_history(config: &Config, flags: &HistoryFlags) -> Result<Outcome> {
    let metadata = &config.metadata;
    let repo = GitRepo::open(&config.layout.root)?;
    let store = BaselineStore::open(&config.layout.root, &metadata.baseline_branch)?;
    let rev = flags
        .rev
        .clone()
        .unwrap_or_else(|| metadata.target_branch.clone());
    let tip = match repo.resolve(&rev) {
        Ok(tip) => tip,
        Err(BaselineError::UnknownRevision { detail, .. }) => bail!(
            "--rev {rev:?} does not name a commit in this repository ({detail}).\n  fix: pass a branch, tag or sha (default: the target branch, `{}`; fetch it first if it is remote)",
            metadata.target_branch
        ),
        Err(error) => return Err(error.into()),
    };
    let machine_class = flags
        .machine_class
        .clone()
        .unwrap_or_else(|| config.machine_class.clone());
    let mut lineage = Lineage::read(&repo, &store, &tip, flags.depth, &machine_class)?;
    // Only records measured like the newest one: a new toolchain or server version shifts
    // counts without any commit being to blame.
    if let Some(newest) = lineage.records.last().map(|r| r.environment.clone()) {
        lineage.keep_comparable_with(&newest, "the newest record");
    }
    let records: Vec<_> = lineage
        .records
        .into_iter()
        .map(|record| {
            let subject = repo.subject(&record.commit).unwrap_or_default();
            (record, subject)
        })
        .collect();
    let options = ChangePointOptions {
        min_segment_len: flags.min_segment,
        min_shift_pct: flags.min_shift_pct,
        ..ChangePointOptions::default()
    };
    let findings = find_shifts(&records, flags.metric.as_deref(), &options);
    let source = format!(
        "the last {} first-parent commits of {rev} ({}), machine class {machine_class}, on {}",
        lineage.commits.len(),
        short_sha(&tip),
        store.branch()
    );
    print!(
        "{}",
        render_history(&findings, &source, &options, &lineage.left_out)
    );
    Ok(Outcome::Success)
}
