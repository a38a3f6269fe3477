//! Domain values shared by the query layer, the cache layer and the service: plain data that
//! rows decode into and caches encode.
//!
//! This module must never do I/O or hold behaviour beyond small constructors and accessors:
//! the query layer fills these values, the cache layer stores them, the service returns them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::sm2::{CardState, Grade, Sm2State};

/// A word with its definition: the value behind the word-definition cache namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Word {
    pub id: i64,
    pub lemma: String,
    pub definition: String,
    pub difficulty: i16,
}

/// One card of a user's due list, with the word it asks about. Rows decode into it by column
/// position (`query::cards`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DueCard {
    pub card_id: i64,
    pub word_id: i64,
    pub lemma: String,
    pub card_state: i16,
    pub ease: f32,
    pub interval_days: i32,
    pub repetitions: i32,
    pub due_at: DateTime<Utc>,
}

/// Where the next page of a due list starts: the (due_at, card_id) of the last card served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueCursor {
    pub due_at: DateTime<Utc>,
    pub card_id: i64,
}

/// One page of a due list and the cursor of the next page, if there may be one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DuePage {
    pub cards: Vec<DueCard>,
    pub next: Option<DueCursor>,
}

impl DuePage {
    /// Builds a page from at most `limit` rows; a full page has a next cursor.
    pub fn from_rows(cards: Vec<DueCard>, limit: usize) -> Self {
        let next = if cards.len() == limit {
            cards.last().map(|card| DueCursor {
                due_at: card.due_at,
                card_id: card.card_id,
            })
        } else {
            None
        };
        Self { cards, next }
    }
}

/// One of a user's difficult cards (most lapses, then lowest ease), with its word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct DifficultCard {
    pub card_id: i64,
    pub word_id: i64,
    pub lemma: String,
    pub card_state: i16,
    pub ease: f32,
    pub lapses: i32,
    pub interval_days: i32,
    pub repetitions: i32,
    pub due_at: DateTime<Utc>,
    pub last_reviewed_at: Option<DateTime<Utc>>,
}

/// A user's study statistics at an instant (see `query::user_stats` for the definitions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct UserStats {
    pub user_id: i64,
    /// Cards by state.
    pub new_cards: i64,
    pub learning_cards: i64,
    pub review_cards: i64,
    pub relearning_cards: i64,
    /// Cards with `due_at <= now`.
    pub due_now: i64,
    /// Reviews since the start of the user's local day, up to `now`.
    pub reviews_today: i64,
    /// Reviews in the 30 days up to `now`.
    pub reviews_30d: i64,
    /// Share of those reviews graded 3 or more; `None` without reviews.
    pub retention_30d: Option<f64>,
    /// Consecutive local days with at least one review, ending today (or yesterday, when
    /// there is no review yet today: a streak is not broken before the day is over).
    pub streak_days: i32,
}

impl UserStats {
    /// Every card of the user.
    pub fn total_cards(&self) -> i64 {
        self.new_cards + self.learning_cards + self.review_cards + self.relearning_cards
    }
}

/// What one recorded review did to a card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewOutcome {
    /// The id of the `review_log` row written.
    pub review_id: i64,
    pub card_id: i64,
    pub user_id: i64,
    pub grade: Grade,
    pub reviewed_at: DateTime<Utc>,
    pub before: Sm2State,
    pub after: Sm2State,
    /// When the card is due again.
    pub due_at: DateTime<Utc>,
}

/// Names one review request. A client makes a new one per review it means to record and
/// sends the same one again when it retries that review (after a time-out, a lost answer, or
/// [`crate::service::ServiceError::ReviewedButCacheStale`]), so that a retry is never
/// recorded twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReviewRequestId(pub uuid::Uuid);

impl ReviewRequestId {
    /// A fresh, random id (UUID v4).
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl std::fmt::Display for ReviewRequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A review recorded earlier under the same request id (what a retry finds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PastReview {
    /// The id of the `review_log` row the first attempt wrote.
    pub review_id: i64,
    pub card_id: i64,
    pub user_id: i64,
    pub grade: Grade,
    pub reviewed_at: DateTime<Utc>,
}

/// What recording a review did: recorded it now, or found it recorded by an earlier attempt
/// of the same request (and changed nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Review {
    Recorded(ReviewOutcome),
    AlreadyRecorded(PastReview),
}

impl Review {
    /// The id of the `review_log` row of this review.
    pub fn review_id(&self) -> i64 {
        match self {
            Review::Recorded(outcome) => outcome.review_id,
            Review::AlreadyRecorded(past) => past.review_id,
        }
    }

    /// The outcome, when this call recorded the review.
    pub fn recorded(&self) -> Option<&ReviewOutcome> {
        match self {
            Review::Recorded(outcome) => Some(outcome),
            Review::AlreadyRecorded(_) => None,
        }
    }
}

/// A word to import; Postgres assigns its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewWord {
    pub lemma: String,
    pub definition: String,
    pub difficulty: i16,
}

/// A card to import for a (user, word): it starts new (ease 2.5, no repetitions), due at
/// `due_at`; Postgres assigns its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCard {
    pub user_id: i64,
    pub word_id: i64,
    pub due_at: DateTime<Utc>,
}

/// A word found by a prefix search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct WordHit {
    pub id: i64,
    pub lemma: String,
}

/// A user's study preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct UserPreferences {
    pub user_id: i64,
    /// Reviews a day the user aims for.
    pub daily_goal: i32,
    /// New cards a day the user is shown at most.
    pub new_cards_per_day: i32,
    /// The user's offset from UTC in minutes (east positive); days (today, streaks) are the
    /// user's local days.
    pub utc_offset_minutes: i32,
}

/// A login session, looked up by its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Session {
    pub token: String,
    pub user_id: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// Whether the session may still be used at `now`.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::codec;

    fn round_trip<T>(value: &T)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let bytes = codec::encode(value).expect("encode");
        assert_eq!(&codec::decode::<T>(&bytes).expect("decode"), value);
    }

    /// Every value the cache layer may store survives its codec.
    #[test]
    fn values_round_trip_through_the_cache_codec() {
        let now = crate::fixed_now();
        let before = Sm2State {
            state: CardState::Review,
            ease: 2.36,
            interval_days: 15,
            repetitions: 3,
            lapses: 1,
        };
        round_trip(&ReviewOutcome {
            review_id: 7,
            card_id: 42,
            user_id: 3,
            grade: Grade::new(4).expect("a grade"),
            reviewed_at: now,
            before,
            after: Sm2State {
                interval_days: 35,
                repetitions: 4,
                ..before
            },
            due_at: now + Duration::days(35),
        });
        let stats = UserStats {
            user_id: 3,
            new_cards: 10,
            learning_cards: 2,
            review_cards: 30,
            relearning_cards: 4,
            due_now: 12,
            reviews_today: 5,
            reviews_30d: 90,
            retention_30d: Some(0.8),
            streak_days: 12,
        };
        assert_eq!(stats.total_cards(), 46);
        round_trip(&stats);
        round_trip(&UserStats {
            retention_30d: None,
            ..stats
        });
        round_trip(&UserPreferences {
            user_id: 3,
            daily_goal: 20,
            new_cards_per_day: 10,
            utc_offset_minutes: -300,
        });
        let session = Session {
            token: "session-00003".to_owned(),
            user_id: 3,
            created_at: now,
            expires_at: now + Duration::days(30),
        };
        assert!(session.is_valid_at(now));
        assert!(!session.is_valid_at(session.expires_at));
        round_trip(&session);
        round_trip(&vec![WordHit {
            id: 1,
            lemma: "lo".to_owned(),
        }]);
        round_trip(&DifficultCard {
            card_id: 1,
            word_id: 2,
            lemma: "mi".to_owned(),
            card_state: CardState::Relearning.as_i16(),
            ease: 1.3,
            lapses: 5,
            interval_days: 1,
            repetitions: 0,
            due_at: now,
            last_reviewed_at: None,
        });
    }

    /// A grade or state out of range is refused when decoding, not trusted.
    #[test]
    fn out_of_range_grades_and_states_do_not_decode() {
        let bytes = codec::encode(&9_u8).expect("encode");
        assert!(codec::decode::<Grade>(&bytes).is_err());
        let bytes = codec::encode(&4_i16).expect("encode");
        assert!(codec::decode::<CardState>(&bytes).is_err());
    }
}
