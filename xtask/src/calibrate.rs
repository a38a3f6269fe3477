//! `cargo xtask perf calibrate`: repeated A/A runs of HEAD on one set of services, and the
//! false-alarm rate of every metric under this project's verdict rules. Each measurement is
//! compared with the one before it exactly as a PR would be compared with its base; since the
//! code is the same, every regression or improvement is a false alarm. Also how far each metric
//! moved between runs, so a maintainer can see which thresholds or tolerances a metric needs.
//! `summarize` and `render_calibration` are pure.
//!
//! `calibrate --paired` instead times HEAD against itself in interleaved rounds, as `--paired`
//! times base and head (adaptive rounds included), several times; each run's paired rows are
//! judged as one family exactly as a PR's would be (`compare::paired_outcomes`), and
//! `summarize_paired` counts the runs with any false alarm (the family-wise rate the gate
//! bounds) and the false alarms per metric. `summarize_paired` and `render_paired_calibration`
//! are pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::compare::{self, Verdict};
use crate::config::Thresholds;
use crate::record::{MetricKind, RunRecord};
use crate::stats::{FamilyControl, PairedVerdict};

/// How one metric behaved over the calibration's comparisons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricCalibration {
    pub name: String,
    pub kind: MetricKind,
    /// Comparisons in which the metric was judged (present in both runs).
    pub comparisons: usize,
    /// Comparisons whose verdict was a regression or an improvement: false alarms.
    pub false_alarms: usize,
    /// The largest change between consecutive runs, in percent (absolute value).
    pub max_change_pct: f64,
    /// The smallest and largest value over all runs.
    pub min: f64,
    pub max: f64,
    /// For a categorical metric: how many different labels (plan shapes) the runs gave.
    pub distinct_shapes: usize,
}

/// The whole calibration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    pub runs: usize,
    pub metrics: Vec<MetricCalibration>,
}

impl Calibration {
    pub fn false_alarms(&self) -> usize {
        self.metrics.iter().map(|m| m.false_alarms).sum()
    }

    pub fn comparisons(&self) -> usize {
        self.metrics.iter().map(|m| m.comparisons).sum()
    }
}

/// Compares every run with the one before it under `thresholds` (no history: a PR's first
/// comparison has none either) and counts, per metric, the verdicts that alarm.
pub fn summarize(records: &[RunRecord], thresholds: &Thresholds) -> Calibration {
    let mut metrics: BTreeMap<String, MetricCalibration> = BTreeMap::new();
    let mut shapes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in records {
        for metric in &record.metrics {
            let entry = metrics
                .entry(metric.name.clone())
                .or_insert_with(|| MetricCalibration {
                    name: metric.name.clone(),
                    kind: metric.kind,
                    comparisons: 0,
                    false_alarms: 0,
                    max_change_pct: 0.0,
                    min: metric.value,
                    max: metric.value,
                    distinct_shapes: 0,
                });
            entry.min = entry.min.min(metric.value);
            entry.max = entry.max.max(metric.value);
            if let Some(shape) = &metric.shape {
                let seen = shapes.entry(metric.name.clone()).or_default();
                if !seen.contains(shape) {
                    seen.push(shape.clone());
                }
            }
        }
    }
    for pair in records.windows(2) {
        let comparison =
            compare::compare_with_history(&pair[0], &pair[1], thresholds, &compare::History::new());
        for row in comparison.rows {
            let (Some(entry), Some(_), Some(_)) = (metrics.get_mut(&row.name), row.base, row.head)
            else {
                continue;
            };
            entry.comparisons += 1;
            if matches!(row.verdict, Verdict::Regression | Verdict::Improvement) {
                entry.false_alarms += 1;
            }
            if let Some(change) = row.change_pct.filter(|c| c.is_finite()) {
                entry.max_change_pct = entry.max_change_pct.max(change.abs());
            }
        }
    }
    for (name, seen) in shapes {
        if let Some(entry) = metrics.get_mut(&name) {
            entry.distinct_shapes = seen.len();
        }
    }
    Calibration {
        runs: records.len(),
        metrics: metrics.into_values().collect(),
    }
}

/// How one wall-time benchmark behaved over the A/A paired runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedMetricCalibration {
    pub name: String,
    /// Runs in which the paired test judged it.
    pub judged: usize,
    /// Runs in which it was measured but not judged (too many outlier rounds, bad samples).
    pub not_judged: usize,
    /// Runs whose verdict was slower or faster: false alarms.
    pub false_alarms: usize,
    /// The largest estimated change over the runs, in percent (absolute value).
    pub max_change_pct: f64,
    /// The smallest raw p-value over the runs.
    pub min_p_value: f64,
    /// The most rounds it was measured in (more than the first rounds: it was undecided).
    pub max_rounds: usize,
}

/// A whole `calibrate --paired`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedCalibration {
    pub runs: usize,
    /// The family adjustment the runs were judged under (`paired.family`).
    pub family: FamilyControl,
    /// Runs in which any row alarmed: the family-wise false alarm rate's numerator.
    pub runs_with_false_alarm: usize,
    pub metrics: Vec<PairedMetricCalibration>,
    /// Every false alarm, by run: which run, so that one can be matched with what the machine
    /// was doing then (the run's progress lines are numbered alike).
    pub alarms: Vec<PairedAlarm>,
}

/// One row's false alarm in one A/A run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedAlarm {
    /// Counting from 1.
    pub run: usize,
    pub name: String,
    pub change_pct: f64,
    pub p_value: f64,
    pub rounds: usize,
}

/// Judges each A/A run's paired samples (`runs`, HEAD against itself) as the gate would,
/// under `thresholds` and `family`, and counts the false alarms per run and per metric.
pub fn summarize_paired(
    runs: &[compare::PairedSamples],
    thresholds: &Thresholds,
    family: FamilyControl,
) -> PairedCalibration {
    let mut metrics: BTreeMap<String, PairedMetricCalibration> = BTreeMap::new();
    let mut runs_with_false_alarm = 0;
    let mut alarms = Vec::new();
    for (index, samples) in runs.iter().enumerate() {
        let mut alarmed = false;
        for (name, outcome) in compare::paired_outcomes(samples, thresholds, family) {
            let entry = metrics
                .entry(name.clone())
                .or_insert_with(|| PairedMetricCalibration {
                    name: name.clone(),
                    judged: 0,
                    not_judged: 0,
                    false_alarms: 0,
                    max_change_pct: 0.0,
                    min_p_value: 1.0,
                    max_rounds: 0,
                });
            entry.max_rounds = entry.max_rounds.max(samples[&name].base.len());
            let result = match outcome {
                compare::PairedOutcome::Judged { result, .. } => {
                    entry.judged += 1;
                    if result.verdict != PairedVerdict::NoChange {
                        entry.false_alarms += 1;
                        alarmed = true;
                        alarms.push(PairedAlarm {
                            run: index + 1,
                            name: name.clone(),
                            change_pct: result.change_pct,
                            p_value: result.p_value,
                            rounds: samples[&name].base.len(),
                        });
                    }
                    Some(result)
                }
                compare::PairedOutcome::NotJudged { result, .. } => {
                    entry.not_judged += 1;
                    result
                }
            };
            if let Some(result) = result {
                entry.max_change_pct = entry.max_change_pct.max(result.change_pct.abs());
                entry.min_p_value = entry.min_p_value.min(result.p_value);
            }
        }
        runs_with_false_alarm += usize::from(alarmed);
    }
    PairedCalibration {
        runs: runs.len(),
        family,
        runs_with_false_alarm,
        metrics: metrics.into_values().collect(),
        alarms,
    }
}

/// The paired calibration as text: the family-wise rate first, then every metric that
/// alarmed, then every metric's largest move and rounds.
pub fn render_paired_calibration(calibration: &PairedCalibration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "paired calibration: {} A/A paired runs of the same commit, {} wall-time benchmarks, \
         judged as a family ({})",
        calibration.runs,
        calibration.metrics.len(),
        calibration.family
    );
    let _ = writeln!(
        out,
        "runs with a false alarm: {} of {} ({:.1}%)",
        calibration.runs_with_false_alarm,
        calibration.runs,
        100.0 * calibration.runs_with_false_alarm as f64 / calibration.runs.max(1) as f64
    );
    for alarm in &calibration.alarms {
        let _ = writeln!(
            out,
            "  run {}: {} moved {:+.1}% (p {:.4}, {} rounds)",
            alarm.run, alarm.name, alarm.change_pct, alarm.p_value, alarm.rounds
        );
    }
    for metric in &calibration.metrics {
        let alarm = if metric.false_alarms > 0 {
            format!("{} FALSE ALARM(S)", metric.false_alarms)
        } else {
            "no false alarm".to_owned()
        };
        let not_judged = if metric.not_judged > 0 {
            format!(", not judged in {}", metric.not_judged)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {}  {alarm} in {} judged runs{not_judged}; moved up to {:.1}%, smallest p {:.3}, \
             up to {} rounds",
            metric.name,
            metric.judged,
            metric.max_change_pct,
            metric.min_p_value,
            metric.max_rounds
        );
    }
    out
}

/// The calibration as text: the verdict first, then every metric that alarmed, then the
/// deterministic metrics that moved without alarming, then how much wall time moved.
pub fn render_calibration(calibration: &Calibration) -> String {
    let mut out = String::new();
    let comparisons = calibration.runs.saturating_sub(1);
    let _ = writeln!(
        out,
        "calibration: {} runs of the same commit, {comparisons} A/A comparison{} of {} metrics",
        calibration.runs,
        if comparisons == 1 { "" } else { "s" },
        calibration.metrics.len()
    );
    false_alarm_lines(&mut out, calibration);
    let moved: Vec<&MetricCalibration> = calibration
        .metrics
        .iter()
        .filter(|m| m.kind == MetricKind::Deterministic && m.false_alarms == 0 && m.min != m.max)
        .collect();
    if !moved.is_empty() {
        let _ = writeln!(
            out,
            "deterministic metrics that moved within their thresholds:"
        );
        for metric in moved {
            let _ = writeln!(
                out,
                "  {}  {} .. {}  (up to {:.3}% between runs)",
                metric.name, metric.min, metric.max, metric.max_change_pct
            );
        }
    }
    let unstable_plans: Vec<&MetricCalibration> = calibration
        .metrics
        .iter()
        .filter(|m| m.distinct_shapes > 1)
        .collect();
    for metric in unstable_plans {
        let _ = writeln!(
            out,
            "plan {} took {} different shapes",
            metric.name, metric.distinct_shapes
        );
    }
    let wall = calibration
        .metrics
        .iter()
        .filter(|m| m.kind == MetricKind::Statistical && m.comparisons > 0)
        .max_by(|a, b| a.max_change_pct.total_cmp(&b.max_change_pct));
    if let Some(wall) = wall {
        let _ = writeln!(
            out,
            "wall time and latency (never gated unpaired) moved up to {:.1}% between runs ({})",
            wall.max_change_pct, wall.name
        );
    }
    out
}

/// The false alarms, per metric with the per-benchmark threshold that would quiet it, or the
/// line saying there were none.
fn false_alarm_lines(out: &mut String, calibration: &Calibration) {
    let alarmed: Vec<&MetricCalibration> = calibration
        .metrics
        .iter()
        .filter(|m| m.false_alarms > 0)
        .collect();
    if alarmed.is_empty() {
        let _ = writeln!(
            out,
            "no false alarm: 0 of {} judgements",
            calibration.comparisons()
        );
    } else {
        let _ = writeln!(
            out,
            "{} false alarm{} in {} judgements:",
            calibration.false_alarms(),
            if calibration.false_alarms() == 1 {
                ""
            } else {
                "s"
            },
            calibration.comparisons()
        );
        for metric in &alarmed {
            let _ = writeln!(
                out,
                "  {}  {}/{} comparisons ({:.0}%), moved up to {:.3}%  fix: a per-benchmark threshold above that, `\"{}\" = {:.2}` under [workspace.metadata.perf.thresholds.metrics]",
                metric.name,
                metric.false_alarms,
                metric.comparisons,
                100.0 * metric.false_alarms as f64 / metric.comparisons.max(1) as f64,
                metric.max_change_pct,
                metric.name,
                (metric.max_change_pct * 1.5).max(0.01),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Metric, Suite, Unit, test_record};

    fn record(values: &[(&str, MetricKind, f64)]) -> RunRecord {
        let metrics = values
            .iter()
            .map(|(name, kind, value)| Metric {
                name: (*name).to_owned(),
                suite: match kind {
                    MetricKind::Statistical => Suite::WallTime,
                    _ if name.starts_with("instructions/") => Suite::Instructions,
                    _ => Suite::IoCounts,
                },
                unit: match kind {
                    MetricKind::Statistical => Unit::Nanoseconds,
                    _ if name.starts_with("instructions/") => Unit::Instructions,
                    _ => Unit::Statements,
                },
                kind: *kind,
                value: *value,
                interval: None,
                samples: Vec::new(),
                shape: None,
            })
            .collect();
        test_record(&"a".repeat(40), metrics)
    }

    #[test]
    fn paired_a_a_runs_count_false_alarms_per_run_and_per_metric() {
        let rounds = |factors: [f64; 10]| compare::RoundSamples {
            base: vec![1000.0; 10],
            head: factors.iter().map(|f| 1000.0 * f).collect(),
        };
        let quiet = rounds([1.01, 0.99, 1.02, 0.98, 1.0, 1.01, 0.99, 1.02, 0.98, 1.005]);
        let alarm = rounds([1.2, 1.21, 1.19, 1.22, 1.18, 1.2, 1.21, 1.19, 1.22, 1.18]);
        let run = |a: &compare::RoundSamples, b: &compare::RoundSamples| {
            compare::PairedSamples::from([
                ("wall_time/a".to_owned(), a.clone()),
                ("wall_time/b".to_owned(), b.clone()),
            ])
        };
        let runs = [
            run(&quiet, &quiet),
            run(&quiet, &alarm),
            run(&quiet, &quiet),
        ];
        let calibration = summarize_paired(&runs, &Thresholds::default(), FamilyControl::default());
        assert_eq!(calibration.runs, 3);
        assert_eq!(calibration.runs_with_false_alarm, 1);
        let b = &calibration.metrics[1];
        assert_eq!(
            (b.name.as_str(), b.judged, b.false_alarms),
            ("wall_time/b", 3, 1)
        );
        assert_eq!(calibration.metrics[0].false_alarms, 0);
        let alarms: Vec<(usize, &str)> = calibration
            .alarms
            .iter()
            .map(|alarm| (alarm.run, alarm.name.as_str()))
            .collect();
        assert_eq!(alarms, [(2, "wall_time/b")]);
        let text = render_paired_calibration(&calibration);
        assert!(
            text.contains("runs with a false alarm: 1 of 3 (33.3%)"),
            "{text}"
        );
        assert!(text.contains("judged as a family (Holm)"), "{text}");
        assert!(
            text.contains("wall_time/b  1 FALSE ALARM(S) in 3 judged runs"),
            "{text}"
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn a_count_that_moves_beyond_its_threshold_is_a_false_alarm_and_wall_time_never_is() {
        use MetricKind::{Deterministic, Statistical};
        let records = vec![
            record(&[
                ("io/a/sql_statements", Deterministic, 10.0),
                ("instructions/b", Deterministic, 1000.0),
                ("wall_time/c", Statistical, 100.0),
            ]),
            record(&[
                ("io/a/sql_statements", Deterministic, 11.0),
                ("instructions/b", Deterministic, 1005.0),
                ("wall_time/c", Statistical, 130.0),
            ]),
            record(&[
                ("io/a/sql_statements", Deterministic, 11.0),
                ("instructions/b", Deterministic, 1000.0),
                ("wall_time/c", Statistical, 90.0),
            ]),
        ];
        let thresholds: Thresholds =
            toml::from_str("instructions_pct = 1.0\nio_counts_pct = 0.0").expect("thresholds");
        let calibration = summarize(&records, &thresholds);
        assert_eq!(calibration.runs, 3);
        let by_name = |name: &str| {
            calibration
                .metrics
                .iter()
                .find(|m| m.name == name)
                .unwrap()
                .clone()
        };
        let io = by_name("io/a/sql_statements");
        assert_eq!((io.comparisons, io.false_alarms), (2, 1));
        assert!((io.max_change_pct - 10.0).abs() < 1e-9);
        let instructions = by_name("instructions/b");
        assert_eq!(instructions.false_alarms, 0);
        assert_eq!((instructions.min, instructions.max), (1000.0, 1005.0));
        let wall = by_name("wall_time/c");
        assert_eq!((wall.comparisons, wall.false_alarms), (2, 0));
        assert!((wall.max_change_pct - 40.0 / 1.3).abs() < 1e-9);
        assert_eq!(calibration.false_alarms(), 1);

        let text = render_calibration(&calibration);
        assert!(text.contains("1 false alarm in 6 judgements"), "{text}");
        assert!(
            text.contains("io/a/sql_statements  1/2 comparisons"),
            "{text}"
        );
        assert!(
            text.contains("instructions/b  1000 .. 1005  (up to 0.500% between runs)"),
            "{text}"
        );
        assert!(text.contains("moved up to 30.8%"), "{text}");
    }

    /// Four A/A runs: an I/O count that alarms, an instruction count that moves within its
    /// threshold, a plan that took two shapes, wall time that moved, and a steady count.
    fn calibration_fixture() -> Calibration {
        use MetricKind::{Deterministic, Statistical};
        let plan = |shape: &str| Metric {
            name: "plans/due_cards_first_page".to_owned(),
            suite: Suite::Plans,
            unit: Unit::Nodes,
            kind: MetricKind::Categorical,
            value: 4.0,
            interval: None,
            samples: Vec::new(),
            shape: Some(shape.to_owned()),
        };
        let index = "Limit(Index Scan[review_cards_user_due on review_cards])";
        let sort = "Limit(Sort(Seq Scan[review_cards]))";
        let runs = [
            (10.0, 1000.0, 100.0, index),
            (11.0, 1004.0, 112.5, index),
            (11.0, 1000.0, 95.0, sort),
            (11.0, 1002.0, 101.0, index),
        ];
        let records: Vec<RunRecord> = runs
            .iter()
            .map(|&(io, instructions, wall, shape)| {
                let mut record = record(&[
                    ("io/due_cards/sql_statements", Deterministic, io),
                    ("io/word_by_id/sql_statements", Deterministic, 1.0),
                    (
                        "instructions/cache/decode/word",
                        Deterministic,
                        instructions,
                    ),
                    ("wall_time/query/due_cards", Statistical, wall),
                ]);
                record.metrics.push(plan(shape));
                record
            })
            .collect();
        let thresholds: Thresholds =
            toml::from_str("instructions_pct = 1.0\nio_counts_pct = 0.0").expect("thresholds");
        summarize(&records, &thresholds)
    }

    /// What `perf calibrate` prints, pinned.
    #[test]
    fn rendered_calibration_snapshot() {
        insta::assert_snapshot!(render_calibration(&calibration_fixture()));
    }

    /// `calibration.json` as `perf calibrate` writes it (`serde_json::to_vec_pretty`), pinned.
    #[test]
    fn calibration_json_snapshot() {
        let json = serde_json::to_vec_pretty(&calibration_fixture()).expect("serializes");
        insta::assert_snapshot!(String::from_utf8(json).expect("UTF-8"));
    }

    #[test]
    fn identical_runs_give_no_false_alarm() {
        let same = || record(&[("io/a/sql_statements", MetricKind::Deterministic, 10.0)]);
        let calibration = summarize(&[same(), same(), same()], &Thresholds::default());
        assert_eq!(calibration.false_alarms(), 0);
        assert_eq!(calibration.comparisons(), 2);
        assert!(render_calibration(&calibration).contains("no false alarm: 0 of 2 judgements"));
    }
}
