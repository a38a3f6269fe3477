//! The collect stage: measure a checkout with every selected suite and turn it into a
//! [`RunRecord`]; for a run, measure HEAD in the work tree and the base as its plan says
//! (a stored record, or measured in a worktree of its own), read the target branch's records
//! for noise bands and plots, and time both sides side by side with `--paired`. Its output,
//! [`Collected`], is all the judge needs.

use anyhow::Result;
use chrono::Utc;

use crate::baseline::{BaseChoice, BasePlan, BaselineStore, GitRepo, HeadState, Lineage};
use crate::compare;
use crate::config::Config;
use crate::fingerprint;
use crate::progress::Progress;
use crate::provision::Services;
use crate::record::{self, Environment, Phase, Profile, RunRecord, SCHEMA_VERSION, ShardInfo};
use crate::render::{BaselineDisclosure, short_sha};
use crate::suites::{self, Checkout, Measurement, SuiteContext};

/// How many commits of the target branch (the base and its first parents) noise bands and
/// history plots are learned from.
const HISTORY_DEPTH: u32 = 31;

/// What a measuring command measures with, once services are up.
pub struct Measuring<'a> {
    pub config: &'a Config,
    pub services: &'a Services,
    pub progress: &'a Progress,
    /// `--quick`: shorter wall-time measurement.
    pub quick: bool,
    /// What is measured (`--filter`, else the configured `suites`; `None`: everything).
    pub selection: Option<&'a str>,
}

impl Measuring<'_> {
    /// The suites' context for one run (`run_id` names its databases and cache namespaces).
    pub fn suite_context(&self, run_id: String, keep_for_pairing: bool) -> SuiteContext<'_> {
        SuiteContext {
            layout: &self.config.layout,
            services: self.services,
            seed: self.config.metadata.seed,
            quick: self.quick,
            filter: self.selection,
            progress: self.progress,
            run_id,
            keep_for_pairing,
        }
    }

    /// How this run's records say they were measured.
    pub fn environment(&self) -> Environment {
        fingerprint::capture(&self.config.metadata, self.services.description())
    }

    fn profile(&self) -> Profile {
        Profile::of(self.quick)
    }

    /// A record of `revision`, measured now.
    pub fn record(
        &self,
        environment: &Environment,
        revision: &HeadState,
        measurement: Measurement,
    ) -> RunRecord {
        RunRecord {
            schema_version: SCHEMA_VERSION,
            commit: revision.commit.clone(),
            dirty: revision.dirty,
            branch: revision.branch.clone(),
            created_at: Utc::now(),
            profile: self.profile(),
            environment: environment.clone(),
            phases: measurement.phases,
            metrics: measurement.metrics,
            notes: measurement.notes,
            acceptance: None,
            details: measurement.details,
            shard: None,
            paired: None,
        }
    }

    /// HEAD measured in the work tree, built in the workspace's target directory.
    pub async fn in_work_tree(
        &self,
        context: &SuiteContext<'_>,
        label: &str,
        commit: &str,
    ) -> Result<Measurement> {
        let layout = &self.config.layout;
        Ok(suites::measure(
            context,
            &Checkout {
                label,
                dir: &layout.root,
                commit,
                target_dir: &layout.target_dir,
                harness_worktree: false,
            },
        )
        .await?)
    }
}

/// Checks `commit` out in a git worktree of its own, measures it with its own binaries (built
/// in the bases' target directory, first seeded with HEAD's dependencies) and removes the
/// worktree.
pub async fn in_worktree(
    context: &SuiteContext<'_>,
    repo: &GitRepo,
    label: &str,
    commit: &str,
) -> Result<Measurement> {
    let layout = context.layout;
    let worktree = repo.add_worktree(commit, &layout.worktree_dir(commit, &context.run_id))?;
    context.progress.line(&format!(
        "{label}: measuring {} in worktree {}",
        short_sha(commit),
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
            harness_worktree: true,
        },
    )
    .await?;
    drop(worktree);
    if seeded {
        measurement.phases.insert(0, seeding);
    }
    Ok(measurement)
}

/// A short id, unique enough per run, that names the run's databases and cache namespaces.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:08x}", nanos ^ std::process::id().rotate_left(16))
}

/// What a run asked of the collect stage besides what to measure.
#[derive(Debug, Clone, Copy)]
pub struct RunRequest<'a> {
    /// `--paired`: its rounds; the base's binaries are kept and both sides timed side by side.
    pub paired_rounds: Option<u32>,
    /// `--filter` was given: a base measured here is not stored as a record.
    pub filtered: bool,
    /// `--shard`: this shard's part. A base measured here is stored as that shard's part of
    /// the base (`<out>/filtered/base/<sha>.json`), for `perf merge`.
    pub shard: Option<&'a ShardInfo>,
}

/// The base side of a run.
pub struct BaseSide {
    /// What the report says of the base: which commit, how chosen, from where, what was
    /// passed over; or why there is none.
    pub disclosure: BaselineDisclosure,
    pub record: Option<RunRecord>,
    /// The phases of a base measured in this run (its build and suites).
    pub measured_phases: Option<Vec<Phase>>,
}

/// What the collect stage hands to the judge.
pub struct Collected {
    pub head: RunRecord,
    pub base: BaseSide,
    /// The target branch's records comparable with the base (the base last), oldest first.
    pub history: Lineage,
    /// Per-round medians of both sides' wall-time benchmarks (`--paired`), else empty.
    pub paired: compare::PairedSamples,
}

/// Measures HEAD, then the base as `plan` says, reads the target branch's records and, with
/// `--paired`, times both sides side by side. `first_phases` (the selection check's build, the
/// services' start) lead the head record's phases.
pub async fn collect(
    measuring: &Measuring<'_>,
    repo: &GitRepo,
    head: &HeadState,
    plan: BasePlan,
    first_phases: Vec<Phase>,
    request: RunRequest<'_>,
) -> Result<Collected> {
    // Unpaired runs keep the binaries too: a far move is timed side by side anyway.
    let keep = request.paired_rounds.is_some() || !matches!(plan, BasePlan::None { .. });
    let context = measuring.suite_context(run_id(), keep);
    let environment = measuring.environment();
    let mut head_measurement = measuring
        .in_work_tree(&context, "head", &head.commit)
        .await?;
    let head_side = head_measurement.paired_side.take();
    let mut head_record = measuring.record(&environment, head, head_measurement);
    head_record.phases.splice(0..0, first_phases);

    let (base, base_paired) =
        base_side(measuring, &context, repo, plan, &environment, request).await?;
    if let Some(measured) = &base.measured_phases {
        // This run's time includes the base's build and measurement.
        head_record.phases.extend(measured.iter().cloned());
    }
    let history = match &base.record {
        Some(base) => target_branch_history(measuring.config, measuring.progress, repo, base)?,
        None => Lineage::default(),
    };
    let sides = PairingSides {
        base: base_paired,
        head: head_side,
    };
    let paired = match request.paired_rounds {
        Some(rounds) => {
            time_side_by_side(measuring, &context, sides, rounds, None, &mut head_record).await?
        }
        None => match &base.record {
            Some(base_record) => {
                time_far_moves(
                    measuring,
                    &context,
                    repo,
                    sides,
                    base_record,
                    &mut head_record,
                )
                .await?
            }
            None => compare::PairedSamples::new(),
        },
    };
    Ok(Collected {
        head: head_record,
        base,
        history,
        paired,
    })
}

/// What `perf --from-record` judges: `head`, a record measured earlier (a merge of shards), and
/// the base `plan` names, which must be a stored record comparable with it (nothing is
/// measured here); the paired samples the record kept, when they were timed against that
/// base.
pub fn from_record(
    config: &Config,
    progress: &Progress,
    repo: &GitRepo,
    plan: BasePlan,
    mut head: RunRecord,
) -> Result<Collected> {
    let (source, passed_over) = usable_base(plan, &head.environment);
    let base = match known_side(source, passed_over) {
        Ok(side) => side,
        Err((choice, passed_over)) => anyhow::bail!(
            "--from-record: no comparable record of the base {} ({}){}; this command measures nothing.\n  fix: merge the shards' parts of the base into this output directory (`cargo xtask perf merge <shard out>/filtered/base/*.json --out <out>`), or store the base's record, or measure with `cargo xtask perf`",
            short_sha(&choice.commit),
            choice.how_chosen,
            if passed_over.is_empty() {
                String::new()
            } else {
                format!("; passed over: {}", passed_over.join("; "))
            }
        ),
    };
    let history = match &base.record {
        Some(base) => target_branch_history(config, progress, repo, base)?,
        None => Lineage::default(),
    };
    let paired = match (head.paired.take(), &base.record) {
        (Some(paired), Some(base)) if paired.base == base.commit => paired.samples,
        (Some(paired), _) => {
            head.notes.push(format!(
                "the record's side-by-side rounds were timed against {}, not this base: not judged",
                short_sha(&paired.base)
            ));
            compare::PairedSamples::new()
        }
        (None, _) => compare::PairedSamples::new(),
    };
    Ok(Collected {
        head,
        base,
        history,
        paired,
    })
}

/// Both sides' kept binaries, where this run has them.
struct PairingSides {
    base: Option<suites::paired::PairedSide>,
    head: Option<suites::paired::PairedSide>,
}

/// `--paired` (`only`: `None`) or an unpaired run's far moves: both sides timed side by side
/// in `rounds` first rounds, the record told how long it took and what the rounds noted.
async fn time_side_by_side(
    measuring: &Measuring<'_>,
    context: &SuiteContext<'_>,
    sides: PairingSides,
    rounds: u32,
    only: Option<&[String]>,
    head_record: &mut RunRecord,
) -> Result<compare::PairedSamples> {
    let (Some(base_side), Some(head_side)) = (sides.base, sides.head) else {
        head_record.notes.push(
            "--paired: the filter selects no wall-time benchmark, so nothing was timed side by side"
                .to_owned(),
        );
        return Ok(compare::PairedSamples::new());
    };
    let started = std::time::Instant::now();
    measuring.progress.line(&format!(
        "paired: {rounds} interleaved rounds of base {} and head {}",
        short_sha(&base_side.commit),
        short_sha(&head_side.commit)
    ));
    let plan = suites::paired::RoundsPlan {
        rounds,
        thresholds: &measuring.config.metadata.thresholds,
        paired: measuring.config.metadata.paired,
        only,
    };
    let measured = suites::paired::run_rounds(context, [&base_side, &head_side], plan).await?;
    head_record.phases.push(Phase {
        name: format!("paired: {rounds} rounds"),
        seconds: started.elapsed().as_secs_f64(),
    });
    head_record.notes.extend(measured.notes);
    Ok(measured.samples)
}

/// An unpaired run whose wall-time benchmarks moved far (`compare::far_unpaired_moves`): those
/// benchmarks are timed side by side with the base's own binaries (kept when the base was
/// measured in this run, else built in a worktree now) and judged by the paired test, not left
/// as information. Nothing when nothing moved that far.
async fn time_far_moves(
    measuring: &Measuring<'_>,
    context: &SuiteContext<'_>,
    repo: &GitRepo,
    mut sides: PairingSides,
    base_record: &RunRecord,
    head_record: &mut RunRecord,
) -> Result<compare::PairedSamples> {
    let far = compare::far_unpaired_moves(base_record, head_record);
    if far.is_empty() || sides.head.is_none() {
        return Ok(compare::PairedSamples::new());
    }
    let factor = compare::FAR_MOVE_FACTOR;
    measuring.progress.line(&format!(
        "wall time: {} moved at least {factor}x from the base; timing them side by side",
        far.join(", ")
    ));
    if sides.base.is_none() {
        let started = std::time::Instant::now();
        sides.base = Some(built_in_worktree(context, repo, "base", &base_record.commit).await?);
        head_record.phases.push(Phase {
            name: "base: build for the far moves' rounds".to_owned(),
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let rounds = suites::paired::DEFAULT_ROUNDS;
    let samples =
        time_side_by_side(measuring, context, sides, rounds, Some(&far), head_record).await?;
    head_record.notes.push(format!(
        "wall time without --paired: {} moved at least {factor}x from the base with the \
         intervals apart, so this run timed {} side by side with the base and the paired test \
         judged {}",
        far.join(", "),
        if far.len() == 1 { "it" } else { "them" },
        if far.len() == 1 { "it" } else { "them" },
    ));
    Ok(samples)
}

/// Checks `commit` out in a worktree of its own, builds its `bench-suite` (in the bases'
/// target directory) and keeps its `suite` and `wall_time` binaries for paired rounds; measures
/// nothing.
async fn built_in_worktree(
    context: &SuiteContext<'_>,
    repo: &GitRepo,
    label: &str,
    commit: &str,
) -> Result<suites::paired::PairedSide> {
    let layout = context.layout;
    let worktree = repo.add_worktree(commit, &layout.worktree_dir(commit, &context.run_id))?;
    suites::build_guard::seed_from(&layout.target_dir, &layout.base_target_dir(), |m| {
        context.progress.line(&format!("{label}: {m}"))
    })
    .await?;
    let side = suites::build_for_pairing(
        context,
        &Checkout {
            label,
            dir: worktree.path(),
            commit,
            target_dir: &layout.base_target_dir(),
            harness_worktree: true,
        },
    )
    .await?;
    drop(worktree);
    Ok(side)
}

/// Where the base's record comes from, once HEAD's environment is known.
enum BaseSource {
    /// Nothing to compare with, and why.
    None(String),
    /// A comparable stored record, and where it is.
    Stored {
        choice: BaseChoice,
        source: String,
        record: Box<RunRecord>,
    },
    /// To be measured in a worktree in this run.
    Measure(BaseChoice),
}

/// The base's source and what was passed over. A stored record not comparable with HEAD's
/// environment is passed over for the plan's fallback, measured here.
fn usable_base(plan: BasePlan, head_environment: &Environment) -> (BaseSource, Vec<String>) {
    match plan {
        BasePlan::None { reason } => (BaseSource::None(reason), Vec::new()),
        BasePlan::Stored {
            choice,
            fallback,
            source,
            record,
            mut passed_over,
        } => {
            let mismatches = compare::fingerprint_mismatches(&record.environment, head_environment);
            if mismatches.is_empty() {
                let stored = BaseSource::Stored {
                    choice,
                    source,
                    record,
                };
                (stored, passed_over)
            } else {
                passed_over.push(format!(
                    "stored record {source} is not comparable ({})",
                    mismatches.join("; ")
                ));
                (BaseSource::Measure(fallback), passed_over)
            }
        }
        BasePlan::Measure {
            choice,
            passed_over,
        } => (BaseSource::Measure(choice), passed_over),
    }
}

/// The base side as `plan` says: none, a stored record, or measured in a worktree now (its
/// record stored in the runs directory unless the run is filtered), with its binaries kept
/// for `--paired`.
async fn base_side(
    measuring: &Measuring<'_>,
    context: &SuiteContext<'_>,
    repo: &GitRepo,
    plan: BasePlan,
    environment: &Environment,
    request: RunRequest<'_>,
) -> Result<(BaseSide, Option<suites::paired::PairedSide>)> {
    let (source, passed_over) = usable_base(plan, environment);
    Ok(match known_side(source, passed_over) {
        Ok(side) => (side, None),
        Err((choice, passed_over)) => {
            let mut measurement = in_worktree(context, repo, "base", &choice.commit).await?;
            let paired_side = measurement.paired_side.take();
            let phases = measurement.phases.clone();
            let revision = HeadState {
                commit: choice.commit.clone(),
                dirty: false,
                branch: None,
            };
            let mut record = measuring.record(environment, &revision, measurement);
            if let Some(shard) = request.shard {
                record.shard = Some(shard.clone());
                let dir = measuring
                    .config
                    .layout
                    .out_dir
                    .join("filtered")
                    .join("base");
                let path = record::store_record(&dir, &record)?;
                measuring.progress.line(&format!(
                    "base: shard {}/{}'s part stored at {}",
                    shard.index,
                    shard.count,
                    path.display()
                ));
            } else if !request.filtered {
                let path = record::store_record(&measuring.config.layout.runs_dir(), &record)?;
                measuring
                    .progress
                    .line(&format!("base: record stored at {}", path.display()));
            }
            let side = BaseSide {
                disclosure: BaselineDisclosure::Used {
                    commit: choice.commit,
                    how_chosen: choice.how_chosen,
                    source: "measured in a git worktree in this run".to_owned(),
                    passed_over,
                },
                record: Some(record),
                measured_phases: Some(phases),
            };
            (side, paired_side)
        }
    })
}

/// The base's side when nothing has to be measured for it (no base, or a stored record);
/// else the base to measure, with what was passed over.
fn known_side(
    source: BaseSource,
    passed_over: Vec<String>,
) -> std::result::Result<BaseSide, (BaseChoice, Vec<String>)> {
    match source {
        BaseSource::None(reason) => Ok(BaseSide {
            disclosure: BaselineDisclosure::None { reason },
            record: None,
            measured_phases: None,
        }),
        BaseSource::Stored {
            choice,
            source,
            record,
        } => Ok(BaseSide {
            disclosure: BaselineDisclosure::Used {
                commit: choice.commit,
                how_chosen: choice.how_chosen,
                source: format!("stored record {source}"),
                passed_over,
            },
            record: Some(*record),
            measured_phases: None,
        }),
        BaseSource::Measure(choice) => Err((choice, passed_over)),
    }
}

/// The stored records (baseline branch, the base's machine class) of the base and its first
/// parents comparable with the base, the base last: what noise bands are learned from and the
/// history plots show. A record that cannot be read is left out and said so.
fn target_branch_history(
    config: &Config,
    progress: &Progress,
    repo: &GitRepo,
    base: &RunRecord,
) -> Result<Lineage> {
    let metadata = &config.metadata;
    let store = BaselineStore::open(repo.root(), &metadata.baseline_branch)?;
    let mut lineage = Lineage::read(
        repo,
        &store,
        &base.commit,
        HISTORY_DEPTH,
        &base.environment.machine_class,
    )?;
    for left_out in &lineage.left_out {
        progress.line(&format!("history: left out {left_out}"));
    }
    lineage
        .records
        .retain(|record| record.commit != base.commit);
    lineage.records.push(base.clone());
    lineage.keep_comparable_with(&base.environment, "the base");
    Ok(lineage)
}
