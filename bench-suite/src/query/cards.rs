//! A user's cards: the due list (keyset pagination) and the difficult cards.
//!
//! This module must never offset-paginate or sort outside an index: both lists are served in
//! index order and stop after their page.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgPool, Row};

use crate::model::{DifficultCard, DueCard, DueCursor, DuePage};

/// Page size of a due list.
pub const DUE_PAGE_SIZE: usize = 50;

/// The most difficult cards one call returns.
pub const DIFFICULT_CARDS_MAX: u32 = 500;

/// The first page of [`due_cards`]: `$1` user, `$2` now, `$3` the page size. Public so that
/// benchmarks can time the raw prepared statement beside the layer.
pub const DUE_CARDS_FIRST_PAGE_SQL: &str = "SELECT c.id AS card_id, c.word_id, w.lemma, \
        c.card_state, c.ease, c.interval_days, c.repetitions, c.due_at \
     FROM review_cards c JOIN words w ON w.id = c.word_id \
     WHERE c.user_id = $1 AND c.due_at <= $2 \
     ORDER BY c.due_at, c.id \
     LIMIT $3";

/// A later page of [`due_cards`]: `$1` user, `$2` now, `$3`/`$4` the cursor, `$5` the page size.
pub const DUE_CARDS_AFTER_SQL: &str = "SELECT c.id AS card_id, c.word_id, w.lemma, \
        c.card_state, c.ease, c.interval_days, c.repetitions, c.due_at \
     FROM review_cards c JOIN words w ON w.id = c.word_id \
     WHERE c.user_id = $1 AND c.due_at <= $2 AND (c.due_at, c.id) > ($3, $4) \
     ORDER BY c.due_at, c.id \
     LIMIT $5";

/// A due-list row decodes by column position, in the order both due-list statements select
/// (`card_id, word_id, lemma, card_state, ease, interval_days, repetitions, due_at`).
///
/// By position rather than by name because a name goes through sqlx's per-statement column
/// map, a hash table whose hasher is seeded per process: eight lookups per row cost more, and
/// their instruction count differs from run to run, which would make the `row_decode`
/// instruction benchmark noisy. Both statements' column lists are checked against these
/// positions by `due_row_columns_are_in_decoding_order` below.
impl<'r> FromRow<'r, PgRow> for DueCard {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            card_id: row.try_get(0)?,
            word_id: row.try_get(1)?,
            lemma: row.try_get(2)?,
            card_state: row.try_get(3)?,
            ease: row.try_get(4)?,
            interval_days: row.try_get(5)?,
            repetitions: row.try_get(6)?,
            due_at: row.try_get(7)?,
        })
    }
}

/// [`difficult_cards`]: `$1` user, `$2` the limit. Public so that the plans suite can explain it.
pub const DIFFICULT_CARDS_SQL: &str = "SELECT c.id AS card_id, c.word_id, w.lemma, c.card_state, c.ease, c.lapses, \
        c.interval_days, c.repetitions, c.due_at, c.last_reviewed_at \
     FROM review_cards c JOIN words w ON w.id = c.word_id \
     WHERE c.user_id = $1 AND c.card_state <> 0 \
     ORDER BY c.lapses DESC, c.ease, c.id \
     LIMIT $2";

/// One page of a user's cards due at `now`, in (due_at, id) order, after `after`.
///
/// Served by `review_cards_user_due (user_id, due_at, id)`: an index range scan from the
/// cursor, a nested-loop join to `words` by primary key, stopping after [`DUE_PAGE_SIZE`] rows.
pub async fn due_cards(
    pool: &PgPool,
    user_id: i64,
    now: DateTime<Utc>,
    after: Option<DueCursor>,
) -> Result<DuePage, sqlx::Error> {
    // Two statement shapes: a sentinel cursor "before every card" would skip cards due
    // before the sentinel, and any instant is a valid due date.
    let cards: Vec<DueCard> = match after {
        None => {
            sqlx::query_as(DUE_CARDS_FIRST_PAGE_SQL)
                .bind(user_id)
                .bind(now)
                .bind(DUE_PAGE_SIZE as i64)
                .fetch_all(pool)
                .await?
        }
        Some(cursor) => {
            sqlx::query_as(DUE_CARDS_AFTER_SQL)
                .bind(user_id)
                .bind(now)
                .bind(cursor.due_at)
                .bind(cursor.card_id)
                .bind(DUE_PAGE_SIZE as i64)
                .fetch_all(pool)
                .await?
        }
    };
    Ok(DuePage::from_rows(cards, DUE_PAGE_SIZE))
}

/// A user's most difficult reviewed cards: most lapses first, then lowest ease, then id; at
/// most `limit` (capped at [`DIFFICULT_CARDS_MAX`]). New cards are never difficult.
///
/// Served by the partial index `review_cards_user_difficulty (user_id, lapses DESC, ease, id)
/// WHERE card_state <> 0` in index order (no sort), joined to `words` by primary key.
pub async fn difficult_cards(
    pool: &PgPool,
    user_id: i64,
    limit: u32,
) -> Result<Vec<DifficultCard>, sqlx::Error> {
    sqlx::query_as(DIFFICULT_CARDS_SQL)
        .bind(user_id)
        .bind(i64::from(limit.min(DIFFICULT_CARDS_MAX)))
        .fetch_all(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names a due-list statement selects, in order (`... AS name` or `table.name`).
    fn selected_columns(sql: &str) -> Vec<String> {
        let list = sql
            .strip_prefix("SELECT ")
            .and_then(|rest| rest.split(" FROM ").next())
            .expect("a SELECT ... FROM statement");
        list.split(',')
            .map(|column| {
                let column = column.trim();
                let name = column.rsplit(" AS ").next().unwrap_or(column);
                name.rsplit('.').next().unwrap_or(name).to_owned()
            })
            .collect()
    }

    #[test]
    fn due_row_columns_are_in_decoding_order() {
        let fields = [
            "card_id",
            "word_id",
            "lemma",
            "card_state",
            "ease",
            "interval_days",
            "repetitions",
            "due_at",
        ];
        for sql in [DUE_CARDS_FIRST_PAGE_SQL, DUE_CARDS_AFTER_SQL] {
            assert_eq!(selected_columns(sql), fields, "{sql}");
        }
    }
}
