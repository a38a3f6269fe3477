//! `cargo xtask perf`: the pipeline in one screen. Everything that can fail on bad input (the
//! config, the git revisions, stored records) is checked before any service starts; then
//! services start, suites run, the record is stored, the comparison is rendered, and services
//! are torn down whatever happened, including Ctrl-C (SIGINT) and SIGTERM.

use anyhow::{Context, Result, bail};
use chrono::Utc;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::baseline::{self, BaseChoice, GitRepo, HeadState};
use crate::compare::{self, Comparison};
use crate::config::{self, PerfMetadata};
use crate::exit::Outcome;
use crate::fingerprint;
use crate::flags::{BaselineCommand, CalibrateFlags, PerfAction, PerfFlags};
use crate::progress::{Progress, ProgressStyleChoice};
use crate::provision::{ProvisionOptions, Services, ServicesMode};
use crate::record::{self, Acceptance, Phase, Profile, RunRecord, SCHEMA_VERSION};
use crate::render::{self, BaselineDisclosure, Report};
use crate::store::BaselineStore;
use crate::suites::{self, Checkout, SuiteContext};
use crate::workspace::Layout;

/// The signals that stop a run cleanly.
pub struct Shutdown {
    interrupt: Signal,
    terminate: Signal,
}

impl Shutdown {
    /// Installs the handlers; call first thing, so no signal kills the harness unhandled.
    pub fn install() -> Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    pub async fn received(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// What the base side of the comparison will be, decided before services start.
enum BasePlan {
    None {
        reason: String,
    },
    Stored {
        /// The commit whose record is used, and how it was chosen.
        choice: BaseChoice,
        /// What is measured instead if the record turns out not comparable.
        fallback: BaseChoice,
        /// Where the record is (`<branch>:<path>` or a file).
        source: String,
        record: Box<RunRecord>,
        passed_over: Vec<String>,
    },
    Measure {
        choice: BaseChoice,
        passed_over: Vec<String>,
    },
}

/// Runs the whole pipeline.
pub async fn run(flags: PerfFlags, shutdown: &mut Shutdown) -> Result<Outcome> {
    let progress = Progress::with_style(ProgressStyleChoice::detect(flags.ci));
    let layout = Layout::new(flags.out.as_deref());
    if let Some(PerfAction::Baseline(BaselineCommand::Record {
        rev,
        quick,
        services,
    })) = &flags.action
    {
        return record_revision(rev, *quick, *services, &layout, &progress, shutdown).await;
    }
    if let Some(PerfAction::Calibrate(calibrate)) = &flags.action {
        let layout = Layout::new(calibrate.out.as_deref());
        return calibrate_head(calibrate, &layout, &progress, shutdown).await;
    }
    // Every other command listens for SIGINT/SIGTERM too: the handlers are installed for the
    // whole process, so a command that did not listen could not be stopped at all (a push to
    // a remote that hangs, a publish waiting to retry, a lock wait).
    if let Some(PerfAction::Baseline(command)) = &flags.action {
        let (command, layout) = (command.clone(), layout.clone());
        return until_stopped(shutdown, "baseline", move || {
            crate::baseline_command::run(&command, &layout)
        })
        .await;
    }
    if let Some(PerfAction::Publish(publish)) = &flags.action {
        return tokio::select! {
            published = crate::publish::run(publish) => published,
            signal = shutdown.received() => Err(anyhow::anyhow!(stopped(signal))),
        };
    }
    if let Some(PerfAction::History(history)) = &flags.action {
        let request = crate::history::HistoryRequest {
            rev: history.rev.clone(),
            depth: history.depth,
            metric: history.metric.clone(),
            machine_class: history.machine_class.clone(),
            options: crate::stats::ChangePointOptions {
                min_segment_len: history.min_segment,
                min_shift_pct: history.min_shift_pct,
                ..crate::stats::ChangePointOptions::default()
            },
        };
        let layout = layout.clone();
        return until_stopped(shutdown, "history", move || {
            crate::history::run(&request, &layout)
        })
        .await;
    }
    if flags.list {
        let metadata = config::read_metadata(&layout.root)?;
        let selection = flags.filter.clone().or_else(|| metadata.suites_filter());
        progress.line("list: building bench-suite to ask its tools for their benchmarks");
        let listed = tokio::select! {
            listed = suites::listing::list(&layout, selection.as_deref(), &progress) => listed?,
            signal = shutdown.received() => bail!(stopped(signal)),
        };
        progress.finish();
        if listed.is_empty() {
            bail!(
                "{} selects no benchmark or scenario.\n  fix: run `cargo xtask perf --list` to see the names",
                describe_selection(flags.filter.as_deref(), &metadata)
            );
        }
        print!("{}", suites::listing::render(&listed));
        return Ok(Outcome::Success);
    }
    // Before anything can fail: no older verdict may stay where this run's report goes.
    let claimed = crate::outputs::claim(&layout.out_dir)?;
    crate::outputs::set_aside_previous_reports(&claimed, &layout.out_dir)?;
    let metadata = config::read_metadata(&layout.root)?;
    let repo = GitRepo::open(&layout.root)?;
    let head = repo.head()?;
    let base_plan = plan_base(&repo, &head, &flags, &metadata, &layout)?;
    progress.line(&format!(
        "head {}{}; {}",
        render::short_sha(&head.commit),
        if head.dirty { " (dirty)" } else { "" },
        match &base_plan {
            BasePlan::None { reason } => format!("no baseline ({reason})"),
            BasePlan::Stored { choice, source, .. } => format!(
                "base {} ({}; stored record {source})",
                render::short_sha(&choice.commit),
                choice.how_chosen,
            ),
            BasePlan::Measure {
                choice,
                passed_over,
            } => format!(
                "base {} ({}; {}: it will be measured in a worktree)",
                render::short_sha(&choice.commit),
                choice.how_chosen,
                passed_over.join("; ")
            ),
        }
    ));

    let selection = flags.filter.clone().or_else(|| metadata.suites_filter());
    let mut first_phases = Vec::new();
    if let Some(selection) = &selection {
        // A selection that selects nothing would measure nothing and pass the gate: refuse it
        // before any service starts (listing builds what the run builds anyway).
        progress.line(&format!("list: what {selection:?} selects"));
        let listing_started = std::time::Instant::now();
        let listed = tokio::select! {
            listed = suites::listing::list(&layout, Some(selection), &progress) => listed?,
            signal = shutdown.received() => bail!(interrupted(signal)),
        };
        if listed.is_empty() {
            bail!(
                "{} selects no benchmark, scenario or plan: nothing would be measured.\n  fix: run `cargo xtask perf --list` to see the names, and correct the selection",
                describe_selection(flags.filter.as_deref(), &metadata)
            );
        }
        // Listing builds HEAD (the measuring build then finds it done): a phase of its own, so
        // that the time line shows where the build went.
        first_phases.push(Phase {
            name: "list: build and list".to_owned(),
            seconds: listing_started.elapsed().as_secs_f64(),
        });
    }
    let (services, services_phase) = start_services(
        flags.services,
        &metadata,
        selection.as_deref(),
        &layout,
        &progress,
        shutdown,
    )
    .await?;
    first_phases.push(services_phase);
    let run = Run {
        flags: &flags,
        layout: &layout,
        metadata: &metadata,
        repo: &repo,
        head: &head,
        services: &services,
        progress: &progress,
    };
    let outcome = tokio::select! {
        outcome = measure_and_report(&run, base_plan, first_phases) => outcome,
        signal = shutdown.received() => Err(anyhow::anyhow!(interrupted(signal))),
    };
    tear_down(services, &progress).await;
    drop(claimed);
    outcome
}

/// Starts the services (SIGINT or SIGTERM meanwhile stops the start and whatever it started),
/// and the phase saying how long that took.
async fn start_services(
    mode: ServicesMode,
    metadata: &PerfMetadata,
    selection: Option<&str>,
    layout: &Layout,
    progress: &Progress,
    shutdown: &mut Shutdown,
) -> Result<(Services, Phase)> {
    let (postgres_image, redis_image) = config::image_choices(&metadata.images);
    let options = ProvisionOptions {
        mode,
        postgres_image,
        redis_image,
    };
    let report_line = |line: &str| progress.line(line);
    let services_started = std::time::Instant::now();
    // What this machine lacks for the services (native servers when nothing else serves).
    let setup_logs = layout.target_dir.join("perf-setup");
    tokio::select! {
        ready = crate::setup::ensure_services(&options, &setup_logs, progress) => ready?,
        signal = shutdown.received() => bail!(interrupted(signal)),
    };
    if selection.is_none() {
        // A whole run counts instructions: valgrind and the runner before anything starts.
        tokio::select! {
            runner = crate::setup::gungraun_runner(&layout.root, &layout.target_dir, progress) => { runner?; }
            signal = shutdown.received() => bail!(interrupted(signal)),
        };
    }
    let services = tokio::select! {
        started = Services::start(&options, &report_line) => started?,
        signal = shutdown.received() => bail!(interrupted(signal)),
    };
    let services_phase = Phase {
        name: "services: start".to_owned(),
        seconds: services_started.elapsed().as_secs_f64(),
    };
    Ok((services, services_phase))
}

async fn tear_down(services: Services, progress: &Progress) {
    progress.line("services: tearing down");
    if let Err(error) = services.teardown().await {
        progress.line(&format!("services: teardown failed: {error}"));
    }
}

/// `cargo xtask perf baseline record <rev>`: measures `rev` in a worktree and stores its
/// record on the baseline branch (and in the runs directory). Everything that can fail on bad
/// input (the revision, the configuration, the store) is checked before services start.
async fn record_revision(
    rev: &str,
    quick: bool,
    mode: ServicesMode,
    layout: &Layout,
    progress: &Progress,
    shutdown: &mut Shutdown,
) -> Result<Outcome> {
    let _claimed = crate::outputs::claim(&layout.out_dir)?;
    let metadata = config::read_metadata(&layout.root)?;
    let repo = GitRepo::open(&layout.root)?;
    let commit = repo
        .resolve(rev)
        .with_context(|| format!("baseline record {rev}"))?;
    let store = BaselineStore::open(&layout.root, &metadata.baseline_branch)?;
    let machine_class = fingerprint::machine_class(&metadata);
    if store.get(&machine_class, &commit)?.is_some() {
        progress.line(&format!(
            "{} already has a record of {} for {machine_class}: a new measurement replaces it",
            store.branch(),
            render::short_sha(&commit)
        ));
    }
    let (services, services_phase) = start_services(
        mode,
        &metadata,
        metadata.suites_filter().as_deref(),
        layout,
        progress,
        shutdown,
    )
    .await?;
    let measured = tokio::select! {
        measured = measure_revision(&commit, quick, layout, &metadata, &repo, &services, progress) => measured,
        signal = shutdown.received() => Err(anyhow::anyhow!(interrupted(signal))),
    };
    tear_down(services, progress).await;
    let mut record = measured?;
    record.phases.insert(0, services_phase);
    let path = record::store_record(&layout.runs_dir(), &record)?;
    progress.line(&format!("record stored at {}", path.display()));
    progress.finish();
    crate::baseline_command::print_put_outcome(&store, store.put(&record)?);
    Ok(Outcome::Success)
}

/// `cargo xtask perf calibrate`: measures HEAD `runs` times on one set of services (each run
/// with a database and cache keys of its own), compares each run with the one before, and
/// reports the false alarms. Exit 1 when any metric alarmed.
async fn calibrate_head(
    calibrate: &CalibrateFlags,
    layout: &Layout,
    progress: &Progress,
    shutdown: &mut Shutdown,
) -> Result<Outcome> {
    let _claimed = crate::outputs::claim(&layout.out_dir)?;
    let metadata = config::read_metadata(&layout.root)?;
    let repo = GitRepo::open(&layout.root)?;
    let head = repo.head()?;
    let (services, _) = start_services(
        calibrate.services,
        &metadata,
        calibrate
            .filter
            .clone()
            .or_else(|| metadata.suites_filter())
            .as_deref(),
        layout,
        progress,
        shutdown,
    )
    .await?;
    let measured = tokio::select! {
        measured = async {
            let environment = fingerprint::capture(&metadata, services.description());
            let calibration_id = run_id();
            let selection = calibrate.filter.clone().or_else(|| metadata.suites_filter());
            let mut records = Vec::new();
            for round in 1..=calibrate.runs {
                progress.line(&format!("calibrate: run {round} of {}", calibrate.runs));
                let context = SuiteContext {
                    layout,
                    services: &services,
                    seed: metadata.seed,
                    quick: calibrate.quick,
                    filter: selection.as_deref(),
                    progress,
                    run_id: format!("{calibration_id}r{round}"),
                    keep_for_pairing: false,
                };
                let measurement = suites::measure(
                    &context,
                    &Checkout {
                        label: "calibrate",
                        dir: &layout.root,
                        commit: &head.commit,
                        target_dir: &layout.target_dir,
                    },
                )
                .await?;
                records.push(new_record(
                    &environment,
                    calibrate.quick,
                    &head.commit,
                    head.dirty,
                    head.branch.clone(),
                    measurement,
                ));
            }
            anyhow::Ok(records)
        } => measured,
        signal = shutdown.received() => Err(anyhow::anyhow!(interrupted(signal))),
    };
    tear_down(services, progress).await;
    let records = measured?;
    let calibration = crate::calibrate::summarize(&records, &metadata.thresholds);
    let json = serde_json::to_vec_pretty(&calibration)?;
    let path = layout.out_dir.join("calibration.json");
    record::write_atomically(&path, &json)?;
    progress.line(&format!("calibration written to {}", path.display()));
    progress.finish();
    print!("{}", crate::calibrate::render_calibration(&calibration));
    Ok(if calibration.false_alarms() == 0 {
        Outcome::Success
    } else {
        Outcome::RegressionFound
    })
}

/// Measures `commit` in a worktree of its own, with every suite.
async fn measure_revision(
    commit: &str,
    quick: bool,
    layout: &Layout,
    metadata: &PerfMetadata,
    repo: &GitRepo,
    services: &Services,
    progress: &Progress,
) -> Result<RunRecord> {
    let selection = metadata.suites_filter();
    let context = SuiteContext {
        layout,
        services,
        seed: metadata.seed,
        quick,
        filter: selection.as_deref(),
        progress,
        run_id: run_id(),
        keep_for_pairing: false,
    };
    // The work tree's own clean HEAD is measured in place, built in the workspace's target
    // directory: what CI caches after recording main is then what its PRs build on.
    let head = repo.head()?;
    let measurement = if head.commit == commit && !head.dirty {
        progress.line(&format!(
            "record: measuring {} in the work tree (its clean HEAD)",
            render::short_sha(commit)
        ));
        suites::measure(
            &context,
            &Checkout {
                label: "record",
                dir: &layout.root,
                commit,
                target_dir: &layout.target_dir,
            },
        )
        .await?
    } else {
        measure_in_worktree(&context, repo, "record", commit).await?
    };
    let environment = fingerprint::capture(metadata, services.description());
    Ok(new_record(
        &environment,
        quick,
        commit,
        false,
        None,
        measurement,
    ))
}

/// Checks `commit` out in a git worktree of its own, measures it with its own binaries (built
/// in the bases' target directory) and removes the worktree.
async fn measure_in_worktree(
    context: &SuiteContext<'_>,
    repo: &GitRepo,
    label: &str,
    commit: &str,
) -> Result<suites::Measurement> {
    let layout = context.layout;
    let worktree = repo.add_worktree(commit, &layout.worktree_dir(commit, &context.run_id))?;
    context.progress.line(&format!(
        "{label}: measuring {} in worktree {}",
        render::short_sha(commit),
        worktree.path().display()
    ));
    let started = std::time::Instant::now();
    let seeded =
        suites::build_guard::seed_from(&layout.target_dir, &layout.base_target_dir(), |m| {
            context.progress.line(&format!("{label}: {m}"))
        })
        .await?;
    if seeded {
        context.progress.line(&format!(
            "{label}: reusing HEAD's compiled dependencies: copied {} to {} in {:.0} s",
            layout.target_dir.join("release").display(),
            layout.base_target_dir().join("release").display(),
            started.elapsed().as_secs_f64()
        ));
    }
    let seeding = Phase {
        name: format!("{label}: copy of HEAD's dependencies"),
        seconds: started.elapsed().as_secs_f64(),
    };
    let mut measurement = suites::measure(
        context,
        &Checkout {
            label,
            dir: worktree.path(),
            commit,
            target_dir: &layout.base_target_dir(),
        },
    )
    .await?;
    drop(worktree);
    if seeded {
        measurement.phases.insert(0, seeding);
    }
    Ok(measurement)
}

/// A record of a measurement made now.
fn new_record(
    environment: &record::Environment,
    quick: bool,
    commit: &str,
    dirty: bool,
    branch: Option<String>,
    measurement: suites::Measurement,
) -> RunRecord {
    RunRecord {
        schema_version: SCHEMA_VERSION,
        commit: commit.to_owned(),
        dirty,
        branch,
        created_at: Utc::now(),
        profile: if quick { Profile::Quick } else { Profile::Full },
        environment: environment.clone(),
        phases: measurement.phases,
        metrics: measurement.metrics,
        notes: measurement.notes,
        acceptance: None,
    }
}

/// How a selection that selects nothing is named in its error: the flag, or the config key.
fn describe_selection(filter: Option<&str>, metadata: &PerfMetadata) -> String {
    match filter {
        Some(filter) => format!("--filter {filter:?}"),
        None => format!(
            "`suites = {:?}` in [workspace.metadata.perf]",
            metadata.suites
        ),
    }
}

/// Runs a blocking command on a blocking thread until it ends or a signal stops it (the
/// thread is then left to the runtime, which does not wait for it on the way out).
async fn until_stopped(
    shutdown: &mut Shutdown,
    command: &str,
    work: impl FnOnce() -> Result<Outcome> + Send + 'static,
) -> Result<Outcome> {
    let blocking = tokio::task::spawn_blocking(work);
    tokio::select! {
        finished = blocking => finished.with_context(|| format!("the {command} command panicked"))?,
        signal = shutdown.received() => Err(anyhow::anyhow!(stopped(signal))),
    }
}

/// The error of a command that measures nothing, stopped by a signal.
fn stopped(signal: &str) -> String {
    format!("interrupted by {signal}: stopped")
}

fn interrupted(signal: &str) -> String {
    format!("interrupted by {signal}: services torn down, no record saved")
}

fn plan_base(
    repo: &GitRepo,
    head: &HeadState,
    flags: &PerfFlags,
    metadata: &PerfMetadata,
    layout: &Layout,
) -> Result<BasePlan> {
    let choice = match flags.base.as_deref() {
        Some("none") if flags.paired => {
            bail!(
                "--paired times base and head side by side, but --base none asks for no base.\n  fix: drop --base none, or give a revision to compare with (--base <rev>)"
            );
        }
        Some("none") => {
            return Ok(BasePlan::None {
                reason: "--base none".to_owned(),
            });
        }
        Some(rev) => BaseChoice {
            commit: repo
                .resolve(rev)
                .with_context(|| format!("--base {rev} (`--base none` compares with nothing)"))?,
            how_chosen: format!("--base {rev}"),
        },
        None => match repo.default_base(head, &metadata.target_branch)? {
            Some(choice) => choice,
            None if flags.paired => {
                bail!(
                    "--paired needs a base to time side by side, but HEAD has no parent and there is no target branch to compare with.\n  fix: give one with --base <rev>, or drop --paired"
                );
            }
            None => {
                return Ok(BasePlan::None {
                    reason: "HEAD has no parent and no target branch to compare with".to_owned(),
                });
            }
        },
    };
    if flags.paired {
        // Wall time is judged only when both sides are timed in this job: the base is
        // measured here, whatever the store holds.
        return Ok(BasePlan::Measure {
            choice,
            passed_over: vec![
                "--paired: the base is measured in this run to be timed side by side, not taken from a stored record".to_owned(),
            ],
        });
    }
    // An explicit --base is that commit only; the default base may fall back to the nearest
    // first-parent ancestor with a record, so that a PR need not measure its base.
    let distance = if flags.base.is_some() {
        0
    } else {
        metadata.max_ancestor_distance
    };
    let store = BaselineStore::open(&layout.root, &metadata.baseline_branch)?;
    let machine_class = fingerprint::machine_class(metadata);
    let candidates = std::iter::once(choice.commit.clone())
        .chain(repo.first_parent_ancestors(&choice.commit, distance)?)
        .enumerate();
    for (steps_back, commit) in candidates {
        let found = match store.locate(&machine_class, &commit)? {
            Some(located) => Some(located),
            None => baseline::stored_record(&layout.runs_dir(), &commit)?
                .map(|(path, record)| (path.display().to_string(), record)),
        };
        let Some((source, record)) = found else {
            continue;
        };
        let mut passed_over = Vec::new();
        let chosen = if steps_back == 0 {
            choice.clone()
        } else {
            passed_over.push(format!(
                "no stored record of {} for machine class {machine_class}",
                render::short_sha(&choice.commit)
            ));
            BaseChoice {
                commit,
                how_chosen: format!(
                    "{}; the nearest first-parent ancestor with a stored record, {steps_back} commit{} back",
                    choice.how_chosen,
                    if steps_back == 1 { "" } else { "s" }
                ),
            }
        };
        return Ok(BasePlan::Stored {
            choice: chosen,
            fallback: choice,
            source,
            record: Box::new(record),
            passed_over,
        });
    }
    let searched = if distance == 0 {
        String::new()
    } else {
        format!(" or its {distance} nearest first-parent ancestors")
    };
    Ok(BasePlan::Measure {
        passed_over: vec![format!(
            "no stored record of {}{searched} for machine class {machine_class} (on {} or in {})",
            render::short_sha(&choice.commit),
            store.branch(),
            layout.runs_dir().display()
        )],
        choice,
    })
}

/// What one run measures with, once services are up.
struct Run<'a> {
    flags: &'a PerfFlags,
    layout: &'a Layout,
    metadata: &'a PerfMetadata,
    repo: &'a GitRepo,
    head: &'a HeadState,
    services: &'a Services,
    progress: &'a Progress,
}

async fn measure_and_report(
    run: &Run<'_>,
    base_plan: BasePlan,
    first_phases: Vec<Phase>,
) -> Result<Outcome> {
    let Run {
        flags,
        layout,
        metadata,
        repo,
        head,
        services,
        progress,
    } = *run;
    let run_id = run_id();
    let selection = flags.filter.clone().or_else(|| metadata.suites_filter());
    let context = SuiteContext {
        layout,
        services,
        seed: metadata.seed,
        quick: flags.quick,
        filter: selection.as_deref(),
        progress,
        run_id,
        keep_for_pairing: flags.paired,
    };
    let environment = fingerprint::capture(metadata, services.description());
    let new_record = |commit: &str, dirty: bool, branch: Option<String>, m| {
        new_record(&environment, flags.quick, commit, dirty, branch, m)
    };

    let mut head_measurement = suites::measure(
        &context,
        &Checkout {
            label: "head",
            dir: &layout.root,
            commit: &head.commit,
            target_dir: &layout.target_dir,
        },
    )
    .await?;
    let head_paired_side = head_measurement.paired_side.take();
    let mut head_record = new_record(
        &head.commit,
        head.dirty,
        head.branch.clone(),
        head_measurement,
    );
    head_record.phases.splice(0..0, first_phases);

    let mut passed_over = Vec::new();
    let to_measure = match base_plan {
        BasePlan::None { reason } => Err(reason),
        BasePlan::Stored {
            choice,
            fallback,
            source,
            record,
            passed_over: passed,
        } => {
            passed_over.extend(passed);
            let mismatches =
                compare::fingerprint_mismatches(&record.environment, &head_record.environment);
            if mismatches.is_empty() {
                Ok((choice, Some((source, record))))
            } else {
                passed_over.push(format!(
                    "stored record {source} is not comparable ({})",
                    mismatches.join("; ")
                ));
                Ok((fallback, None))
            }
        }
        BasePlan::Measure {
            choice,
            passed_over: passed,
        } => {
            passed_over.extend(passed);
            Ok((choice, None))
        }
    };
    let mut base_paired_side = None;
    let (baseline_disclosure, base_record) = match to_measure {
        Err(reason) => (BaselineDisclosure::None { reason }, None),
        Ok((choice, Some((source, record)))) => (
            BaselineDisclosure::Used {
                commit: choice.commit,
                how_chosen: choice.how_chosen,
                source: format!("stored record {source}"),
                passed_over,
            },
            Some(*record),
        ),
        Ok((choice, None)) => {
            let mut measurement =
                measure_in_worktree(&context, repo, "base", &choice.commit).await?;
            base_paired_side = measurement.paired_side.take();
            // This run's time includes the base's build and measurement.
            head_record
                .phases
                .extend(measurement.phases.iter().cloned());
            let record = new_record(&choice.commit, false, None, measurement);
            if flags.filter.is_none() {
                let path = record::store_record(&layout.runs_dir(), &record)?;
                progress.line(&format!("base: record stored at {}", path.display()));
            }
            (
                BaselineDisclosure::Used {
                    commit: choice.commit,
                    how_chosen: choice.how_chosen,
                    source: "measured in a git worktree in this run".to_owned(),
                    passed_over,
                },
                Some(record),
            )
        }
    };

    let (history, history_records) = match &base_record {
        Some(base) => target_branch_history(repo, layout, metadata, base, progress)?,
        None => (compare::History::new(), Vec::new()),
    };
    let paired = match (&base_paired_side, &head_paired_side) {
        (Some(base_side), Some(head_side)) => {
            let started = std::time::Instant::now();
            progress.line(&format!(
                "paired: {} interleaved rounds of base {} and head {}",
                flags.paired_rounds,
                render::short_sha(&base_side.commit),
                render::short_sha(&head_side.commit)
            ));
            let samples =
                suites::paired::run_rounds(&context, [base_side, head_side], flags.paired_rounds)
                    .await?;
            head_record.phases.push(Phase {
                name: format!("paired: {} rounds", flags.paired_rounds),
                seconds: started.elapsed().as_secs_f64(),
            });
            samples
        }
        _ => {
            if flags.paired {
                head_record.notes.push(
                    "--paired: the filter selects no wall-time benchmark, so nothing was timed side by side".to_owned(),
                );
            }
            compare::PairedSamples::new()
        }
    };
    let comparison: Option<Comparison> = base_record.as_ref().map(|base| {
        compare::compare_in_scope(
            base,
            &head_record,
            &metadata.thresholds,
            &history,
            &paired,
            compare::Scope {
                filtered: flags.filter.is_some(),
                retired: &metadata.retired,
            },
        )
    });
    let budgets = compare::check_budgets(&head_record, &metadata.budgets, selection.is_some());
    let failing: Vec<String> = comparison
        .iter()
        .flat_map(|c| c.rows.iter())
        .filter(|row| row.verdict == compare::Verdict::Regression)
        .map(|row| row.name.clone())
        .chain(
            budgets
                .iter()
                .filter(|b| b.broken)
                .map(|b| format!("budget {}", b.metric)),
        )
        .collect();
    if let Some(reason) = &flags.accept {
        if failing.is_empty() {
            progress.line("--accept: no regression and no broken budget to accept");
        } else {
            head_record.acceptance = Some(Acceptance {
                by: repo.acceptor(flags.accepted_by.as_deref()),
                reason: reason.clone(),
                accepted: failing.clone(),
            });
        }
    }
    // A filtered run measured only part of the suites: never a baseline candidate.
    let record_dir = if flags.filter.is_some() {
        layout.out_dir.join("filtered")
    } else {
        layout.runs_dir()
    };
    let record_path = record::store_record(&record_dir, &head_record)?;

    let report = Report {
        head: &head_record,
        baseline: baseline_disclosure,
        comparison: comparison.as_ref(),
        budgets: &budgets,
        record_path: Some(record_path.display().to_string()),
    };
    let markdown = render::markdown(&report);
    record::write_atomically(&layout.out_dir.join("report.md"), markdown.as_bytes())?;
    let json = serde_json::to_vec_pretty(&render::json(&report))?;
    record::write_atomically(&layout.out_dir.join("report.json"), &json)?;
    let series = crate::html::history_series(&history_records, &Default::default());
    let page = crate::html::html(&report, base_record.as_ref(), &series);
    record::write_atomically(&layout.out_dir.join("report.html"), page.as_bytes())?;
    // The head's metrics for other tools (Bencher's `json` adapter and the like).
    let bmf = serde_json::to_vec_pretty(&crate::bmf::bencher_metric_format(&head_record))?;
    record::write_atomically(&layout.out_dir.join("report.bmf.json"), &bmf)?;
    run.progress.finish();
    // Colours only for a person at a terminal (never in CI logs, never with NO_COLOR set).
    let coloured = !flags.ci
        && std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    // Every row for logs (`--ci`) and on request (`--verbose`); a summary that fits the
    // terminal otherwise.
    let text = if flags.ci || flags.verbose {
        render::terminal(&report)
    } else {
        // A terminal's width; a pipe or a file has none, and there nothing is shortened.
        let width = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            console::Term::stdout()
                .size_checked()
                .map(|(_rows, columns)| usize::from(columns))
                .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
                .unwrap_or(render::DEFAULT_TERMINAL_WIDTH)
        } else {
            usize::MAX
        };
        let full_reports = format!(
            "{}, {}",
            layout.out_dir.join("report.md").display(),
            layout.out_dir.join("report.html").display()
        );
        render::terminal_summary(&report, width, &full_reports)
    };
    print!(
        "{}",
        if coloured {
            render::colour_verdicts(&text)
        } else {
            text
        }
    );
    if flags.ci {
        crate::publish::after_ci_run(&layout.out_dir, &markdown).await?;
    }
    Ok(if failing.is_empty() || head_record.acceptance.is_some() {
        Outcome::Success
    } else {
        Outcome::RegressionFound
    })
}

/// How many first-parent ancestors of the base are read for noise bands.
const HISTORY_DEPTH: u32 = 30;

/// The values of every metric in the stored records (baseline branch, this machine class) of
/// the base and its first-parent ancestors, oldest first: what noise bands are learned from.
/// A record that cannot be read is left out and said so; a band then rests on fewer records.
/// Also the records the values came from (those comparable with the base, and the base), for
/// the history plots of `report.html`.
fn target_branch_history(
    repo: &GitRepo,
    layout: &Layout,
    metadata: &PerfMetadata,
    base: &RunRecord,
    progress: &Progress,
) -> Result<(compare::History, Vec<RunRecord>)> {
    let store = BaselineStore::open(&layout.root, &metadata.baseline_branch)?;
    let mut commits = repo.first_parent_ancestors(&base.commit, HISTORY_DEPTH)?;
    commits.reverse();
    let mut records = Vec::new();
    for commit in commits {
        match store.get(&base.environment.machine_class, &commit) {
            Ok(Some(record)) => records.push(record),
            Ok(None) => {}
            Err(error) => progress.line(&format!("history: {commit} left out: {error}")),
        }
    }
    records.push(base.clone());
    records.retain(|record| {
        compare::fingerprint_mismatches(&record.environment, &base.environment).is_empty()
    });
    let mut history = compare::History::new();
    for record in &records {
        for metric in &record.metrics {
            history
                .entry(metric.name.clone())
                .or_default()
                .push(metric.value);
        }
    }
    Ok((history, records))
}

/// A short id, unique enough per run, that names the run's databases and cache namespaces.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:08x}", nanos ^ std::process::id().rotate_left(16))
}

#[cfg(test)]
mod tests {
    //! Choosing the base on real repositories in temp dirs (the `git` program makes the
    //! history; the store writes the baseline branch).

    use std::path::Path;
    use std::process::Command;

    use clap::Parser;

    use super::*;
    use crate::flags::{Command as XtaskCommand, Xtask};

    fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .current_dir(dir)
            .args([
                "-c",
                "user.name=test",
                "-c",
                "user.email=test@example.invalid",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn commit(dir: &Path, n: u32) -> String {
        std::fs::write(dir.join("file.txt"), format!("change {n}\n")).unwrap();
        git(dir, &["add", "file.txt"]);
        git(dir, &["commit", "--quiet", "-m", &format!("change {n}")]);
        git(dir, &["rev-parse", "HEAD"])
    }

    /// main: c1 - c2 - c3 - c4; HEAD: a feature branch with one commit on c4.
    fn history(dir: &Path) -> Vec<String> {
        git(dir, &["init", "--quiet", "--initial-branch=main"]);
        let commits: Vec<String> = (1..=4).map(|n| commit(dir, n)).collect();
        git(dir, &["checkout", "--quiet", "-b", "feature"]);
        commit(dir, 5);
        commits
    }

    fn record_of(commit: &str, machine_class: &str) -> RunRecord {
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "commit": commit, "dirty": false, "branch": "main",
            "created_at": "2026-11-01T00:00:00Z", "profile": "quick",
            "environment": {
                "machine_class": machine_class, "cpu_model": "cpu", "cores": 2,
                "os": "linux", "rustc": "rustc", "valgrind": null, "gungraun_runner": null,
                "services": {
                    "mode": "native", "reason": "--services native",
                    "postgres_version": "15.18", "redis_version": "7.0.15",
                    "postgres_image": null, "redis_image": null
                },
                "config_hash": "0123456789abcdef"
            },
            "phases": [],
            "metrics": [],
        }))
        .unwrap()
    }

    fn plan(dir: &Path, metadata: &PerfMetadata, args: &[&str]) -> BasePlan {
        let XtaskCommand::Perf(flags) =
            Xtask::parse_from([&["cargo xtask", "perf"], args].concat()).command
        else {
            panic!("`perf` parses as the perf command");
        };
        let layout = Layout {
            root: dir.to_path_buf(),
            target_dir: dir.join("target"),
            out_dir: dir.join("target/perf"),
        };
        let repo = GitRepo::open(dir).unwrap();
        let head = repo.head().unwrap();
        plan_base(&repo, &head, &flags, metadata, &layout).unwrap()
    }

    #[test]
    fn the_nearest_first_parent_ancestor_with_a_stored_record_is_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let commits = history(dir.path());
        let metadata = PerfMetadata::default();
        let class = fingerprint::machine_class(&metadata);
        let store = BaselineStore::open(dir.path(), &metadata.baseline_branch).unwrap();
        // Records of c1 and c2 (and of c4 for another machine class): c2 is nearest.
        store.put(&record_of(&commits[0], &class)).unwrap();
        store.put(&record_of(&commits[1], &class)).unwrap();
        store.put(&record_of(&commits[3], "other-class")).unwrap();

        match plan(dir.path(), &metadata, &[]) {
            BasePlan::Stored {
                choice,
                fallback,
                source,
                passed_over,
                ..
            } => {
                assert_eq!(choice.commit, commits[1]);
                assert!(choice.how_chosen.contains("2 commits back"), "{choice:?}");
                assert_eq!(
                    fallback.commit, commits[3],
                    "the merge-base is measured instead"
                );
                assert_eq!(
                    source,
                    format!("perf-baselines:{class}/{}.json", commits[1])
                );
                assert_eq!(passed_over.len(), 1, "{passed_over:?}");
            }
            _ => panic!("expected a stored record"),
        }
    }

    /// Issue 13, defect 1: `actions/checkout` with `fetch-depth: 0` leaves the baseline
    /// branch as `refs/remotes/origin/perf-baselines` only; a PR must still find its records.
    #[test]
    fn a_record_only_on_origins_remote_tracking_branch_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let commits = history(dir.path());
        let metadata = PerfMetadata::default();
        let class = fingerprint::machine_class(&metadata);
        let store = BaselineStore::open(dir.path(), &metadata.baseline_branch).unwrap();
        store.put(&record_of(&commits[3], &class)).unwrap();
        let tip = git(dir.path(), &["rev-parse", "refs/heads/perf-baselines"]);
        git(
            dir.path(),
            &["update-ref", "refs/remotes/origin/perf-baselines", &tip],
        );
        git(
            dir.path(),
            &["update-ref", "-d", "refs/heads/perf-baselines"],
        );

        match plan(dir.path(), &metadata, &[]) {
            BasePlan::Stored { choice, source, .. } => {
                assert_eq!(choice.commit, commits[3]);
                assert_eq!(
                    source,
                    format!("origin/perf-baselines:{class}/{}.json", commits[3])
                );
            }
            _ => panic!("the remote-tracking branch's record must be used"),
        }
    }

    #[test]
    fn the_merge_base_itself_is_measured_when_no_record_is_near_enough() {
        let dir = tempfile::tempdir().unwrap();
        let commits = history(dir.path());
        let metadata = PerfMetadata {
            max_ancestor_distance: 1,
            ..PerfMetadata::default()
        };
        let class = fingerprint::machine_class(&metadata);
        let store = BaselineStore::open(dir.path(), &metadata.baseline_branch).unwrap();
        store.put(&record_of(&commits[1], &class)).unwrap();

        match plan(dir.path(), &metadata, &[]) {
            BasePlan::Measure {
                choice,
                passed_over,
            } => {
                assert_eq!(choice.commit, commits[3]);
                assert!(
                    passed_over[0].contains("or its 1 nearest first-parent ancestors"),
                    "{passed_over:?}"
                );
            }
            _ => panic!("expected the merge-base to be measured"),
        }
    }

    /// Issue 13, defect 10: a misspelled target branch used to fall back to HEAD's first
    /// parent, the wrong base for a PR of several commits.
    #[test]
    fn a_target_branch_that_does_not_exist_is_an_error_naming_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        history(dir.path());
        let metadata = PerfMetadata {
            target_branch: "mian".to_owned(),
            ..PerfMetadata::default()
        };
        let XtaskCommand::Perf(flags) = Xtask::parse_from(["cargo xtask", "perf"]).command else {
            panic!("`perf` parses as the perf command");
        };
        let layout = Layout {
            root: dir.path().to_path_buf(),
            target_dir: dir.path().join("target"),
            out_dir: dir.path().join("target/perf"),
        };
        let repo = GitRepo::open(dir.path()).unwrap();
        let head = repo.head().unwrap();
        let Err(error) = plan_base(&repo, &head, &flags, &metadata, &layout) else {
            panic!("a missing target branch must not choose a base");
        };
        let message = format!("{error:#}");
        assert!(message.contains("\"mian\""), "{message}");
        assert!(
            message.contains("fix: correct `target_branch`"),
            "{message}"
        );
    }

    #[test]
    fn an_explicit_base_is_that_commit_only() {
        let dir = tempfile::tempdir().unwrap();
        let commits = history(dir.path());
        let metadata = PerfMetadata::default();
        let class = fingerprint::machine_class(&metadata);
        let store = BaselineStore::open(dir.path(), &metadata.baseline_branch).unwrap();
        store.put(&record_of(&commits[1], &class)).unwrap();

        match plan(dir.path(), &metadata, &["--base", &commits[2]]) {
            BasePlan::Measure { choice, .. } => assert_eq!(choice.commit, commits[2]),
            _ => panic!("an explicit base must not fall back to an ancestor"),
        }
        match plan(dir.path(), &metadata, &["--base", &commits[1]]) {
            BasePlan::Stored { choice, .. } => assert_eq!(choice.commit, commits[1]),
            _ => panic!("the explicit base's stored record is used"),
        }
    }
}
