//! Memory: the heap use of each I/O scenario's measured part, as the `suite` binary's counting
//! allocator saw it (`{"memory": ...}` on the scenario's stdout), and the live-heap growth per
//! round of a leak check (`suite leak <scenario>`, `{"leak": ...}`).
//!
//! Which of these are deterministic was decided from A/A runs (the same commit measured
//! several times, numbers in README.md): tokio, sqlx and the redis client allocate depending on
//! timing (how many bytes a socket read returns, how often a future is polled before its reply
//! is there, when a background task runs), so the allocations, bytes and peak of every scenario
//! that talks to Postgres or Redis varied by a few percent between runs of the same commit. A
//! scenario whose measured part made no SQL statement and no Redis command (served from L1,
//! e.g. `dashboard_warm`) allocated exactly the same in every A/A run. So: a scenario's
//! `allocations`, `bytes` and `peak_bytes` are deterministic when the servers counted no I/O
//! for its measured part in the same run, statistical otherwise. `growth_per_round` is always
//! statistical: its rounds talk to the servers (and moka's housekeeping runs on its own
//! schedule), and it varied between A/A runs.
//!
//! Must never: record a number that varies between runs of the same commit as deterministic,
//! or invent a metric the scenario did not report (an older revision without the counting
//! allocator simply has no `mem/` metrics).

use crate::record::{Metric, MetricKind, Suite, Unit};

use super::SuiteError;

/// How many measured rounds a leak check runs (after one warm-up round).
pub fn leak_rounds(quick: bool) -> u32 {
    if quick { 10 } else { 30 }
}

fn metric(scenario: &str, measure: &str, unit: Unit, kind: MetricKind, value: f64) -> Metric {
    Metric {
        name: format!("mem/{scenario}/{measure}"),
        suite: Suite::Memory,
        unit,
        kind,
        value,
        interval: None,
        samples: Vec::new(),
        shape: None,
    }
}

/// The `{"memory": {...}}` line of a scenario's output, as metrics; none if there is no such
/// line (a revision without the counting allocator). `made_io`: whether the servers counted
/// any SQL statement or Redis command for the scenario's measured part (see the module doc).
pub fn scenario_metrics(
    scenario: &str,
    stdout: &str,
    made_io: bool,
) -> Result<Vec<Metric>, SuiteError> {
    let kind = heap_kind(made_io);
    let Some(memory) = json_field(stdout, "memory") else {
        return Ok(Vec::new());
    };
    let field = |name: &str| {
        memory
            .get(name)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| SuiteError::Output {
                suite: "memory",
                detail: format!("scenario {scenario}: `memory.{name}` is not a count: {memory}"),
            })
    };
    Ok(vec![
        metric(
            scenario,
            "allocations",
            Unit::Count,
            kind,
            field("allocations")? as f64,
        ),
        metric(scenario, "bytes", Unit::Bytes, kind, field("bytes")? as f64),
        metric(
            scenario,
            "peak_bytes",
            Unit::Bytes,
            kind,
            field("peak_bytes")? as f64,
        ),
    ])
}

/// The `{"leak": {...}}` line of `suite leak`, as the growth-per-round metric.
pub fn leak_metric(scenario: &str, stdout: &str) -> Result<Metric, SuiteError> {
    let growth = json_field(stdout, "leak")
        .and_then(|leak| leak.get("growth_per_round").and_then(serde_json::Value::as_f64))
        .ok_or_else(|| SuiteError::Output {
            suite: "memory",
            detail: format!(
                "`suite leak {scenario}` printed no `{{\"leak\": {{\"growth_per_round\": ..}}}}` line; output:\n{stdout}"
            ),
        })?;
    Ok(metric(
        scenario,
        "growth_per_round",
        Unit::Bytes,
        MetricKind::Statistical,
        growth,
    ))
}

/// The value of `key` in the last stdout line that is a JSON object with that key.
fn json_field(stdout: &str, key: &str) -> Option<serde_json::Value> {
    stdout
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|mut value| value.get_mut(key).map(serde_json::Value::take))
}

/// Decided from A/A runs (module doc): exact without I/O, statistical with it.
pub fn heap_kind(made_io: bool) -> MetricKind {
    if made_io {
        MetricKind::Statistical
    } else {
        MetricKind::Deterministic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenarios_memory_line_becomes_three_metrics() {
        let stdout = "{\"memory\":{\"allocations\":120,\"bytes\":4096,\"peak_bytes\":2048}}\n\
                      {\"words.loads\":50}\n";
        let metrics = scenario_metrics("due_cards", stdout, true).unwrap();
        let named: Vec<(&str, f64, Unit)> = metrics
            .iter()
            .map(|m| (m.name.as_str(), m.value, m.unit))
            .collect();
        assert_eq!(
            named,
            vec![
                ("mem/due_cards/allocations", 120.0, Unit::Count),
                ("mem/due_cards/bytes", 4096.0, Unit::Bytes),
                ("mem/due_cards/peak_bytes", 2048.0, Unit::Bytes),
            ]
        );
        assert!(
            metrics
                .iter()
                .all(|m| m.suite == Suite::Memory && m.kind == MetricKind::Statistical)
        );
        let without_io = scenario_metrics("dashboard_warm", stdout, false).unwrap();
        assert!(
            without_io
                .iter()
                .all(|m| m.kind == MetricKind::Deterministic)
        );
        assert!(
            scenario_metrics("x", "{\"loads\":1}\n", true)
                .unwrap()
                .is_empty()
        );
        assert!(scenario_metrics("x", "{\"memory\":{\"allocations\":-1}}\n", true).is_err());
    }

    #[test]
    fn a_leak_line_becomes_a_statistical_growth() {
        let stdout = "{\"leak\":{\"rounds\":10,\"live_after_first\":100,\"live_after_last\":-1,\"growth_per_round\":-12.5}}\n";
        let metric = leak_metric("review_card", stdout).unwrap();
        assert_eq!(metric.name, "mem/review_card/growth_per_round");
        assert_eq!(metric.value, -12.5);
        assert_eq!(metric.kind, MetricKind::Statistical);
        let error = leak_metric("review_card", "nothing\n").unwrap_err();
        assert!(
            error.to_string().contains("suite leak review_card"),
            "{error}"
        );
    }
}
