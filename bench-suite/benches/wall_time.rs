//! Wall-time benchmarks (criterion) of the service's cache and query operations against the
//! real Postgres and Redis the harness started (`DATABASE_URL`, `REDIS_URL`), each beside the
//! raw operation it is built on, measured in the same run so that their ratio is meaningful on
//! a noisy machine:
//!
//! - `cache/l1_hit` (target: under 1 µs);
//! - `cache/cache_aside_read` (an L2 hit, L1 off) beside `raw/redis_get` of the same key
//!   (target: within 1.3x);
//! - `query/due_cards` beside `raw/due_cards_statement`, the same prepared statement without
//!   the layer (target: within 1.3x);
//! - `import/bulk_10k` beside `import/row_by_row_10k` (one transaction) and
//!   `import/row_by_row_autocommit_10k` (target: at least 10x faster);
//! - `service/dashboard_warm`, `service/dashboard_cold` and `query/user_stats`.
//!
//! Run them through `cargo xtask perf`, which seeds the database first and reads the results.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bench_suite::model::NewCard;
use bench_suite::query::{self, RowByRow};
use bench_suite::service::{Service, ServiceOptions};
use bench_suite::settings::Settings;
use criterion::{Criterion, criterion_group, criterion_main};
use redis::AsyncCommands;
use sqlx::Row;

/// A word every seed size contains.
const HOT_WORD: i64 = 42;
/// A user with a long due list in the default seed.
const BUSY_USER: i64 = 7;
/// Users created for the import benchmarks, above every seeded id.
const IMPORT_USERS: std::ops::RangeInclusive<i64> = 1_000_001..=1_000_010;
/// Cards per import: 10 users x 1,000 words.
const IMPORT_CARDS: usize = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn connect(
    runtime: &tokio::runtime::Runtime,
    settings: &Settings,
    options: ServiceOptions,
) -> Service {
    runtime
        .block_on(Service::connect(settings, &options))
        .expect("connect the service")
}

fn cache(c: &mut Criterion) {
    let runtime = runtime();
    let settings = Settings::from_env().expect("connection settings");
    let with_l1 = connect(&runtime, &settings, ServiceOptions::default());
    let l2_only = connect(
        &runtime,
        &settings,
        ServiceOptions {
            l1_enabled: false,
            ..ServiceOptions::default()
        },
    );
    runtime
        .block_on(with_l1.word_lookup(HOT_WORD))
        .expect("warm the cache")
        .expect("the hot word exists");
    let key = l2_only.word_cache().redis_key(&HOT_WORD);
    let mut raw = l2_only.word_cache().l2().connection().clone();

    c.bench_function("cache/l1_hit", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(with_l1.word_lookup(HOT_WORD).await.expect("lookup")) })
    });
    c.bench_function("cache/cache_aside_read", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(l2_only.word_lookup(HOT_WORD).await.expect("lookup")) })
    });
    c.bench_function("raw/redis_get", |b| {
        b.to_async(&runtime).iter(|| {
            let mut raw = raw.clone();
            let key = key.as_str();
            async move {
                let bytes: Option<Vec<u8>> = raw.get(key).await.expect("GET");
                black_box(bytes.expect("the key is cached"))
            }
        })
    });
    // Keep the clone alive for the whole group.
    let _ = &mut raw;
}

fn queries(c: &mut Criterion) {
    let runtime = runtime();
    let settings = Settings::from_env().expect("connection settings");
    let service = connect(&runtime, &settings, ServiceOptions::default());
    let pool = service.pool().clone();
    let now = service.now();

    c.bench_function("query/due_cards", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                query::due_cards(&pool, BUSY_USER, now, None)
                    .await
                    .expect("query"),
            )
        })
    });
    c.bench_function("raw/due_cards_statement", |b| {
        b.to_async(&runtime).iter(|| async {
            let rows = sqlx::query(query::DUE_CARDS_FIRST_PAGE_SQL)
                .bind(BUSY_USER)
                .bind(now)
                .bind(query::DUE_PAGE_SIZE as i64)
                .fetch_all(&pool)
                .await
                .expect("query");
            black_box(rows.iter().map(|row| row.get::<i64, _>(0)).sum::<i64>())
        })
    });
    c.bench_function("query/user_stats", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                query::user_stats(&pool, BUSY_USER, now)
                    .await
                    .expect("query"),
            )
        })
    });
    c.bench_function("service/dashboard_warm", |b| {
        runtime
            .block_on(service.dashboard(BUSY_USER))
            .expect("warm dashboard");
        b.to_async(&runtime)
            .iter(|| async { black_box(service.dashboard(BUSY_USER).await.expect("dashboard")) })
    });
    c.bench_function("service/dashboard_cold", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let service = &service;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Cold: nothing in L1, nothing in Redis (untimed invalidation).
                    service
                        .invalidate_dashboard(BUSY_USER)
                        .await
                        .expect("invalidate");
                    let started = Instant::now();
                    black_box(service.dashboard(BUSY_USER).await.expect("dashboard"));
                    total += started.elapsed();
                }
                total
            }
        })
    });
}

fn imports(c: &mut Criterion) {
    let runtime = runtime();
    let settings = Settings::from_env().expect("connection settings");
    let service = connect(&runtime, &settings, ServiceOptions::default());
    let pool = service.pool().clone();
    let now = service.now();
    runtime.block_on(async {
        let ids: Vec<i64> = IMPORT_USERS.collect();
        let names: Vec<String> = ids.iter().map(|id| format!("import-bench-{id}")).collect();
        sqlx::query(
            "INSERT INTO users (id, name, created_at) \
             SELECT id, name, $3 FROM UNNEST($1::BIGINT[], $2::TEXT[]) AS u(id, name) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&ids)
        .bind(&names)
        .bind(now)
        .execute(&pool)
        .await
        .expect("import users");
    });
    let cards: Vec<NewCard> = IMPORT_USERS
        .flat_map(|user_id| {
            (1..=(IMPORT_CARDS / IMPORT_USERS.count()) as i64).map(move |word_id| NewCard {
                user_id,
                word_id,
                due_at: now,
            })
        })
        .collect();
    // Outside the timed part: deletes the imported cards and vacuums the table, so that every
    // import (bulk or row by row) starts from the same table, without the dead index entries
    // of earlier imports that its unique check would otherwise visit, more with each round.
    let remove = || async {
        sqlx::query("DELETE FROM review_cards WHERE user_id BETWEEN $1 AND $2")
            .bind(*IMPORT_USERS.start())
            .bind(*IMPORT_USERS.end())
            .execute(&pool)
            .await
            .expect("remove imported cards");
        sqlx::query("VACUUM review_cards")
            .execute(&pool)
            .await
            .expect("vacuum review_cards");
    };
    runtime.block_on(remove());

    let mut group = c.benchmark_group("import");
    group.sample_size(10);
    let variants = [
        ("bulk_10k", None),
        ("row_by_row_10k", Some(RowByRow::OneTransaction)),
        ("row_by_row_autocommit_10k", Some(RowByRow::Autocommit)),
    ];
    for (name, row_by_row) in variants {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (pool, cards) = (&pool, &cards);
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let started = Instant::now();
                        let inserted = match row_by_row {
                            Some(mode) => query::import_cards_row_by_row(pool, cards, mode).await,
                            None => query::import_cards(pool, cards).await,
                        }
                        .expect("import");
                        total += started.elapsed();
                        assert_eq!(inserted as usize, cards.len(), "every card is new");
                        remove().await;
                    }
                    total
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, cache, queries, imports);
criterion_main!(benches);
