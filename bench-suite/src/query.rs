//! The query layer: a configured sqlx pool, the migrations, and the queries the service runs.
//! Every query is a prepared statement (sqlx caches it per connection).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::model::{DueCard, DueCursor, DuePage, Word};

/// Page size of a due list.
pub const DUE_PAGE_SIZE: usize = 50;

/// The migrations of this crate, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Opens the service's connection pool.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = database_url.parse()?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.statement_cache_capacity(256))
        .await
}

/// One page of a user's cards due at `now`, in (due_at, id) order, after `after`.
pub async fn due_cards(
    pool: &PgPool,
    user_id: i64,
    now: DateTime<Utc>,
    after: Option<DueCursor>,
) -> Result<DuePage, sqlx::Error> {
    // A cursor before every card keeps one statement shape for the first and later pages.
    let (after_due, after_id) = match after {
        Some(cursor) => (cursor.due_at, cursor.card_id),
        None => (DateTime::<Utc>::UNIX_EPOCH, i64::MIN),
    };
    let cards: Vec<DueCard> = sqlx::query_as(
        "SELECT c.id AS card_id, c.word_id, w.lemma, c.card_state, c.ease, c.interval_days, \
                c.repetitions, c.due_at \
         FROM review_cards c JOIN words w ON w.id = c.word_id \
         WHERE c.user_id = $1 AND c.due_at <= $2 AND (c.due_at, c.id) > ($3, $4) \
         ORDER BY c.due_at, c.id \
         LIMIT $5",
    )
    .bind(user_id)
    .bind(now)
    .bind(after_due)
    .bind(after_id)
    .bind(DUE_PAGE_SIZE as i64)
    .fetch_all(pool)
    .await?;
    Ok(DuePage::from_rows(cards, DUE_PAGE_SIZE))
}

/// A word by id, or `None` when there is no such word.
pub async fn word_by_id(pool: &PgPool, word_id: i64) -> Result<Option<Word>, sqlx::Error> {
    sqlx::query_as("SELECT id, lemma, definition, difficulty FROM words WHERE id = $1")
        .bind(word_id)
        .fetch_optional(pool)
        .await
}
