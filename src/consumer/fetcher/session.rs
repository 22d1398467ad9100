//! Incremental fetch sessions (KIP-227), per broker, without IO.
//!
//! ```text
//!            ┌──────────── response ok, session id 0 (broker made none) ─┐
//!            ▼                                                            │
//!   Full (id 0, epoch 0) ──► response ok, id N ──► Incremental (id N, epoch 1, 2, ...)
//!            ▲                                          │
//!            │   FETCH_SESSION_ID_NOT_FOUND             │ any other failure: next request is
//!            └──────────────────────────────────────────┘ full with (id N, epoch 0), which closes
//!                                                         session N and asks for a new one
//! ```
//!
//! A full request lists every partition wanted. An incremental request
//! lists only partitions that are new or whose fetch parameters changed
//! (after every response carrying data, the fetch offset changes), and
//! names in `forgotten` those no longer wanted; the broker keeps the rest.
//! The broker omits unchanged partitions from incremental responses.
//!
//! The session records what the broker will believe once the request is
//! processed, at build time; any failure makes the next request full, so a
//! lost response cannot leave the two sides disagreeing.

use crate::consumer::TopicPartition;
use crate::protocol::messages::Uuid;
use std::collections::BTreeMap;

/// Fetch parameters of one partition, as sent to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionParams {
    /// Topic id (zero when unknown; then requests go by name, v12 or lower).
    pub topic_id: Uuid,
    pub fetch_offset: i64,
    /// Leader epoch from metadata (KIP-320), -1 if unknown.
    pub current_leader_epoch: i32,
    /// Leader epoch of the last fetched batch, -1 if none: the broker
    /// reports a diverging epoch when the log was truncated below it.
    pub last_fetched_epoch: i32,
    pub max_bytes: i32,
}

/// What one request must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    pub session_id: i32,
    pub session_epoch: i32,
    /// Whether this is a full request (every wanted partition listed).
    pub full: bool,
    /// Partitions to list.
    pub send: Vec<(TopicPartition, PartitionParams)>,
    /// Partitions to drop from the session (incremental requests only).
    pub forget: Vec<(TopicPartition, Uuid)>,
}

/// The session state for one broker.
#[derive(Debug, Clone, Default)]
pub struct FetchSession {
    id: i32,
    epoch: i32,
    /// Whether the session's requests identify topics by id (v13+). A
    /// change of addressing mode needs a new session.
    by_id: Option<bool>,
    /// What the broker holds in the session after the last request built.
    known: BTreeMap<TopicPartition, PartitionParams>,
    /// Rotates the partition order of full requests so that no partition
    /// is always last when the response size limit is reached.
    rotation: usize,
}

/// The epoch after `e` (skipping 0, which means "new session").
fn next_epoch(e: i32) -> i32 {
    if e < 0 {
        -1
    } else if e == i32::MAX {
        1
    } else {
        e + 1
    }
}

impl FetchSession {
    /// A broker session not created yet.
    pub fn new() -> Self {
        FetchSession::default()
    }

    /// The session id (0: none).
    #[cfg(test)]
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The epoch the next request will carry.
    #[cfg(test)]
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// Plans the next request for `wanted`, and records it as what the
    /// broker will hold. `by_id`: whether topics go by id in this request.
    pub fn build(
        &mut self,
        wanted: &BTreeMap<TopicPartition, PartitionParams>,
        by_id: bool,
    ) -> SessionRequest {
        if self.by_id != Some(by_id) {
            self.by_id = Some(by_id);
            self.epoch = 0;
        }
        let full = self.epoch <= 0;
        let req = if full {
            let mut send: Vec<_> = wanted.iter().map(|(tp, p)| (tp.clone(), *p)).collect();
            if !send.is_empty() {
                let n = self.rotation % send.len();
                send.rotate_left(n);
                self.rotation = self.rotation.wrapping_add(1);
            }
            SessionRequest {
                session_id: self.id,
                session_epoch: self.epoch.max(0),
                full,
                send,
                forget: Vec::new(),
            }
        } else {
            let send = wanted
                .iter()
                .filter(|(tp, p)| self.known.get(*tp) != Some(*p))
                .map(|(tp, p)| (tp.clone(), *p))
                .collect();
            let forget = self
                .known
                .iter()
                .filter(|(tp, _)| !wanted.contains_key(*tp))
                .map(|(tp, p)| (tp.clone(), p.topic_id))
                .collect();
            SessionRequest {
                session_id: self.id,
                session_epoch: self.epoch,
                full,
                send,
                forget,
            }
        };
        self.known = wanted.clone();
        req
    }

    /// Records a successful response to `req` that carried `session_id`.
    pub fn on_response(&mut self, req: &SessionRequest, session_id: i32) {
        if session_id == 0 {
            // The broker made no session (or dropped it): full requests again.
            self.id = 0;
            self.epoch = 0;
        } else if req.full {
            self.id = session_id;
            self.epoch = 1;
        } else {
            self.epoch = next_epoch(self.epoch);
        }
    }

    /// Records a failed request. `session_not_found`: the broker answered
    /// FETCH_SESSION_ID_NOT_FOUND (so there is nothing to close).
    pub fn on_failure(&mut self, session_not_found: bool) {
        if session_not_found {
            self.id = 0;
        }
        self.epoch = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(offset: i64) -> PartitionParams {
        PartitionParams {
            topic_id: Uuid([1; 16]),
            fetch_offset: offset,
            current_leader_epoch: 0,
            last_fetched_epoch: -1,
            max_bytes: 1024,
        }
    }

    fn tp(n: i32) -> TopicPartition {
        TopicPartition::new("t", n)
    }

    fn wanted(v: &[(i32, i64)]) -> BTreeMap<TopicPartition, PartitionParams> {
        v.iter().map(|&(n, o)| (tp(n), p(o))).collect()
    }

    #[test]
    fn full_then_incremental_with_changes_and_forgets() {
        let mut s = FetchSession::new();
        let r = s.build(&wanted(&[(0, 0), (1, 0)]), true);
        assert!(r.full);
        assert_eq!((r.session_id, r.session_epoch), (0, 0));
        assert_eq!(r.send.len(), 2);
        s.on_response(&r, 77);
        assert_eq!((s.id(), s.epoch()), (77, 1));

        // Partition 0 got data (offset moved); partition 1 unchanged; 2 new.
        let r = s.build(&wanted(&[(0, 10), (1, 0), (2, 5)]), true);
        assert!(!r.full);
        assert_eq!((r.session_id, r.session_epoch), (77, 1));
        let sent: Vec<_> = r
            .send
            .iter()
            .map(|(t, p)| (t.partition(), p.fetch_offset))
            .collect();
        assert_eq!(sent, [(0, 10), (2, 5)]);
        assert!(r.forget.is_empty());
        s.on_response(&r, 77);
        assert_eq!(s.epoch(), 2);

        // Nothing changed: an empty incremental request (a pure long poll).
        let r = s.build(&wanted(&[(0, 10), (1, 0), (2, 5)]), true);
        assert!(r.send.is_empty() && r.forget.is_empty() && !r.full);
        s.on_response(&r, 77);

        // Partition 1 paused or moved away: forgotten.
        let r = s.build(&wanted(&[(0, 10), (2, 5)]), true);
        assert_eq!(
            r.forget
                .iter()
                .map(|(t, _)| t.partition())
                .collect::<Vec<_>>(),
            [1]
        );
        s.on_response(&r, 77);
        assert_eq!(s.epoch(), 4);
    }

    #[test]
    fn failures_make_the_next_request_full() {
        let mut s = FetchSession::new();
        let r = s.build(&wanted(&[(0, 0)]), true);
        s.on_response(&r, 5);
        let _lost = s.build(&wanted(&[(0, 3)]), true);
        s.on_failure(false);
        let r = s.build(&wanted(&[(0, 3)]), true);
        assert!(r.full);
        assert_eq!(
            (r.session_id, r.session_epoch),
            (5, 0),
            "closes session 5 and asks for a new one"
        );
        s.on_response(&r, 6);
        assert_eq!((s.id(), s.epoch()), (6, 1));

        s.on_failure(true);
        let r = s.build(&wanted(&[(0, 3)]), true);
        assert_eq!((r.session_id, r.session_epoch, r.full), (0, 0, true));
    }

    #[test]
    fn no_session_from_the_broker_means_full_requests() {
        let mut s = FetchSession::new();
        let r = s.build(&wanted(&[(0, 0)]), true);
        s.on_response(&r, 0);
        let r = s.build(&wanted(&[(0, 0)]), true);
        assert!(r.full);
        assert_eq!(r.send.len(), 1);
    }

    #[test]
    fn switching_between_ids_and_names_starts_over() {
        let mut s = FetchSession::new();
        let r = s.build(&wanted(&[(0, 0)]), true);
        s.on_response(&r, 9);
        let r = s.build(&wanted(&[(0, 0)]), false);
        assert!(r.full);
        assert_eq!(r.session_id, 9);
    }

    #[test]
    fn full_requests_rotate_partition_order() {
        let mut s = FetchSession::new();
        let w = wanted(&[(0, 0), (1, 0), (2, 0)]);
        let a = s.build(&w, true);
        s.on_failure(false);
        let b = s.build(&w, true);
        assert_ne!(a.send[0].0, b.send[0].0);
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(3), 4);
    }
}
