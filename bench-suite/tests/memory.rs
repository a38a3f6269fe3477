//! The counting allocator and the leak check, in a test binary that installs the allocator the
//! way the `suite` binary does. The counters are process-wide, so the tests of this file run
//! one at a time (they hold `serial()`), and their bounds leave room for the test harness's own
//! few allocations.

use std::sync::{Mutex, MutexGuard};

use bench_suite::memory::{self, CountingAllocator, Span};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn allocations_bytes_live_and_peak_are_counted() {
    let _serial = serial();
    assert!(memory::is_counting());
    let before = memory::snapshot();
    let span = Span::start();
    let buffers: Vec<Vec<u8>> = (0..10).map(|_| vec![1_u8; 10_000]).collect();
    let during = memory::snapshot();
    drop(std::hint::black_box(buffers));
    let usage = span.finish();
    let after = memory::snapshot();

    // 10 buffers and the outer vector, plus whatever the test harness's other threads (output
    // capture, the threads of the tests waiting for `serial()`) allocate meanwhile: the counters
    // are process-wide, so the bounds leave room for a few dozen small allocations.
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

#[test]
fn realloc_counts_as_an_allocation_of_its_new_size() {
    let _serial = serial();
    let mut v: Vec<u8> = Vec::with_capacity(1_000);
    let span = Span::start();
    let live = memory::snapshot().live;
    v.reserve_exact(9_000); // grows the buffer to 9,000 bytes in place or by moving it
    let grown = memory::snapshot().live;
    let usage = span.finish();
    drop(std::hint::black_box(v));
    // One allocation of 9,000 bytes; the bounds leave room for a stray small allocation of the
    // test harness's other threads (the counters are process-wide).
    assert!((1..=5).contains(&usage.allocations), "{usage:?}");
    assert!((9_000..12_000).contains(&usage.bytes), "{usage:?}");
    assert!(
        (8_000..11_000).contains(&grown.saturating_sub(live)),
        "{live} -> {grown}"
    );
}

/// What a leaking round keeps: it stays allocated for the rest of the process.
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

const LEAK_PER_ROUND: u64 = 64 * 1024;

#[test]
fn the_leak_check_measures_what_a_round_keeps() {
    let _serial = serial();
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

#[test]
fn a_failing_round_stops_the_check() {
    let _serial = serial();
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
