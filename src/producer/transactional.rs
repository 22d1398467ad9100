//! The transactional producer's API and its calls to the coordinators.
//!
//! ```no_run
//! # async fn demo() -> kafkawire::Result<()> {
//! use kafkawire::producer::{Producer, ProducerRecord};
//!
//! let producer = Producer::builder()
//!     .bootstrap_servers("127.0.0.1:9092")
//!     .transactional_id("orders-writer-1")
//!     .build()?;
//! producer.init_transactions().await?; // fences older instances of "orders-writer-1"
//!
//! producer.begin_transaction()?;
//! producer.send_and_forget(ProducerRecord::new("orders").value("a")).await?;
//! producer.send_and_forget(ProducerRecord::new("audit").value("a")).await?;
//! producer.commit_transaction().await?; // both records, or neither
//! # Ok(()) }
//! ```
//!
//! # Who does what
//!
//! The state lives in one [`TxnManager`] (sans-IO, `txn.rs`), behind a
//! mutex in the producer's shared state; every access is one short method
//! call, never held across IO or together with another lock. The calls the
//! user makes (`init_transactions`, `send_offsets_to_transaction`,
//! `commit_transaction`, `abort_transaction`) talk to the coordinators from
//! the caller's task, one at a time. The sender task adds partitions
//! (AddPartitionsToTxn, transactions v1) as data for them arrives, gates each
//! partition's batches on the manager's `is_sendable`, and reports failed
//! batches to it.
//!
//! # Errors
//!
//! Every error says what to do: [`Error::is_abortable`] (a send or offset
//! commit failed inside the transaction: call `abort_transaction`, then you
//! may begin a new one), [`Error::is_fatal`] (fenced by a newer producer with
//! the same `transactional.id`, not authorized, or the broker is too old:
//! drop the producer), or a timeout of a call that may simply be repeated
//! (`commit_transaction` after a timeout commits the same transaction).
//! Retriable coordinator errors (coordinator moved or loading, concurrent
//! transactions) are retried inside each call until `max.block.ms`.
//!
//! # Transactions v1 and v2
//!
//! On a cluster with the `transaction.version` feature at 2 or more (Kafka
//! 4.x, KIP-890), the producer lets Produce add partitions implicitly, sends
//! offsets straight to TxnOffsetCommit, and takes the new epoch EndTxn hands
//! out after every transaction. Otherwise it uses the v1 flow
//! (AddPartitionsToTxn, AddOffsetsToTxn). The API is the same.

use super::accumulator::TopicPartition as Tp;
use super::txn::{classify, txn_error, TxnErrorAction, TxnManager, TxnState};
use super::{Producer, Shared};
use crate::cluster::CoordinatorType;
use crate::consumer::{GroupMetadata, OffsetAndMetadata, TopicPartition};
use crate::error::{Error, ErrorClass, ErrorCode, ErrorKind, Result};
use crate::net::backoff::Backoff;
use crate::net::BrokerConnection;
use crate::protocol::messages::add_offsets_to_txn::AddOffsetsToTxnRequest;
use crate::protocol::messages::add_partitions_to_txn::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic,
};
use crate::protocol::messages::end_txn::EndTxnRequest;
use crate::protocol::messages::init_producer_id::InitProducerIdRequest;
use crate::protocol::messages::produce::ProduceRequest;
use crate::protocol::messages::txn_offset_commit::{
    TxnOffsetCommitRequest, TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use crate::protocol::messages::Uuid;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// Highest AddPartitionsToTxn version a client may send: v4+ is the
/// broker-to-broker batched form (KIP-890).
const ADD_PARTITIONS_MAX_CLIENT_VERSION: i16 = 3;
/// Transactions v1 stay below the versions that imply v2 semantics.
const V1_MAX_END_TXN: i16 = 4;
const V1_MAX_TXN_OFFSET_COMMIT: i16 = 4;
/// Highest Produce version of the v1 flow; v12+ lets the broker add the
/// partition to the transaction implicitly.
pub(crate) const V1_MAX_PRODUCE: i16 = 11;

pub(crate) fn lock_txn(m: &Mutex<TxnManager>) -> MutexGuard<'_, TxnManager> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What went wrong in [`Producer::in_transaction`], and so what to do next.
#[derive(Debug, Clone)]
pub enum TransactionError {
    /// The work, a send, or the commit failed and the transaction was
    /// aborted: nothing of it is visible. The producer is usable; the work
    /// may be retried in a new transaction.
    Aborted(Error),
    /// The producer is unusable (fenced by a newer instance with the same
    /// `transactional.id`, not authorized, unsupported broker, or an abort
    /// that could not complete). Drop it and build a new one.
    Fatal(Error),
    /// The commit did not finish within `max.block.ms`: its outcome is not
    /// known yet. Call [`Producer::commit_transaction`] again to finish it.
    CommitIncomplete(Error),
}

impl TransactionError {
    /// The underlying error.
    pub fn error(&self) -> &Error {
        match self {
            TransactionError::Aborted(e)
            | TransactionError::Fatal(e)
            | TransactionError::CommitIncomplete(e) => e,
        }
    }
}

impl std::fmt::Display for TransactionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransactionError::Aborted(e) => write!(f, "transaction aborted: {e}"),
            TransactionError::Fatal(e) => write!(f, "transactional producer unusable: {e}"),
            TransactionError::CommitIncomplete(e) => {
                write!(f, "commit not finished, call commit_transaction again: {e}")
            }
        }
    }
}

impl std::error::Error for TransactionError {}

impl Producer {
    fn txn(&self) -> Result<&Mutex<TxnManager>> {
        self.inner.shared.txn.as_ref().ok_or_else(|| {
            Error::illegal_state(
                "transactions need `transactional.id`: this producer is not transactional",
            )
        })
    }

    /// The transaction state (`None` for a producer without
    /// `transactional.id`).
    pub fn transaction_state(&self) -> Option<TxnState> {
        self.inner.shared.txn.as_ref().map(|t| lock_txn(t).state())
    }

    /// `initTransactions()`: gets the producer id and epoch for
    /// `transactional.id` from its coordinator. This fences every older
    /// producer with the same id (their next call fails with a fatal
    /// "fenced" error) and first completes any transaction they left open.
    /// Call once, before the first transaction. Bounded by `max.block.ms`;
    /// after a timeout it may be called again.
    pub async fn init_transactions(&self) -> Result<()> {
        let txn = self.txn()?;
        let shared = &self.inner.shared;
        let _op = shared.txn_op.lock().await;
        lock_txn(txn).start_init()?;
        let deadline = Instant::now() + shared.cfg.max_block;
        let (pid, epoch, v2) = match init_producer_id(shared, None, deadline).await {
            Ok(r) => r,
            Err(e) => return Err(fail(txn, e)),
        };
        tracing::debug!(
            producer_id = pid,
            epoch,
            v2,
            "transactional producer initialized"
        );
        lock_txn(txn).on_initialized(pid, epoch, v2);
        shared.wake.notify_one();
        Ok(())
    }

    /// `beginTransaction()`: starts a transaction (local, no IO). Records
    /// sent from now until commit or abort belong to it.
    pub fn begin_transaction(&self) -> Result<()> {
        lock_txn(self.txn()?).begin()
    }

    /// `sendOffsetsToTransaction()`: commits the consumer offsets
    /// `offsets` of the group described by `group` (from
    /// `Consumer::group_metadata()`) as part of the transaction, so they
    /// become visible exactly when its records do. The group coordinator
    /// checks the generation, member id and instance id (KIP-447) and
    /// rejects a zombie member.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: impl IntoIterator<Item = (TopicPartition, OffsetAndMetadata)>,
        group: &GroupMetadata,
    ) -> Result<()> {
        let txn = self.txn()?;
        let shared = &self.inner.shared;
        let _op = shared.txn_op.lock().await;
        lock_txn(txn).on_send_offsets()?;
        let deadline = Instant::now() + shared.cfg.max_block;
        let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = offsets.into_iter().collect();
        let (pid, epoch, v2) = {
            let t = lock_txn(txn);
            let (p, e) = t.producer_id_and_epoch();
            (p, e, t.is_v2())
        };
        let tid = shared.cfg.transactional_id.clone().unwrap_or_default();
        if !v2 {
            let req = AddOffsetsToTxnRequest {
                transactional_id: tid.clone(),
                producer_id: pid,
                producer_epoch: epoch,
                group_id: group.group_id.clone(),
                ..Default::default()
            };
            let r = coordinator_call(
                shared,
                CoordinatorType::Transaction,
                &tid,
                deadline,
                "AddOffsetsToTxn",
                |conn| {
                    let req = req.clone();
                    async move {
                        let resp = conn.send(&req).await?;
                        Ok(code_result(resp.error_code, ()))
                    }
                },
            )
            .await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(code)) => {
                    let e = txn_error(
                        "AddOffsetsToTxn",
                        code,
                        "adding the group's offsets to the transaction failed",
                    );
                    return Err(classify_into(txn, e));
                }
                Err(e) => return Err(e),
            }
        }
        let mut topics: BTreeMap<String, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
        for (tp, om) in &offsets {
            topics.entry(tp.topic().to_string()).or_default().push(
                TxnOffsetCommitRequestPartition {
                    partition_index: tp.partition(),
                    committed_offset: om.offset,
                    committed_leader_epoch: om.leader_epoch.unwrap_or(-1),
                    committed_metadata: Some(om.metadata.clone()),
                    ..Default::default()
                },
            );
        }
        // v6 names topics by id: use it when every id is known.
        let snap = shared.cluster.snapshot();
        let ids: BTreeMap<String, Uuid> = topics
            .keys()
            .map(|t| (t.clone(), snap.topic(t).map(|i| i.id).unwrap_or(Uuid::ZERO)))
            .collect();
        let ids_known = ids.values().all(|id| *id != Uuid::ZERO);
        let req = TxnOffsetCommitRequest {
            transactional_id: tid,
            group_id: group.group_id.clone(),
            producer_id: pid,
            producer_epoch: epoch,
            generation_id_or_member_epoch: group.generation_id,
            member_id: group.member_id.clone(),
            group_instance_id: group.group_instance_id.clone(),
            topics: topics
                .into_iter()
                .map(|(name, partitions)| TxnOffsetCommitRequestTopic {
                    topic_id: ids.get(&name).copied().unwrap_or(Uuid::ZERO),
                    name,
                    partitions,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let r = coordinator_call(
            shared,
            CoordinatorType::Group,
            &group.group_id,
            deadline,
            "TxnOffsetCommit",
            |conn| {
                let req = req.clone();
                async move {
                    let mut version = conn.version_of::<TxnOffsetCommitRequest>()?;
                    if !v2 {
                        version = version.min(V1_MAX_TXN_OFFSET_COMMIT);
                    }
                    if !ids_known {
                        version = version.min(5);
                    }
                    let resp = conn.send_at(&req, version, conn_timeout(&conn)).await?;
                    // The worst partition error decides: every partition must
                    // be committed, so any retriable one retries the request.
                    let mut worst = ErrorCode::NONE;
                    for t in &resp.topics {
                        for p in &t.partitions {
                            let c = ErrorCode(p.error_code);
                            if !c.is_ok()
                                && (worst.is_ok() || rank(classify(c)) > rank(classify(worst)))
                            {
                                worst = c;
                            }
                        }
                    }
                    Ok(code_result(worst.0, ()))
                }
            },
        )
        .await;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(code)) => {
                let advice = match code {
                    ErrorCode::ILLEGAL_GENERATION | ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::FENCED_INSTANCE_ID => {
                        "the consumer is no longer a member of this generation of the group (it was rebalanced out \
                         or fenced); its offsets were not committed"
                    }
                    _ => "committing the offsets in the transaction failed",
                };
                Err(classify_into(
                    txn,
                    txn_error("TxnOffsetCommit", code, advice),
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// `commitTransaction()`: sends every record of the transaction, waits
    /// for all of them, then commits. If a record failed, the transaction
    /// cannot commit: this returns that (abortable) error and the caller
    /// must call [`abort_transaction`](Self::abort_transaction). Bounded by
    /// `max.block.ms`; after a timeout, call it again to finish the same
    /// commit.
    pub async fn commit_transaction(&self) -> Result<()> {
        let txn = self.txn()?;
        let shared = &self.inner.shared;
        let _op = shared.txn_op.lock().await;
        let needs_end = lock_txn(txn).begin_commit()?;
        let deadline = Instant::now() + shared.cfg.max_block;
        // Every batch of the transaction must be acknowledged first.
        if tokio::time::timeout_at(deadline.into(), self.flush())
            .await
            .is_err()
        {
            return Err(Error::timeout(
                "commit_transaction: records of the transaction were not all acknowledged within max.block.ms; \
                 call commit_transaction again",
            ));
        }
        {
            let t = lock_txn(txn);
            if t.state() != TxnState::Committing {
                // A batch failed meanwhile: the transaction is abortable
                // (or the producer fatal).
                return Err(t.last_error().cloned().unwrap_or_else(|| {
                    Error::illegal_state("the transaction can no longer commit")
                }));
            }
        }
        self.end_txn(txn, needs_end, true, deadline).await
    }

    /// `abortTransaction()`: records of the transaction not yet sent fail
    /// with an abortable "transaction aborted" error; those already sent
    /// are finished first, then the coordinator writes the abort markers.
    /// Nothing of the transaction becomes visible to `read_committed`
    /// consumers. Afterwards a new transaction may begin.
    pub async fn abort_transaction(&self) -> Result<()> {
        let txn = self.txn()?;
        let shared = &self.inner.shared;
        let _op = shared.txn_op.lock().await;
        let needs_end = lock_txn(txn).begin_abort()?;
        let deadline = Instant::now() + shared.cfg.max_block;
        // Fail what was not sent.
        let queued = shared.lock_acc().drain_all();
        for (tp, b) in queued {
            let e = Error::new(
                ErrorKind::Broker(ErrorCode::TRANSACTION_ABORTABLE),
                "the transaction was aborted before this record was sent",
            )
            .with_class(ErrorClass::Abortable)
            .with_partition(&*tp.topic, tp.partition);
            b.completion.complete(Err(e));
            shared.release(b.id, b.reserved);
        }
        shared.wake.notify_one();
        // Wait for batches on their way and for AddPartitionsToTxn requests
        // in flight: EndTxn must not overtake them.
        let drained = async {
            self.flush().await;
            loop {
                let notified = shared.finished.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if !lock_txn(txn).has_adds_in_flight() {
                    break;
                }
                notified.await;
            }
        };
        if tokio::time::timeout_at(deadline.into(), drained)
            .await
            .is_err()
        {
            return Err(Error::timeout(
                "abort_transaction: records in flight did not finish within max.block.ms; call abort_transaction again",
            ));
        }
        self.end_txn(txn, needs_end, false, deadline).await?;
        if lock_txn(txn).epoch_bump_required() {
            // A batch's sequence is in doubt: InitProducerId with the current
            // id and epoch gives a new epoch, so sequences restart (KIP-360).
            let current = lock_txn(txn).producer_id_and_epoch();
            match init_producer_id(shared, Some(current), deadline).await {
                Ok((pid, epoch, _)) => lock_txn(txn).on_epoch_bumped(pid, epoch),
                Err(e) => return Err(fail(txn, e)),
            }
        }
        shared.wake.notify_one();
        Ok(())
    }

    async fn end_txn(
        &self,
        txn: &Mutex<TxnManager>,
        needs_end: bool,
        commit: bool,
        deadline: Instant,
    ) -> Result<()> {
        let shared = &self.inner.shared;
        if !needs_end {
            lock_txn(txn).on_end_txn_done(None);
            return Ok(());
        }
        let (pid, epoch, v2) = {
            let t = lock_txn(txn);
            let (p, e) = t.producer_id_and_epoch();
            (p, e, t.is_v2())
        };
        let tid = shared.cfg.transactional_id.clone().unwrap_or_default();
        let req = EndTxnRequest {
            transactional_id: tid.clone(),
            producer_id: pid,
            producer_epoch: epoch,
            committed: commit,
            ..Default::default()
        };
        let api = "EndTxn";
        let r = coordinator_call(
            shared,
            CoordinatorType::Transaction,
            &tid,
            deadline,
            api,
            |conn| {
                let req = req.clone();
                async move {
                    let mut version = conn.version_of::<EndTxnRequest>()?;
                    if !v2 {
                        version = version.min(V1_MAX_END_TXN);
                    }
                    let resp = conn.send_at(&req, version, conn_timeout(&conn)).await?;
                    let next = (version >= 5).then_some((resp.producer_id, resp.producer_epoch));
                    Ok(code_result(resp.error_code, next))
                }
            },
        )
        .await;
        match r {
            Ok(Ok(next)) => {
                let changed = lock_txn(txn).on_end_txn_done(next);
                if changed {
                    tracing::debug!(?next, "new producer epoch after the transaction");
                }
                shared.wake.notify_one();
                Ok(())
            }
            Ok(Err(code)) => {
                let mut t = lock_txn(txn);
                t.on_end_txn_error(code);
                Err(t.last_error().cloned().unwrap_or_else(|| {
                    txn_error(
                        api,
                        code,
                        if commit {
                            "commit failed"
                        } else {
                            "abort failed"
                        },
                    )
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `work` inside a transaction: begins, runs it, commits if it
    /// returned `Ok`, aborts if it (or a send, or the commit) failed. The
    /// error says which kind of failure it was (see [`TransactionError`]).
    ///
    /// ```no_run
    /// # async fn demo(producer: kafkawire::producer::Producer) {
    /// use kafkawire::producer::ProducerRecord;
    /// let r = producer
    ///     .in_transaction(|p| async move {
    ///         p.send_and_forget(ProducerRecord::new("out").value("x")).await?;
    ///         Ok(())
    ///     })
    ///     .await;
    /// # }
    /// ```
    pub async fn in_transaction<T, F, Fut>(
        &self,
        work: F,
    ) -> std::result::Result<T, TransactionError>
    where
        F: FnOnce(Producer) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let fatal_or = |e: Error, f: fn(Error) -> TransactionError| {
            if e.is_fatal() {
                TransactionError::Fatal(e)
            } else {
                f(e)
            }
        };
        self.begin_transaction()
            .map_err(|e| fatal_or(e, TransactionError::Aborted))?;
        let outcome = match work(self.clone()).await {
            Ok(v) => match self.commit_transaction().await {
                Ok(()) => return Ok(v),
                Err(e) if e.is_timeout() || e.is_retriable() => {
                    return Err(TransactionError::CommitIncomplete(e))
                }
                Err(e) => e,
            },
            Err(e) => e,
        };
        if outcome.is_fatal() {
            return Err(TransactionError::Fatal(outcome));
        }
        match self.abort_transaction().await {
            Ok(()) => Err(TransactionError::Aborted(outcome)),
            Err(e) => Err(TransactionError::Fatal(e)),
        }
    }
}

/// Records a failure of a user call in the manager: fatal errors make the
/// producer fatal, abortable ones the transaction abortable, others
/// (timeouts) leave the state so the call can be repeated.
fn fail(txn: &Mutex<TxnManager>, e: Error) -> Error {
    if e.is_fatal() {
        lock_txn(txn).fatal(e)
    } else {
        e
    }
}

fn classify_into(txn: &Mutex<TxnManager>, e: Error) -> Error {
    let mut t = lock_txn(txn);
    if e.is_fatal() {
        t.fatal(e)
    } else if e.is_abortable() {
        t.abortable(e)
    } else {
        e
    }
}

fn rank(a: TxnErrorAction) -> u8 {
    match a {
        TxnErrorAction::Retry => 0,
        TxnErrorAction::Rediscover => 1,
        TxnErrorAction::Abortable => 2,
        TxnErrorAction::Fatal => 3,
    }
}

fn code_result<T>(code: i16, v: T) -> std::result::Result<T, ErrorCode> {
    let c = ErrorCode(code);
    if c.is_ok() {
        Ok(v)
    } else {
        Err(c)
    }
}

fn conn_timeout(_conn: &BrokerConnection) -> std::time::Duration {
    // Coordinator calls answer quickly; EndTxn waits for markers at most
    // about request.timeout.ms on the broker side.
    std::time::Duration::from_secs(40)
}

/// Calls a coordinator until `deadline`: looks it up (FindCoordinator),
/// runs `call` on a connection to it, retries retriable broker codes after
/// a backoff, and looks the coordinator up again after NOT_COORDINATOR or
/// a broken connection. A non-retriable code comes back as `Ok(Err(code))`
/// for the caller to classify.
pub(crate) async fn coordinator_call<T, F, Fut>(
    shared: &Shared,
    ty: CoordinatorType,
    key: &str,
    deadline: Instant,
    api: &'static str,
    mut call: F,
) -> Result<std::result::Result<T, ErrorCode>>
where
    F: FnMut(BrokerConnection) -> Fut,
    Fut: Future<Output = Result<std::result::Result<T, ErrorCode>>>,
{
    let cfg = &shared.cfg.client;
    let mut backoff = Backoff::new(
        cfg.retry_backoff.min(std::time::Duration::from_millis(20)),
        cfg.retry_backoff_max,
    );
    let mut last: Option<Error> = None;
    loop {
        if Instant::now() >= deadline {
            let why = last
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default();
            return Err(
                Error::timeout(format!("{api} did not succeed within max.block.ms{why}"))
                    .with_api(api),
            );
        }
        let attempt = async {
            let (_, conn) = shared.cluster.coordinator(ty, key, deadline).await?;
            call(conn).await
        }
        .await;
        match attempt {
            Ok(Ok(v)) => return Ok(Ok(v)),
            Ok(Err(code)) => match classify(code) {
                TxnErrorAction::Retry => {
                    last = Some(Error::broker(code, "retrying").with_api(api));
                }
                TxnErrorAction::Rediscover => {
                    shared.cluster.invalidate_coordinator(ty, key);
                    last =
                        Some(Error::broker(code, "looking the coordinator up again").with_api(api));
                }
                _ => return Ok(Err(code)),
            },
            Err(e) if e.is_fatal() => return Err(e),
            Err(e)
                if e.is_retriable()
                    || e.is_timeout()
                    || matches!(e.kind(), ErrorKind::Io | ErrorKind::Closed) =>
            {
                shared.cluster.invalidate_coordinator(ty, key);
                last = Some(e);
            }
            Err(e) => return Err(e.with_api(api)),
        }
        if let Some(e) = &last {
            tracing::debug!(error = %e, api, key, "transactional coordinator call failed, retrying");
        }
        let wait = backoff
            .on_failure()
            .min(deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(wait).await;
    }
}

/// InitProducerId for the transactional id: a fresh id/epoch (`current`
/// `None`) or an epoch bump of `current`. Returns the id, the epoch and
/// whether transactions v2 are in use with this coordinator.
async fn init_producer_id(
    shared: &Shared,
    current: Option<(i64, i16)>,
    deadline: Instant,
) -> Result<(i64, i16, bool)> {
    let tid = shared.cfg.transactional_id.clone().unwrap_or_default();
    let (producer_id, producer_epoch) = current.unwrap_or((-1, -1));
    let req = InitProducerIdRequest {
        transactional_id: Some(tid.clone()),
        transaction_timeout_ms: shared
            .cfg
            .transaction_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32,
        producer_id,
        producer_epoch,
        ..Default::default()
    };
    let api = "InitProducerId";
    let r = coordinator_call(
        shared,
        CoordinatorType::Transaction,
        &tid,
        deadline,
        api,
        |conn| {
            let req = req.clone();
            async move {
                let resp = conn.send(&req).await?;
                let feature = conn
                    .versions()
                    .finalized_feature("transaction.version")
                    .unwrap_or(0);
                let end_txn = conn.version_of::<EndTxnRequest>().unwrap_or(0);
                let produce = conn.version_of::<ProduceRequest>().unwrap_or(0);
                let v2 = feature >= 2 && end_txn >= 5 && produce > V1_MAX_PRODUCE;
                Ok(code_result(
                    resp.error_code,
                    (resp.producer_id, resp.producer_epoch, v2),
                ))
            }
        },
    )
    .await?;
    match r {
        Ok(v) => Ok(v),
        Err(code) => {
            let context = if code == ErrorCode::INVALID_TRANSACTION_TIMEOUT {
                "transaction.timeout.ms is larger than the broker's transaction.max.timeout.ms"
            } else {
                "could not get a producer id for the transactional.id"
            };
            Err(txn_error(api, code, context))
        }
    }
}

/// One AddPartitionsToTxn request (v3 or lower) for `tps`; the per-partition
/// results, or the failure of the request as a whole.
pub(crate) async fn add_partitions(
    shared: &Shared,
    pid: i64,
    epoch: i16,
    tps: &[Tp],
) -> Result<Vec<(Tp, ErrorCode)>> {
    let tid = shared.cfg.transactional_id.clone().unwrap_or_default();
    let deadline = Instant::now() + shared.cfg.client.request_timeout;
    let (_, conn) = shared
        .cluster
        .coordinator(CoordinatorType::Transaction, &tid, deadline)
        .await?;
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in tps {
        topics.entry(&tp.topic).or_default().push(tp.partition);
    }
    let req = AddPartitionsToTxnRequest {
        v3_and_below_transactional_id: tid.clone(),
        v3_and_below_producer_id: pid,
        v3_and_below_producer_epoch: epoch,
        v3_and_below_topics: topics
            .into_iter()
            .map(|(name, partitions)| AddPartitionsToTxnTopic {
                name: name.to_string(),
                partitions,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let version = conn
        .version_of::<AddPartitionsToTxnRequest>()?
        .min(ADD_PARTITIONS_MAX_CLIENT_VERSION);
    let resp = conn
        .send_at(&req, version, shared.cfg.client.request_timeout)
        .await?;
    let top = ErrorCode(resp.error_code);
    let mut results = Vec::with_capacity(tps.len());
    for tp in tps {
        let found = resp
            .results_by_topic_v3_and_below
            .iter()
            .filter(|t| *t.name == *tp.topic)
            .flat_map(|t| t.results_by_partition.iter())
            .find(|p| p.partition_index == tp.partition)
            .map(|p| ErrorCode(p.partition_error_code));
        // A partition the broker did not answer for was not added: retry it.
        let code = found.unwrap_or(if top.is_ok() {
            ErrorCode::OPERATION_NOT_ATTEMPTED
        } else {
            top
        });
        results.push((tp.clone(), code));
    }
    if results
        .iter()
        .any(|(_, c)| matches!(classify(*c), TxnErrorAction::Rediscover))
    {
        shared
            .cluster
            .invalidate_coordinator(CoordinatorType::Transaction, &tid);
    }
    Ok(results)
}
