//! The service layer: what an HTTP handler would call. It combines the query layer and the
//! cache layer; the harness's scenarios and wall-time benchmarks run through it.
//!
//! Cached (cache-aside, L1 + Redis): sessions, word definitions, progress statistics, the
//! first page of each due list, preferences. Read from the database every time: later due
//! pages, difficult cards, prefix search. A write (a review, an import) invalidates what it
//! changes, before the transaction (so a Redis outage fails the write before the database
//! changes) and again after it commits (so no reader that raced it keeps a stale copy).
//! Due lists and statistics are guarded namespaces: the invalidations also reach every other
//! process's L1 (pub/sub) and Redis refuses a fill that raced them (generation keys); see
//! [`crate::cache::TypedCache`].
//! This layer must never return a value it knows to be stale after its own write.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::cache::{CacheError, CacheStats, Namespace, RedisL2, RedisOptions, TypedCache};
use crate::model::{
    DifficultCard, DueCursor, DuePage, NewCard, Review, ReviewRequestId, Session, UserPreferences,
    UserStats, Word, WordHit,
};
use crate::query::{self, PoolSettings, ReviewError};
use crate::settings::Settings;
use crate::sm2::Grade;

/// Knobs of a service instance.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Entries of the word-definition L1; 0 turns L1 off (every read goes to Redis).
    pub word_l1_capacity: u64,
    /// Turns every namespace's L1 off (Redis only), for measuring the L2 path.
    pub l1_enabled: bool,
    pub pool: PoolSettings,
    pub redis: RedisOptions,
    /// The service's "now". Fixed by default, so that due lists and statistics are the same in
    /// every run.
    pub now: DateTime<Utc>,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            word_l1_capacity: 10_000,
            l1_enabled: true,
            pool: PoolSettings::default(),
            redis: RedisOptions::default(),
            now: crate::fixed_now(),
        }
    }
}

/// Errors of the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Review(#[from] ReviewError),
    #[error("connecting the service: {0}")]
    Connect(String),
    /// The review IS recorded (its transaction committed), but invalidating the user's cached
    /// due list and statistics afterwards failed, so a reader may still be served the
    /// pre-review copies until Redis is reachable again. Retry with the same request id: the
    /// retry records nothing twice and finishes the invalidation.
    #[error(
        "review {review_id} was recorded, but the cached due list and statistics of user \
         {user_id} could not be invalidated afterwards; retry with the same request id to \
         finish (it will not be recorded twice)"
    )]
    ReviewedButCacheStale {
        review_id: i64,
        user_id: i64,
        #[source]
        source: CacheError,
    },
}

/// What a user's home screen shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    pub stats: Arc<UserStats>,
    /// The first page of the due list.
    pub due: Arc<DuePage>,
    pub preferences: Option<Arc<UserPreferences>>,
}

/// Cache statistics of every namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCacheStats {
    pub sessions: CacheStats,
    pub words: CacheStats,
    pub progress: CacheStats,
    pub due: CacheStats,
    pub preferences: CacheStats,
}

/// The vocabulary service.
pub struct Service {
    pool: PgPool,
    now: DateTime<Utc>,
    sessions: TypedCache<String, Session>,
    words: TypedCache<i64, Word>,
    progress: TypedCache<i64, UserStats>,
    due: TypedCache<i64, DuePage>,
    preferences: TypedCache<i64, UserPreferences>,
}

impl Service {
    /// Connects to Postgres and Redis as `settings` say.
    pub async fn connect(
        settings: &Settings,
        options: &ServiceOptions,
    ) -> Result<Self, ServiceError> {
        let pool = query::connect_with(&settings.database_url, &options.pool).await?;
        // Subscribed to the run's invalidations before any cache exists, and confirmed: the
        // L1s of the guarded namespaces (due lists, statistics) work from the first call.
        let redis = RedisL2::connect_subscribed(
            &settings.redis_url,
            &options.redis,
            &settings.cache_namespace,
        )
        .await
        .map_err(|e| ServiceError::Connect(format!("redis: {e}")))?;
        let config = |namespace: Namespace| {
            let config = namespace.config();
            if !options.l1_enabled {
                config.with_l1_capacity(0)
            } else if namespace == Namespace::Words {
                config.with_l1_capacity(options.word_l1_capacity)
            } else {
                config
            }
        };
        let run = settings.cache_namespace.as_str();
        let cache_error = |e: crate::cache::ConfigError| ServiceError::Connect(e.to_string());
        Ok(Self {
            pool,
            now: options.now,
            sessions: TypedCache::new(run, config(Namespace::Sessions), redis.clone())
                .map_err(cache_error)?,
            words: TypedCache::new(run, config(Namespace::Words), redis.clone())
                .map_err(cache_error)?,
            progress: TypedCache::new(run, config(Namespace::Progress), redis.clone())
                .map_err(cache_error)?,
            due: TypedCache::new(run, config(Namespace::DueCards), redis.clone())
                .map_err(cache_error)?,
            preferences: TypedCache::new(run, config(Namespace::Preferences), redis)
                .map_err(cache_error)?,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub fn word_cache(&self) -> &TypedCache<i64, Word> {
        &self.words
    }

    /// Counters of every cache namespace.
    pub fn cache_stats(&self) -> ServiceCacheStats {
        ServiceCacheStats {
            sessions: self.sessions.stats(),
            words: self.words.stats(),
            progress: self.progress.stats(),
            due: self.due.stats(),
            preferences: self.preferences.stats(),
        }
    }

    /// Empties every namespace's L1, as in a freshly started process (Redis is untouched).
    pub fn clear_l1(&self) {
        self.sessions.clear_l1();
        self.words.clear_l1();
        self.progress.clear_l1();
        self.due.clear_l1();
        self.preferences.clear_l1();
    }

    /// The session of a token, if it exists and has not expired.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Arc<Session>>, ServiceError> {
        let pool = &self.pool;
        let key = token.to_owned();
        let session = self
            .sessions
            .get_or_load(&key, || query::session_by_token(pool, token))
            .await?;
        Ok(session.filter(|s| s.is_valid_at(self.now)))
    }

    /// A word's definition.
    pub async fn word_lookup(&self, word_id: i64) -> Result<Option<Arc<Word>>, ServiceError> {
        let pool = &self.pool;
        Ok(self
            .words
            .get_or_load(&word_id, || query::word_by_id(pool, word_id))
            .await?)
    }

    /// The definitions of a list of words, in order (`None` for an unknown id): one `MGET`
    /// and at most one database query.
    pub async fn words_lookup(
        &self,
        word_ids: &[i64],
    ) -> Result<Vec<Option<Arc<Word>>>, ServiceError> {
        let pool = &self.pool;
        Ok(self
            .words
            .get_many_or_load(word_ids, |missing: Vec<i64>| async move {
                let words = query::words_by_ids(pool, &missing).await?;
                Ok::<_, sqlx::Error>(words.into_iter().map(|w| (w.id, w)))
            })
            .await?)
    }

    /// Words starting with `prefix` (not cached: the space of prefixes is large and cold).
    pub async fn word_search(
        &self,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<WordHit>, ServiceError> {
        Ok(query::word_prefix_search(&self.pool, prefix, limit).await?)
    }

    /// One page of a user's due list: the first page through the cache, later pages from the
    /// database.
    pub async fn due_cards(
        &self,
        user_id: i64,
        after: Option<DueCursor>,
    ) -> Result<Arc<DuePage>, ServiceError> {
        let pool = &self.pool;
        let now = self.now;
        match after {
            None => {
                let page = self
                    .due
                    .get_or_load(&user_id, || async move {
                        query::due_cards(pool, user_id, now, None).await.map(Some)
                    })
                    .await?;
                Ok(page.expect("a due page is always loaded"))
            }
            Some(cursor) => Ok(Arc::new(
                query::due_cards(pool, user_id, now, Some(cursor)).await?,
            )),
        }
    }

    /// A user's difficult cards (from the database).
    pub async fn difficult_cards(
        &self,
        user_id: i64,
        limit: u32,
    ) -> Result<Vec<DifficultCard>, ServiceError> {
        Ok(query::difficult_cards(&self.pool, user_id, limit).await?)
    }

    /// A user's progress statistics.
    pub async fn stats(&self, user_id: i64) -> Result<Arc<UserStats>, ServiceError> {
        let pool = &self.pool;
        let now = self.now;
        let stats = self
            .progress
            .get_or_load(&user_id, || async move {
                query::user_stats(pool, user_id, now).await.map(Some)
            })
            .await?;
        Ok(stats.expect("statistics are always loaded"))
    }

    /// A user's preferences, if the user has any.
    pub async fn preferences(
        &self,
        user_id: i64,
    ) -> Result<Option<Arc<UserPreferences>>, ServiceError> {
        let pool = &self.pool;
        Ok(self
            .preferences
            .get_or_load(&user_id, || query::user_preferences(pool, user_id))
            .await?)
    }

    /// The home screen: statistics, the first due page and preferences, read concurrently.
    /// Warm: no SQL statement and no Redis command. Cold: 3 SQL statements; for the
    /// preferences `GET` and `SET`, for statistics and due page each `MGET` (key and
    /// generation) and `EVALSHA` (the guarded fill, which runs a `GET` and a `SET`).
    pub async fn dashboard(&self, user_id: i64) -> Result<Dashboard, ServiceError> {
        let (stats, due, preferences) = tokio::join!(
            self.stats(user_id),
            self.due_cards(user_id, None),
            self.preferences(user_id)
        );
        Ok(Dashboard {
            stats: stats?,
            due: due?,
            preferences: preferences?,
        })
    }

    /// Records a review of one of the user's cards as request `request`, and invalidates the
    /// user's cached due list and statistics: two `EVALSHA` (one per namespace; each runs
    /// `DEL`, `INCR`, `PEXPIRE`, `PUBLISH`) before the transaction, and two after it commits.
    ///
    /// Safe to retry with the same `request`: an attempt of a request already recorded writes
    /// nothing, answers [`Review::AlreadyRecorded`], and still invalidates (so a retry after
    /// [`ServiceError::ReviewedButCacheStale`] finishes the job). An `Err` other than that one
    /// means nothing was recorded.
    pub async fn record_review(
        &self,
        user_id: i64,
        card_id: i64,
        grade: Grade,
        request: ReviewRequestId,
    ) -> Result<Review, ServiceError> {
        self.invalidate_user(user_id).await?;
        let review =
            query::record_review(&self.pool, user_id, card_id, grade, request, self.now).await?;
        if let Err(source) = self.invalidate_user(user_id).await {
            return Err(ServiceError::ReviewedButCacheStale {
                review_id: review.review_id(),
                user_id,
                source,
            });
        }
        Ok(review)
    }

    /// Imports cards in one set-based statement, then invalidates the affected users' cached
    /// due lists and statistics.
    pub async fn import_cards(&self, cards: &[NewCard]) -> Result<u64, ServiceError> {
        let mut users: Vec<i64> = cards.iter().map(|c| c.user_id).collect();
        users.sort_unstable();
        users.dedup();
        self.due.invalidate_many(&users).await?;
        self.progress.invalidate_many(&users).await?;
        let inserted = query::import_cards(&self.pool, cards).await?;
        self.due.invalidate_many(&users).await?;
        self.progress.invalidate_many(&users).await?;
        Ok(inserted)
    }

    /// Drops everything the dashboard of `user_id` caches, in L1 and in Redis (one `DEL` for
    /// the preferences, one `EVALSHA` each for statistics and due page, which also reach other
    /// processes' L1), so that the next dashboard is cold.
    pub async fn invalidate_dashboard(&self, user_id: i64) -> Result<(), ServiceError> {
        self.invalidate_user(user_id).await?;
        self.preferences.invalidate(&user_id).await?;
        Ok(())
    }

    async fn invalidate_user(&self, user_id: i64) -> Result<(), CacheError> {
        let (due, progress) = tokio::join!(
            self.due.invalidate(&user_id),
            self.progress.invalidate(&user_id)
        );
        due?;
        progress?;
        Ok(())
    }
}
