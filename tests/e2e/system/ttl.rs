//! TTL expiry: a value is served from L1, then (L1 expired) from Redis, then (both expired)
//! loaded again, and Redis itself no longer has the key once its TTL has passed.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bench_suite::cache::{
    CacheStats, NamespaceConfig, RedisL2, RedisOptions, TypedCache, entry_ttls, key_hash,
};
use perf_tests::heavy;
use perf_tests::services::TestServices;

use super::{redis_exists, redis_probe};

/// Sleeps until `deadline` (no-op when it has passed).
async fn sleep_until(deadline: Instant) {
    tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
}

#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_expires_from_l1_then_from_redis_and_is_then_loaded_again() {
    let _heavy = heavy();
    let servers = TestServices::start(bench_suite::seed::SeedSize {
        users: 2,
        words: 10,
        cards: 10,
    })
    .await;
    let url = &servers.settings.redis_url;
    let config = NamespaceConfig::new("ttl_test", Duration::from_secs(1))
        .with_l1(100, Duration::from_millis(500));
    let l2 = RedisL2::connect(url, &RedisOptions::default())
        .await
        .expect("redis");
    let cache: TypedCache<i64, String> =
        TypedCache::new("system", config.clone(), l2).expect("a valid configuration");
    let key = 7_i64;
    let redis_key = cache.redis_key(&key);
    // The key's TTLs, jittered (±10 %) by the hash of "ttl_test:7": 1 s ± 10 % rounds to 1 s
    // in Redis (whole seconds); L1 gets 500 ms ± 10 %, i.e. 450..=550 ms.
    let ttls = entry_ttls(&config, key_hash("ttl_test", "7"), false);
    assert_eq!(ttls.l2_secs, 1);
    assert!(
        (Duration::from_millis(450)..=Duration::from_millis(550)).contains(&ttls.l1),
        "{ttls:?}"
    );
    let mut probe = redis_probe(url).await;

    let calls = AtomicU32::new(0);
    let get = || {
        cache.get_or_load(&key, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            Ok::<_, Infallible>(Some(format!("load {n}")))
        })
    };
    let value = |v: Option<std::sync::Arc<String>>| v.as_deref().cloned().expect("a value");

    // 1. A miss: one load, `SET .. EX 1`.
    let start = Instant::now();
    assert_eq!(value(get().await.expect("first read")), "load 1");
    let set_by = Instant::now(); // the SET happened before this instant
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&redis_key)
        .query_async(&mut probe)
        .await
        .expect("PTTL");
    assert!((1..=1000).contains(&ttl_ms), "PTTL {ttl_ms} of {redis_key}");

    // 2. At once: from L1, no load.
    assert_eq!(value(get().await.expect("second read")), "load 1");
    assert!(
        start.elapsed() < ttls.l1,
        "the machine stalled: step 2 ran {:?} after the fill, past the L1 TTL",
        start.elapsed()
    );

    // 3. Past the L1 TTL, before the Redis TTL: from Redis (one L2 hit), no load.
    sleep_until(set_by + ttls.l1 + Duration::from_millis(100)).await;
    assert_eq!(value(get().await.expect("third read")), "load 1");
    let refilled_by = Instant::now(); // the L2 hit refilled L1 before this instant
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "the machine stalled: step 3 ended {:?} after the SET, past the Redis TTL",
        start.elapsed()
    );
    assert!(redis_exists(&mut probe, &redis_key).await);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // 4. Past the Redis TTL and past the L1 TTL of the refill in 3: Redis dropped the key
    //    (seen from a connection of our own), and the next read loads again.
    sleep_until(
        (set_by + Duration::from_secs(ttls.l2_secs) + Duration::from_millis(100))
            .max(refilled_by + ttls.l1 + Duration::from_millis(100)),
    )
    .await;
    assert!(
        !redis_exists(&mut probe, &redis_key).await,
        "{redis_key} outlived its {} s TTL",
        ttls.l2_secs
    );
    assert_eq!(value(get().await.expect("fourth read")), "load 2");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(
        redis_exists(&mut probe, &redis_key).await,
        "the reload was not written back"
    );

    // Per lookup exactly one counter: two misses (each a load, a GET and a SET), one L1 hit,
    // one L2 hit (a GET). 2 × 2 + 1 = 5 Redis commands.
    assert_eq!(
        cache.stats(),
        CacheStats {
            l1_hits: 1,
            l2_hits: 1,
            misses: 2,
            loads: 2,
            redis_commands: 5,
            redis_round_trips: 5,
            ..CacheStats::default()
        }
    );

    servers.stop().await;
}
