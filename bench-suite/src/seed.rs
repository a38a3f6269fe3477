//! Deterministic seed data: a fixed RNG seed gives the same users, preferences, sessions,
//! words, cards and review history in every run, so every run measures the same data.
//!
//! This module must never depend on the wall clock, the database's state or iteration order
//! of hash containers: everything is generated from [`SEED`] and [`crate::fixed_now`] by
//! [`generate`] (pure), then inserted set-based (`UNNEST` of column arrays, one statement per
//! table chunk) in one transaction into an empty, migrated database.
//!
//! The shape of the data:
//! - users' card counts are skewed (weights `1 / rank^0.8`: a few heavy users hold many
//!   cards), and common (low-id) words are studied more often;
//! - every card was introduced in the 60 days before `fixed_now()`; most were then reviewed
//!   on their SM-2 schedule ([`crate::sm2`], the same code `record_review` runs), so a card's
//!   state, ease, lapses and due date agree with its `review_log` rows;
//! - some users stopped studying days ago (their cards pile up as due), the others reviewed
//!   up to `fixed_now()` (their streaks run to today); about a third of all cards are due.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::{Acquire, PgConnection, PgPool};

use crate::sm2::{self, Grade, Sm2State};

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

impl SeedSize {
    /// The default size times `factor` (0.1: 100 users, 2,000 words, 10,000 cards; 10: 10,000
    /// users, 200,000 words, 1,000,000 cards), each rounded and at least 1. A factor that is
    /// not a positive finite number counts as the smallest size.
    pub fn scaled(factor: f64) -> Self {
        let base = Self::default();
        let scale = |n: u32| {
            let scaled = (f64::from(n) * factor).round();
            if scaled.is_finite() && scaled >= 1.0 {
                // `as` saturates at u32::MAX.
                scaled as u32
            } else {
                1
            }
        };
        Self {
            users: scale(base.users),
            words: scale(base.words),
            cards: scale(base.cards),
        }
    }
}

/// What was inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SeedSummary {
    pub users: u64,
    pub words: u64,
    pub cards: u64,
    pub reviews: u64,
    pub sessions: u64,
}

/// How far back the review history goes.
const HISTORY_DAYS: i64 = 60;
/// How long a seeded session lasts.
const SESSION_DAYS: i64 = 30;
/// Rows per `UNNEST` statement.
const CHUNK: usize = 20_000;

/// RNG streams: one per table, so that changing how one table is drawn leaves the others.
const STREAM_USERS: u64 = 1;
const STREAM_WORDS: u64 = 2;
const STREAM_CARDS: u64 = 3;

/// The generated rows, before insertion.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedData {
    pub users: Vec<UserRow>,
    pub words: Vec<WordRow>,
    pub cards: Vec<CardRow>,
    /// In `reviewed_at` order; ids ascend with time.
    pub reviews: Vec<ReviewRow>,
}

/// A user with its preferences and its one session.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub daily_goal: i32,
    pub new_cards_per_day: i32,
    pub utc_offset_minutes: i32,
    /// `session-{id:05}`.
    pub session_token: String,
    pub session_created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WordRow {
    pub id: i64,
    pub lemma: String,
    pub definition: String,
    pub difficulty: i16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CardRow {
    pub id: i64,
    pub user_id: i64,
    pub word_id: i64,
    pub sm2: Sm2State,
    pub due_at: DateTime<Utc>,
    pub last_reviewed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRow {
    pub id: i64,
    pub card_id: i64,
    pub user_id: i64,
    pub reviewed_at: DateTime<Utc>,
    pub grade: Grade,
    pub ease_before: f32,
    pub ease_after: f32,
    pub interval_before: i32,
    pub interval_after: i32,
}

/// The token of the seeded session of a user.
pub fn session_token(user_id: i64) -> String {
    format!("session-{user_id:05}")
}

fn rng(stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    rng.set_stream(stream);
    rng
}

fn minutes(rng: &mut ChaCha8Rng, range: std::ops::Range<i64>) -> Duration {
    Duration::minutes(rng.random_range(range))
}

/// Generates every row for `size`, deterministically (pure: no I/O, no clock).
pub fn generate(size: SeedSize) -> SeedData {
    let now = crate::fixed_now();
    let users = generate_users(size, now);
    let words = generate_words(size);
    let (cards, reviews) = generate_cards(size, &words, now);
    SeedData {
        users,
        words,
        cards,
        reviews,
    }
}

fn generate_users(size: SeedSize, now: DateTime<Utc>) -> Vec<UserRow> {
    // Real offsets, weighted towards the common ones by repetition.
    const OFFSETS: [i32; 12] = [0, 0, 60, 60, 120, -300, -300, -480, 330, 540, 600, -180];
    const GOALS: [i32; 5] = [10, 20, 20, 30, 50];
    const NEW_PER_DAY: [i32; 4] = [5, 10, 10, 20];
    let mut rng = rng(STREAM_USERS);
    (1..=i64::from(size.users.max(1)))
        .map(|id| UserRow {
            id,
            name: format!("user-{id:05}"),
            created_at: now - Duration::days(rng.random_range(HISTORY_DAYS..720)),
            daily_goal: GOALS[rng.random_range(0..GOALS.len())],
            new_cards_per_day: NEW_PER_DAY[rng.random_range(0..NEW_PER_DAY.len())],
            utc_offset_minutes: OFFSETS[rng.random_range(0..OFFSETS.len())],
            session_token: session_token(id),
            session_created_at: now - minutes(&mut rng, 0..7 * 24 * 60),
        })
        .collect()
}

fn generate_words(size: SeedSize) -> Vec<WordRow> {
    let mut rng = rng(STREAM_WORDS);
    (1..=i64::from(size.words.max(1)))
        .map(|id| WordRow {
            id,
            lemma: lemma(id),
            definition: format!("the meaning of {} (entry {id})", lemma(id)),
            difficulty: rng.random_range(1..=5),
        })
        .collect()
}

/// A grade for a word of `difficulty` (1..=5): harder words are forgotten more often.
fn draw_grade(rng: &mut ChaCha8Rng, difficulty: i16) -> Grade {
    let fail_probability = 0.05 + 0.04 * f64::from(difficulty);
    let roll: f64 = rng.random();
    let value = if rng.random::<f64>() < fail_probability {
        // 0, 1, 2 with 20 %, 30 %, 50 %.
        match roll {
            r if r < 0.2 => 0,
            r if r < 0.5 => 1,
            _ => 2,
        }
    } else {
        // 3, 4, 5 with 30 %, 45 %, 25 %.
        match roll {
            r if r < 0.30 => 3,
            r if r < 0.75 => 4,
            _ => 5,
        }
    };
    Grade::new(value).expect("0..=5")
}

/// A card that was reviewed: who studies it, how hard its word is, from when until when.
struct ReviewedCard {
    card_id: i64,
    user_id: i64,
    difficulty: i16,
    introduced_at: DateTime<Utc>,
    active_until: DateTime<Utc>,
}

/// The reviews of `card` from its introduction, each when the card was due (up to 36 hours
/// late), until its user stopped: appended to `reviews`. Its state, when it is due next and
/// when it was last reviewed.
fn review_history(
    rng: &mut ChaCha8Rng,
    card: &ReviewedCard,
    reviews: &mut Vec<ReviewRow>,
) -> (Sm2State, DateTime<Utc>, DateTime<Utc>) {
    let mut state = Sm2State::NEW;
    let mut at = card.introduced_at;
    loop {
        let grade = draw_grade(rng, card.difficulty);
        let next = sm2::schedule(&state, grade, at);
        reviews.push(ReviewRow {
            id: 0,
            card_id: card.card_id,
            user_id: card.user_id,
            reviewed_at: at,
            grade,
            ease_before: state.ease,
            ease_after: next.state.ease,
            interval_before: state.interval_days,
            interval_after: next.state.interval_days,
        });
        state = next.state;
        // The next review happens when the card is due, up to 36 hours late.
        let next_at = next.due_at + minutes(rng, 0..36 * 60);
        if next_at > card.active_until {
            return (state, next.due_at, at);
        }
        at = next_at;
    }
}

/// Cards, and the reviews that brought each card to its state.
fn generate_cards(
    size: SeedSize,
    words: &[WordRow],
    now: DateTime<Utc>,
) -> (Vec<CardRow>, Vec<ReviewRow>) {
    let mut rng = rng(STREAM_CARDS);
    let users = size.users.max(1) as usize;
    let word_count = words.len();
    let wanted_total = size.cards as usize;
    // Per-user weights ~ 1/(rank^0.8), normalised to the requested card count, each user
    // capped at the number of words (one card per (user, word)).
    let weights: Vec<f64> = (1..=users)
        .map(|rank| 1.0 / (rank as f64).powf(0.8))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut cards = Vec::with_capacity(wanted_total);
    let mut reviews = Vec::with_capacity(wanted_total * 3);
    for (index, weight) in weights.iter().enumerate() {
        if cards.len() >= wanted_total {
            break;
        }
        let want = ((weight / total) * wanted_total as f64).round() as usize;
        let want = want.clamp(1, word_count).min(wanted_total - cards.len());
        let user_id = index as i64 + 1;
        // Two users in five stopped studying 1..=20 days ago: their due cards pile up.
        let active_until = if rng.random_range(0..5) < 2 {
            now - Duration::days(rng.random_range(1..=20))
        } else {
            now
        };
        let mut chosen = HashSet::with_capacity(want);
        while chosen.len() < want {
            // Squaring a uniform draw favours low (common) word ids.
            let draw: f64 = rng.random();
            let word_id = (((draw * draw) * word_count as f64) as i64 + 1).min(word_count as i64);
            if !chosen.insert(word_id) {
                continue;
            }
            let card_id = cards.len() as i64 + 1;
            let introduced_at = now - minutes(&mut rng, 0..HISTORY_DAYS * 24 * 60);
            // One card in six is still new; so is every card introduced after the user stopped.
            if introduced_at > active_until || rng.random_range(0..6) == 0 {
                cards.push(CardRow {
                    id: card_id,
                    user_id,
                    word_id,
                    sm2: Sm2State::NEW,
                    // New cards become available over the next weeks; some already are.
                    due_at: now + minutes(&mut rng, -30 * 24 * 60..60 * 24 * 60),
                    last_reviewed_at: None,
                });
                continue;
            }
            let difficulty = words[word_id as usize - 1].difficulty;
            let card = ReviewedCard {
                card_id,
                user_id,
                difficulty,
                introduced_at,
                active_until,
            };
            let (state, due_at, last_reviewed_at) = review_history(&mut rng, &card, &mut reviews);
            cards.push(CardRow {
                id: card_id,
                user_id,
                word_id,
                sm2: state,
                due_at,
                last_reviewed_at: Some(last_reviewed_at),
            });
        }
    }
    // Ids ascend with time, as they would have been assigned.
    reviews.sort_by_key(|review| (review.reviewed_at, review.card_id));
    for (index, review) in reviews.iter_mut().enumerate() {
        review.id = index as i64 + 1;
    }
    (cards, reviews)
}

/// The `default_statistics_target` at which `ANALYZE` reads every row of a table of `rows`
/// rows (it samples 300 rows per unit of target), at least Postgres's default of 100 and at
/// most its maximum of 10,000 (3,000,000 rows; larger seeds are sampled). `ANALYZE` samples at
/// random, so two databases seeded alike got different statistics: different estimates, and so
/// sometimes a different plan (sqlx's prepared statements switch to a generic plan by comparing
/// estimated costs), which `--paired` measured as a steady difference between base and head of
/// one commit (`query/difficult_cards`: 10% in most rounds of an A/A run). Read whole, the
/// tables give the same statistics every time.
pub fn statistics_target(rows: usize) -> u32 {
    let target = rows.div_ceil(300).clamp(100, 10_000);
    u32::try_from(target).unwrap_or(10_000)
}

/// Generates the fixtures and inserts them into an empty, migrated database, in one
/// transaction; then moves the id sequences past the seeded ids and runs `VACUUM (ANALYZE)`
/// (statistics for the planner, a visibility map for index-only scans), with a statistics
/// target that makes `ANALYZE` read every row ([`statistics_target`]).
///
/// All of it commits synchronously, whatever the server's `synchronous_commit`: Postgres sets
/// no hint bit, and so `VACUUM` marks no page all-visible, for rows whose commit may not be
/// flushed yet, and it judges that per group of transaction ids (the commit LSN it checks is
/// the latest of the group's, which the `VACUUM`'s own per-table transactions keep moving). On
/// a server that commits asynchronously (the harness's own, for speed) `review_log` was left
/// with no all-visible page, so every later read fetched its heap: `query/user_stats` took 2.2
/// to 5.5 ms at a level that moved from one process to the next, 1.4 ms seeded so, which
/// false-alarmed paired A/A runs.
pub async fn seed(pool: &PgPool, size: SeedSize) -> Result<SeedSummary, sqlx::Error> {
    let data = generate(size);
    let mut connection = pool.acquire().await?;
    sqlx::raw_sql("SET synchronous_commit = on")
        .execute(&mut *connection)
        .await?;
    let mut tx = connection.begin().await?;

    insert_users(&mut tx, &data.users).await?;
    insert_words(&mut tx, &data.words).await?;
    insert_cards(&mut tx, &data.cards).await?;
    insert_reviews(&mut tx, &data.reviews).await?;

    // Ids assigned by Postgres from now on come after the seeded ones.
    sqlx::raw_sql(
        "SELECT setval(pg_get_serial_sequence('words', 'id'), COALESCE(max(id), 0) + 1, false) \
             FROM words; \
         SELECT setval(pg_get_serial_sequence('review_cards', 'id'), COALESCE(max(id), 0) + 1, \
                       false) FROM review_cards; \
         SELECT setval(pg_get_serial_sequence('review_log', 'id'), COALESCE(max(id), 0) + 1, \
                       false) FROM review_log;",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

    // Outside a transaction (VACUUM cannot run in one), on the synchronous connection; one
    // query each (statements of one simple query share an implicit transaction).
    let largest = data
        .reviews
        .len()
        .max(data.cards.len())
        .max(data.words.len());
    let steps = [
        format!(
            "SET default_statistics_target = {}",
            statistics_target(largest)
        ),
        "VACUUM (ANALYZE)".to_owned(),
        "RESET default_statistics_target".to_owned(),
        "RESET synchronous_commit".to_owned(),
    ];
    for step in steps {
        sqlx::raw_sql(sqlx::AssertSqlSafe(step))
            .execute(&mut *connection)
            .await?;
    }
    Ok(SeedSummary {
        users: data.users.len() as u64,
        words: data.words.len() as u64,
        cards: data.cards.len() as u64,
        reviews: data.reviews.len() as u64,
        sessions: data.users.len() as u64,
    })
}

/// Inserts the users, their preferences and their sessions, `CHUNK` rows a statement.
async fn insert_users(conn: &mut PgConnection, users: &[UserRow]) -> Result<(), sqlx::Error> {
    for chunk in users.chunks(CHUNK) {
        let ids: Vec<i64> = chunk.iter().map(|u| u.id).collect();
        let names: Vec<&str> = chunk.iter().map(|u| u.name.as_str()).collect();
        let created: Vec<DateTime<Utc>> = chunk.iter().map(|u| u.created_at).collect();
        sqlx::query(
            "INSERT INTO users (id, name, created_at) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TIMESTAMPTZ[])",
        )
        .bind(&ids)
        .bind(&names)
        .bind(&created)
        .execute(&mut *conn)
        .await?;
        let goals: Vec<i32> = chunk.iter().map(|u| u.daily_goal).collect();
        let new_per_day: Vec<i32> = chunk.iter().map(|u| u.new_cards_per_day).collect();
        let offsets: Vec<i32> = chunk.iter().map(|u| u.utc_offset_minutes).collect();
        sqlx::query(
            "INSERT INTO user_preferences (user_id, daily_goal, new_cards_per_day, \
                                           utc_offset_minutes) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::INTEGER[], $3::INTEGER[], $4::INTEGER[])",
        )
        .bind(&ids)
        .bind(&goals)
        .bind(&new_per_day)
        .bind(&offsets)
        .execute(&mut *conn)
        .await?;
        let tokens: Vec<&str> = chunk.iter().map(|u| u.session_token.as_str()).collect();
        let session_created: Vec<DateTime<Utc>> =
            chunk.iter().map(|u| u.session_created_at).collect();
        let expires: Vec<DateTime<Utc>> = session_created
            .iter()
            .map(|&at| at + Duration::days(SESSION_DAYS))
            .collect();
        sqlx::query(
            "INSERT INTO sessions (token, user_id, created_at, expires_at) \
             SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TIMESTAMPTZ[], $4::TIMESTAMPTZ[])",
        )
        .bind(&tokens)
        .bind(&ids)
        .bind(&session_created)
        .bind(&expires)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Inserts the words, `CHUNK` rows a statement.
async fn insert_words(conn: &mut PgConnection, words: &[WordRow]) -> Result<(), sqlx::Error> {
    for chunk in words.chunks(CHUNK) {
        let ids: Vec<i64> = chunk.iter().map(|w| w.id).collect();
        let lemmas: Vec<&str> = chunk.iter().map(|w| w.lemma.as_str()).collect();
        let definitions: Vec<&str> = chunk.iter().map(|w| w.definition.as_str()).collect();
        let difficulty: Vec<i16> = chunk.iter().map(|w| w.difficulty).collect();
        sqlx::query(
            "INSERT INTO words (id, lemma, definition, difficulty) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::SMALLINT[])",
        )
        .bind(&ids)
        .bind(&lemmas)
        .bind(&definitions)
        .bind(&difficulty)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Inserts the cards, `CHUNK` rows a statement.
async fn insert_cards(conn: &mut PgConnection, cards: &[CardRow]) -> Result<(), sqlx::Error> {
    for chunk in cards.chunks(CHUNK) {
        let column = |f: fn(&CardRow) -> i64| chunk.iter().map(f).collect::<Vec<_>>();
        let state: Vec<i16> = chunk.iter().map(|c| c.sm2.state.as_i16()).collect();
        let ease: Vec<f32> = chunk.iter().map(|c| c.sm2.ease).collect();
        let interval: Vec<i32> = chunk.iter().map(|c| c.sm2.interval_days).collect();
        let reps: Vec<i32> = chunk.iter().map(|c| c.sm2.repetitions).collect();
        let lapses: Vec<i32> = chunk.iter().map(|c| c.sm2.lapses).collect();
        let due: Vec<DateTime<Utc>> = chunk.iter().map(|c| c.due_at).collect();
        let last: Vec<Option<DateTime<Utc>>> = chunk.iter().map(|c| c.last_reviewed_at).collect();
        sqlx::query(
            "INSERT INTO review_cards (id, user_id, word_id, card_state, ease, interval_days, \
                                       repetitions, lapses, due_at, last_reviewed_at) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::SMALLINT[], \
                                  $5::REAL[], $6::INTEGER[], $7::INTEGER[], $8::INTEGER[], \
                                  $9::TIMESTAMPTZ[], $10::TIMESTAMPTZ[])",
        )
        .bind(column(|c| c.id))
        .bind(column(|c| c.user_id))
        .bind(column(|c| c.word_id))
        .bind(&state)
        .bind(&ease)
        .bind(&interval)
        .bind(&reps)
        .bind(&lapses)
        .bind(&due)
        .bind(&last)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Inserts the review log, `CHUNK` rows a statement.
async fn insert_reviews(conn: &mut PgConnection, reviews: &[ReviewRow]) -> Result<(), sqlx::Error> {
    for chunk in reviews.chunks(CHUNK) {
        let column = |f: fn(&ReviewRow) -> i64| chunk.iter().map(f).collect::<Vec<_>>();
        let at: Vec<DateTime<Utc>> = chunk.iter().map(|r| r.reviewed_at).collect();
        let grade: Vec<i16> = chunk.iter().map(|r| i16::from(r.grade.value())).collect();
        let ease_before: Vec<f32> = chunk.iter().map(|r| r.ease_before).collect();
        let ease_after: Vec<f32> = chunk.iter().map(|r| r.ease_after).collect();
        let interval_before: Vec<i32> = chunk.iter().map(|r| r.interval_before).collect();
        let interval_after: Vec<i32> = chunk.iter().map(|r| r.interval_after).collect();
        sqlx::query(
            "INSERT INTO review_log (id, card_id, user_id, reviewed_at, grade, ease_before, \
                                     ease_after, interval_before, interval_after) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::TIMESTAMPTZ[], \
                                  $5::SMALLINT[], $6::REAL[], $7::REAL[], $8::INTEGER[], \
                                  $9::INTEGER[])",
        )
        .bind(column(|r| r.id))
        .bind(column(|r| r.card_id))
        .bind(column(|r| r.user_id))
        .bind(&at)
        .bind(&grade)
        .bind(&ease_before)
        .bind(&ease_after)
        .bind(&interval_before)
        .bind(&interval_after)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A pronounceable, deterministic lemma for a word id (distinct ids give distinct lemmas).
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_statistics_target_reads_whole_tables_up_to_postgres_maximum() {
        assert_eq!(super::statistics_target(0), 100);
        assert_eq!(super::statistics_target(30_000), 100);
        assert_eq!(super::statistics_target(30_001), 101);
        // The default seed's largest table, review_log: 374,162 rows; 300 x 1,248 = 374,400.
        let target = super::statistics_target(374_162);
        assert_eq!(target, 1_248);
        assert!(300 * u64::from(target) >= 374_162);
        assert_eq!(super::statistics_target(50_000_000), 10_000);
    }

    use std::collections::{BTreeMap, HashSet};

    use super::*;
    use crate::sm2::CardState;

    const SMALL: SeedSize = SeedSize {
        users: 50,
        words: 2_000,
        cards: 5_000,
    };

    #[test]
    fn generation_is_deterministic() {
        let first = generate(SMALL);
        let second = generate(SMALL);
        assert_eq!(first, second);
        // Pinned: a change here changes every measurement's data, on purpose or not.
        assert_eq!(first.cards.len(), 5_000);
        assert_eq!(first.users[6].session_token, "session-00007");
    }

    #[test]
    fn scaled_sizes() {
        assert_eq!(SeedSize::scaled(1.0), SeedSize::default());
        assert_eq!(
            SeedSize::scaled(0.1),
            SeedSize {
                users: 100,
                words: 2_000,
                cards: 10_000
            }
        );
        assert_eq!(
            SeedSize::scaled(10.0),
            SeedSize {
                users: 10_000,
                words: 200_000,
                cards: 1_000_000
            }
        );
        let tiny = SeedSize {
            users: 1,
            words: 1,
            cards: 1,
        };
        assert_eq!(SeedSize::scaled(0.0), tiny);
        assert_eq!(SeedSize::scaled(f64::NAN), tiny);
        assert_eq!(SeedSize::scaled(1e12).cards, u32::MAX);
    }

    #[test]
    fn cards_are_unique_per_user_and_word_and_reference_existing_rows() {
        let data = generate(SMALL);
        let mut pairs = HashSet::new();
        for (index, card) in data.cards.iter().enumerate() {
            assert_eq!(card.id, index as i64 + 1);
            assert!(pairs.insert((card.user_id, card.word_id)));
            assert!((1..=i64::from(SMALL.users)).contains(&card.user_id));
            assert!((1..=i64::from(SMALL.words)).contains(&card.word_id));
        }
        let lemmas: HashSet<&str> = data.words.iter().map(|w| w.lemma.as_str()).collect();
        assert_eq!(lemmas.len(), data.words.len());
    }

    /// Replaying a card's reviews through SM-2 gives the card's stored state.
    #[test]
    fn cards_agree_with_their_review_history() {
        let data = generate(SMALL);
        let now = crate::fixed_now();
        let mut history: BTreeMap<i64, Vec<&ReviewRow>> = BTreeMap::new();
        for (index, review) in data.reviews.iter().enumerate() {
            assert_eq!(review.id, index as i64 + 1);
            assert!(review.reviewed_at <= now);
            assert!(review.reviewed_at > now - Duration::days(HISTORY_DAYS));
            history.entry(review.card_id).or_default().push(review);
        }
        assert!(
            data.reviews.len() > data.cards.len(),
            "a few reviews per card"
        );
        for card in &data.cards {
            let Some(reviews) = history.get(&card.id) else {
                assert_eq!(card.sm2, Sm2State::NEW);
                assert_eq!(card.last_reviewed_at, None);
                continue;
            };
            let mut state = Sm2State::NEW;
            let mut due_at = None;
            for review in reviews {
                assert_eq!(review.user_id, card.user_id);
                assert_eq!(review.ease_before, state.ease);
                let next = sm2::schedule(&state, review.grade, review.reviewed_at);
                state = next.state;
                due_at = Some(next.due_at);
            }
            assert_eq!(state, card.sm2);
            assert_eq!(due_at, Some(card.due_at));
            assert_eq!(
                card.last_reviewed_at,
                reviews.last().map(|review| review.reviewed_at)
            );
        }
    }

    #[test]
    fn the_data_is_skewed_and_about_a_third_is_due() {
        let data = generate(SeedSize::default());
        let now = crate::fixed_now();
        let due = data.cards.iter().filter(|c| c.due_at <= now).count();
        let share = due as f64 / data.cards.len() as f64;
        assert!((0.2..0.5).contains(&share), "due share {share}");
        let of_user = |id| data.cards.iter().filter(|c| c.user_id == id).count();
        assert!(of_user(1) > 20 * of_user(1_000));
        let states: HashSet<CardState> = data.cards.iter().map(|c| c.sm2.state).collect();
        assert_eq!(states.len(), 4, "every state occurs");
        assert!(data.cards.iter().any(|c| c.sm2.lapses >= 2));
    }

    #[test]
    fn lemmas_are_distinct_and_stable() {
        assert_eq!(lemma(0), "ka");
        assert_eq!(lemma(1), "lo");
        assert_eq!(lemma(16), "kalo");
        assert_eq!(lemma(42), "fumi");
    }
}
