//! Cross-process L1 coherence: one dedicated pub/sub connection per `RedisL2` handle,
//! subscribed to the run's invalidation channel (`{run}:invalidations`). Every invalidation of
//! a guarded namespace publishes the Redis keys it deleted there, with the identity of the
//! cache that sent it ([`Message`], in the [`crate::codec`] format, from inside its script,
//! see `l2.rs`); the subscriber hands them to every registered cache but the sender (which
//! did the same when it invalidated; an echo arriving later would only spoil a lookup that
//! began after the invalidation), and each marks its lookups of them in flight as
//! invalidated and evicts them from its L1 — what a local invalidation does.
//!
//! An L1 of a guarded namespace is trustworthy only while the subscription is live: a
//! publication sent while it is not is lost. So the subscription has a *live* flag (an atomic
//! the L1 read path loads; no lock, no channel) and an *epoch* bumped whenever it goes down or
//! comes up: while it is not live L1 is neither read nor filled; when it comes (back) up every
//! registered L1 is flushed before it is marked live, and a lookup that started in an earlier
//! epoch does not fill L1 (it may have read a value whose invalidation was missed). The
//! subscriber reconnects by itself, with a backoff from `RedisOptions::resubscribe_min_delay`
//! doubling up to `reconnect_max_delay`, each attempt bounded by `operation_timeout`.
//!
//! A subscription connection that dies silently (a half-open TCP connection with no reset) is
//! noticed only when the socket reports it; the subscriber sends no `PING` (that would be a
//! command nobody asked for, which the harness would count).
//!
//! This module must never send a command other than `SUBSCRIBE` (once per (re)connection),
//! never let an L1 serve while the subscription is not confirmed, and never wait for Redis
//! without a time-out.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::RedisResult;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::redis_options::{RedisOptions, bounded};

/// A cache that wants the run's invalidations: its L1 and lookups in flight.
pub(crate) trait Evictor: Send + Sync {
    /// Invalidates the lookups in flight of, and evicts from L1, those of `keys` (full Redis
    /// keys) that are this cache's.
    fn evict<'a>(&'a self, keys: &'a [String]) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
    /// Empties L1 (publications may have been missed).
    fn flush(&self);
}

/// What an invalidation publishes: who sent it, and the full Redis keys it invalidated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Message<K> {
    /// [`Shared::instance`] of the sender's subscription (0 when it has none).
    pub instance: u64,
    /// The sender's registration within it.
    pub registration: u64,
    pub keys: Vec<K>,
}

/// State shared by the subscriber task, the caches and the `RedisL2` handles.
pub(crate) struct Shared {
    /// Random, non-zero: tells this process's publications from others'.
    instance: u64,
    run_namespace: String,
    channel: String,
    live: AtomicBool,
    epoch: AtomicU64,
    /// Number of confirmed (re)subscriptions.
    confirmations: watch::Sender<u64>,
    evictors: Mutex<Vec<(u64, Arc<dyn Evictor>)>>,
    next_id: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<(u64, Arc<dyn Evictor>)>> {
        // Single pushes and removes: a poisoned list is still consistent.
        self.evictors.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn run_namespace(&self) -> &str {
        &self.run_namespace
    }

    /// Whether the subscription is confirmed and has not dropped since: one atomic load.
    #[inline]
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Bumped whenever the subscription goes down or comes up.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Registers `evictor`; it is unregistered when the returned guard drops.
    pub fn register(self: &Arc<Self>, evictor: Arc<dyn Evictor>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock().push((id, evictor));
        Registration {
            shared: Arc::clone(self),
            id,
        }
    }

    fn evictors(&self) -> Vec<Arc<dyn Evictor>> {
        self.evictors_but(0)
    }

    /// Every registered evictor but the one registered as `skip`.
    fn evictors_but(&self, skip: u64) -> Vec<Arc<dyn Evictor>> {
        self.lock()
            .iter()
            .filter(|(id, _)| *id != skip)
            .map(|(_, e)| Arc::clone(e))
            .collect()
    }

    fn went_down(&self) {
        self.live.store(false, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn came_up(&self) {
        // New epoch first: lookups that started before cannot fill L1 after the flush.
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for evictor in self.evictors() {
            evictor.flush();
        }
        self.live.store(true, Ordering::Release);
        self.confirmations.send_modify(|n| *n += 1);
    }

    async fn dispatch(&self, payload: &[u8]) {
        match crate::codec::decode::<Message<String>>(payload) {
            Ok(message) => {
                let skip = if message.instance == self.instance {
                    message.registration
                } else {
                    0
                };
                for evictor in self.evictors_but(skip) {
                    evictor.evict(&message.keys).await;
                }
            }
            // Not knowing what was invalidated, forget everything this process holds.
            Err(_) => {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                for evictor in self.evictors() {
                    evictor.flush();
                }
            }
        }
    }
}

/// Keeps an [`Evictor`] registered.
pub(crate) struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Registration {
    /// Who sends a publication from the registered cache: (instance, registration).
    pub fn sender(&self) -> (u64, u64) {
        (self.shared.instance, self.id)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.lock().retain(|(id, _)| *id != self.id);
    }
}

/// The subscriber task of one connection; dropping the last handle stops it.
pub(crate) struct Subscription {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.went_down();
    }
}

impl Subscription {
    /// Starts the subscriber of `run_namespace`'s invalidations and waits (within
    /// `4 × operation_timeout`) for its first confirmation.
    pub async fn start(
        client: redis::Client,
        run_namespace: &str,
        options: &RedisOptions,
    ) -> RedisResult<Self> {
        let (confirmations, mut confirmed) = watch::channel(0);
        let shared = Arc::new(Shared {
            instance: random_instance(),
            run_namespace: run_namespace.to_owned(),
            channel: super::key::invalidation_channel(run_namespace),
            live: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            confirmations,
            evictors: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
        });
        let task = tokio::spawn(subscribe_forever(
            Arc::clone(&shared),
            client,
            options.clone(),
        ));
        let subscription = Self { shared, task };
        let wait = async {
            confirmed
                .wait_for(|n| *n > 0)
                .await
                .map(|_| ())
                .map_err(|_| {
                    redis::RedisError::from(std::io::Error::other("the subscriber stopped"))
                })
        };
        bounded("SUBSCRIBE", options.operation_timeout * 4, wait).await?;
        Ok(subscription)
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Waits (at most `limit`) until `n` (re)subscriptions have been confirmed in all.
    pub async fn wait_for_confirmations(&self, n: u64, limit: Duration) -> bool {
        let mut confirmed = self.shared.confirmations.subscribe();
        tokio::time::timeout(limit, confirmed.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn confirmations(&self) -> u64 {
        *self.shared.confirmations.borrow()
    }
}

/// Subscribes, listens until the connection drops, and again, forever (until aborted).
async fn subscribe_forever(shared: Arc<Shared>, client: redis::Client, options: RedisOptions) {
    use futures_core::Stream;
    let mut failures: u32 = 0;
    loop {
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&shared.channel).await?;
            Ok(pubsub)
        };
        match bounded("SUBSCRIBE", options.operation_timeout, connect).await {
            Ok(mut pubsub) => {
                failures = 0;
                shared.came_up();
                let mut messages = pubsub.on_message();
                while let Some(message) =
                    std::future::poll_fn(|cx| Pin::new(&mut messages).poll_next(cx)).await
                {
                    shared.dispatch(message.get_payload_bytes()).await;
                }
                shared.went_down();
            }
            Err(_) => failures = failures.saturating_add(1),
        }
        tokio::time::sleep(backoff(&options, failures)).await;
    }
}

/// A random non-zero id (std's randomly seeded hasher over a per-process counter).
fn random_instance() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish().max(1)
}

/// The pause before the next subscription attempt after `failures` failed ones in a row.
fn backoff(options: &RedisOptions, failures: u32) -> Duration {
    let factor = 1u32 << failures.min(16);
    options.resubscribe_min_delay.saturating_mul(factor).min(
        options
            .reconnect_max_delay
            .max(options.resubscribe_min_delay),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let options = RedisOptions {
            resubscribe_min_delay: Duration::from_millis(50),
            reconnect_max_delay: Duration::from_millis(500),
            ..RedisOptions::default()
        };
        let delays: Vec<u128> = (0..8).map(|f| backoff(&options, f).as_millis()).collect();
        assert_eq!(delays, [50, 100, 200, 400, 500, 500, 500, 500]);
        assert_eq!(backoff(&options, u32::MAX), Duration::from_millis(500));
    }
}
