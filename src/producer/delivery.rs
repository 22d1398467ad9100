//! The completion of a batch, shared by every record future of the batch.
//!
//! One [`Completion`] is allocated per batch; each record's
//! [`DeliveryFuture`](super::DeliveryFuture) holds a clone of its `Arc` and
//! its offset delta, so sending a record allocates nothing of its own.

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
    result: Option<Result<BatchAck>>,
    /// Wakers of record futures polled before the outcome was known; a
    /// future keeps the index of its slot and overwrites it on re-poll.
    wakers: Vec<Waker>,
}

impl Completion {
    /// Sets the outcome (the first call wins) and wakes every waiter.
    pub fn complete(&self, result: Result<BatchAck>) {
        let wakers = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.result.is_some() {
                return;
            }
            s.result = Some(result);
            std::mem::take(&mut s.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Polls for the outcome, registering `cx`'s waker in `slot`.
    pub fn poll(&self, cx: &mut Context<'_>, slot: &mut Option<usize>) -> Poll<Result<BatchAck>> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = &s.result {
            return Poll::Ready(r.clone());
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
