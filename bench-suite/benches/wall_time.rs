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
//! Fixtures (connections, warm caches) are made on first use inside each benchmark, so that
//! `cargo bench --bench wall_time -- --list` lists every benchmark without any server.
//!
//! Run them through `cargo xtask perf`, which seeds the database first and reads the results.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bench_suite::model::{DueCursor, NewCard, ReviewRequestId};
use bench_suite::query::{self, RowByRow};
use bench_suite::seed::session_token;
use bench_suite::service::{Service, ServiceOptions};
use bench_suite::settings::Settings;
use bench_suite::sm2::Grade;
use criterion::{Criterion, criterion_group, criterion_main};
use redis::AsyncCommands;
use sqlx::Row;

/// A word every seed size contains.
const HOT_WORD: i64 = 42;
/// A user with a long due list in the default seed.
const BUSY_USER: i64 = 7;
/// The user whose card the review benchmark reviews again and again (no other benchmark or
/// scenario reads this user's data).
const REVIEW_USER: i64 = 13;
/// Users that exist only for the import benchmark.
const IMPORT_USERS: std::ops::RangeInclusive<i64> = 1_000_001..=1_000_010;
/// Cards per import: 10 users x 1,000 words.
const IMPORT_CARDS: usize = 10_000;

/// What every benchmark shares: one runtime and two service instances (L1 on, L1 off),
/// connected on first use.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    with_l1: Service,
    l2_only: Service,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let settings = Settings::from_env().expect("connection settings");
        let connect = |options: ServiceOptions| {
            runtime
                .block_on(Service::connect(&settings, &options))
                .expect("connect the service")
        };
        let with_l1 = connect(ServiceOptions::default());
        let l2_only = connect(ServiceOptions {
            l1_enabled: false,
            ..ServiceOptions::default()
        });
        Fixture {
            runtime,
            with_l1,
            l2_only,
        }
    })
}

fn cache(c: &mut Criterion) {
    c.bench_function("cache/l1_hit", |b| {
        let f = fixture();
        f.runtime
            .block_on(f.with_l1.word_lookup(HOT_WORD))
            .expect("warm the cache")
            .expect("the hot word exists");
        b.to_async(&f.runtime)
            .iter(|| async { black_box(f.with_l1.word_lookup(HOT_WORD).await.expect("lookup")) })
    });
    c.bench_function("cache/cache_aside_read", |b| {
        let f = fixture();
        f.runtime
            .block_on(f.l2_only.word_lookup(HOT_WORD))
            .expect("warm Redis");
        b.to_async(&f.runtime)
            .iter(|| async { black_box(f.l2_only.word_lookup(HOT_WORD).await.expect("lookup")) })
    });
    c.bench_function("raw/redis_get", |b| {
        let f = fixture();
        f.runtime
            .block_on(f.l2_only.word_lookup(HOT_WORD))
            .expect("warm Redis");
        let key = f.l2_only.word_cache().redis_key(&HOT_WORD);
        let raw = f.l2_only.word_cache().l2().connection().clone();
        b.to_async(&f.runtime).iter(|| {
            let mut raw = raw.clone();
            let key = key.as_str();
            async move {
                let bytes: Option<Vec<u8>> = raw.get(key).await.expect("GET");
                black_box(bytes.expect("the key is cached"))
            }
        })
    });
    c.bench_function("cache/words_lookup_50", |b| {
        let f = fixture();
        let ids: Vec<i64> = (1..=50).map(|i| i * 37).collect();
        f.runtime
            .block_on(f.l2_only.words_lookup(&ids))
            .expect("warm Redis");
        b.to_async(&f.runtime)
            .iter(|| async { black_box(f.l2_only.words_lookup(&ids).await.expect("lookup")) })
    });
}

fn queries(c: &mut Criterion) {
    c.bench_function("query/due_cards", |b| {
        let f = fixture();
        let (pool, now) = (f.with_l1.pool(), f.with_l1.now());
        b.to_async(&f.runtime).iter(|| async {
            black_box(
                query::due_cards(pool, BUSY_USER, now, None)
                    .await
                    .expect("query"),
            )
        })
    });
    c.bench_function("raw/due_cards_statement", |b| {
        let f = fixture();
        let (pool, now) = (f.with_l1.pool(), f.with_l1.now());
        b.to_async(&f.runtime).iter(|| async {
            let rows = sqlx::query(query::DUE_CARDS_FIRST_PAGE_SQL)
                .bind(BUSY_USER)
                .bind(now)
                .bind(query::DUE_PAGE_SIZE as i64)
                .fetch_all(pool)
                .await
                .expect("query");
            black_box(rows.iter().map(|row| row.get::<i64, _>(0)).sum::<i64>())
        })
    });
    c.bench_function("query/due_cards_next_page", |b| {
        let f = fixture();
        let (pool, now) = (f.with_l1.pool(), f.with_l1.now());
        let first = f
            .runtime
            .block_on(query::due_cards(pool, BUSY_USER, now, None))
            .expect("first page");
        let cursor: DueCursor = first.next.expect("the busy user has a second due page");
        b.to_async(&f.runtime).iter(|| async {
            black_box(
                query::due_cards(pool, BUSY_USER, now, Some(cursor))
                    .await
                    .expect("query"),
            )
        })
    });
    c.bench_function("query/difficult_cards", |b| {
        let f = fixture();
        let pool = f.with_l1.pool();
        b.to_async(&f.runtime).iter(|| async {
            black_box(
                query::difficult_cards(pool, BUSY_USER, 20)
                    .await
                    .expect("query"),
            )
        })
    });
    c.bench_function("query/word_prefix_search", |b| {
        let f = fixture();
        let pool = f.with_l1.pool();
        b.to_async(&f.runtime).iter(|| async {
            black_box(
                query::word_prefix_search(pool, "ka", 20)
                    .await
                    .expect("query"),
            )
        })
    });
    c.bench_function("query/user_stats", |b| {
        let f = fixture();
        let (pool, now) = (f.with_l1.pool(), f.with_l1.now());
        b.to_async(&f.runtime).iter(|| async {
            black_box(
                query::user_stats(pool, BUSY_USER, now)
                    .await
                    .expect("query"),
            )
        })
    });
}

fn service(c: &mut Criterion) {
    c.bench_function("service/dashboard_warm", |b| {
        let f = fixture();
        let service = &f.with_l1;
        f.runtime
            .block_on(service.dashboard(BUSY_USER))
            .expect("warm dashboard");
        b.to_async(&f.runtime)
            .iter(|| async { black_box(service.dashboard(BUSY_USER).await.expect("dashboard")) })
    });
    c.bench_function("service/dashboard_cold", |b| {
        let f = fixture();
        let service = &f.with_l1;
        b.to_async(&f.runtime).iter_custom(|iters| async move {
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
        })
    });
    c.bench_function("service/authenticate", |b| {
        let f = fixture();
        let service = &f.with_l1;
        let token = session_token(BUSY_USER);
        f.runtime
            .block_on(service.authenticate(&token))
            .expect("warm the session");
        b.to_async(&f.runtime)
            .iter(|| async { black_box(service.authenticate(&token).await.expect("authenticate")) })
    });
    c.bench_function("service/record_review", |b| {
        let f = fixture();
        let service = &f.with_l1;
        let card: i64 = f
            .runtime
            .block_on(
                sqlx::query_scalar("SELECT min(id) FROM review_cards WHERE user_id = $1")
                    .bind(REVIEW_USER)
                    .fetch_one(service.pool()),
            )
            .expect("a card of the review user");
        let grade = Grade::new(4).expect("a valid grade");
        b.to_async(&f.runtime).iter(|| async {
            black_box(
                service
                    .record_review(REVIEW_USER, card, grade, ReviewRequestId::random())
                    .await
                    .expect("review"),
            )
        })
    });
}

fn imports(c: &mut Criterion) {
    let mut group = c.benchmark_group("import");
    group.sample_size(10);
    let variants = [
        ("bulk_10k", None),
        ("row_by_row_10k", Some(RowByRow::OneTransaction)),
        ("row_by_row_autocommit_10k", Some(RowByRow::Autocommit)),
    ];
    for (name, row_by_row) in variants {
        group.bench_function(name, |b| {
            let f = fixture();
            let pool = f.with_l1.pool();
            let cards = import_fixture(f);
            b.to_async(&f.runtime).iter_custom(|iters| {
                let cards = &cards;
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
                        remove_imported(pool).await;
                    }
                    total
                }
            })
        });
    }
    group.finish();
}

/// Makes the import benchmark's users (once) and returns the cards to import, none of which
/// exists yet.
fn import_fixture(f: &Fixture) -> Vec<NewCard> {
    let pool = f.with_l1.pool();
    let now = f.with_l1.now();
    f.runtime.block_on(async {
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
        .execute(pool)
        .await
        .expect("import users");
        remove_imported(pool).await;
    });
    IMPORT_USERS
        .flat_map(|user_id| {
            (1..=(IMPORT_CARDS / IMPORT_USERS.count()) as i64).map(move |word_id| NewCard {
                user_id,
                word_id,
                due_at: now,
            })
        })
        .collect()
}

/// Outside the timed part: deletes the imported cards and vacuums the table, so that every
/// import (bulk or row by row) starts from the same table, without the dead index entries
/// of earlier imports that its unique check would otherwise visit, more with each round.
async fn remove_imported(pool: &sqlx::PgPool) {
    sqlx::query("DELETE FROM review_cards WHERE user_id BETWEEN $1 AND $2")
        .bind(*IMPORT_USERS.start())
        .bind(*IMPORT_USERS.end())
        .execute(pool)
        .await
        .expect("remove imported cards");
    sqlx::query("VACUUM review_cards")
        .execute(pool)
        .await
        .expect("vacuum review_cards");
}

criterion_group!(benches, cache, queries, service, imports);
criterion_main!(benches);
