//! The transaction manager: the state of a transactional producer, without IO.
//!
//! ```text
//!                 init_transactions
//!  Uninitialized ───────────────────▶ Initializing ──(InitProducerId ok)──▶ Ready ◀────────────┐
//!                                                                            │ begin           │
//!                                                                            ▼                 │
//!                                      ┌──── commit ──────────────── InTransaction             │
//!                                      ▼                               │       │ abort         │
//!                                  Committing ──(EndTxn ok)────────────┼───────┼──────────────▶│
//!                                      │ abortable error               │       ▼               │
//!                                      ▼                               │   Aborting ─(EndTxn ok[, epoch bump])
//!                               AbortableError ◀── send/add failed ────┘       ▲
//!                                      └──────────── abort ────────────────────┘
//!
//!  any state ──(fenced, authorization, unsupported, invalid state)──▶ FatalError (terminal)
//! ```
//!
//! Invariants:
//! - A call that is illegal in the current state (commit without begin, send
//!   outside a transaction, begin twice) returns an `IllegalState` error and
//!   leaves the state unchanged.
//! - Transactions v1: a partition's data may be sent only after the
//!   coordinator acknowledged it in AddPartitionsToTxn (`is_sendable`).
//!   Transactions v2 (KIP-890, Kafka 4): Produce adds partitions implicitly,
//!   offsets go straight to TxnOffsetCommit, and EndTxn returns the next
//!   epoch, so every transaction runs under a fresh epoch (sequences restart).
//! - `started` is true once anything (a partition, offsets) joined the
//!   current transaction; committing or aborting an unstarted transaction
//!   needs no EndTxn.
//! - Once in `FatalError`, every call fails with the fatal error.

use crate::error::{Error, ErrorClass, ErrorCode, ErrorKind, Result};
use std::collections::BTreeSet;

/// A partition: topic name (shared with the accumulator, so registering a
/// record's partition copies no string) and partition index.
pub type TopicPartition = super::accumulator::TopicPartition;

/// The transaction states (see the module diagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Uninitialized,
    Initializing,
    Ready,
    InTransaction,
    Committing,
    Aborting,
    AbortableError,
    FatalError,
}

/// What the protocol says to do about a broker error in a transactional call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnErrorAction {
    /// Retry the same request (after backoff).
    Retry,
    /// Look the coordinator up again, then retry.
    Rediscover,
    /// The transaction must be aborted.
    Abortable,
    /// The producer is unusable.
    Fatal,
}

/// How the transactional producer reacts to `code` from a coordinator call.
/// One table for every transactional API, so the classes users see are
/// consistent.
pub fn classify(code: ErrorCode) -> TxnErrorAction {
    match code {
        ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
            TxnErrorAction::Rediscover
        }
        ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
        | ErrorCode::CONCURRENT_TRANSACTIONS
        | ErrorCode::REQUEST_TIMED_OUT
        | ErrorCode::NETWORK_EXCEPTION
        | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        | ErrorCode::OPERATION_NOT_ATTEMPTED
        | ErrorCode::NOT_ENOUGH_REPLICAS
        | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND => TxnErrorAction::Retry,
        ErrorCode::PRODUCER_FENCED
        | ErrorCode::INVALID_PRODUCER_EPOCH
        | ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        | ErrorCode::CLUSTER_AUTHORIZATION_FAILED
        | ErrorCode::UNSUPPORTED_VERSION
        | ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT
        | ErrorCode::INVALID_TXN_STATE
        | ErrorCode::INVALID_PRODUCER_ID_MAPPING
        | ErrorCode::INVALID_TRANSACTION_TIMEOUT
        | ErrorCode::TRANSACTION_COORDINATOR_FENCED => TxnErrorAction::Fatal,
        c if c.is_retriable() => TxnErrorAction::Retry,
        _ => TxnErrorAction::Abortable,
    }
}

/// Builds the user-facing error for `code` from `api`, classified per
/// [`classify`] (retriable codes come back as retriable errors).
pub fn txn_error(api: &'static str, code: ErrorCode, context: &str) -> Error {
    let (class, advice) = match classify(code) {
        TxnErrorAction::Fatal if code == ErrorCode::PRODUCER_FENCED || code == ErrorCode::INVALID_PRODUCER_EPOCH => (
            ErrorClass::Fatal,
            "a newer producer with the same transactional.id fenced this one; drop this producer",
        ),
        TxnErrorAction::Fatal => (ErrorClass::Fatal, "the transactional producer cannot continue; drop it"),
        TxnErrorAction::Abortable => (ErrorClass::Abortable, "abort the transaction, then you may begin a new one"),
        TxnErrorAction::Retry | TxnErrorAction::Rediscover => (ErrorClass::Retriable, "retriable"),
    };
    Error::broker(code, format!("{context}: {advice}"))
        .with_api(api)
        .with_class(class)
}

/// The transactional producer's state.
#[derive(Debug)]
pub struct TxnManager {
    transactional_id: String,
    state: TxnState,
    /// The error that put us in `AbortableError` or `FatalError`.
    last_error: Option<Error>,
    producer_id: i64,
    producer_epoch: i16,
    /// Transactions v2 (KIP-890) in use: implicit partition adds, epoch bump
    /// per transaction.
    v2: bool,
    /// Partitions acknowledged as part of the current transaction (v1), or
    /// produced to in it (v2).
    in_txn: BTreeSet<TopicPartition>,
    /// Partitions with data waiting that still need AddPartitionsToTxn (v1).
    to_add: BTreeSet<TopicPartition>,
    /// Partitions in an AddPartitionsToTxn request awaiting its answer.
    adding: BTreeSet<TopicPartition>,
    /// Anything joined the current transaction (EndTxn needed).
    started: bool,
    /// A produce failure left sequence state uncertain: the abort must bump
    /// the epoch (InitProducerId with the current id and epoch, KIP-360).
    epoch_bump_required: bool,
    /// Produce answered INVALID_PRODUCER_EPOCH in this transaction: the
    /// coordinator timed it out, or a newer instance fenced us. Transactions
    /// v1 cannot tell the two apart (the abort is refused as fenced), so a
    /// fencing error then names both causes.
    stale_epoch_seen: bool,
}

impl TxnManager {
    pub fn new(transactional_id: impl Into<String>) -> Self {
        TxnManager {
            transactional_id: transactional_id.into(),
            state: TxnState::Uninitialized,
            last_error: None,
            producer_id: -1,
            producer_epoch: -1,
            v2: false,
            in_txn: BTreeSet::new(),
            to_add: BTreeSet::new(),
            adding: BTreeSet::new(),
            started: false,
            epoch_bump_required: false,
            stale_epoch_seen: false,
        }
    }

    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    pub fn state(&self) -> TxnState {
        self.state
    }

    /// The producer id and epoch batches must carry.
    pub fn producer_id_and_epoch(&self) -> (i64, i16) {
        (self.producer_id, self.producer_epoch)
    }

    /// Whether transactions v2 are in use.
    pub fn is_v2(&self) -> bool {
        self.v2
    }

    /// Whether anything joined the current transaction.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// The error behind `AbortableError` / `FatalError`.
    pub fn last_error(&self) -> Option<&Error> {
        self.last_error.as_ref()
    }

    fn illegal(&self, what: &str) -> Error {
        if let (TxnState::FatalError, Some(e)) = (self.state, &self.last_error) {
            return e.clone();
        }
        Error::illegal_state(format!(
            "{what} is not allowed in transaction state {:?}",
            self.state
        ))
    }

    /// Fails the producer for good.
    pub fn fatal(&mut self, err: Error) -> Error {
        let err = err.with_class(ErrorClass::Fatal);
        self.state = TxnState::FatalError;
        self.last_error = Some(err.clone());
        err
    }

    /// Records an abortable failure (e.g. a send failed inside the
    /// transaction). Fatal errors make the producer fatal instead.
    pub fn abortable(&mut self, err: Error) -> Error {
        if err.is_fatal() {
            return self.fatal(err);
        }
        match self.state {
            TxnState::InTransaction | TxnState::Committing | TxnState::AbortableError => {
                let err = err.with_class(ErrorClass::Abortable);
                if self.state != TxnState::AbortableError {
                    self.state = TxnState::AbortableError;
                    self.last_error = Some(err.clone());
                }
                err
            }
            _ => err,
        }
    }

    /// A produce of `tp` failed inside the transaction. Sequence-related
    /// failures also require an epoch bump when the transaction is aborted.
    ///
    /// INVALID_PRODUCER_EPOCH from Produce is abortable, not fatal (as in
    /// Java since KIP-588): the coordinator bumps the epoch when it aborts a
    /// transaction that outlived `transaction.timeout.ms`, and the abort
    /// that follows tells the two causes apart: it recovers the producer
    /// after a timeout and fails with the fatal fenced error when a newer
    /// instance took over.
    pub fn on_produce_failed(&mut self, err: Error) -> Error {
        if matches!(
            err.code(),
            Some(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
                | Some(ErrorCode::UNKNOWN_PRODUCER_ID)
                | Some(ErrorCode::INVALID_PRODUCER_EPOCH)
        ) || err.is_timeout()
        {
            self.epoch_bump_required = true;
        }
        if err.code() == Some(ErrorCode::INVALID_PRODUCER_EPOCH) {
            self.stale_epoch_seen = true;
            return self.abortable(err);
        }
        match err.code().map(classify) {
            Some(TxnErrorAction::Fatal) => self.fatal(err),
            _ => self.abortable(err),
        }
    }

    // ---- init ----

    /// `init_transactions()`: may be called once, from `Uninitialized` (or
    /// again after a retriable failure left us `Initializing`).
    pub fn start_init(&mut self) -> Result<()> {
        match self.state {
            TxnState::Uninitialized | TxnState::Initializing => {
                self.state = TxnState::Initializing;
                Ok(())
            }
            _ => Err(self.illegal("init_transactions")),
        }
    }

    /// InitProducerId succeeded. `v2`: whether transactions v2 were
    /// negotiated with the coordinator.
    pub fn on_initialized(&mut self, producer_id: i64, producer_epoch: i16, v2: bool) {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.v2 = v2;
        self.reset_transaction();
        self.state = TxnState::Ready;
    }

    // ---- begin / send ----

    /// `begin_transaction()`.
    pub fn begin(&mut self) -> Result<()> {
        match self.state {
            TxnState::Ready => {
                self.reset_transaction();
                self.state = TxnState::InTransaction;
                Ok(())
            }
            TxnState::AbortableError => Err(self
                .last_error
                .clone()
                .unwrap_or_else(|| self.illegal("begin_transaction"))),
            _ => Err(self.illegal("begin_transaction")),
        }
    }

    /// Checks that a record for `tp` may be sent now and registers `tp`
    /// with the transaction. Returns true when `tp` is new and needs an
    /// AddPartitionsToTxn (v1): the sender should be woken to add it.
    pub fn on_send(&mut self, tp: &TopicPartition) -> Result<bool> {
        self.check_send()?;
        match self.state {
            TxnState::InTransaction => {
                let mut needs_add = false;
                if !self.in_txn.contains(tp) {
                    if self.v2 {
                        self.in_txn.insert(tp.clone());
                    } else if !self.adding.contains(tp) {
                        needs_add = self.to_add.insert(tp.clone());
                    }
                }
                self.started = true;
                Ok(needs_add)
            }
            TxnState::AbortableError | TxnState::FatalError => {
                Err(self.last_error.clone().unwrap_or_else(|| self.illegal("send")))
            }
            TxnState::Ready => Err(Error::illegal_state(
                "send outside a transaction: a transactional producer must call begin_transaction() first",
            )),
            _ => Err(self.illegal("send")),
        }
    }

    /// Checks, without registering anything, that a record may be sent now.
    pub fn check_send(&self) -> Result<()> {
        match self.state {
            TxnState::InTransaction => Ok(()),
            TxnState::AbortableError | TxnState::FatalError => {
                Err(self.last_error.clone().unwrap_or_else(|| self.illegal("send")))
            }
            TxnState::Ready => Err(Error::illegal_state(
                "send outside a transaction: a transactional producer must call begin_transaction() first",
            )),
            _ => Err(self.illegal("send")),
        }
    }

    /// Whether batches of `tp` may go to the broker now.
    pub fn is_sendable(&self, tp: &TopicPartition) -> bool {
        match self.state {
            TxnState::InTransaction
            | TxnState::Committing
            | TxnState::Aborting
            | TxnState::AbortableError => self.v2 || self.in_txn.contains(tp),
            _ => false,
        }
    }

    /// Partitions to put in the next AddPartitionsToTxn (v1); they move to
    /// "adding" until [`TxnManager::on_partitions_added`].
    pub fn take_partitions_to_add(&mut self) -> Vec<TopicPartition> {
        if self.v2 {
            return Vec::new();
        }
        let v: Vec<_> = std::mem::take(&mut self.to_add).into_iter().collect();
        self.adding.extend(v.iter().cloned());
        v
    }

    /// Whether an AddPartitionsToTxn is needed or awaited.
    pub fn has_pending_adds(&self) -> bool {
        !self.to_add.is_empty() || !self.adding.is_empty()
    }

    /// Whether an AddPartitionsToTxn request awaits its answer. EndTxn must
    /// not overtake it: an add that reached the coordinator after the
    /// transaction ended would open a new transaction nobody ends.
    pub fn has_adds_in_flight(&self) -> bool {
        !self.adding.is_empty()
    }

    /// Applies AddPartitionsToTxn results. Returns the action for the worst
    /// error seen (`None` if every partition was added), after moving
    /// retriable partitions back to "to add".
    pub fn on_partitions_added(
        &mut self,
        results: &[(TopicPartition, ErrorCode)],
    ) -> Option<(TxnErrorAction, ErrorCode)> {
        let mut worst: Option<(TxnErrorAction, ErrorCode)> = None;
        let rank = |a: TxnErrorAction| match a {
            TxnErrorAction::Retry => 0,
            TxnErrorAction::Rediscover => 1,
            TxnErrorAction::Abortable => 2,
            TxnErrorAction::Fatal => 3,
        };
        for (tp, code) in results {
            self.adding.remove(tp);
            if code.is_ok() {
                self.in_txn.insert(tp.clone());
                continue;
            }
            let action = classify(*code);
            if matches!(action, TxnErrorAction::Retry | TxnErrorAction::Rediscover) {
                self.to_add.insert(tp.clone());
            }
            if worst.is_none_or(|(w, _)| rank(action) > rank(w)) {
                worst = Some((action, *code));
            }
        }
        match worst {
            Some((TxnErrorAction::Fatal, code)) => {
                self.fatal(txn_error(
                    "AddPartitionsToTxn",
                    code,
                    "adding partitions to the transaction failed",
                ));
            }
            Some((TxnErrorAction::Abortable, code)) => {
                self.abortable(txn_error(
                    "AddPartitionsToTxn",
                    code,
                    "adding partitions to the transaction failed",
                ));
            }
            _ => {}
        }
        worst
    }

    /// The AddPartitionsToTxn request failed as a whole (connection, timeout):
    /// its partitions go back to "to add".
    pub fn on_add_partitions_failed(&mut self, tps: &[TopicPartition]) {
        for tp in tps {
            if self.adding.remove(tp) {
                self.to_add.insert(tp.clone());
            }
        }
    }

    /// `send_offsets_to_transaction()` may start: marks the transaction
    /// started. v1 then sends AddOffsetsToTxn + TxnOffsetCommit; v2 only
    /// TxnOffsetCommit.
    pub fn on_send_offsets(&mut self) -> Result<()> {
        match self.state {
            TxnState::InTransaction => {
                self.started = true;
                Ok(())
            }
            TxnState::AbortableError | TxnState::FatalError => Err(self
                .last_error
                .clone()
                .unwrap_or_else(|| self.illegal("send_offsets_to_transaction"))),
            _ => Err(self.illegal("send_offsets_to_transaction")),
        }
    }

    // ---- commit / abort ----

    /// `commit_transaction()`: returns whether an EndTxn must be sent (after
    /// every in-flight batch completed).
    pub fn begin_commit(&mut self) -> Result<bool> {
        match self.state {
            TxnState::InTransaction => {
                self.state = TxnState::Committing;
                Ok(self.started)
            }
            // Retrying a commit whose EndTxn failed retriably.
            TxnState::Committing => Ok(self.started),
            TxnState::AbortableError => Err(self
                .last_error
                .clone()
                .map(|e| e.with_class(ErrorClass::Abortable))
                .unwrap_or_else(|| self.illegal("commit_transaction"))),
            _ => Err(self.illegal("commit_transaction")),
        }
    }

    /// `abort_transaction()`: returns whether an EndTxn must be sent.
    /// Partitions not yet requested are dropped: their records are failed,
    /// not sent.
    pub fn begin_abort(&mut self) -> Result<bool> {
        match self.state {
            TxnState::InTransaction | TxnState::AbortableError | TxnState::Aborting => {
                self.state = TxnState::Aborting;
                self.to_add.clear();
                Ok(self.started)
            }
            _ => Err(self.illegal("abort_transaction")),
        }
    }

    /// Whether the finished abort must bump the epoch with InitProducerId.
    pub fn epoch_bump_required(&self) -> bool {
        self.epoch_bump_required
    }

    /// EndTxn succeeded (or was not needed). `next`: the producer id and
    /// epoch returned by EndTxn v5+ (transactions v2). Returns whether the
    /// epoch changed, in which case every partition's sequence restarts at 0.
    pub fn on_end_txn_done(&mut self, next: Option<(i64, i16)>) -> bool {
        let changed = match next {
            Some((pid, epoch))
                if pid >= 0
                    && epoch >= 0
                    && (pid, epoch) != (self.producer_id, self.producer_epoch) =>
            {
                self.producer_id = pid;
                self.producer_epoch = epoch;
                true
            }
            _ => false,
        };
        self.reset_transaction();
        self.state = TxnState::Ready;
        changed
    }

    /// The epoch was bumped by InitProducerId after an abort (KIP-360).
    pub fn on_epoch_bumped(&mut self, producer_id: i64, producer_epoch: i16) {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.epoch_bump_required = false;
    }

    /// EndTxn failed with `code` while committing or aborting; returns what
    /// to do. Retriable codes keep the state so the call can be retried.
    pub fn on_end_txn_error(&mut self, code: ErrorCode) -> TxnErrorAction {
        let action = classify(code);
        let committing = self.state == TxnState::Committing;
        match action {
            TxnErrorAction::Fatal if self.stale_epoch_seen && is_fencing_code(code) => {
                self.fatal(txn_error(
                    "EndTxn",
                    code,
                    "ending the transaction failed after Produce reported a stale epoch: the coordinator aborted \
                     the transaction because it outlived transaction.timeout.ms, or a newer producer with the same \
                     transactional.id took over (with transactions v1, i.e. Kafka before 4.0, the broker reports \
                     both as fencing)",
                ));
            }
            TxnErrorAction::Fatal => {
                self.fatal(txn_error("EndTxn", code, "ending the transaction failed"));
            }
            TxnErrorAction::Abortable if committing => {
                self.abortable(txn_error(
                    "EndTxn",
                    code,
                    "the transaction could not commit",
                ));
            }
            TxnErrorAction::Abortable => {
                // An abort that cannot complete leaves nothing to do but fail.
                self.fatal(txn_error(
                    "EndTxn",
                    code,
                    "the transaction could not be aborted",
                ));
            }
            _ => {}
        }
        action
    }

    fn reset_transaction(&mut self) {
        self.in_txn.clear();
        self.to_add.clear();
        self.adding.clear();
        self.started = false;
        self.last_error = None;
        self.stale_epoch_seen = false;
    }
}

fn is_fencing_code(code: ErrorCode) -> bool {
    code == ErrorCode::PRODUCER_FENCED || code == ErrorCode::INVALID_PRODUCER_EPOCH
}

/// Is `err` (from a transactional call) the "fenced by a newer instance" case?
pub fn is_fenced(err: &Error) -> bool {
    err.code().is_some_and(is_fencing_code)
        || matches!(err.kind(), ErrorKind::Broker(c) if *c == ErrorCode::TRANSACTION_COORDINATOR_FENCED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition {
            topic: t.into(),
            partition: p,
        }
    }

    fn ready(v2: bool) -> TxnManager {
        let mut m = TxnManager::new("tx");
        m.start_init().unwrap();
        m.on_initialized(42, 0, v2);
        m
    }

    #[test]
    fn illegal_calls_are_typed_errors_and_leave_state_unchanged() {
        let mut m = TxnManager::new("tx");
        let e = m.begin().unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::IllegalState);
        assert_eq!(m.state(), TxnState::Uninitialized);
        let mut m = ready(false);
        assert!(m.begin_commit().is_err(), "commit without begin");
        assert!(m.begin_abort().is_err(), "abort without begin");
        let e = m.on_send(&tp("t", 0)).unwrap_err();
        assert!(e.to_string().contains("begin_transaction"), "{e}");
        assert_eq!(m.state(), TxnState::Ready);
        m.begin().unwrap();
        assert!(m.begin().is_err(), "begin twice");
        assert_eq!(m.state(), TxnState::InTransaction);
        assert!(m.start_init().is_err(), "init twice");
    }

    #[test]
    fn v1_partitions_are_sendable_only_after_they_were_added() {
        let mut m = ready(false);
        m.begin().unwrap();
        let a = tp("t", 0);
        assert!(
            m.on_send(&a).unwrap(),
            "new partition: wake the sender to add it"
        );
        assert!(!m.on_send(&a).unwrap(), "already queued for adding");
        assert!(!m.is_sendable(&a));
        assert_eq!(m.take_partitions_to_add(), vec![a.clone()]);
        assert!(
            m.take_partitions_to_add().is_empty(),
            "in flight, not re-requested"
        );
        m.on_send(&a).unwrap();
        assert!(
            m.take_partitions_to_add().is_empty(),
            "a send while adding does not re-add"
        );
        assert!(m
            .on_partitions_added(&[(a.clone(), ErrorCode::NONE)])
            .is_none());
        assert!(m.is_sendable(&a));
        assert!(!m.has_pending_adds());
    }

    #[test]
    fn v1_retriable_add_errors_requeue_the_partitions() {
        let mut m = ready(false);
        m.begin().unwrap();
        let (a, b) = (tp("t", 0), tp("t", 1));
        m.on_send(&a).unwrap();
        m.on_send(&b).unwrap();
        let req = m.take_partitions_to_add();
        assert_eq!(req.len(), 2);
        let worst = m.on_partitions_added(&[
            (a.clone(), ErrorCode::CONCURRENT_TRANSACTIONS),
            (b.clone(), ErrorCode::OPERATION_NOT_ATTEMPTED),
        ]);
        assert_eq!(worst.map(|w| w.0), Some(TxnErrorAction::Retry));
        assert_eq!(m.state(), TxnState::InTransaction);
        assert_eq!(m.take_partitions_to_add().len(), 2);
        m.on_add_partitions_failed(&[a.clone()]);
        assert_eq!(m.take_partitions_to_add(), vec![a.clone()]);
        assert!(m.has_adds_in_flight());
        // Aborting forgets partitions not yet requested but still waits for
        // the request in flight.
        m.on_send(&b).unwrap();
        m.take_partitions_to_add();
        m.on_send(&tp("t", 2)).unwrap();
        m.begin_abort().unwrap();
        assert!(m.take_partitions_to_add().is_empty());
        assert!(m.has_adds_in_flight());
        m.on_partitions_added(&[(a, ErrorCode::NONE), (b, ErrorCode::NONE)]);
        assert!(!m.has_adds_in_flight());
    }

    #[test]
    fn v2_adds_partitions_implicitly() {
        let mut m = ready(true);
        m.begin().unwrap();
        let a = tp("t", 3);
        m.on_send(&a).unwrap();
        assert!(m.is_sendable(&a));
        assert!(m.take_partitions_to_add().is_empty());
        assert!(m.begin_commit().unwrap(), "started: EndTxn needed");
        // EndTxn v5 hands out the next epoch: sequences restart.
        assert!(m.on_end_txn_done(Some((42, 1))));
        assert_eq!(m.producer_id_and_epoch(), (42, 1));
        assert_eq!(m.state(), TxnState::Ready);
    }

    #[test]
    fn v2_epoch_exhaustion_moves_to_the_new_producer_id() {
        // At the last epoch the coordinator ends the transaction with a new
        // producer id at epoch 0 (transactions v2); the next transaction
        // uses it.
        let mut m = TxnManager::new("tx");
        m.start_init().unwrap();
        m.on_initialized(42, i16::MAX - 1, true);
        m.begin().unwrap();
        m.on_send(&tp("t", 0)).unwrap();
        assert!(m.begin_commit().unwrap());
        assert!(m.on_end_txn_done(Some((43, 0))));
        assert_eq!(m.producer_id_and_epoch(), (43, 0));
        m.begin().unwrap();
        m.on_send(&tp("t", 0)).unwrap();
        assert!(m.is_sendable(&tp("t", 0)));
    }

    #[test]
    fn empty_transactions_need_no_end_txn() {
        let mut m = ready(false);
        m.begin().unwrap();
        assert!(!m.begin_commit().unwrap());
        m.on_end_txn_done(None);
        m.begin().unwrap();
        assert!(!m.begin_abort().unwrap());
    }

    #[test]
    fn a_failed_send_makes_the_transaction_abortable_until_aborted() {
        let mut m = ready(false);
        m.begin().unwrap();
        m.on_send(&tp("t", 0)).unwrap();
        let e = m.on_produce_failed(
            Error::broker(ErrorCode::MESSAGE_TOO_LARGE, "too big").with_partition("t", 0),
        );
        assert!(e.is_abortable(), "{e}");
        assert_eq!(m.state(), TxnState::AbortableError);
        // Every call but abort reports the abortable error.
        assert!(m.on_send(&tp("t", 1)).unwrap_err().is_abortable());
        assert!(m.begin_commit().unwrap_err().is_abortable());
        assert!(m.begin().unwrap_err().is_abortable());
        assert!(m.begin_abort().unwrap());
        assert!(!m.epoch_bump_required());
        m.on_end_txn_done(None);
        assert_eq!(m.state(), TxnState::Ready);
        m.begin().unwrap();
    }

    #[test]
    fn sequence_failures_require_an_epoch_bump_on_abort() {
        let mut m = ready(false);
        m.begin().unwrap();
        m.on_send(&tp("t", 0)).unwrap();
        m.on_produce_failed(Error::broker(
            ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER,
            "gap",
        ));
        m.begin_abort().unwrap();
        assert!(m.epoch_bump_required());
        m.on_end_txn_done(None);
        m.on_epoch_bumped(42, 1);
        assert!(!m.epoch_bump_required());
        assert_eq!(m.producer_id_and_epoch(), (42, 1));
    }

    #[test]
    fn a_stale_epoch_from_produce_is_abortable_and_bumps_the_epoch_on_abort() {
        // The coordinator timed the transaction out (or a newer instance
        // fenced us): only the abort can tell which, so the send is abortable.
        let mut m = ready(false);
        m.begin().unwrap();
        m.on_send(&tp("t", 0)).unwrap();
        let e = m.on_produce_failed(Error::broker(ErrorCode::INVALID_PRODUCER_EPOCH, "stale"));
        assert!(!e.is_fatal(), "{e}");
        assert_eq!(e.class(), ErrorClass::Abortable);
        assert_eq!(m.state(), TxnState::AbortableError);
        assert_eq!(m.begin_commit().unwrap_err().class(), ErrorClass::Abortable);
        m.begin_abort().unwrap();
        assert!(m.epoch_bump_required());
        // Transactions v1: the coordinator refuses the abort as fenced; the
        // fatal error names the timeout as a possible cause.
        assert_eq!(
            m.on_end_txn_error(ErrorCode::PRODUCER_FENCED),
            TxnErrorAction::Fatal
        );
        let e = m.last_error().unwrap();
        assert!(
            e.is_fatal() && e.to_string().contains("transaction.timeout.ms"),
            "{e}"
        );
    }

    #[test]
    fn fencing_is_fatal_and_sticky() {
        let mut m = ready(false);
        m.begin().unwrap();
        m.on_send(&tp("t", 0)).unwrap();
        m.take_partitions_to_add();
        let worst = m.on_partitions_added(&[(tp("t", 0), ErrorCode::PRODUCER_FENCED)]);
        assert_eq!(worst.map(|w| w.0), Some(TxnErrorAction::Fatal));
        assert_eq!(m.state(), TxnState::FatalError);
        let e = m.begin_abort().unwrap_err();
        assert!(e.is_fatal(), "{e}");
        assert!(e.to_string().contains("fenced"), "{e}");
        assert!(is_fenced(&e));
        assert!(m.begin().unwrap_err().is_fatal());
        assert!(m.on_send(&tp("t", 0)).unwrap_err().is_fatal());
    }

    #[test]
    fn end_txn_errors_by_class() {
        let mut m = ready(false);
        m.begin().unwrap();
        m.on_send_offsets().unwrap();
        assert!(m.begin_commit().unwrap());
        assert_eq!(
            m.on_end_txn_error(ErrorCode::CONCURRENT_TRANSACTIONS),
            TxnErrorAction::Retry
        );
        assert_eq!(
            m.state(),
            TxnState::Committing,
            "retriable keeps committing"
        );
        assert!(m.begin_commit().unwrap(), "commit may be retried");
        assert_eq!(
            m.on_end_txn_error(ErrorCode::NOT_COORDINATOR),
            TxnErrorAction::Rediscover
        );
        assert_eq!(
            m.on_end_txn_error(ErrorCode::TRANSACTION_ABORTABLE),
            TxnErrorAction::Abortable
        );
        assert_eq!(m.state(), TxnState::AbortableError);
        m.begin_abort().unwrap();
        assert_eq!(
            m.on_end_txn_error(ErrorCode::INVALID_PRODUCER_EPOCH),
            TxnErrorAction::Fatal
        );
        assert_eq!(m.state(), TxnState::FatalError);
    }

    #[test]
    fn classification_table() {
        assert_eq!(
            classify(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS),
            TxnErrorAction::Retry
        );
        assert_eq!(
            classify(ErrorCode::COORDINATOR_NOT_AVAILABLE),
            TxnErrorAction::Rediscover
        );
        assert_eq!(
            classify(ErrorCode::TOPIC_AUTHORIZATION_FAILED),
            TxnErrorAction::Abortable
        );
        assert_eq!(
            classify(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
            TxnErrorAction::Fatal
        );
        assert_eq!(
            classify(ErrorCode::UNSUPPORTED_VERSION),
            TxnErrorAction::Fatal
        );
    }
}
