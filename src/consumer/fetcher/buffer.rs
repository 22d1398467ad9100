//! The bound on fetched-but-not-yet-returned bytes.
//!
//! Every chunk of fetched data holds a [`BufferPermit`] for its size; the
//! fetcher issues no request while the bytes held plus the largest
//! responses of the requests in flight would exceed the limit. Dropping a
//! chunk (consumed, discarded after a seek, or with the consumer) returns
//! its bytes and wakes the fetcher.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// Shared byte counter between the fetcher and the consumer handle.
#[derive(Debug)]
pub(crate) struct FetchBuffer {
    used: AtomicUsize,
    limit: usize,
    /// Signalled when bytes are returned.
    pub freed: Notify,
}

impl FetchBuffer {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(FetchBuffer {
            used: AtomicUsize::new(0),
            limit,
            freed: Notify::new(),
        })
    }

    /// Bytes currently held by chunks.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Holds `bytes` of the buffer until dropped.
#[derive(Debug)]
pub(crate) struct BufferPermit {
    buffer: Arc<FetchBuffer>,
    bytes: usize,
}

impl BufferPermit {
    pub fn new(buffer: Arc<FetchBuffer>, bytes: usize) -> Self {
        buffer.used.fetch_add(bytes, Ordering::AcqRel);
        BufferPermit { buffer, bytes }
    }
}

impl Drop for BufferPermit {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.buffer.used.fetch_sub(self.bytes, Ordering::AcqRel);
            self.buffer.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_return_their_bytes() {
        let b = FetchBuffer::new(100);
        let p = BufferPermit::new(b.clone(), 60);
        let q = BufferPermit::new(b.clone(), 30);
        assert_eq!(b.used(), 90);
        drop(p);
        assert_eq!(b.used(), 30);
        drop(q);
        assert_eq!(b.used(), 0);
    }
}
