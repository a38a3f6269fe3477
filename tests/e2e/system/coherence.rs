//! Coherence after a write: once `record_review` returns, neither the writing instance nor
//! another instance sharing Redis (with a cold L1) serves the user's old due page or old
//! statistics.

use bench_suite::cache::{Namespace, RedisL2, RedisOptions, TypedCache};
use bench_suite::model::{DuePage, ReviewRequestId, UserStats};
use bench_suite::query;
use bench_suite::service::{Service, ServiceOptions};
use perf_tests::heavy;
use perf_tests::services::TestServices;

use super::{grade, redis_exists, redis_probe, small_seed, user_with_most_due};

#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_invalidates_due_page_and_stats_for_the_writer_and_via_redis_for_a_cold_l1() {
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

    // The Redis keys of the user's due page and statistics, as the service names them.
    let l2 = RedisL2::connect(&settings.redis_url, &RedisOptions::default())
        .await
        .expect("redis");
    let run = settings.cache_namespace.as_str();
    let due_key = TypedCache::<i64, DuePage>::new(run, Namespace::DueCards.config(), l2.clone())
        .expect("due namespace")
        .redis_key(&user);
    let stats_key = TypedCache::<i64, UserStats>::new(run, Namespace::Progress.config(), l2)
        .expect("progress namespace")
        .redis_key(&user);
    let mut probe = redis_probe(&settings.redis_url).await;

    // A: cold (one load per namespace), then warm (one L1 hit per namespace), same answer.
    let old = a.dashboard(user).await.expect("cold dashboard");
    let warm = a.dashboard(user).await.expect("warm dashboard");
    assert_eq!(warm, old);
    let stats = a.cache_stats();
    for (name, ns) in [("due", stats.due), ("progress", stats.progress)] {
        assert_eq!((ns.loads, ns.l1_hits), (1, 1), "A's {name}: {ns:?}");
    }
    assert!(redis_exists(&mut probe, &due_key).await, "{due_key}");
    assert!(redis_exists(&mut probe, &stats_key).await, "{stats_key}");

    // B (another process's view) reads A's copies from Redis: exactly one L2 hit per
    // namespace and no load. So, without an invalidation in Redis, B would keep them.
    assert_eq!(b.dashboard(user).await.expect("B before"), old);
    let stats = b.cache_stats();
    for (name, ns) in [("due", stats.due), ("progress", stats.progress)] {
        assert_eq!((ns.l2_hits, ns.loads), (1, 0), "B's {name}: {ns:?}");
    }

    // A reviews the first due card. Grade 4 is a success: the card is rescheduled at least a
    // day after `now`, so it leaves the due list.
    let card = old.due.cards[0].card_id;
    let review = a
        .record_review(user, card, grade(4), ReviewRequestId::random())
        .await
        .expect("review");
    let outcome = review.recorded().expect("a new review is recorded");
    assert!(outcome.due_at > now, "{outcome:?}");

    // The write removed both keys from Redis.
    assert!(
        !redis_exists(&mut probe, &due_key).await,
        "{due_key} survived the review"
    );
    assert!(
        !redis_exists(&mut probe, &stats_key).await,
        "{stats_key} survived the review"
    );

    let truth_page = query::due_cards(a.pool(), user, now, None)
        .await
        .expect("due page from the database");
    let truth_stats = query::user_stats(a.pool(), user, now)
        .await
        .expect("statistics from the database");
    // One review at `now` counts today and in the last 30 days; the card is no longer due.
    assert_eq!(truth_stats.reviews_today, old.stats.reviews_today + 1);
    assert_eq!(truth_stats.reviews_30d, old.stats.reviews_30d + 1);
    assert_eq!(truth_stats.due_now, old.stats.due_now - 1);

    // B, with a cold L1 (as a freshly started process), reads first: the keys are gone from
    // Redis, so each namespace misses and loads once, and B gets the database's answer.
    b.clear_l1();
    let before = b.cache_stats();
    let b_new = b.dashboard(user).await.expect("B after");
    let delta = b.cache_stats();
    for (name, ns) in [
        ("due", delta.due.since(&before.due)),
        ("progress", delta.progress.since(&before.progress)),
    ] {
        assert_eq!(
            (ns.misses, ns.loads, ns.l2_hits),
            (1, 1, 0),
            "B's {name}: {ns:?}"
        );
    }
    assert!(
        b_new.due.cards.iter().all(|c| c.card_id != card),
        "B still lists reviewed card {card}"
    );
    assert_eq!(b_new.stats.reviews_today, old.stats.reviews_today + 1);
    assert_eq!(*b_new.due, truth_page);
    assert_eq!(*b_new.stats, truth_stats);

    // A, the writer: its own L1 copies were dropped by the review, so it goes to Redis (which
    // B refilled with the fresh values: one L2 hit per namespace) and is fresh too.
    let before = a.cache_stats();
    let a_new = a.dashboard(user).await.expect("A after");
    let delta = a.cache_stats();
    for (name, ns) in [
        ("due", delta.due.since(&before.due)),
        ("progress", delta.progress.since(&before.progress)),
    ] {
        assert_eq!((ns.l1_hits, ns.l2_hits), (0, 1), "A's {name}: {ns:?}");
    }
    assert!(
        a_new.due.cards.iter().all(|c| c.card_id != card),
        "A still lists reviewed card {card}"
    );
    assert_eq!(a_new.stats.reviews_today, old.stats.reviews_today + 1);
    assert_eq!(*a_new.due, truth_page);
    assert_eq!(*a_new.stats, truth_stats);
    assert_eq!(a_new, b_new);

    servers.stop().await;
}

/// The same, with the writer reading back first: a read right after the write (from the
/// writer's own instance, whose L1 was warm) is fresh, and so is a second instance that was
/// never warmed at all.
#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_reads_its_own_review_at_once_and_a_new_instance_agrees() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let settings = &servers.settings;
    let a = Service::connect(settings, &ServiceOptions::default())
        .await
        .expect("service A");
    let now = a.now();
    let (user, _) = user_with_most_due(a.pool(), now).await;

    let old = a.dashboard(user).await.expect("cold dashboard");
    assert_eq!(a.dashboard(user).await.expect("warm"), old);
    let first = a.due_cards(user, None).await.expect("first due page");
    let card = first.cards[0].card_id;
    a.record_review(user, card, grade(4), ReviewRequestId::random())
        .await
        .expect("review");

    // The writer's L1 and Redis were both invalidated: one load per namespace.
    let before = a.cache_stats();
    let a_new = a.dashboard(user).await.expect("A after");
    let delta = a.cache_stats();
    for (name, ns) in [
        ("due", delta.due.since(&before.due)),
        ("progress", delta.progress.since(&before.progress)),
    ] {
        assert_eq!(
            (ns.l1_hits, ns.l2_hits, ns.loads),
            (0, 0, 1),
            "A's {name}: {ns:?}"
        );
    }
    assert!(a_new.due.cards.iter().all(|c| c.card_id != card));
    assert_eq!(a_new.stats.reviews_today, old.stats.reviews_today + 1);
    assert_eq!(
        *a_new.due,
        query::due_cards(a.pool(), user, now, None).await.unwrap()
    );
    assert_eq!(
        *a_new.stats,
        query::user_stats(a.pool(), user, now).await.unwrap()
    );

    // A new instance (cold L1) reads what A just put into Redis.
    let c = Service::connect(settings, &ServiceOptions::default())
        .await
        .expect("service C");
    assert_eq!(c.dashboard(user).await.expect("C"), a_new);
    let stats = c.cache_stats();
    for (name, ns) in [("due", stats.due), ("progress", stats.progress)] {
        assert_eq!((ns.l2_hits, ns.loads), (1, 0), "C's {name}: {ns:?}");
    }

    servers.stop().await;
}
