//! Heap bytes counted, not estimated: a global allocator that forwards to the system allocator
//! and counts what is live, in the whole process and per thread. A binary that measures memory
//! installs it once:
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: predictor::alloc::Counting = predictor::alloc::Counting;
//! ```
//!
//! and wraps each construction in [`counted`]. The per-thread count makes a measurement immune
//! to other threads allocating meanwhile (a progress bar's ticker, worker threads): it is the
//! growth of what this thread allocated and did not free while the closure ran, which for a
//! structure built on this thread is its heap footprint (temporaries freed, kept memory kept).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

/// The counting allocator (install with `#[global_allocator]`).
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    // `const`, no destructor: touching it never allocates, so the allocator may use it.
    static THREAD: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    LIVE.fetch_add(delta, Relaxed);
    // During thread teardown the slot may be gone; the process-wide count still holds.
    let _ = THREAD.try_with(|c| c.set(c.get() + delta));
}

/// Layout sizes are at most `isize::MAX` bytes, so the conversion is exact.
fn signed(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

// SAFETY: every call is forwarded unchanged to the system allocator; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            count(signed(l.size()));
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            count(signed(l.size()));
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` was allocated by this allocator (so by System) with layout `l`.
        unsafe { System.dealloc(p, l) };
        count(-signed(l.size()));
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: `p` was allocated by System with layout `l`; same contract as our caller's.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            count(signed(new) - signed(l.size()));
        }
        q
    }
}

/// Bytes live in the whole process (0 unless [`Counting`] is the global allocator).
pub fn live() -> isize {
    LIVE.load(Relaxed)
}

/// Whether [`Counting`] is the global allocator of this process.
pub fn installed() -> bool {
    let before = THREAD.with(Cell::get);
    let probe = std::hint::black_box(vec![0u8; 64]);
    let grew = THREAD.with(Cell::get) - before;
    drop(probe);
    grew >= 64
}

/// Runs `make` and returns the heap bytes it left allocated on this thread (what it built
/// holds, temporaries excluded; 0 if it freed more than it kept), with its result.
pub fn counted<T>(make: impl FnOnce() -> T) -> (usize, T) {
    let before = THREAD.with(Cell::get);
    let v = make();
    let after = THREAD.with(Cell::get);
    (usize::try_from(after - before).unwrap_or(0), v)
}
