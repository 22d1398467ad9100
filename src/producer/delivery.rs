//! The completion of a batch, shared by every record future of the batch.
//!
//! One [`Completion`] is allocated per batch; each record's
//! [`DeliveryFuture`](super::DeliveryFuture) holds a clone of its `Arc` and
//! its offset delta, so sending a record allocates nothing of its own.
//!
//! A batch the broker rejected as too large is split into pieces that are
//! acknowledged separately (at unrelated offsets). The pieces share the
//! original completion: each covers the records from its `first` offset
//! delta up to the next piece's, and the completion resolves once every
//! piece has an outcome.

use crate::error::Result;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// What the broker said about a whole batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchAck {
    /// Offset of the batch's first record, or -1 when unknown (acks=0, or a
    /// duplicate whose original offset the broker no longer knows).
    pub base_offset: i64,
    /// Broker append time for `LogAppendTime` topics, otherwise -1.
    pub log_append_time: i64,
}

/// The outcome of one batch, set once, read by any number of futures.
#[derive(Debug, Default)]
pub(crate) struct Completion {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Outcomes of the pieces that finished, as (first offset delta,
    /// outcome). One entry `(0, _)` for a batch that was never split.
    pieces: Vec<(i32, Result<BatchAck>)>,
    /// Pieces split off beyond the first that have no outcome yet
    /// (invariant: the completion is resolved iff `extra` is 0 and
    /// `pieces` is not empty).
    extra: u32,
    /// Wakers of record futures polled before the outcome was known; a
    /// future keeps the index of its slot and overwrites it on re-poll.
    wakers: Vec<Waker>,
}

impl State {
    fn resolved(&self) -> bool {
        !self.pieces.is_empty() && self.extra == 0
    }

    /// The outcome for the record at `delta`, relative to its piece: the
    /// piece's ack and the record's delta within the piece.
    fn outcome(&self, delta: i32) -> Result<(BatchAck, i32)> {
        let piece = self
            .pieces
            .iter()
            .filter(|(first, _)| *first <= delta)
            .max_by_key(|(first, _)| *first);
        match piece {
            Some((first, r)) => r.clone().map(|ack| (ack, delta - first)),
            // Unreachable: a piece starting at 0 always exists.
            None => Err(crate::error::Error::illegal_state(
                "internal: no outcome for the record",
            )),
        }
    }
}

impl Completion {
    /// Sets the outcome of a batch that was never split (the first call
    /// wins) and wakes every waiter.
    pub fn complete(&self, result: Result<BatchAck>) {
        self.complete_piece(0, result);
    }

    /// Announces that one piece is being split into `into` pieces: the
    /// completion now waits for `into - 1` more outcomes.
    pub fn split(&self, into: u32) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !s.resolved() {
            s.extra += into.saturating_sub(1);
        }
    }

    /// Sets the outcome of the piece whose first record is at offset delta
    /// `first`; once every piece has one, wakes every waiter.
    pub fn complete_piece(&self, first: i32, result: Result<BatchAck>) {
        let wakers = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.resolved() || s.pieces.iter().any(|(f, _)| *f == first) {
                return;
            }
            if !s.pieces.is_empty() {
                s.extra -= 1;
            }
            s.pieces.push((first, result));
            if !s.resolved() {
                return;
            }
            std::mem::take(&mut s.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Polls for the outcome of the record at offset delta `delta`,
    /// registering `cx`'s waker in `slot`. Returns its piece's ack and the
    /// record's delta within that piece.
    pub fn poll(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<usize>,
        delta: i32,
    ) -> Poll<Result<(BatchAck, i32)>> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.resolved() {
            return Poll::Ready(s.outcome(delta));
        }
        match *slot {
            Some(i) if i < s.wakers.len() => {
                if !s.wakers[i].will_wake(cx.waker()) {
                    s.wakers[i] = cx.waker().clone();
                }
            }
            _ => {
                *slot = Some(s.wakers.len());
                s.wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::task::Waker;

    fn poll(c: &Completion, delta: i32) -> Poll<Result<(BatchAck, i32)>> {
        let mut cx = Context::from_waker(Waker::noop());
        c.poll(&mut cx, &mut None, delta)
    }

    fn ack(base: i64) -> BatchAck {
        BatchAck {
            base_offset: base,
            log_append_time: -1,
        }
    }

    #[test]
    fn unsplit_batch_resolves_once() {
        let c = Completion::default();
        assert!(poll(&c, 3).is_pending());
        c.complete(Ok(ack(100)));
        c.complete(Err(Error::timeout("late")));
        assert!(matches!(poll(&c, 3), Poll::Ready(Ok((a, 3))) if a.base_offset == 100));
    }

    #[test]
    fn split_pieces_resolve_together_with_their_own_offsets() {
        let c = Completion::default();
        // 10 records split into [0..4) and [4..10); the second again into
        // [4..7) and [7..10).
        c.split(2);
        c.split(2);
        c.complete_piece(0, Ok(ack(50)));
        c.complete_piece(4, Ok(ack(80)));
        assert!(poll(&c, 0).is_pending(), "one piece is still missing");
        c.complete_piece(7, Err(Error::timeout("expired")));
        assert!(matches!(poll(&c, 2), Poll::Ready(Ok((a, 2))) if a.base_offset == 50));
        assert!(matches!(poll(&c, 5), Poll::Ready(Ok((a, 1))) if a.base_offset == 80));
        assert!(matches!(poll(&c, 9), Poll::Ready(Err(ref e)) if e.is_timeout()));
    }
}
