//! The cache layer: cache-aside reads through an in-process L1 (moka, bounded, with TTL) and
//! Redis as L2 (one multiplexed, reconnecting connection), with hit/miss/load counters.
//!
//! A value is looked up in L1, then L2, then loaded by the caller's loader; a loaded value is
//! written to L2 (with the namespace's TTL) and to L1.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Serialize, de::DeserializeOwned};

use crate::codec;

/// Errors of a cache read.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cached value could not be decoded: {0}")]
    Codec(#[from] serde_json::Error),
    #[error("loading the value failed: {0}")]
    Load(#[from] sqlx::Error),
}

/// How one namespace of the cache behaves.
#[derive(Debug, Clone)]
pub struct NamespaceConfig {
    /// Key prefix, e.g. `perf:word`.
    pub prefix: String,
    /// Entries kept in L1; 0 turns L1 off (every read goes to Redis).
    pub l1_capacity: u64,
    pub l1_ttl: Duration,
    pub l2_ttl: Duration,
}

/// Counters of one namespace: where reads were served from.
#[derive(Debug, Default)]
pub struct CacheCounters {
    pub l1_hits: AtomicU64,
    pub l2_hits: AtomicU64,
    pub loads: AtomicU64,
}

/// A two-level cache of values of one type.
pub struct TwoLevelCache<V> {
    config: NamespaceConfig,
    l1: Option<moka::future::Cache<i64, Arc<V>>>,
    redis: ConnectionManager,
    counters: CacheCounters,
}

impl<V> TwoLevelCache<V>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    pub fn new(config: NamespaceConfig, redis: ConnectionManager) -> Self {
        let l1 = (config.l1_capacity > 0).then(|| {
            moka::future::Cache::builder()
                .max_capacity(config.l1_capacity)
                .time_to_live(config.l1_ttl)
                .build()
        });
        Self {
            config,
            l1,
            redis,
            counters: CacheCounters::default(),
        }
    }

    /// The Redis key of `id` in this namespace.
    pub fn key(&self, id: i64) -> String {
        format!("{}:{id}", self.config.prefix)
    }

    pub fn counters(&self) -> &CacheCounters {
        &self.counters
    }

    /// Cache-aside read: L1, then L2, then `load` (whose value, if any, fills both levels).
    pub async fn get_or_load<F, Fut>(&self, id: i64, load: F) -> Result<Option<Arc<V>>, CacheError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, sqlx::Error>>,
    {
        if let Some(l1) = &self.l1
            && let Some(value) = l1.get(&id).await
        {
            self.counters.l1_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(value));
        }
        let key = self.key(id);
        let mut redis = self.redis.clone();
        let cached: Option<Vec<u8>> = redis.get(&key).await?;
        if let Some(bytes) = cached {
            self.counters.l2_hits.fetch_add(1, Ordering::Relaxed);
            let value = Arc::new(codec::decode::<V>(&bytes)?);
            if let Some(l1) = &self.l1 {
                l1.insert(id, Arc::clone(&value)).await;
            }
            return Ok(Some(value));
        }
        self.counters.loads.fetch_add(1, Ordering::Relaxed);
        let Some(loaded) = load().await? else {
            return Ok(None);
        };
        let bytes = codec::encode(&loaded)?;
        let () = redis
            .set_ex(&key, bytes, self.config.l2_ttl.as_secs())
            .await?;
        let value = Arc::new(loaded);
        if let Some(l1) = &self.l1 {
            l1.insert(id, Arc::clone(&value)).await;
        }
        Ok(Some(value))
    }
}

/// Opens the reconnecting Redis connection the caches share.
pub async fn connect_redis(redis_url: &str) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(redis_url)?;
    ConnectionManager::new(client).await
}
