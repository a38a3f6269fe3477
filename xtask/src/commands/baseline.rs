//! `cargo xtask perf baseline ...`: what maintainers do with the baseline branch (list, show,
//! fetch, push, add a run's record, prune), each one call into `store` and a few lines of
//! output; and `baseline record`, which measures a revision (services started as for a run)
//! and stores its record.

use std::path::Path;

use anyhow::{Context, Result};

use crate::baseline::store::{FetchOutcome, PushResult, PutOutcome};
use crate::baseline::{BaselineStore, GitRepo};
use crate::config::Config;
use crate::exit::Outcome;
use crate::flags::{BaselineCommand, MeasureFlags};
use crate::pipeline::collect::{self, Measuring};
use crate::pipeline::services;
use crate::progress::{Progress, ProgressStyleChoice};
use crate::record::{self, RunRecord};
use crate::render::short_sha;
use crate::shutdown::Shutdown;

/// Runs one baseline command; every one listens for SIGINT and SIGTERM (a push to a remote
/// that hangs, a lock wait).
pub async fn run(
    config: &Config,
    command: &BaselineCommand,
    shutdown: &mut Shutdown,
) -> Result<Outcome> {
    if let BaselineCommand::Record { rev, measure } = command {
        return record_revision(config, rev, measure, shutdown).await;
    }
    let (command, config) = (command.clone(), config.clone());
    shutdown
        .until_stopped_blocking("baseline", move || keep(&config, &command))
        .await
}

/// The commands that keep records (every one but `record`): one store call each.
fn keep(config: &Config, command: &BaselineCommand) -> Result<Outcome> {
    let (layout, metadata) = (&config.layout, &config.metadata);
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
                .unwrap_or_else(|| config.machine_class.clone());
            let record = store.get(&machine_class, &commit)?.with_context(|| {
                format!(
                    "no record of {commit} for machine class {machine_class} on {}.\n  fix: `cargo xtask perf baseline list` shows what is stored; `baseline fetch` gets the remote's records",
                    store.branch()
                )
            })?;
            println!("{}", serde_json::to_string_pretty(&record)?);
        }
        BaselineCommand::Fetch { remote } => fetch(&store, remote)?,
        BaselineCommand::Push { remote } => push(&store, remote)?,
        BaselineCommand::Add { file } => {
            let record = read_record_file(file)?;
            print_put_outcome(&store, store.put(&record)?);
        }
        BaselineCommand::Record { .. } => {
            unreachable!("`baseline record` measures: `run` handles it")
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

/// `baseline fetch`: the remote's branch merged into the local one.
fn fetch(store: &BaselineStore, remote: &str) -> Result<()> {
    match store.fetch(remote)? {
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
    }
    Ok(())
}

/// `baseline push`: the local branch pushed, merged and retried when another push won.
fn push(store: &BaselineStore, remote: &str) -> Result<()> {
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
    Ok(())
}

/// `cargo xtask perf baseline record <rev>`: measures `rev` (in the work tree when it is the
/// clean HEAD, else in a worktree) and stores its record on the baseline branch and in the runs
/// directory. Everything that can fail on bad input (the revision, the store) is checked before
/// services start.
async fn record_revision(
    config: &Config,
    rev: &str,
    measure: &MeasureFlags,
    shutdown: &mut Shutdown,
) -> Result<Outcome> {
    let progress = Progress::with_style(ProgressStyleChoice::detect(false));
    let layout = &config.layout;
    let _claimed = crate::outputs::claim(&layout.out_dir)?;
    let repo = GitRepo::open(&layout.root)?;
    let commit = repo
        .resolve(rev)
        .with_context(|| format!("baseline record {rev}"))?;
    let store = BaselineStore::open(&layout.root, &config.metadata.baseline_branch)?;
    let machine_class = &config.machine_class;
    if store.get(machine_class, &commit)?.is_some() {
        progress.line(&format!(
            "{} already has a record of {} for {machine_class}: a new measurement replaces it",
            store.branch(),
            short_sha(&commit)
        ));
    }
    let selection = config.metadata.suites_filter();
    let (services, services_phase) = services::start(
        config,
        measure.services,
        selection.as_deref(),
        &progress,
        shutdown,
    )
    .await?;
    let measuring = Measuring {
        config,
        services: &services,
        progress: &progress,
        quick: measure.quick,
        selection: selection.as_deref(),
    };
    let measured = shutdown
        .until_interrupted(measure_revision(&measuring, &repo, &commit))
        .await;
    services::tear_down(services, &progress).await;
    let mut record = measured?;
    record.phases.insert(0, services_phase);
    let path = record::store_record(&layout.runs_dir(), &record)?;
    progress.line(&format!("record stored at {}", path.display()));
    progress.finish();
    print_put_outcome(&store, store.put(&record)?);
    Ok(Outcome::Success)
}

/// Measures `commit` with every configured suite: in the work tree when it is its clean HEAD
/// (built in the workspace's target directory: what CI caches after recording main is then
/// what its PRs build on), else in a worktree of its own.
async fn measure_revision(
    measuring: &Measuring<'_>,
    repo: &GitRepo,
    commit: &str,
) -> Result<RunRecord> {
    let context = measuring.suite_context(collect::run_id(), false);
    let head = repo.head()?;
    let measurement = if head.commit == commit && !head.dirty {
        measuring.progress.line(&format!(
            "record: measuring {} in the work tree (its clean HEAD)",
            short_sha(commit)
        ));
        measuring.in_work_tree(&context, "record", commit).await?
    } else {
        collect::in_worktree(&context, repo, "record", commit).await?
    };
    let revision = crate::baseline::HeadState {
        commit: commit.to_owned(),
        dirty: false,
        branch: None,
    };
    Ok(measuring.record(&measuring.environment(), &revision, measurement))
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
