//! The `read_committed` filter over one fetched partition's batches, without
//! IO.
//!
//! A `read_committed` fetch returns data up to the last stable offset and,
//! per partition, the aborted transactions that overlap the returned range:
//! `(producer id, first offset)`. Walking the batches in offset order:
//!
//! ```text
//!   aborted list (sorted by first offset) ──► reached when first_offset <= batch.last_offset
//!                                               │
//!                                               ▼
//!   producer id joins `aborted`  ──► its transactional data batches are dropped
//!                                               │
//!                 ABORT control batch of that producer
//!                                               ▼
//!   producer id leaves `aborted` ──► its later batches are shown again
//! ```
//!
//! Control batches (COMMIT/ABORT markers) are never shown, whatever the
//! isolation level. Non-transactional batches are always shown, even from a
//! producer id in the aborted set. An aborted transaction that began before
//! the fetched range is still listed by the broker (its first offset is
//! before the fetch offset), so aborts spanning fetch responses need no
//! state carried between responses: each response gets a fresh filter.

use crate::record::{BatchHeader, ControlKind};
use std::collections::HashSet;

/// What to do with one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand its records to the application.
    Deliver,
    /// Drop it: a data batch of an aborted transaction.
    DropAborted,
    /// Drop it: a control batch (transaction marker or other).
    DropControl,
}

/// Per-response aborted-transaction filter.
#[derive(Debug, Clone)]
pub struct AbortedFilter {
    read_committed: bool,
    /// Aborted transactions not reached yet, sorted by first offset
    /// descending so the next one is at the end.
    pending: Vec<(i64, i64)>,
    /// Producers whose current transaction is aborted.
    aborted: HashSet<i64>,
}

impl AbortedFilter {
    /// A filter for `read_uncommitted`: only control batches are dropped.
    pub fn read_uncommitted() -> Self {
        AbortedFilter {
            read_committed: false,
            pending: Vec::new(),
            aborted: HashSet::new(),
        }
    }

    /// A filter for `read_committed` from a response's aborted transactions,
    /// given as `(producer_id, first_offset)` in any order.
    pub fn read_committed(aborted: impl IntoIterator<Item = (i64, i64)>) -> Self {
        let mut pending: Vec<(i64, i64)> = aborted
            .into_iter()
            .map(|(pid, first)| (first, pid))
            .collect();
        pending.sort_unstable_by(|a, b| b.cmp(a));
        AbortedFilter {
            read_committed: true,
            pending,
            aborted: HashSet::new(),
        }
    }

    /// Classifies the next batch (batches must come in offset order). For a
    /// control batch, `control` is the kind of its control record.
    pub fn classify(&mut self, h: &BatchHeader, control: Option<ControlKind>) -> Verdict {
        if self.read_committed && h.producer_id >= 0 {
            let last = h.last_offset();
            while let Some(&(first, pid)) = self.pending.last() {
                if first > last {
                    break;
                }
                self.aborted.insert(pid);
                self.pending.pop();
            }
            if h.is_control() {
                if control == Some(ControlKind::Abort) {
                    self.aborted.remove(&h.producer_id);
                }
            } else if h.is_transactional() && self.aborted.contains(&h.producer_id) {
                return Verdict::DropAborted;
            }
        }
        if h.is_control() {
            Verdict::DropControl
        } else {
            Verdict::Deliver
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, BatchOptions, Batches, NO_HEADERS};
    use bytes::{Bytes, BytesMut};

    /// A log under construction: batches with real offsets, as a broker
    /// would return them.
    struct Log {
        buf: BytesMut,
        next: i64,
    }

    impl Log {
        fn new(start: i64) -> Self {
            Log {
                buf: BytesMut::new(),
                next: start,
            }
        }
        fn push(&mut self, batch: Bytes) -> i64 {
            let base = self.next;
            let mut b = BytesMut::from(&batch[..]);
            b[..8].copy_from_slice(&base.to_be_bytes());
            let count = i32::from_be_bytes([b[57], b[58], b[59], b[60]]) as i64;
            self.next += count;
            self.buf.extend_from_slice(&b);
            base
        }
        /// `n` data records from `pid` (-1: a plain producer).
        fn data(&mut self, pid: i64, txn: bool, n: usize, tag: &str) -> i64 {
            let mut b = BatchBuilder::new(BatchOptions {
                producer_id: pid,
                producer_epoch: if pid >= 0 { 0 } else { -1 },
                base_sequence: if pid >= 0 { 0 } else { -1 },
                transactional: txn,
                ..Default::default()
            });
            for i in 0..n {
                assert!(b.append(0, None, Some(format!("{tag}{i}").as_bytes()), NO_HEADERS));
            }
            self.push(b.finish().unwrap())
        }
        fn marker(&mut self, pid: i64, kind: ControlKind) -> i64 {
            self.push(BatchBuilder::control_batch(kind, pid, 0, 0, 0))
        }
        fn bytes(&self) -> Bytes {
            self.buf.clone().freeze()
        }
    }

    /// Runs the filter over `bytes` starting at `from`, returning visible
    /// values.
    fn visible(bytes: Bytes, from: i64, mut f: AbortedFilter) -> Vec<String> {
        let mut out = Vec::new();
        for b in Batches::new(bytes) {
            let b = b.unwrap();
            if b.last_offset() < from {
                continue;
            }
            let kind = b.control_record().unwrap().map(|c| c.kind);
            if f.classify(b.header(), kind) == Verdict::Deliver {
                for r in b.records().unwrap() {
                    let r = r.unwrap();
                    if r.offset >= from {
                        out.push(String::from_utf8(r.value().unwrap().to_vec()).unwrap());
                    }
                }
            }
        }
        out
    }

    #[test]
    fn aborted_data_hidden_committed_and_plain_shown() {
        let mut log = Log::new(0);
        let a0 = log.data(7, true, 2, "a");
        log.data(-1, false, 1, "plain");
        log.marker(7, ControlKind::Abort);
        log.data(7, true, 1, "c");
        log.marker(7, ControlKind::Commit);
        let f = AbortedFilter::read_committed([(7, a0)]);
        assert_eq!(visible(log.bytes(), 0, f), ["plain0", "c0"]);
        // read_uncommitted shows everything but the markers.
        assert_eq!(
            visible(log.bytes(), 0, AbortedFilter::read_uncommitted()),
            ["a0", "a1", "plain0", "c0"]
        );
    }

    #[test]
    fn overlapping_producers_are_tracked_separately() {
        let mut log = Log::new(100);
        let p1 = log.data(1, true, 1, "p1-");
        let p2 = log.data(2, true, 1, "p2-");
        log.data(1, true, 1, "p1b-");
        log.data(3, true, 1, "p3-");
        log.data(2, true, 1, "p2b-");
        log.marker(1, ControlKind::Abort);
        log.data(3, true, 1, "p3b-");
        log.marker(2, ControlKind::Commit);
        log.marker(3, ControlKind::Commit);
        // After its abort marker, producer 1 starts a new (committed) transaction.
        log.data(1, true, 1, "p1c-");
        log.marker(1, ControlKind::Commit);
        let f = AbortedFilter::read_committed([(1, p1)]);
        assert_eq!(
            visible(log.bytes(), 100, f),
            ["p2-0", "p3-0", "p2b-0", "p3b-0", "p1c-0"]
        );
        let _ = p2;
    }

    #[test]
    fn nested_aborts_of_the_same_producer() {
        let mut log = Log::new(0);
        let t1 = log.data(5, true, 2, "t1-");
        log.marker(5, ControlKind::Abort);
        let t2 = log.data(5, true, 1, "t2-");
        log.marker(5, ControlKind::Commit);
        let t3 = log.data(5, true, 1, "t3-");
        log.data(-1, false, 1, "x");
        log.marker(5, ControlKind::Abort);
        let f = AbortedFilter::read_committed([(5, t3), (5, t1)]);
        assert_eq!(visible(log.bytes(), 0, f), ["t2-0", "x0"]);
        let _ = t2;
    }

    #[test]
    fn abort_spanning_fetch_responses() {
        // One transaction's records are split over two responses; the second
        // response starts mid-transaction and lists it with an earlier first
        // offset.
        let mut first = Log::new(0);
        let t = first.data(9, true, 2, "a");
        first.data(-1, false, 1, "p");
        let mut second = Log::new(first.next);
        second.data(9, true, 2, "b");
        second.marker(9, ControlKind::Abort);
        second.data(-1, false, 1, "q");
        assert_eq!(
            visible(first.bytes(), 0, AbortedFilter::read_committed([(9, t)])),
            ["p0"]
        );
        assert_eq!(
            visible(
                second.bytes(),
                first.next,
                AbortedFilter::read_committed([(9, t)])
            ),
            ["q0"]
        );
    }

    #[test]
    fn abort_list_entry_ahead_of_the_data_waits_until_reached() {
        // A producer's committed transaction followed by an aborted one: the
        // listed first offset of the aborted one must not hide the first.
        let mut log = Log::new(0);
        log.data(4, true, 1, "ok");
        log.marker(4, ControlKind::Commit);
        let bad = log.data(4, true, 1, "bad");
        log.marker(4, ControlKind::Abort);
        let f = AbortedFilter::read_committed([(4, bad)]);
        assert_eq!(visible(log.bytes(), 0, f), ["ok0"]);
    }

    #[test]
    fn unlisted_producers_and_plain_batches_pass() {
        let mut log = Log::new(0);
        log.data(3, false, 2, "idem");
        log.data(8, true, 1, "t");
        log.marker(8, ControlKind::Commit);
        let f = AbortedFilter::read_committed([]);
        assert_eq!(visible(log.bytes(), 0, f), ["idem0", "idem1", "t0"]);
    }
}
