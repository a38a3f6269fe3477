//! Instruction-count benchmarks (Gungraun, under valgrind's callgrind) of CPU-bound paths of
//! the cache-aside read and the due-cards query: encoding and decoding what they cache.
//! Deterministic: the same binary gives the same counts. Needs `gungraun-runner` of the same
//! version as the `gungraun` crate on PATH.

use std::hint::black_box;

use bench_suite::codec;
use bench_suite::model::{DueCard, DuePage, Word};
use bench_suite::query::DUE_PAGE_SIZE;
use bench_suite::seed::lemma;
use gungraun::{library_benchmark, library_benchmark_group, main};

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

library_benchmark_group!(
    name = cache;
    benchmarks = cache_aside_read_decode, cache_aside_fill_encode
);

library_benchmark_group!(
    name = query;
    benchmarks = due_cards_page_decode
);

main!(library_benchmark_groups = cache, query);
