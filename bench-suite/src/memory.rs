//! Heap accounting for the `suite` binary: [`CountingAllocator`], a global allocator that wraps
//! [`System`] and counts allocations, bytes allocated, live bytes and the peak of live bytes;
//! [`Span`], which measures one scenario's measured part; and [`leak_check`], which measures
//! live-heap growth over repeated rounds of it.
//!
//! The counters are process-wide relaxed atomics: every thread's allocations count. Only a
//! binary that installs the allocator (`#[global_allocator]`) has non-zero counters;
//! [`is_counting`] tells.
//!
//! Must never: allocate, lock, print or do anything but relaxed atomic arithmetic inside the
//! allocator (it runs on every allocation of the process, so it must cost little and must not
//! recurse); report numbers from a binary whose allocator is not installed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

/// A global allocator that counts what it hands out, then lets [`System`] do the work.
///
/// A `realloc` counts as one allocation of its new size (what a growing `Vec` really costs);
/// live bytes change by the difference.
pub struct CountingAllocator;

#[inline]
fn grew(bytes: u64) {
    let live = LIVE.fetch_add(bytes, Relaxed).wrapping_add(bytes);
    PEAK.fetch_max(live, Relaxed);
}

#[inline]
fn counted(bytes: u64) {
    ALLOCATIONS.fetch_add(1, Relaxed);
    BYTES.fetch_add(bytes, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only adds
// atomic counter updates, which neither allocate nor unwind.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (the caller upholds `alloc`'s contract).
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            counted(layout.size() as u64);
            grew(layout.size() as u64);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            counted(layout.size() as u64);
            grew(layout.size() as u64);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as u64, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            counted(new_size as u64);
            let old = layout.size();
            if new_size >= old {
                grew((new_size - old) as u64);
            } else {
                LIVE.fetch_sub((old - new_size) as u64, Relaxed);
            }
        }
        new
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Allocations (and reallocations) since the process started.
    pub allocations: u64,
    /// Bytes requested by them.
    pub bytes: u64,
    /// Bytes allocated and not yet freed.
    pub live: u64,
    /// The highest `live` since the process started or the last [`Span::start`].
    pub peak: u64,
}

/// The counters now.
pub fn snapshot() -> Snapshot {
    Snapshot {
        allocations: ALLOCATIONS.load(Relaxed),
        bytes: BYTES.load(Relaxed),
        live: LIVE.load(Relaxed),
        peak: PEAK.load(Relaxed),
    }
}

/// Whether this process counts its allocations (its binary installed [`CountingAllocator`]).
pub fn is_counting() -> bool {
    ALLOCATIONS.load(Relaxed) > 0
}

/// What a measured part cost on the heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub allocations: u64,
    pub bytes: u64,
    /// How far live bytes rose above their level at the start (0 if they never did).
    pub peak_bytes: u64,
}

/// The heap cost of the code between [`Span::start`] and [`Span::finish`]. One span at a time
/// per process: starting one resets the peak.
#[derive(Debug)]
pub struct Span {
    start: Snapshot,
}

impl Span {
    /// Starts measuring: the peak is reset to the live bytes of this moment.
    pub fn start() -> Span {
        PEAK.store(LIVE.load(Relaxed), Relaxed);
        Span { start: snapshot() }
    }

    pub fn finish(self) -> Usage {
        let end = snapshot();
        Usage {
            allocations: end.allocations - self.start.allocations,
            bytes: end.bytes - self.start.bytes,
            peak_bytes: end.peak.saturating_sub(self.start.live),
        }
    }
}

/// Live-heap growth over repeated rounds of the same work.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LeakReport {
    /// Measured rounds (after one warm-up round).
    pub rounds: u32,
    /// Live bytes after the first measured round.
    pub live_after_first: u64,
    /// Live bytes after the last measured round.
    pub live_after_last: u64,
    /// `(live_after_last - live_after_first) / (rounds - 1)`; negative when the heap shrank.
    pub growth_per_round: f64,
}

/// Bytes per round between two live-heap levels `rounds - 1` rounds apart.
pub fn growth_per_round(live_after_first: u64, live_after_last: u64, rounds: u32) -> f64 {
    (live_after_last as f64 - live_after_first as f64) / f64::from(rounds.saturating_sub(1).max(1))
}

/// Runs `round` once to warm up, then `rounds` times, and reports how much the live heap grew
/// per round from the first measured round to the last. What a round returns is dropped
/// before the heap is read. A round's error stops the check.
pub async fn leak_check<T, E>(
    rounds: u32,
    mut round: impl AsyncFnMut() -> Result<T, E>,
) -> Result<LeakReport, E> {
    assert!(rounds >= 2, "a leak check needs at least 2 measured rounds");
    drop(round().await?);
    drop(round().await?);
    let live_after_first = snapshot().live;
    for _ in 1..rounds {
        drop(round().await?);
    }
    let live_after_last = snapshot().live;
    Ok(LeakReport {
        rounds,
        live_after_first,
        live_after_last,
        growth_per_round: growth_per_round(live_after_first, live_after_last, rounds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_per_round_between_first_and_last() {
        assert_eq!(growth_per_round(1_000, 10_000, 10), 1_000.0);
        assert_eq!(growth_per_round(10_000, 1_000, 10), -1_000.0);
        assert_eq!(growth_per_round(5, 5, 2), 0.0);
    }
}
