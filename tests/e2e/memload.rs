//! The memory and load suites on native servers: `--filter mem/` records every scenario's heap
//! use and leak check with plausible values, and `--filter load/` records an open-loop load run
//! with ordered percentiles and the servers' own CPU time and memory.

use perf_tests::{assert_torn_down, fixture, heavy, metric, read_json, ready_services, run};

const SCENARIOS: [&str; 8] = [
    "cache_aside_read",
    "words_batch",
    "due_cards",
    "dashboard_cold",
    "dashboard_warm",
    "review_card",
    "bulk_import",
    "session_auth",
];

/// Runs `cargo xtask perf --quick --services native --filter <filter>` and returns its record.
fn filtered_run(filter: &str) -> serde_json::Value {
    let fixture = fixture();
    let out = tempfile::tempdir().unwrap();
    let result = run(fixture.xtask(&[
        "perf",
        "--quick",
        "--services",
        "native",
        "--base",
        "none",
        "--filter",
        filter,
        "--out",
        out.path().to_str().unwrap(),
    ]));
    assert_eq!(result.code, Some(0), "{}", result.describe());
    assert_torn_down(&ready_services(&result.stderr));
    let record = read_json(
        &out.path()
            .join("filtered")
            .join(format!("{}.json", fixture.head())),
    );
    let names: Vec<&str> = record["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    let prefix = filter.trim_end_matches('/');
    assert!(
        names.iter().all(|name| name.starts_with(prefix)),
        "the filter {filter} let other suites in: {names:?}"
    );
    record
}

fn kind(record: &serde_json::Value, name: &str) -> String {
    record["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .map(|m| m["kind"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("{name} missing"))
}

#[test]
fn memory_suite_records_heap_use_and_leak_checks_of_every_scenario() {
    let _heavy = heavy();
    let record = filtered_run("mem/");
    for scenario in SCENARIOS {
        let value = |measure: &str| {
            metric(&record, &format!("mem/{scenario}/{measure}"))
                .unwrap_or_else(|| panic!("mem/{scenario}/{measure} missing"))
        };
        let (allocations, bytes, peak) =
            (value("allocations"), value("bytes"), value("peak_bytes"));
        assert!(allocations >= 1.0, "{scenario}: {allocations} allocations");
        // Every allocation is at least a byte; the peak growth cannot exceed what was allocated.
        assert!(
            bytes >= allocations,
            "{scenario}: {bytes} B in {allocations}"
        );
        assert!(
            peak <= bytes,
            "{scenario}: peak {peak} B > {bytes} B allocated"
        );
        let growth = value("growth_per_round");
        // Far below a megabyte per round: the scenarios keep nothing.
        assert!(
            growth.abs() < 1_048_576.0,
            "{scenario}: {growth} B per round"
        );
        assert_eq!(
            kind(&record, &format!("mem/{scenario}/growth_per_round")),
            "statistical"
        );
    }
    // A warm dashboard talks to no server: its heap use is exact. The cold one's is not.
    assert_eq!(
        kind(&record, "mem/dashboard_warm/allocations"),
        "deterministic"
    );
    assert_eq!(
        kind(&record, "mem/dashboard_cold/allocations"),
        "statistical"
    );
    // A cold dashboard does more than a warm one: it loads and encodes what it caches.
    assert!(
        metric(&record, "mem/dashboard_cold/allocations").unwrap()
            > 10.0 * metric(&record, "mem/dashboard_warm/allocations").unwrap()
    );
}

#[test]
fn load_suite_records_latency_throughput_and_server_resources() {
    let _heavy = heavy();
    let record = filtered_run("load/");
    let value = |measure: &str| {
        metric(&record, &format!("load/mixed/{measure}"))
            .unwrap_or_else(|| panic!("load/mixed/{measure} missing"))
    };
    assert!(value("throughput") > 0.0);
    let (p50, p95, p99, max) = (
        value("p50_us"),
        value("p95_us"),
        value("p99_us"),
        value("max_us"),
    );
    assert!(p50 > 0.0, "p50 {p50}");
    assert!(
        p50 <= p95 && p95 <= p99 && p99 <= max,
        "{p50} <= {p95} <= {p99} <= {max}"
    );
    assert!(value("errors") >= 0.0 && value("dropped") >= 0.0);
    // The servers did the work: Postgres served the cold dashboards and reviews, Redis the L2.
    assert!(value("postgres_cpu_ms") > 0.0);
    assert!(value("redis_cpu_ms") >= 0.0);
    assert!(value("postgres_peak_rss_bytes") > 1_048_576.0);
    assert!(value("redis_peak_rss_bytes") > 1_048_576.0);
    for metric in record["metrics"].as_array().unwrap() {
        assert_eq!(metric["kind"], "statistical", "{metric}");
        assert_eq!(metric["suite"], "load", "{metric}");
    }
    let notes = record["notes"]
        .as_array()
        .expect("notes say how memory was read");
    assert!(
        notes.iter().any(|n| n.as_str().unwrap().contains("VmRSS")),
        "{notes:?}"
    );
}
