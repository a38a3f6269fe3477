//! Redis going away under a running service (SIGKILL) and coming back on the same port: while
//! it is gone, writes fail before they touch the database and reads fail fast; once it is
//! back, the same service instance works again and its cache is coherent.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bench_suite::cache::CacheError;
use bench_suite::model::{Review, ReviewRequestId};
use bench_suite::query;
use bench_suite::service::{Service, ServiceError, ServiceOptions};
use bench_suite::settings::Settings;
use perf_tests::heavy;
use perf_tests::services::TestServices;

use super::{card_row, grade, review_log_rows, small_seed, user_with_most_due};

/// How long an operation may take while Redis is gone: the cache's Redis step is bounded by
/// `RedisOptions::operation_timeout` (1 s by default); the rest is slack for a busy machine.
const FAIL_FAST: Duration = Duration::from_secs(2);
/// The bound of every wait in this test, so that a hang fails the test instead of blocking.
const HANG: Duration = Duration::from_secs(10);

/// A `redis-server` of this test's own, on a fixed port, killed when dropped (also when the
/// test fails).
struct OwnRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRedis {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Self {
            port,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        redis.spawn().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server on `self.port` and waits (bounded) until it answers `PING`.
    async fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let url = self.url();
        let deadline = Instant::now() + HANG;
        loop {
            let ping = async {
                let mut connection = redis::Client::open(url.as_str())?
                    .get_multiplexed_async_connection()
                    .await?;
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
            };
            if let Ok(Ok(pong)) = tokio::time::timeout(Duration::from_millis(500), ping).await {
                assert_eq!(pong, "PONG");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {} within {HANG:?}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` to the running server (SIGSTOP freezes it, SIGCONT resumes it).
    fn signal(&self, signal: nix::sys::signal::Signal) {
        let child = self.child.as_ref().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal redis-server");
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `operation`, failing the test if it does not end within [`HANG`]; returns its result
/// and how long it took.
async fn timed<T>(operation: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let result = tokio::time::timeout(HANG, operation)
        .await
        .unwrap_or_else(|_| panic!("an operation hung for {HANG:?}"));
    (result, start.elapsed())
}

fn is_redis_error<T: std::fmt::Debug>(result: &Result<T, ServiceError>) -> bool {
    matches!(result, Err(ServiceError::Cache(CacheError::Redis { .. })))
}

#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_writes_fail_before_the_database_and_reads_fail_fast_then_recover() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let mut redis = OwnRedis::start().await;
    let settings = Settings {
        database_url: servers.settings.database_url.clone(),
        redis_url: redis.url(),
        cache_namespace: "outage".to_owned(),
    };
    let service = Service::connect(&settings, &ServiceOptions::default())
        .await
        .expect("service");
    let pool = service.pool().clone();
    let now = service.now();
    let (user, _) = user_with_most_due(&pool, now).await;

    // Warm: the dashboard is in L1 and Redis.
    let old = service.dashboard(user).await.expect("dashboard");
    let card = old.due.cards[0].card_id;
    let row_before = card_row(&pool, card).await;
    let logs_before = review_log_rows(&pool, card).await;
    let cold_word = 99;

    redis.kill();

    // A review fails at its first invalidation (`EVALSHA` of the invalidation script), before
    // the transaction: the database is unchanged (no review_log row, the card as it was).
    let (review, took) =
        timed(service.record_review(user, card, grade(4), ReviewRequestId::random())).await;
    assert!(
        is_redis_error(&review),
        "review while Redis is down: {review:?}"
    );
    assert!(took < FAIL_FAST, "the failed review took {took:?}");
    assert_eq!(review_log_rows(&pool, card).await, logs_before);
    assert_eq!(card_row(&pool, card).await, row_before);

    // Reads that need Redis fail, each within the operation time-out. (The failed review
    // dropped the user's due page and statistics from this process's L1, so they need Redis.)
    let (stats, took) = timed(service.stats(user)).await;
    assert!(
        is_redis_error(&stats),
        "stats while Redis is down: {stats:?}"
    );
    assert!(took < FAIL_FAST, "stats took {took:?}");
    let (page, took) = timed(service.due_cards(user, None)).await;
    assert!(
        is_redis_error(&page),
        "due page while Redis is down: {page:?}"
    );
    assert!(took < FAIL_FAST, "the due page took {took:?}");
    let (word, took) = timed(service.word_lookup(cold_word)).await;
    assert!(is_redis_error(&word), "word while Redis is down: {word:?}");
    assert!(took < FAIL_FAST, "the word took {took:?}");
    let (dashboard, took) = timed(service.dashboard(user)).await;
    assert!(
        is_redis_error(&dashboard),
        "dashboard while Redis is down: {dashboard:?}"
    );
    assert!(took < FAIL_FAST, "the dashboard took {took:?}");
    // Still nothing written.
    assert_eq!(review_log_rows(&pool, card).await, logs_before);
    assert_eq!(card_row(&pool, card).await, row_before);

    // Redis is back (empty: it had no persistence), on the same port.
    redis.spawn().await;

    // The same instance works again from its very first call (the cache retries a command
    // that finds the connection dead, after the reconnect), and reads what the database says.
    let (back, _) = timed(service.dashboard(user)).await;
    let back = back.expect("the first dashboard after Redis came back");
    assert_eq!(back, old, "nothing was written, so nothing changed");
    let (word, _) = timed(service.word_lookup(cold_word)).await;
    assert_eq!(
        word.expect("word after restart").expect("word 99").id,
        cold_word
    );

    // A review succeeds, and the next reads (this instance, and a new one sharing the
    // restarted Redis) see it.
    let (review, _) =
        timed(service.record_review(user, card, grade(4), ReviewRequestId::random())).await;
    let review = review.expect("review after Redis came back");
    let outcome = review.recorded().expect("a new review is recorded");
    assert!(outcome.due_at > now);
    assert_eq!(review_log_rows(&pool, card).await, logs_before + 1);
    assert_eq!(
        card_row(&pool, card).await.3,
        row_before.3.max(0) + 1,
        "repetitions after one successful review"
    );
    let new = service
        .dashboard(user)
        .await
        .expect("dashboard after the review");
    assert!(new.due.cards.iter().all(|c| c.card_id != card));
    assert_eq!(new.stats.reviews_today, old.stats.reviews_today + 1);
    assert_eq!(
        *new.due,
        query::due_cards(&pool, user, now, None).await.unwrap()
    );
    assert_eq!(
        *new.stats,
        query::user_stats(&pool, user, now).await.unwrap()
    );
    let other = Service::connect(&settings, &ServiceOptions::default())
        .await
        .expect("a second service");
    assert_eq!(other.dashboard(user).await.expect("second dashboard"), new);

    drop(other);
    drop(service);
    redis.kill();
    servers.stop().await;
}

/// Redis frozen (SIGSTOP: the connection stays open, nothing answers) rather than gone: every
/// operation fails with a time-out instead of hanging, the database is unchanged, and once
/// Redis resumes (and executes what was queued) the answers still match their commands.
#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_frozen_operations_time_out_and_after_it_resumes_answers_match_commands() {
    use nix::sys::signal::Signal;

    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let redis = OwnRedis::start().await;
    let settings = Settings {
        database_url: servers.settings.database_url.clone(),
        redis_url: redis.url(),
        cache_namespace: "frozen".to_owned(),
    };
    let service = Service::connect(&settings, &ServiceOptions::default())
        .await
        .expect("service");
    let pool = service.pool().clone();
    let now = service.now();
    let (user, _) = user_with_most_due(&pool, now).await;
    let old = service.dashboard(user).await.expect("dashboard");
    let card = old.due.cards[0].card_id;
    let row_before = card_row(&pool, card).await;
    let logs_before = review_log_rows(&pool, card).await;
    assert_eq!(
        service
            .word_lookup(1)
            .await
            .expect("word 1")
            .expect("word 1")
            .id,
        1
    );

    redis.signal(Signal::SIGSTOP);

    let (review, took) =
        timed(service.record_review(user, card, grade(4), ReviewRequestId::random())).await;
    assert!(
        matches!(&review, Err(ServiceError::Cache(e)) if e.is_timeout()),
        "review while Redis is frozen: {review:?}"
    );
    assert!(took < FAIL_FAST, "the failed review took {took:?}");
    assert_eq!(review_log_rows(&pool, card).await, logs_before);
    assert_eq!(card_row(&pool, card).await, row_before);
    for word_id in [2, 3] {
        let (word, took) = timed(service.word_lookup(word_id)).await;
        assert!(
            matches!(&word, Err(ServiceError::Cache(e)) if e.is_timeout()),
            "word {word_id} while Redis is frozen: {word:?}"
        );
        assert!(took < FAIL_FAST, "word {word_id} took {took:?}");
    }
    let (stats, took) = timed(service.stats(user)).await;
    assert!(
        is_redis_error(&stats),
        "stats while Redis is frozen: {stats:?}"
    );
    assert!(took < FAIL_FAST, "stats took {took:?}");

    redis.signal(Signal::SIGCONT);

    // Redis now answers the commands that timed out; those answers must not be taken for the
    // answers of later commands. Words 4, 3 and 2 (not cached anywhere yet) and word 1 (from
    // Redis, after emptying L1) each come back as themselves.
    for word_id in [4, 3, 2] {
        let (word, _) = timed(service.word_lookup(word_id)).await;
        let word = word
            .unwrap_or_else(|e| panic!("word {word_id} after Redis resumed: {e}"))
            .expect("a seeded word");
        assert_eq!(word.id, word_id);
    }
    service.clear_l1();
    let before = service.cache_stats().words;
    let (word, _) = timed(service.word_lookup(1)).await;
    assert_eq!(word.expect("word 1 again").expect("word 1").id, 1);
    assert_eq!(service.cache_stats().words.since(&before).l2_hits, 1);

    // Nothing was written: the dashboard is as before; then a review goes through and is seen.
    let (dashboard, _) = timed(service.dashboard(user)).await;
    assert_eq!(dashboard.expect("dashboard after Redis resumed"), old);
    let (review, _) =
        timed(service.record_review(user, card, grade(4), ReviewRequestId::random())).await;
    review.expect("review after Redis resumed");
    assert_eq!(review_log_rows(&pool, card).await, logs_before + 1);
    let new = service
        .dashboard(user)
        .await
        .expect("dashboard after the review");
    assert!(new.due.cards.iter().all(|c| c.card_id != card));
    assert_eq!(new.stats.reviews_today, old.stats.reviews_today + 1);
    assert_eq!(
        *new.due,
        query::due_cards(&pool, user, now, None).await.unwrap()
    );
    assert_eq!(
        *new.stats,
        query::user_stats(&pool, user, now).await.unwrap()
    );

    drop(service);
    drop(redis);
    servers.stop().await;
}

/// Redis dies after a review's first invalidation but before its commit, while a reader of
/// the same process has just cached the pre-review values again (the race the second
/// invalidation exists for). The review is stored exactly once; its failed second
/// invalidation surfaces as an error; and the stale values the reader cached are never served.
#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dying_mid_review_stores_it_once_and_never_serves_the_raced_stale_values() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let mut redis = OwnRedis::start().await;
    let settings = Settings {
        database_url: servers.settings.database_url.clone(),
        redis_url: redis.url(),
        cache_namespace: "mid-review".to_owned(),
    };
    let service = std::sync::Arc::new(
        Service::connect(&settings, &ServiceOptions::default())
            .await
            .expect("service"),
    );
    let pool = query::connect(&settings.database_url, 2)
        .await
        .expect("the test's own pool");
    let now = service.now();
    let (user, _) = user_with_most_due(&pool, now).await;
    let old = service.dashboard(user).await.expect("dashboard");
    let card = old.due.cards[0].card_id;
    let row_before = card_row(&pool, card).await;
    let logs_before = review_log_rows(&pool, card).await;

    // Hold the card's row lock, so that the review stops inside its transaction, after its
    // first invalidation.
    let mut locker = pool.begin().await.expect("begin");
    sqlx::query("SELECT id FROM review_cards WHERE id = $1 FOR UPDATE")
        .bind(card)
        .execute(&mut *locker)
        .await
        .expect("lock the card");
    let request = ReviewRequestId::random();
    let review = tokio::spawn({
        let service = std::sync::Arc::clone(&service);
        async move { service.record_review(user, card, grade(4), request).await }
    });
    let database = super::database_name(&settings.database_url);
    let deadline = Instant::now() + HANG;
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&database)
        .fetch_one(&pool)
        .await
        .expect("pg_stat_activity");
        if waiting == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the review never waited for the row lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The racing reader: the first invalidation emptied both levels, the review has not
    // committed, so it loads the pre-review values and caches them (L1 and Redis).
    let raced = service.dashboard(user).await.expect("racing dashboard");
    assert_eq!(raced, old);

    redis.kill();
    locker.rollback().await.expect("release the row lock");
    let (result, _) = timed(review).await;
    let result = result.expect("review task");
    assert!(
        matches!(
            &result,
            Err(ServiceError::ReviewedButCacheStale {
                source: CacheError::Redis {
                    command: "EVALSHA",
                    ..
                },
                ..
            })
        ),
        "the second invalidation failed, so the review reports it: {result:?}"
    );
    // ... but the review was committed, exactly once.
    assert_eq!(review_log_rows(&pool, card).await, logs_before + 1);
    assert_eq!(card_row(&pool, card).await.3, row_before.3.max(0) + 1);

    // With Redis still gone, the pre-review values the reader cached must not be served:
    // the failed invalidation still dropped them from L1, and Redis cannot answer.
    let (dashboard, took) = timed(service.dashboard(user)).await;
    assert!(
        is_redis_error(&dashboard),
        "dashboard after the failed invalidation: {dashboard:?}"
    );
    assert!(took < FAIL_FAST, "the dashboard took {took:?}");

    // Redis back (empty): the review is seen.
    redis.spawn().await;
    let (new, _) = timed(service.dashboard(user)).await;
    let new = new.expect("dashboard after Redis came back");
    assert!(new.due.cards.iter().all(|c| c.card_id != card));
    assert_eq!(new.stats.reviews_today, old.stats.reviews_today + 1);
    assert_eq!(
        *new.due,
        query::due_cards(&pool, user, now, None).await.unwrap()
    );
    assert_eq!(
        *new.stats,
        query::user_stats(&pool, user, now).await.unwrap()
    );

    // The client retries the review the error told it was recorded, with the same request id:
    // nothing is recorded twice, the retry says so, and it invalidates again.
    let review_id = match &result {
        Err(ServiceError::ReviewedButCacheStale { review_id, .. }) => *review_id,
        other => panic!("{other:?}"),
    };
    let (retry, _) = timed(service.record_review(user, card, grade(4), request)).await;
    match retry.expect("the retry succeeds") {
        Review::AlreadyRecorded(past) => assert_eq!(past.review_id, review_id),
        recorded => panic!("the retry recorded the review twice: {recorded:?}"),
    }
    assert_eq!(review_log_rows(&pool, card).await, logs_before + 1);

    drop(service);
    pool.close().await;
    drop(redis);
    servers.stop().await;
}
