//! The operations the `wall_time` benchmarks time, defined once, so that every timed operation
//! also has exact I/O counts: `suite scenario call.<group>.<name>` runs one call of the same
//! operation, prepared the same way (warm where the benchmark is warm, cold where it is cold),
//! outside criterion's loop, and the harness counts its SQL statements, rows and Redis commands
//! on the servers like any scenario's. An N+1 added to a benchmarked path is then a counted
//! regression, not a wall-time row filed as information.
//!
//! Each operation has three parts: [`Operation::prepare`] (once, untimed: connections, warm
//! caches, a cursor, the cards to import), [`Operation::reset`] (untimed, before every call of
//! the operations that change what the next call sees: a cold dashboard, an import) and
//! [`Operation::call`] (the timed or counted call).
//!
//! Must never: time in `benches/wall_time.rs` anything that is not an [`Operation`] here, or
//! put into [`Operation::call`] work that the benchmark does not time.

use anyhow::{Context, Result, bail};
use redis::AsyncCommands as _;
use sqlx::Row as _;

use crate::model::{DueCursor, NewCard, ReviewRequestId};
use crate::query::{self, RowByRow};
use crate::scenarios::{Handshake, Measured, Observations};
use crate::seed::session_token;
use crate::service::{Service, ServiceOptions};
use crate::settings::Settings;
use crate::sm2::Grade;

/// A word every seed size contains.
const HOT_WORD: i64 = 42;
/// A user with a long due list in the default seed.
const BUSY_USER: i64 = 7;
/// The user whose second due page the paging benchmark reads: user 1 has the most cards at
/// every seed size (the seed gives users cards by weights that fall with their rank), so the
/// smallest seeds a team configures for speed still give it a second page where user 7 has
/// none (2,000 cards over 50 users leave user 7 with 40 due cards, user 1 with 163).
pub const PAGING_USER: i64 = 1;
/// The user whose card the review benchmark reviews again and again (no other benchmark or
/// scenario reads this user's data).
const REVIEW_USER: i64 = 13;
/// Users that exist only for the import benchmarks.
const IMPORT_USERS: std::ops::RangeInclusive<i64> = 1_000_001..=1_000_010;
/// Cards per import: 10 users x 1,000 words.
const IMPORT_CARDS: usize = 10_000;
/// The prefix of a counted operation's scenario name.
pub const SCENARIO_PREFIX: &str = "call.";

/// A benchmarked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    L1Hit,
    CacheAsideRead,
    RawRedisGet,
    WordsLookup50,
    DueCards,
    RawDueCardsStatement,
    DueCardsNextPage,
    DifficultCards,
    WordPrefixSearch,
    UserStats,
    DashboardWarm,
    DashboardCold,
    Authenticate,
    RecordReview,
    ImportBulk,
    ImportRowByRow,
    ImportRowByRowAutocommit,
}

/// What an operation's calls need, made once by [`Operation::prepare`].
pub enum Prepared {
    Nothing,
    RedisKey(redis::aio::ConnectionManager, String),
    WordIds(Vec<i64>),
    Cursor(DueCursor),
    Token(String),
    Card(i64),
    Cards(Vec<NewCard>),
}

/// The two service instances the operations run on, L1 on and L1 off.
pub struct Fixture {
    pub with_l1: Service,
    pub l2_only: Service,
}

impl Fixture {
    pub async fn connect(settings: &Settings) -> Result<Self> {
        let with_l1 = Service::connect(settings, &ServiceOptions::default()).await?;
        let l2_only = Service::connect(
            settings,
            &ServiceOptions {
                l1_enabled: false,
                ..ServiceOptions::default()
            },
        )
        .await?;
        Ok(Self { with_l1, l2_only })
    }
}

impl Operation {
    /// Every operation, in the order the benchmarks run them.
    pub const ALL: [Operation; 17] = [
        Self::L1Hit,
        Self::CacheAsideRead,
        Self::RawRedisGet,
        Self::WordsLookup50,
        Self::DueCards,
        Self::RawDueCardsStatement,
        Self::DueCardsNextPage,
        Self::DifficultCards,
        Self::WordPrefixSearch,
        Self::UserStats,
        Self::DashboardWarm,
        Self::DashboardCold,
        Self::Authenticate,
        Self::RecordReview,
        Self::ImportBulk,
        Self::ImportRowByRow,
        Self::ImportRowByRowAutocommit,
    ];

    /// The benchmark's name, `<group>/<name>`: `wall_time/<this>` is its wall-time metric.
    pub fn benchmark(self) -> &'static str {
        match self {
            Self::L1Hit => "cache/l1_hit",
            Self::CacheAsideRead => "cache/cache_aside_read",
            Self::RawRedisGet => "raw/redis_get",
            Self::WordsLookup50 => "cache/words_lookup_50",
            Self::DueCards => "query/due_cards",
            Self::RawDueCardsStatement => "raw/due_cards_statement",
            Self::DueCardsNextPage => "query/due_cards_next_page",
            Self::DifficultCards => "query/difficult_cards",
            Self::WordPrefixSearch => "query/word_prefix_search",
            Self::UserStats => "query/user_stats",
            Self::DashboardWarm => "service/dashboard_warm",
            Self::DashboardCold => "service/dashboard_cold",
            Self::Authenticate => "service/authenticate",
            Self::RecordReview => "service/record_review",
            Self::ImportBulk => "import/bulk_10k",
            Self::ImportRowByRow => "import/row_by_row_10k",
            Self::ImportRowByRowAutocommit => "import/row_by_row_autocommit_10k",
        }
    }

    /// The name of the scenario that counts one call: `call.<group>.<name>` (a scenario name
    /// has no `/`: it is one part of the metric names `io/<scenario>/…`).
    pub fn scenario(self) -> String {
        format!("{SCENARIO_PREFIX}{}", self.benchmark().replace('/', "."))
    }

    /// The operation a scenario name counts, if it names one.
    pub fn of_scenario(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.scenario() == name)
    }

    /// What one call does, and whether it is warm or cold.
    pub fn about(self) -> &'static str {
        match self {
            Self::L1Hit => "one word lookup, warm in L1 (no I/O)",
            Self::CacheAsideRead => "one word lookup with L1 off, warm in Redis (1 GET)",
            Self::RawRedisGet => "one GET of a cached word's key, without the cache layer",
            Self::WordsLookup50 => "50 word lookups with L1 off, warm in Redis (1 MGET)",
            Self::DueCards => "the first due page of a busy user, from the database",
            Self::RawDueCardsStatement => "the first due page's statement, without the layer",
            Self::DueCardsNextPage => "the second due page of the busiest user, from the database",
            Self::DifficultCards => "a busy user's 20 most difficult cards",
            Self::WordPrefixSearch => "the first 20 words starting with \"ka\"",
            Self::UserStats => "a busy user's statistics, from the database",
            Self::DashboardWarm => "a busy user's dashboard, warm in L1 (no I/O)",
            Self::DashboardCold => "a busy user's dashboard after invalidation (cold)",
            Self::Authenticate => "one session lookup, warm in L1 (no I/O)",
            Self::RecordReview => "one review with its invalidations",
            Self::ImportBulk => "10,000 new cards in one set-based statement",
            Self::ImportRowByRow => "10,000 new cards, one INSERT each, in one transaction",
            Self::ImportRowByRowAutocommit => "10,000 new cards, one INSERT each, autocommit",
        }
    }

    /// How many samples criterion takes, where the operation sets its own (about a second
    /// per call).
    pub fn sample_size(self) -> Option<usize> {
        matches!(
            self,
            Self::ImportBulk | Self::ImportRowByRow | Self::ImportRowByRowAutocommit
        )
        .then_some(10)
    }

    /// Whether every call needs [`Operation::reset`] first (and once after the last call).
    pub fn resets(self) -> bool {
        matches!(
            self,
            Self::DashboardCold
                | Self::ImportBulk
                | Self::ImportRowByRow
                | Self::ImportRowByRowAutocommit
        )
    }

    /// Makes what the calls need and warms what the benchmark has warm (untimed, once).
    pub async fn prepare(self, f: &Fixture) -> Result<Prepared> {
        let (with_l1, l2_only) = (&f.with_l1, &f.l2_only);
        Ok(match self {
            Self::L1Hit => {
                with_l1
                    .word_lookup(HOT_WORD)
                    .await?
                    .context("the hot word is missing from the seed data")?;
                Prepared::Nothing
            }
            Self::CacheAsideRead => {
                l2_only.word_lookup(HOT_WORD).await?;
                Prepared::Nothing
            }
            Self::RawRedisGet => {
                l2_only.word_lookup(HOT_WORD).await?;
                let words = l2_only.word_cache();
                let key = words.redis_key(&HOT_WORD);
                Prepared::RedisKey(words.l2().connection().clone(), key)
            }
            Self::WordsLookup50 => {
                let ids: Vec<i64> = (1..=50).map(|i| i * 37).collect();
                l2_only.words_lookup(&ids).await?;
                Prepared::WordIds(ids)
            }
            Self::DueCardsNextPage => {
                let first =
                    query::due_cards(with_l1.pool(), PAGING_USER, with_l1.now(), None).await?;
                Prepared::Cursor(first.next.with_context(|| {
                    format!(
                        "user {PAGING_USER} has no second due page (at most {} due cards): the \
                         seed is too small for query/due_cards_next_page; raise `cards` in \
                         [workspace.metadata.perf.seed]",
                        query::DUE_PAGE_SIZE
                    )
                })?)
            }
            Self::DashboardWarm => {
                with_l1.dashboard(BUSY_USER).await?;
                Prepared::Nothing
            }
            Self::Authenticate => {
                let token = session_token(BUSY_USER);
                with_l1.authenticate(&token).await?;
                Prepared::Token(token)
            }
            Self::RecordReview => Prepared::Card(review_card(with_l1).await?),
            Self::ImportBulk | Self::ImportRowByRow | Self::ImportRowByRowAutocommit => {
                Prepared::Cards(import_fixture(with_l1).await?)
            }
            Self::DueCards
            | Self::RawDueCardsStatement
            | Self::DifficultCards
            | Self::WordPrefixSearch
            | Self::UserStats
            | Self::DashboardCold => Prepared::Nothing,
        })
    }

    /// Returns what a call changes to the state every call starts from (untimed): the cold
    /// dashboard's caches emptied, the imported cards deleted. Nothing for the others.
    pub async fn reset(self, f: &Fixture) -> Result<()> {
        match self {
            Self::DashboardCold => f.with_l1.invalidate_dashboard(BUSY_USER).await?,
            Self::ImportBulk | Self::ImportRowByRow | Self::ImportRowByRowAutocommit => {
                remove_imported(f.with_l1.pool()).await?
            }
            _ => {}
        }
        Ok(())
    }

    /// One call: what the benchmark times. Returns a number derived from the result (its size)
    /// for the benchmark to `black_box`.
    pub async fn call(self, f: &Fixture, prepared: &Prepared) -> Result<u64> {
        let (with_l1, l2_only) = (&f.with_l1, &f.l2_only);
        let (pool, now) = (with_l1.pool(), with_l1.now());
        Ok(match (self, prepared) {
            (Self::L1Hit, _) => with_l1.word_lookup(HOT_WORD).await?.is_some().into(),
            (Self::CacheAsideRead, _) => l2_only.word_lookup(HOT_WORD).await?.is_some().into(),
            (Self::RawRedisGet, Prepared::RedisKey(connection, key)) => {
                let bytes: Option<Vec<u8>> = connection.clone().get(key.as_str()).await?;
                bytes.context("the hot word's key is not cached")?.len() as u64
            }
            (Self::WordsLookup50, Prepared::WordIds(ids)) => {
                l2_only.words_lookup(ids).await?.len() as u64
            }
            (Self::DueCards, _) => query::due_cards(pool, BUSY_USER, now, None)
                .await?
                .cards
                .len() as u64,
            (Self::RawDueCardsStatement, _) => raw_due_cards(pool, now).await?,
            (Self::DueCardsNextPage, Prepared::Cursor(cursor)) => {
                query::due_cards(pool, PAGING_USER, now, Some(*cursor))
                    .await?
                    .cards
                    .len() as u64
            }
            (Self::DifficultCards, _) => {
                query::difficult_cards(pool, BUSY_USER, 20).await?.len() as u64
            }
            (Self::WordPrefixSearch, _) => {
                query::word_prefix_search(pool, "ka", 20).await?.len() as u64
            }
            (Self::UserStats, _) => query::user_stats(pool, BUSY_USER, now).await?.due_now as u64,
            (Self::DashboardWarm | Self::DashboardCold, _) => {
                with_l1.dashboard(BUSY_USER).await?.due.cards.len() as u64
            }
            (Self::Authenticate, Prepared::Token(token)) => {
                with_l1.authenticate(token).await?.is_some().into()
            }
            (Self::RecordReview, Prepared::Card(card)) => {
                let grade = Grade::new(4).expect("a valid grade");
                let review = with_l1
                    .record_review(REVIEW_USER, *card, grade, ReviewRequestId::random())
                    .await?;
                review.recorded().is_some().into()
            }
            (Self::ImportBulk, Prepared::Cards(cards)) => import(pool, cards, None).await?,
            (Self::ImportRowByRow, Prepared::Cards(cards)) => {
                import(pool, cards, Some(RowByRow::OneTransaction)).await?
            }
            (Self::ImportRowByRowAutocommit, Prepared::Cards(cards)) => {
                import(pool, cards, Some(RowByRow::Autocommit)).await?
            }
            (op, _) => bail!("{op:?} was called with what another operation prepared"),
        })
    }

    /// `suite scenario call.<…>`: prepares the operation, resets it, and hands one call to
    /// `handshake` to be counted; then, once the harness has read the counts
    /// ([`Handshake::measured`]), resets again so that nothing it changed outlives it.
    pub async fn count_one_call(
        self,
        settings: &Settings,
        handshake: &Handshake,
    ) -> Result<Measured> {
        let fixture = Fixture::connect(settings).await?;
        let prepared = self.prepare(&fixture).await?;
        self.reset(&fixture).await?;
        let measured = handshake
            .measure(async || {
                self.call(&fixture, &prepared).await?;
                Ok(Observations::new())
            })
            .await?;
        if self.resets() {
            handshake.measured().await?;
            self.reset(&fixture).await?;
        }
        Ok(measured)
    }
}

async fn raw_due_cards(pool: &sqlx::PgPool, now: chrono::DateTime<chrono::Utc>) -> Result<u64> {
    let rows = sqlx::query(query::DUE_CARDS_FIRST_PAGE_SQL)
        .bind(BUSY_USER)
        .bind(now)
        .bind(query::DUE_PAGE_SIZE as i64)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(|row| row.get::<i64, _>(0)).sum::<i64>() as u64)
}

async fn import(
    pool: &sqlx::PgPool,
    cards: &[NewCard],
    row_by_row: Option<RowByRow>,
) -> Result<u64> {
    let inserted = match row_by_row {
        Some(mode) => query::import_cards_row_by_row(pool, cards, mode).await?,
        None => query::import_cards(pool, cards).await?,
    };
    anyhow::ensure!(
        inserted as usize == cards.len(),
        "imported {inserted} of {} new cards: the import's users were not reset",
        cards.len()
    );
    Ok(inserted)
}

/// The card the review benchmark reviews: the review user's first.
async fn review_card(service: &Service) -> Result<i64> {
    sqlx::query_scalar::<_, Option<i64>>("SELECT min(id) FROM review_cards WHERE user_id = $1")
        .bind(REVIEW_USER)
        .fetch_one(service.pool())
        .await?
        .with_context(|| format!("user {REVIEW_USER} has no card in the seed data"))
}

/// Makes the import benchmarks' users (once) and returns the cards to import, none of which
/// exists after [`Operation::reset`].
async fn import_fixture(service: &Service) -> Result<Vec<NewCard>> {
    let (pool, now) = (service.pool(), service.now());
    let ids: Vec<i64> = IMPORT_USERS.collect();
    let names: Vec<String> = ids.iter().map(|id| format!("import-bench-{id}")).collect();
    sqlx::query(
        "INSERT INTO users (id, name, created_at) \
         SELECT id, name, $3 FROM UNNEST($1::BIGINT[], $2::TEXT[]) AS u(id, name) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&names)
    .bind(now)
    .execute(pool)
    .await?;
    let per_user = (IMPORT_CARDS / IMPORT_USERS.count()) as i64;
    Ok(IMPORT_USERS
        .flat_map(|user_id| {
            (1..=per_user).map(move |word_id| NewCard {
                user_id,
                word_id,
                due_at: now,
            })
        })
        .collect())
}

/// Deletes the imported cards and vacuums the table, so that every import (bulk or row by row)
/// starts from the same table, without the dead index entries of earlier imports that its
/// unique check would otherwise visit, more with each round. Both commit synchronously, for the
/// reason [`crate::seed::seed`] does: `VACUUM` leaves pages whose rows' commit may not be
/// flushed yet without their all-visible mark.
async fn remove_imported(pool: &sqlx::PgPool) -> Result<()> {
    let mut connection = pool.acquire().await.context("remove imported cards")?;
    let steps = [
        "SET synchronous_commit = on",
        "DELETE FROM review_cards WHERE user_id BETWEEN $1 AND $2",
        "VACUUM review_cards",
        "RESET synchronous_commit",
    ];
    for step in steps {
        let mut statement = sqlx::query(step);
        if step.contains("$1") {
            statement = statement
                .bind(*IMPORT_USERS.start())
                .bind(*IMPORT_USERS.end());
        }
        statement
            .execute(&mut *connection)
            .await
            .with_context(|| format!("remove imported cards: {step}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_one_benchmark_and_one_scenario() {
        let mut benchmarks: Vec<&str> = Operation::ALL.iter().map(|op| op.benchmark()).collect();
        benchmarks.sort_unstable();
        benchmarks.dedup();
        assert_eq!(benchmarks.len(), Operation::ALL.len());
        for op in Operation::ALL {
            assert!(!op.scenario().contains('/'), "{}", op.scenario());
            assert_eq!(Operation::of_scenario(&op.scenario()), Some(op));
        }
        assert_eq!(
            Operation::DueCards.scenario(),
            "call.query.due_cards",
            "the scenario is the benchmark's name with dots"
        );
        assert_eq!(Operation::of_scenario("due_cards"), None);
    }

    /// The paging benchmark needs more than one page of due cards for its user: at the
    /// default seed, at a tenth and a hundredth of it, and at the small seed the workflow
    /// lifecycle test configures (50 users, 20,000 words, 2,000 cards).
    #[test]
    fn the_paging_user_has_a_second_due_page_at_small_and_default_seed_sizes() {
        let sizes = [
            crate::seed::SeedSize::default(),
            crate::seed::SeedSize::scaled(0.1),
            crate::seed::SeedSize::scaled(0.01),
            crate::seed::SeedSize {
                users: 50,
                words: 20_000,
                cards: 2_000,
            },
        ];
        let now = crate::fixed_now();
        for size in sizes {
            let data = crate::seed::generate(size);
            let due = data
                .cards
                .iter()
                .filter(|card| card.user_id == PAGING_USER && card.due_at <= now)
                .count();
            assert!(
                due > query::DUE_PAGE_SIZE,
                "{size:?}: user {PAGING_USER} has {due} due cards"
            );
        }
    }
}
