//! The sender task: drains ready batches, builds one Produce request per
//! broker from them, and applies the answers.
//!
//! One task per producer owns the [`Sequencer`] (producer id, epoch,
//! sequences, batches in flight) and the bytes of every drained batch. The
//! per-broker request futures it spawns ("sinks") only move bytes: they get
//! the connection, encode the request at the negotiated version, send it,
//! and report the decoded response (or the failure) back on a channel. No
//! other task touches sequence state.
//!
//! Per broker at most `max.in.flight.requests.per.connection` requests await
//! an answer; each request carries at most one batch per partition and at
//! most `max.request.size` bytes.
//!
//! Requests to one broker are written in the order the sender built them:
//! each request future queues its frame only after the previous one to
//! that broker has queued (or given up). The sequencer pipelines a
//! partition's batches on that order; were a later batch written first,
//! the broker would refuse it as out of sequence, and a transaction could
//! not commit.

use super::accumulator::{QueuedBatch, TopicPartition};
use super::delivery::{BatchAck, Completion};
use super::idempotence::{Attempt, ProducerIdEpoch, Sequencer, Stamp, Verdict};
use super::transactional::{add_partitions, lock_txn, V1_MAX_PRODUCE};
use super::txn::{TxnErrorAction, TxnState};
use super::Shared;
use crate::error::{Error, ErrorCode, ErrorKind, Result};
use crate::net::backoff::JITTER;
use crate::net::{ConnKind, NodeId};
use crate::protocol::messages::init_producer_id::InitProducerIdRequest;
use crate::protocol::messages::produce::{
    PartitionProduceData, ProduceRequest, ProduceResponse, TopicProduceData,
};
use crate::protocol::messages::Uuid;
use crate::record::{set_producer_state, set_transactional_producer_state, with_producer_state};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Bytes of a Produce request besides the batches, bounded generously:
/// header, client id, transactional id, and per topic/partition framing.
const REQUEST_OVERHEAD: usize = 1024;
const PER_PARTITION_OVERHEAD: usize = 64;

/// A batch the sender owns: sealed bytes plus what completing it needs.
struct SenderBatch {
    tp: TopicPartition,
    payload: Bytes,
    created: Instant,
    completion: Arc<Completion>,
    reserved: usize,
    /// The accumulator's id of the batch this is (a piece of, after a
    /// split): flush waits for it, memory is returned under it.
    origin: u64,
    /// Offset delta of the first record within the origin batch (0 unless
    /// this is a piece of a split batch).
    first: i32,
    /// The records already failed with a delivery timeout while the batch
    /// was in flight; the sequencer keeps tracking it until its attempt
    /// ends (its outcome, hence its sequence, is unresolved until then).
    expired: bool,
}

/// A request on its way, as the sender remembers it.
struct InFlight {
    node: NodeId,
    batches: Vec<(TopicPartition, u64)>,
}

/// One partition's answer: code, base offset, log append time, log start
/// offset, error message.
type Answer<'a> = (ErrorCode, i64, i64, i64, Option<&'a str>);

/// What happened to one batch of a request: the attempt's outcome, the
/// acknowledgement if written, and the broker's error message.
type Outcome = (
    TopicPartition,
    u64,
    Attempt,
    Option<BatchAck>,
    Option<String>,
);

enum Event {
    Produced {
        req: u64,
        result: Result<Option<ProduceResponse>>,
    },
    ProducerId(Result<ProducerIdEpoch>),
    /// An AddPartitionsToTxn request for these partitions finished.
    PartitionsAdded {
        tps: Vec<TopicPartition>,
        result: Result<Vec<(TopicPartition, ErrorCode)>>,
    },
}

pub(crate) struct Sender {
    shared: Arc<Shared>,
    seq: Sequencer,
    batches: HashMap<u64, SenderBatch>,
    requests: HashMap<u64, InFlight>,
    per_node: HashMap<NodeId, usize>,
    /// Per broker: resolves once the last request built for it has been
    /// queued on its connection (or failed before): the next one waits for
    /// it, so requests are written in the order they were built.
    queued: HashMap<NodeId, oneshot::Receiver<()>>,
    next_req: u64,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    init_in_progress: bool,
    rng: u64,
    /// An AddPartitionsToTxn request is on its way (one at a time: later
    /// partitions wait and go together in the next one).
    add_in_flight: bool,
    /// Backoff for AddPartitionsToTxn after a retriable failure.
    add_not_before: Option<Instant>,
    add_failures: u32,
    /// Split batches with pieces unfinished: origin id -> (pieces left,
    /// memory reserved by the origin). The origin is released with the last.
    split_origins: HashMap<u64, (usize, usize)>,
    /// Ids for pieces of split batches, above any accumulator id.
    next_piece_id: u64,
    /// The test hooks are applied (to the first producer id only).
    #[cfg(feature = "test-hooks")]
    hooks_applied: bool,
}

impl Sender {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let cfg = &shared.cfg;
        let per_partition = if cfg.enable_idempotence {
            5
        } else {
            cfg.max_in_flight_requests_per_connection.min(5)
        };
        let mut seq = Sequencer::new(cfg.enable_idempotence, per_partition, cfg.retries);
        if shared.txn.is_some() {
            seq.set_transactional();
        }
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Sender {
            shared,
            seq,
            batches: HashMap::new(),
            requests: HashMap::new(),
            per_node: HashMap::new(),
            queued: HashMap::new(),
            next_req: 0,
            events_tx,
            events_rx,
            init_in_progress: false,
            rng: 0x2545_F491_4F6C_DD1D,
            add_in_flight: false,
            add_not_before: None,
            add_failures: 0,
            split_origins: HashMap::new(),
            next_piece_id: u64::MAX / 2,
            #[cfg(feature = "test-hooks")]
            hooks_applied: false,
        }
    }

    /// Test only: moves the first producer id's epoch and first sequences
    /// where [`super::test_hooks::TestHooks`] says.
    #[cfg(feature = "test-hooks")]
    fn apply_test_hooks(&mut self, p: ProducerIdEpoch) -> ProducerIdEpoch {
        if std::mem::replace(&mut self.hooks_applied, true) {
            return p;
        }
        let h = self.shared.hooks;
        let p = ProducerIdEpoch {
            id: p.id,
            epoch: h.first_epoch.unwrap_or(p.epoch),
        };
        self.seq.start_sequences_at(p, h.first_sequence);
        p
    }

    /// Runs until the producer is closed and everything is finished, or a
    /// forced close.
    pub(crate) async fn run(mut self) {
        loop {
            let now = Instant::now();
            if self.shared.force_closed() {
                self.fail_everything(Error::new(
                    ErrorKind::Closed,
                    "the producer was closed before the record was sent",
                ));
                return;
            }
            self.expire(now);
            if let Some(fatal) = self.seq.fatal().cloned() {
                self.shared.set_fatal(fatal.clone());
                self.fail_everything(fatal);
            }
            if self.seq.needs_producer_id() && !self.init_in_progress {
                self.init_in_progress = true;
                tokio::spawn(init_producer_id(
                    self.shared.clone(),
                    self.events_tx.clone(),
                ));
            }
            for (tp, id, stamp) in self.seq.rewrite_pending() {
                self.restamp(&tp, id, stamp);
            }
            let add_wake = self.drive_transaction(now);
            let mut next_wake = self.send_ready(now);
            if let Some(t) = add_wake {
                next_wake = Some(next_wake.map_or(t, |n: Instant| n.min(t)));
            }
            let closed_and_empty = {
                let acc = self.shared.lock_acc();
                acc.is_closed() && acc.is_empty()
            };
            if closed_and_empty && self.batches.is_empty() && self.requests.is_empty() {
                return;
            }
            for t in [self.seq.next_retry_time(), self.next_batch_expiry()]
                .into_iter()
                .flatten()
            {
                next_wake = Some(next_wake.map_or(t, |n: Instant| n.min(t)));
            }
            let sleep_until = next_wake
                .unwrap_or(now + Duration::from_secs(1))
                .max(now + Duration::from_micros(50));
            tokio::select! {
                _ = self.shared.wake.notified() => {}
                ev = self.events_rx.recv() => {
                    if let Some(ev) = ev {
                        self.handle(ev);
                        while let Ok(ev) = self.events_rx.try_recv() {
                            self.handle(ev);
                        }
                    }
                }
                _ = tokio::time::sleep_until(sleep_until.into()) => {}
            }
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::ProducerId(r) => {
                self.init_in_progress = false;
                match r {
                    Ok(p) => {
                        #[cfg(feature = "test-hooks")]
                        let p = self.apply_test_hooks(p);
                        tracing::debug!(
                            producer_id = p.id,
                            epoch = p.epoch,
                            "producer id assigned"
                        );
                        self.seq.set_producer(p);
                    }
                    Err(e) => {
                        // Retriable errors are retried inside the init task
                        // until max.block.ms; what comes out is final.
                        self.seq.set_fatal(e);
                    }
                }
            }
            Event::Produced { req, result } => self.on_response(req, result),
            Event::PartitionsAdded { tps, result } => self.on_partitions_added(tps, result),
        }
    }

    /// The transactional part of one sender round: keeps the sequencer on
    /// the manager's producer id and epoch, fails queued records once the
    /// transaction cannot commit, and sends AddPartitionsToTxn (v1) for
    /// partitions that got their first record. Returns when to come back
    /// for a delayed AddPartitionsToTxn.
    fn drive_transaction(&mut self, now: Instant) -> Option<Instant> {
        let txn = self.shared.txn.as_ref()?;
        let (state, pid, epoch, error, to_add) = {
            let mut t = lock_txn(txn);
            let (pid, epoch) = t.producer_id_and_epoch();
            let may_add =
                !self.add_in_flight && self.add_not_before.is_none_or(|at| now >= at) && pid >= 0;
            let to_add = if may_add {
                t.take_partitions_to_add()
            } else {
                Vec::new()
            };
            (t.state(), pid, epoch, t.last_error().cloned(), to_add)
        };
        // Epochs change only between transactions (init, EndTxn v5, abort
        // bump), when no batch is tracked: partitions restart at sequence 0.
        let p = ProducerIdEpoch { id: pid, epoch };
        if pid >= 0 && self.seq.current() != Some(p) {
            self.seq.set_producer(p);
        }
        if matches!(state, TxnState::AbortableError | TxnState::FatalError) {
            let e = error
                .unwrap_or_else(|| Error::illegal_state("the transaction can no longer commit"));
            if state == TxnState::FatalError {
                self.shared.set_fatal(e.clone());
            }
            let queued = self.shared.lock_acc().drain_all();
            for (tp, b) in queued {
                let e = e.clone().with_partition(&*tp.topic, tp.partition);
                self.finish_queued(b, Err(e));
            }
        }
        if !to_add.is_empty() {
            self.add_in_flight = true;
            let shared = self.shared.clone();
            let tx = self.events_tx.clone();
            tokio::spawn(async move {
                let result = add_partitions(&shared, pid, epoch, &to_add).await;
                let _ = tx.send(Event::PartitionsAdded {
                    tps: to_add,
                    result,
                });
            });
        }
        self.add_not_before.filter(|at| *at > now)
    }

    fn on_partitions_added(
        &mut self,
        tps: Vec<TopicPartition>,
        result: Result<Vec<(TopicPartition, ErrorCode)>>,
    ) {
        self.add_in_flight = false;
        let Some(txn) = self.shared.txn.as_ref() else {
            return;
        };
        let retry = match result {
            Ok(results) => {
                let worst = lock_txn(txn).on_partitions_added(&results);
                matches!(
                    worst,
                    Some((TxnErrorAction::Retry | TxnErrorAction::Rediscover, _))
                )
            }
            Err(e) => {
                tracing::debug!(error = %e, "AddPartitionsToTxn failed, retrying");
                let tid = self
                    .shared
                    .cfg
                    .transactional_id
                    .as_deref()
                    .unwrap_or_default();
                self.shared
                    .cluster
                    .invalidate_coordinator(crate::cluster::CoordinatorType::Transaction, tid);
                lock_txn(txn).on_add_partitions_failed(&tps);
                true
            }
        };
        if retry {
            self.add_failures += 1;
            // CONCURRENT_TRANSACTIONS clears within milliseconds (the last
            // transaction's markers): start small.
            let base = Duration::from_millis(20);
            let delay = (base * 2u32.pow(self.add_failures.min(6)))
                .min(self.shared.cfg.client.retry_backoff_max);
            self.add_not_before = Some(Instant::now() + delay);
        } else {
            self.add_failures = 0;
            self.add_not_before = None;
        }
        self.shared.finished.notify_waiters();
    }

    /// A batch failed for good inside a transaction: the transaction can
    /// no longer commit (or the producer is fenced). Returns the error its
    /// records fail with, classed as the transaction manager judged it
    /// (abortable or fatal) when a transaction is involved.
    fn on_txn_batch_failed(&self, e: Error) -> Error {
        if let Some(txn) = self.shared.txn.as_ref() {
            let mut t = lock_txn(txn);
            if t.state() != TxnState::Aborting {
                return t.on_produce_failed(e);
            }
        }
        e
    }

    fn next_batch_expiry(&self) -> Option<Instant> {
        let dt = self.shared.cfg.delivery_timeout;
        let acc_next = self.shared.lock_acc().next_expiry();
        let mine = self
            .batches
            .values()
            .filter(|b| !b.expired)
            .map(|b| b.created + dt)
            .min();
        match (acc_next, mine) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn random_unit(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `retry.backoff.ms * 2^(attempts-1)`, capped at `retry.backoff.max.ms`,
    /// with ±20% jitter.
    fn retry_delay(&mut self, attempts: u32) -> Duration {
        let c = &self.shared.cfg.client;
        let initial = c.retry_backoff.as_secs_f64();
        let max = c.retry_backoff_max.as_secs_f64().max(initial);
        let base = (initial * 2f64.powi(attempts.saturating_sub(1).min(30) as i32)).min(max);
        let factor = 1.0 - JITTER + 2.0 * JITTER * self.random_unit();
        Duration::from_secs_f64(base * factor)
    }

    /// Fails batches that reached `delivery.timeout.ms`: those still in the
    /// accumulator, those waiting to be retried, and (as the Java client
    /// does) those awaiting an answer. `delivery.timeout.ms` so bounds a
    /// record's whole life. A batch in flight stays tracked by the
    /// sequencer until its attempt ends: it may yet be written, so its
    /// sequence is unresolved; if it was not, the next batch of the
    /// partition meets the gap (OUT_OF_ORDER_SEQUENCE_NUMBER at the head)
    /// and the epoch bump renumbers what follows.
    fn expire(&mut self, now: Instant) {
        let expired = self.shared.lock_acc().expire(now);
        for (tp, b) in expired {
            let e = Error::timeout(format!(
                "record expired: not sent within delivery.timeout.ms ({} ms)",
                self.shared.cfg.delivery_timeout.as_millis()
            ))
            .with_partition(&*tp.topic, tp.partition);
            let e = self.on_txn_batch_failed(e);
            self.finish_queued(b, Err(e));
        }
        let dt = self.shared.cfg.delivery_timeout;
        let due: Vec<u64> = self
            .batches
            .iter()
            .filter(|(id, b)| now >= b.created + dt && !self.seq.is_outstanding(&b.tp, **id))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(b) = self.batches.get(&id) {
                let tp = b.tp.clone();
                self.seq.remove(&tp, id);
                let e = Error::timeout(format!(
                    "record expired: not acknowledged within delivery.timeout.ms ({} ms)",
                    dt.as_millis()
                ))
                .with_partition(&*tp.topic, tp.partition);
                let e = self.on_txn_batch_failed(e);
                self.finish(id, Err(e));
            }
        }
        let in_flight: Vec<u64> = self
            .batches
            .iter()
            .filter(|(id, b)| {
                !b.expired && now >= b.created + dt && self.seq.is_outstanding(&b.tp, **id)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in in_flight {
            let Some(b) = self.batches.get_mut(&id) else {
                continue;
            };
            b.expired = true;
            let e = Error::timeout(format!(
                "record expired: delivery.timeout.ms ({} ms) passed while its batch was in flight; \
                 the broker may still have written it",
                dt.as_millis()
            ))
            .with_partition(&*b.tp.topic, b.tp.partition);
            tracing::debug!(error = %e, "in-flight batch expired");
            let first = b.first;
            let e = self.on_txn_batch_failed(e);
            if let Some(b) = self.batches.get_mut(&id) {
                b.completion.complete_piece(first, Err(e));
            }
        }
    }

    /// Completes a batch the sender owns and returns its memory.
    fn finish(&mut self, id: u64, result: Result<BatchAck>) {
        if let Some(b) = self.batches.remove(&id) {
            if let Err(e) = &result {
                tracing::debug!(error = %e, "batch failed");
            }
            b.completion.complete_piece(b.first, result);
            match self.split_origins.get_mut(&b.origin) {
                Some((left, _)) if *left > 1 => *left -= 1,
                Some(&mut (_, reserved)) => {
                    self.split_origins.remove(&b.origin);
                    self.shared.release(b.origin, reserved);
                }
                None => self.shared.release(b.origin, b.reserved),
            }
        }
    }

    /// Splits batch `id`, refused as too large, into pieces that replace
    /// it in the sequencer and are sent like retries; see [`super::split`].
    fn split(&mut self, id: u64) {
        let Some(b) = self.batches.get(&id) else {
            return;
        };
        let tp = b.tp.clone();
        let pieces = match super::split::split(&b.payload) {
            Ok(p) => p,
            Err(e) => {
                let e = Error::illegal_state(format!(
                    "internal: could not split a batch the broker found too large: {e}"
                ))
                .with_partition(&*tp.topic, tp.partition);
                self.seq.remove(&tp, id);
                self.finish(id, Err(e));
                return;
            }
        };
        let ids: Vec<(u64, i32)> = pieces
            .iter()
            .map(|p| {
                self.next_piece_id += 1;
                (self.next_piece_id, p.count)
            })
            .collect();
        let Some(stamps) = self.seq.split(&tp, id, &ids) else {
            let e = Error::illegal_state("internal: the batch to split is not tracked")
                .with_partition(&*tp.topic, tp.partition);
            self.seq.remove(&tp, id);
            self.finish(id, Err(e));
            return;
        };
        let Some(b) = self.batches.remove(&id) else {
            return;
        };
        tracing::debug!(topic = %tp.topic, partition = tp.partition, pieces = pieces.len(), "split a batch the broker found too large");
        b.completion.split(pieces.len() as u32);
        let entry = self
            .split_origins
            .entry(b.origin)
            .or_insert((1, b.reserved));
        entry.0 += pieces.len() - 1;
        for ((piece, (piece_id, _)), stamp) in pieces.into_iter().zip(ids).zip(stamps) {
            let mut bytes = piece.bytes;
            let result = self.stamp(&mut bytes, stamp);
            let batch = SenderBatch {
                tp: tp.clone(),
                payload: bytes.freeze(),
                created: b.created,
                completion: b.completion.clone(),
                reserved: 0,
                origin: b.origin,
                first: b.first + piece.first,
                expired: false,
            };
            self.batches.insert(piece_id, batch);
            if let Err(e) = result {
                self.seq.remove(&tp, piece_id);
                self.finish(piece_id, Err(e.with_partition(&*tp.topic, tp.partition)));
            }
        }
    }

    /// Writes producer id, epoch and base sequence into a sealed batch.
    fn stamp(&self, bytes: &mut [u8], stamp: Stamp) -> Result<()> {
        if stamp.producer == ProducerIdEpoch::NONE {
            return Ok(());
        }
        let (pid, epoch, seq) = (stamp.producer.id, stamp.producer.epoch, stamp.base_sequence);
        let stamped = if self.shared.txn.is_some() {
            set_transactional_producer_state(bytes, pid, epoch, seq)
        } else {
            set_producer_state(bytes, pid, epoch, seq)
        };
        stamped
            .map_err(|e| Error::illegal_state(format!("internal: could not stamp the batch: {e}")))
    }

    /// Completes a batch that never left the accumulator.
    fn finish_queued(&self, b: QueuedBatch, result: Result<BatchAck>) {
        if let Err(e) = &result {
            tracing::debug!(error = %e, "batch failed before it was sent");
        }
        b.completion.complete(result);
        self.shared.release(b.id, b.reserved);
    }

    fn fail_everything(&mut self, e: Error) {
        let queued = self.shared.lock_acc().drain_all();
        for (_, b) in queued {
            self.finish_queued(b, Err(e.clone()));
        }
        self.seq.clear();
        let ids: Vec<u64> = self.batches.keys().copied().collect();
        for id in ids {
            self.finish(id, Err(e.clone()));
        }
    }

    fn restamp(&mut self, tp: &TopicPartition, id: u64, stamp: Stamp) {
        let Some(b) = self.batches.get_mut(&id) else {
            return;
        };
        let payload = std::mem::take(&mut b.payload);
        match with_producer_state(
            payload,
            stamp.producer.id,
            stamp.producer.epoch,
            stamp.base_sequence,
        ) {
            Ok(p) => b.payload = p,
            Err(e) => {
                let e =
                    Error::illegal_state(format!("internal: could not re-sequence a batch: {e}"))
                        .with_partition(&*tp.topic, tp.partition);
                self.seq.remove(tp, id);
                self.finish(id, Err(e));
            }
        }
    }

    /// Builds and spawns every request that can go now. Returns when the
    /// next lingering batch becomes ready.
    fn send_ready(&mut self, now: Instant) -> Option<Instant> {
        let snap = self.shared.cluster.snapshot();
        let ready = self.shared.lock_acc().ready(now);
        let mut by_node: BTreeMap<NodeId, Vec<TopicPartition>> = BTreeMap::new();
        let mut missing_leader = false;
        let mut candidates = ready.partitions;
        if let Some(txn) = self.shared.txn.as_ref() {
            // New batches of a partition go only once it is part of the
            // transaction (v1: AddPartitionsToTxn acknowledged).
            let t = lock_txn(txn);
            candidates.retain(|tp| t.is_sendable(tp));
        }
        for tp in self.seq.partitions_with_retries() {
            if !candidates.contains(&tp) {
                candidates.push(tp);
            }
        }
        for tp in candidates {
            match snap.leader_of(&tp.topic, tp.partition) {
                Some(node) => by_node.entry(node).or_default().push(tp),
                None => missing_leader = true,
            }
        }
        let mut next = ready.next;
        if missing_leader {
            self.shared.cluster.request_update();
            let t = now + self.shared.cfg.client.retry_backoff;
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        for (node, tps) in by_node {
            self.send_to(node, &tps, now, &snap);
        }
        next
    }

    fn send_to(
        &mut self,
        node: NodeId,
        tps: &[TopicPartition],
        now: Instant,
        snap: &crate::cluster::MetadataSnapshot,
    ) {
        let max_in_flight = self.shared.cfg.max_in_flight_requests_per_connection;
        loop {
            if self.per_node.get(&node).copied().unwrap_or(0) >= max_in_flight {
                return;
            }
            let budget = self.shared.cfg.max_request_size;
            let mut used = REQUEST_OVERHEAD;
            let mut chosen: Vec<(TopicPartition, u64)> = Vec::new();
            let mut drained: Vec<(TopicPartition, QueuedBatch)> = Vec::new();
            {
                let mut acc = self.shared.lock_acc();
                for tp in tps {
                    if let Some(id) = self.seq.next_retry(tp, node, now) {
                        let size = self.batches.get(&id).map_or(0, |b| b.payload.len())
                            + PER_PARTITION_OVERHEAD;
                        if used + size > budget && !chosen.is_empty() {
                            continue;
                        }
                        used += size;
                        chosen.push((tp.clone(), id));
                        continue;
                    }
                    // New batches go only behind outstanding ones (never
                    // ahead of a retry) and within the per-partition bound.
                    if !self.seq.may_send(tp, node) {
                        continue;
                    }
                    let Some(size) = acc.peek_size(tp) else {
                        continue;
                    };
                    let size = size + PER_PARTITION_OVERHEAD;
                    if used + size > budget && !(chosen.is_empty() && drained.is_empty()) {
                        continue;
                    }
                    if let Some(b) = acc.drain(tp, now) {
                        used += size;
                        drained.push((tp.clone(), b));
                    }
                }
            }
            for (tp, b) in drained {
                let QueuedBatch {
                    id,
                    mut builder,
                    created,
                    completion,
                    reserved,
                    ..
                } = b;
                let count = builder.record_count() as i32;
                // Stamped before sealing, so the batch is checksummed once.
                let stamp = self.seq.assign(&tp, id, count);
                if stamp.producer != ProducerIdEpoch::NONE {
                    let (pid, epoch) = (stamp.producer.id, stamp.producer.epoch);
                    builder.set_producer_state(
                        pid,
                        epoch,
                        stamp.base_sequence,
                        self.shared.txn.is_some(),
                    );
                }
                let bytes = match builder.finish_mut() {
                    Ok(b) => b,
                    Err(e) => {
                        let e = Error::new(
                            ErrorKind::IllegalState,
                            format!("could not seal the batch: {e}"),
                        )
                        .with_partition(&*tp.topic, tp.partition);
                        self.seq.remove(&tp, id);
                        completion.complete(Err(e));
                        self.shared.release(id, reserved);
                        continue;
                    }
                };
                let batch = SenderBatch {
                    tp: tp.clone(),
                    payload: bytes.freeze(),
                    created,
                    completion,
                    reserved,
                    origin: id,
                    first: 0,
                    expired: false,
                };
                self.batches.insert(id, batch);
                chosen.push((tp, id));
            }
            if chosen.is_empty() {
                return;
            }
            self.spawn_request(node, chosen, snap);
        }
    }

    fn spawn_request(
        &mut self,
        node: NodeId,
        chosen: Vec<(TopicPartition, u64)>,
        snap: &crate::cluster::MetadataSnapshot,
    ) {
        let mut topics: BTreeMap<Arc<str>, Vec<(i32, Bytes)>> = BTreeMap::new();
        for (tp, id) in &chosen {
            self.seq.on_sent(tp, *id, node);
            if let Some(b) = self.batches.get(id) {
                topics
                    .entry(tp.topic.clone())
                    .or_default()
                    .push((tp.partition, b.payload.clone()));
            }
        }
        let ids: HashMap<Arc<str>, Uuid> = topics
            .keys()
            .map(|t| (t.clone(), snap.topic(t).map(|i| i.id).unwrap_or(Uuid::ZERO)))
            .collect();
        let req_id = self.next_req;
        self.next_req += 1;
        *self.per_node.entry(node).or_insert(0) += 1;
        self.requests.insert(
            req_id,
            InFlight {
                node,
                batches: chosen,
            },
        );
        let (queued_tx, queued_rx) = oneshot::channel();
        let after = self.queued.insert(node, queued_rx);
        let shared = self.shared.clone();
        let tx = self.events_tx.clone();
        tokio::spawn(async move {
            let result = produce(&shared, node, topics, ids, after, queued_tx).await;
            let _ = tx.send(Event::Produced {
                req: req_id,
                result,
            });
        });
    }

    fn on_response(&mut self, req: u64, result: Result<Option<ProduceResponse>>) {
        let Some(inflight) = self.requests.remove(&req) else {
            return;
        };
        if let Some(n) = self.per_node.get_mut(&inflight.node) {
            *n = n.saturating_sub(1);
        }
        let now = Instant::now();
        let dt = self.shared.cfg.delivery_timeout;
        // Index the answer by topic (name, or id on v13+) and partition.
        let mut answers: HashMap<(&str, i32), Answer<'_>> = HashMap::new();
        let mut by_id: HashMap<(Uuid, i32), Answer<'_>> = HashMap::new();
        let transport_error = match &result {
            Ok(Some(resp)) => {
                for t in &resp.responses {
                    for p in &t.partition_responses {
                        let v = (
                            ErrorCode(p.error_code),
                            p.base_offset,
                            p.log_append_time_ms,
                            p.log_start_offset,
                            p.error_message.as_deref(),
                        );
                        if t.topic_id != Uuid::ZERO {
                            by_id.insert((t.topic_id, p.index), v);
                        }
                        answers.insert((t.name.as_str(), p.index), v);
                    }
                }
                None
            }
            Ok(None) => None,
            Err(e) => Some(e.clone()),
        };
        let snap = self.shared.cluster.snapshot();
        let mut refresh = transport_error.is_some();
        let mut outcomes: Vec<Outcome> = Vec::new();
        for (tp, id) in &inflight.batches {
            let (attempt, ack, msg) = match (&result, &transport_error) {
                (_, Some(_)) => (Attempt::NoAnswer, None, None),
                (Ok(None), _) => (
                    Attempt::Written,
                    Some(BatchAck {
                        base_offset: -1,
                        log_append_time: -1,
                    }),
                    None,
                ),
                _ => {
                    let found = answers
                        .get(&(&*tp.topic, tp.partition))
                        .copied()
                        .or_else(|| {
                            let tid = snap.topic(&tp.topic).map(|i| i.id)?;
                            by_id.get(&(tid, tp.partition)).copied()
                        });
                    match found {
                        Some((code, base, lat, _, _))
                            if code.is_ok() || code == ErrorCode::DUPLICATE_SEQUENCE_NUMBER =>
                        {
                            (
                                Attempt::Written,
                                Some(BatchAck {
                                    base_offset: base,
                                    log_append_time: lat,
                                }),
                                None,
                            )
                        }
                        Some((code, _, _, lso, msg)) => {
                            if code.invalidates_metadata() {
                                refresh = true;
                            }
                            (
                                Attempt::Error {
                                    code,
                                    log_start_offset: lso,
                                },
                                None,
                                msg.map(str::to_string),
                            )
                        }
                        None => (Attempt::NoAnswer, None, None),
                    }
                }
            };
            outcomes.push((tp.clone(), *id, attempt, ack, msg));
        }
        if refresh {
            self.shared.cluster.request_update();
        }
        for (tp, id, attempt, ack, msg) in outcomes {
            let Some(b) = self.batches.get(&id) else {
                continue;
            };
            let can_retry = now < b.created + dt && !self.shared.force_closed();
            let attempts = self
                .seq
                .batches(&tp)
                .find(|t| t.id == id)
                .map_or(1, |t| t.attempts);
            let retry_at = now + self.retry_delay(attempts);
            match self
                .seq
                .on_attempt(&tp, id, attempt.clone(), retry_at, can_retry)
            {
                Verdict::Done => self.finish(
                    id,
                    Ok(ack.unwrap_or(BatchAck {
                        base_offset: -1,
                        log_append_time: -1,
                    })),
                ),
                Verdict::Retry => {
                    tracing::debug!(topic = %tp.topic, partition = tp.partition, ?attempt, "retrying batch");
                }
                Verdict::Split => self.split(id),
                Verdict::Fail(mut e) => {
                    if let (Attempt::NoAnswer, Some(t)) = (&attempt, &transport_error) {
                        e = Error::timeout(format!("{}; last attempt: {t}", e.message()))
                            .with_class(e.class());
                    }
                    if let Some(m) = msg {
                        e = Error::new(e.kind().clone(), format!("{}: {m}", e.message()))
                            .with_class(e.class());
                    }
                    let e = e
                        .with_api("Produce")
                        .with_broker(inflight.node)
                        .with_partition(&*tp.topic, tp.partition);
                    let e = self.on_txn_batch_failed(e);
                    self.finish(id, Err(e));
                }
            }
        }
    }
}

/// Sends one Produce request to `node` and returns the answer (`None` for
/// acks=0). Queues it on the connection only once `after` (the previous
/// request to `node`) resolved, and resolves `queued` then (dropping it on
/// failure also releases the next request).
async fn produce(
    shared: &Shared,
    node: NodeId,
    topics: BTreeMap<Arc<str>, Vec<(i32, Bytes)>>,
    ids: HashMap<Arc<str>, Uuid>,
    after: Option<oneshot::Receiver<()>>,
    queued: oneshot::Sender<()>,
) -> Result<Option<ProduceResponse>> {
    if let Some(after) = after {
        let _ = after.await;
    }
    let conn = shared.cluster.connection(node, ConnKind::Produce).await?;
    let mut version = conn.version_of::<ProduceRequest>()?;
    let transactional_id = shared.cfg.transactional_id.clone();
    if let Some(txn) = shared.txn.as_ref() {
        if !lock_txn(txn).is_v2() {
            // v12+ would ask the broker to add partitions implicitly.
            version = version.min(V1_MAX_PRODUCE);
        }
    }
    // v13 names topics by id: fall back to v12 if an id is unknown.
    if version >= 13 && ids.values().any(|id| *id == Uuid::ZERO) {
        version = 12;
    }
    let by_id = version >= 13;
    let req = ProduceRequest {
        transactional_id,
        acks: shared.cfg.acks.wire(),
        timeout_ms: shared
            .cfg
            .client
            .request_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32,
        topic_data: topics
            .into_iter()
            .map(|(name, parts)| TopicProduceData {
                topic_id: if by_id {
                    ids.get(&name).copied().unwrap_or(Uuid::ZERO)
                } else {
                    Uuid::ZERO
                },
                name: if by_id {
                    String::new()
                } else {
                    name.to_string()
                },
                partition_data: parts
                    .into_iter()
                    .map(|(index, records)| PartitionProduceData {
                        index,
                        records: Some(records),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    if shared.cfg.acks.wire() == 0 {
        conn.send_no_response(&req).await?;
        let _ = queued.send(());
        return Ok(None);
    }
    // The request timeout plus a margin: the broker answers within
    // `timeout_ms` itself.
    let timeout = shared.cfg.client.request_timeout + Duration::from_secs(1);
    let in_flight = conn.enqueue_at(&req, version, timeout).await?;
    let _ = queued.send(());
    Ok(Some(in_flight.wait().await?))
}

/// Gets a producer id (InitProducerId without transactional id), retrying
/// retriable errors for up to `max.block.ms`.
async fn init_producer_id(shared: Arc<Shared>, tx: mpsc::UnboundedSender<Event>) {
    let deadline = Instant::now() + shared.cfg.max_block.max(shared.cfg.delivery_timeout);
    let mut backoff = crate::net::backoff::Backoff::new(
        shared.cfg.client.retry_backoff,
        shared.cfg.client.retry_backoff_max,
    );
    let result = loop {
        let attempt = async {
            let conn = shared.cluster.any_connection().await?;
            let req = InitProducerIdRequest {
                transactional_id: None,
                transaction_timeout_ms: 60_000,
                producer_id: -1,
                producer_epoch: -1,
                ..Default::default()
            };
            let resp = conn.send(&req).await?;
            let code = ErrorCode(resp.error_code);
            if !code.is_ok() {
                return Err(Error::broker(code, "could not get a producer id")
                    .with_api("InitProducerId")
                    .with_broker(conn.label()));
            }
            Ok(ProducerIdEpoch {
                id: resp.producer_id,
                epoch: resp.producer_epoch,
            })
        }
        .await;
        match attempt {
            Ok(p) => break Ok(p),
            Err(e) if e.is_retriable() && Instant::now() < deadline && !shared.force_closed() => {
                tracing::debug!(error = %e, "InitProducerId failed, retrying");
                tokio::time::sleep(backoff.on_failure()).await;
            }
            Err(e) => break Err(e),
        }
    };
    let _ = tx.send(Event::ProducerId(result));
}
