//! `cargo xtask perf history`: persistent shifts in the target branch's history. Reads the
//! stored records (baseline branch, one machine class) of a revision and its first-parent
//! ancestors, and finds in each metric's series the change points (`stats::change_points`)
//! that a per-PR threshold lets through one small step at a time, and every change of a plan
//! shape. Pure: `commands::history` reads the records (`baseline::Lineage`) and prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::record::{MetricKind, RunRecord, Unit};
use crate::stats::{self, ChangePointOptions};

/// One metric's values along the target branch, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistorySeries {
    pub metric: String,
    /// (short commit, value) of each record that has the metric.
    pub points: Vec<(String, f64)>,
    /// Indices into `points` of the first value after each persistent shift.
    pub change_points: Vec<usize>,
}

/// The history of every numeric metric in `records` (oldest first), with its change points
/// (`stats::change_points`). A record without a metric is left out of that metric's points.
pub fn history_series(records: &[RunRecord], options: &ChangePointOptions) -> Vec<HistorySeries> {
    let mut series: BTreeMap<&str, Vec<(String, f64)>> = BTreeMap::new();
    for record in records {
        for metric in &record.metrics {
            if metric.kind == MetricKind::Categorical || !metric.value.is_finite() {
                continue;
            }
            series.entry(&metric.name).or_default().push((
                crate::render::short_sha(&record.commit).to_owned(),
                metric.value,
            ));
        }
    }
    series
        .into_iter()
        .map(|(metric, points)| {
            let values: Vec<f64> = points.iter().map(|(_, value)| *value).collect();
            HistorySeries {
                metric: metric.to_owned(),
                change_points: stats::change_points(&values, options)
                    .into_iter()
                    .map(|change| change.index)
                    .collect(),
                points,
            }
        })
        .collect()
}

/// A commit of the history that has a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub commit: String,
    /// The commit's subject line.
    pub subject: String,
}

/// A persistent shift of a numeric metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    pub metric: String,
    pub unit: Unit,
    pub kind: MetricKind,
    /// The first commit after the shift.
    pub at: Point,
    /// The last record with the metric before it: with `at`, the ends a bisection starts
    /// from.
    pub before: Option<Point>,
    pub median_before: f64,
    pub median_after: f64,
    pub change_pct: f64,
    /// How many records lie before and after the shift (within its segments).
    pub records_before: usize,
    pub records_after: usize,
}

/// A change of a plan's shape between two consecutive records.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeChange {
    pub metric: String,
    pub at: Point,
    pub before: String,
    pub after: String,
}

/// What the history holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistoryFindings {
    /// The records read, oldest first.
    pub points: Vec<Point>,
    pub shifts: Vec<Shift>,
    pub shape_changes: Vec<ShapeChange>,
    /// How many metrics were looked at.
    pub metrics_examined: usize,
}

/// The shifts and shape changes in `records` (oldest first, with their commits' subjects).
/// A metric absent from a record is a gap in its series, not a value.
pub fn find_shifts(
    records: &[(RunRecord, String)],
    metric_filter: Option<&str>,
    options: &ChangePointOptions,
) -> HistoryFindings {
    let mut series: BTreeMap<&str, Series> = BTreeMap::new();
    for (index, (record, _)) in records.iter().enumerate() {
        for metric in &record.metrics {
            if metric_filter.is_some_and(|filter| !metric.name.contains(filter)) {
                continue;
            }
            let entry = series.entry(&metric.name).or_insert_with(|| Series {
                unit: metric.unit,
                kind: metric.kind,
                values: vec![f64::NAN; records.len()],
                shapes: vec![None; records.len()],
            });
            entry.values[index] = metric.value;
            entry.shapes[index] = metric.shape.clone();
        }
    }
    let points: Vec<Point> = records
        .iter()
        .map(|(record, subject)| Point {
            commit: record.commit.clone(),
            subject: subject.clone(),
        })
        .collect();
    let mut findings = HistoryFindings {
        points: points.clone(),
        metrics_examined: series.len(),
        ..HistoryFindings::default()
    };
    for (name, series) in series {
        if series.kind == MetricKind::Categorical {
            findings
                .shape_changes
                .extend(shape_changes(name, &series, &points));
        } else {
            findings
                .shifts
                .extend(shifts(name, &series, &points, options));
        }
    }
    findings
}

/// One metric along the records: its value (NaN where a record lacks it) and plan shape.
struct Series {
    unit: Unit,
    kind: MetricKind,
    values: Vec<f64>,
    shapes: Vec<Option<String>>,
}

/// Every change of a plan's shape between consecutive records that have it.
fn shape_changes(name: &str, series: &Series, points: &[Point]) -> Vec<ShapeChange> {
    let mut changes = Vec::new();
    let mut previous: Option<&String> = None;
    for (index, shape) in series.shapes.iter().enumerate() {
        let Some(shape) = shape else { continue };
        if let Some(before) = previous.filter(|before| *before != shape) {
            changes.push(ShapeChange {
                metric: name.to_owned(),
                at: points[index].clone(),
                before: before.clone(),
                after: shape.clone(),
            });
        }
        previous = Some(shape);
    }
    changes
}

/// The persistent shifts of a numeric series, with how many records lie on each side.
fn shifts(
    name: &str,
    series: &Series,
    points: &[Point],
    options: &ChangePointOptions,
) -> Vec<Shift> {
    let changes = stats::change_points(&series.values, options);
    let present: Vec<usize> = (0..series.values.len())
        .filter(|&i| series.values[i].is_finite())
        .collect();
    let count = |from: usize, to: usize| present.iter().filter(|&&i| i >= from && i < to).count();
    let mut segment_start = present.first().copied().unwrap_or(0);
    let mut shifts = Vec::new();
    for (number, change) in changes.iter().enumerate() {
        let segment_end = changes
            .get(number + 1)
            .map_or(series.values.len(), |next| next.index);
        shifts.push(Shift {
            metric: name.to_owned(),
            unit: series.unit,
            kind: series.kind,
            at: points[change.index].clone(),
            before: present
                .iter()
                .rev()
                .find(|&&index| index < change.index)
                .map(|&index| points[index].clone()),
            median_before: change.median_before,
            median_after: change.median_after,
            change_pct: change.change_pct,
            records_before: count(segment_start, change.index),
            records_after: count(change.index, segment_end),
        });
        segment_start = change.index;
    }
    shifts
}

/// The findings as text for a terminal: where the history comes from, then every shift
/// (largest first) and every plan shape change (oldest first).
pub fn render_history(
    findings: &HistoryFindings,
    source: &str,
    options: &ChangePointOptions,
    left_out: &[String],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "history: {} record{} of {source}",
        findings.points.len(),
        if findings.points.len() == 1 { "" } else { "s" }
    );
    if let (Some(first), Some(last)) = (findings.points.first(), findings.points.last()) {
        let _ = writeln!(
            out,
            "  from {} to {}",
            describe_point(first),
            describe_point(last)
        );
    }
    for reason in left_out {
        let _ = writeln!(out, "  left out: {reason}");
    }
    let needed = 2 * options.min_segment_len.max(1);
    if findings.points.len() < needed {
        let _ = writeln!(
            out,
            "too few records to find a shift: a shift needs {} records on each side ({needed} in all).\n  fix: store the target branch's records (`cargo xtask perf baseline add`, or `baseline fetch`), or pass --min-segment",
            options.min_segment_len.max(1)
        );
    }
    shift_lines(&mut out, findings, options);
    for change in &findings.shape_changes {
        let _ = writeln!(
            out,
            "plan shape of {} changed at {}:\n    before: {}\n    after:  {}",
            change.metric,
            describe_point(&change.at),
            change.before,
            change.after
        );
    }
    out
}

/// The persistent shifts, largest first, or the line saying there were none.
fn shift_lines(out: &mut String, findings: &HistoryFindings, options: &ChangePointOptions) {
    let mut shifts: Vec<&Shift> = findings.shifts.iter().collect();
    shifts.sort_by(|a, b| {
        b.change_pct
            .abs()
            .total_cmp(&a.change_pct.abs())
            .then_with(|| a.metric.cmp(&b.metric))
    });
    if shifts.is_empty() {
        let _ = writeln!(
            out,
            "no persistent shift of at least {}% in {} metric{}",
            options.min_shift_pct,
            findings.metrics_examined,
            if findings.metrics_examined == 1 {
                ""
            } else {
                "s"
            }
        );
    } else {
        let _ = writeln!(
            out,
            "persistent shifts (each lasting at least {} records):",
            options.min_segment_len.max(1)
        );
        for shift in shifts {
            let symbol = shift.unit.symbol();
            let _ = writeln!(
                out,
                "  {:+.2}%  {}  {} -> {}{}{}  from {} ({} records before, {} after){}",
                shift.change_pct,
                shift.metric,
                format_value(shift.median_before),
                format_value(shift.median_after),
                if symbol.is_empty() { "" } else { " " },
                symbol,
                describe_point(&shift.at),
                shift.records_before,
                shift.records_after,
                if shift.kind == MetricKind::Statistical {
                    "  [wall time: medians of separate runs]"
                } else {
                    ""
                }
            );
            if let (MetricKind::Deterministic, Some(before)) = (shift.kind, &shift.before) {
                let _ = writeln!(
                    out,
                    "      which commit: cargo xtask perf bisect --metric {} --good {} --bad {}",
                    shift.metric,
                    crate::render::short_sha(&before.commit),
                    crate::render::short_sha(&shift.at.commit)
                );
            }
        }
    }
}

fn describe_point(point: &Point) -> String {
    let short = crate::render::short_sha(&point.commit);
    if point.subject.is_empty() {
        short.to_owned()
    } else {
        format!("{short} \"{}\"", point.subject)
    }
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Metric, Suite, test_record};

    fn record(commit: usize, metrics: Vec<Metric>) -> (RunRecord, String) {
        (
            test_record(&format!("{commit:040x}"), metrics),
            format!("commit {commit}"),
        )
    }

    fn count(name: &str, value: f64) -> Metric {
        Metric {
            name: name.to_owned(),
            suite: Suite::Instructions,
            unit: Unit::Instructions,
            kind: MetricKind::Deterministic,
            value,
            interval: None,
            samples: Vec::new(),
            shape: None,
        }
    }

    fn plan(shape: &str) -> Metric {
        Metric {
            name: "plans/due".to_owned(),
            suite: Suite::Plans,
            unit: Unit::Nodes,
            kind: MetricKind::Categorical,
            value: 2.0,
            interval: None,
            samples: Vec::new(),
            shape: Some(shape.to_owned()),
        }
    }

    #[test]
    fn a_creeping_regression_is_found_at_its_commit_and_a_flat_metric_is_not() {
        // Three steps of 0.7%, each below a 1% per-PR threshold, 8 records apart.
        let records: Vec<_> = (0..32)
            .map(|i| {
                let level = 100_000.0 * 1.007_f64.powi((i / 8) as i32);
                record(
                    i,
                    vec![
                        count("instructions/creeping", level.round()),
                        count("instructions/flat", 5_000.0),
                    ],
                )
            })
            .collect();
        let findings = find_shifts(&records, None, &ChangePointOptions::default());
        assert_eq!(findings.metrics_examined, 2);
        let at: Vec<usize> = findings
            .shifts
            .iter()
            .map(|shift| {
                assert_eq!(shift.metric, "instructions/creeping");
                usize::from_str_radix(&shift.at.commit, 16).unwrap()
            })
            .collect();
        assert_eq!(at, vec![8, 16, 24]);
        let first = &findings.shifts[0];
        assert!((first.change_pct - 0.7).abs() < 0.01, "{first:?}");
        assert_eq!((first.records_before, first.records_after), (8, 8));
        assert_eq!(first.at.subject, "commit 8");

        let text = render_history(&findings, "test", &ChangePointOptions::default(), &[]);
        assert!(text.contains("instructions/creeping"), "{text}");
        assert!(!text.contains("instructions/flat"), "{text}");
    }

    #[test]
    fn gaps_are_skipped_and_the_filter_selects_metrics() {
        let records: Vec<_> = (0..20)
            .map(|i| {
                let mut metrics = vec![count("io/b", 10.0)];
                if i % 3 != 0 {
                    metrics.push(count("io/a", if i < 10 { 100.0 } else { 103.0 }));
                }
                record(i, metrics)
            })
            .collect();
        let findings = find_shifts(&records, Some("io/a"), &ChangePointOptions::default());
        assert_eq!(findings.metrics_examined, 1);
        assert_eq!(findings.shifts.len(), 1, "{findings:?}");
        let shift = &findings.shifts[0];
        assert_eq!(shift.at.commit, format!("{:040x}", 10));
        assert_eq!(shift.median_before, 100.0);
        assert_eq!(shift.median_after, 103.0);
        // Records 0, 3, 6, 9 (before) and 12, 15, 18 (after) lack the metric.
        assert_eq!((shift.records_before, shift.records_after), (6, 7));
    }

    /// 24 records: an instruction count that creeps up twice, an I/O count that drops, wall
    /// time that shifts, a flat count, and a plan whose shape changes once.
    fn history_fixture() -> Vec<(RunRecord, String)> {
        (0..24_i32)
            .map(|i| {
                let mut wall = count(
                    "wall_time/query/due_cards",
                    if i < 12 { 250_000.0 } else { 275_500.5 },
                );
                wall.suite = Suite::WallTime;
                wall.unit = Unit::Nanoseconds;
                wall.kind = MetricKind::Statistical;
                let mut io = count(
                    "io/due_cards/sql_statements",
                    if i < 16 { 31.0 } else { 30.0 },
                );
                io.suite = Suite::IoCounts;
                io.unit = Unit::Statements;
                let commit = format!("{:02x}{}", 0xa0 + i, "3f9c2a7d".repeat(5))[..40].to_owned();
                let metrics = vec![
                    count(
                        "instructions/cache/decode/word",
                        (2_400.0 * 1.008_f64.powi(i / 8)).round(),
                    ),
                    count("instructions/sm2/schedule", 5_000.0),
                    io,
                    wall,
                    plan(if i < 20 {
                        "Limit(Index Scan[review_cards_user_due on review_cards])"
                    } else {
                        "Limit(Sort(Seq Scan[review_cards]))"
                    }),
                ];
                (test_record(&commit, metrics), format!("commit {i}"))
            })
            .collect()
    }

    /// What `perf history` prints, pinned: the source, what was left out, every shift
    /// (largest first) and the plan shape change.
    #[test]
    fn rendered_history_snapshot() {
        let records = history_fixture();
        let options = ChangePointOptions::default();
        let findings = find_shifts(&records, None, &options);
        let source = format!(
            "the last 26 first-parent commits of main ({}), machine class linux-x86_64-2c-0000abcd, on perf-baselines",
            &records.last().unwrap().0.commit[..12]
        );
        let left_out = [
            "9e1f00c4b2d7: measured differently from the newest record (rustc: base \"rustc 1.94.0\", head \"rustc 1.95.0\")"
                .to_owned(),
        ];
        insta::assert_snapshot!(render_history(&findings, &source, &options, &left_out));
    }

    /// Too few records for a shift, a filter that selects one metric, and no shift.
    #[test]
    fn rendered_short_history_snapshot() {
        let records: Vec<_> = history_fixture().into_iter().take(3).collect();
        let options = ChangePointOptions::default();
        let findings = find_shifts(&records, Some("io/"), &options);
        insta::assert_snapshot!(render_history(&findings, "main", &options, &[]));
    }

    #[test]
    fn plan_shape_changes_are_listed_where_they_happen() {
        let records: Vec<_> = (0..4)
            .map(|i| {
                record(
                    i,
                    vec![plan(if i < 2 {
                        "Index Scan using a"
                    } else {
                        "Seq Scan"
                    })],
                )
            })
            .collect();
        let findings = find_shifts(&records, None, &ChangePointOptions::default());
        assert_eq!(findings.shape_changes.len(), 1);
        assert_eq!(findings.shape_changes[0].at.commit, format!("{:040x}", 2));
        assert_eq!(findings.shape_changes[0].before, "Index Scan using a");
        assert!(findings.shifts.is_empty());
        let text = render_history(&findings, "test", &ChangePointOptions::default(), &[]);
        assert!(text.contains("too few records"), "{text}");
        assert!(text.contains("after:  Seq Scan"), "{text}");
    }
}
