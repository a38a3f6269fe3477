//! SM-2 spaced-repetition scheduling, as a pure function of a card's scheduling state, a
//! grade and the current instant.
//!
//! This module must never do I/O, read a clock or hold state: the query layer reads the card,
//! calls [`schedule`] and writes the result back, so the same inputs always give the same
//! schedule (and the instruction-count benchmarks can measure it).
//!
//! The rules (SuperMemo 2, as commonly implemented):
//! - ease factor update, for every grade `q`:
//!   `EF' = EF + (0.1 - (5 - q) * (0.08 + (5 - q) * 0.02))`, never below [`MIN_EASE`];
//! - a successful recall (`q >= 3`) increments the repetitions; the interval is 1 day after the
//!   first success, 6 days after the second, then `round(interval * EF)` with the ease factor
//!   *before* this review's update; the card is `Review` from the second success on, before
//!   that `Learning` (or still `Relearning` when it is relearning);
//! - a failed recall (`q < 3`) resets the repetitions to 0, sets the interval to 1 day, moves
//!   the card to `Relearning` and counts a lapse (whatever state the card was in);
//! - the card is due `interval_days` whole days after `now`; intervals are capped at
//!   [`MAX_INTERVAL_DAYS`].

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The lowest ease factor SM-2 allows.
pub const MIN_EASE: f32 = 1.3;
/// The ease factor of a card that was never reviewed.
pub const INITIAL_EASE: f32 = 2.5;
/// The longest interval scheduled (100 years), so that `round(interval * EF)` cannot overflow.
pub const MAX_INTERVAL_DAYS: i32 = 36_500;

/// Where a card is in its life; stored as a `SMALLINT` (`review_cards.card_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i16", into = "i16")]
#[repr(i16)]
pub enum CardState {
    /// Never reviewed.
    New = 0,
    /// Recalled once since it was new.
    Learning = 1,
    /// Recalled at least twice in a row: on the growing SM-2 intervals.
    Review = 2,
    /// Forgotten at its last review (a lapse), being learnt again.
    Relearning = 3,
}

impl CardState {
    /// Every state, in storage order.
    pub const ALL: [CardState; 4] = [
        CardState::New,
        CardState::Learning,
        CardState::Review,
        CardState::Relearning,
    ];

    /// The stored value.
    pub fn as_i16(self) -> i16 {
        self as i16
    }
}

impl From<CardState> for i16 {
    fn from(state: CardState) -> Self {
        state.as_i16()
    }
}

/// A stored card state that is not one of the four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a card state (0 new, 1 learning, 2 review, 3 relearning)")]
pub struct InvalidCardState(pub i16);

impl TryFrom<i16> for CardState {
    type Error = InvalidCardState;

    fn try_from(value: i16) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(CardState::New),
            1 => Ok(CardState::Learning),
            2 => Ok(CardState::Review),
            3 => Ok(CardState::Relearning),
            other => Err(InvalidCardState(other)),
        }
    }
}

/// How well the answer was recalled, 0 (blackout) ..= 5 (perfect); 3 and up is a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Grade(u8);

/// A grade outside 0..=5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not an SM-2 grade (0..=5)")]
pub struct InvalidGrade(pub u8);

impl Grade {
    /// The highest grade.
    pub const MAX: u8 = 5;

    /// The grade `value`, or `None` outside 0..=5.
    pub const fn new(value: u8) -> Option<Self> {
        if value <= Self::MAX {
            Some(Self(value))
        } else {
            None
        }
    }

    pub const fn value(self) -> u8 {
        self.0
    }

    /// Whether the answer counts as recalled (`q >= 3`).
    pub const fn is_success(self) -> bool {
        self.0 >= 3
    }
}

impl TryFrom<u8> for Grade {
    type Error = InvalidGrade;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::new(value).ok_or(InvalidGrade(value))
    }
}

impl From<Grade> for u8 {
    fn from(grade: Grade) -> Self {
        grade.0
    }
}

/// A card's SM-2 scheduling state (without its due date).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sm2State {
    pub state: CardState,
    pub ease: f32,
    pub interval_days: i32,
    pub repetitions: i32,
    pub lapses: i32,
}

impl Sm2State {
    /// A card that was never reviewed.
    pub const NEW: Sm2State = Sm2State {
        state: CardState::New,
        ease: INITIAL_EASE,
        interval_days: 0,
        repetitions: 0,
        lapses: 0,
    };
}

/// The outcome of one review: the new state and when the card is due again.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scheduled {
    pub state: Sm2State,
    pub due_at: DateTime<Utc>,
}

/// The ease factor after a review graded `grade`: `EF + (0.1 - (5-q)*(0.08 + (5-q)*0.02))`,
/// at least [`MIN_EASE`].
pub fn next_ease(ease: f32, grade: Grade) -> f32 {
    let miss = f64::from(Grade::MAX - grade.value());
    let updated = f64::from(ease) + (0.1 - miss * (0.08 + miss * 0.02));
    // f32 storage: round the f64 result once, then clamp.
    (updated as f32).max(MIN_EASE)
}

/// Schedules a card reviewed at `now` with `grade`. Pure: see the module documentation.
pub fn schedule(card: &Sm2State, grade: Grade, now: DateTime<Utc>) -> Scheduled {
    let ease = next_ease(card.ease, grade);
    let (state, interval_days, repetitions, lapses) = if grade.is_success() {
        let interval = match card.repetitions {
            i32::MIN..=0 => 1,
            1 => 6,
            _ => {
                // The interval grows with the ease factor before this review's update.
                let grown = (f64::from(card.interval_days.max(1)) * f64::from(card.ease)).round();
                grown.clamp(1.0, f64::from(MAX_INTERVAL_DAYS)) as i32
            }
        };
        let repetitions = card.repetitions.max(0).saturating_add(1);
        let state = if repetitions >= 2 {
            CardState::Review
        } else if card.state == CardState::Relearning {
            CardState::Relearning
        } else {
            CardState::Learning
        };
        (
            state,
            interval.min(MAX_INTERVAL_DAYS),
            repetitions,
            card.lapses,
        )
    } else {
        (CardState::Relearning, 1, 0, card.lapses.saturating_add(1))
    };
    Scheduled {
        state: Sm2State {
            state,
            ease,
            interval_days,
            repetitions,
            lapses,
        },
        due_at: now + Duration::days(i64::from(interval_days)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(value: u8) -> Grade {
        Grade::new(value).expect("a valid grade")
    }

    fn review(state: CardState, ease: f32, interval_days: i32, repetitions: i32) -> Sm2State {
        Sm2State {
            state,
            ease,
            interval_days,
            repetitions,
            lapses: 0,
        }
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn ease_updates_match_the_sm2_table() {
        // (grade, change of EF): 5 +0.10, 4 0, 3 -0.14, 2 -0.32, 1 -0.54, 0 -0.80.
        for (grade, delta) in [
            (5, 0.10),
            (4, 0.0),
            (3, -0.14),
            (2, -0.32),
            (1, -0.54),
            (0, -0.80),
        ] {
            let got = next_ease(2.5, g(grade));
            assert!(close(got, 2.5 + delta), "grade {grade}: {got}");
        }
    }

    #[test]
    fn ease_never_drops_below_the_floor() {
        assert_eq!(next_ease(1.3, g(0)), MIN_EASE);
        assert_eq!(next_ease(1.4, g(3)), MIN_EASE);
        assert!(close(next_ease(1.3, g(5)), 1.4));
    }

    #[test]
    fn successes_follow_1_6_then_interval_times_ease() {
        let now = crate::fixed_now();
        let first = schedule(&Sm2State::NEW, g(4), now);
        assert_eq!(first.state.state, CardState::Learning);
        assert_eq!(first.state.interval_days, 1);
        assert_eq!(first.state.repetitions, 1);
        assert!(close(first.state.ease, 2.5));
        assert_eq!(first.due_at, now + Duration::days(1));

        let second = schedule(&first.state, g(4), now);
        assert_eq!(second.state.state, CardState::Review);
        assert_eq!(second.state.interval_days, 6);
        assert_eq!(second.state.repetitions, 2);

        // 6 * 2.5 = 15, then 15 * 2.5 = 37.5 -> 38 (rounded half away from zero).
        let third = schedule(&second.state, g(4), now);
        assert_eq!(third.state.interval_days, 15);
        let fourth = schedule(&third.state, g(4), now);
        assert_eq!(fourth.state.interval_days, 38);
        assert_eq!(fourth.state.repetitions, 4);
        assert_eq!(fourth.state.lapses, 0);
        assert_eq!(fourth.due_at, now + Duration::days(38));
    }

    #[test]
    fn the_interval_grows_with_the_ease_before_the_update() {
        let now = crate::fixed_now();
        // interval 10, EF 2.0, grade 5: interval round(10 * 2.0) = 20, EF 2.1.
        let out = schedule(&review(CardState::Review, 2.0, 10, 3), g(5), now);
        assert_eq!(out.state.interval_days, 20);
        assert!(close(out.state.ease, 2.1));
        // interval 7, EF 1.3, grade 3: round(9.1) = 9, EF stays at the floor.
        let out = schedule(&review(CardState::Review, 1.3, 7, 5), g(3), now);
        assert_eq!(out.state.interval_days, 9);
        assert_eq!(out.state.ease, MIN_EASE);
    }

    #[test]
    fn a_failure_resets_repetitions_and_counts_a_lapse() {
        let now = crate::fixed_now();
        let card = Sm2State {
            lapses: 2,
            ..review(CardState::Review, 2.5, 40, 6)
        };
        let out = schedule(&card, g(2), now);
        assert_eq!(out.state.state, CardState::Relearning);
        assert_eq!(out.state.repetitions, 0);
        assert_eq!(out.state.interval_days, 1);
        assert_eq!(out.state.lapses, 3);
        assert!(close(out.state.ease, 2.18));
        assert_eq!(out.due_at, now + Duration::days(1));

        // Relearning: the first success keeps it relearning, the second graduates it.
        let again = schedule(&out.state, g(3), now);
        assert_eq!(again.state.state, CardState::Relearning);
        assert_eq!(again.state.interval_days, 1);
        let graduated = schedule(&again.state, g(5), now);
        assert_eq!(graduated.state.state, CardState::Review);
        assert_eq!(graduated.state.interval_days, 6);
        assert_eq!(graduated.state.lapses, 3);
    }

    #[test]
    fn a_failed_new_card_is_a_lapse_too() {
        let out = schedule(&Sm2State::NEW, g(0), crate::fixed_now());
        assert_eq!(out.state.state, CardState::Relearning);
        assert_eq!(out.state.lapses, 1);
        assert!(close(out.state.ease, 1.7));
    }

    #[test]
    fn intervals_are_capped() {
        let out = schedule(
            &review(CardState::Review, 3.0, MAX_INTERVAL_DAYS, 30),
            g(5),
            crate::fixed_now(),
        );
        assert_eq!(out.state.interval_days, MAX_INTERVAL_DAYS);
        let out = schedule(
            &review(CardState::Review, 3.0, i32::MAX, i32::MAX),
            g(5),
            crate::fixed_now(),
        );
        assert_eq!(out.state.interval_days, MAX_INTERVAL_DAYS);
        assert_eq!(out.state.repetitions, i32::MAX);
    }

    #[test]
    fn a_zero_interval_review_card_still_moves_forward() {
        let out = schedule(
            &review(CardState::Review, 2.5, 0, 3),
            g(4),
            crate::fixed_now(),
        );
        assert_eq!(out.state.interval_days, 3); // round(max(0, 1) * 2.5) = 3 (2.5 rounds up)
    }

    #[test]
    fn grades_and_states_round_trip_and_reject_bad_values() {
        assert_eq!(Grade::new(6), None);
        assert_eq!(Grade::try_from(9), Err(InvalidGrade(9)));
        assert_eq!(u8::from(g(5)), 5);
        for state in CardState::ALL {
            assert_eq!(CardState::try_from(state.as_i16()), Ok(state));
        }
        assert_eq!(CardState::try_from(4), Err(InvalidCardState(4)));
        assert_eq!(serde_json::to_string(&g(3)).unwrap(), "3");
        assert!(serde_json::from_str::<Grade>("7").is_err());
        assert_eq!(serde_json::to_string(&CardState::Relearning).unwrap(), "3");
    }
}
