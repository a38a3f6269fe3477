//! The service layer: what an HTTP handler would call. It combines the query layer and the
//! cache layer; the harness's scenarios and wall-time benchmarks run through it.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::cache::{CacheError, NamespaceConfig, TwoLevelCache, connect_redis};
use crate::model::{DueCursor, DuePage, Word};
use crate::query;
use crate::settings::Settings;

/// Knobs of a service instance.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Entries of the word-definition L1; 0 turns L1 off.
    pub word_l1_capacity: u64,
    pub pool_size: u32,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            word_l1_capacity: 10_000,
            pool_size: 4,
        }
    }
}

/// The vocabulary service.
pub struct Service {
    pool: PgPool,
    words: TwoLevelCache<Word>,
}

impl Service {
    /// Connects to Postgres and Redis as `settings` say.
    pub async fn connect(settings: &Settings, options: &ServiceOptions) -> anyhow::Result<Self> {
        let pool = query::connect(&settings.database_url, options.pool_size).await?;
        let redis = connect_redis(&settings.redis_url).await?;
        let words = TwoLevelCache::new(
            NamespaceConfig {
                prefix: format!("{}:word:v1", settings.cache_namespace),
                l1_capacity: options.word_l1_capacity,
                l1_ttl: Duration::from_secs(24 * 3600),
                l2_ttl: Duration::from_secs(24 * 3600),
            },
            redis,
        );
        Ok(Self { pool, words })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn word_cache(&self) -> &TwoLevelCache<Word> {
        &self.words
    }

    /// A word's definition, cache-aside through L1 and Redis.
    pub async fn word_lookup(&self, word_id: i64) -> Result<Option<Arc<Word>>, CacheError> {
        let pool = &self.pool;
        self.words
            .get_or_load(word_id, || query::word_by_id(pool, word_id))
            .await
    }

    /// One page of a user's due list (the query layer only: due lists change on every review).
    pub async fn due_cards(
        &self,
        user_id: i64,
        after: Option<DueCursor>,
    ) -> Result<DuePage, sqlx::Error> {
        query::due_cards(&self.pool, user_id, crate::fixed_now(), after).await
    }
}
