//! Domain values shared by the query layer, the cache layer and the service.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A word with its definition: the value behind the word-definition cache namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Word {
    pub id: i64,
    pub lemma: String,
    pub definition: String,
    pub difficulty: i16,
}

/// One card of a user's due list, with the word it asks about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
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
