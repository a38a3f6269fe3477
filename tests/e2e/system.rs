//! System tests: the system under test (`bench-suite`'s service, cache and query layers) called
//! directly, against real Postgres and Redis started through the harness's own provisioning
//! ([`TestServices`](perf_tests::services::TestServices)), one set of servers and one seeded
//! database per test.
//!
//! What they pin, one module each: coherence of the cache after a write, within one process
//! and across processes sharing Redis ([`coherence`]); another process's warm L1, the
//! cross-process fill race and the loss of the invalidation subscription ([`cross_process`]);
//! TTL expiry in both levels ([`ttl`]);
//! single-flight, counted on the servers ([`single_flight`]); completeness and order of the
//! keyset-paginated due list ([`pagination`]); no lost update under concurrent reviews
//! ([`lost_update`]); attempts of one review request recorded once ([`idempotency`]); errors, consistency and recovery when Redis is killed or frozen
//! ([`redis_outage`]) or when the connection to a Redis that keeps its data is cut
//! mid-review ([`redis_partition`]); every seeded page all-visible on the harness's asynchronously
//! committing server, and two databases seeded alike read as identical, as `--paired` needs to
//! share one between its sides ([`seeding`]).
//!
//! Every test holds [`perf_tests::heavy`]: it starts servers, and some of its checks are
//! timing-bound (TTLs, time-outs), so it must not share the machine's two cores with a
//! benchmark run of another test. The guard is a `std` mutex held across `.await`s of the
//! test's own `block_on`; no other task of the runtime ever takes it, so it cannot deadlock.

mod coherence;
mod cross_process;
mod idempotency;
mod lost_update;
mod pagination;
mod redis_outage;
mod redis_partition;
mod seeding;
mod single_flight;
mod ttl;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use bench_suite::model::{DueCard, Grade};
use bench_suite::seed::SeedSize;
use redis::aio::MultiplexedConnection;
use sqlx::PgPool;
use sqlx::types::chrono::{DateTime, Utc};

/// The seed of every system test: small enough to start in well under a second, big enough
/// that the heaviest user has more than three pages of due cards.
pub(crate) fn small_seed() -> SeedSize {
    SeedSize {
        users: 20,
        words: 500,
        cards: 3_000,
    }
}

pub(crate) fn grade(value: u8) -> Grade {
    Grade::new(value).expect("a grade in 0..=5")
}

/// The database name of a `postgres://user@host:port/NAME[?params]` URL.
pub(crate) fn database_name(url: &str) -> String {
    let path = url.rsplit_once('/').expect("a URL with a path").1;
    path.split('?').next().unwrap_or(path).to_owned()
}

/// A Redis connection of the test's own, separate from the system under test's.
pub(crate) async fn redis_probe(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("a probe connection to Redis")
}

/// `EXISTS key`, through a probe connection.
pub(crate) async fn redis_exists(probe: &mut MultiplexedConnection, key: &str) -> bool {
    let n: i64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(probe)
        .await
        .expect("EXISTS");
    n == 1
}

/// The user with the most cards due at `now`, and how many.
pub(crate) async fn user_with_most_due(pool: &PgPool, now: DateTime<Utc>) -> (i64, i64) {
    sqlx::query_as(
        "SELECT user_id, count(*) FROM review_cards WHERE due_at <= $1 \
         GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1",
    )
    .bind(now)
    .fetch_one(pool)
    .await
    .expect("a user with due cards")
}

/// The whole due list of `user_id` at `now`, in one statement without cursor or limit: what
/// walking the pages must add up to.
pub(crate) async fn whole_due_list(
    pool: &PgPool,
    user_id: i64,
    now: DateTime<Utc>,
) -> Vec<DueCard> {
    sqlx::query_as(
        "SELECT c.id AS card_id, c.word_id, w.lemma, c.card_state, c.ease, c.interval_days, \
                c.repetitions, c.due_at \
         FROM review_cards c JOIN words w ON w.id = c.word_id \
         WHERE c.user_id = $1 AND c.due_at <= $2 \
         ORDER BY c.due_at, c.id",
    )
    .bind(user_id)
    .bind(now)
    .fetch_all(pool)
    .await
    .expect("the whole due list")
}

/// Everything stored about one card: (card_state, ease, interval_days, repetitions, lapses,
/// due_at, last_reviewed_at).
pub(crate) type CardRow = (
    i16,
    f32,
    i32,
    i32,
    i32,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

pub(crate) async fn card_row(pool: &PgPool, card_id: i64) -> CardRow {
    sqlx::query_as(
        "SELECT card_state, ease, interval_days, repetitions, lapses, due_at, last_reviewed_at \
         FROM review_cards WHERE id = $1",
    )
    .bind(card_id)
    .fetch_one(pool)
    .await
    .expect("the card's row")
}

/// `review_log` rows of one card.
pub(crate) async fn review_log_rows(pool: &PgPool, card_id: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM review_log WHERE card_id = $1")
        .bind(card_id)
        .fetch_one(pool)
        .await
        .expect("count the card's reviews")
}

/// Drives `futures` concurrently in the current task and returns their outputs in order.
///
/// Unlike spawning, the order of the first polls is fixed: every future is polled once, in
/// order, before any is polled again. So when the first one starts an I/O-bound lookup, all
/// the others have joined it before it can finish (the test crate has no `futures`).
pub(crate) async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.expect("every future completed"))
        .collect()
}
