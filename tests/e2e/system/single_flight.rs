//! Single-flight: concurrent misses of one key in one process share one lookup, counted on the
//! servers themselves (`pg_stat_statements` filtered to the test's database, Redis
//! `INFO commandstats`) and by the cache's own counters.

use std::collections::BTreeMap;
use std::sync::Arc;

use bench_suite::cache::CacheStats;
use bench_suite::service::{Service, ServiceOptions};
use perf_tests::heavy;
use perf_tests::services::TestServices;
use redis::aio::MultiplexedConnection;
use sqlx::{Connection, PgConnection};

use super::{database_name, join_all, redis_probe, small_seed};

const LOOKUPS: usize = 100;

/// Resets and reads the servers' own statistics.
struct ServerCounts {
    admin: PgConnection,
    redis: MultiplexedConnection,
    database: String,
}

impl ServerCounts {
    async fn connect(servers: &TestServices) -> Self {
        let mut admin = PgConnection::connect(&servers.services().postgres_url("postgres"))
            .await
            .expect("admin connection");
        // The view is server-wide; the extension lives in `postgres`, the counts are filtered
        // to the test's database below.
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&mut admin)
            .await
            .expect("create pg_stat_statements");
        Self {
            admin,
            redis: redis_probe(&servers.settings.redis_url).await,
            database: database_name(&servers.settings.database_url),
        }
    }

    async fn reset(&mut self) {
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&mut self.admin)
            .await
            .expect("pg_stat_statements_reset");
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut self.redis)
            .await
            .expect("CONFIG RESETSTAT");
    }

    /// Statements executed in the test's database since the reset, with their texts.
    async fn statements(&mut self) -> (i64, Vec<String>) {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT s.query, s.calls FROM pg_stat_statements s \
             JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1 ORDER BY s.query",
        )
        .bind(&self.database)
        .fetch_all(&mut self.admin)
        .await
        .expect("read pg_stat_statements");
        let total = rows.iter().map(|(_, calls)| calls).sum();
        (total, rows.into_iter().map(|(query, _)| query).collect())
    }

    /// Redis commands since the reset, by name (without the probe's INFO and CONFIG).
    async fn redis_commands(&mut self) -> BTreeMap<String, u64> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.redis)
            .await
            .expect("INFO commandstats");
        info.lines()
            .filter_map(|line| line.trim().strip_prefix("cmdstat_"))
            .filter_map(|rest| {
                let (command, stats) = rest.split_once(':')?;
                let calls = stats
                    .split(',')
                    .find_map(|field| field.strip_prefix("calls="))?
                    .parse()
                    .ok()?;
                Some((command.to_ascii_lowercase(), calls))
            })
            .filter(|(command, _)| command != "info" && !command.starts_with("config"))
            .collect()
    }
}

#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_misses_of_one_word_run_one_statement_and_one_load() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let service = Service::connect(&servers.settings, &ServiceOptions::default())
        .await
        .expect("service");
    let mut counts = ServerCounts::connect(&servers).await;
    let word_id = 42;
    counts.reset().await;

    // All 100 lookups are polled once, in order, before any is polled again: the first leads
    // (its `GET` needs a round trip to Redis, so it cannot be done yet) and the 99 others find
    // its lookup in flight and wait for it.
    let words = join_all((0..LOOKUPS).map(|_| service.word_lookup(word_id)).collect()).await;
    let first = words[0]
        .as_ref()
        .expect("lookup")
        .clone()
        .expect("word 42 exists");
    assert_eq!(first.id, word_id);
    for word in &words {
        let word = word.as_ref().expect("lookup").as_ref().expect("a word");
        // Waiters get the leader's very value, not a copy decoded again.
        assert!(Arc::ptr_eq(word, &first));
    }

    // One miss: the leader's `SELECT .. FROM words WHERE id = $1` (1 statement), one `GET`
    // (nothing in Redis) and one `SET` (the loaded word), each its own round trip; the 99
    // others are coalesced.
    let (statements, texts) = counts.statements().await;
    assert_eq!(statements, 1, "statements in the test database: {texts:#?}");
    assert!(texts[0].contains("FROM words WHERE id = $1"), "{texts:#?}");
    assert_eq!(
        counts.redis_commands().await,
        BTreeMap::from([("get".to_owned(), 1), ("set".to_owned(), 1)])
    );
    assert_eq!(
        service.cache_stats().words,
        CacheStats {
            misses: 1,
            loads: 1,
            coalesced: 99,
            redis_commands: 2,
            redis_round_trips: 2,
            ..CacheStats::default()
        }
    );

    servers.stop().await;
}

#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_misses_of_one_word_on_all_worker_threads_run_one_statement_and_one_load() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let service = Arc::new(
        Service::connect(&servers.settings, &ServiceOptions::default())
            .await
            .expect("service"),
    );
    let mut counts = ServerCounts::connect(&servers).await;
    let word_id = 7;
    counts.reset().await;

    let barrier = Arc::new(tokio::sync::Barrier::new(LOOKUPS));
    let tasks: Vec<_> = (0..LOOKUPS)
        .map(|_| {
            let service = Arc::clone(&service);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                service.word_lookup(word_id).await
            })
        })
        .collect();
    for task in tasks {
        let word = task.await.expect("task").expect("lookup").expect("word 7");
        assert_eq!(word.id, word_id);
    }

    // Spread over two threads, a lookup may start after the leader finished: it then finds
    // the word in L1 (the leader fills L1 before it releases the key), so it is an L1 hit
    // instead of coalesced. Either way: one statement, one GET, one SET, one load.
    let (statements, texts) = counts.statements().await;
    assert_eq!(statements, 1, "statements in the test database: {texts:#?}");
    assert_eq!(
        counts.redis_commands().await,
        BTreeMap::from([("get".to_owned(), 1), ("set".to_owned(), 1)])
    );
    let words = service.cache_stats().words;
    assert_eq!(
        (words.misses, words.loads, words.errors),
        (1, 1, 0),
        "{words:?}"
    );
    assert_eq!(words.coalesced + words.l1_hits, 99, "{words:?}");
    assert_eq!(words.redis_commands, 2, "{words:?}");

    servers.stop().await;
}
