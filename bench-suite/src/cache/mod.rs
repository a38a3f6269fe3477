//! The cache layer: cache-aside reads through an in-process L1 (moka: bounded, per-entry
//! TTLs) and Redis as L2 (one multiplexed, reconnecting connection), one [`TypedCache`] per
//! namespace, with single-flight, negative caching, batched reads (`MGET` + one pipelined
//! round trip of `SET .. EX`), invalidation, deterministic TTL jitter and counters. Namespaces
//! with guarded fills (those that writes invalidate) are coherent across processes: their
//! invalidations are published to every process's L1 over Redis pub/sub (`coherence`), and
//! generation keys make Redis refuse a fill that raced another process's invalidation (see
//! [`TypedCache`]).
//!
//! Keys are `{run namespace}:{namespace}:v{format}.{schema}:{key}`; values are encoded by
//! [`crate::codec`]. Every Redis command an operation sends is documented on [`TypedCache`]:
//! the harness counts them exactly.
//!
//! This layer must never talk to the database (loaders are the caller's), never send a Redis
//! command an operation does not document, and never hide a failure: Redis, codec and loader
//! errors reach the caller as [`CacheError`].

mod coherence;
mod config;
mod error;
mod flight;
mod key;
mod l2;
mod redis_options;
mod stats;
mod typed;

pub use config::{
    ConfigError, DEFAULT_JITTER_PERMILLE, DEFAULT_NEGATIVE_TTL, MAX_JITTER_PERMILLE, Namespace,
    NamespaceConfig,
};
pub use error::{CacheError, LoadError};
pub use key::{
    EntryTtls, KeySpace, RedisKey, entry_ttls, invalidation_channel, jitter_permille, jittered,
    key_hash,
};
pub use l2::{DEL_CHUNK, RedisL2};
pub use redis_options::RedisOptions;
pub use stats::CacheStats;
pub use typed::TypedCache;
