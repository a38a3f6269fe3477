//! Connection settings of the system under test, read from the environment the harness sets.
//! Nothing here starts or stops a server.

use anyhow::{Context, Result};

/// Where the service's Postgres and Redis are, and which cache namespace it uses.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub redis_url: String,
    /// Prefix of every cache key. The harness gives each scenario its own namespace, so a
    /// scenario always starts with a cold L2 without flushing a Redis it may not own.
    pub cache_namespace: String,
}

impl Settings {
    /// Reads `DATABASE_URL`, `REDIS_URL` and `PERF_CACHE_NAMESPACE` (default `perf`).
    pub fn from_env() -> Result<Self> {
        let hint = "run through `cargo xtask perf`, which starts Postgres and Redis and sets it";
        Ok(Self {
            database_url: std::env::var("DATABASE_URL")
                .with_context(|| format!("DATABASE_URL is not set; {hint}"))?,
            redis_url: std::env::var("REDIS_URL")
                .with_context(|| format!("REDIS_URL is not set; {hint}"))?,
            cache_namespace: std::env::var("PERF_CACHE_NAMESPACE")
                .unwrap_or_else(|_| "perf".to_owned()),
        })
    }
}
