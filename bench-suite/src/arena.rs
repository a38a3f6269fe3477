//! [`ArenaAllocator`]: the global allocator of the instruction-count benchmarks, which makes
//! an allocation cost the same instructions, at the same alignment, whatever the process did
//! before.
//!
//! Why: with the system allocator, what a `malloc` costs depends on the heap's state (a
//! cached chunk of that size, or a split of the top chunk), and the heap's state when counting
//! starts depends on everything the process did first: parsing its arguments, reading its
//! environment, connecting to a database in a benchmark's setup. So a benchmark's count moved
//! with the *length of the binary's path* and of `DATABASE_URL`: the same commit counted
//! 143,543 instructions decoding a due page when built under one checkout directory and
//! 145,476 under another (1.3%, a false verdict), although not one instruction of the code
//! under test differed. Base and head are always built in different directories, so this is
//! not an edge case.
//!
//! How: a bump allocator over one static arena. Every block starts on a 64-byte boundary (so
//! copies and scans of it take the same path whatever its address), an allocation is a fixed
//! handful of instructions, and freeing is a no-op (a benchmark process lives for one
//! benchmark). Should the arena ever run out, allocations fall back to [`System`]; the counts
//! are then no longer independent of history, which a benchmark process never comes near
//! (it allocates a few megabytes at most).
//!
//! Installed by `bench-suite`'s `instructions` benchmark and, through a `#[path]` module (the
//! harness must not depend on the system under test), by the harness's own `render` one.
//!
//! Must never: allocate, lock or print inside the allocator; hand out a block that overlaps
//! another; pass a block it did not get from [`System`] back to it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The arena's size: far beyond what a benchmark process allocates, and only reserved (the
/// operating system backs the pages it touches).
pub const ARENA_BYTES: usize = 64 << 20;

/// Every block's alignment, at least: a cache line, the widest a vectorised copy cares about.
pub const BLOCK_ALIGN: usize = 64;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; ARENA_BYTES]>);

// SAFETY: the arena's bytes are only reached through blocks handed out once each by the
// atomic bump in `ArenaAllocator::alloc`, so no two threads ever share a byte of it.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_BYTES]));

/// How many bytes of the arena have been handed out.
static USED: AtomicUsize = AtomicUsize::new(0);

/// A bump allocator over a static arena, falling back to [`System`] when it is full.
/// Install it with `#[global_allocator]` in a benchmark binary only: it never reuses memory.
pub struct ArenaAllocator;

impl ArenaAllocator {
    fn arena_start() -> usize {
        ARENA.0.get() as usize
    }

    fn owns(ptr: *mut u8) -> bool {
        let address = ptr as usize;
        let start = Self::arena_start();
        address >= start && address < start + ARENA_BYTES
    }

    /// How many bytes of the arena have been handed out so far.
    #[cfg(test)]
    fn used() -> usize {
        USED.load(Ordering::Relaxed)
    }
}

// SAFETY: blocks are disjoint (each is a range of the arena claimed by one successful
// compare-and-swap of `USED`, or comes from `System`), aligned to at least the layout's
// alignment (every block's address is rounded up to the larger of the layout's alignment and
// `BLOCK_ALIGN`), and at least `layout.size()` long.
unsafe impl GlobalAlloc for ArenaAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let align = layout.align().max(BLOCK_ALIGN);
        let start = Self::arena_start();
        let mut used = USED.load(Ordering::Relaxed);
        loop {
            // Rounds the address, not the offset: the arena itself is only page-aligned.
            let offset = ((start + used + align - 1) & !(align - 1)) - start;
            let Some(end) = offset
                .checked_add(layout.size())
                .filter(|&end| end <= ARENA_BYTES)
            else {
                // SAFETY: the caller's layout is passed on unchanged.
                return unsafe { System.alloc(layout) };
            };
            match USED.compare_exchange_weak(used, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return (start + offset) as *mut u8,
                Err(now) => used = now,
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !Self::owns(ptr) {
            // SAFETY: a block outside the arena came from `System.alloc` with this layout.
            unsafe { System.dealloc(ptr, layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The arena is one static shared by every test in this binary, and the test runner runs
    /// tests on parallel threads: a test that reads `USED` before and after an allocation holds
    /// this lock, and so does every test that allocates from the arena directly.
    static ARENA_TESTS: Mutex<()> = Mutex::new(());

    #[test]
    fn blocks_are_aligned_disjoint_and_usable() {
        let _serial = ARENA_TESTS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let allocator = ArenaAllocator;
        let layouts = [
            Layout::from_size_align(1, 1).unwrap(),
            Layout::from_size_align(100, 8).unwrap(),
            Layout::from_size_align(24, 4096).unwrap(),
            Layout::from_size_align(40, 16384).unwrap(),
            Layout::from_size_align(0, 1).unwrap(),
            Layout::from_size_align(7, 2).unwrap(),
        ];
        let blocks: Vec<(*mut u8, Layout)> = layouts
            .iter()
            .map(|&layout| (unsafe { allocator.alloc(layout) }, layout))
            .collect();
        for (i, &(ptr, layout)) in blocks.iter().enumerate() {
            assert!(ArenaAllocator::owns(ptr), "block {i} is outside the arena");
            assert_eq!(
                ptr as usize % layout.align().max(BLOCK_ALIGN),
                0,
                "block {i}"
            );
            unsafe { ptr.write_bytes(0xA5, layout.size()) };
            for &(other, other_layout) in &blocks[i + 1..] {
                let (a, b) = (ptr as usize, other as usize);
                assert!(
                    a + layout.size() <= b || b + other_layout.size() <= a,
                    "blocks overlap"
                );
            }
        }
        for (ptr, layout) in blocks {
            unsafe { allocator.dealloc(ptr, layout) };
        }
    }

    #[test]
    fn a_request_larger_than_the_arena_falls_back_to_the_system_allocator() {
        let _serial = ARENA_TESTS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let allocator = ArenaAllocator;
        let layout = Layout::from_size_align(ARENA_BYTES + 1, 8).unwrap();
        let before = ArenaAllocator::used();
        let ptr = unsafe { allocator.alloc(layout) };
        assert!(!ptr.is_null());
        assert!(!ArenaAllocator::owns(ptr));
        assert_eq!(ArenaAllocator::used(), before, "the arena was not touched");
        unsafe {
            ptr.write(1);
            ptr.add(ARENA_BYTES).write(2);
            allocator.dealloc(ptr, layout);
        }
    }
}
