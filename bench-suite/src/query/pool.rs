//! Opening the service's connection pool.
//!
//! This module must never run queries of its own beyond what sqlx does to connect: the
//! harness counts every statement a scenario sends.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// How the pool is sized and how long callers wait for a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// Connections opened up front and kept open.
    pub min_connections: u32,
    /// How long an operation waits for a free connection before failing with
    /// `sqlx::Error::PoolTimedOut`.
    pub acquire_timeout: Duration,
    /// Prepared statements kept per connection.
    pub statement_cache_capacity: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 4,
            min_connections: 1,
            acquire_timeout: Duration::from_secs(10),
            statement_cache_capacity: 256,
        }
    }
}

/// Opens the service's connection pool with `max_connections` and the other defaults.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    connect_with(
        database_url,
        &PoolSettings {
            max_connections,
            ..PoolSettings::default()
        },
    )
    .await
}

/// Opens a connection pool as `settings` say.
pub async fn connect_with(
    database_url: &str,
    settings: &PoolSettings,
) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = database_url.parse()?;
    PgPoolOptions::new()
        .max_connections(settings.max_connections.max(1))
        .min_connections(
            settings
                .min_connections
                .min(settings.max_connections.max(1)),
        )
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options.statement_cache_capacity(settings.statement_cache_capacity))
        .await
}
