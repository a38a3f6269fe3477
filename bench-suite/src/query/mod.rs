//! The query layer: a configured sqlx pool, the migrations, and every statement the service
//! runs against Postgres, each a prepared statement (sqlx caches it per connection) returning
//! the typed values of [`crate::model`].
//!
//! This module must never cache results, talk to Redis or read a clock: callers pass `now`,
//! the cache layer decides what to keep, and every function here is exactly the SQL it
//! documents, so the harness's statement and row counts mean what they say.
//!
//! Submodules: [`pool`] (connecting), [`cards`] (due lists, difficult cards), [`review`]
//! (recording a review with SM-2), [`stats`] (a user's statistics), [`import`] (bulk and
//! row-by-row imports), [`words`] (word lookups and prefix search), [`users`] (preferences and
//! sessions).

pub mod cards;
pub mod import;
pub mod pool;
pub mod review;
pub mod stats;
pub mod users;
pub mod words;

pub use cards::{
    DIFFICULT_CARDS_MAX, DIFFICULT_CARDS_SQL, DUE_CARDS_AFTER_SQL, DUE_CARDS_FIRST_PAGE_SQL,
    DUE_PAGE_SIZE, difficult_cards, due_cards,
};
pub use import::{INSERT_NEW_CARDS, RowByRow, import_cards, import_cards_row_by_row, import_words};
pub use pool::{PoolSettings, connect, connect_with};
pub use review::{REVIEW_LOCK_SQL, ReviewError, record_review, recorded_request};
pub use stats::{USER_STATS_SQL, user_stats};
pub use users::{SESSION_BY_TOKEN_SQL, USER_PREFERENCES_SQL, session_by_token, user_preferences};
pub use words::{
    WORD_BY_ID_SQL, WORD_PREFIX_FROM_SQL, WORD_PREFIX_SEARCH_SQL, WORDS_BY_IDS_SQL,
    prefix_upper_bound, word_by_id, word_prefix_search, words_by_ids,
};

/// The migrations of this crate, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
