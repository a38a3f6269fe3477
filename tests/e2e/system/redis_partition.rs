//! The service's connection to Redis cut mid-review while Redis itself keeps running with its
//! data (a network partition, a proxy or failover blip): unlike a Redis restart, whatever the
//! failed invalidation should have removed is still there when the connection comes back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench_suite::cache::{CacheError, Namespace, RedisL2, RedisOptions, TypedCache};
use bench_suite::model::{DuePage, ReviewRequestId};
use bench_suite::query;
use bench_suite::service::{Service, ServiceError, ServiceOptions};
use bench_suite::settings::Settings;
use perf_tests::heavy;
use perf_tests::services::TestServices;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

use super::{
    card_row, database_name, grade, redis_exists, redis_probe, review_log_rows, small_seed,
    user_with_most_due,
};

/// The bound of every wait in this test.
const HANG: Duration = Duration::from_secs(10);

/// A TCP proxy in front of Redis that can cut the service off (close every connection and
/// every new one at once) and let it through again, while Redis keeps running.
struct Proxy {
    port: u16,
    /// `None` while cut; the open connections' tasks otherwise.
    connections: Arc<Mutex<Option<Vec<AbortHandle>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        let connections = Arc::new(Mutex::new(Some(Vec::new())));
        let accept = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let mut open = connections.lock().unwrap();
                    // Cut: the connection is closed at once (dropped).
                    let Some(open) = open.as_mut() else { continue };
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    open.push(task.abort_handle());
                }
            }
        });
        Self {
            port,
            connections,
            accept,
        }
    }

    /// Redis's URL (`redis_url`, which carries the run's password) with the proxy's address
    /// in place of Redis's (`redis_address`).
    fn url(&self, redis_url: &str, redis_address: &str) -> String {
        assert!(
            redis_url.contains(redis_address),
            "{redis_address} is not in Redis's URL"
        );
        redis_url.replace(redis_address, &format!("127.0.0.1:{}", self.port))
    }

    /// Closes every connection, and every new one until [`Proxy::restore`].
    fn cut(&self) {
        if let Some(open) = self.connections.lock().unwrap().take() {
            for task in open {
                task.abort();
            }
        }
    }

    fn restore(&self) {
        let mut connections = self.connections.lock().unwrap();
        if connections.is_none() {
            *connections = Some(Vec::new());
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Redis stays up; only the service's connection is cut, after the review's first
/// invalidation and after a reader of the same process has cached the pre-review values again
/// (the race the second invalidation exists for). The second invalidation fails, so those
/// values stay in Redis; once the connection is back, the service must still not serve them:
/// the reviewed card must not be listed as due, and the statistics must count the review.
#[allow(clippy::await_holding_lock)] // see the module documentation of `system`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_whose_second_invalidation_is_cut_off_never_serves_the_raced_stale_values() {
    let _heavy = heavy();
    let servers = TestServices::start(small_seed()).await;
    let proxy = Proxy::start(servers.services().redis_address().to_owned()).await;
    let settings = Settings {
        database_url: servers.settings.database_url.clone(),
        redis_url: proxy.url(
            &servers.services().redis_url(),
            servers.services().redis_address(),
        ),
        cache_namespace: "partition".to_owned(),
    };
    let service = Arc::new(
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
    let logs_before = review_log_rows(&pool, card).await;
    let repetitions_before = card_row(&pool, card).await.3;

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
        let service = Arc::clone(&service);
        async move { service.record_review(user, card, grade(4), request).await }
    });
    let database = database_name(&settings.database_url);
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

    // The racing reader caches the pre-review values (L1 and Redis).
    let raced = service.dashboard(user).await.expect("racing dashboard");
    assert_eq!(raced, old);

    proxy.cut();
    locker.rollback().await.expect("release the row lock");
    let result = tokio::time::timeout(HANG, review)
        .await
        .expect("the review ends")
        .expect("review task");
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
        "the second invalidation failed: {result:?}"
    );
    assert_eq!(
        review_log_rows(&pool, card).await,
        logs_before + 1,
        "committed once"
    );
    assert_eq!(card_row(&pool, card).await.3, repetitions_before.max(0) + 1);

    // What Redis holds now, seen directly (for the failure message).
    let l2 = RedisL2::connect(&servers.settings.redis_url, &RedisOptions::default())
        .await
        .expect("redis");
    let due_key = TypedCache::<i64, DuePage>::new("partition", Namespace::DueCards.config(), l2)
        .expect("due namespace")
        .redis_key(&user);
    let mut probe = redis_probe(&servers.settings.redis_url).await;
    let stale_in_redis = redis_exists(&mut probe, &due_key).await;

    // The connection comes back. The same instance, and a new one (cold L1), read the user's
    // dashboard: it must reflect the committed review.
    proxy.restore();
    let new = tokio::time::timeout(HANG, service.dashboard(user))
        .await
        .expect("no hang")
        .expect("dashboard after the connection came back");
    let other = Service::connect(&settings, &ServiceOptions::default())
        .await
        .expect("a second service");
    let other_new = other.dashboard(user).await.expect("second dashboard");
    let truth_page = query::due_cards(&pool, user, now, None).await.unwrap();
    let truth_stats = query::user_stats(&pool, user, now).await.unwrap();
    for (who, dashboard) in [("same instance", &new), ("new instance", &other_new)] {
        assert!(
            dashboard.due.cards.iter().all(|c| c.card_id != card),
            "{who}: reviewed card {card} is still served as due (stale page in Redis: \
             {stale_in_redis}, key {due_key})"
        );
        assert_eq!(
            dashboard.stats.reviews_today,
            old.stats.reviews_today + 1,
            "{who}: the statistics miss the committed review"
        );
        assert_eq!(*dashboard.due, truth_page, "{who}");
        assert_eq!(*dashboard.stats, truth_stats, "{who}");
    }

    drop(other);
    drop(service);
    drop(proxy);
    pool.close().await;
    servers.stop().await;
}
