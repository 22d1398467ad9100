//! Producer id, epoch and per-partition sequence tracking (sans-IO).
//!
//! [`Sequencer`] is the one owner of the producer id and epoch and of every
//! batch that has left the accumulator and is not finished yet. The sender
//! asks it which batch of a partition may go next, tells it what happened to
//! each attempt, and does what it answers. The transactional producer will
//! plug in at [`Sequencer::may_send`]: the one "may this partition's batch be
//! sent now?" gate.
//!
//! # Partition state
//!
//! ```text
//!                 assign (drain)                   success / DUPLICATE_SEQUENCE_NUMBER
//!  accumulator ─────────────────▶ Queued ──send──▶ Outstanding ───────────────────────▶ done
//!                                   ▲                 │
//!                                   └──── retry ──────┘  error, timeout, broken connection
//!                                   │
//!                        rewrite (new epoch, sequences from 0) when the
//!                        head batch got OUT_OF_ORDER_SEQUENCE_NUMBER or
//!                        UNKNOWN_PRODUCER_ID and nothing is outstanding
//! ```
//!
//! # Invariants
//!
//! - A partition's tracked batches are in sequence order, which is send
//!   order; sequences are contiguous within one producer id and epoch.
//! - The outstanding batches of a partition are a prefix of its queue and
//!   were all sent to the same broker. A batch is sent only when every batch
//!   before it is outstanding on that broker, so the broker sees them in
//!   order. After a failure the partition waits until nothing is outstanding
//!   and then resends from the head.
//! - A retried batch is resent with the same producer id, epoch and sequence,
//!   so the broker can recognise a duplicate.
//! - Sequences are rewritten only when the head batch of the partition was
//!   definitely not written (the broker answered OUT_OF_ORDER_SEQUENCE_NUMBER
//!   or UNKNOWN_PRODUCER_ID for it) and nothing is outstanding. Since a
//!   broker only appends a batch whose sequence follows the last one it has,
//!   no later batch can be in the log either, so rewriting them all under a
//!   new epoch (KIP-360: sequences restart at 0) keeps order and duplicates
//!   nothing. A batch whose last attempt got no answer (timeout, broken
//!   connection) has an unknown outcome: it is resent as it is, never
//!   re-sequenced on the assumption that it failed.
//! - A batch that fails for good (delivery timeout, non-retriable error)
//!   leaves a gap; the next batch of the partition then gets
//!   OUT_OF_ORDER_SEQUENCE_NUMBER if (and only if) the failed batch was not
//!   written, which triggers the rewrite above.
//! - A batch the broker refused as too large (MESSAGE_TOO_LARGE, more than
//!   one record) was not written: it is replaced in place by its pieces,
//!   which take contiguous sequences from its own base sequence under its
//!   producer id and epoch. The batches behind it keep their sequences.
//! - The epoch bump is local for an idempotent producer (as in the Java
//!   client). Other partitions keep their old epoch while they have tracked
//!   batches and switch to the current one, at sequence 0, when empty.

use super::accumulator::TopicPartition;
use crate::error::{Error, ErrorClass, ErrorCode};
use crate::net::NodeId;
use crate::record::{NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// A producer id and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerIdEpoch {
    /// The producer id from InitProducerId.
    pub id: i64,
    /// The producer epoch.
    pub epoch: i16,
}

impl ProducerIdEpoch {
    /// "No producer id": a producer without idempotence.
    pub const NONE: ProducerIdEpoch = ProducerIdEpoch {
        id: NO_PRODUCER_ID,
        epoch: NO_PRODUCER_EPOCH,
    };
}

/// What to write into a batch's header before sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Producer id and epoch.
    pub producer: ProducerIdEpoch,
    /// Base sequence, or [`NO_SEQUENCE`].
    pub base_sequence: i32,
}

/// Kafka's sequence arithmetic: sequences wrap from `i32::MAX` to 0.
pub fn increment_sequence(seq: i32, by: i32) -> i32 {
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}

/// One batch drained from the accumulator and not finished.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// The batch (the sender's key for its bytes and futures).
    pub id: u64,
    /// Records in the batch.
    pub count: i32,
    /// Producer id/epoch and base sequence the batch's bytes carry.
    pub stamp: Stamp,
    /// The broker a request carrying this batch is awaiting an answer from.
    pub outstanding: Option<NodeId>,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last attempt got no answer: the batch may be in the log.
    pub maybe_written: bool,
    /// Earliest time of the next attempt (retry backoff).
    pub not_before: Option<Instant>,
}

/// Sequence state of one partition.
#[derive(Debug, Clone)]
struct Partition {
    /// Producer id/epoch the sequences below belong to. May lag the current
    /// one after an epoch bump until the partition has no tracked batches.
    producer: ProducerIdEpoch,
    /// Base sequence of the next batch assigned.
    next_sequence: i32,
    /// Last sequence the broker acknowledged under `producer`, -1 if none.
    last_acked: i32,
    /// Drained, unfinished batches, in sequence order.
    batches: VecDeque<Tracked>,
    /// The head batch was definitely not written because of a sequence gap
    /// or lost producer state: rewrite sequences once nothing is outstanding.
    needs_rewrite: bool,
}

/// The outcome of one attempt of one batch, as reported to the sequencer.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// The broker wrote the batch (or already had it: duplicate).
    Written,
    /// The broker answered with an error for this partition.
    Error {
        /// The partition's error code.
        code: ErrorCode,
        /// `log_start_offset` from the response (-1 if unknown).
        log_start_offset: i64,
    },
    /// No answer (timeout, broken connection): outcome unknown.
    NoAnswer,
}

/// What the sender must do with a batch after an attempt.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Complete the batch's records successfully.
    Done,
    /// Keep the batch and send it again after backoff.
    Retry,
    /// Fail the batch's records with this error.
    Fail(Error),
    /// The broker refused the batch as too large (MESSAGE_TOO_LARGE) and it
    /// holds more than one record: split it ([`Sequencer::split`]) and send
    /// the pieces. The batch stays tracked, not outstanding, until then.
    Split,
}

/// The producer id/epoch owner and the per-partition sequence state machine.
#[derive(Debug)]
pub struct Sequencer {
    idempotent: bool,
    /// A transactional producer: the coordinator owns the epoch, so a
    /// sequence gap is never repaired by a local bump. The batch fails
    /// instead, the transaction becomes abortable, and the abort bumps the
    /// epoch through the coordinator.
    transactional: bool,
    /// The current producer id and epoch; `None` until InitProducerId
    /// answered (and again while a new id is needed after epoch exhaustion).
    current: Option<ProducerIdEpoch>,
    /// A fatal error: the producer can no longer send.
    fatal: Option<Error>,
    /// Bound on tracked (drained, unfinished) batches per partition.
    max_per_partition: usize,
    /// Retries allowed per batch (`retries`).
    retries: u32,
    partitions: HashMap<TopicPartition, Partition>,
    /// Base sequence of a partition's first batch under this producer id
    /// and epoch, instead of 0 (the `test-hooks` feature only).
    first_sequence: Option<(ProducerIdEpoch, i32)>,
}

impl Sequencer {
    /// A sequencer; `idempotent` selects sequence numbers and epoch bumps,
    /// `max_per_partition` bounds the batches in flight per partition (5 for
    /// idempotence, as the broker only caches the last 5).
    pub fn new(idempotent: bool, max_per_partition: usize, retries: u32) -> Self {
        Sequencer {
            idempotent,
            transactional: false,
            current: if idempotent {
                None
            } else {
                Some(ProducerIdEpoch::NONE)
            },
            fatal: None,
            max_per_partition: max_per_partition.clamp(1, 5),
            retries,
            partitions: HashMap::new(),
            first_sequence: None,
        }
    }

    /// Test only: partitions first used under `producer` start at sequence
    /// `first` instead of 0 (the broker accepts any first sequence from a
    /// producer it has no state for). After a bump they start at 0.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn start_sequences_at(&mut self, producer: ProducerIdEpoch, first: i32) {
        self.first_sequence = Some((producer, first.max(0)));
    }

    /// Makes this the sequencer of a transactional producer: the producer
    /// id and epoch come from the transaction manager, and gaps fail batches
    /// instead of bumping the epoch locally.
    pub fn set_transactional(&mut self) {
        self.transactional = true;
    }

    /// Whether a producer id is needed and missing (send InitProducerId).
    /// Never for a transactional producer: `init_transactions` gets it.
    pub fn needs_producer_id(&self) -> bool {
        self.idempotent && !self.transactional && self.current.is_none() && self.fatal.is_none()
    }

    /// The current producer id and epoch, if any.
    pub fn current(&self) -> Option<ProducerIdEpoch> {
        self.current
    }

    /// The current producer id and epoch, if any.
    #[cfg(test)]
    pub fn producer(&self) -> Option<ProducerIdEpoch> {
        self.current
    }

    /// Records the InitProducerId answer.
    pub fn set_producer(&mut self, p: ProducerIdEpoch) {
        self.current = Some(p);
    }

    /// The fatal error, once the producer can no longer send.
    pub fn fatal(&self) -> Option<&Error> {
        self.fatal.as_ref()
    }

    /// Makes the producer unusable (fenced, unauthorized, ...).
    pub fn set_fatal(&mut self, e: Error) {
        if self.fatal.is_none() {
            self.fatal = Some(e.with_class(ErrorClass::Fatal));
        }
    }

    /// Whether any batch is tracked.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.partitions.values().all(|p| p.batches.is_empty())
    }

    /// Tracked batches of `tp`, head first.
    pub fn batches(&self, tp: &TopicPartition) -> impl Iterator<Item = &Tracked> {
        self.partitions
            .get(tp)
            .into_iter()
            .flat_map(|p| p.batches.iter())
    }

    /// The gate: may a new batch of `tp` be drained from the accumulator
    /// and sent to `node` now?
    pub fn may_send(&self, tp: &TopicPartition, node: NodeId) -> bool {
        if self.fatal.is_some() || self.current.is_none() {
            return false;
        }
        let Some(p) = self.partitions.get(tp) else {
            return true;
        };
        if p.needs_rewrite || p.batches.len() >= self.max_per_partition {
            return false;
        }
        // Until the broker acknowledged a first batch of this producer id and
        // epoch on the partition, it has no sequence state for it and
        // accepts *any* sequence as a first write. A second batch pipelined
        // behind a first one that fails retriably (e.g. NOT_ENOUGH_REPLICAS
        // while followers join the ISR) would then be written first, and the
        // retried first batch after it: reordering. So one batch at a time
        // until the first acknowledgement.
        if self.idempotent
            && p.last_acked == -1
            && p.producer == self.current.unwrap_or(p.producer)
            && !p.batches.is_empty()
        {
            return false;
        }
        // New batches go after every tracked one: all must be outstanding
        // on the same broker (so they reach it in order).
        p.batches.iter().all(|b| b.outstanding == Some(node))
    }

    /// Assigns the next sequence of `tp` to a new batch of `count` records
    /// and starts tracking it. Call only after [`may_send`](Self::may_send).
    pub fn assign(&mut self, tp: &TopicPartition, id: u64, count: i32) -> Stamp {
        let current = self.current.unwrap_or(ProducerIdEpoch::NONE);
        let idempotent = self.idempotent;
        let first = match self.first_sequence {
            Some((p, s)) if p == current => s,
            _ => 0,
        };
        let p = self
            .partitions
            .entry(tp.clone())
            .or_insert_with(|| Partition {
                producer: current,
                next_sequence: first,
                last_acked: -1,
                batches: VecDeque::new(),
                needs_rewrite: false,
            });
        if p.producer != current && p.batches.is_empty() {
            // After an epoch bump, an idle partition starts over at 0.
            p.producer = current;
            p.next_sequence = 0;
            p.last_acked = -1;
        }
        let stamp = if idempotent {
            let s = Stamp {
                producer: p.producer,
                base_sequence: p.next_sequence,
            };
            p.next_sequence = increment_sequence(p.next_sequence, count);
            s
        } else {
            Stamp {
                producer: ProducerIdEpoch::NONE,
                base_sequence: NO_SEQUENCE,
            }
        };
        p.batches.push_back(Tracked {
            id,
            count,
            stamp,
            outstanding: None,
            attempts: 0,
            maybe_written: false,
            not_before: None,
        });
        stamp
    }

    /// The tracked batch of `tp` to send (again) now to `node`, if any: the
    /// first one not outstanding, when everything before it is outstanding on
    /// `node`, nothing after it is, its backoff has passed, and the partition
    /// is not waiting for a rewrite.
    pub fn next_retry(&self, tp: &TopicPartition, node: NodeId, now: Instant) -> Option<u64> {
        if self.fatal.is_some() {
            return None;
        }
        let p = self.partitions.get(tp)?;
        if p.needs_rewrite {
            return None;
        }
        let i = p.batches.iter().position(|b| b.outstanding.is_none())?;
        if p.batches
            .iter()
            .take(i)
            .any(|b| b.outstanding != Some(node))
        {
            return None;
        }
        if p.batches
            .iter()
            .skip(i + 1)
            .any(|b| b.outstanding.is_some())
        {
            return None;
        }
        // As in `may_send`: until the broker acknowledged a batch of this
        // producer id and epoch it accepts any sequence, so a batch (a
        // retry, a rewritten or split one) goes only alone.
        if self.idempotent && i > 0 && p.last_acked == -1 && Some(p.producer) == self.current {
            return None;
        }
        let b = &p.batches[i];
        if b.not_before.is_some_and(|t| t > now) {
            return None;
        }
        // The producer id may be re-initialised (epoch exhausted): wait.
        if self.idempotent && self.current.is_none() {
            return None;
        }
        Some(b.id)
    }

    /// Partitions with a batch waiting to be sent again.
    pub fn partitions_with_retries(&self) -> Vec<TopicPartition> {
        self.partitions
            .iter()
            .filter(|(_, p)| p.batches.iter().any(|b| b.outstanding.is_none()))
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Whether batch `id` of `tp` awaits an answer.
    pub fn is_outstanding(&self, tp: &TopicPartition, id: u64) -> bool {
        self.batches(tp)
            .any(|b| b.id == id && b.outstanding.is_some())
    }

    /// Stops tracking everything (forced close): returns the ids.
    pub fn clear(&mut self) -> Vec<u64> {
        let ids = self
            .partitions
            .values()
            .flat_map(|p| p.batches.iter().map(|b| b.id))
            .collect();
        for p in self.partitions.values_mut() {
            p.batches.clear();
            p.needs_rewrite = false;
        }
        ids
    }

    /// Earliest retry time among partitions that wait only for backoff.
    pub fn next_retry_time(&self) -> Option<Instant> {
        self.partitions
            .values()
            .flat_map(|p| p.batches.iter())
            .filter(|b| b.outstanding.is_none())
            .filter_map(|b| b.not_before)
            .min()
    }

    /// Marks batch `id` of `tp` as sent to `node`.
    pub fn on_sent(&mut self, tp: &TopicPartition, id: u64, node: NodeId) {
        if let Some(b) = self.find_mut(tp, id) {
            b.outstanding = Some(node);
            b.attempts = b.attempts.saturating_add(1);
            b.not_before = None;
        }
    }

    fn find_mut(&mut self, tp: &TopicPartition, id: u64) -> Option<&mut Tracked> {
        self.partitions
            .get_mut(tp)?
            .batches
            .iter_mut()
            .find(|b| b.id == id)
    }

    /// Records the outcome of an attempt and says what to do with the batch.
    /// `retry_at`: when a retry may go (now + backoff); `can_retry`: the
    /// batch is still within its delivery timeout.
    pub fn on_attempt(
        &mut self,
        tp: &TopicPartition,
        id: u64,
        attempt: Attempt,
        retry_at: Instant,
        can_retry: bool,
    ) -> Verdict {
        let idempotent = self.idempotent;
        let retries = self.retries;
        let current = self.current;
        let Some(p) = self.partitions.get_mut(tp) else {
            return Verdict::Fail(gone());
        };
        let Some(i) = p.batches.iter().position(|b| b.id == id) else {
            return Verdict::Fail(gone());
        };
        let is_head = i == 0;
        let b = &mut p.batches[i];
        b.outstanding = None;
        let attempts = b.attempts;
        let verdict = match attempt {
            Attempt::Written => {
                if idempotent && b.stamp.producer == p.producer {
                    p.last_acked = increment_sequence(b.stamp.base_sequence, b.count - 1);
                }
                Verdict::Done
            }
            Attempt::NoAnswer => {
                b.maybe_written = true;
                Verdict::Retry
            }
            Attempt::Error {
                code,
                log_start_offset,
            } => {
                b.maybe_written = false;
                if code == ErrorCode::DUPLICATE_SEQUENCE_NUMBER {
                    return self.finish(tp, id, Verdict::Done);
                }
                if code == ErrorCode::CLUSTER_AUTHORIZATION_FAILED
                    || code == ErrorCode::PRODUCER_FENCED
                    || code == ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
                {
                    let e =
                        Error::broker(code, "the producer can no longer send").with_api("Produce");
                    self.set_fatal(e.clone());
                    return self.finish(tp, id, Verdict::Fail(e.with_class(ErrorClass::Fatal)));
                }
                let sequence_trouble = matches!(
                    code,
                    ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
                        | ErrorCode::UNKNOWN_PRODUCER_ID
                        | ErrorCode::INVALID_PRODUCER_EPOCH
                );
                if self.transactional
                    && sequence_trouble
                    && (is_head || code != ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
                {
                    // The transaction cannot be repaired: fail the batch; the
                    // transaction manager makes the error abortable (or
                    // fatal when fenced).
                    let what = if code == ErrorCode::INVALID_PRODUCER_EPOCH {
                        "the producer epoch is stale: the coordinator aborted the transaction because it outlived \
                         transaction.timeout.ms, or a newer producer with the same transactional.id fenced this one; \
                         abort the transaction (the abort fails with a fatal fenced error in the second case)"
                    } else {
                        "the broker lost track of this producer's sequence"
                    };
                    return self.finish(
                        tp,
                        id,
                        Verdict::Fail(Error::broker(code, what).with_api("Produce")),
                    );
                }
                if idempotent
                    && code == ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
                    && is_head
                    && b.stamp.producer == p.producer
                    && sequence_after(p.last_acked, b.stamp.base_sequence)
                {
                    // A later batch of the same producer id and epoch was
                    // acknowledged. The broker appends only in sequence, so
                    // this batch is in the log: an earlier attempt was written
                    // although its answer was an error or lost, and it has
                    // since left the broker's window of five remembered
                    // batches, hence OUT_OF_ORDER instead of a duplicate.
                    // Rewriting it under a new epoch would write it twice.
                    // Its offset is unknown.
                    return self.finish(tp, id, Verdict::Done);
                }
                if idempotent && code == ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER {
                    // At the head, there is a real gap (the batch before was
                    // failed and not written, or the broker lost state):
                    // rewrite. Elsewhere, an earlier batch is simply not in yet.
                    if is_head {
                        p.needs_rewrite = true;
                    }
                    Verdict::Retry
                } else if idempotent && code == ErrorCode::UNKNOWN_PRODUCER_ID {
                    // Without a log start offset the broker is mid-move:
                    // just retry. Otherwise the producer state is gone
                    // (retention): start over under a new epoch.
                    if log_start_offset >= 0 && is_head {
                        p.needs_rewrite = true;
                    }
                    Verdict::Retry
                } else if idempotent && code == ErrorCode::INVALID_PRODUCER_EPOCH {
                    if is_head {
                        p.needs_rewrite = true;
                    }
                    Verdict::Retry
                } else if code == ErrorCode::MESSAGE_TOO_LARGE && b.count > 1 {
                    Verdict::Split
                } else if code == ErrorCode::MESSAGE_TOO_LARGE {
                    Verdict::Fail(
                        Error::broker(
                            code,
                            "the record alone is larger than the topic's max.message.bytes (or the broker's \
                             message.max.bytes)",
                        )
                        .with_api("Produce"),
                    )
                } else if code.is_retriable() {
                    Verdict::Retry
                } else {
                    Verdict::Fail(
                        Error::broker(code, "the broker rejected the batch").with_api("Produce"),
                    )
                }
            }
        };
        let _ = current;
        let verdict = match verdict {
            Verdict::Retry | Verdict::Split if !can_retry => Verdict::Fail(Error::timeout(
                "delivery.timeout.ms expired before the batch was acknowledged",
            )),
            Verdict::Retry if attempts > retries => Verdict::Fail(Error::illegal_state(format!(
                "gave up after {attempts} attempts (retries={retries})"
            ))),
            v => v,
        };
        match verdict {
            Verdict::Retry => {
                if let Some(b) = self.find_mut(tp, id) {
                    b.not_before = Some(retry_at);
                }
                Verdict::Retry
            }
            Verdict::Split => Verdict::Split,
            v => self.finish(tp, id, v),
        }
    }

    /// Replaces batch `id` of `tp` (which got [`Verdict::Split`]) by its
    /// pieces, given as (new id, record count) in record order. The pieces
    /// take contiguous sequences from the batch's own base sequence under
    /// its producer id and epoch, so the batches behind it keep theirs: the
    /// broker did not write the batch, and the pieces together hold exactly
    /// its records. Returns the pieces' stamps, `None` if `id` is not a
    /// tracked batch waiting to be split.
    pub fn split(
        &mut self,
        tp: &TopicPartition,
        id: u64,
        pieces: &[(u64, i32)],
    ) -> Option<Vec<Stamp>> {
        let idempotent = self.idempotent;
        let p = self.partitions.get_mut(tp)?;
        let i = p
            .batches
            .iter()
            .position(|b| b.id == id && b.outstanding.is_none())?;
        let total: i32 = pieces.iter().map(|(_, n)| *n).sum();
        if total != p.batches[i].count {
            return None;
        }
        let old = p.batches.remove(i)?;
        let mut seq = old.stamp.base_sequence;
        let mut stamps = Vec::with_capacity(pieces.len());
        for (k, (piece, count)) in pieces.iter().enumerate() {
            let stamp = if idempotent {
                Stamp {
                    producer: old.stamp.producer,
                    base_sequence: seq,
                }
            } else {
                old.stamp
            };
            if idempotent {
                seq = increment_sequence(seq, *count);
            }
            stamps.push(stamp);
            let t = Tracked {
                id: *piece,
                count: *count,
                stamp,
                outstanding: None,
                attempts: 0,
                maybe_written: false,
                not_before: None,
            };
            p.batches.insert(i + k, t);
        }
        Some(stamps)
    }

    /// Stops tracking batch `id` (done or failed).
    fn finish(&mut self, tp: &TopicPartition, id: u64, v: Verdict) -> Verdict {
        if let Some(p) = self.partitions.get_mut(tp) {
            p.batches.retain(|b| b.id != id);
            if p.batches.is_empty() {
                // A rewrite request with nothing left to rewrite: the next
                // batch starts a new epoch anyway if the gap persists.
                if p.needs_rewrite {
                    p.needs_rewrite = false;
                    self.bump_for(tp);
                }
            }
        }
        v
    }

    /// Removes a batch that is not outstanding (expired by delivery timeout,
    /// or failed before it was sent). Its sequence becomes a gap that the
    /// next batch discovers.
    pub fn remove(&mut self, tp: &TopicPartition, id: u64) {
        if let Some(p) = self.partitions.get_mut(tp) {
            p.batches.retain(|b| b.id != id || b.outstanding.is_some());
        }
    }

    /// Performs pending rewrites: for each partition that needs one and has
    /// nothing outstanding, bumps the epoch if the partition is on the
    /// current one, and restamps its batches from sequence 0. Returns the
    /// batches whose bytes must be restamped. Returns nothing while a new
    /// producer id is needed.
    pub fn rewrite_pending(&mut self) -> Vec<(TopicPartition, u64, Stamp)> {
        let mut out = Vec::new();
        if !self.idempotent || self.fatal.is_some() {
            return out;
        }
        let due: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, p)| p.needs_rewrite && p.batches.iter().all(|b| b.outstanding.is_none()))
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in due {
            if !self.bump_for(&tp) {
                return out;
            }
            let Some(current) = self.current else {
                return out;
            };
            let Some(p) = self.partitions.get_mut(&tp) else {
                continue;
            };
            let mut seq = 0i32;
            for b in p.batches.iter_mut() {
                b.stamp = Stamp {
                    producer: current,
                    base_sequence: seq,
                };
                b.maybe_written = false;
                seq = increment_sequence(seq, b.count);
                out.push((tp.clone(), b.id, b.stamp));
            }
            p.producer = current;
            p.next_sequence = seq;
            p.last_acked = -1;
            p.needs_rewrite = false;
        }
        out
    }

    /// Makes sure the current epoch is newer than the one `tp` uses,
    /// bumping it locally if not. Returns false when a new producer id is
    /// needed first (epoch exhausted).
    fn bump_for(&mut self, tp: &TopicPartition) -> bool {
        let Some(current) = self.current else {
            return false;
        };
        let Some(p) = self.partitions.get(tp) else {
            return true;
        };
        if p.producer != current {
            return true;
        }
        if current.epoch >= i16::MAX - 1 {
            // Exhausted: InitProducerId gives a new id with epoch 0.
            self.current = None;
            return false;
        }
        self.current = Some(ProducerIdEpoch {
            id: current.id,
            epoch: current.epoch + 1,
        });
        tracing::debug!(
            producer_id = current.id,
            epoch = current.epoch + 1,
            "bumped the producer epoch"
        );
        true
    }
}

/// Whether sequence `a` comes after `b` (sequences wrap at `i32::MAX`;
/// -1, "none acknowledged", is after nothing).
fn sequence_after(a: i32, b: i32) -> bool {
    if a < 0 || b < 0 {
        return false;
    }
    let d = (a as i64 - b as i64).rem_euclid(1 << 31);
    d > 0 && d < (1 << 30)
}

fn gone() -> Error {
    Error::illegal_state("internal: the batch is no longer tracked")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: Arc::from("t"),
            partition: p,
        }
    }

    fn seq() -> Sequencer {
        let mut s = Sequencer::new(true, 5, u32::MAX);
        assert!(s.needs_producer_id());
        s.set_producer(ProducerIdEpoch { id: 7, epoch: 0 });
        s
    }

    fn err(code: ErrorCode) -> Attempt {
        Attempt::Error {
            code,
            log_start_offset: 0,
        }
    }

    #[test]
    fn sequences_are_contiguous_and_retries_keep_them() {
        let now = Instant::now();
        let mut s = seq();
        // A first batch acknowledged: from here on the partition pipelines.
        s.assign(&tp(0), 0, 1);
        s.on_sent(&tp(0), 0, 1);
        assert!(matches!(
            s.on_attempt(&tp(0), 0, Attempt::Written, now, true),
            Verdict::Done
        ));
        let a = s.assign(&tp(0), 1, 10);
        s.on_sent(&tp(0), 1, 1);
        assert!(s.may_send(&tp(0), 1), "pipelining to the same broker");
        let b = s.assign(&tp(0), 2, 5);
        s.on_sent(&tp(0), 2, 1);
        assert_eq!((a.base_sequence, b.base_sequence), (1, 11));
        assert_eq!(a.producer, ProducerIdEpoch { id: 7, epoch: 0 });

        // Batch 1 fails with a retriable error; batch 2 is still out.
        let v = s.on_attempt(&tp(0), 1, err(ErrorCode::NOT_LEADER_OR_FOLLOWER), now, true);
        assert!(matches!(v, Verdict::Retry));
        assert_eq!(s.next_retry(&tp(0), 1, now), None, "wait for batch 2 first");
        assert!(!s.may_send(&tp(0), 1), "no new batch ahead of a retry");
        let v = s.on_attempt(&tp(0), 2, err(ErrorCode::NOT_LEADER_OR_FOLLOWER), now, true);
        assert!(matches!(v, Verdict::Retry));
        // Retry goes head first, with the same stamp, to the new leader.
        assert_eq!(s.next_retry(&tp(0), 2, now), Some(1));
        s.on_sent(&tp(0), 1, 2);
        assert_eq!(s.next_retry(&tp(0), 2, now), Some(2));
        s.on_sent(&tp(0), 2, 2);
        let stamps: Vec<i32> = s.batches(&tp(0)).map(|b| b.stamp.base_sequence).collect();
        assert_eq!(stamps, vec![1, 11]);
        assert!(matches!(
            s.on_attempt(&tp(0), 1, Attempt::Written, now, true),
            Verdict::Done
        ));
        assert!(matches!(
            s.on_attempt(
                &tp(0),
                2,
                err(ErrorCode::DUPLICATE_SEQUENCE_NUMBER),
                now,
                true
            ),
            Verdict::Done
        ));
        assert!(s.is_empty());
        assert_eq!(s.assign(&tp(0), 3, 1).base_sequence, 16);
    }

    #[test]
    fn backoff_delays_the_retry() {
        let now = Instant::now();
        let mut s = seq();
        s.assign(&tp(0), 1, 1);
        s.on_sent(&tp(0), 1, 1);
        let later = now + Duration::from_millis(100);
        s.on_attempt(&tp(0), 1, Attempt::NoAnswer, later, true);
        assert_eq!(s.next_retry(&tp(0), 1, now), None);
        assert_eq!(s.next_retry_time(), Some(later));
        assert_eq!(s.next_retry(&tp(0), 1, later), Some(1));
    }

    #[test]
    fn one_batch_at_a_time_until_the_first_ack() {
        let mut s = seq();
        let a = tp(0);
        assert!(s.may_send(&a, 1));
        s.assign(&a, 1, 10);
        s.on_sent(&a, 1, 1);
        assert!(
            !s.may_send(&a, 1),
            "the broker has no sequence state yet: no pipelining"
        );
        s.on_attempt(&a, 1, Attempt::Written, Instant::now(), true);
        s.assign(&a, 2, 10);
        s.on_sent(&a, 2, 1);
        assert!(s.may_send(&a, 1), "after the first ack, batches pipeline");
    }

    #[test]
    fn at_most_five_per_partition() {
        let mut s = seq();
        // A first acknowledged batch lets the partition pipeline.
        s.assign(&tp(0), 100, 1);
        s.on_sent(&tp(0), 100, 1);
        s.on_attempt(&tp(0), 100, Attempt::Written, Instant::now(), true);
        for id in 0..5 {
            assert!(s.may_send(&tp(0), 1));
            s.assign(&tp(0), id, 1);
            s.on_sent(&tp(0), id, 1);
        }
        assert!(!s.may_send(&tp(0), 1));
        assert!(s.may_send(&tp(1), 1), "other partitions are independent");
        assert!(!s.may_send(&tp(0), 2));
    }

    #[test]
    fn out_of_order_at_the_head_bumps_the_epoch_and_rewrites_from_zero() {
        let now = Instant::now();
        let mut s = seq();
        // Partition 1 has a batch on epoch 0 that stays in flight.
        s.assign(&tp(1), 100, 3);
        s.on_sent(&tp(1), 100, 1);
        // Partition 0: batches 0..3, 3..5, 5..6 in flight.
        for (id, n) in [(1, 3), (2, 2), (3, 1)] {
            s.assign(&tp(0), id, n);
            s.on_sent(&tp(0), id, 1);
        }
        let v = s.on_attempt(
            &tp(0),
            1,
            err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            now,
            true,
        );
        assert!(matches!(v, Verdict::Retry));
        assert!(
            s.rewrite_pending().is_empty(),
            "batches 2 and 3 are still outstanding"
        );
        s.on_attempt(
            &tp(0),
            2,
            err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            now,
            true,
        );
        assert_eq!(
            s.next_retry(&tp(0), 1, now),
            None,
            "no send while a rewrite is pending"
        );
        s.on_attempt(&tp(0), 3, Attempt::NoAnswer, now, true);
        let rw = s.rewrite_pending();
        let e1 = ProducerIdEpoch { id: 7, epoch: 1 };
        assert_eq!(
            rw.iter()
                .map(|(_, id, st)| (*id, st.producer, st.base_sequence))
                .collect::<Vec<_>>(),
            vec![(1, e1, 0), (2, e1, 3), (3, e1, 5)]
        );
        assert_eq!(s.producer(), Some(e1));
        assert_eq!(s.next_retry(&tp(0), 1, now), Some(1));
        // The next new batch continues after the rewritten ones.
        s.on_sent(&tp(0), 1, 1);
        s.on_sent(&tp(0), 2, 1);
        s.on_sent(&tp(0), 3, 1);
        assert_eq!(s.assign(&tp(0), 4, 1).base_sequence, 6);

        // Partition 1 keeps epoch 0 while its batch is tracked...
        assert_eq!(
            s.assign(&tp(1), 101, 1),
            Stamp {
                producer: ProducerIdEpoch { id: 7, epoch: 0 },
                base_sequence: 3
            }
        );
        s.on_sent(&tp(1), 101, 1);
        s.on_attempt(&tp(1), 100, Attempt::Written, now, true);
        s.on_attempt(&tp(1), 101, Attempt::Written, now, true);
        // ...and starts over at 0 on the new epoch once idle.
        assert_eq!(
            s.assign(&tp(1), 102, 1),
            Stamp {
                producer: e1,
                base_sequence: 0
            }
        );
    }

    #[test]
    fn out_of_order_at_the_head_after_a_later_ack_means_written() {
        // Found by the fault suite: the head's attempt was written but
        // answered with an error; the batches behind it were acknowledged
        // (so the broker appended them after it), pushing it out of the
        // broker's five-batch duplicate window. Its retry then gets
        // OUT_OF_ORDER_SEQUENCE_NUMBER, which here proves it *is* in the log:
        // rewriting it under a new epoch would write it twice.
        let now = Instant::now();
        let mut s = seq();
        for (id, n) in [(1, 3), (2, 2)] {
            s.assign(&tp(0), id, n);
            s.on_sent(&tp(0), id, 1);
        }
        let v = s.on_attempt(&tp(0), 1, err(ErrorCode::REQUEST_TIMED_OUT), now, true);
        assert!(matches!(v, Verdict::Retry));
        assert!(matches!(
            s.on_attempt(&tp(0), 2, Attempt::Written, now, true),
            Verdict::Done
        ));
        assert_eq!(s.next_retry(&tp(0), 1, now), Some(1));
        s.on_sent(&tp(0), 1, 1);
        let v = s.on_attempt(
            &tp(0),
            1,
            err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            now,
            true,
        );
        assert!(matches!(v, Verdict::Done), "{v:?}");
        assert!(s.rewrite_pending().is_empty());
        assert_eq!(
            s.producer(),
            Some(ProducerIdEpoch { id: 7, epoch: 0 }),
            "no epoch bump"
        );
        assert_eq!(s.assign(&tp(0), 3, 1).base_sequence, 5);
    }

    #[test]
    fn out_of_order_behind_a_failed_batch_just_retries() {
        let now = Instant::now();
        let mut s = seq();
        s.assign(&tp(0), 1, 1);
        s.on_sent(&tp(0), 1, 1);
        s.assign(&tp(0), 2, 1);
        s.on_sent(&tp(0), 2, 1);
        s.on_attempt(&tp(0), 1, err(ErrorCode::NOT_ENOUGH_REPLICAS), now, true);
        s.on_attempt(
            &tp(0),
            2,
            err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            now,
            true,
        );
        assert!(s.rewrite_pending().is_empty());
        assert_eq!(s.producer().map(|p| p.epoch), Some(0));
        assert_eq!(s.next_retry(&tp(0), 1, now), Some(1));
    }

    #[test]
    fn unknown_outcome_is_resent_unchanged_and_expiry_leaves_a_gap() {
        let now = Instant::now();
        let mut s = seq();
        s.assign(&tp(0), 1, 2);
        s.on_sent(&tp(0), 1, 1);
        s.on_attempt(&tp(0), 1, Attempt::NoAnswer, now, true);
        assert!(s.batches(&tp(0)).next().is_some_and(|b| b.maybe_written));
        assert!(s.rewrite_pending().is_empty());
        // It expires before it could be resent: removed, sequence not reused.
        s.remove(&tp(0), 1);
        let st = s.assign(&tp(0), 2, 1);
        assert_eq!(
            st.base_sequence, 2,
            "never reuse the sequence of a batch that may be in the log"
        );
        s.on_sent(&tp(0), 2, 1);
        // Had batch 1 not been written, the broker reports a gap at the head.
        s.on_attempt(
            &tp(0),
            2,
            err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            now,
            true,
        );
        let rw = s.rewrite_pending();
        assert_eq!(rw.len(), 1);
        assert_eq!(
            rw[0].2,
            Stamp {
                producer: ProducerIdEpoch { id: 7, epoch: 1 },
                base_sequence: 0
            }
        );
    }

    #[test]
    fn unknown_producer_id_without_log_start_offset_only_retries() {
        let now = Instant::now();
        let mut s = seq();
        s.assign(&tp(0), 1, 1);
        s.on_sent(&tp(0), 1, 1);
        let v = s.on_attempt(
            &tp(0),
            1,
            Attempt::Error {
                code: ErrorCode::UNKNOWN_PRODUCER_ID,
                log_start_offset: -1,
            },
            now,
            true,
        );
        assert!(matches!(v, Verdict::Retry));
        assert!(s.rewrite_pending().is_empty());
        s.on_sent(&tp(0), 1, 1);
        s.on_attempt(
            &tp(0),
            1,
            Attempt::Error {
                code: ErrorCode::UNKNOWN_PRODUCER_ID,
                log_start_offset: 10,
            },
            now,
            true,
        );
        assert_eq!(s.rewrite_pending().len(), 1);
    }

    #[test]
    fn fatal_errors_stop_everything_and_timeouts_fail() {
        let now = Instant::now();
        let mut s = seq();
        s.assign(&tp(0), 1, 1);
        s.on_sent(&tp(0), 1, 1);
        let v = s.on_attempt(&tp(0), 1, Attempt::NoAnswer, now, false);
        assert!(matches!(v, Verdict::Fail(ref e) if e.is_timeout()));
        s.assign(&tp(0), 2, 1);
        s.on_sent(&tp(0), 2, 1);
        let v = s.on_attempt(
            &tp(0),
            2,
            err(ErrorCode::CLUSTER_AUTHORIZATION_FAILED),
            now,
            true,
        );
        assert!(matches!(v, Verdict::Fail(ref e) if e.is_fatal()));
        assert!(s.fatal().is_some());
        assert!(!s.may_send(&tp(0), 1));
    }

    #[test]
    fn epoch_exhaustion_asks_for_a_new_producer_id() {
        let now = Instant::now();
        let mut s = Sequencer::new(true, 5, u32::MAX);
        s.set_producer(ProducerIdEpoch {
            id: 1,
            epoch: i16::MAX - 1,
        });
        s.assign(&tp(0), 1, 1);
        s.on_sent(&tp(0), 1, 1);
        s.on_attempt(
            &tp(0),
            1,
            err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            now,
            true,
        );
        assert!(s.rewrite_pending().is_empty());
        assert!(s.needs_producer_id());
        s.set_producer(ProducerIdEpoch { id: 2, epoch: 0 });
        let rw = s.rewrite_pending();
        assert_eq!(
            rw[0].2,
            Stamp {
                producer: ProducerIdEpoch { id: 2, epoch: 0 },
                base_sequence: 0
            }
        );
    }

    #[test]
    fn too_large_batch_splits_into_pieces_that_keep_its_sequences() {
        let now = Instant::now();
        let mut s = seq();
        s.assign(&tp(0), 1, 1);
        s.on_sent(&tp(0), 1, 1);
        s.on_attempt(&tp(0), 1, Attempt::Written, now, true);
        // Batch 2 (sequences 1..11) is refused, batch 3 (11..14) behind it.
        s.assign(&tp(0), 2, 10);
        s.on_sent(&tp(0), 2, 1);
        s.assign(&tp(0), 3, 3);
        s.on_sent(&tp(0), 3, 1);
        let v = s.on_attempt(&tp(0), 2, err(ErrorCode::MESSAGE_TOO_LARGE), now, true);
        assert!(matches!(v, Verdict::Split));
        let stamps = s.split(&tp(0), 2, &[(20, 4), (21, 6)]).unwrap();
        assert_eq!(
            stamps.iter().map(|st| st.base_sequence).collect::<Vec<_>>(),
            vec![1, 5]
        );
        // Batch 3 was rejected as out of order behind them: not at the head,
        // so a plain retry with its sequence, after the pieces.
        let v = s.on_attempt(
            &tp(0),
            3,
            err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            now,
            true,
        );
        assert!(matches!(v, Verdict::Retry));
        assert!(s.rewrite_pending().is_empty());
        let order: Vec<(u64, i32)> = s
            .batches(&tp(0))
            .map(|b| (b.id, b.stamp.base_sequence))
            .collect();
        assert_eq!(order, vec![(20, 1), (21, 5), (3, 11)]);
        assert_eq!(s.next_retry(&tp(0), 1, now), Some(20));
        s.on_sent(&tp(0), 20, 1);
        assert_eq!(s.next_retry(&tp(0), 1, now), Some(21));

        // One record too large fails alone, with the code.
        s.assign(&tp(1), 30, 1);
        s.on_sent(&tp(1), 30, 1);
        let v = s.on_attempt(&tp(1), 30, err(ErrorCode::MESSAGE_TOO_LARGE), now, true);
        assert!(
            matches!(v, Verdict::Fail(ref e) if e.code() == Some(ErrorCode::MESSAGE_TOO_LARGE))
        );
        // Counts must add up.
        s.assign(&tp(2), 40, 5);
        s.on_sent(&tp(2), 40, 1);
        s.on_attempt(&tp(2), 40, err(ErrorCode::MESSAGE_TOO_LARGE), now, true);
        assert!(s.split(&tp(2), 40, &[(41, 2), (42, 2)]).is_none());
    }

    #[test]
    fn before_the_first_ack_pieces_go_one_at_a_time() {
        let now = Instant::now();
        let mut s = seq();
        s.assign(&tp(0), 1, 10);
        s.on_sent(&tp(0), 1, 1);
        assert!(matches!(
            s.on_attempt(&tp(0), 1, err(ErrorCode::MESSAGE_TOO_LARGE), now, true),
            Verdict::Split
        ));
        let stamps = s.split(&tp(0), 1, &[(2, 5), (3, 5)]).unwrap();
        assert_eq!(
            stamps.iter().map(|st| st.base_sequence).collect::<Vec<_>>(),
            vec![0, 5]
        );
        assert_eq!(s.next_retry(&tp(0), 1, now), Some(2));
        s.on_sent(&tp(0), 2, 1);
        assert_eq!(
            s.next_retry(&tp(0), 1, now),
            None,
            "the broker has no sequence state yet"
        );
        s.on_attempt(&tp(0), 2, Attempt::Written, now, true);
        assert_eq!(s.next_retry(&tp(0), 1, now), Some(3));
    }

    #[test]
    fn sequence_wraps_like_kafka() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 3), 8);
    }

    /// Puts partition `tp` where 2^31 - 1 - `left` records were already
    /// acknowledged (sending that many for real takes hours).
    fn near_the_end(s: &mut Sequencer, tp: &TopicPartition, left: i32) {
        let now = Instant::now();
        s.assign(tp, 0, 1);
        s.on_sent(tp, 0, 1);
        assert!(matches!(
            s.on_attempt(tp, 0, Attempt::Written, now, true),
            Verdict::Done
        ));
        let p = s.partitions.get_mut(tp).unwrap();
        p.next_sequence = i32::MAX - left;
        p.last_acked = i32::MAX - left - 1;
    }

    #[test]
    fn sequences_wrap_to_zero_after_i32_max_across_batches() {
        // Java's producer and the broker wrap a sequence from
        // Integer.MAX_VALUE to 0; a batch may straddle the wrap.
        let now = Instant::now();
        let mut s = seq();
        near_the_end(&mut s, &tp(0), 2);
        let a = s.assign(&tp(0), 1, 2); // MAX-2, MAX-1
        s.on_sent(&tp(0), 1, 1);
        let b = s.assign(&tp(0), 2, 4); // MAX, 0, 1, 2
        s.on_sent(&tp(0), 2, 1);
        let c = s.assign(&tp(0), 3, 1); // 3
        s.on_sent(&tp(0), 3, 1);
        assert_eq!(
            [a.base_sequence, b.base_sequence, c.base_sequence],
            [i32::MAX - 2, i32::MAX, 3]
        );
        assert!(
            s.may_send(&tp(0), 1),
            "pipelining continues across the wrap"
        );
        assert!(matches!(
            s.on_attempt(&tp(0), 1, Attempt::Written, now, true),
            Verdict::Done
        ));
        assert_eq!(s.partitions[&tp(0)].last_acked, i32::MAX - 1);
        assert!(matches!(
            s.on_attempt(&tp(0), 2, Attempt::Written, now, true),
            Verdict::Done
        ));
        assert_eq!(
            s.partitions[&tp(0)].last_acked,
            2,
            "the last sequence of a straddling batch wraps"
        );
        assert!(matches!(
            s.on_attempt(&tp(0), 3, Attempt::Written, now, true),
            Verdict::Done
        ));
        assert_eq!(s.partitions[&tp(0)].last_acked, 3);
        assert_eq!(s.assign(&tp(0), 4, 1).base_sequence, 4);
    }

    #[test]
    fn a_batch_ending_exactly_at_i32_max_is_followed_by_zero() {
        let now = Instant::now();
        let mut s = seq();
        near_the_end(&mut s, &tp(0), 4);
        let a = s.assign(&tp(0), 1, 5); // MAX-4 ..= MAX
        s.on_sent(&tp(0), 1, 1);
        assert!(matches!(
            s.on_attempt(&tp(0), 1, Attempt::Written, now, true),
            Verdict::Done
        ));
        assert_eq!(a.base_sequence, i32::MAX - 4);
        assert_eq!(s.partitions[&tp(0)].last_acked, i32::MAX);
        assert_eq!(s.assign(&tp(0), 2, 1).base_sequence, 0);
    }

    #[test]
    fn retries_and_rewrites_across_the_wrap_keep_order() {
        let now = Instant::now();
        let mut s = seq();
        near_the_end(&mut s, &tp(0), 1);
        s.assign(&tp(0), 1, 3); // MAX-1, MAX, 0
        s.on_sent(&tp(0), 1, 1);
        s.assign(&tp(0), 2, 2); // 1, 2
        s.on_sent(&tp(0), 2, 1);
        // A retriable error keeps the wrapped stamps unchanged.
        s.on_attempt(&tp(0), 1, err(ErrorCode::NOT_ENOUGH_REPLICAS), now, true);
        s.on_attempt(
            &tp(0),
            2,
            err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            now,
            true,
        );
        let stamps: Vec<i32> = s.batches(&tp(0)).map(|b| b.stamp.base_sequence).collect();
        assert_eq!(stamps, vec![i32::MAX - 1, 1]);
        // A gap at the head: a new epoch renumbers from 0, in order.
        s.on_sent(&tp(0), 1, 1);
        s.on_sent(&tp(0), 2, 1);
        s.on_attempt(
            &tp(0),
            1,
            err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            now,
            true,
        );
        s.on_attempt(
            &tp(0),
            2,
            err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            now,
            true,
        );
        let rw = s.rewrite_pending();
        let e1 = ProducerIdEpoch { id: 7, epoch: 1 };
        assert_eq!(
            rw.iter().map(|(_, id, st)| (*id, *st)).collect::<Vec<_>>(),
            vec![
                (
                    1,
                    Stamp {
                        producer: e1,
                        base_sequence: 0
                    }
                ),
                (
                    2,
                    Stamp {
                        producer: e1,
                        base_sequence: 3
                    }
                )
            ]
        );
    }

    #[test]
    fn every_epoch_up_to_the_last_is_used_then_a_new_id_is_needed() {
        // Bumps go 0 -> 1 -> ... until the epoch reaches i16::MAX - 1; the
        // next one asks InitProducerId for a new id (Kafka's coordinator
        // treats epochs from i16::MAX - 1 on as exhausted). The epoch is
        // never negative or wrapped.
        let now = Instant::now();
        let mut s = Sequencer::new(true, 5, u32::MAX);
        s.set_producer(ProducerIdEpoch {
            id: 1,
            epoch: i16::MAX - 3,
        });
        let mut seen = vec![];
        for id in 1..=3u64 {
            s.assign(&tp(0), id, 1);
            s.on_sent(&tp(0), id, 1);
            s.on_attempt(
                &tp(0),
                id,
                err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
                now,
                true,
            );
            match s.rewrite_pending().first() {
                Some((_, _, st)) => seen.push(st.producer),
                None => {
                    assert!(
                        s.needs_producer_id(),
                        "exhausted without asking for a new id"
                    );
                    s.set_producer(ProducerIdEpoch { id: 2, epoch: 0 });
                    let rw = s.rewrite_pending();
                    seen.push(rw[0].2.producer);
                    assert_eq!(rw[0].2.base_sequence, 0);
                }
            }
            s.on_sent(&tp(0), id, 1);
            assert!(matches!(
                s.on_attempt(&tp(0), id, Attempt::Written, now, true),
                Verdict::Done
            ));
        }
        assert_eq!(
            seen,
            vec![
                ProducerIdEpoch {
                    id: 1,
                    epoch: i16::MAX - 2
                },
                ProducerIdEpoch {
                    id: 1,
                    epoch: i16::MAX - 1
                },
                ProducerIdEpoch { id: 2, epoch: 0 },
            ]
        );
    }

    #[test]
    fn the_test_hook_start_applies_to_the_first_producer_only() {
        let now = Instant::now();
        let mut s = seq();
        s.start_sequences_at(ProducerIdEpoch { id: 7, epoch: 0 }, i32::MAX - 1);
        assert_eq!(s.assign(&tp(0), 1, 3).base_sequence, i32::MAX - 1);
        assert_eq!(s.assign(&tp(0), 2, 1).base_sequence, 1, "wrapped");
        assert_eq!(s.assign(&tp(1), 3, 1).base_sequence, i32::MAX - 1);
        // A gap at the head of partition 1: the new epoch starts at 0.
        s.on_sent(&tp(1), 3, 1);
        s.on_attempt(
            &tp(1),
            3,
            err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            now,
            true,
        );
        let rw = s.rewrite_pending();
        assert_eq!(
            rw[0].2,
            Stamp {
                producer: ProducerIdEpoch { id: 7, epoch: 1 },
                base_sequence: 0
            }
        );
        assert_eq!(
            s.assign(&tp(2), 4, 1).base_sequence,
            0,
            "a partition first used under the new epoch"
        );
    }

    #[test]
    fn without_idempotence_no_sequences_but_same_ordering() {
        let now = Instant::now();
        let mut s = Sequencer::new(false, 5, 3);
        assert!(!s.needs_producer_id());
        let st = s.assign(&tp(0), 1, 4);
        assert_eq!(
            st,
            Stamp {
                producer: ProducerIdEpoch::NONE,
                base_sequence: NO_SEQUENCE
            }
        );
        s.on_sent(&tp(0), 1, 1);
        for _ in 0..3 {
            assert!(matches!(
                s.on_attempt(&tp(0), 1, Attempt::NoAnswer, now, true),
                Verdict::Retry
            ));
            s.on_sent(&tp(0), 1, 1);
        }
        assert!(matches!(
            s.on_attempt(&tp(0), 1, Attempt::NoAnswer, now, true),
            Verdict::Fail(_)
        ));
    }
}
