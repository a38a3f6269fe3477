//! `cargo xtask perf baseline ...`: what maintainers do with the baseline branch (list, show,
//! fetch, push, add a run's record, prune), each one call into `store` and a few lines of
//! output. No measuring and no services here.

use std::path::Path;

use anyhow::{Context, Result};

use crate::baseline::GitRepo;
use crate::config;
use crate::exit::Outcome;
use crate::fingerprint;
use crate::flags::BaselineCommand;
use crate::record;
use crate::store::{BaselineStore, FetchOutcome, PushResult, PutOutcome};
use crate::workspace::Layout;

/// Runs one baseline command in the workspace of `layout`.
pub fn run(command: &BaselineCommand, layout: &Layout) -> Result<Outcome> {
    let metadata = config::read_metadata(&layout.root)?;
    let store = BaselineStore::open(&layout.root, &metadata.baseline_branch)?;
    match command {
        BaselineCommand::List => {
            let entries = store.list()?;
            if entries.is_empty() {
                println!("no records on {}", store.branch());
            }
            for entry in entries {
                println!(
                    "{}  {}  {} bytes",
                    entry.machine_class, entry.commit, entry.size
                );
            }
        }
        BaselineCommand::Show { rev, machine_class } => {
            let commit = GitRepo::open(&layout.root)?.resolve(rev)?;
            let machine_class = machine_class
                .clone()
                .unwrap_or_else(|| fingerprint::machine_class(&metadata));
            let record = store.get(&machine_class, &commit)?.with_context(|| {
                format!(
                    "no record of {commit} for machine class {machine_class} on {}.\n  fix: `cargo xtask perf baseline list` shows what is stored; `baseline fetch` gets the remote's records",
                    store.branch()
                )
            })?;
            println!("{}", serde_json::to_string_pretty(&record)?);
        }
        BaselineCommand::Fetch { remote } => match store.fetch(remote)? {
            FetchOutcome::NothingToFetch => {
                println!(
                    "{remote} has no {} branch: nothing to fetch",
                    store.branch()
                )
            }
            FetchOutcome::UpToDate => println!("{} is up to date with {remote}", store.branch()),
            FetchOutcome::FastForwarded { store_commit } => {
                println!("{} fast-forwarded to {store_commit}", store.branch())
            }
            FetchOutcome::Merged {
                store_commit,
                replaced_by_remote,
            } => {
                println!("{} merged with {remote} at {store_commit}", store.branch());
                for path in replaced_by_remote {
                    println!("  {path}: {remote}'s record kept");
                }
            }
        },
        BaselineCommand::Push { remote } => {
            let outcome = store.push(remote)?;
            match outcome.result {
                PushResult::Pushed { store_commit } => println!(
                    "pushed {} to {remote} at {store_commit} ({} attempt{})",
                    store.branch(),
                    outcome.attempts,
                    if outcome.attempts == 1 { "" } else { "s" }
                ),
                PushResult::AlreadyUpToDate => {
                    println!("{remote} already has {}", store.branch())
                }
                PushResult::NothingToPush => {
                    println!("no local {} branch: nothing to push", store.branch())
                }
            }
            for path in outcome.replaced_by_remote {
                println!("  {path}: {remote}'s record kept");
            }
        }
        BaselineCommand::Add { file } => {
            let record = read_record_file(file)?;
            print_put_outcome(&store, store.put(&record)?);
        }
        BaselineCommand::Record { .. } => {
            unreachable!("`baseline record` measures, so perf::run handles it")
        }
        BaselineCommand::Prune { keep } => {
            let outcome = store.prune(*keep)?;
            for entry in outcome.removed.iter().chain(&outcome.removed_unreadable) {
                println!("removed {}", entry.path());
            }
            println!(
                "{} records kept, {} removed",
                outcome.kept,
                outcome.removed.len() + outcome.removed_unreadable.len()
            );
        }
    }
    Ok(Outcome::Success)
}

/// Says what storing a record did.
pub fn print_put_outcome(store: &BaselineStore, outcome: PutOutcome) {
    match outcome {
        PutOutcome::Stored { path, store_commit } => {
            println!("stored {path} on {} at {store_commit}", store.branch())
        }
        PutOutcome::Replaced { path, store_commit } => println!(
            "replaced {path} on {} at {store_commit} (a re-measurement)",
            store.branch()
        ),
        PutOutcome::AlreadyStored { path } => {
            println!("{path} is already stored on {}", store.branch())
        }
    }
}

fn read_record_file(file: &Path) -> Result<record::RunRecord> {
    record::read_record(file)?.with_context(|| {
        format!(
            "no record file at {}.\n  fix: pass a file from a run's `runs/` directory (default target/perf/runs/<sha>.json)",
            file.display()
        )
    })
}
