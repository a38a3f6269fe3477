//! Coherence across processes (each `Service`, `RedisL2` handle or `TypedCache` on its own
//! connections stands for a process): an invalidation reaches another process's warm L1
//! through pub/sub well before the L1 TTL; a fill that raced another process's invalidation
//! is refused by Redis (generation keys); and an L1 is not served while its subscription is
//! down, and is flushed and used again once it is back.

use std::time::{Duration, Instant};

use bench_suite::cache::{Namespace, NamespaceConfig, RedisL2, RedisOptions, TypedCache};
use bench_suite::model::ReviewRequestId;
use bench_suite::query;
use bench_suite::service::{Service, ServiceOptions};
use perf_tests::heavy;
use perf_tests::services::TestServices;
use tokio::sync::oneshot;

use super::{grade, redis_exists, redis_probe, small_seed, user_with_most_due};

/// How long a test waits for a pub/sub message or a resubscription before failing.
const BOUND: Duration = Duration::from_secs(1);

#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_in_one_process_evicts_another_processs_warm_l1_within_a_second() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let settings = &servers.settings;
    let a = Service::connect(settings, &ServiceOptions::default())
        .await
        .expect("service A");
    let b = Service::connect(settings, &ServiceOptions::default())
        .await
        .expect("service B");
    let now = a.now();
    let (user, due) = user_with_most_due(a.pool(), now).await;
    assert!(due > 0);

    // Both warm in L1: A cold then warm, B from Redis then warm.
    let old = a.dashboard(user).await.expect("A cold");
    assert_eq!(a.dashboard(user).await.expect("A warm"), old);
    assert_eq!(b.dashboard(user).await.expect("B from Redis"), old);
    assert_eq!(b.dashboard(user).await.expect("B warm"), old);
    let before = b.cache_stats();
    for (name, ns) in [("due", before.due), ("progress", before.progress)] {
        assert_eq!((ns.l2_hits, ns.l1_hits, ns.loads), (1, 1, 0), "B's {name}");
    }

    let card = old.due.cards[0].card_id;
    let review = a
        .record_review(user, card, grade(4), ReviewRequestId::random())
        .await
        .expect("review");
    let outcome = review.recorded().expect("a new review is recorded");
    assert!(outcome.due_at > now, "{outcome:?}");
    let reviewed = Instant::now();

    // B polls its dashboard: without the broadcast it would serve its L1 copy for 30 s.
    let seen = loop {
        let dashboard = b.dashboard(user).await.expect("B after the review");
        if dashboard.due != old.due && dashboard.stats != old.stats {
            break dashboard;
        }
        assert!(
            reviewed.elapsed() < BOUND,
            "B still serves the old due page or statistics {:?} after the review",
            reviewed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        reviewed.elapsed() < Duration::from_secs(5),
        "well under the 30 s L1 TTL"
    );
    let truth_page = query::due_cards(a.pool(), user, now, None)
        .await
        .expect("due page from the database");
    let truth_stats = query::user_stats(a.pool(), user, now)
        .await
        .expect("statistics from the database");
    assert_eq!(*seen.due, truth_page);
    assert_eq!(*seen.stats, truth_stats);
    assert!(!seen.due.cards.iter().any(|c| c.card_id == card));
    // B loaded the new values from the database (it was not an L1 hit of the old ones).
    let after = b.cache_stats();
    for (name, ns, earlier) in [
        ("due", after.due, before.due),
        ("progress", after.progress, before.progress),
    ] {
        let delta = ns.since(&earlier);
        assert!(delta.loads >= 1, "B's {name} after the review: {delta:?}");
    }
    // And B's L1 works again. The write's second invalidation (after its commit) may still be
    // on its way and evict once more what B just loaded: let it arrive, refill, then the next
    // dashboard is served by L1.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.dashboard(user).await.expect("B refilled"), seen);
    let after = b.cache_stats();
    let again = b.dashboard(user).await.expect("B warm again");
    assert_eq!(again, seen);
    let last = b.cache_stats();
    for (name, ns, earlier) in [
        ("due", last.due, after.due),
        ("progress", last.progress, after.progress),
    ] {
        let delta = ns.since(&earlier);
        assert_eq!(
            (delta.l1_hits, delta.loads),
            (1, 0),
            "B's {name}: {delta:?}"
        );
    }
    servers.stop().await;
}

/// Runs the cross-process fill race on `config`'s namespace: a reader (its own connection,
/// not subscribed, so nothing in its process tells it about the invalidation) misses, loads
/// "old", and is held until a writer on another connection has invalidated the key; then the
/// reader's fill runs. Whether Redis holds the key afterwards.
async fn fill_race(
    url: &str,
    run: &str,
    config: NamespaceConfig,
) -> (bool, TypedCache<i64, String>) {
    let reader_l2 = RedisL2::connect(url, &RedisOptions::default())
        .await
        .expect("the reader's connection");
    let writer_l2 = RedisL2::connect(url, &RedisOptions::default())
        .await
        .expect("the writer's connection");
    let reader = TypedCache::<i64, String>::new(run, config.clone(), reader_l2).expect("reader");
    let writer = TypedCache::<i64, String>::new(run, config, writer_l2).expect("writer");
    let key = 1_i64;
    let (loading_tx, loading_rx) = oneshot::channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let read = reader.get_or_load(&key, move || async move {
        // The old value was read from the database; now the writer commits and invalidates.
        let _ = loading_tx.send(());
        release_rx.await.expect("released by the test");
        Ok::<_, std::io::Error>(Some("old".to_owned()))
    });
    let write = async {
        loading_rx.await.expect("the reader is loading");
        writer
            .invalidate(&key)
            .await
            .expect("the writer's invalidation");
        release_tx.send(()).expect("the reader waits");
    };
    let (read, ()) =
        tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(read, write) })
            .await
            .expect("the race completes");
    assert_eq!(
        read.expect("the reader's answer")
            .as_deref()
            .map(String::as_str),
        Some("old")
    );
    let mut probe = redis_probe(url).await;
    let exists = redis_exists(&mut probe, &reader.redis_key(&key)).await;
    (exists, reader)
}

#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_that_raced_another_processs_invalidation_is_refused_by_redis() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let url = servers.settings.redis_url.as_str();

    // Control: without guarded fills, the reader's SET puts the old value back into Redis.
    let unguarded = Namespace::DueCards.config().with_guarded_fills(false);
    let (exists, _) = fill_race(url, "race-unguarded", unguarded).await;
    assert!(
        exists,
        "the race is real: an unguarded fill stores the stale value"
    );

    // Guarded: the generation moved between the reader's MGET and its fill, so Redis refuses.
    let guarded = Namespace::DueCards.config();
    assert!(guarded.guarded_fills);
    let (exists, reader) = fill_race(url, "race-guarded", guarded).await;
    assert!(!exists, "the stale value was stored in Redis");
    let stats = reader.stats();
    // MGET key generation, then the EVALSHA fill, which Redis refused.
    assert_eq!(
        (stats.misses, stats.loads, stats.redis_commands),
        (1, 1, 2),
        "{stats:?}"
    );
    // Nor is it in the reader's L1 (which a guarded namespace without a subscription never
    // uses anyway): a fresh read loads again and gets the new value.
    let fresh = reader
        .get_or_load(&1, || async {
            Ok::<_, std::io::Error>(Some("new".to_owned()))
        })
        .await
        .expect("a fresh read");
    assert_eq!(fresh.as_deref().map(String::as_str), Some("new"));
    assert_eq!(reader.stats().loads, 2);
    let mut probe = redis_probe(url).await;
    assert!(
        redis_exists(&mut probe, &reader.redis_key(&1)).await,
        "an unraced fill is stored"
    );
    servers.stop().await;
}

#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_fill_skips_only_the_keys_another_process_invalidated() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let url = servers.settings.redis_url.as_str();
    let run = "race-batch";
    let config = Namespace::Progress.config();
    let reader = TypedCache::<i64, String>::new(
        run,
        config.clone(),
        RedisL2::connect(url, &RedisOptions::default())
            .await
            .expect("reader"),
    )
    .expect("reader cache");
    let writer = TypedCache::<i64, String>::new(
        run,
        config,
        RedisL2::connect(url, &RedisOptions::default())
            .await
            .expect("writer"),
    )
    .expect("writer cache");
    let (loading_tx, loading_rx) = oneshot::channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let mut signals = Some((loading_tx, release_rx));
    let read = reader.get_many_or_load(&[1, 2, 3], move |missing: Vec<i64>| {
        let signals = signals.take();
        async move {
            let (loading_tx, release_rx) = signals.expect("one load");
            let _ = loading_tx.send(());
            release_rx.await.expect("released by the test");
            Ok::<_, std::io::Error>(missing.into_iter().map(|k| (k, format!("old-{k}"))))
        }
    });
    let write = async {
        loading_rx.await.expect("the reader is loading");
        writer
            .invalidate(&2)
            .await
            .expect("the writer's invalidation");
        release_tx.send(()).expect("the reader waits");
    };
    let (read, ()) =
        tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(read, write) })
            .await
            .expect("the race completes");
    assert_eq!(read.expect("the batch").len(), 3);
    // One MGET of 3 keys and 3 generations, one EVALSHA fill.
    assert_eq!(reader.stats().redis_commands, 2);
    let mut probe = redis_probe(url).await;
    for (key, stored) in [(1, true), (2, false), (3, true)] {
        let name = reader.redis_key(&key);
        assert_eq!(redis_exists(&mut probe, &name).await, stored, "{name}");
    }
    servers.stop().await;
}

#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_is_bypassed_while_the_subscription_is_down_and_flushed_when_it_is_back() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let url = servers.settings.redis_url.as_str();
    let run = "subscription-loss";
    // A long first pause before resubscribing, so that the test can read while it is down.
    let options = RedisOptions {
        resubscribe_min_delay: Duration::from_secs(1),
        ..RedisOptions::default()
    };
    let l2 = RedisL2::connect_subscribed(url, &options, run)
        .await
        .expect("a subscribed connection");
    assert!(l2.invalidations_live());
    assert_eq!(l2.subscriptions_confirmed(), 1);
    let cache = TypedCache::<i64, String>::new(run, Namespace::DueCards.config(), l2.clone())
        .expect("cache");
    let load = || async { Ok::<_, std::io::Error>(Some("value".to_owned())) };
    cache.get_or_load(&1, load).await.expect("cold");
    cache.get_or_load(&1, load).await.expect("warm");
    let warm = cache.stats();
    assert_eq!((warm.loads, warm.l1_hits), (1, 1), "{warm:?}");

    // Kill the subscriber's connection.
    let mut probe = redis_probe(url).await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut probe)
        .await
        .expect("CLIENT KILL TYPE pubsub");
    assert_eq!(killed, 1);
    let deadline = Instant::now() + BOUND;
    while l2.invalidations_live() {
        assert!(
            Instant::now() < deadline,
            "the subscription drop went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Down: L1 still holds the value but is not read; the read goes to Redis.
    cache.get_or_load(&1, load).await.expect("while down");
    let down = cache.stats().since(&warm);
    assert_eq!(
        (down.l1_hits, down.l2_hits, down.redis_commands),
        (0, 1, 1),
        "{down:?}"
    );
    assert_eq!(
        l2.subscriptions_confirmed(),
        1,
        "resubscribed too early for the test"
    );

    // Back (the subscriber resubscribes by itself): L1 was flushed, so the first read is
    // from Redis, the next from L1 again.
    assert!(
        l2.wait_for_subscriptions(2, Duration::from_secs(5)).await,
        "no resubscription"
    );
    assert!(l2.invalidations_live());
    let back = cache.stats();
    cache
        .get_or_load(&1, load)
        .await
        .expect("after resubscription");
    cache.get_or_load(&1, load).await.expect("warm again");
    let delta = cache.stats().since(&back);
    assert_eq!(
        (delta.l2_hits, delta.l1_hits, delta.loads),
        (1, 1, 0),
        "{delta:?}"
    );
    servers.stop().await;
}

#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_of_more_keys_than_one_del_takes_deletes_them_all() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let url = servers.settings.redis_url.as_str();
    let l2 = RedisL2::connect(url, &RedisOptions::default())
        .await
        .expect("redis");
    let cache =
        TypedCache::<i64, String>::new("many", Namespace::DueCards.config(), l2).expect("cache");
    let keys: Vec<i64> = (0..10_000).collect();
    let filled = [1, 5_000, 9_999];
    cache
        .get_many_or_load(&filled, |missing: Vec<i64>| async move {
            Ok::<_, std::io::Error>(missing.into_iter().map(|k| (k, k.to_string())))
        })
        .await
        .expect("fill three keys");
    let before = cache.stats().redis_commands;
    let deleted = cache
        .invalidate_many(&keys)
        .await
        .expect("invalidate 10,000 keys");
    assert_eq!(deleted, 3);
    assert_eq!(cache.stats().redis_commands - before, 1, "one EVALSHA");
    let mut probe = redis_probe(url).await;
    for key in filled {
        assert!(!redis_exists(&mut probe, &cache.redis_key(&key)).await);
    }
    servers.stop().await;
}
