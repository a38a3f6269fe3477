//! Wall-time benchmarks (criterion) of the service's cache and query operations against the
//! real Postgres and Redis the harness started (`DATABASE_URL`, `REDIS_URL`), each beside the
//! raw operation it is built on, measured in the same run so that their ratio is meaningful on
//! a noisy machine:
//!
//! - `cache/l1_hit` (target: under 1 µs);
//! - `cache/cache_aside_read` (an L2 hit, L1 off) beside `raw/redis_get` of the same key
//!   (target: within 1.3x); `cache/words_lookup_50` (one `MGET` of 50 L2 hits, L1 off);
//! - `query/due_cards` beside `raw/due_cards_statement`, the same prepared statement without
//!   the layer (target: within 1.3x); `query/due_cards_next_page`, `query/difficult_cards`,
//!   `query/word_prefix_search`, `query/user_stats`;
//! - `import/bulk_10k` beside `import/row_by_row_10k` (one transaction) and
//!   `import/row_by_row_autocommit_10k` (target: at least 10x faster);
//! - `service/dashboard_warm`, `service/dashboard_cold`, `service/authenticate` (warm),
//!   `service/record_review` (one review with its four invalidations).
//!
//! Each is an [`Operation`] of `bench_suite::operations`, which defines what is prepared, what
//! is reset untimed before each call, and the call itself; the same call is counted (SQL
//! statements, rows, Redis commands) by the `call.<group>.<name>` I/O scenario. Fixtures
//! (connections, warm caches) are made on first use inside each benchmark, so that
//! `cargo bench --bench wall_time -- --list` lists every benchmark without any server.
//!
//! Run them through `cargo xtask perf`, which seeds the database first and reads the results.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bench_suite::operations::{Fixture, Operation};
use bench_suite::settings::Settings;
use criterion::{Criterion, criterion_group, criterion_main};

/// One runtime and the operations' fixture, connected on first use.
fn fixture() -> &'static (tokio::runtime::Runtime, Fixture) {
    static FIXTURE: OnceLock<(tokio::runtime::Runtime, Fixture)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let settings = Settings::from_env().expect("connection settings");
        let fixture = runtime
            .block_on(Fixture::connect(&settings))
            .expect("connect the service");
        (runtime, fixture)
    })
}

fn operations(c: &mut Criterion) {
    for operation in Operation::ALL {
        let (group, name) = operation
            .benchmark()
            .split_once('/')
            .expect("a benchmark is <group>/<name>");
        let mut group = c.benchmark_group(group);
        if let Some(samples) = operation.sample_size() {
            group.sample_size(samples);
        }
        group.bench_function(name, |b| {
            let (runtime, f) = fixture();
            let prepared = runtime
                .block_on(operation.prepare(f))
                .unwrap_or_else(|e| panic!("prepare {}: {e:#}", operation.benchmark()));
            if !operation.resets() {
                b.to_async(runtime).iter(|| async {
                    black_box(operation.call(f, &prepared).await.expect("call"))
                });
                return;
            }
            b.to_async(runtime).iter_custom(|iters| {
                let prepared = &prepared;
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        operation.reset(f).await.expect("reset");
                        let started = Instant::now();
                        black_box(operation.call(f, prepared).await.expect("call"));
                        total += started.elapsed();
                    }
                    operation.reset(f).await.expect("reset");
                    total
                }
            });
        });
        group.finish();
    }
}

criterion_group!(benches, operations);
criterion_main!(benches);
