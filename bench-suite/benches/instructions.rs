//! Instruction-count benchmarks (Gungraun, under valgrind's callgrind) of the CPU-bound paths
//! of the service: encoding and decoding what the cache holds (a word, a due page), building
//! cache keys with their TTLs, decoding a page of Postgres rows into due cards, and SM-2
//! scheduling of a review. Deterministic: the same binary and the same seed data give the
//! same counts. Needs `gungraun-runner` of the same version as the `gungraun` crate on PATH;
//! `query/due_cards_row_decode` also needs the seeded database of a run (`DATABASE_URL`, set
//! by the harness), from which its setup fetches the rows before counting starts.
//!
//! The binary allocates from [`ArenaAllocator`]: with the system allocator a count depended on
//! the heap's history (and so on the length of the binary's path and of `DATABASE_URL`), not
//! only on the code; see `bench_suite::arena`.

use std::hint::black_box;

use bench_suite::arena::ArenaAllocator;
use bench_suite::cache::{KeySpace, Namespace, RedisKey, entry_ttls};
use bench_suite::codec;
use bench_suite::model::{DueCard, DuePage, Word};
use bench_suite::query::{DUE_CARDS_FIRST_PAGE_SQL, DUE_PAGE_SIZE};
use bench_suite::seed::lemma;
use bench_suite::sm2::{self, CardState, Grade, Scheduled, Sm2State};
use gungraun::{LibraryBenchmarkConfig, library_benchmark, library_benchmark_group, main};
use sqlx::postgres::PgRow;
use sqlx::{Connection, FromRow, PgConnection};

#[global_allocator]
static ALLOCATOR: ArenaAllocator = ArenaAllocator;

fn word() -> Word {
    Word {
        id: 42,
        lemma: lemma(42),
        definition: format!("the meaning of {} (entry 42)", lemma(42)),
        difficulty: 3,
    }
}

fn encoded_word() -> Vec<u8> {
    codec::encode(&word()).expect("encode")
}

fn due_page() -> DuePage {
    let now = bench_suite::fixed_now();
    let cards = (0..DUE_PAGE_SIZE as i64)
        .map(|i| DueCard {
            card_id: 1_000 + i,
            word_id: i + 1,
            lemma: lemma(i + 1),
            card_state: (i % 4) as i16,
            ease: 2.5,
            interval_days: i as i32,
            repetitions: (i % 7) as i32,
            due_at: now - chrono::Duration::minutes(i * 13),
        })
        .collect();
    DuePage::from_rows(cards, DUE_PAGE_SIZE)
}

fn encoded_due_page() -> Vec<u8> {
    codec::encode(&due_page()).expect("encode")
}

#[library_benchmark]
#[bench::word(encoded_word())]
fn cache_aside_read_decode(bytes: Vec<u8>) -> Word {
    black_box(codec::decode(black_box(&bytes)).expect("decode"))
}

#[library_benchmark]
#[bench::word(word())]
fn cache_aside_fill_encode(value: Word) -> Vec<u8> {
    black_box(codec::encode(black_box(&value)).expect("encode"))
}

#[library_benchmark]
#[bench::page_of_50(encoded_due_page())]
fn due_cards_page_decode(bytes: Vec<u8>) -> DuePage {
    black_box(codec::decode(black_box(&bytes)).expect("decode"))
}

/// A user with a full first due page in the default seed whose cards nothing writes to before
/// this benchmark runs (scenarios review and import for users 1..=10, the wall-time review
/// benchmark for user 13), so every run decodes the same rows.
const ROW_DECODE_USER: i64 = 20;

/// The rows of a user's first due page, fetched from the run's database. A setup: it runs in
/// the benchmark's process before counting starts, so the connection is not counted.
fn due_page_rows(user_id: i64) -> Vec<PgRow> {
    let url = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: `query/due_cards_row_decode` reads rows from a seeded \
         database; run it through `cargo xtask perf`, which sets it",
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let mut connection = PgConnection::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect to DATABASE_URL: {e}"));
        let rows = sqlx::query(DUE_CARDS_FIRST_PAGE_SQL)
            .bind(user_id)
            .bind(bench_suite::fixed_now())
            .bind(DUE_PAGE_SIZE as i64)
            .fetch_all(&mut connection)
            .await
            .expect("the first due page");
        assert_eq!(rows.len(), DUE_PAGE_SIZE, "user {user_id}'s due page");
        connection.close().await.expect("close the connection");
        rows
    })
}

// Decodes a page of due-list rows (Postgres' binary format) into due cards, as every due-list
// read that misses the cache does. The rows are handed back so that dropping them (buffers of
// the connection, not decoding) is not counted.
#[library_benchmark(
    config = LibraryBenchmarkConfig::default().pass_through_env("DATABASE_URL")
)]
#[bench::page_of_50(args = (ROW_DECODE_USER), setup = due_page_rows)]
fn due_cards_row_decode(rows: Vec<PgRow>) -> (Vec<PgRow>, Vec<DueCard>) {
    let cards = black_box(&rows)
        .iter()
        .map(DueCard::from_row)
        .collect::<Result<Vec<_>, _>>()
        .expect("due-list rows decode");
    (rows, black_box(cards))
}

// Builds the Redis key of a user's due page and its jittered TTLs, as every cached read does.
#[library_benchmark]
#[bench::due_page_of_user(KeySpace::new("perf", &Namespace::DueCards.config()))]
fn key_and_ttls(keys: KeySpace) -> (RedisKey, u64) {
    let key = keys.key(black_box(&123_456_i64));
    let ttls = entry_ttls(&Namespace::DueCards.config(), key.hash, false);
    black_box((key, ttls.l2_secs))
}

fn card(state: CardState, interval_days: i32, repetitions: i32) -> Sm2State {
    Sm2State {
        state,
        ease: 2.5,
        interval_days,
        repetitions,
        lapses: 1,
    }
}

// SM-2 rescheduling of one review: a success on a mature card, a lapse, a first review.
#[library_benchmark]
#[bench::mature_success(card(CardState::Review, 21, 5), 4)]
#[bench::lapse(card(CardState::Review, 21, 5), 1)]
#[bench::first_review(Sm2State::NEW, 5)]
fn sm2_schedule(card: Sm2State, grade: u8) -> Scheduled {
    let grade = Grade::new(grade).expect("a valid grade");
    black_box(sm2::schedule(
        black_box(&card),
        black_box(grade),
        bench_suite::fixed_now(),
    ))
}

library_benchmark_group!(
    name = cache;
    benchmarks = cache_aside_read_decode, cache_aside_fill_encode, key_and_ttls
);

library_benchmark_group!(
    name = review;
    benchmarks = sm2_schedule
);

library_benchmark_group!(
    name = query;
    benchmarks = due_cards_page_decode, due_cards_row_decode
);

main!(library_benchmark_groups = cache, query, review);
