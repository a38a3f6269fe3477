//! The typed cache of one namespace: cache-aside reads through L1 (moka, per-entry TTLs, LRU)
//! and L2 (Redis) with single-flight and negative caching, batched reads, and invalidation.
//!
//! Namespaces with guarded fills (`NamespaceConfig::guarded_fills`: those that writes
//! invalidate) are also coherent across processes, which closes two holes:
//!
//! - *another process's L1*: an invalidation publishes the keys it deleted on the run's channel;
//!   every process's subscriber evicts them from its L1 and marks its lookups of them in flight
//!   (as a local invalidation does). L1 is read and filled only while this process's
//!   subscription is live (one atomic load on the hit path), is flushed whenever the
//!   subscription is (re)established, and a lookup that began before that does not fill it.
//! - *the cross-process fill race* (a reader loads an old value, a writer in another process
//!   commits and deletes the key, then the reader's `SET` puts the old value back for the L2
//!   TTL): each key has a generation key. The read is `MGET key generation`; the invalidation
//!   deletes the key and increments its generation in one script; the fill is a script that
//!   sets the value only if the generation is still the one the read saw (absent included).
//!   A reader whose read came before the invalidation's script therefore cannot fill; one
//!   whose read came after read the new generation and loads after the writer's first
//!   invalidation, which the service sends before its transaction, and its fill is refused
//!   again by the second invalidation if it raced the commit. Generation keys expire
//!   `NamespaceConfig::generation_ttl` (2 × L2 TTL) after their last bump.
//!
//! This module must never send a Redis command beyond those documented on each operation
//! (the harness counts them exactly), never swallow an error of Redis, the codec or a loader,
//! never put into either level a value read before an invalidation of its key that this
//! process saw (or, for a guarded namespace, that any process made), and never serve a guarded
//! namespace's L1 while the invalidation subscription is not live.

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::policy::EvictionPolicy;
use redis::RedisError;
use serde::{Serialize, de::DeserializeOwned};

use super::coherence::{Evictor, Message, Registration, Shared};
use super::config::{ConfigError, NamespaceConfig};
use super::error::CacheError;
use super::flight::{Flights, Join, Leader, Outcome};
use super::key::{KeySpace, RedisKey, entry_ttls, invalidation_channel};
use super::l2::{GuardedSetItem, RedisL2, SetItem};
use super::stats::{CacheStats, Counters};
use crate::codec;

/// What L1 holds for a key: a value or "missing", and the TTL it was inserted with.
struct L1Entry<V> {
    value: Option<Arc<V>>,
    ttl: Duration,
}

impl<V> Clone for L1Entry<V> {
    fn clone(&self) -> Self {
        Self {
            value: self.value.clone(),
            ttl: self.ttl,
        }
    }
}

/// Gives each L1 entry the TTL it carries (jittered per key, shorter for "missing").
struct PerEntryTtl;

impl<K, V> Expiry<K, L1Entry<V>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &K,
        entry: &L1Entry<V>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &K,
        entry: &L1Entry<V>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// What `MGET` answers per key.
type MaybeBytes = Option<Vec<u8>>;

/// How this cache's L1 relates to other processes.
enum Coherence {
    /// No guarded fills: L1 is always read (an invalidation reaches this process only).
    Local,
    /// Guarded fills, subscribed to the run's invalidations: L1 only while `shared` is live.
    Subscribed {
        shared: Arc<Shared>,
        registration: Registration,
    },
    /// Guarded fills without a subscription for this run namespace: L1 is never used.
    Unsubscribed,
}

/// What the subscriber needs of a guarded cache: its key space, L1 and lookups in flight.
struct CacheEvictor<K, V> {
    keys: KeySpace,
    l1: Option<moka::future::Cache<K, L1Entry<V>>>,
    flights: Arc<Flights<K, V>>,
}

impl<K, V> Evictor for CacheEvictor<K, V>
where
    K: FromStr + Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn evict<'a>(&'a self, keys: &'a [String]) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            for full in keys {
                let Some(key) = self.keys.key_part(full).and_then(|k| k.parse::<K>().ok()) else {
                    continue; // another namespace's key
                };
                self.flights.invalidate(&key);
                if let Some(l1) = &self.l1 {
                    l1.invalidate(&key).await;
                }
            }
        })
    }

    fn flush(&self) {
        if let Some(l1) = &self.l1 {
            l1.invalidate_all();
        }
    }
}

/// A two-level cache of `V` by `K` in one namespace.
///
/// Redis commands, per call (`n` = distinct keys not served by L1 or by waiting for another
/// caller's lookup of the same key; a loader that finds nothing is cached as "missing"),
/// without guarded fills (`words`, `sessions`, `prefs`):
///
/// | call | commands |
/// |---|---|
/// | [`get_or_load`](Self::get_or_load), L1 hit or coalesced | none |
/// | [`get_or_load`](Self::get_or_load), L2 hit (value or "missing") | `GET` |
/// | [`get_or_load`](Self::get_or_load), miss | `GET`, then `SET key bytes EX ttl` |
/// | [`get_many_or_load`](Self::get_many_or_load), `n = 0` | none |
/// | [`get_many_or_load`](Self::get_many_or_load), `m` of `n` missing in L2 | one `MGET` of `n` keys, then (if `m > 0`) `m` × `SET .. EX` in one pipelined round trip |
/// | [`invalidate`](Self::invalidate) / [`invalidate_many`](Self::invalidate_many) | one `DEL` of the distinct keys (none for an empty list) |
/// | any read that reaches Redis after an invalidation's `DEL` failed | first one `DEL` of the keys not yet confirmed deleted |
///
/// With guarded fills (`due`, `progress`; `INFO commandstats` also counts the commands a
/// script runs, listed in brackets):
///
/// | call | commands |
/// |---|---|
/// | [`get_or_load`](Self::get_or_load), L1 hit or coalesced | none |
/// | [`get_or_load`](Self::get_or_load), L2 hit (value or "missing") | `MGET key generation` |
/// | [`get_or_load`](Self::get_or_load), miss | `MGET key generation`, then `EVALSHA` fill [`GET` generation, `SET key bytes EX ttl` unless the generation changed] |
/// | [`get_many_or_load`](Self::get_many_or_load), `n = 0` | none |
/// | [`get_many_or_load`](Self::get_many_or_load), `m` of `n` missing in L2 | one `MGET` of `2n` keys (each key and its generation), then (if `m > 0`) one `EVALSHA` fill [`m` × `GET`, up to `m` × `SET .. EX`] |
/// | [`invalidate`](Self::invalidate) / [`invalidate_many`](Self::invalidate_many) | one `EVALSHA` [one `DEL` of the distinct keys (one per 4,096 of them), per key `INCR` + `PEXPIRE` of its generation, one `PUBLISH`] (none for an empty list) |
/// | any read that reaches Redis after an invalidation failed | first that `EVALSHA` for the keys not yet confirmed invalidated |
///
/// L1 of a guarded namespace is used only while the [`RedisL2`]'s invalidation subscription
/// for this run namespace is live ([`RedisL2::connect_subscribed`]); without it every read
/// goes to Redis. A lookup whose key is invalidated while it is in flight skips its fill and
/// L1 fill (with guarded fills, Redis also refuses the fill when another process invalidated
/// the key). A command is sent a second time only when the connection was found dead (see
/// [`RedisL2`]); a failed operation returns `Err` and fills nothing.
pub struct TypedCache<K, V> {
    config: NamespaceConfig,
    keys: KeySpace,
    l1: Option<moka::future::Cache<K, L1Entry<V>>>,
    l2: RedisL2,
    flights: Arc<Flights<K, V>>,
    coherence: Coherence,
    /// `{run}:invalidations`, where guarded invalidations are published.
    channel: String,
    counters: Counters,
    /// Keys whose invalidation failed: Redis may still hold a value that is stale, so before
    /// this process reads Redis again it invalidates them again (only after a failure).
    unconfirmed: std::sync::Mutex<HashSet<K>>,
}

impl<K, V> std::fmt::Debug for TypedCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedCache")
            .field("config", &self.config)
            .field("prefix", &self.keys.prefix())
            .field("stats", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

impl<K, V> TypedCache<K, V>
where
    K: Display + FromStr + Hash + Eq + Clone + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A cache of the namespace `config` describes, with keys under `run_namespace` (the
    /// harness's per-run prefix, `Settings::cache_namespace`), sharing the connection `l2`.
    /// With guarded fills, its L1 is used only if `l2` is subscribed to the invalidations of
    /// `run_namespace` ([`RedisL2::connect_subscribed`]); keys must then read back from their
    /// `Display` form (`FromStr`), as the subscriber receives them as text.
    pub fn new(
        run_namespace: &str,
        config: NamespaceConfig,
        l2: RedisL2,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let l1 = config.l1_enabled().then(|| {
            moka::future::Cache::builder()
                .name(config.name)
                .max_capacity(config.l1_capacity)
                // LRU, not TinyLFU: what L1 holds then depends only on the order of reads, not
                // on a frequency sketch's admission decisions, so hit counts are repeatable.
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(PerEntryTtl)
                .build()
        });
        let keys = KeySpace::new(run_namespace, &config);
        let flights = Arc::new(Flights::new());
        let coherence = match l2.coherence() {
            _ if !config.guarded_fills => Coherence::Local,
            Some(shared) if shared.run_namespace() == run_namespace => {
                let evictor = Arc::new(CacheEvictor {
                    keys: keys.clone(),
                    l1: l1.clone(),
                    flights: Arc::clone(&flights),
                });
                Coherence::Subscribed {
                    shared: Arc::clone(shared),
                    registration: shared.register(evictor),
                }
            }
            _ => Coherence::Unsubscribed,
        };
        Ok(Self {
            keys,
            config,
            l1,
            l2,
            flights,
            coherence,
            channel: invalidation_channel(run_namespace),
            counters: Counters::default(),
            unconfirmed: std::sync::Mutex::new(HashSet::new()),
        })
    }

    pub fn config(&self) -> &NamespaceConfig {
        &self.config
    }

    /// The namespace's name (its segment in the keys).
    pub fn name(&self) -> &'static str {
        self.config.name
    }

    /// The Redis key of `key`: `{run}:{namespace}:v{format}.{schema}:{key}`.
    pub fn redis_key(&self, key: &K) -> String {
        self.keys.key(key).full
    }

    /// The connection this cache shares.
    pub fn l2(&self) -> &RedisL2 {
        &self.l2
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot()
    }

    /// Empties this process's L1 (Redis is untouched): the next reads behave as in a fresh
    /// process.
    pub fn clear_l1(&self) {
        if let Some(l1) = &self.l1 {
            l1.invalidate_all();
        }
    }

    /// Cache-aside read of one key: L1, then Redis (`GET`), then `loader`, whose answer (a
    /// value, or `None` = "missing", cached with the shorter negative TTL) is written to Redis
    /// (`SET .. EX`, jittered TTL) and L1. Concurrent calls for the same key in this process
    /// share one lookup: one `GET`, at most one `loader` call. `Err` when Redis fails (or does
    /// not answer in time), a cached value cannot be decoded, or the loader fails.
    pub async fn get_or_load<F, Fut, E>(
        &self,
        key: &K,
        loader: F,
    ) -> Result<Option<Arc<V>>, CacheError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        if let Some(value) = self.l1_get(key).await {
            return Ok(value);
        }
        let leader = loop {
            match self.flights.join(key) {
                Join::Lead(leader) => break leader,
                Join::Wait(waiter) => {
                    if let Some(outcome) = waiter.outcome().await {
                        if outcome.is_ok() {
                            Counters::bump(&self.counters.coalesced);
                        }
                        return self.counted(outcome);
                    }
                    // The lookup we waited for was cancelled: start over.
                }
            }
        };
        let outcome = self.lead_one(&leader, loader).await;
        leader.complete(outcome.clone());
        self.counted(outcome)
    }

    /// Cache-aside read of many keys (e.g. the words of a list): L1 per key, one `MGET` for
    /// the rest, one `loader` call with the keys still missing (it returns the `(key, value)`
    /// pairs it found; keys it does not return are cached as "missing"), and one pipelined
    /// round trip of `SET .. EX` for what it loaded. Returns the values in the order of `keys`
    /// (duplicates allowed, looked up once). Keys whose lookup another call has in flight are
    /// waited for, not read again. `loader` is called at most once, except after such a lookup
    /// was cancelled, when the keys it held are looked up again (another `MGET`, and a
    /// `loader` call if some are missing).
    pub async fn get_many_or_load<F, Fut, I, E>(
        &self,
        keys: &[K],
        mut loader: F,
    ) -> Result<Vec<Option<Arc<V>>>, CacheError>
    where
        F: FnMut(Vec<K>) -> Fut,
        Fut: Future<Output = Result<I, E>>,
        I: IntoIterator<Item = (K, V)>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let result = self.get_many(keys, &mut loader).await;
        self.counted(result)
    }

    /// Removes `key` from L1 and Redis (`DEL`); `Ok(true)` when Redis had it. Also when Redis
    /// fails, this process's L1 entry and any lookup of the key in flight are dropped.
    pub async fn invalidate(&self, key: &K) -> Result<bool, CacheError> {
        Ok(self.invalidate_many(std::slice::from_ref(key)).await? > 0)
    }

    /// Removes `keys` from L1 and Redis in one `DEL` (guarded fills: one `EVALSHA` that also
    /// bumps their generations and publishes them to every process); the number of keys
    /// Redis had.
    pub async fn invalidate_many(&self, keys: &[K]) -> Result<u64, CacheError> {
        let mut seen = HashSet::with_capacity(keys.len());
        let unique: Vec<&K> = keys.iter().filter(|key| seen.insert(*key)).collect();
        if unique.is_empty() {
            return Ok(0);
        }
        let deleted = self.delete_in_redis(&unique).await;
        // After the DEL (whatever it answered): a lookup that read Redis before it is marked so
        // that it fills neither level, and the L1 copy goes.
        for key in &unique {
            self.flights.invalidate(key);
            if let Some(l1) = &self.l1 {
                l1.invalidate(*key).await;
            }
        }
        Counters::add(&self.counters.invalidations, unique.len() as u64);
        {
            let mut unconfirmed = self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner());
            for key in &unique {
                if deleted.is_ok() {
                    unconfirmed.remove(*key);
                } else {
                    unconfirmed.insert((*key).clone());
                }
            }
        }
        self.counted(deleted)
    }

    /// One `DEL` of `keys`, or with guarded fills one `EVALSHA` of the invalidation script;
    /// the number of keys Redis removed.
    async fn delete_in_redis(&self, keys: &[&K]) -> Result<u64, CacheError> {
        let redis_keys: Vec<String> = keys.iter().map(|key| self.keys.key(*key).full).collect();
        let refs: Vec<&str> = redis_keys.iter().map(String::as_str).collect();
        Counters::bump(&self.counters.redis_commands);
        Counters::bump(&self.counters.redis_round_trips);
        if !self.config.guarded_fills {
            return self
                .l2
                .del(&refs)
                .await
                .map_err(|source| self.redis_error("DEL", source));
        }
        let generation_keys: Vec<String> = keys
            .iter()
            .map(|key| self.keys.generation_key(*key))
            .collect();
        let generation_refs: Vec<&str> = generation_keys.iter().map(String::as_str).collect();
        let (instance, registration) = match &self.coherence {
            Coherence::Subscribed { registration, .. } => registration.sender(),
            _ => (0, 0),
        };
        let message = Message {
            instance,
            registration,
            keys: refs.clone(),
        };
        let message = codec::encode(&message).map_err(|source| CacheError::Codec {
            namespace: self.config.name,
            source,
        })?;
        self.l2
            .invalidate_guarded(
                &refs,
                &generation_refs,
                self.config.generation_ttl(),
                &self.channel,
                &message,
            )
            .await
            .map_err(|source| self.redis_error("EVALSHA", source))
    }

    /// Invalidates again the keys whose invalidation failed (one `DEL` or, guarded, one
    /// `EVALSHA`, sent only after such a failure),
    /// so that a stale value a racing reader put into Redis is never served. `Err` while Redis
    /// still does not answer: the caller must not read Redis then.
    async fn delete_unconfirmed(&self) -> Result<(), CacheError> {
        let keys: Vec<K> = {
            let unconfirmed = self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner());
            if unconfirmed.is_empty() {
                return Ok(());
            }
            unconfirmed.iter().cloned().collect()
        };
        let refs: Vec<&K> = keys.iter().collect();
        self.delete_in_redis(&refs).await?;
        let mut unconfirmed = self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner());
        for key in &keys {
            unconfirmed.remove(key);
        }
        Ok(())
    }

    /// L1's answer for `key`, counted; `None` when L1 is off, not trusted (guarded, and the
    /// subscription is not live) or does not have it.
    async fn l1_get(&self, key: &K) -> Option<Option<Arc<V>>> {
        let l1 = self.l1.as_ref()?;
        if !self.l1_trusted() {
            return None;
        }
        let entry = l1.get(key).await?;
        let counter = if entry.value.is_some() {
            &self.counters.l1_hits
        } else {
            &self.counters.l1_negative_hits
        };
        Counters::bump(counter);
        Some(entry.value)
    }

    /// Whether L1 may be read now: one atomic load for a guarded namespace.
    #[inline]
    fn l1_trusted(&self) -> bool {
        match &self.coherence {
            Coherence::Local => true,
            Coherence::Subscribed { shared, .. } => shared.is_live(),
            Coherence::Unsubscribed => false,
        }
    }

    /// The subscription's epoch now (0 when there is none): a lookup notes it before it
    /// reads Redis, and fills L1 only if it is unchanged at fill time.
    fn epoch(&self) -> u64 {
        match &self.coherence {
            Coherence::Subscribed { shared, .. } => shared.epoch(),
            _ => 0,
        }
    }

    /// Whether a lookup that noted `epoch` before reading Redis may fill L1 now.
    fn l1_fillable(&self, epoch: u64) -> bool {
        match &self.coherence {
            Coherence::Local => true,
            Coherence::Subscribed { shared, .. } => shared.is_live() && shared.epoch() == epoch,
            Coherence::Unsubscribed => false,
        }
    }

    /// The lookup of one key by the caller that leads it.
    ///
    /// Over 80 lines because it is measured code: its instruction counts (the `instructions`
    /// benchmarks of the cache layer) are the baseline branch's history, and a split changes
    /// the generated code and so the counts, which would show as a change point without any
    /// change of behaviour. The steps are commented in order instead.
    async fn lead_one<F, Fut, E>(&self, leader: &Leader<'_, K, V>, loader: F) -> Outcome<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let epoch = self.epoch();
        // A lookup that finished just before this one started may have filled L1.
        if let Some(value) = self.l1_get(leader.key()).await {
            return Ok(value);
        }
        self.delete_unconfirmed().await?;
        let key = self.keys.key(leader.key());
        let guarded = self.config.guarded_fills;
        let generation_key = guarded.then(|| self.keys.generation_key(leader.key()));
        Counters::bump(&self.counters.redis_commands);
        Counters::bump(&self.counters.redis_round_trips);
        let (cached, generation) = match &generation_key {
            None => {
                let cached = self
                    .l2
                    .get(&key.full)
                    .await
                    .map_err(|source| self.redis_error("GET", source))?;
                (cached, None)
            }
            Some(generation_key) => {
                let pair = self
                    .l2
                    .mget(&[&key.full, generation_key])
                    .await
                    .map_err(|source| self.redis_error("MGET", source))?;
                let [cached, generation] = <[_; 2]>::try_from(pair)
                    .map_err(|_| self.redis_error("MGET", mget_length_error()))?;
                (cached, generation)
            }
        };
        if let Some(bytes) = cached {
            let entry = self.decode(&bytes)?;
            self.count_l2_hit(&entry);
            self.fill_l1(leader, &key, &entry, epoch).await;
            return Ok(entry);
        }
        Counters::bump(&self.counters.misses);
        Counters::bump(&self.counters.loads);
        let entry = loader()
            .await
            .map_err(|source| self.load_error(source))?
            .map(Arc::new);
        if entry.is_none() {
            Counters::bump(&self.counters.negative_fills);
        }
        if !leader.is_invalidated() {
            let value = self.encode(entry.as_deref())?;
            let ttl_secs = entry_ttls(&self.config, key.hash, entry.is_none()).l2_secs;
            Counters::bump(&self.counters.redis_commands);
            Counters::bump(&self.counters.redis_round_trips);
            let stored = match &generation_key {
                None => {
                    let item = SetItem {
                        key: &key.full,
                        value,
                        ttl_secs,
                    };
                    self.l2
                        .set_ex(&[item])
                        .await
                        .map_err(|source| self.redis_error("SET", source))?;
                    true
                }
                Some(generation_key) => {
                    let item = GuardedSetItem {
                        key: &key.full,
                        generation_key,
                        value,
                        ttl_secs,
                        seen_generation: generation.as_deref(),
                    };
                    let stored = self
                        .l2
                        .fill_guarded(&[item])
                        .await
                        .map_err(|source| self.redis_error("EVALSHA", source))?;
                    stored.first().copied().unwrap_or(false)
                }
            };
            // Refused: another process invalidated the key since the read; what was loaded
            // may predate its write, so it goes into neither level.
            if stored {
                self.fill_l1(leader, &key, &entry, epoch).await;
            }
        }
        Ok(entry)
    }

    async fn get_many<F, Fut, I, E>(
        &self,
        keys: &[K],
        loader: &mut F,
    ) -> Result<Vec<Option<Arc<V>>>, CacheError>
    where
        F: FnMut(Vec<K>) -> Fut,
        Fut: Future<Output = Result<I, E>>,
        I: IntoIterator<Item = (K, V)>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        // Distinct keys in first-seen order, and where each input key is among them.
        let mut index: HashMap<&K, usize> = HashMap::with_capacity(keys.len());
        let mut unique: Vec<&K> = Vec::with_capacity(keys.len());
        let positions: Vec<usize> = keys
            .iter()
            .map(|key| {
                *index.entry(key).or_insert_with(|| {
                    unique.push(key);
                    unique.len() - 1
                })
            })
            .collect();
        let mut found: Vec<Option<Option<Arc<V>>>> = vec![None; unique.len()];
        let mut pending = Vec::new();
        for (i, key) in unique.iter().enumerate() {
            match self.l1_get(key).await {
                Some(value) => found[i] = Some(value),
                None => pending.push(i),
            }
        }
        if !pending.is_empty() {
            self.delete_unconfirmed().await?;
        }
        while !pending.is_empty() {
            let joins = self.flights.join_many(pending.iter().map(|&i| unique[i]));
            let mut leaders = Vec::new();
            let mut waiters = Vec::new();
            for (&i, join) in pending.iter().zip(joins) {
                match join {
                    Join::Lead(leader) => leaders.push((i, leader)),
                    Join::Wait(waiter) => waiters.push((i, waiter)),
                }
            }
            // Lead first, wait after: a caller never waits while holding keys others wait for.
            for (i, value) in self.lead_many(leaders, loader).await? {
                found[i] = Some(value);
            }
            pending.clear();
            for (i, waiter) in waiters {
                match waiter.outcome().await {
                    Some(outcome) => {
                        found[i] = Some(outcome?);
                        Counters::bump(&self.counters.coalesced);
                    }
                    None => pending.push(i),
                }
            }
        }
        Ok(positions
            .into_iter()
            .map(|i| found[i].clone().flatten())
            .collect())
    }

    /// The lookups of several keys by the caller that leads them all; completes every leader.
    async fn lead_many<F, Fut, I, E>(
        &self,
        leaders: Vec<(usize, Leader<'_, K, V>)>,
        loader: &mut F,
    ) -> Result<Vec<(usize, Option<Arc<V>>)>, CacheError>
    where
        F: FnMut(Vec<K>) -> Fut,
        Fut: Future<Output = Result<I, E>>,
        I: IntoIterator<Item = (K, V)>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let epoch = self.epoch();
        let mut done = Vec::with_capacity(leaders.len());
        let mut remaining = Vec::with_capacity(leaders.len());
        for (i, leader) in leaders {
            // Lookups that finished just before these started may have filled L1.
            match self.l1_get(leader.key()).await {
                Some(value) => {
                    leader.complete(Ok(value.clone()));
                    done.push((i, value));
                }
                None => remaining.push((i, leader)),
            }
        }
        if remaining.is_empty() {
            return Ok(done);
        }
        match self.fetch_many(&remaining, loader, epoch).await {
            Ok(entries) => {
                for ((i, leader), entry) in remaining.into_iter().zip(entries) {
                    leader.complete(Ok(entry.clone()));
                    done.push((i, entry));
                }
                Ok(done)
            }
            Err(error) => {
                for (_, leader) in remaining {
                    leader.complete(Err(error.clone()));
                }
                Err(error)
            }
        }
    }

    /// `MGET`, the loader for what Redis lacks, one round trip of fills (a pipeline of
    /// `SET .. EX`, or guarded one `EVALSHA`), L1 fills: the entries of `leaders`, in their
    /// order.
    ///
    /// Over 80 lines because it is measured code: its instruction counts (the `instructions`
    /// benchmarks of the cache layer) are the baseline branch's history, and a split changes
    /// the generated code and so the counts, which would show as a change point without any
    /// change of behaviour. The steps are commented in order instead.
    async fn fetch_many<F, Fut, I, E>(
        &self,
        leaders: &[(usize, Leader<'_, K, V>)],
        loader: &mut F,
        epoch: u64,
    ) -> Result<Vec<Option<Arc<V>>>, CacheError>
    where
        F: FnMut(Vec<K>) -> Fut,
        Fut: Future<Output = Result<I, E>>,
        I: IntoIterator<Item = (K, V)>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let keys: Vec<RedisKey> = leaders
            .iter()
            .map(|(_, leader)| self.keys.key(leader.key()))
            .collect();
        let guarded = self.config.guarded_fills;
        let generation_keys: Vec<String> = if guarded {
            leaders
                .iter()
                .map(|(_, leader)| self.keys.generation_key(leader.key()))
                .collect()
        } else {
            Vec::new()
        };
        // Guarded: each key followed by its generation key, in one MGET.
        let refs: Vec<&str> = if guarded {
            keys.iter()
                .zip(&generation_keys)
                .flat_map(|(key, generation)| [key.full.as_str(), generation.as_str()])
                .collect()
        } else {
            keys.iter().map(|key| key.full.as_str()).collect()
        };
        Counters::bump(&self.counters.redis_commands);
        Counters::bump(&self.counters.redis_round_trips);
        let answered = self
            .l2
            .mget(&refs)
            .await
            .map_err(|source| self.redis_error("MGET", source))?;
        if answered.len() != refs.len() {
            return Err(self.redis_error("MGET", mget_length_error()));
        }
        let (cached, generations): (Vec<MaybeBytes>, Vec<MaybeBytes>) = if guarded {
            let mut cached = Vec::with_capacity(keys.len());
            let mut generations = Vec::with_capacity(keys.len());
            let mut answered = answered.into_iter();
            while let (Some(value), Some(generation)) = (answered.next(), answered.next()) {
                cached.push(value);
                generations.push(generation);
            }
            (cached, generations)
        } else {
            (answered, Vec::new())
        };
        // Entries that may go into L1 (not: loaded values whose guarded fill was refused).
        let mut fill_l1 = vec![true; keys.len()];
        let mut entries: Vec<Option<Option<Arc<V>>>> = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (j, bytes) in cached.into_iter().enumerate() {
            match bytes {
                Some(bytes) => {
                    let entry = self.decode(&bytes)?;
                    self.count_l2_hit(&entry);
                    entries.push(Some(entry));
                }
                None => {
                    entries.push(None);
                    missing.push(j);
                }
            }
        }
        if !missing.is_empty() {
            Counters::add(&self.counters.misses, missing.len() as u64);
            Counters::bump(&self.counters.loads);
            let wanted: Vec<K> = missing
                .iter()
                .map(|&j| leaders[j].1.key().clone())
                .collect();
            let mut loaded: HashMap<K, V> = loader(wanted)
                .await
                .map_err(|source| self.load_error(source))?
                .into_iter()
                .collect();
            let mut items = Vec::with_capacity(missing.len());
            let mut guarded_items = Vec::new();
            let mut guarded_of = Vec::new();
            for &j in &missing {
                let leader = &leaders[j].1;
                let entry = loaded.remove(leader.key()).map(Arc::new);
                if entry.is_none() {
                    Counters::bump(&self.counters.negative_fills);
                }
                if !leader.is_invalidated() {
                    let value = self.encode(entry.as_deref())?;
                    let ttl_secs = entry_ttls(&self.config, keys[j].hash, entry.is_none()).l2_secs;
                    if guarded {
                        guarded_items.push(GuardedSetItem {
                            key: &keys[j].full,
                            generation_key: &generation_keys[j],
                            value,
                            ttl_secs,
                            seen_generation: generations[j].as_deref(),
                        });
                        guarded_of.push(j);
                    } else {
                        items.push(SetItem {
                            key: &keys[j].full,
                            value,
                            ttl_secs,
                        });
                    }
                }
                entries[j] = Some(entry);
            }
            if !items.is_empty() {
                Counters::add(&self.counters.redis_commands, items.len() as u64);
                Counters::bump(&self.counters.redis_round_trips);
                self.l2
                    .set_ex(&items)
                    .await
                    .map_err(|source| self.redis_error("SET", source))?;
            }
            if !guarded_items.is_empty() {
                Counters::bump(&self.counters.redis_commands);
                Counters::bump(&self.counters.redis_round_trips);
                let stored = self
                    .l2
                    .fill_guarded(&guarded_items)
                    .await
                    .map_err(|source| self.redis_error("EVALSHA", source))?;
                for (j, stored) in guarded_of.into_iter().zip(stored) {
                    fill_l1[j] = stored;
                }
            }
        }
        let entries: Vec<Option<Arc<V>>> = entries.into_iter().map(Option::flatten).collect();
        for (j, ((_, leader), (key, entry))) in
            leaders.iter().zip(keys.iter().zip(&entries)).enumerate()
        {
            if fill_l1[j] {
                self.fill_l1(leader, key, entry, epoch).await;
            }
        }
        Ok(entries)
    }

    /// Puts a looked-up entry into L1, unless its key was invalidated meanwhile or (guarded)
    /// the subscription is not live or was re-established since the lookup noted `epoch`
    /// (checked before and after the insert, so a concurrent invalidation or flush always
    /// wins).
    async fn fill_l1(
        &self,
        leader: &Leader<'_, K, V>,
        key: &RedisKey,
        entry: &Option<Arc<V>>,
        epoch: u64,
    ) {
        let Some(l1) = &self.l1 else { return };
        if leader.is_invalidated() || !self.l1_fillable(epoch) {
            return;
        }
        let ttl = entry_ttls(&self.config, key.hash, entry.is_none()).l1;
        let value = entry.clone();
        l1.insert(leader.key().clone(), L1Entry { value, ttl })
            .await;
        if leader.is_invalidated() || !self.l1_fillable(epoch) {
            l1.invalidate(leader.key()).await;
        }
    }

    fn count_l2_hit(&self, entry: &Option<Arc<V>>) {
        let counter = if entry.is_some() {
            &self.counters.l2_hits
        } else {
            &self.counters.l2_negative_hits
        };
        Counters::bump(counter);
    }

    fn counted<T>(&self, result: Result<T, CacheError>) -> Result<T, CacheError> {
        if result.is_err() {
            Counters::bump(&self.counters.errors);
        }
        result
    }

    fn decode(&self, bytes: &[u8]) -> Result<Option<Arc<V>>, CacheError> {
        codec::decode_entry(bytes)
            .map(|entry| entry.map(Arc::new))
            .map_err(|source| CacheError::Codec {
                namespace: self.config.name,
                source,
            })
    }

    fn encode(&self, value: Option<&V>) -> Result<Vec<u8>, CacheError> {
        codec::encode_entry(value).map_err(|source| CacheError::Codec {
            namespace: self.config.name,
            source,
        })
    }

    fn redis_error(&self, command: &'static str, source: RedisError) -> CacheError {
        CacheError::Redis {
            namespace: self.config.name,
            command,
            source,
        }
    }

    fn load_error(&self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> CacheError {
        CacheError::Load {
            namespace: self.config.name,
            source: Arc::from(source.into()),
        }
    }
}

fn mget_length_error() -> RedisError {
    RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "MGET answered a different number of values than keys asked",
    ))
}
