//! Wall-time benchmarks (criterion) of cache and query operations against the real Postgres
//! and Redis the harness started (`DATABASE_URL`, `REDIS_URL`). Run them through
//! `cargo xtask perf`, which seeds the database first and reads criterion's results.

use std::hint::black_box;

use bench_suite::service::{Service, ServiceOptions};
use bench_suite::settings::Settings;
use criterion::{Criterion, criterion_group, criterion_main};

/// A word every seed size contains.
const HOT_WORD: i64 = 42;
/// A user with a long due list in the default seed.
const BUSY_USER: i64 = 7;

fn cache_and_query(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let settings = Settings::from_env().expect("connection settings");
    let with_l1 = runtime
        .block_on(Service::connect(&settings, &ServiceOptions::default()))
        .expect("connect the service");
    let l2_only = runtime
        .block_on(Service::connect(
            &settings,
            &ServiceOptions {
                word_l1_capacity: 0,
                ..ServiceOptions::default()
            },
        ))
        .expect("connect the service without L1");
    runtime
        .block_on(with_l1.word_lookup(HOT_WORD))
        .expect("warm the cache")
        .expect("the hot word exists");

    c.bench_function("cache/l1_hit", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(with_l1.word_lookup(HOT_WORD).await.expect("lookup")) })
    });
    c.bench_function("cache/cache_aside_read", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(l2_only.word_lookup(HOT_WORD).await.expect("lookup")) })
    });
    c.bench_function("query/due_cards", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(with_l1.due_cards(BUSY_USER, None).await.expect("query")) })
    });
}

criterion_group!(benches, cache_and_query);
criterion_main!(benches);
