//! Instruction-count benchmarks (Gungraun) of the harness's own pure steps on a realistic
//! report: comparing two records of 120 metrics, and rendering the result for the terminal
//! and as Markdown. Deterministic: the same binary gives the same counts. The harness runs it
//! beside `bench-suite`'s `instructions` bench (metrics `instructions/render/...`).
//!
//! Allocates from `bench-suite`'s arena allocator, as that bench does: with the system
//! allocator these counts moved by up to 1.3% with the length of the binary's path alone.

use std::hint::black_box;

// Its unit tests are compiled here but not run (a `harness = false` target has no test
// runner), hence the allowances; they run in `bench-suite`.
#[allow(dead_code, unused_imports)]
#[path = "../../bench-suite/src/arena.rs"]
mod arena;

#[global_allocator]
static ALLOCATOR: arena::ArenaAllocator = arena::ArenaAllocator;

use gungraun::{library_benchmark, library_benchmark_group, main};
use xtask::compare::{Comparison, compare};
use xtask::config::Thresholds;
use xtask::record::RunRecord;
use xtask::render::{BaselineDisclosure, Report, markdown, terminal};

/// A record of `n` metrics of every suite kind; `bump` scales some values, so that a
/// comparison has regressions, improvements and unchanged rows.
fn record(commit: &str, n: usize, bump: f64) -> RunRecord {
    let metrics: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let changed = if i % 7 == 0 { bump } else { 1.0 };
            match i % 3 {
                0 => serde_json::json!({
                    "name": format!("io/scenario_{}/sql_statements", i / 3),
                    "suite": "io_counts", "unit": "statements", "kind": "deterministic",
                    "value": (10 + i % 11) as f64 * changed,
                }),
                1 => serde_json::json!({
                    "name": format!("instructions/group_{}/function/id", i / 3),
                    "suite": "instructions", "unit": "instructions", "kind": "deterministic",
                    "value": (2_000 + 37 * i) as f64 * changed,
                }),
                _ => {
                    let value = (100_000 + 1_000 * i) as f64 * changed;
                    serde_json::json!({
                        "name": format!("wall_time/group_{}/bench", i / 3),
                        "suite": "wall_time", "unit": "nanoseconds", "kind": "statistical",
                        "value": value, "interval": [value * 0.97, value * 1.03],
                    })
                }
            }
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "schema_version": 1, "commit": commit, "dirty": false, "branch": "main",
        "created_at": "2026-01-01T00:00:00Z", "profile": "quick",
        "environment": {
            "machine_class": "linux-x86_64-2c-0000abcd", "cpu_model": "cpu", "cores": 2,
            "os": "linux x86_64", "rustc": "rustc 1.95.0", "valgrind": "valgrind-3.19.0",
            "gungraun_runner": "gungraun-runner 0.20.0",
            "services": {
                "mode": "native", "reason": "--services native",
                "postgres_version": "15.18", "redis_version": "7.0.15",
                "postgres_image": null, "redis_image": null
            },
            "config_hash": "0123456789abcdef"
        },
        "phases": [{"name": "head: build", "seconds": 12.5}], "metrics": metrics,
    }))
    .expect("a valid record")
}

const METRICS: usize = 120;

fn two_records() -> (RunRecord, RunRecord) {
    (
        record("1111111111111111111111111111111111111111", METRICS, 1.0),
        record("2222222222222222222222222222222222222222", METRICS, 1.05),
    )
}

fn compared() -> (RunRecord, Comparison) {
    let (base, head) = two_records();
    let comparison = compare(&base, &head, &Thresholds::default());
    (head, comparison)
}

fn report<'a>(head: &'a RunRecord, comparison: &'a Comparison) -> Report<'a> {
    Report {
        head,
        baseline: BaselineDisclosure::Used {
            commit: "1111111111111111111111111111111111111111".to_owned(),
            how_chosen: "merge-base of HEAD and refs/heads/main".to_owned(),
            source: "stored record".to_owned(),
            passed_over: Vec::new(),
        },
        comparison: Some(comparison),
        budgets: &[],
        record_path: None,
    }
}

#[library_benchmark]
#[bench::records_of_120(two_records())]
fn compare_records(records: (RunRecord, RunRecord)) -> Comparison {
    let (base, head) = records;
    black_box(compare(
        black_box(&base),
        black_box(&head),
        &Thresholds::default(),
    ))
}

#[library_benchmark]
#[bench::records_of_120(compared())]
fn terminal_report(compared: (RunRecord, Comparison)) -> String {
    let (head, comparison) = compared;
    black_box(terminal(black_box(&report(&head, &comparison))))
}

#[library_benchmark]
#[bench::records_of_120(compared())]
fn markdown_report(compared: (RunRecord, Comparison)) -> String {
    let (head, comparison) = compared;
    black_box(markdown(black_box(&report(&head, &comparison))))
}

library_benchmark_group!(
    name = render;
    benchmarks = compare_records, terminal_report, markdown_report
);

main!(library_benchmark_groups = render);
