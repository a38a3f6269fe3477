//! `cargo xtask perf`: measure HEAD, compare it with the right base, report, and gate. Reads as
//! its stages: everything that can fail on bad input (the config, the revisions, stored
//! records, the selection) is checked before any service starts; then **collect** (services
//! up, HEAD and when needed the base measured, services down whatever happened, including
//! SIGINT and SIGTERM), **judge** (pure), **report** (the record stored, every format written,
//! the terminal's text) and **publish** (`--ci`: the job summary and the PR comment).

use anyhow::Result;

use crate::baseline::lookup::{self, BaseRequest};
use crate::baseline::{BasePlan, GitRepo, HeadState};
use crate::config::Config;
use crate::exit::Outcome;
use crate::flags::PerfFlags;
use crate::outputs;
use crate::pipeline::collect::{self, Collected, Measuring, RunRequest};
use crate::pipeline::judge;
use crate::pipeline::report::{self, RunReport, TerminalStyle};
use crate::pipeline::{selection, services};
use crate::progress::{Progress, ProgressStyleChoice};
use crate::record::{self, ShardInfo};
use crate::render::{self, short_sha};
use crate::shard::ShardSpec;
use crate::shutdown::Shutdown;
use crate::suites;

/// Runs the whole pipeline.
pub async fn run(config: &Config, flags: &PerfFlags, shutdown: &mut Shutdown) -> Result<Outcome> {
    let progress = Progress::with_style(ProgressStyleChoice::detect(flags.ci));
    let layout = &config.layout;
    // Before anything can fail: no older verdict may stay where this run's report goes.
    let claimed = outputs::claim(&layout.out_dir)?;
    outputs::set_aside_previous_reports(&claimed, &layout.out_dir)?;
    let repo = GitRepo::open(&layout.root)?;
    let head = repo.head()?;
    let request = BaseRequest {
        base: flags.base.as_deref(),
        paired: flags.paired,
    };
    let plan = lookup::choose_base(
        &repo,
        &head,
        request,
        &config.metadata,
        &config.machine_class,
        &layout.runs_dir(),
    )?;
    progress.line(&format!(
        "head {}{}; {}",
        short_sha(&head.commit),
        if head.dirty { " (dirty)" } else { "" },
        plan.describe()
    ));
    let (collected, selected) = match &flags.from_record {
        Some(path) => from_record(config, flags, &repo, &head, plan, path, &progress)?,
        None => measure(config, flags, &repo, &head, plan, &progress, shutdown).await?,
    };
    let judged = judge_and_report(config, flags, &repo, collected, selected, &progress)?;
    if flags.ci {
        let markdown = render::markdown(&judged.1.view());
        shutdown
            .until_stopped(crate::publish::after_ci_run(&layout.out_dir, &markdown))
            .await?;
    }
    drop(claimed);
    Ok(judged.0)
}

/// The measuring stages: the selection (a shard's part of it with `--shard`) checked, the
/// services started, HEAD and when needed the base measured, the services torn down whatever
/// happened.
async fn measure(
    config: &Config,
    flags: &PerfFlags,
    repo: &GitRepo,
    head: &HeadState,
    plan: BasePlan,
    progress: &Progress,
    shutdown: &mut Shutdown,
) -> Result<(Collected, Selected)> {
    let filter = flags.select.filter.as_deref();
    let mut selection = config.selection(filter);
    let mut first_phases = Vec::new();
    let mut shard = None;
    if let Some(spec) = flags.shard {
        let (listed, phase) =
            selection::check(config, filter, selection.as_deref(), progress, shutdown).await?;
        first_phases.push(phase);
        let part = shard_part(&listed, spec, filter, flags.measure.quick)?;
        progress.line(&format!(
            "shard {spec}: {} of the {} benchmarks, scenarios and plans selected",
            part.units.len(),
            listed.len()
        ));
        selection = Some(suites::exact_filter(&part.units));
        shard = Some(part);
    } else if let Some(selection) = &selection {
        let (_, phase) =
            selection::check(config, filter, Some(selection), progress, shutdown).await?;
        first_phases.push(phase);
    }
    let (services, services_phase) = services::start(
        config,
        flags.measure.services,
        selection.as_deref(),
        progress,
        shutdown,
    )
    .await?;
    first_phases.push(services_phase);
    let measuring = Measuring {
        config,
        services: &services,
        progress,
        quick: flags.measure.quick,
        selection: selection.as_deref(),
    };
    // A shard's record is a part, kept apart from whole runs like a filtered run's.
    let filtered = filter.is_some() || shard.is_some();
    let request = RunRequest {
        paired_rounds: flags.paired.then_some(flags.paired_rounds),
        filtered,
        shard: shard.as_ref(),
    };
    let collected = shutdown
        .until_interrupted(collect::collect(
            &measuring,
            repo,
            head,
            plan,
            first_phases,
            request,
        ))
        .await;
    services::tear_down(services, progress).await;
    let selected = Selected {
        filtered,
        selection: selection.is_some(),
        shard,
    };
    Ok((collected?, selected))
}

/// `--from-record`: HEAD's record read, not measured (the merge of a sharded run's records);
/// its base must be stored (`perf merge` of the shards' parts of the base puts it in the runs
/// directory).
fn from_record(
    config: &Config,
    flags: &PerfFlags,
    repo: &GitRepo,
    head: &HeadState,
    plan: BasePlan,
    path: &std::path::Path,
    progress: &Progress,
) -> Result<(Collected, Selected)> {
    let record = read_whole_record(
        path,
        "--from-record",
        "of a sharded run",
        "every shard's record first (`cargo xtask perf merge <record>...`)",
    )?;
    if record.commit != head.commit {
        anyhow::bail!(
            "--from-record {}: it measured {}, but HEAD is {}: its comparison, changed files and comment would be another commit's.\n  fix: check out {} (the commit its shards measured) first",
            path.display(),
            short_sha(&record.commit),
            short_sha(&head.commit),
            record.commit
        );
    }
    progress.line(&format!(
        "head {}: the record {} ({} metrics), measured earlier",
        short_sha(&record.commit),
        path.display(),
        record.metrics.len()
    ));
    let plan = match &flags.base_record {
        Some(base_path) => given_base(base_path)?,
        None => plan,
    };
    let collected = collect::from_record(config, progress, repo, plan, record)?;
    let filter = flags.select.filter.as_deref();
    let selected = Selected {
        filtered: filter.is_some(),
        selection: config.selection(filter).is_some(),
        shard: None,
    };
    Ok((collected, selected))
}

/// The record at `path`, given with `flag`: an error when there is none, or when it is one
/// shard's part (`of_what`: "of a sharded run"), whose fix is to merge `what_to_merge` first.
fn read_whole_record(
    path: &std::path::Path,
    flag: &str,
    of_what: &str,
    what_to_merge: &str,
) -> Result<record::RunRecord> {
    let record = record::read_record(path)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{flag} {}: no such record.\n  fix: pass the merged record (`cargo xtask perf merge` prints its path)",
            path.display()
        )
    })?;
    if let Some(shard) = &record.shard {
        anyhow::bail!(
            "{flag} {}: it is shard {}/{} {of_what}, one part of it.\n  fix: merge {what_to_merge} and pass the merged record",
            path.display(),
            shard.index,
            shard.count
        );
    }
    Ok(record)
}

/// `--base-record`: the base is that record, whatever the lookup would have chosen.
fn given_base(path: &std::path::Path) -> Result<BasePlan> {
    let record = read_whole_record(
        path,
        "--base-record",
        "of the base",
        "the base's parts first (`cargo xtask perf merge <shard out>/filtered/base/*.json`)",
    )?;
    let choice = crate::baseline::BaseChoice {
        commit: record.commit.clone(),
        how_chosen: "--base-record".to_owned(),
    };
    Ok(BasePlan::Stored {
        fallback: choice.clone(),
        choice,
        source: path.display().to_string(),
        record: Box::new(record),
        passed_over: Vec::new(),
    })
}

/// The files (from the workspace's root) the change from `base` to the work tree touched;
/// empty when git cannot tell (then no instruction row is labelled as moved outside it).
fn changed_files(repo: &GitRepo, workspace: &std::path::Path, base: &str) -> Vec<String> {
    let prefix = workspace
        .strip_prefix(repo.root())
        .ok()
        .and_then(|p| p.to_str())
        .map(|p| {
            if p.is_empty() {
                String::new()
            } else {
                format!("{p}/")
            }
        })
        .unwrap_or_default();
    repo.changed_files(base)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|file| file.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

/// What a run measured: part of the suites (`--filter`, a shard) or all of them, and a shard's
/// part.
struct Selected {
    /// A part of the run's suites: a base metric head lacks was not measured, rather than
    /// removed, and the record is never a baseline.
    filtered: bool,
    /// A selection (`--filter`, the configured `suites`, a shard) was measured.
    selection: bool,
    shard: Option<ShardInfo>,
}

/// The part of `listed` (the selection's names) shard `spec` measures, balanced by each suite's
/// estimated time in this profile.
fn shard_part(
    listed: &[String],
    spec: ShardSpec,
    filter: Option<&str>,
    quick: bool,
) -> Result<ShardInfo> {
    if listed.len() < spec.count as usize {
        anyhow::bail!(
            "--shard {spec}: the selection has {} benchmarks, scenarios and plans, fewer than {} shards.\n  fix: use at most {} shards for this selection",
            listed.len(),
            spec.count,
            listed.len()
        );
    }
    let profile = record::Profile::of(quick);
    let partition = crate::shard::partition(listed, spec.count, |unit| {
        crate::shard::estimated_seconds(unit, profile)
    });
    Ok(partition.info(spec, filter))
}

/// Judges what was collected, stores HEAD's record (with its acceptance), writes every report
/// format and prints the terminal's text.
fn judge_and_report(
    config: &Config,
    flags: &PerfFlags,
    repo: &GitRepo,
    collected: Collected,
    selected: Selected,
    progress: &Progress,
) -> Result<(Outcome, RunReport)> {
    let layout = &config.layout;
    let Collected {
        mut head,
        base,
        history,
        paired,
    } = collected;
    let filtered = selected.filtered;
    let changed_files = base
        .record
        .as_ref()
        .map(|base| changed_files(repo, &layout.root, &base.commit))
        .unwrap_or_default();
    let scope = judge::Scope {
        filtered,
        selected: selected.selection,
        changed_files: &changed_files,
    };
    let mut judgement = judge::judge(
        &head,
        base.record.as_ref(),
        &config.metadata,
        &history.values(),
        &paired,
        scope,
    );
    if let Some(reason) = &flags.accept
        && !judgement.accept(reason, repo.acceptor(flags.accepted_by.as_deref()))
    {
        progress.line("--accept: no regression and no broken budget to accept");
    }
    let outcome = judgement.outcome();
    head.acceptance = judgement.acceptance;
    head.shard = selected.shard;
    if let (false, Some(base)) = (paired.is_empty(), &base.record) {
        head.paired = Some(record::PairedRounds {
            base: base.commit.clone(),
            samples: paired.clone(),
        });
    }
    // A filtered run (or a shard) measured only part of the suites: never a baseline candidate.
    let record_dir = if filtered {
        layout.out_dir.join("filtered")
    } else {
        layout.runs_dir()
    };
    let record_path = record::store_record(&record_dir, &head)?;
    let report = RunReport {
        head,
        baseline: base.disclosure,
        comparison: judgement.comparison,
        budgets: judgement.budgets,
        record_path: Some(record_path.display().to_string()),
        base: base.record,
        history: crate::history::history_series(&history.records, &Default::default()),
    };
    report::write_all(&report, &layout.out_dir)?;
    progress.finish();
    let style = TerminalStyle::detect(flags.ci, flags.verbose);
    print!("{}", report::terminal_text(&report, style, &layout.out_dir));
    Ok((outcome, report))
}
