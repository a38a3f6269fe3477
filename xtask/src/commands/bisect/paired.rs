//! `perf bisect --paired`: the first commit on the path where a wall-time metric is judged
//! slower (or faster) than at the good end by the paired test. The good end is built and
//! measured once, in a worktree, with its binaries kept; each commit the search looks at is
//! built and measured in a worktree too, then both are timed side by side in interleaved rounds
//! (as `perf --paired`, more rounds while the verdict is undecided) and the metric's paired
//! verdict says whether it crossed. The bad end
//! must be judged changed, else there is nothing to bisect. Nothing is read from stored records
//! (a wall time is only comparable within one job), and the services run from the good end's
//! measurement to the end.

use anyhow::{Context, Result, bail};

use crate::baseline::GitRepo;
use crate::bisect::Bisection;
use crate::compare::{self, MetricComparison, Verdict};
use crate::config::Config;
use crate::exit::Outcome;
use crate::flags::BisectFlags;
use crate::pipeline::collect::{self, Measuring};
use crate::pipeline::services;
use crate::progress::Progress;
use crate::provision::Services;
use crate::record::Suite;
use crate::render::{certainty, format_change, short_sha};
use crate::shutdown::Shutdown;
use crate::suites::paired::PairedSide;

/// Bisects `path` (good end first) by the paired test against the good end, and prints the
/// first commit judged changed.
pub async fn run(
    config: &Config,
    flags: &BisectFlags,
    repo: &GitRepo,
    path: &[String],
    progress: &Progress,
    shutdown: &mut Shutdown,
) -> Result<Outcome> {
    let metric = flags.metric.as_str();
    if Suite::of_metric(metric) != Some(Suite::WallTime) {
        bail!(
            "--paired judges wall time, and {metric} is not a wall-time metric.\n  fix: drop --paired (a count is bisected from one measurement per commit), or pass a wall_time/… metric"
        );
    }
    progress.line(&format!(
        "bisect --paired: {metric} from {} (good) to {} (bad): {} commits, {} rounds per step",
        short_sha(&path[0]),
        short_sha(&path[path.len() - 1]),
        path.len(),
        flags.paired_rounds
    ));
    let mode = config.provision.mode;
    let (started, _) = services::start(config, mode, Some(metric), progress, shutdown).await?;
    let mut steps = Steps {
        config,
        repo,
        metric,
        rounds: flags.paired_rounds,
        progress,
        services: &started,
        good: None,
        judged: 0,
    };
    let searched = steps.search(path, shutdown).await;
    let judged = steps.judged;
    services::tear_down(started, progress).await;
    let (first, row) = searched?;
    progress.finish();
    println!(
        "bisect: {metric} first judged {} at {} \"{}\"",
        if row.verdict == Verdict::Regression {
            "slower"
        } else {
            "faster"
        },
        short_sha(&path[first]),
        repo.subject(&path[first]).unwrap_or_default()
    );
    println!(
        "  {} against the good end {} ({})",
        format_change(row.change_pct),
        short_sha(&path[0]),
        certainty(&row)
    );
    println!(
        "  timed {judged} of {} commits side by side with the good end",
        path.len()
    );
    Ok(Outcome::Success)
}

/// The paired bisection's state: the good end's kept binaries, and how many commits were
/// timed against it.
struct Steps<'a> {
    config: &'a Config,
    repo: &'a GitRepo,
    metric: &'a str,
    rounds: u32,
    progress: &'a Progress,
    services: &'a Services,
    good: Option<PairedSide>,
    judged: usize,
}

impl Steps<'_> {
    /// The bad end first (it must be judged changed), then the binary search: the first
    /// changed commit's index and its row.
    async fn search(
        &mut self,
        path: &[String],
        shutdown: &mut Shutdown,
    ) -> Result<(usize, MetricComparison)> {
        let last = path.len() - 1;
        self.good = Some(self.side(&path[0], "base", shutdown).await?);
        let bad = self.judge(&path[last], shutdown).await?;
        if !matches!(bad.verdict, Verdict::Regression | Verdict::Improvement) {
            bail!(
                "{} at --bad {} is not judged changed against --good {} by the paired test ({}; {}): nothing to bisect.\n  fix: pass ends on either side of a change, or more rounds (--paired-rounds)",
                self.metric,
                short_sha(&path[last]),
                short_sha(&path[0]),
                format_change(bad.change_pct),
                bad.rule
            );
        }
        let direction = bad.verdict;
        let mut first_row = bad;
        let mut bisection = Bisection::new(path.len());
        while let Some(index) = bisection.next() {
            let row = self.judge(&path[index], shutdown).await?;
            let crossed = row.verdict == direction;
            if crossed {
                first_row = row;
            }
            bisection.crossed(index, crossed);
        }
        Ok((bisection.first(), first_row))
    }

    /// `commit` built and measured in a worktree (labelled `label`, the same length as the
    /// other side's: a binary's path length moves what its allocator does first), its
    /// binaries kept.
    async fn side(&self, commit: &str, label: &str, shutdown: &mut Shutdown) -> Result<PairedSide> {
        let measuring = self.measuring();
        let context = measuring.suite_context(collect::run_id(), true);
        let measurement = shutdown
            .until_interrupted(collect::in_worktree(&context, self.repo, label, commit))
            .await?;
        measurement.paired_side.with_context(|| {
            format!(
                "{} at {} has no wall-time benchmark to time: check the name with `cargo xtask perf --list`",
                self.metric,
                short_sha(commit)
            )
        })
    }

    /// `commit` timed side by side with the good end, and the metric's paired verdict.
    async fn judge(&mut self, commit: &str, shutdown: &mut Shutdown) -> Result<MetricComparison> {
        let head = self.side(commit, "head", shutdown).await?;
        let measuring = self.measuring();
        let context = measuring.suite_context(collect::run_id(), true);
        let good = self.good.as_ref().expect("the good end is measured first");
        self.progress.line(&format!(
            "bisect: {} rounds of {} (good) and {}",
            self.rounds,
            short_sha(&good.commit),
            short_sha(commit)
        ));
        let only = [self.metric.to_owned()];
        let samples = shutdown
            .until_interrupted(async {
                let plan = crate::suites::paired::RoundsPlan {
                    rounds: self.rounds,
                    thresholds: &self.config.metadata.thresholds,
                    paired: self.config.metadata.paired,
                    only: Some(&only),
                };
                let rounds = crate::suites::paired::run_rounds(&context, [good, &head], plan);
                Ok::<_, anyhow::Error>(rounds.await?.samples)
            })
            .await?;
        self.judged += 1;
        let samples = samples.get(self.metric).with_context(|| {
            format!(
                "the rounds of {} timed no {}: the benchmark failed or does not exist on one side (logs under {})",
                short_sha(commit),
                self.metric,
                self.config.layout.out_dir.join("raw").display()
            )
        })?;
        let metric = crate::record::Metric {
            name: self.metric.to_owned(),
            suite: Suite::WallTime,
            unit: crate::record::Unit::Nanoseconds,
            kind: crate::record::MetricKind::Statistical,
            value: 0.0,
            interval: None,
            samples: Vec::new(),
            shape: None,
        };
        let row = compare::judge_paired_samples(&metric, samples, &self.config.metadata.thresholds);
        self.progress.line(&format!(
            "bisect: {} {} ({})",
            short_sha(commit),
            format_change(row.change_pct),
            crate::render::verdict_label(row.verdict)
        ));
        Ok(row)
    }

    fn measuring(&self) -> Measuring<'_> {
        Measuring {
            config: self.config,
            services: self.services,
            progress: self.progress,
            quick: true,
            selection: Some(self.metric),
        }
    }
}
