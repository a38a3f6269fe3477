//! The typed cache of one namespace: cache-aside reads through L1 (moka, per-entry TTLs, LRU)
//! and L2 (Redis) with single-flight and negative caching, batched reads, and invalidation.
//!
//! This module must never send a Redis command beyond those documented on each operation
//! (the harness counts them exactly), never swallow an error of Redis, the codec or a loader,
//! and never put into either level a value read before an invalidation of its key that this
//! process saw.

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::policy::EvictionPolicy;
use redis::RedisError;
use serde::{Serialize, de::DeserializeOwned};

use super::config::{ConfigError, NamespaceConfig};
use super::error::CacheError;
use super::flight::{Flights, Join, Leader, Outcome};
use super::key::{KeySpace, RedisKey, entry_ttls};
use super::l2::{RedisL2, SetItem};
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

/// A two-level cache of `V` by `K` in one namespace.
///
/// Redis commands, per call (`n` = distinct keys not served by L1 or by waiting for another
/// caller's lookup of the same key; a loader that finds nothing is cached as "missing"):
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
/// A lookup whose key is invalidated while it is in flight skips its `SET` and L1 fill. A
/// command is sent a second time only when the connection was found dead (see
/// [`RedisL2`]); a failed operation returns `Err` and fills nothing.
pub struct TypedCache<K, V> {
    config: NamespaceConfig,
    keys: KeySpace,
    l1: Option<moka::future::Cache<K, L1Entry<V>>>,
    l2: RedisL2,
    flights: Flights<K, V>,
    counters: Counters,
    /// Keys whose `DEL` failed: Redis may still hold a value that is stale, so before this
    /// process reads Redis again it deletes them (one more `DEL`, only after a failure).
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
    K: Display + Hash + Eq + Clone + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A cache of the namespace `config` describes, with keys under `run_namespace` (the
    /// harness's per-run prefix, `Settings::cache_namespace`), sharing the connection `l2`.
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
        Ok(Self {
            keys: KeySpace::new(run_namespace, &config),
            config,
            l1,
            l2,
            flights: Flights::new(),
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

    /// Removes `keys` from L1 and Redis in one `DEL`; the number of keys Redis had.
    pub async fn invalidate_many(&self, keys: &[K]) -> Result<u64, CacheError> {
        let mut seen = HashSet::with_capacity(keys.len());
        let unique: Vec<&K> = keys.iter().filter(|key| seen.insert(*key)).collect();
        if unique.is_empty() {
            return Ok(0);
        }
        let redis_keys: Vec<String> = unique.iter().map(|key| self.keys.key(*key).full).collect();
        let refs: Vec<&str> = redis_keys.iter().map(String::as_str).collect();
        Counters::bump(&self.counters.redis_commands);
        let deleted = self.l2.del(&refs).await;
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
        self.counted(deleted.map_err(|source| self.redis_error("DEL", source)))
    }

    /// Deletes the keys whose invalidation failed (one `DEL`, sent only after such a failure),
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
        let redis_keys: Vec<String> = keys.iter().map(|key| self.keys.key(key).full).collect();
        let refs: Vec<&str> = redis_keys.iter().map(String::as_str).collect();
        Counters::bump(&self.counters.redis_commands);
        self.l2
            .del(&refs)
            .await
            .map_err(|source| self.redis_error("DEL", source))?;
        let mut unconfirmed = self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner());
        for key in &keys {
            unconfirmed.remove(key);
        }
        Ok(())
    }

    /// L1's answer for `key`, counted; `None` when L1 is off or does not have it.
    async fn l1_get(&self, key: &K) -> Option<Option<Arc<V>>> {
        let entry = self.l1.as_ref()?.get(key).await?;
        let counter = if entry.value.is_some() {
            &self.counters.l1_hits
        } else {
            &self.counters.l1_negative_hits
        };
        Counters::bump(counter);
        Some(entry.value)
    }

    /// The lookup of one key by the caller that leads it.
    async fn lead_one<F, Fut, E>(&self, leader: &Leader<'_, K, V>, loader: F) -> Outcome<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        // A lookup that finished just before this one started may have filled L1.
        if let Some(value) = self.l1_get(leader.key()).await {
            return Ok(value);
        }
        self.delete_unconfirmed().await?;
        let key = self.keys.key(leader.key());
        Counters::bump(&self.counters.redis_commands);
        let cached = self
            .l2
            .get(&key.full)
            .await
            .map_err(|source| self.redis_error("GET", source))?;
        if let Some(bytes) = cached {
            let entry = self.decode(&bytes)?;
            self.count_l2_hit(&entry);
            self.fill_l1(leader, &key, &entry).await;
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
            let item = SetItem {
                key: &key.full,
                value: self.encode(entry.as_deref())?,
                ttl_secs: entry_ttls(&self.config, key.hash, entry.is_none()).l2_secs,
            };
            Counters::bump(&self.counters.redis_commands);
            self.l2
                .set_ex(&[item])
                .await
                .map_err(|source| self.redis_error("SET", source))?;
            self.fill_l1(leader, &key, &entry).await;
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
        match self.fetch_many(&remaining, loader).await {
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

    /// `MGET`, the loader for what Redis lacks, one pipeline of `SET .. EX`, L1 fills: the
    /// entries of `leaders`, in their order.
    async fn fetch_many<F, Fut, I, E>(
        &self,
        leaders: &[(usize, Leader<'_, K, V>)],
        loader: &mut F,
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
        let refs: Vec<&str> = keys.iter().map(|key| key.full.as_str()).collect();
        Counters::bump(&self.counters.redis_commands);
        let cached = self
            .l2
            .mget(&refs)
            .await
            .map_err(|source| self.redis_error("MGET", source))?;
        if cached.len() != keys.len() {
            let source = RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "MGET answered a different number of values than keys asked",
            ));
            return Err(self.redis_error("MGET", source));
        }
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
            for &j in &missing {
                let leader = &leaders[j].1;
                let entry = loaded.remove(leader.key()).map(Arc::new);
                if entry.is_none() {
                    Counters::bump(&self.counters.negative_fills);
                }
                if !leader.is_invalidated() {
                    items.push(SetItem {
                        key: &keys[j].full,
                        value: self.encode(entry.as_deref())?,
                        ttl_secs: entry_ttls(&self.config, keys[j].hash, entry.is_none()).l2_secs,
                    });
                }
                entries[j] = Some(entry);
            }
            if !items.is_empty() {
                Counters::add(&self.counters.redis_commands, items.len() as u64);
                self.l2
                    .set_ex(&items)
                    .await
                    .map_err(|source| self.redis_error("SET", source))?;
            }
        }
        let entries: Vec<Option<Arc<V>>> = entries.into_iter().map(Option::flatten).collect();
        for ((_, leader), (key, entry)) in leaders.iter().zip(keys.iter().zip(&entries)) {
            self.fill_l1(leader, key, entry).await;
        }
        Ok(entries)
    }

    /// Puts a looked-up entry into L1, unless its key was invalidated meanwhile (checked
    /// before and after the insert, so a concurrent invalidation always wins).
    async fn fill_l1(&self, leader: &Leader<'_, K, V>, key: &RedisKey, entry: &Option<Arc<V>>) {
        let Some(l1) = &self.l1 else { return };
        if leader.is_invalidated() {
            return;
        }
        let ttl = entry_ttls(&self.config, key.hash, entry.is_none()).l1;
        let value = entry.clone();
        l1.insert(leader.key().clone(), L1Entry { value, ttl })
            .await;
        if leader.is_invalidated() {
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
