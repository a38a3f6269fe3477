//! Comparison of a head record with a base record: one [`MetricComparison`] per metric with a
//! verdict, the change and the rule that decided it. Pure: no I/O, no clock, no git, no
//! services; tested with plain values. The rules are explained in `baselines/README.md`.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::config::{self, Budget, Thresholds};
use crate::locate::{self, Location};
use crate::record::{self, Direction, Environment, Metric, MetricKind, RunRecord, Suite, Unit};
use crate::stats::{
    self, AdaptiveRounds, CountVerdict, FamilyControl, PairedOptions, PairedResult, PairedVerdict,
};

/// Values of each metric in the target branch's stored records, oldest first: what a noise
/// band is learned from.
pub type History = BTreeMap<String, Vec<f64>>;

pub use crate::record::RoundSamples;

/// The wall-time benchmarks measured side by side in this job, by metric name
/// (`wall_time/...`): every selected one with `--paired`, else the far moves
/// ([`far_unpaired_moves`]) if any.
pub type PairedSamples = BTreeMap<String, RoundSamples>;

/// What a metric's change means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Worse beyond the rule's threshold: fails the gate.
    Regression,
    /// Better beyond the rule's threshold.
    Improvement,
    /// Within the rule's threshold.
    Unchanged,
    /// Shown for information, never gated (e.g. wall time measured in separate runs).
    Informational,
    /// Only in head (a new benchmark), or only in base when that is not a regression (a
    /// filtered run, a retired metric).
    NotComparable,
}

/// What a comparison must know of the run beside its two records.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// The run measured part of its suites (`--filter`): a base metric that head lacks was not
    /// measured, rather than removed.
    pub filtered: bool,
    /// Metrics removed on purpose (`retired` in the config: names, or prefixes ending in `/`).
    pub retired: &'a [String],
    /// The files the change from base to head touched (paths from the workspace root), for
    /// the "where" of instruction rows; empty when not known.
    pub changed_files: &'a [String],
    /// How the run's paired wall-time rows share their significance level (`family` in
    /// `[workspace.metadata.perf.paired]`; default Holm).
    pub family: FamilyControl,
}

/// One row of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    pub name: String,
    pub suite: Suite,
    pub unit: Unit,
    pub kind: MetricKind,
    /// Which way the metric gets better: what decided between regression and improvement.
    #[serde(default = "lower_is_better")]
    pub direction: Direction,
    pub base: Option<f64>,
    pub head: Option<f64>,
    /// Relative change in percent, `(head - base) / base * 100`.
    pub change_pct: Option<f64>,
    /// 95% confidence intervals of base and head (statistical metrics); `None` for exact counts.
    pub base_interval: Option<[f64; 2]>,
    pub head_interval: Option<[f64; 2]>,
    pub verdict: Verdict,
    /// The rule that decided the verdict, in words a maintainer can check.
    pub rule: String,
    /// The plan shapes of a categorical plan metric, base and head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_shape: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_shape: Option<String>,
    /// The paired test of a wall-time metric measured side by side (`--paired`); it decided
    /// the verdict, and `change_pct` is its estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<Box<PairedResult>>,
    /// Where a regressed or improved count moved: the statements or commands that changed
    /// with it, or the plan's `EXPLAIN` ([`crate::locate`]).
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub location: Option<Box<Location>>,
}

/// A whole comparison, rows ordered regressions first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub rows: Vec<MetricComparison>,
}

impl Comparison {
    pub fn count(&self, verdict: Verdict) -> usize {
        self.rows.iter().filter(|r| r.verdict == verdict).count()
    }

    pub fn has_regression(&self) -> bool {
        self.count(Verdict::Regression) > 0
    }

    /// The regression with the largest relative change, if any; a lost plan shape counts as
    /// the largest, and a metric missing in head (which no run of head can reproduce) as the
    /// smallest.
    pub fn worst_regression(&self) -> Option<&MetricComparison> {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regression)
            .max_by(|a, b| {
                let key = |r: &MetricComparison| match (r.change_pct, r.head) {
                    (Some(change), _) => change,
                    (None, None) => f64::NEG_INFINITY,
                    (None, Some(_)) => f64::INFINITY,
                };
                key(a).total_cmp(&key(b))
            })
    }
}

/// The ways two environments differ on what makes their measurements incomparable: machine
/// class, toolchain, valgrind, server major versions, and the measured data's configuration.
/// Empty when they are comparable.
pub fn fingerprint_mismatches(base: &Environment, head: &Environment) -> Vec<String> {
    let mut mismatches = Vec::new();
    let mut check = |what: &str, base: &str, head: &str| {
        if base != head {
            mismatches.push(format!("{what}: base {base:?}, head {head:?}"));
        }
    };
    check("machine class", &base.machine_class, &head.machine_class);
    check("rustc", &base.rustc, &head.rustc);
    check(
        "valgrind",
        base.valgrind.as_deref().unwrap_or("none"),
        head.valgrind.as_deref().unwrap_or("none"),
    );
    check(
        "postgres major version",
        major_version(&base.services.postgres_version),
        major_version(&head.services.postgres_version),
    );
    check(
        "redis major version",
        major_version(&base.services.redis_version),
        major_version(&head.services.redis_version),
    );
    check("config hash", &base.config_hash, &head.config_hash);
    mismatches
}

fn major_version(version: &str) -> &str {
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or(version)
}

/// Compares every metric of `head` with the same-named metric of `base`, with no history.
pub fn compare(base: &RunRecord, head: &RunRecord, thresholds: &Thresholds) -> Comparison {
    compare_with_history(base, head, thresholds, &History::new())
}

/// Compares every metric of `head` with the same-named metric of `base`; instruction counts
/// tolerate the larger of their threshold and the noise band learned from `history`.
pub fn compare_with_history(
    base: &RunRecord,
    head: &RunRecord,
    thresholds: &Thresholds,
    history: &History,
) -> Comparison {
    compare_paired(base, head, thresholds, history, &PairedSamples::new())
}

/// [`compare_with_history`], with wall-time metrics measured side by side (`paired`) judged
/// by the paired test instead of shown for information; a whole, unfiltered run with nothing
/// retired.
pub fn compare_paired(
    base: &RunRecord,
    head: &RunRecord,
    thresholds: &Thresholds,
    history: &History,
    paired: &PairedSamples,
) -> Comparison {
    compare_in_scope(base, head, thresholds, history, paired, Scope::default())
}

/// [`compare_paired`] for a run of `scope`. Every metric of either record gets a row:
/// - in both: judged by its kind's rule, in its direction;
/// - a scenario's per-command, per-statement or observed count that one side left out as zero
///   (see [`record::absent_means_zero`]): judged from 0, so that a new Redis command type or SQL
///   statement (0 → N) and lost cache hits (N → 0) are changes like any other;
/// - only in head otherwise: a new benchmark, not comparable;
/// - only in base otherwise: a regression (a benchmark removed or renamed escapes the gate
///   otherwise), unless the run was filtered or the metric is retired.
pub fn compare_in_scope(
    base: &RunRecord,
    head: &RunRecord,
    thresholds: &Thresholds,
    history: &History,
    paired: &PairedSamples,
    scope: Scope<'_>,
) -> Comparison {
    let zero_of = |metric: &Metric| Metric {
        value: 0.0,
        interval: None,
        samples: Vec::new(),
        shape: None,
        ..metric.clone()
    };
    let mut rows: Vec<MetricComparison> = head
        .metrics
        .iter()
        .map(|metric| match base.metric(&metric.name) {
            Some(base_metric) => compare_metric(base_metric, metric, thresholds, history),
            None if record::absent_means_zero(base, &metric.name) => implied_zero_row(
                compare_metric(&zero_of(metric), metric, thresholds, history),
            ),
            None => MetricComparison {
                head_shape: metric.shape.clone(),
                ..one_sided(
                    metric,
                    None,
                    Some(metric.value),
                    "new in head: no base value",
                )
            },
        })
        .collect();
    judge_paired_rows(&mut rows, paired, thresholds, scope.family);
    rows.extend(
        base.metrics
            .iter()
            .filter(|m| head.metric(&m.name).is_none())
            .map(|m| {
                if record::absent_means_zero(head, &m.name) {
                    return implied_zero_row(compare_metric(m, &zero_of(m), thresholds, history));
                }
                missing_in_head(m, scope)
            }),
    );
    rows.sort_by(|a, b| a.verdict.cmp(&b.verdict).then_with(|| a.name.cmp(&b.name)));
    let mut comparison = Comparison { rows };
    locate::locate(&mut comparison, base, head, scope.changed_files);
    comparison
}

/// The row of a base metric head does not have (and does not imply as zero).
fn missing_in_head(m: &Metric, scope: Scope<'_>) -> MetricComparison {
    let (verdict, rule) = if scope.filtered {
        (
            Verdict::NotComparable,
            "only in base: not measured by this filtered run".to_owned(),
        )
    } else if config::names_or_prefixes_match(scope.retired, &m.name) {
        (
            Verdict::NotComparable,
            "only in base: retired (`retired` in [workspace.metadata.perf])".to_owned(),
        )
    } else {
        (
            Verdict::Regression,
            "missing in head: the benchmark was removed or renamed, and nothing judges it any \
             more.\n  fix: restore it, or list it under `retired` in [workspace.metadata.perf] \
             (or accept the run)"
                .to_owned(),
        )
    };
    MetricComparison {
        base_shape: m.shape.clone(),
        verdict,
        rule,
        ..one_sided(m, Some(m.value), None, "")
    }
}

/// A row judged from an implied zero: its rule says so, and the absent side shows 0.
fn implied_zero_row(row: MetricComparison) -> MetricComparison {
    MetricComparison {
        rule: format!(
            "{}; a side without this count ran the scenario and counted 0",
            row.rule
        ),
        ..row
    }
}

fn lower_is_better() -> Direction {
    Direction::LowerIsBetter
}

fn one_sided(
    metric: &Metric,
    base: Option<f64>,
    head: Option<f64>,
    rule: &str,
) -> MetricComparison {
    MetricComparison {
        name: metric.name.clone(),
        suite: metric.suite,
        unit: metric.unit,
        kind: metric.kind,
        direction: metric.direction(),
        base,
        head,
        change_pct: None,
        base_interval: None,
        head_interval: None,
        verdict: Verdict::NotComparable,
        rule: rule.to_owned(),
        base_shape: None,
        head_shape: None,
        paired: None,
        location: None,
    }
}

/// The largest share of a paired comparison's rounds that may be set aside as outliers for the
/// rest to be judged alone. The paired test assumes that whatever slows the machine slows both
/// sides of a round; when more rounds than this break that assumption, the rest are not to be
/// trusted alone either: the verdict then stands only if the test gives the same one with every
/// round kept, and otherwise the row is not judged. Seen on a 2-core machine running two test suites at once: the unchanged
/// `raw/due_cards_statement` came out "+10.1%, significant" with 3 of 10 rounds set aside.
pub const MAX_PAIRED_OUTLIER_SHARE: f64 = 0.2;

/// The paired test's row of `metric` from `samples` alone (a family of one), without stored
/// values: what `perf bisect --paired` judges each commit by against the good end.
pub fn judge_paired_samples(
    metric: &Metric,
    samples: &RoundSamples,
    thresholds: &Thresholds,
) -> MetricComparison {
    let alone = PairedSamples::from([(metric.name.clone(), samples.clone())]);
    let outcome = paired_outcomes(&alone, thresholds, FamilyControl::default())
        .remove(&metric.name)
        .expect("the one benchmark's outcome");
    judge_paired(one_sided(metric, None, None, ""), outcome)
}

/// A paired benchmark's test, before or after its run's family is judged.
#[derive(Debug, Clone, PartialEq)]
pub enum PairedOutcome {
    /// Judged: the test's result (its verdict from the family-adjusted p-value once
    /// [`paired_outcomes`] has judged the family).
    Judged {
        result: PairedResult,
        /// Where the minimum effect came from, for the rule (` (thresholds.metrics "...")` or
        /// empty for `thresholds.wall_time_pct`).
        source: String,
        /// More than [`MAX_PAIRED_OUTLIER_SHARE`] of the rounds were outliers, and the test
        /// said the same with every round kept.
        many_outliers: bool,
    },
    /// Not judged, with the rule that says why, and the test's numbers when there are some.
    NotJudged {
        result: Option<PairedResult>,
        rule: String,
    },
}

/// The paired test of every benchmark of `paired`, with the metric's own threshold
/// (`thresholds.metrics`) or `thresholds.wall_time_pct` as its minimum effect, and the judged
/// ones then judged as one family under `control` (`stats::adjust_family`): what the run's
/// verdicts, the adaptive rounds (`suites::paired`) and `calibrate --paired` all rest on.
pub fn paired_outcomes(
    paired: &PairedSamples,
    thresholds: &Thresholds,
    control: FamilyControl,
) -> BTreeMap<String, PairedOutcome> {
    let mut outcomes: BTreeMap<String, PairedOutcome> = paired
        .iter()
        .map(|(name, samples)| (name.clone(), test_paired(name, samples, thresholds)))
        .collect();
    let mut judged: Vec<&mut PairedResult> = outcomes
        .values_mut()
        .filter_map(|outcome| match outcome {
            PairedOutcome::Judged { result, .. } => Some(result),
            PairedOutcome::NotJudged { .. } => None,
        })
        .collect();
    let mut family: Vec<PairedResult> = judged.iter().map(|result| (**result).clone()).collect();
    stats::adjust_family(&mut family, control);
    for (result, adjusted) in judged.iter_mut().zip(family) {
        **result = adjusted;
    }
    outcomes
}

/// The benchmarks of `paired` whose verdict more rounds could still change
/// (`stats::undecided` after the family is judged, or not judged because too many rounds were
/// outliers) and that have fewer than `adaptive.max_rounds` rounds.
pub fn undecided_benchmarks(
    paired: &PairedSamples,
    thresholds: &Thresholds,
    control: FamilyControl,
    adaptive: &AdaptiveRounds,
) -> Vec<String> {
    paired_outcomes(paired, thresholds, control)
        .into_iter()
        .filter(|(name, outcome)| {
            paired[name].base.len() < adaptive.max_rounds
                && match outcome {
                    PairedOutcome::Judged { result, .. } => {
                        stats::undecided(result, adaptive.undecided_p)
                    }
                    PairedOutcome::NotJudged { result, .. } => result.is_some(),
                }
        })
        .map(|(name, _)| name)
        .collect()
}

/// One benchmark's paired test, alone. Input the test refuses (a zero time, rounds missing)
/// is not judged, with the reason; so is a test that set more than
/// [`MAX_PAIRED_OUTLIER_SHARE`] of the rounds aside and says otherwise with every round kept.
fn test_paired(name: &str, samples: &RoundSamples, thresholds: &Thresholds) -> PairedOutcome {
    let (min_effect_pct, source) = match thresholds.for_metric(name) {
        Some((key, pct)) => (pct, format!(" (thresholds.metrics {key:?})")),
        None => (thresholds.wall_time_pct, String::new()),
    };
    let options = PairedOptions {
        min_effect_pct,
        ..PairedOptions::default()
    };
    let result = match stats::paired_test(&samples.base, &samples.head, &options) {
        Ok(result) => result,
        Err(error) => {
            return PairedOutcome::NotJudged {
                result: None,
                rule: format!("measured side by side, but not judged: {error}"),
            };
        }
    };
    let outlier_share = result.outlier_rounds.len() as f64 / result.rounds as f64;
    let many_outliers = outlier_share > MAX_PAIRED_OUTLIER_SHARE;
    if many_outliers {
        // Too many rounds broke the test's assumption for the trimmed rest to be trusted
        // alone: the verdict stands only if the test says the same with every round kept.
        let every_round = PairedOptions {
            outlier_cutoff: f64::INFINITY,
            ..options
        };
        let agrees = stats::paired_test(&samples.base, &samples.head, &every_round)
            .is_ok_and(|all| all.verdict == result.verdict);
        if !agrees {
            let rule = format!(
                "paired, not judged: {} of {} rounds were outliers (more than {:.0}%), and with \
                 every round kept the test disagrees: base and head did not see the same \
                 machine within a round.\n  fix: run on a quieter machine, or with more \
                 --paired-rounds",
                result.outlier_rounds.len(),
                result.rounds,
                MAX_PAIRED_OUTLIER_SHARE * 100.0
            );
            return PairedOutcome::NotJudged {
                result: Some(result),
                rule,
            };
        }
    }
    PairedOutcome::Judged {
        result,
        source,
        many_outliers,
    }
}

/// A wall-time row whose benchmark was measured side by side, with its outcome: the paired
/// test, judged with its family, decides.
fn judge_paired(row: MetricComparison, outcome: PairedOutcome) -> MetricComparison {
    let (result, source, many_outliers) = match outcome {
        PairedOutcome::Judged {
            result,
            source,
            many_outliers,
        } => (result, source, many_outliers),
        PairedOutcome::NotJudged { result, rule } => {
            return MetricComparison {
                change_pct: result
                    .as_ref()
                    .map_or(row.change_pct, |r| Some(r.change_pct)),
                verdict: Verdict::Informational,
                rule,
                paired: result.map(Box::new),
                location: None,
                ..row
            };
        }
    };
    let verdict = match result.verdict {
        PairedVerdict::Slower => Verdict::Regression,
        PairedVerdict::Faster => Verdict::Improvement,
        PairedVerdict::NoChange => Verdict::Unchanged,
    };
    let outliers = match result.outlier_rounds.len() {
        0 => String::new(),
        n => format!(
            ", {n} outlier round{} set aside{}",
            if n == 1 { "" } else { "s" },
            if many_outliers {
                " (the same with every round kept)"
            } else {
                ""
            }
        ),
    };
    let significance = match result.family {
        Some(family) if family.size > 1 && family.control != FamilyControl::PerRow => format!(
            "significant for the family of {} paired rows ({} adjusted p ≤ {})",
            family.size, family.control, result.alpha
        ),
        _ => format!("significant (p ≤ {})", result.alpha),
    };
    let rule = format!(
        "paired: {} interleaved rounds{outliers}; a change when {significance} and beyond \
         ±{}%{source}",
        result.rounds, result.min_effect_pct,
    );
    MetricComparison {
        change_pct: Some(result.change_pct),
        verdict,
        rule,
        paired: Some(Box::new(result)),
        location: None,
        ..row
    }
}

/// The wall-time rows of `rows` with both sides and samples in `paired`, judged by the paired
/// test as one family under `control`.
fn judge_paired_rows(
    rows: &mut [MetricComparison],
    paired: &PairedSamples,
    thresholds: &Thresholds,
    control: FamilyControl,
) {
    let is_paired = |row: &MetricComparison| {
        row.suite == Suite::WallTime
            && row.base.is_some()
            && row.head.is_some()
            && paired.contains_key(&row.name)
    };
    let family: PairedSamples = rows
        .iter()
        .filter(|row| is_paired(row))
        .map(|row| (row.name.clone(), paired[&row.name].clone()))
        .collect();
    let mut outcomes = paired_outcomes(&family, thresholds, control);
    for row in rows.iter_mut() {
        if let Some(outcome) = outcomes.remove(&row.name) {
            *row = judge_paired(row.clone(), outcome);
        }
    }
}

/// How far an unpaired wall-time median must move, this factor slower or faster with the two
/// 95% intervals apart, for the run to time the benchmark side by side anyway: twice or half
/// is beyond every move between separate runs of one commit measured on the development
/// machine (the largest, 68.5%, came from the seeding fault `seed::seed` documents), so such a
/// move is the change or a broken machine, and timing side by side tells which. A move that
/// triggers it wrongly costs time (a base build when the base is a stored record, and the
/// rounds), never a verdict: the paired test judges.
pub const FAR_MOVE_FACTOR: f64 = 2.0;

/// At most this many far moves are timed side by side, the farthest first: the rounds cost
/// about 3 s per benchmark each.
pub const MAX_FAR_MOVES: usize = 3;

/// The wall-time benchmarks whose median moved at least [`FAR_MOVE_FACTOR`] either way from
/// `base` to `head` with their intervals apart (when both records have them), farthest first,
/// at most [`MAX_FAR_MOVES`]: what an unpaired run times side by side.
pub fn far_unpaired_moves(base: &RunRecord, head: &RunRecord) -> Vec<String> {
    let mut far: Vec<(f64, &str)> = head
        .metrics
        .iter()
        .filter(|metric| metric.suite == Suite::WallTime)
        .filter_map(|after| {
            let before = base.metrics.iter().find(|m| m.name == after.name)?;
            if before.value <= 0.0 || after.value <= 0.0 {
                return None;
            }
            let factor = (after.value / before.value).max(before.value / after.value);
            let apart = match (before.interval, after.interval) {
                (Some([low, high]), Some([other_low, other_high])) => {
                    high < other_low || other_high < low
                }
                _ => true,
            };
            (factor >= FAR_MOVE_FACTOR && apart).then_some((factor, after.name.as_str()))
        })
        .collect();
    far.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    far.into_iter()
        .take(MAX_FAR_MOVES)
        .map(|(_, name)| name.to_owned())
        .collect()
}

/// Relative change in percent; a change from 0 is infinite (or 0 when it stays 0).
pub fn relative_change_pct(base: f64, head: f64) -> f64 {
    if base == 0.0 {
        if head == 0.0 {
            0.0
        } else {
            f64::INFINITY * head.signum()
        }
    } else {
        (head - base) / base.abs() * 100.0
    }
}

/// Why a statistical metric of `suite` is shown, not gated.
fn statistical_rule(suite: Suite) -> String {
    match suite {
        Suite::WallTime | Suite::Instructions | Suite::IoCounts | Suite::Plans => {
            "wall time from separate runs: shown for information, never gated (`--paired` \
             measures base and head side by side and judges it)"
                .to_owned()
        }
        Suite::Memory => "heap use that varies with timing (tokio, sqlx, redis): shown for \
                          information, never gated"
            .to_owned(),
        Suite::Load => "load run from separate runs on a shared machine: shown for information, \
                        never gated"
            .to_owned(),
    }
}

fn compare_metric(
    base: &Metric,
    head: &Metric,
    thresholds: &Thresholds,
    history: &History,
) -> MetricComparison {
    let change = relative_change_pct(base.value, head.value);
    let (verdict, rule) = match head.kind {
        MetricKind::Deterministic => judge_count(head, change, thresholds, history),
        MetricKind::Statistical => (Verdict::Informational, statistical_rule(head.suite)),
        MetricKind::Categorical => match (&base.shape, &head.shape) {
            (Some(base_shape), Some(head_shape)) => plan_verdict(base_shape, head_shape),
            _ => {
                let verdict = if base.value == head.value {
                    Verdict::Unchanged
                } else {
                    Verdict::Informational
                };
                (verdict, "categorical: any change is reported".to_owned())
            }
        },
    };
    let change = if head.kind == MetricKind::Categorical {
        None
    } else {
        Some(change)
    };
    MetricComparison {
        name: head.name.clone(),
        suite: head.suite,
        unit: head.unit,
        kind: head.kind,
        direction: head.direction(),
        base: Some(base.value),
        head: Some(head.value),
        change_pct: change,
        base_interval: base.interval,
        head_interval: head.interval,
        verdict,
        rule,
        base_shape: base.shape.clone(),
        head_shape: head.shape.clone(),
        paired: None,
        location: None,
    }
}

/// The verdict on a deterministic count that moved by `change` percent, and its rule in
/// words: its threshold (per metric, else per kind), widened to its noise band for
/// instruction counts, judged in the metric's direction.
fn judge_count(
    head: &Metric,
    change: f64,
    thresholds: &Thresholds,
    history: &History,
) -> (Verdict, String) {
    let (threshold, source) = match thresholds.for_metric(&head.name) {
        Some((key, pct)) => (pct, format!(" (thresholds.metrics {key:?})")),
        None => match head.suite {
            Suite::Instructions => (thresholds.instructions_pct, String::new()),
            Suite::IoCounts | Suite::Memory | Suite::WallTime | Suite::Load | Suite::Plans => {
                (thresholds.io_counts_pct, String::new())
            }
        },
    };
    // Only instruction counts learn a band: a count of statements, commands or
    // allocations is exact, and must not grow however noisy its history looks.
    let band = (head.suite == Suite::Instructions)
        .then(|| history.get(&head.name))
        .flatten()
        .map(|values| stats::noise_band(values));
    let band_or_none = band.unwrap_or_else(|| stats::noise_band(&[]));
    let direction = head.direction();
    // The band judges growth; a metric that is better higher is judged on its fall.
    let judged = match direction {
        Direction::HigherIsBetter => band_or_none.judge(-change, threshold),
        Direction::LowerIsBetter | Direction::Unchanging => band_or_none.judge(change, threshold),
    };
    let verdict = match (judged, direction) {
        (CountVerdict::Regression, _) => Verdict::Regression,
        (CountVerdict::Improvement, Direction::Unchanging) => Verdict::Regression,
        (CountVerdict::Improvement, _) => Verdict::Improvement,
        (CountVerdict::Unchanged, _) => Verdict::Unchanged,
    };
    let rule = match band.filter(|band| band.pct > threshold) {
        Some(band) => format!(
            "deterministic count: change beyond its noise band ±{:.2}% (from {} target-branch records; threshold {threshold}%{source})",
            band.pct, band.samples
        ),
        None => count_rule(direction, threshold, &source),
    };
    (verdict, rule)
}

/// The rule of a deterministic count judged against its threshold alone.
fn count_rule(direction: Direction, threshold: f64, source: &str) -> String {
    match (direction, threshold == 0.0) {
        (Direction::LowerIsBetter, true) => {
            format!("deterministic count: any growth is a regression (threshold 0%{source})")
        }
        (Direction::HigherIsBetter, true) => format!(
            "deterministic count, higher is better: any fall is a regression (threshold 0%{source})"
        ),
        (Direction::Unchanging, true) => format!(
            "deterministic count that describes the scenario: any change is a regression (threshold 0%{source})"
        ),
        (Direction::LowerIsBetter, false) => {
            format!("deterministic count: change beyond ±{threshold}%{source}")
        }
        (Direction::HigherIsBetter, false) => {
            format!("deterministic count, higher is better: change beyond ±{threshold}%{source}")
        }
        (Direction::Unchanging, false) => format!(
            "deterministic count that describes the scenario: any change beyond ±{threshold}%{source} is a regression"
        ),
    }
}

/// The outcome of one budget on one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetCheck {
    pub metric: String,
    /// The limit in words, e.g. `≤ 0` or `≥ 950`.
    pub limit: String,
    /// The measured value; `None` when the metric was not measured.
    pub value: Option<f64>,
    pub broken: bool,
    /// Why it is broken (by how much), or why it was not checked.
    pub detail: String,
}

/// Checks each budget against `head`. A budget on a metric the run did not measure is broken
/// (a misspelled name must not silently never fire), unless the run was filtered.
pub fn check_budgets(head: &RunRecord, budgets: &[Budget], filtered: bool) -> Vec<BudgetCheck> {
    budgets
        .iter()
        .map(|budget| {
            let limit = match (budget.min, budget.max) {
                (Some(min), Some(max)) => format!("{min} ..= {max}"),
                (Some(min), None) => format!("≥ {min}"),
                (None, Some(max)) => format!("≤ {max}"),
                (None, None) => "none".to_owned(),
            };
            let Some(metric) = head.metric(&budget.metric) else {
                return BudgetCheck {
                    metric: budget.metric.clone(),
                    limit,
                    value: None,
                    broken: !filtered,
                    detail: if filtered {
                        "not measured by this filtered run".to_owned()
                    } else {
                        "no metric of this name was measured.\n  fix: correct the name in \
                         [[workspace.metadata.perf.budgets]] (`cargo xtask perf --list` shows \
                         the names)"
                            .to_owned()
                    },
                };
            };
            let value = metric.value;
            let detail = match (budget.min, budget.max) {
                (_, Some(max)) if value > max => {
                    Some(format!("{} above the maximum {max}", trim(value - max)))
                }
                (Some(min), _) if value < min => {
                    Some(format!("{} below the minimum {min}", trim(min - value)))
                }
                _ => None,
            };
            BudgetCheck {
                metric: budget.metric.clone(),
                limit,
                value: Some(value),
                broken: detail.is_some(),
                detail: detail.unwrap_or_else(|| "within".to_owned()),
            }
        })
        .collect()
}

/// A number without a trailing `.0`, with at most 3 decimals.
fn trim(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// How a plan reaches its rows: which relations it reads whole, and which indexes it uses
/// (with their relation), read from a shape such as
/// `Limit(Index Scan[review_cards_user_due on review_cards])`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PlanAccess {
    /// Relations read by a `Seq Scan` (parallel or not).
    pub seq_scanned: std::collections::BTreeSet<String>,
    /// (index, relation) of every Index Scan, Index Only Scan and Bitmap Index Scan.
    pub indexes: std::collections::BTreeSet<(String, String)>,
}

/// Reads the scans of a plan shape: every `Label[attributes]` whose label ends with a scan
/// node type (labels may carry a `CTE name: ` or `InitPlan: ` prefix).
pub fn plan_access(shape: &str) -> PlanAccess {
    let mut access = PlanAccess::default();
    let mut rest = shape;
    while let Some(open) = rest.find('[') {
        let before = &rest[..open];
        let label_start = before.rfind(['(', ',']).map_or(0, |i| i + 1);
        let label = before[label_start..].trim();
        let label = label.rsplit(": ").next().unwrap_or(label);
        let Some(close) = rest[open..].find(']') else {
            break;
        };
        let attributes = &rest[open + 1..open + close];
        rest = &rest[open + close + 1..];
        let node = label.strip_prefix("Parallel ").unwrap_or(label);
        match node {
            "Seq Scan" => {
                let relation = attributes.split(' ').next().unwrap_or(attributes);
                access.seq_scanned.insert(relation.to_owned());
            }
            "Index Scan" | "Index Only Scan" | "Bitmap Index Scan" => {
                if let Some((index, relation)) = attributes.split_once(" on ") {
                    let relation = relation.split(' ').next().unwrap_or(relation);
                    access
                        .indexes
                        .insert((index.to_owned(), relation.to_owned()));
                }
            }
            _ => {}
        }
    }
    access
}

/// The verdict on a plan that may have changed. A regression when head reads a relation with a
/// Seq Scan that base reached through an index, or when head no longer uses an index base
/// used; any other change is informational.
pub fn plan_verdict(base_shape: &str, head_shape: &str) -> (Verdict, String) {
    if base_shape == head_shape {
        return (Verdict::Unchanged, "plan shape unchanged".to_owned());
    }
    let base = plan_access(base_shape);
    let head = plan_access(head_shape);
    let mut lost: Vec<String> = Vec::new();
    for relation in &head.seq_scanned {
        let base_indexes: Vec<&str> = base
            .indexes
            .iter()
            .filter(|(_, r)| r == relation)
            .map(|(index, _)| index.as_str())
            .collect();
        if !base_indexes.is_empty() && !base.seq_scanned.contains(relation) {
            lost.push(format!(
                "Seq Scan on {relation} in head, through index {} in base",
                base_indexes.join(", ")
            ));
        }
    }
    let head_indexes: std::collections::BTreeSet<&str> = head
        .indexes
        .iter()
        .map(|(index, _)| index.as_str())
        .collect();
    for (index, relation) in &base.indexes {
        if !head_indexes.contains(index.as_str()) {
            lost.push(format!(
                "index {index} on {relation} used in base, no longer used in head"
            ));
        }
    }
    if lost.is_empty() {
        (Verdict::Informational, "plan changed".to_owned())
    } else {
        (
            Verdict::Regression,
            format!("plan lost an index scan: {}", lost.join("; ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sorting a comparison moves rows through stack temporaries; glibc's memcpy copies up to
    /// 256 bytes without a loop, so its instruction count then does not depend on where the
    /// stack is, which moves with the length of the binary's path (the render benchmark's
    /// count must not; `tests/e2e/instructions.rs`).
    #[test]
    fn a_row_is_small_enough_to_move_without_a_copy_loop() {
        let size = std::mem::size_of::<MetricComparison>();
        assert!(
            size <= 256,
            "MetricComparison is {size} bytes: box a large field"
        );
    }

    fn metric(name: &str, suite: Suite, kind: MetricKind, value: f64) -> Metric {
        Metric {
            name: name.to_owned(),
            suite,
            unit: Unit::Count,
            kind,
            value,
            interval: None,
            samples: Vec::new(),
            shape: None,
        }
    }

    fn thresholds() -> Thresholds {
        Thresholds {
            instructions_pct: 1.0,
            io_counts_pct: 0.0,
            wall_time_pct: 5.0,
            metrics: BTreeMap::new(),
        }
    }

    fn verdict_of(suite: Suite, kind: MetricKind, base: f64, head: f64) -> Verdict {
        compare_metric(
            &metric("m", suite, kind, base),
            &metric("m", suite, kind, head),
            &thresholds(),
            &History::new(),
        )
        .verdict
    }

    /// An I/O count of scenario `dashboard`, as the io suite records it.
    fn io(counter: &str, value: f64) -> Metric {
        metric(
            &format!("io/dashboard/{counter}"),
            Suite::IoCounts,
            MetricKind::Deterministic,
            value,
        )
    }

    fn rows_by_name(comparison: &Comparison) -> BTreeMap<&str, &MetricComparison> {
        comparison
            .rows
            .iter()
            .map(|row| (row.name.as_str(), row))
            .collect()
    }

    /// Issue 13, defect 3: hits and hit ratios were judged like costs, so a PR that raised them
    /// failed the gate and one that lost them passed as an improvement.
    #[test]
    fn cache_hits_and_ratios_are_judged_higher_is_better() {
        let base = record::test_record(
            "b",
            vec![
                io("sql_statements", 2.0),
                io("observed/due.hit_permille", 900.0),
                io("observed/words.l1_hits", 50.0),
                io("observed/words.misses", 10.0),
                io("observed/due.invalidations", 5.0),
            ],
        );
        let head = record::test_record(
            "h",
            vec![
                io("sql_statements", 2.0),
                io("observed/due.hit_permille", 950.0),
                io("observed/words.l1_hits", 40.0),
                io("observed/words.misses", 5.0),
                io("observed/due.invalidations", 4.0),
            ],
        );
        let comparison = compare(&base, &head, &thresholds());
        let rows = rows_by_name(&comparison);
        let verdict = |name: &str| rows[format!("io/dashboard/{name}").as_str()].verdict;
        assert_eq!(verdict("observed/due.hit_permille"), Verdict::Improvement);
        assert_eq!(verdict("observed/words.l1_hits"), Verdict::Regression);
        assert_eq!(verdict("observed/words.misses"), Verdict::Improvement);
        // What the scenario did (keys invalidated) must not change, either way.
        assert_eq!(verdict("observed/due.invalidations"), Verdict::Regression);
        let hits = rows["io/dashboard/observed/words.l1_hits"];
        assert_eq!(hits.direction, Direction::HigherIsBetter);
        assert!(hits.rule.contains("higher is better"), "{}", hits.rule);
    }

    /// Issue 13, defect 3, as it was seen: a change that sends `EXISTS` before every `GET`
    /// showed `redis/exists` among the new rows and half the `GET`s as an improvement, and a
    /// change that lost the word L1 left its hits "not comparable".
    #[test]
    fn a_counter_that_appears_or_vanishes_in_a_scenario_is_judged_from_zero() {
        let base = record::test_record(
            "b",
            vec![
                io("sql_statements", 2.0),
                io("redis_commands", 100.0),
                io("redis/get", 100.0),
                io("observed/first.words.l1_hits", 50.0),
            ],
        );
        let head = record::test_record(
            "h",
            vec![
                io("sql_statements", 2.0),
                io("redis_commands", 150.0),
                io("redis/get", 50.0),
                io("redis/exists", 100.0),
                io("sql/select_goal", 1.0),
            ],
        );
        let comparison = compare(&base, &head, &thresholds());
        let rows = rows_by_name(&comparison);
        let exists = rows["io/dashboard/redis/exists"];
        assert_eq!(exists.verdict, Verdict::Regression, "{exists:?}");
        assert_eq!(exists.base, Some(0.0));
        assert!(exists.rule.contains("counted 0"), "{}", exists.rule);
        assert_eq!(
            rows["io/dashboard/sql/select_goal"].verdict,
            Verdict::Regression
        );
        let lost_hits = rows["io/dashboard/observed/first.words.l1_hits"];
        assert_eq!(lost_hits.verdict, Verdict::Regression, "{lost_hits:?}");
        assert_eq!(lost_hits.head, Some(0.0));
        assert_eq!(
            rows["io/dashboard/redis_commands"].verdict,
            Verdict::Regression
        );
    }

    /// Issue 13, defect 3: a benchmark that disappears (removed or renamed) escaped the gate.
    #[test]
    fn a_metric_missing_in_head_is_a_regression_unless_filtered_or_retired() {
        let gone = || {
            metric(
                "wall_time/cache/gone",
                Suite::Instructions,
                MetricKind::Deterministic,
                10.0,
            )
        };
        let scenario_gone = || io("sql_statements", 2.0);
        let base = record::test_record("b", vec![gone(), scenario_gone()]);
        let head = record::test_record(
            "h",
            vec![metric(
                "instructions/new",
                Suite::Instructions,
                MetricKind::Deterministic,
                5.0,
            )],
        );
        let judge = |scope: Scope<'_>| {
            let comparison = compare_in_scope(
                &base,
                &head,
                &thresholds(),
                &History::new(),
                &PairedSamples::new(),
                scope,
            );
            comparison
                .rows
                .iter()
                .map(|row| (row.name.clone(), row.verdict))
                .collect::<BTreeMap<_, _>>()
        };
        let whole = judge(Scope::default());
        assert_eq!(whole["wall_time/cache/gone"], Verdict::Regression);
        assert_eq!(whole["io/dashboard/sql_statements"], Verdict::Regression);
        assert_eq!(whole["instructions/new"], Verdict::NotComparable);

        let filtered = judge(Scope {
            filtered: true,
            ..Scope::default()
        });
        assert_eq!(filtered["wall_time/cache/gone"], Verdict::NotComparable);

        let retired = [
            "io/dashboard/".to_owned(),
            "wall_time/cache/gone".to_owned(),
        ];
        let with_retired = judge(Scope {
            retired: &retired,
            ..Scope::default()
        });
        assert_eq!(with_retired["wall_time/cache/gone"], Verdict::NotComparable);
        assert_eq!(
            with_retired["io/dashboard/sql_statements"],
            Verdict::NotComparable
        );
    }

    #[test]
    fn throughput_is_better_higher() {
        let mut base = metric(
            "load/mixed/throughput",
            Suite::Load,
            MetricKind::Deterministic,
            100.0,
        );
        base.unit = Unit::PerSecond;
        let head = Metric {
            value: 80.0,
            ..base.clone()
        };
        let row = compare_metric(&base, &head, &thresholds(), &History::new());
        assert_eq!(row.direction, Direction::HigherIsBetter);
        assert_eq!(row.verdict, Verdict::Regression);
    }

    #[test]
    fn a_per_benchmark_threshold_overrides_its_kind() {
        let mut thresholds = thresholds();
        thresholds.metrics.insert("m".to_owned(), 5.0);
        let row = compare_metric(
            &metric("m", Suite::Instructions, MetricKind::Deterministic, 1000.0),
            &metric("m", Suite::Instructions, MetricKind::Deterministic, 1040.0),
            &thresholds,
            &History::new(),
        );
        assert_eq!(row.verdict, Verdict::Unchanged);
        assert!(
            row.rule.contains("thresholds.metrics \"m\""),
            "{}",
            row.rule
        );
    }

    #[test]
    fn an_instruction_count_with_a_noisy_history_is_judged_by_its_band() {
        // A history that moves about ±2% from record to record: a 1.5% change is ordinary,
        // a 15% one is not.
        let noisy: Vec<f64> = (0..20)
            .map(|i| 1000.0 * (1.0 + 0.02 * f64::from(i % 3) - 0.02))
            .collect();
        let history = History::from([("m".to_owned(), noisy)]);
        let judge = |head: f64| {
            compare_metric(
                &metric("m", Suite::Instructions, MetricKind::Deterministic, 1000.0),
                &metric("m", Suite::Instructions, MetricKind::Deterministic, head),
                &thresholds(),
                &history,
            )
        };
        let ordinary = judge(1015.0);
        assert_eq!(ordinary.verdict, Verdict::Unchanged, "{}", ordinary.rule);
        assert!(ordinary.rule.contains("noise band"), "{}", ordinary.rule);
        assert_eq!(judge(1150.0).verdict, Verdict::Regression);

        // An I/O count never widens: one more statement is a regression whatever the history.
        let history = History::from([("s".to_owned(), vec![10.0, 12.0, 10.0, 13.0, 10.0, 12.0])]);
        let row = compare_metric(
            &metric("s", Suite::IoCounts, MetricKind::Deterministic, 10.0),
            &metric("s", Suite::IoCounts, MetricKind::Deterministic, 11.0),
            &thresholds(),
            &history,
        );
        assert_eq!(row.verdict, Verdict::Regression);
    }

    #[test]
    fn budgets_are_kept_broken_or_not_measured() {
        let head = record(vec![metric(
            "io/dashboard_warm/observed/due.hit_permille",
            Suite::IoCounts,
            MetricKind::Deterministic,
            900.0,
        )]);
        let budget = |metric: &str, min: Option<f64>, max: Option<f64>| Budget {
            metric: metric.to_owned(),
            min,
            max,
        };
        let budgets = [
            budget(
                "io/dashboard_warm/observed/due.hit_permille",
                Some(950.0),
                None,
            ),
            budget(
                "io/dashboard_warm/observed/due.hit_permille",
                None,
                Some(1000.0),
            ),
            budget("io/dashbord_warm/sql_statements", None, Some(0.0)),
        ];
        let checks = check_budgets(&head, &budgets, false);
        assert!(checks[0].broken);
        assert_eq!(checks[0].detail, "50 below the minimum 950");
        assert_eq!(checks[0].limit, "≥ 950");
        assert!(!checks[1].broken);
        assert!(
            checks[2].broken,
            "a misspelled metric must not pass silently"
        );
        assert!(checks[2].detail.contains("fix:"), "{}", checks[2].detail);
        // A filtered run did not measure everything: unmeasured budgets are not broken.
        assert!(!check_budgets(&head, &budgets, true)[2].broken);
    }

    #[test]
    fn deterministic_rules_are_data_driven() {
        use MetricKind::Deterministic as D;
        let cases = [
            // (suite, base, head, expected)
            (Suite::Instructions, 1000.0, 1010.0, Verdict::Unchanged), // exactly 1%: not beyond
            (Suite::Instructions, 1000.0, 1011.0, Verdict::Regression),
            (Suite::Instructions, 1000.0, 989.0, Verdict::Improvement),
            (Suite::IoCounts, 50.0, 51.0, Verdict::Regression), // one extra statement
            (Suite::IoCounts, 50.0, 50.0, Verdict::Unchanged),
            (Suite::IoCounts, 50.0, 49.0, Verdict::Improvement),
            (Suite::IoCounts, 0.0, 1.0, Verdict::Regression), // from zero
            (Suite::IoCounts, 0.0, 0.0, Verdict::Unchanged),
        ];
        for (suite, base, head, expected) in cases {
            assert_eq!(
                verdict_of(suite, D, base, head),
                expected,
                "{suite} {base} -> {head}"
            );
        }
    }

    fn plan(shape: &str) -> Metric {
        Metric {
            unit: Unit::Nodes,
            shape: Some(shape.to_owned()),
            ..metric("plans/q", Suite::Plans, MetricKind::Categorical, 4.0)
        }
    }

    const DUE: &str = "Limit(Nested Loop[Inner](Index Scan[review_cards_user_due on review_cards], \
                       Index Scan[words_pkey on words]))";

    #[test]
    fn plan_rules_are_data_driven() {
        let cases = [
            // (base, head, verdict, words the rule must contain)
            (DUE, DUE, Verdict::Unchanged, "unchanged"),
            (
                DUE,
                // The index was dropped: another index, a sort, and words read whole.
                "Limit(Sort(Hash Join[Inner](Seq Scan[words], \
                 Hash(Index Scan[review_cards_user_state_due on review_cards]))))",
                Verdict::Regression,
                "Seq Scan on words in head, through index words_pkey in base",
            ),
            (
                DUE,
                "Limit(Sort(Nested Loop[Inner](Index Scan[review_cards_user_state_due on \
                 review_cards], Index Scan[words_pkey on words])))",
                Verdict::Regression,
                "index review_cards_user_due on review_cards used in base, no longer used",
            ),
            (
                "Index Scan[words_pkey on words]",
                "Seq Scan[words]",
                Verdict::Regression,
                "Seq Scan on words",
            ),
            (
                "Bitmap Heap Scan[review_cards](Bitmap Index Scan[review_cards_user_due on \
                 review_cards])",
                "Parallel Seq Scan[review_cards]",
                Verdict::Regression,
                "through index review_cards_user_due",
            ),
            (
                // Same indexes, another join: reported, not gated.
                DUE,
                "Limit(Merge Join[Inner](Index Scan[review_cards_user_due on review_cards], \
                 Index Scan[words_pkey on words]))",
                Verdict::Informational,
                "plan changed",
            ),
            (
                // An index scan replacing a seq scan is no regression.
                "Seq Scan[words]",
                "Index Scan[words_pkey on words]",
                Verdict::Informational,
                "plan changed",
            ),
            (
                // Seq-scanned in both: not a lost index.
                "Hash Join[Inner](Seq Scan[words], Hash(Seq Scan[review_cards]))",
                "Hash Join[Inner](Seq Scan[review_cards], Hash(Seq Scan[words]))",
                Verdict::Informational,
                "plan changed",
            ),
            (
                "CTE today: Subquery Scan(Index Scan[user_preferences_pkey on user_preferences])",
                "CTE today: Subquery Scan(Seq Scan[user_preferences])",
                Verdict::Regression,
                "Seq Scan on user_preferences",
            ),
        ];
        for (base, head, verdict, rule) in cases {
            let row = compare_metric(&plan(base), &plan(head), &thresholds(), &History::new());
            assert_eq!(row.verdict, verdict, "{base} -> {head}: {}", row.rule);
            assert!(row.rule.contains(rule), "{base} -> {head}: {}", row.rule);
            assert_eq!(row.change_pct, None);
            assert_eq!(row.base_shape.as_deref(), Some(base));
            assert_eq!(row.head_shape.as_deref(), Some(head));
        }
    }

    #[test]
    fn plan_access_reads_scans_through_prefixes_and_nesting() {
        let access = plan_access(
            "Nested Loop[Inner](CTE today: Aggregate[Plain](Index Only Scan[a_idx on a]), \
             InitPlan: Seq Scan[b], Bitmap Heap Scan[c](Bitmap Index Scan[c_idx on c]))",
        );
        assert_eq!(
            access.seq_scanned.into_iter().collect::<Vec<_>>(),
            vec!["b".to_owned()]
        );
        assert_eq!(
            access.indexes.into_iter().collect::<Vec<_>>(),
            vec![
                ("a_idx".to_owned(), "a".to_owned()),
                ("c_idx".to_owned(), "c".to_owned())
            ]
        );
    }

    #[test]
    fn a_plan_regression_fails_the_comparison() {
        let base = record(vec![plan(DUE)]);
        let head = record(vec![plan("Limit(Sort(Seq Scan[review_cards]))")]);
        let comparison = compare(&base, &head, &thresholds());
        assert!(comparison.has_regression());
        assert_eq!(comparison.worst_regression().unwrap().name, "plans/q");
    }

    #[test]
    fn wall_time_from_separate_runs_is_never_gated() {
        let verdict = verdict_of(Suite::WallTime, MetricKind::Statistical, 100.0, 300.0);
        assert_eq!(verdict, Verdict::Informational);
    }

    /// Ten rounds of a benchmark taking about `base_ns`, head `factor` times as long, with a
    /// little alternating jitter that moves both sides of a round together.
    fn rounds(base_ns: f64, factor: f64) -> RoundSamples {
        let jitter = |round: usize| 1.0 + 0.02 * ((round % 3) as f64 - 1.0);
        RoundSamples {
            base: (0..10).map(|r| base_ns * jitter(r)).collect(),
            head: (0..10)
                .map(|r| base_ns * factor * jitter(r) * (1.0 + 0.001 * r as f64))
                .collect(),
        }
    }

    fn paired_row(samples: RoundSamples, thresholds: &Thresholds) -> MetricComparison {
        let name = "wall_time/query/due_cards";
        let base = record(vec![metric(
            name,
            Suite::WallTime,
            MetricKind::Statistical,
            100.0,
        )]);
        let head = record(vec![metric(
            name,
            Suite::WallTime,
            MetricKind::Statistical,
            104.0,
        )]);
        let paired = PairedSamples::from([(name.to_owned(), samples)]);
        compare_paired(&base, &head, thresholds, &History::new(), &paired)
            .rows
            .remove(0)
    }

    #[test]
    fn wall_time_timed_side_by_side_is_judged_by_the_paired_test() {
        let slower = paired_row(rounds(1000.0, 1.2), &thresholds());
        assert_eq!(slower.verdict, Verdict::Regression, "{}", slower.rule);
        let change = slower.change_pct.unwrap();
        assert!(
            (19.0..22.0).contains(&change),
            "the paired estimate: {change}"
        );
        assert!(
            slower.rule.starts_with("paired: 10 interleaved rounds"),
            "{}",
            slower.rule
        );
        assert!(slower.rule.contains("beyond ±5%"), "{}", slower.rule);
        assert!(slower.paired.is_some());

        let faster = paired_row(rounds(1000.0, 0.8), &thresholds());
        assert_eq!(faster.verdict, Verdict::Improvement, "{}", faster.rule);

        let same = paired_row(rounds(1000.0, 1.0), &thresholds());
        assert_eq!(same.verdict, Verdict::Unchanged, "{}", same.rule);

        // A significant 3% is below the minimum effect.
        let small = paired_row(rounds(1000.0, 1.03), &thresholds());
        assert_eq!(small.verdict, Verdict::Unchanged, "{}", small.rule);
    }

    #[test]
    fn a_paired_comparison_with_too_many_outlier_rounds_is_not_judged() {
        // Head 12% slower in seven rounds; in three, one side alone was preempted.
        let mut noisy = rounds(1000.0, 1.12);
        noisy.head[2] *= 1.6;
        noisy.base[5] *= 1.7;
        noisy.head[8] *= 0.6;
        let row = paired_row(noisy, &thresholds());
        assert_eq!(row.verdict, Verdict::Informational, "{}", row.rule);
        assert!(
            row.rule.contains("3 of 10 rounds were outliers"),
            "{}",
            row.rule
        );
        assert!(row.rule.contains("fix:"), "{}", row.rule);
        assert!(row.paired.is_some(), "the test's numbers are still shown");

        // A change so large that every round shows it stands, however many outliers.
        let mut large = rounds(1000.0, 3.0);
        large.head[2] *= 2.0;
        large.head[5] *= 2.5;
        large.base[8] *= 1.3;
        let row = paired_row(large, &thresholds());
        assert_eq!(row.verdict, Verdict::Regression, "{}", row.rule);
        assert!(
            row.rule.contains("the same with every round kept"),
            "{}",
            row.rule
        );

        // Two such rounds are set aside and the rest judged.
        let mut two = rounds(1000.0, 1.12);
        two.head[2] *= 1.6;
        two.base[5] *= 1.7;
        let row = paired_row(two, &thresholds());
        assert_eq!(row.verdict, Verdict::Regression, "{}", row.rule);
        assert!(
            row.rule.contains("2 outlier rounds set aside"),
            "{}",
            row.rule
        );
    }

    /// A run of 17 paired wall-time benchmarks: 16 unchanged, and `wall_time/b00` 20% slower
    /// in every round but one, whose tiny opposite move is set aside as an outlier, leaving 9
    /// kept rounds: p = 2 / 2^9 = 0.0039, significant alone and not for a family of 17 under
    /// Holm (17 × 0.0039 = 0.066).
    fn family_of_17() -> (RunRecord, RunRecord, PairedSamples) {
        let names: Vec<String> = (0..17).map(|i| format!("wall_time/b{i:02}")).collect();
        let metrics = |value: f64| -> Vec<Metric> {
            names
                .iter()
                .map(|name| metric(name, Suite::WallTime, MetricKind::Statistical, value))
                .collect()
        };
        let mut paired: PairedSamples = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut same = rounds(1000.0, 1.0);
                same.head.rotate_left(i % 10);
                (name.clone(), same)
            })
            .collect();
        let mut slower = rounds(1000.0, 1.2);
        slower.head[4] = slower.base[4] * 0.999;
        paired.insert(names[0].clone(), slower);
        (record(metrics(100.0)), record(metrics(100.0)), paired)
    }

    #[test]
    fn paired_rows_are_judged_as_one_family() {
        let (base, head, paired) = family_of_17();
        let judge = |family: FamilyControl| {
            let scope = Scope {
                family,
                ..Scope::default()
            };
            compare_in_scope(&base, &head, &thresholds(), &History::new(), &paired, scope)
                .rows
                .into_iter()
                .find(|row| row.name == "wall_time/b00")
                .unwrap()
        };
        let alone = judge(FamilyControl::PerRow);
        assert_eq!(alone.verdict, Verdict::Regression, "{}", alone.rule);
        let holm = judge(FamilyControl::Holm);
        assert_eq!(holm.verdict, Verdict::Unchanged, "{}", holm.rule);
        assert!(
            holm.rule
                .contains("significant for the family of 17 paired rows (Holm adjusted p"),
            "{}",
            holm.rule
        );
        let result = holm.paired.unwrap();
        assert_eq!(result.p_value, 2.0 / 512.0);
        let adjusted = result.family.unwrap().adjusted_p_value;
        assert!((adjusted - 17.0 * 2.0 / 512.0).abs() < 1e-12, "{adjusted}");
    }

    #[test]
    fn only_undecided_benchmarks_get_more_rounds_and_only_up_to_the_limit() {
        let (_, _, mut paired) = family_of_17();
        let adaptive = AdaptiveRounds::default();
        let undecided = |paired: &PairedSamples| {
            undecided_benchmarks(paired, &thresholds(), FamilyControl::Holm, &adaptive)
        };
        assert_eq!(undecided(&paired), ["wall_time/b00"]);
        // Ten more rounds, every one 20% slower: settled as a regression.
        let more = rounds(1000.0, 1.2);
        let slower = paired.get_mut("wall_time/b00").unwrap();
        slower.base.extend(&more.base);
        slower.head.extend(&more.head);
        assert!(undecided(&paired).is_empty());
        // At the limit a row is not measured again, however undecided.
        let (_, _, mut paired) = family_of_17();
        let at_limit = AdaptiveRounds {
            max_rounds: 10,
            ..adaptive
        };
        assert!(
            undecided_benchmarks(&paired, &thresholds(), FamilyControl::Holm, &at_limit).is_empty()
        );
        // A row not judged for its outliers is measured again; one the test refuses is not.
        let mut noisy = rounds(1000.0, 1.12);
        noisy.head[2] *= 1.6;
        noisy.base[5] *= 1.7;
        noisy.head[8] *= 0.6;
        paired.insert("wall_time/b01".to_owned(), noisy);
        let mut broken = rounds(1000.0, 1.2);
        broken.head[3] = 0.0;
        paired.insert("wall_time/b02".to_owned(), broken);
        assert_eq!(undecided(&paired), ["wall_time/b00", "wall_time/b01"]);
    }

    #[test]
    fn a_per_benchmark_threshold_is_the_paired_minimum_effect() {
        let mut lenient = thresholds();
        lenient.metrics.insert("wall_time/query/".to_owned(), 30.0);
        let row = paired_row(rounds(1000.0, 1.2), &lenient);
        assert_eq!(row.verdict, Verdict::Unchanged, "{}", row.rule);
        assert!(row.rule.contains("\"wall_time/query/\""), "{}", row.rule);
    }

    #[test]
    fn paired_samples_the_test_refuses_leave_the_row_informational_with_the_reason() {
        let mut broken = rounds(1000.0, 1.2);
        broken.head[3] = 0.0;
        let row = paired_row(broken, &thresholds());
        assert_eq!(row.verdict, Verdict::Informational);
        assert!(row.rule.contains("not judged"), "{}", row.rule);
        assert!(row.rule.contains("round 3"), "{}", row.rule);
        assert_eq!(row.paired, None);
    }

    #[test]
    fn statistical_memory_and_load_are_informational_with_their_own_rule() {
        for suite in [Suite::Memory, Suite::Load] {
            let row = compare_metric(
                &metric("m", suite, MetricKind::Statistical, 100.0),
                &metric("m", suite, MetricKind::Statistical, 1000.0),
                &thresholds(),
                &History::new(),
            );
            assert_eq!(row.verdict, Verdict::Informational, "{suite}");
            assert!(!row.rule.contains("wall time"), "{suite}: {}", row.rule);
        }
    }

    #[test]
    fn a_new_row_is_not_comparable_a_missing_one_regressed_and_regressions_come_first() {
        let base = record(vec![
            metric("io/a", Suite::IoCounts, MetricKind::Deterministic, 10.0),
            metric("io/gone", Suite::IoCounts, MetricKind::Deterministic, 1.0),
        ]);
        let head = record(vec![
            metric("io/new", Suite::IoCounts, MetricKind::Deterministic, 1.0),
            metric("io/a", Suite::IoCounts, MetricKind::Deterministic, 11.0),
        ]);
        let comparison = compare(&base, &head, &thresholds());
        let names: Vec<(&str, Verdict)> = comparison
            .rows
            .iter()
            .map(|r| (r.name.as_str(), r.verdict))
            .collect();
        assert_eq!(
            names,
            vec![
                ("io/a", Verdict::Regression),
                ("io/gone", Verdict::Regression),
                ("io/new", Verdict::NotComparable),
            ]
        );
        assert_eq!(comparison.worst_regression().unwrap().name, "io/a");
    }

    fn record(metrics: Vec<Metric>) -> RunRecord {
        record::test_record("c", metrics)
    }

    #[test]
    fn far_unpaired_moves_are_twice_or_half_with_intervals_apart_farthest_first() {
        let wall = |name: &str, value: f64, interval: Option<[f64; 2]>| Metric {
            interval,
            ..metric(name, Suite::WallTime, MetricKind::Statistical, value)
        };
        let around = |value: f64| Some([value * 0.9, value * 1.1]);
        let base = record(vec![
            wall("wall_time/cache/l1_hit", 326.0, around(326.0)),
            wall("wall_time/a", 100.0, around(100.0)),
            wall("wall_time/b", 100.0, around(100.0)),
            wall("wall_time/c", 100.0, around(100.0)),
            wall("wall_time/d", 100.0, around(100.0)),
            wall("wall_time/e", 100.0, Some([50.0, 200.0])),
            wall("wall_time/f", 100.0, None),
            wall("wall_time/g", 0.0, None),
            metric(
                "io/x/sql_statements",
                Suite::IoCounts,
                MetricKind::Deterministic,
                1.0,
            ),
        ]);
        let head = record(vec![
            // The L1 turned off: 590 times slower.
            wall("wall_time/cache/l1_hit", 192_119.0, around(192_119.0)),
            // Just under twice: not far.
            wall("wall_time/a", 199.0, around(199.0)),
            // Four times faster: far.
            wall("wall_time/b", 25.0, around(25.0)),
            // Three times slower: far, but only three are timed.
            wall("wall_time/c", 300.0, around(300.0)),
            wall("wall_time/d", 250.0, around(250.0)),
            // Twice, but the intervals overlap.
            wall("wall_time/e", 200.0, Some([150.0, 400.0])),
            // No intervals: the medians decide.
            wall("wall_time/f", 1_000.0, None),
            wall("wall_time/g", 5.0, None),
            // Not wall time.
            metric(
                "io/x/sql_statements",
                Suite::IoCounts,
                MetricKind::Deterministic,
                50.0,
            ),
        ]);
        assert_eq!(
            far_unpaired_moves(&base, &head),
            ["wall_time/cache/l1_hit", "wall_time/f", "wall_time/b"]
        );
        assert!(far_unpaired_moves(&base, &base).is_empty());
    }

    #[test]
    fn fingerprints_compare_major_versions_only() {
        let env = |pg: &str, redis: &str| -> Environment {
            record::TestRecord::new("c")
                .server_versions(pg, redis)
                .build()
                .environment
        };
        assert!(
            fingerprint_mismatches(&env("15.1 (Debian)", "7.0.1"), &env("15.18", "7.2.4"))
                .is_empty()
        );
        let mismatches = fingerprint_mismatches(&env("15.1", "7.0.1"), &env("16.2", "7.0.1"));
        assert_eq!(mismatches.len(), 1);
        assert!(mismatches[0].contains("postgres major version"));
    }
}
