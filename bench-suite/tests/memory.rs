//! The counting allocator and the leak check, in a test binary that installs the allocator the
//! way the `suite` binary does. The counters are process-wide, so this binary has one test,
//! which runs the checks in sequence: with one `#[test]` per check, the test harness's other
//! threads (starting a test, capturing its output, ending it) allocated and freed while a check
//! measured, and bounds tight enough to mean something failed about one run in eight.

use std::sync::Mutex;

use bench_suite::memory::{self, CountingAllocator, Span};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn the_counting_allocator_and_the_leak_check() {
    allocations_bytes_live_and_peak_are_counted();
    realloc_counts_as_an_allocation_of_its_new_size();
    the_leak_check_measures_what_a_round_keeps();
    a_failing_round_stops_the_check();
}

fn allocations_bytes_live_and_peak_are_counted() {
    assert!(memory::is_counting());
    let before = memory::snapshot();
    let span = Span::start();
    let buffers: Vec<Vec<u8>> = (0..10).map(|_| vec![1_u8; 10_000]).collect();
    let during = memory::snapshot();
    drop(std::hint::black_box(buffers));
    let usage = span.finish();
    let after = memory::snapshot();

    // 10 buffers and the outer vector; the bounds leave room for a few dozen small allocations
    // of the test harness's main thread (the counters are process-wide).
    assert!((11..=100).contains(&usage.allocations), "{usage:?}");
    assert!((100_000..130_000).contains(&usage.bytes), "{usage:?}");
    assert!(
        during.live >= before.live + 100_000,
        "{before:?} {during:?}"
    );
    assert!(
        (100_000..130_000).contains(&usage.peak_bytes),
        "the peak is the high-water mark, not what is live at the end: {usage:?}"
    );
    assert!(
        after.live < during.live - 90_000,
        "freed bytes leave the live count: {during:?} {after:?}"
    );
}

fn realloc_counts_as_an_allocation_of_its_new_size() {
    let mut v: Vec<u8> = Vec::with_capacity(1_000);
    let span = Span::start();
    let live = memory::snapshot().live;
    v.reserve_exact(9_000); // grows the buffer to 9,000 bytes in place or by moving it
    let grown = memory::snapshot().live;
    let usage = span.finish();
    drop(std::hint::black_box(v));
    // One allocation of 9,000 bytes, and 8,000 more bytes live (the new size less the old); the
    // bounds leave room on both sides for a stray small allocation or free of the test
    // harness's main thread (the counters are process-wide).
    assert!((1..=5).contains(&usage.allocations), "{usage:?}");
    assert!((9_000..12_000).contains(&usage.bytes), "{usage:?}");
    assert!(
        (7_000..11_000).contains(&grown.saturating_sub(live)),
        "{live} -> {grown}"
    );
}

/// What a leaking round keeps: it stays allocated for the rest of the process.
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

const LEAK_PER_ROUND: u64 = 64 * 1024;

fn the_leak_check_measures_what_a_round_keeps() {
    // Room for every round up front, so only the leaked buffers grow the heap.
    KEPT.lock().unwrap().reserve(64);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let leaking = runtime
        .block_on(memory::leak_check(10, async || {
            KEPT.lock()
                .unwrap()
                .push(vec![7_u8; LEAK_PER_ROUND as usize]);
            Ok::<_, ()>(())
        }))
        .unwrap();
    let growth = leaking.growth_per_round;
    assert!(
        (LEAK_PER_ROUND as f64..LEAK_PER_ROUND as f64 + 1024.0).contains(&growth),
        "{leaking:?}"
    );
    assert_eq!(leaking.rounds, 10);
    assert!(leaking.live_after_last >= leaking.live_after_first + 9 * LEAK_PER_ROUND);

    let tidy = runtime
        .block_on(memory::leak_check(10, async || {
            let scratch = vec![7_u8; LEAK_PER_ROUND as usize];
            Ok::<_, ()>(std::hint::black_box(scratch).len())
        }))
        .unwrap();
    assert!(
        tidy.growth_per_round.abs() < 1024.0,
        "a round that frees what it allocates does not grow: {tidy:?}"
    );
}

fn a_failing_round_stops_the_check() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut calls = 0;
    let result = runtime.block_on(memory::leak_check(5, async || {
        calls += 1;
        if calls == 3 {
            Err("round 3 failed")
        } else {
            Ok(())
        }
    }));
    assert_eq!(result.unwrap_err(), "round 3 failed");
    assert_eq!(calls, 3);
}
