//! The real Producer, Consumer and Admin against a scripted hostile broker
//! on loopback (issue #8): targeted malformed responses, a deterministic
//! stream of random mutations of valid responses, and the idempotent
//! producer's epoch exhaustion.
//!
//! What every test here checks:
//! - no panic, and the client keeps working: after a bad response, valid
//!   responses lead to success again;
//! - every error is a kafkawire `Error` of a kind that fits the fault
//!   (targeted cases also check that the message names what was wrong);
//! - no corrupt record is delivered (see `common::Originals`);
//! - memory stays bounded: this binary counts live heap bytes
//!   ([`peak_heap`]), and tests assert a ceiling far below what a
//!   size-trusting allocation (2 GiB and more) would reach.
//!
//! `KAFKAWIRE_MUTATIONS` scales the random mutation run (default 10000),
//! `KAFKAWIRE_MUTATION_SEED` replays one seed.

mod broker;
mod common;
mod epoch;
mod random;
mod targeted;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: defers every operation to the system allocator unchanged; only
// counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Highest number of heap bytes live at once in this process so far.
pub fn peak_heap() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Live heap bytes now.
pub fn live_heap() -> usize {
    LIVE.load(Ordering::Relaxed)
}
