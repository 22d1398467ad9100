//! Measures what decoding hostile frames allocates: declared counts must not
//! turn into allocations, only bytes actually received may.
//!
//! This is an integration test because it installs a global allocator that
//! records the largest single allocation made on the current thread.

use bytes::Bytes;
use kafkawire::protocol::messages::{
    ApiVersionsResponse, FetchResponse, Message, MetadataResponse, ProduceRequest,
};
use kafkawire::protocol::wire::Reader;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
}

// SAFETY: defers every operation to the system allocator unchanged.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Decodes `frame` at `version`, expecting an error; returns the largest
/// allocation made while decoding.
fn largest_allocation<M: Message + std::fmt::Debug>(frame: Vec<u8>, version: i16) -> usize {
    let mut r = Reader::new(Bytes::from(frame));
    LARGEST.with(|m| m.set(0));
    let result = M::decode(&mut r, version);
    let largest = LARGEST.with(|m| m.get());
    assert!(result.is_err(), "hostile frame decoded: {result:?}");
    largest
}

fn frame(prefix: &[u8], junk: usize) -> Vec<u8> {
    let mut v = prefix.to_vec();
    v.resize(prefix.len() + junk, 0xff);
    v
}

#[test]
fn impossible_counts_allocate_nothing() {
    // brokers: i32::MAX elements declared, 64 bytes present.
    let n = largest_allocation::<MetadataResponse>(frame(&[0x7f, 0xff, 0xff, 0xff], 64), 0);
    assert_eq!(n, 0);
    // Fetch v12: throttle, error, session, then a compact count of u32::MAX - 1.
    let prefix = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert_eq!(
        largest_allocation::<FetchResponse>(frame(&prefix, 64), 12),
        0
    );
    // A records length of i32::MAX with 64 bytes behind it: records are a
    // zero-copy slice, so only the one-element topic and partition vectors
    // (and the topic name) were allocated when the bounds check fails.
    let mut produce = vec![0xff, 0xff, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b't'];
    produce.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
    let n = largest_allocation::<ProduceRequest>(frame(&produce, 64), 3);
    assert!(n < 1024, "{n}");
}

#[test]
fn plausible_counts_over_junk_reserve_little() {
    // 100,000 brokers fit in 1 MB by count (10 bytes each at least), but the
    // first one is junk. Reserving them all would take several MB.
    let n = largest_allocation::<MetadataResponse>(frame(&100_000i32.to_be_bytes(), 1_000_000), 0);
    assert!(n <= 256 * 1024, "reserved {n} bytes for a failing decode");
    // ApiVersions v3 api_keys: compact count 200,000 over 1 MB of junk.
    let mut prefix = vec![0, 0];
    let mut c = 200_001u32;
    while c >= 0x80 {
        prefix.push((c as u8) | 0x80);
        c >>= 7;
    }
    prefix.push(c as u8);
    let n = largest_allocation::<ApiVersionsResponse>(frame(&prefix, 1_000_000), 3);
    assert!(n <= 256 * 1024, "reserved {n} bytes for a failing decode");
}
