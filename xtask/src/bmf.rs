//! Bencher Metric Format (BMF): a run's record as the JSON that Bencher (`bencher run
//! --adapter json`) and other tools ingest, written beside the report as `report.bmf.json`.
//!
//! Pure: a record in, a JSON value out. BMF is `{ benchmark: { measure: { value, lower_value?,
//! upper_value? } } }`. Every metric is one benchmark named as in the record; its measure is
//! Bencher's built-in `latency` (nanoseconds) for times, `throughput` for events per second,
//! `instructions` for instruction counts, and a slug naming the unit for the other counts. A
//! statistical metric's 95% interval becomes its bounds.

use serde_json::{Map, Value, json};

use crate::record::{RunRecord, Unit};

/// The BMF measure of a unit, and the factor that converts a value into the measure's unit.
pub fn measure(unit: Unit) -> (&'static str, f64) {
    match unit {
        Unit::Nanoseconds => ("latency", 1.0),
        Unit::Microseconds => ("latency", 1e3),
        Unit::Milliseconds => ("latency", 1e6),
        Unit::PerSecond => ("throughput", 1.0),
        Unit::Instructions => ("instructions", 1.0),
        Unit::Statements => ("sql-statements", 1.0),
        Unit::Rows => ("rows", 1.0),
        Unit::Commands => ("redis-commands", 1.0),
        Unit::Count => ("count", 1.0),
        Unit::Nodes => ("plan-nodes", 1.0),
        Unit::Buffers => ("shared-buffers", 1.0),
        Unit::Bytes => ("bytes", 1.0),
    }
}

/// The record's metrics in Bencher Metric Format, in the record's order.
pub fn bencher_metric_format(record: &RunRecord) -> Value {
    let mut benchmarks = Map::new();
    for metric in &record.metrics {
        let (slug, factor) = measure(metric.unit);
        let mut measured = Map::new();
        measured.insert("value".to_owned(), json!(metric.value * factor));
        if let Some([lower, upper]) = metric.interval {
            measured.insert("lower_value".to_owned(), json!(lower * factor));
            measured.insert("upper_value".to_owned(), json!(upper * factor));
        }
        benchmarks.insert(metric.name.clone(), json!({ slug: measured }));
    }
    Value::Object(benchmarks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Metric, MetricKind, Suite};

    fn metric(name: &str, unit: Unit, value: f64, interval: Option<[f64; 2]>) -> Metric {
        Metric {
            name: name.to_owned(),
            suite: Suite::Instructions,
            unit,
            kind: if interval.is_some() {
                MetricKind::Statistical
            } else {
                MetricKind::Deterministic
            },
            value,
            interval,
            samples: Vec::new(),
            shape: None,
        }
    }

    fn record_with(metrics: Vec<Metric>) -> RunRecord {
        crate::record::test_record("abc", metrics)
    }

    #[test]
    fn every_metric_is_a_benchmark_with_its_measure_and_bounds() {
        let record = record_with(vec![
            metric(
                "wall_time/cache/l1_hit",
                Unit::Nanoseconds,
                120.0,
                Some([110.0, 130.0]),
            ),
            metric(
                "load/due_cards/p95",
                Unit::Microseconds,
                2.5,
                Some([2.0, 3.0]),
            ),
            metric(
                "instructions/sm2/schedule/lapse",
                Unit::Instructions,
                1234.0,
                None,
            ),
            metric("io/due_cards/sql_statements", Unit::Statements, 2.0, None),
            metric("load/due_cards/throughput", Unit::PerSecond, 900.0, None),
        ]);
        let bmf = bencher_metric_format(&record);
        assert_eq!(
            bmf,
            json!({
                "wall_time/cache/l1_hit": {
                    "latency": { "value": 120.0, "lower_value": 110.0, "upper_value": 130.0 }
                },
                "load/due_cards/p95": {
                    "latency": { "value": 2500.0, "lower_value": 2000.0, "upper_value": 3000.0 }
                },
                "instructions/sm2/schedule/lapse": { "instructions": { "value": 1234.0 } },
                "io/due_cards/sql_statements": { "sql-statements": { "value": 2.0 } },
                "load/due_cards/throughput": { "throughput": { "value": 900.0 } },
            })
        );
    }

    #[test]
    fn an_empty_record_is_an_empty_object() {
        assert_eq!(bencher_metric_format(&record_with(Vec::new())), json!({}));
    }

    #[test]
    fn measure_slugs_are_lowercase_kebab_case() {
        for unit in [
            Unit::Nanoseconds,
            Unit::Instructions,
            Unit::Statements,
            Unit::Rows,
            Unit::Commands,
            Unit::Count,
            Unit::Nodes,
            Unit::Buffers,
            Unit::Bytes,
            Unit::Microseconds,
            Unit::Milliseconds,
            Unit::PerSecond,
        ] {
            let (slug, factor) = measure(unit);
            assert!(
                slug.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{unit:?}: {slug}"
            );
            assert!(factor >= 1.0, "{unit:?}");
        }
    }
}
