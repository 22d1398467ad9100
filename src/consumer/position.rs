//! Per-partition fetch state, owned by the fetcher task.
//!
//! ```text
//!   assign / seek ──► NeedsCommitted ──(OffsetFetch: none committed)──► NeedsReset
//!        │                 │ committed offset                              │ ListOffsets
//!        │                 ▼                                               ▼
//!        └── offset ──►  Fetching ◄───────────────────────────────── (offset found)
//!                          │  OFFSET_OUT_OF_RANGE ──► NeedsReset (auto.offset.reset)
//!                          │  truncation (diverging epoch, KIP-320) ──► Fetching at the end offset,
//!                          │      or Stopped with a LogTruncation error when auto.offset.reset is none
//!                          ▼  error the application must resolve
//!                       Stopped ──(seek)──► ...
//! ```
//!
//! `gen` identifies the application's latest decision about the partition
//! (assign or seek). Every event sent to the application carries it, and the
//! application drops events of older generations, so data fetched before a
//! seek can never be returned after it.

use crate::consumer::config::OffsetReset;
use std::time::Instant;

/// Where fetching of a partition starts (or restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartAt {
    /// An explicit offset (from `seek`), with the leader epoch of the
    /// record before it when known.
    Offset {
        offset: i64,
        leader_epoch: Option<i32>,
    },
    /// The group's committed offset, else `auto.offset.reset`.
    Committed,
    /// The log start.
    Earliest,
    /// The log end (the LSO for read_committed).
    Latest,
}

/// Lifecycle of a partition in the fetcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Look up the committed offset.
    NeedsCommitted,
    /// Look up the earliest or latest offset.
    NeedsReset(OffsetReset),
    /// A lookup is in flight.
    Resolving,
    /// Fetching from `fetch_offset`.
    Fetching,
    /// Waiting for the application to seek (after an error it was given).
    Stopped,
}

/// The fetcher's view of one assigned partition.
#[derive(Debug, Clone)]
pub(crate) struct PartState {
    pub gen: u64,
    pub phase: Phase,
    /// Where the next fetch starts (ahead of the application's position
    /// while fetched data waits in the buffer).
    pub fetch_offset: i64,
    /// Leader epoch of the last fetched batch (for truncation detection).
    pub last_epoch: Option<i32>,
    pub paused: bool,
    /// Set while a fetch including this partition is in flight; a
    /// partition is never in two requests at once, which keeps its data in
    /// order across leader changes.
    pub in_flight: bool,
    /// Not before this instant (backoff after a retriable error).
    pub retry_at: Option<Instant>,
}

impl PartState {
    pub fn new(gen: u64, start: StartAt) -> Self {
        let mut s = PartState {
            gen,
            phase: Phase::NeedsCommitted,
            fetch_offset: -1,
            last_epoch: None,
            paused: false,
            in_flight: false,
            retry_at: None,
        };
        s.restart(gen, start);
        s
    }

    /// Applies an application decision (seek, or a new assignment).
    pub fn restart(&mut self, gen: u64, start: StartAt) {
        self.gen = gen;
        self.retry_at = None;
        match start {
            StartAt::Offset {
                offset,
                leader_epoch,
            } => {
                self.phase = Phase::Fetching;
                self.fetch_offset = offset;
                self.last_epoch = leader_epoch;
            }
            StartAt::Committed => self.phase = Phase::NeedsCommitted,
            StartAt::Earliest => self.phase = Phase::NeedsReset(OffsetReset::Earliest),
            StartAt::Latest => self.phase = Phase::NeedsReset(OffsetReset::Latest),
        }
    }

    /// Whether a fetch may include this partition at `now`.
    pub fn fetchable(&self, now: Instant) -> bool {
        self.phase == Phase::Fetching
            && !self.paused
            && !self.in_flight
            && self.retry_at.is_none_or(|t| t <= now)
    }

    /// Whether an offset lookup should start at `now`.
    pub fn needs_lookup(&self, now: Instant) -> bool {
        matches!(self.phase, Phase::NeedsCommitted | Phase::NeedsReset(_))
            && self.retry_at.is_none_or(|t| t <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn restart_moves_between_phases() {
        let now = Instant::now();
        let mut s = PartState::new(1, StartAt::Committed);
        assert!(s.needs_lookup(now) && !s.fetchable(now));
        s.restart(
            2,
            StartAt::Offset {
                offset: 42,
                leader_epoch: Some(3),
            },
        );
        assert!(s.fetchable(now));
        assert_eq!((s.gen, s.fetch_offset, s.last_epoch), (2, 42, Some(3)));
        s.paused = true;
        assert!(!s.fetchable(now));
        s.paused = false;
        s.retry_at = Some(now + Duration::from_secs(5));
        assert!(!s.fetchable(now));
        s.restart(3, StartAt::Latest);
        assert_eq!(s.phase, Phase::NeedsReset(OffsetReset::Latest));
        assert!(s.needs_lookup(now), "a seek clears the backoff");
    }
}
