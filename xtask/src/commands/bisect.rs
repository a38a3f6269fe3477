//! `cargo xtask perf bisect --metric <name> [--good <rev>] [--bad <rev>]`: the first commit on
//! the first-parent path from a good to a bad end where a deterministic metric crosses its
//! threshold. The ends default to the latest change point of the metric in the target
//! branch's stored records (as `perf history` finds it). Each commit's value comes from a
//! stored record when there is one (the baseline branch, the runs directory, a filtered run's
//! `<out>/filtered/`, an earlier bisection's `<out>/bisect/`), else from measuring that commit in a worktree with only the
//! metric's scenario or benchmark selected (services started once, on the first such commit);
//! the search itself is `bisect::Bisection`. With `--paired`, a wall-time metric: each commit
//! looked at is timed side by side with the good end and judged by the paired test
//! ([`paired`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::baseline::git::stored_record;
use crate::baseline::{BaselineStore, GitRepo, HeadState, Lineage};
use crate::bisect::{self, Bisection};
use crate::compare::relative_change_pct;
use crate::config::Config;
use crate::exit::Outcome;
use crate::flags::BisectFlags;
use crate::history;
use crate::pipeline::collect::{self, Measuring};
use crate::pipeline::services;
use crate::progress::{Progress, ProgressStyleChoice};
use crate::provision::Services;
use crate::record::{self, MetricKind, RunRecord};
use crate::render::short_sha;
use crate::shutdown::Shutdown;
use crate::stats::ChangePointOptions;

mod paired;

/// Finds the first crossing and prints it.
pub async fn run(config: &Config, flags: &BisectFlags, shutdown: &mut Shutdown) -> Result<Outcome> {
    let metric = flags.metric.as_str();
    let selection = bisect::selection_of(metric).with_context(|| {
        format!(
            "{metric:?} is not the name of a metric.\n  fix: pass a full name as the report or `cargo xtask perf --list` shows it, e.g. io/due_cards/sql_statements"
        )
    })?;
    if record::Suite::of_metric(metric) == Some(record::Suite::WallTime) && !flags.paired {
        bail!(
            "{metric} is a wall-time metric: one measurement per commit cannot tell where it moved.\n  fix: add --paired (each commit the search looks at is timed side by side with the good end)"
        );
    }
    let layout = &config.layout;
    let repo = GitRepo::open(&layout.root)?;
    let store = BaselineStore::open(&layout.root, &config.metadata.baseline_branch)?;
    let (good, bad) = ends(config, flags, &repo, &store)?;
    let path = first_parent_path(&repo, &good, &bad, flags.depth)?;
    let progress = Progress::with_style(ProgressStyleChoice::detect(false));
    if flags.paired {
        return paired::run(config, flags, &repo, &path, &progress, shutdown).await;
    }
    progress.line(&format!(
        "bisect: {metric} from {} (good) to {} (bad): {} commits on the first-parent path",
        short_sha(&good),
        short_sha(&bad),
        path.len()
    ));
    let mut values = Values {
        config,
        repo: &repo,
        store: &store,
        metric,
        dir: layout.out_dir.join("bisect").join(&selection),
        selection,
        progress: &progress,
        services: None,
        measured: 0,
        reused: 0,
    };
    let searched = search(&mut values, &path, shutdown).await;
    if let Some(services) = values.services.take() {
        services::tear_down(services, &progress).await;
    }
    let (first, known) = searched?;
    progress.finish();
    let (threshold, source) = bisect::threshold_of(metric, &config.metadata.thresholds);
    let (before, after) = (known[&(first - 1)], known[&first]);
    println!(
        "bisect: {metric} first crosses its threshold at {} \"{}\"",
        short_sha(&path[first]),
        repo.subject(&path[first]).unwrap_or_default()
    );
    println!(
        "  {} -> {} ({:+.2}%; threshold {threshold}% from {source}) after {}",
        number(before),
        number(after),
        relative_change_pct(before, after),
        short_sha(&path[first - 1])
    );
    println!(
        "  looked at {} of {} commits: {} measured, {} from stored records (measured records in {})",
        values.measured + values.reused,
        path.len(),
        values.measured,
        values.reused,
        values.dir.display()
    );
    Ok(Outcome::Success)
}

/// The values of both ends, the check that they cross, then the binary search: the first
/// crossing's index and every value looked at, by index.
async fn search(
    values: &mut Values<'_>,
    path: &[String],
    shutdown: &mut Shutdown,
) -> Result<(usize, BTreeMap<usize, f64>)> {
    let metric = values.metric;
    let (threshold, source) = bisect::threshold_of(metric, &values.config.metadata.thresholds);
    let mut known = BTreeMap::new();
    let good = values.value(&path[0], shutdown).await?;
    known.insert(0, good);
    let last = path.len() - 1;
    known.insert(last, values.value(&path[last], shutdown).await?);
    if !bisect::crosses(good, known[&last], threshold) {
        bail!(
            "{metric} is {} at --good {} and {} at --bad {} ({:+.2}%), within its threshold of {threshold}% ({source}): nothing to bisect.\n  fix: pass ends on either side of the change (`cargo xtask perf history --metric {metric}` shows where it moved)",
            number(good),
            short_sha(&path[0]),
            number(known[&last]),
            short_sha(&path[last]),
            relative_change_pct(good, known[&last])
        );
    }
    let mut bisection = Bisection::new(path.len());
    while let Some(index) = bisection.next() {
        let value = values.value(&path[index], shutdown).await?;
        known.insert(index, value);
        bisection.crossed(index, bisect::crosses(good, value, threshold));
    }
    Ok((bisection.first(), known))
}

/// Where a bisection's values come from, and how many it measured or read.
struct Values<'a> {
    config: &'a Config,
    repo: &'a GitRepo,
    store: &'a BaselineStore,
    metric: &'a str,
    /// What measuring a commit selects (`--filter`).
    selection: String,
    /// Where measured commits' records go, and are found again.
    dir: PathBuf,
    progress: &'a Progress,
    /// Started on the first commit that must be measured.
    services: Option<Services>,
    measured: usize,
    reused: usize,
}

impl Values<'_> {
    /// The metric's value at `commit`: from a stored record, else measured. A wall-time or
    /// other statistical metric is refused: one measurement per commit cannot place it.
    async fn value(&mut self, commit: &str, shutdown: &mut Shutdown) -> Result<f64> {
        let (record, source) = match self.stored(commit)? {
            Some((record, source)) => {
                self.reused += 1;
                (record, source)
            }
            None => {
                let record = self.measure(commit, shutdown).await?;
                self.measured += 1;
                (record, "measured".to_owned())
            }
        };
        let metric = record.metric(self.metric).with_context(|| {
            format!(
                "the record of {} ({source}) has no metric {:?}.\n  fix: check the name with `cargo xtask perf --list` (at that commit the scenario or benchmark may not exist yet)",
                short_sha(commit),
                self.metric
            )
        })?;
        if metric.kind != MetricKind::Deterministic {
            bail!(
                "{} is a {} metric: one measurement per commit cannot tell where it moved.\n  fix: bisect a deterministic count (instructions, SQL statements, rows, Redis commands), or a wall-time metric with `--paired` (each commit timed side by side with the good end)",
                self.metric,
                metric.kind
            );
        }
        self.progress.line(&format!(
            "bisect: {} {} ({source})",
            short_sha(commit),
            number(metric.value)
        ));
        Ok(metric.value)
    }

    /// A stored record of `commit` that has the metric, and where it was read: the baseline
    /// branch (this machine class), the runs directory, a filtered run's (`<out>/filtered/`),
    /// or an earlier bisection's.
    fn stored(&self, commit: &str) -> Result<Option<(RunRecord, String)>> {
        let machine_class = &self.config.machine_class;
        let mut found = Vec::new();
        if let Some((source, record)) = self.store.locate(machine_class, commit)? {
            found.push((record, source));
        }
        let out = &self.config.layout.out_dir;
        for dir in [self.config.layout.runs_dir(), out.join("filtered")] {
            if let Some((path, record)) = stored_record(&dir, commit)? {
                found.push((record, path.display().to_string()));
            }
        }
        if let Some((path, record)) = stored_record(&self.dir, commit)? {
            found.push((record, path.display().to_string()));
        }
        Ok(found.into_iter().find(|(record, _)| {
            record.environment.machine_class == *machine_class
                && record.metric(self.metric).is_some()
        }))
    }

    /// Measures `commit` in a worktree with only the metric's selection, and keeps its record.
    async fn measure(&mut self, commit: &str, shutdown: &mut Shutdown) -> Result<RunRecord> {
        if self.services.is_none() {
            let mode = self.config.provision.mode;
            let started = services::start(
                self.config,
                mode,
                Some(&self.selection),
                self.progress,
                shutdown,
            )
            .await?;
            self.services = Some(started.0);
        }
        let services = self.services.as_ref().expect("started above");
        let measuring = Measuring {
            config: self.config,
            services,
            progress: self.progress,
            quick: true,
            selection: Some(&self.selection),
        };
        let context = measuring.suite_context(collect::run_id(), false);
        let measurement = shutdown
            .until_interrupted(collect::in_worktree(&context, self.repo, "bisect", commit))
            .await?;
        let revision = HeadState {
            commit: commit.to_owned(),
            dirty: false,
            branch: None,
        };
        let record = measuring.record(&measuring.environment(), &revision, measurement);
        record::store_record(&self.dir, &record)?;
        Ok(record)
    }
}

/// The good and bad ends: the flags', else the latest change point of the metric.
fn ends(
    config: &Config,
    flags: &BisectFlags,
    repo: &GitRepo,
    store: &BaselineStore,
) -> Result<(String, String)> {
    let default = if flags.good.is_none() || flags.bad.is_none() {
        Some(latest_change_point(config, flags, repo, store)?)
    } else {
        None
    };
    let resolve = |flag: &str, rev: &Option<String>, default: Option<&String>| -> Result<String> {
        match rev {
            Some(rev) => Ok(repo
                .resolve(rev)
                .with_context(|| format!("--{flag} {rev}"))?),
            None => Ok(default.expect("computed when a flag is missing").clone()),
        }
    };
    let good = resolve("good", &flags.good, default.as_ref().map(|d| &d.0))?;
    let bad = resolve("bad", &flags.bad, default.as_ref().map(|d| &d.1))?;
    Ok((good, bad))
}

/// The record before and the record after the latest change point of the metric in the
/// target branch's stored records of this machine class.
fn latest_change_point(
    config: &Config,
    flags: &BisectFlags,
    repo: &GitRepo,
    store: &BaselineStore,
) -> Result<(String, String)> {
    let target = &config.metadata.target_branch;
    let tip = repo.resolve(target).with_context(|| {
        format!("the target branch {target:?}, for --good and --bad's defaults")
    })?;
    let mut lineage = Lineage::read(repo, store, &tip, flags.depth, &config.machine_class)?;
    if let Some(newest) = lineage.records.last().map(|r| r.environment.clone()) {
        lineage.keep_comparable_with(&newest, "the newest record");
    }
    let records: Vec<(RunRecord, String)> = lineage
        .records
        .into_iter()
        .map(|record| (record, String::new()))
        .collect();
    let findings = history::find_shifts(
        &records,
        Some(&flags.metric),
        &ChangePointOptions::default(),
    );
    let position = |commit: &str| findings.points.iter().position(|p| p.commit == commit);
    let latest = findings
        .shifts
        .iter()
        .filter(|shift| shift.metric == flags.metric)
        .max_by_key(|shift| position(&shift.at.commit));
    match latest.and_then(|shift| Some((shift.before.clone()?, shift.at.clone()))) {
        Some((before, at)) => Ok((before.commit, at.commit)),
        None => bail!(
            "no change point of {} in the stored records of the last {} first-parent commits of {target} (machine class {}, {} records).\n  fix: pass --good <rev> and --bad <rev>",
            flags.metric,
            flags.depth,
            config.machine_class,
            records.len()
        ),
    }
}

/// `good`, the commits after it on `bad`'s first-parent path, and `bad`: oldest first.
fn first_parent_path(repo: &GitRepo, good: &str, bad: &str, depth: u32) -> Result<Vec<String>> {
    if good == bad {
        bail!(
            "--good and --bad are the same commit ({}).\n  fix: pass a good commit older than the bad one",
            short_sha(good)
        );
    }
    let ancestors = repo.first_parent_ancestors(bad, depth)?;
    let Some(position) = ancestors.iter().position(|commit| commit == good) else {
        bail!(
            "--good {} is not among the {depth} first-parent ancestors of --bad {}.\n  fix: pass a good commit on the bad one's first-parent path (an older commit of its branch), or a larger --depth",
            short_sha(good),
            short_sha(bad)
        );
    };
    let mut path = vec![good.to_owned()];
    path.extend(ancestors[..position].iter().rev().cloned());
    path.push(bad.to_owned());
    Ok(path)
}

/// A count as it is read: whole numbers without decimals.
pub(super) fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}
