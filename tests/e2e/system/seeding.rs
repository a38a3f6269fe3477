//! The seed on the harness's own server, which commits asynchronously for speed: `VACUUM`
//! marks no page all-visible whose rows' commit may not be flushed yet, and a seed committed so
//! left `review_log` with no all-visible page (every read then fetched the heap, at a level
//! that moved from one benchmark process to the next). The seed commits synchronously; this
//! pins that every page of the tables the benchmarks read is all-visible right after it.

use perf_tests::heavy;
use perf_tests::services::TestServices;
use sqlx::Connection;

use super::small_seed;

#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seeded_page_is_all_visible_on_a_server_that_commits_asynchronously() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let pool = bench_suite::query::connect(&servers.settings.database_url, 1)
        .await
        .expect("pool");
    let mode: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&pool)
        .await
        .expect("synchronous_commit");
    assert_eq!(mode, "off", "the harness's server commits asynchronously");
    // `relallvisible` is what the seed's own `VACUUM` counted (no other has run: autovacuum
    // waits a minute between rounds, and this runs within seconds of the seed).
    let pages: Vec<(String, i32, i32)> = sqlx::query_as(
        "SELECT relname::text, relpages, relallvisible FROM pg_class \
         WHERE relname IN ('review_log', 'review_cards', 'words', 'users') ORDER BY relname",
    )
    .fetch_all(&pool)
    .await
    .expect("pg_class");
    assert_eq!(pages.len(), 4, "{pages:?}");
    for (table, total, visible) in &pages {
        assert!(*total > 0, "{table} has no pages: {pages:?}");
        assert_eq!(
            visible, total,
            "{table}: all-visible pages of all: {pages:?}"
        );
    }
    pool.close().await;
    servers.stop().await;
}

/// `--paired` times both sides against one database when their seeded databases' contents are
/// equal (`xtask::suites::contents`): two databases seeded alike must read equal, and a changed
/// row or a different seed must not.
#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_seeded_alike_read_as_identical_and_a_changed_row_does_not() {
    use xtask::suites::contents;

    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let services = servers.services();
    let seeded = |database: &'static str, size: bench_suite::seed::SeedSize| async move {
        let mut admin = sqlx::PgConnection::connect(&services.postgres_url("postgres"))
            .await
            .expect("admin connection");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut admin)
            .await
            .expect("create database");
        let pool = bench_suite::query::connect(&services.postgres_url(database), 1)
            .await
            .expect("pool");
        bench_suite::query::MIGRATOR
            .run(&pool)
            .await
            .expect("migrations");
        bench_suite::seed::seed(&pool, size).await.expect("seed");
        pool
    };
    let twin = seeded("seeding_twin", small_seed()).await;
    let mut larger = small_seed();
    larger.cards += 1;
    let other = seeded("seeding_other", larger).await;

    let first = contents::read(&servers.settings.database_url)
        .await
        .expect("contents");
    let second = contents::read_database(services, "seeding_twin")
        .await
        .expect("contents");
    assert!(first.tables.len() >= 4, "{:?}", first.tables);
    assert_eq!(first.difference(&second), None, "{first:?}\n{second:?}");

    let third = contents::read_database(services, "seeding_other")
        .await
        .expect("contents");
    let difference = first.difference(&third).expect("a different seed differs");
    assert!(difference.contains("differ"), "{difference}");

    sqlx::query("UPDATE words SET lemma = lemma || 'x' WHERE id = (SELECT min(id) FROM words)")
        .execute(&twin)
        .await
        .expect("update");
    let changed = contents::read_database(services, "seeding_twin")
        .await
        .expect("contents");
    assert_eq!(
        first.difference(&changed).as_deref(),
        Some("their rows differ in words")
    );
    twin.close().await;
    other.close().await;
    servers.stop().await;
}
