//! Recording a review: the card's SM-2 state is read under a row lock, rescheduled in Rust
//! ([`crate::sm2`]) and written back together with its `review_log` row, in one transaction.
//! Each review carries a request id; an attempt whose request was already recorded changes
//! nothing and says so ([`Review::AlreadyRecorded`]).
//!
//! This module must never read a card without `FOR UPDATE` before writing it back, nor write
//! the card and its log row in separate transactions: concurrent reviews of one card must
//! each see the previous one's result (no lost update) and each leave exactly one log row,
//! and attempts of one request, concurrent or not, leave one log row between them.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::model::{
    CardState, Grade, PastReview, Review, ReviewOutcome, ReviewRequestId, Sm2State,
};
use crate::sm2::{self, InvalidCardState};

/// The unique index that makes a request id recordable once per user (migration 0003).
const REQUEST_INDEX: &str = "review_log_user_request";

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
    /// The request id was already used for a different review (another card or grade): the
    /// client reused an id it should have made anew.
    #[error(
        "review request {request_id} was already used for review {} (card {}, grade {}); \
         make a new request id for each review, and reuse one only to retry the same review",
        past.review_id, past.card_id, past.grade.value()
    )]
    RequestIdReused {
        request_id: ReviewRequestId,
        past: PastReview,
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
    /// The log row of an earlier attempt of this request, if any.
    past_id: Option<i64>,
    past_card_id: Option<i64>,
    past_grade: Option<i16>,
    past_reviewed_at: Option<DateTime<Utc>>,
}

/// The locking `SELECT` of [`record_review`]: `$1` card, `$2` user, `$3` request id. Public so
/// that the plans suite can explain it.
pub const REVIEW_LOCK_SQL: &str = "SELECT c.card_state, c.ease, c.interval_days, c.repetitions, c.lapses, \
                l.id AS past_id, l.card_id AS past_card_id, l.grade AS past_grade, \
                l.reviewed_at AS past_reviewed_at \
         FROM review_cards c \
         LEFT JOIN review_log l ON l.user_id = c.user_id AND l.request_id = $3 \
         WHERE c.id = $1 AND c.user_id = $2 \
         FOR UPDATE OF c";

/// Records that `user_id` reviewed `card_id` with `grade` at `now` as request `request`, in
/// one transaction:
/// 1. `SELECT ... FOR UPDATE` the card (of this user; else [`ReviewError::CardNotFound`]),
///    with the log row of an earlier attempt of `request`, if one exists: then nothing is
///    written and the answer is [`Review::AlreadyRecorded`] (or
///    [`ReviewError::RequestIdReused`] if that attempt was of another card or grade);
/// 2. [`sm2::schedule`] the new state in Rust;
/// 3. one statement updating the card and inserting its `review_log` row (a data-modifying
///    CTE, so the row lock is held for one round trip less);
/// 4. commit.
///
/// Statements: `BEGIN`, the locking `SELECT`, the `UPDATE ... INSERT`, `COMMIT` (a replay:
/// `BEGIN`, the `SELECT`, `ROLLBACK`). Concurrent reviews of one card queue on the row lock and
/// each reschedules from the previous result. Two attempts of one request that run at once
/// also queue on it; the second may not see the first's log row in step 1 (its snapshot
/// predates the commit), and then its insert fails on the unique index of request ids: it
/// rolls back and answers [`Review::AlreadyRecorded`] from the row that won (one more
/// statement, only in this case).
///
/// Over 80 lines because the transaction reads best whole: its statements, in the order the
/// I/O counts of the `review_card` scenario name them, and every exit (commit, replay,
/// rollback) in one place, where a split would pass the open transaction through helpers.
pub async fn record_review(
    pool: &PgPool,
    user_id: i64,
    card_id: i64,
    grade: Grade,
    request: ReviewRequestId,
    now: DateTime<Utc>,
) -> Result<Review, ReviewError> {
    let mut tx = pool.begin().await?;
    let locked: Option<LockedCard> = sqlx::query_as(REVIEW_LOCK_SQL)
        .bind(card_id)
        .bind(user_id)
        .bind(request.0)
        .fetch_optional(&mut *tx)
        .await?;
    // Dropping `tx` without commit rolls back (and releases the lock).
    let locked = locked.ok_or(ReviewError::CardNotFound { user_id, card_id })?;
    if let (Some(review_id), Some(past_card), Some(past_grade), Some(reviewed_at)) = (
        locked.past_id,
        locked.past_card_id,
        locked.past_grade,
        locked.past_reviewed_at,
    ) {
        let past = past_review(review_id, past_card, user_id, past_grade, reviewed_at)?;
        return replay(request, past, card_id, grade);
    }
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
    let inserted: Result<i64, sqlx::Error> = sqlx::query_scalar(
        "WITH updated AS ( \
             UPDATE review_cards \
             SET card_state = $3, ease = $4, interval_days = $5, repetitions = $6, \
                 lapses = $7, due_at = $8, last_reviewed_at = $9 \
             WHERE id = $1 AND user_id = $2 \
             RETURNING id, user_id \
         ) \
         INSERT INTO review_log (card_id, user_id, reviewed_at, grade, ease_before, ease_after, \
                                 interval_before, interval_after, request_id) \
         SELECT id, user_id, $9, $10, $11, $4, $12, $5, $13 FROM updated \
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
    .bind(request.0)
    .fetch_one(&mut *tx)
    .await;
    let review_id = match inserted {
        Ok(id) => id,
        Err(error) if violates(&error, REQUEST_INDEX) => {
            // A concurrent attempt of this request committed first: report its row.
            tx.rollback().await?;
            let past = recorded_request(pool, user_id, request)
                .await?
                .ok_or(error)?;
            return replay(request, past, card_id, grade);
        }
        Err(error) => return Err(error.into()),
    };
    tx.commit().await?;
    Ok(Review::Recorded(ReviewOutcome {
        review_id,
        card_id,
        user_id,
        grade,
        reviewed_at: now,
        before,
        after,
        due_at: scheduled.due_at,
    }))
}

/// The review recorded under `request` for `user_id`, if any.
pub async fn recorded_request(
    pool: &PgPool,
    user_id: i64,
    request: ReviewRequestId,
) -> Result<Option<PastReview>, ReviewError> {
    let row: Option<(i64, i64, i16, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, card_id, grade, reviewed_at FROM review_log \
         WHERE user_id = $1 AND request_id = $2",
    )
    .bind(user_id)
    .bind(request.0)
    .fetch_optional(pool)
    .await?;
    row.map(|(review_id, card_id, grade, reviewed_at)| {
        past_review(review_id, card_id, user_id, grade, reviewed_at)
    })
    .transpose()
}

fn past_review(
    review_id: i64,
    card_id: i64,
    user_id: i64,
    grade: i16,
    reviewed_at: DateTime<Utc>,
) -> Result<PastReview, ReviewError> {
    let grade = u8::try_from(grade)
        .ok()
        .and_then(Grade::new)
        .ok_or_else(|| {
            ReviewError::Database(sqlx::Error::Decode(
                format!("review_log {review_id} has grade {grade}, outside 0..=5").into(),
            ))
        })?;
    Ok(PastReview {
        review_id,
        card_id,
        user_id,
        grade,
        reviewed_at,
    })
}

/// The answer to an attempt of a request that `past` already recorded.
fn replay(
    request_id: ReviewRequestId,
    past: PastReview,
    card_id: i64,
    grade: Grade,
) -> Result<Review, ReviewError> {
    if past.card_id == card_id && past.grade == grade {
        Ok(Review::AlreadyRecorded(past))
    } else {
        Err(ReviewError::RequestIdReused { request_id, past })
    }
}

/// Whether `error` is a unique violation of the index `index`.
fn violates(error: &sqlx::Error, index: &str) -> bool {
    matches!(error, sqlx::Error::Database(db)
        if db.code().as_deref() == Some("23505") && db.constraint() == Some(index))
}
