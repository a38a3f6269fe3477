//! Deterministic seed data: a fixed RNG seed gives the same users, words and cards in every
//! run, so every run measures the same data. Rows are inserted set-based (`UNNEST`), one
//! statement per table chunk.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::PgPool;

/// The RNG seed of the fixtures. Changing it changes every measurement's data.
pub const SEED: u64 = 0x5EED_CA7D;

/// How much data to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeedSize {
    pub users: u32,
    pub words: u32,
    pub cards: u32,
}

impl Default for SeedSize {
    fn default() -> Self {
        Self {
            users: 1_000,
            words: 20_000,
            cards: 100_000,
        }
    }
}

/// What was inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSummary {
    pub users: u64,
    pub words: u64,
    pub cards: u64,
}

const CHUNK: usize = 20_000;

/// Generates the fixtures and inserts them into an empty, migrated database.
pub async fn seed(pool: &PgPool, size: SeedSize) -> Result<SeedSummary, sqlx::Error> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let now = crate::fixed_now();

    let user_ids: Vec<i64> = (1..=i64::from(size.users)).collect();
    let user_names: Vec<String> = user_ids.iter().map(|id| format!("user-{id:05}")).collect();
    let user_created: Vec<DateTime<Utc>> = user_ids
        .iter()
        .map(|_| now - Duration::days(rng.random_range(30..720)))
        .collect();
    sqlx::query(
        "INSERT INTO users (id, name, created_at) \
         SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TIMESTAMPTZ[])",
    )
    .bind(&user_ids)
    .bind(&user_names)
    .bind(&user_created)
    .execute(pool)
    .await?;

    let word_ids: Vec<i64> = (1..=i64::from(size.words)).collect();
    for chunk in word_ids.chunks(CHUNK) {
        let lemmas: Vec<String> = chunk.iter().map(|&id| lemma(id)).collect();
        let definitions: Vec<String> = chunk
            .iter()
            .map(|&id| format!("the meaning of {} (entry {id})", lemma(id)))
            .collect();
        let difficulty: Vec<i16> = chunk.iter().map(|_| rng.random_range(1..=5)).collect();
        sqlx::query(
            "INSERT INTO words (id, lemma, definition, difficulty) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::SMALLINT[])",
        )
        .bind(chunk)
        .bind(&lemmas)
        .bind(&definitions)
        .bind(&difficulty)
        .execute(pool)
        .await?;
    }

    let cards = generate_cards(&mut rng, size, now);
    for chunk in cards.chunks(CHUNK) {
        let column = |f: fn(&CardRow) -> i64| chunk.iter().map(f).collect::<Vec<_>>();
        let state: Vec<i16> = chunk.iter().map(|c| c.state).collect();
        let ease: Vec<f32> = chunk.iter().map(|c| c.ease).collect();
        let interval: Vec<i32> = chunk.iter().map(|c| c.interval_days).collect();
        let reps: Vec<i32> = chunk.iter().map(|c| c.repetitions).collect();
        let due: Vec<DateTime<Utc>> = chunk.iter().map(|c| c.due_at).collect();
        let last: Vec<Option<DateTime<Utc>>> = chunk.iter().map(|c| c.last_reviewed_at).collect();
        sqlx::query(
            "INSERT INTO review_cards (id, user_id, word_id, card_state, ease, interval_days, \
                                       repetitions, due_at, last_reviewed_at) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::SMALLINT[], \
                                  $5::REAL[], $6::INTEGER[], $7::INTEGER[], $8::TIMESTAMPTZ[], \
                                  $9::TIMESTAMPTZ[])",
        )
        .bind(column(|c| c.id))
        .bind(column(|c| c.user_id))
        .bind(column(|c| c.word_id))
        .bind(&state)
        .bind(&ease)
        .bind(&interval)
        .bind(&reps)
        .bind(&due)
        .bind(&last)
        .execute(pool)
        .await?;
    }
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(SeedSummary {
        users: user_ids.len() as u64,
        words: word_ids.len() as u64,
        cards: cards.len() as u64,
    })
}

struct CardRow {
    id: i64,
    user_id: i64,
    word_id: i64,
    state: i16,
    ease: f32,
    interval_days: i32,
    repetitions: i32,
    due_at: DateTime<Utc>,
    last_reviewed_at: Option<DateTime<Utc>>,
}

/// Cards with a realistic skew: a few heavy users hold many cards, common (low-id) words are
/// studied more often, and about a third of the cards are due at the fixed "now".
fn generate_cards(rng: &mut ChaCha8Rng, size: SeedSize, now: DateTime<Utc>) -> Vec<CardRow> {
    let users = size.users.max(1) as usize;
    let words = size.words.max(1) as usize;
    // Per-user weights ~ 1/(rank^0.8), normalised to the requested card count, each user
    // capped at the number of words (one card per (user, word)).
    let weights: Vec<f64> = (1..=users)
        .map(|rank| 1.0 / (rank as f64).powf(0.8))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut cards = Vec::with_capacity(size.cards as usize);
    let mut next_id = 1_i64;
    for (index, weight) in weights.iter().enumerate() {
        if cards.len() >= size.cards as usize {
            break;
        }
        let want = ((weight / total) * f64::from(size.cards)).round() as usize;
        let want = want.clamp(1, words).min(size.cards as usize - cards.len());
        let user_id = index as i64 + 1;
        let mut chosen = HashSet::with_capacity(want);
        while chosen.len() < want {
            // Squaring a uniform draw favours low (common) word ids.
            let draw: f64 = rng.random();
            let word_id = ((draw * draw) * words as f64) as i64 + 1;
            if !chosen.insert(word_id) {
                continue;
            }
            let state: i16 = rng.random_range(0..4);
            let repetitions = if state == 0 {
                0
            } else {
                rng.random_range(1..12)
            };
            let interval_days = if state == 0 {
                0
            } else {
                rng.random_range(1..90)
            };
            let due_at = now + Duration::minutes(rng.random_range(-30 * 24 * 60..60 * 24 * 60));
            let last_reviewed_at =
                (state != 0).then(|| due_at - Duration::days(i64::from(interval_days)));
            cards.push(CardRow {
                id: next_id,
                user_id,
                word_id,
                state,
                ease: 1.3 + rng.random::<f32>() * 1.7,
                interval_days,
                repetitions,
                due_at,
                last_reviewed_at,
            });
            next_id += 1;
        }
    }
    cards
}

/// A pronounceable, deterministic lemma for a word id.
pub fn lemma(id: i64) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fu", "go", "hi", "ja", "po",
        "ze",
    ];
    let mut n = id as u64;
    let mut out = String::new();
    loop {
        out.push_str(SYLLABLES[(n % 16) as usize]);
        n /= 16;
        if n == 0 {
            break;
        }
    }
    out
}
