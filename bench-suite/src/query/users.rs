//! Per-user lookups the service (and the cache layer in front of it) loads by key: study
//! preferences and login sessions.
//!
//! This module must never decide whether a session is still valid: it returns the stored row
//! and the caller checks [`crate::model::Session::is_valid_at`] with its own `now`, so a cached
//! session expires on time.

use sqlx::PgPool;

use crate::model::{Session, UserPreferences};

/// [`user_preferences`]: `$1` user. Public so that the plans suite can explain it.
pub const USER_PREFERENCES_SQL: &str = "SELECT user_id, daily_goal, new_cards_per_day, utc_offset_minutes \
         FROM user_preferences WHERE user_id = $1";

/// A user's preferences, or `None` when the user has none stored (primary-key lookup).
pub async fn user_preferences(
    pool: &PgPool,
    user_id: i64,
) -> Result<Option<UserPreferences>, sqlx::Error> {
    sqlx::query_as(USER_PREFERENCES_SQL)
        .bind(user_id)
        .fetch_optional(pool)
        .await
}

/// [`session_by_token`]: `$1` token. Public so that the plans suite can explain it.
pub const SESSION_BY_TOKEN_SQL: &str =
    "SELECT token, user_id, created_at, expires_at FROM sessions WHERE token = $1";

/// The session with this token, expired or not, or `None` (primary-key lookup).
pub async fn session_by_token(pool: &PgPool, token: &str) -> Result<Option<Session>, sqlx::Error> {
    sqlx::query_as(SESSION_BY_TOKEN_SQL)
        .bind(token)
        .fetch_optional(pool)
        .await
}
