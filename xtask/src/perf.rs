//! `cargo xtask perf`: the pipeline in one screen. Everything that can fail on bad input (the
//! config, the git revisions, stored records) is checked before any service starts; then
//! services start, suites run, the record is stored, the comparison is rendered, and services
//! are torn down whatever happened, including Ctrl-C (SIGINT) and SIGTERM.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::baseline::{self, BaseChoice, GitRepo, HeadState};
use crate::compare::{self, Comparison};
use crate::config::{self, PerfMetadata};
use crate::exit::Outcome;
use crate::fingerprint;
use crate::flags::PerfFlags;
use crate::progress::{Progress, ProgressStyleChoice};
use crate::provision::{ProvisionOptions, Services};
use crate::record::{self, Phase, Profile, RunRecord, SCHEMA_VERSION};
use crate::render::{self, BaselineDisclosure, Report};
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

    async fn received(&mut self) -> &'static str {
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
        choice: BaseChoice,
        path: PathBuf,
        record: Box<RunRecord>,
    },
    Measure {
        choice: BaseChoice,
        why: String,
    },
}

/// Runs the whole pipeline.
pub async fn run(flags: PerfFlags, shutdown: &mut Shutdown) -> Result<Outcome> {
    let progress = Progress::with_style(ProgressStyleChoice::detect(flags.ci));
    let layout = Layout::new(flags.out.as_deref());
    if flags.list {
        progress.line("list: building bench-suite to ask its tools for their benchmarks");
        let listed = suites::listing::list(&layout, flags.filter.as_deref()).await?;
        progress.finish();
        if listed.is_empty() {
            bail!(
                "--filter {:?} selects no benchmark or scenario.\n  fix: run `cargo xtask perf --list` to see the names",
                flags.filter.as_deref().unwrap_or_default()
            );
        }
        print!("{}", suites::listing::render(&listed));
        return Ok(Outcome::Success);
    }
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
            BasePlan::Stored { choice, path, .. } => format!(
                "base {} ({}; stored record {})",
                render::short_sha(&choice.commit),
                choice.how_chosen,
                path.display()
            ),
            BasePlan::Measure { choice, why } => format!(
                "base {} ({}; {why}: it will be measured in a worktree)",
                render::short_sha(&choice.commit),
                choice.how_chosen
            ),
        }
    ));

    let (postgres_image, redis_image) = config::image_choices(&metadata.images);
    let options = ProvisionOptions {
        mode: flags.services,
        postgres_image,
        redis_image,
    };
    let report_line = |line: &str| progress.line(line);
    let services_started = std::time::Instant::now();
    let services = tokio::select! {
        started = Services::start(&options, &report_line) => started?,
        signal = shutdown.received() => bail!(interrupted(signal)),
    };
    let services_phase = Phase {
        name: "services: start".to_owned(),
        seconds: services_started.elapsed().as_secs_f64(),
    };
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
        outcome = measure_and_report(&run, base_plan, services_phase) => outcome,
        signal = shutdown.received() => Err(anyhow::anyhow!(interrupted(signal))),
    };
    progress.line("services: tearing down");
    if let Err(error) = services.teardown().await {
        progress.line(&format!("services: teardown failed: {error}"));
    }
    outcome
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
        Some("none") => {
            return Ok(BasePlan::None {
                reason: "--base none".to_owned(),
            });
        }
        Some(rev) => BaseChoice {
            commit: repo.resolve(rev)?,
            how_chosen: format!("--base {rev}"),
        },
        None => match repo.default_base(head, &metadata.target_branch)? {
            Some(choice) => choice,
            None => {
                return Ok(BasePlan::None {
                    reason: "HEAD has no parent and no target branch to compare with".to_owned(),
                });
            }
        },
    };
    match baseline::stored_record(&layout.runs_dir(), &choice.commit)? {
        Some((path, record)) => Ok(BasePlan::Stored {
            choice,
            path,
            record: Box::new(record),
        }),
        None => Ok(BasePlan::Measure {
            choice,
            why: format!("no stored record in {}", layout.runs_dir().display()),
        }),
    }
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
    services_phase: Phase,
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
    let context = SuiteContext {
        layout,
        services,
        seed: metadata.seed,
        quick: flags.quick,
        filter: flags.filter.as_deref(),
        progress,
        run_id,
    };
    let environment = fingerprint::capture(metadata, services.description());
    let profile = if flags.quick {
        Profile::Quick
    } else {
        Profile::Full
    };
    let new_record =
        |commit: &str, dirty: bool, branch: Option<String>, m: suites::Measurement| RunRecord {
            schema_version: SCHEMA_VERSION,
            commit: commit.to_owned(),
            dirty,
            branch,
            created_at: Utc::now(),
            profile,
            environment: environment.clone(),
            phases: m.phases,
            metrics: m.metrics,
            notes: m.notes,
        };

    let head_measurement = suites::measure(
        &context,
        &Checkout {
            label: "head",
            dir: &layout.root,
            commit: &head.commit,
            target_dir: &layout.target_dir,
        },
    )
    .await?;
    let mut head_record = new_record(
        &head.commit,
        head.dirty,
        head.branch.clone(),
        head_measurement,
    );
    head_record.phases.insert(0, services_phase);

    let mut passed_over = Vec::new();
    let to_measure = match base_plan {
        BasePlan::None { reason } => Err(reason),
        BasePlan::Stored {
            choice,
            path,
            record,
        } => {
            let mismatches =
                compare::fingerprint_mismatches(&record.environment, &head_record.environment);
            if mismatches.is_empty() {
                Ok((choice, Some((path, record))))
            } else {
                passed_over.push(format!(
                    "stored record {} is not comparable ({})",
                    path.display(),
                    mismatches.join("; ")
                ));
                Ok((choice, None))
            }
        }
        BasePlan::Measure { choice, why } => {
            passed_over.push(why);
            Ok((choice, None))
        }
    };
    let (baseline_disclosure, base_record) = match to_measure {
        Err(reason) => (BaselineDisclosure::None { reason }, None),
        Ok((choice, Some((path, record)))) => (
            BaselineDisclosure::Used {
                commit: choice.commit,
                how_chosen: choice.how_chosen,
                source: format!("stored record {}", path.display()),
                passed_over,
            },
            Some(*record),
        ),
        Ok((choice, None)) => {
            let worktree =
                repo.add_worktree(&choice.commit, &layout.worktree_dir(&choice.commit))?;
            progress.line(&format!(
                "base: measuring {} in worktree {}",
                render::short_sha(&choice.commit),
                worktree.path().display()
            ));
            let measurement = suites::measure(
                &context,
                &Checkout {
                    label: "base",
                    dir: worktree.path(),
                    commit: &choice.commit,
                    target_dir: &layout.base_target_dir(),
                },
            )
            .await?;
            drop(worktree);
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

    let comparison: Option<Comparison> = base_record
        .as_ref()
        .map(|base| compare::compare(base, &head_record, &metadata.thresholds));
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
        record_path: Some(record_path.display().to_string()),
    };
    let markdown = render::markdown(&report);
    record::write_atomically(&layout.out_dir.join("report.md"), markdown.as_bytes())?;
    let json = serde_json::to_vec_pretty(&render::json(&report))?;
    record::write_atomically(&layout.out_dir.join("report.json"), &json)?;
    run.progress.finish();
    print!("{}", render::terminal(&report));
    if flags.ci {
        append_step_summary(&markdown)?;
    }
    Ok(match &comparison {
        Some(c) if c.has_regression() => Outcome::RegressionFound,
        _ => Outcome::Success,
    })
}

/// Appends the Markdown report to `GITHUB_STEP_SUMMARY` when GitHub Actions provides one.
fn append_step_summary(markdown: &str) -> Result<()> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| {
            format!(
                "opening GITHUB_STEP_SUMMARY {}",
                PathBuf::from(&path).display()
            )
        })?;
    file.write_all(markdown.as_bytes())?;
    Ok(())
}

/// A short id, unique enough per run, that names the run's databases and cache namespaces.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:08x}", nanos ^ std::process::id().rotate_left(16))
}
