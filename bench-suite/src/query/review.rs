//! Recording a review: the card's SM-2 state is read under a row lock, rescheduled in Rust
//! ([`crate::sm2`]) and written back together with its `review_log` row, in one transaction.
//!
//! This module must never read a card without `FOR UPDATE` before writing it back, nor write
//! the card and its log row in separate transactions: concurrent reviews of one card must
//! each see the previous one's result (no lost update) and each leave exactly one log row.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::model::{CardState, Grade, ReviewOutcome, Sm2State};
use crate::sm2::{self, InvalidCardState};

/// Why a review was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No card with this id belongs to this user (whether or not the id exists at all).
    #[error("user {user_id} has no card {card_id}")]
    CardNotFound { user_id: i64, card_id: i64 },
    /// The stored card has a state outside 0..=3 (the schema's CHECK forbids it).
    #[error("card {card_id} has a corrupt state")]
    CorruptCard {
        card_id: i64,
        #[source]
        source: InvalidCardState,
    },
    #[error("recording a review failed")]
    Database(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
struct LockedCard {
    card_state: i16,
    ease: f32,
    interval_days: i32,
    repetitions: i32,
    lapses: i32,
}

/// Records that `user_id` reviewed `card_id` with `grade` at `now`, in one transaction:
/// 1. `SELECT ... FOR UPDATE` the card (of this user; else [`ReviewError::CardNotFound`]);
/// 2. [`sm2::schedule`] the new state in Rust;
/// 3. one statement updating the card and inserting its `review_log` row (a data-modifying
///    CTE, so the row lock is held for one round trip less);
/// 4. commit.
///
/// Statements: `BEGIN`, the locking `SELECT`, the `UPDATE ... INSERT`, `COMMIT`. Concurrent
/// reviews of one card queue on the row lock and each reschedules from the previous result.
pub async fn record_review(
    pool: &PgPool,
    user_id: i64,
    card_id: i64,
    grade: Grade,
    now: DateTime<Utc>,
) -> Result<ReviewOutcome, ReviewError> {
    let mut tx = pool.begin().await?;
    let locked: Option<LockedCard> = sqlx::query_as(
        "SELECT card_state, ease, interval_days, repetitions, lapses \
         FROM review_cards WHERE id = $1 AND user_id = $2 \
         FOR UPDATE",
    )
    .bind(card_id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    // Dropping `tx` without commit rolls back (and releases the lock).
    let locked = locked.ok_or(ReviewError::CardNotFound { user_id, card_id })?;
    let before = Sm2State {
        state: CardState::try_from(locked.card_state)
            .map_err(|source| ReviewError::CorruptCard { card_id, source })?,
        ease: locked.ease,
        interval_days: locked.interval_days,
        repetitions: locked.repetitions,
        lapses: locked.lapses,
    };
    let scheduled = sm2::schedule(&before, grade, now);
    let after = scheduled.state;
    let review_id: i64 = sqlx::query_scalar(
        "WITH updated AS ( \
             UPDATE review_cards \
             SET card_state = $3, ease = $4, interval_days = $5, repetitions = $6, \
                 lapses = $7, due_at = $8, last_reviewed_at = $9 \
             WHERE id = $1 AND user_id = $2 \
             RETURNING id, user_id \
         ) \
         INSERT INTO review_log (card_id, user_id, reviewed_at, grade, ease_before, ease_after, \
                                 interval_before, interval_after) \
         SELECT id, user_id, $9, $10, $11, $4, $12, $5 FROM updated \
         RETURNING id",
    )
    .bind(card_id)
    .bind(user_id)
    .bind(after.state.as_i16())
    .bind(after.ease)
    .bind(after.interval_days)
    .bind(after.repetitions)
    .bind(after.lapses)
    .bind(scheduled.due_at)
    .bind(now)
    .bind(i16::from(grade.value()))
    .bind(before.ease)
    .bind(before.interval_days)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ReviewOutcome {
        review_id,
        card_id,
        user_id,
        grade,
        reviewed_at: now,
        before,
        after,
        due_at: scheduled.due_at,
    })
}
