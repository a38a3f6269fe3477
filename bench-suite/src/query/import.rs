//! Bulk imports: words and cards, each in ONE set-based statement (`UNNEST` of column
//! arrays), and the row-by-row card import the benchmarks compare it with.
//!
//! This module must never interpolate values into SQL: every value is bound (as an array in
//! the set-based statements), and ids are left to Postgres.

use sqlx::{PgConnection, PgPool};

use crate::model::{NewCard, NewWord};
use crate::sm2::{CardState, INITIAL_EASE};

/// Inserts `words` in one statement; Postgres assigns the ids. Returns the rows inserted.
pub async fn import_words(pool: &PgPool, words: &[NewWord]) -> Result<u64, sqlx::Error> {
    if words.is_empty() {
        return Ok(0);
    }
    let lemmas: Vec<&str> = words.iter().map(|w| w.lemma.as_str()).collect();
    let definitions: Vec<&str> = words.iter().map(|w| w.definition.as_str()).collect();
    let difficulty: Vec<i16> = words.iter().map(|w| w.difficulty).collect();
    let done = sqlx::query(
        "INSERT INTO words (lemma, definition, difficulty) \
         SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::SMALLINT[])",
    )
    .bind(&lemmas)
    .bind(&definitions)
    .bind(&difficulty)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// [`import_cards`]: `$1` users, `$2` words, `$3` due dates (arrays), `$4` state, `$5` ease.
/// Public so that the plans suite can explain it.
pub const INSERT_NEW_CARDS: &str = "INSERT INTO review_cards (user_id, word_id, card_state, ease, \
                                    interval_days, repetitions, lapses, due_at) \
     SELECT u, w, $4::SMALLINT, $5::REAL, 0, 0, 0, d \
     FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TIMESTAMPTZ[]) AS t (u, w, d) \
     ON CONFLICT (user_id, word_id) DO NOTHING";

const INSERT_NEW_CARD: &str = "INSERT INTO review_cards (user_id, word_id, card_state, ease, \
                                   interval_days, repetitions, lapses, due_at) \
     VALUES ($1, $2, $4::SMALLINT, $5::REAL, 0, 0, 0, $3) \
     ON CONFLICT (user_id, word_id) DO NOTHING";

/// Inserts `cards` as new cards (state new, ease 2.5) in one statement; a (user, word) that
/// already has a card, or comes twice in `cards`, is skipped. Postgres assigns the ids.
/// Returns the rows inserted.
pub async fn import_cards(pool: &PgPool, cards: &[NewCard]) -> Result<u64, sqlx::Error> {
    if cards.is_empty() {
        return Ok(0);
    }
    let users: Vec<i64> = cards.iter().map(|c| c.user_id).collect();
    let words: Vec<i64> = cards.iter().map(|c| c.word_id).collect();
    let due: Vec<_> = cards.iter().map(|c| c.due_at).collect();
    let done = sqlx::query(INSERT_NEW_CARDS)
        .bind(&users)
        .bind(&words)
        .bind(&due)
        .bind(CardState::New.as_i16())
        .bind(INITIAL_EASE)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// How the row-by-row baseline commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowByRow {
    /// All the `INSERT`s in one transaction: the careful loop, and the strictest baseline.
    OneTransaction,
    /// Each `INSERT` commits by itself: the loop most application code writes.
    Autocommit,
}

/// The same as [`import_cards`], one `INSERT` per card (one round trip each): the slow
/// baselines the benchmarks compare the set-based import with. Not atomic in
/// [`RowByRow::Autocommit`] mode.
pub async fn import_cards_row_by_row(
    pool: &PgPool,
    cards: &[NewCard],
    mode: RowByRow,
) -> Result<u64, sqlx::Error> {
    if cards.is_empty() {
        return Ok(0);
    }
    match mode {
        RowByRow::OneTransaction => {
            // Dropped without commit (an error, a cancelled call), the transaction rolls back.
            let mut tx = pool.begin().await?;
            let inserted = insert_one_by_one(&mut tx, cards).await?;
            tx.commit().await?;
            Ok(inserted)
        }
        RowByRow::Autocommit => {
            let mut connection = pool.acquire().await?;
            insert_one_by_one(&mut connection, cards).await
        }
    }
}

async fn insert_one_by_one(
    connection: &mut PgConnection,
    cards: &[NewCard],
) -> Result<u64, sqlx::Error> {
    let mut inserted = 0;
    for card in cards {
        inserted += sqlx::query(INSERT_NEW_CARD)
            .bind(card.user_id)
            .bind(card.word_id)
            .bind(card.due_at)
            .bind(CardState::New.as_i16())
            .bind(INITIAL_EASE)
            .execute(&mut *connection)
            .await?
            .rows_affected();
    }
    Ok(inserted)
}
