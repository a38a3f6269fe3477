//! The seed on the harness's own server, which commits asynchronously for speed: `VACUUM`
//! marks no page all-visible whose rows' commit may not be flushed yet, and a seed committed so
//! left `review_log` with no all-visible page (every read then fetched the heap, at a level
//! that moved from one benchmark process to the next). The seed commits synchronously; this
//! pins that every page of the tables the benchmarks read is all-visible right after it.

use perf_tests::heavy;
use perf_tests::services::TestServices;

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
