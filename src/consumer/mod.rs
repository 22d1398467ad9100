//! The consumer: fetches records from assigned partitions, with
//! `read_committed` support for exactly-once pipelines.
//!
//! # Tutorial
//!
//! ```no_run
//! use kafkawire::consumer::{Consumer, IsolationLevel, OffsetReset, TopicPartition};
//! use std::time::Duration;
//!
//! # async fn demo() -> kafkawire::Result<()> {
//! let mut consumer = Consumer::builder()
//!     .bootstrap_servers("localhost:9092")
//!     .group_id("billing")                          // for committed offsets
//!     .isolation_level(IsolationLevel::ReadCommitted) // hide aborted transactions
//!     .auto_offset_reset(OffsetReset::Earliest)
//!     .build()?;
//! consumer.assign(&[TopicPartition::new("payments", 0), TopicPartition::new("payments", 1)])?;
//! loop {
//!     for record in consumer.poll(Duration::from_secs(1)).await? {
//!         println!("{}-{}@{}: {:?}", record.topic, record.partition, record.offset, record.value);
//!     }
//!     consumer.commit_sync().await?;
//! }
//! # }
//! ```
//!
//! [`Consumer`] also implements `Stream<Item = Result<ConsumerRecord>>`
//! (from `futures-core`), so `while let Some(r) = consumer.next().await`
//! works with any stream extension trait.
//!
//! What to know:
//!
//! - **Where IO happens.** Building a consumer starts a background fetcher
//!   task. It keeps one Fetch request in flight per broker that leads an
//!   assigned partition, using incremental fetch sessions (KIP-227), and
//!   keeps fetching while the application works, until
//!   `fetch.buffer.max.bytes` of fetched data wait to be returned. `poll`
//!   and the stream only hand out what was already fetched.
//! - **Positions.** A partition's position is the offset of the next record
//!   the application will get. It starts at the group's committed offset
//!   (with a `group.id`), else per `auto.offset.reset`, and advances past
//!   every record returned *and* past everything the consumer dropped
//!   (transaction markers, aborted transactions), so committing positions
//!   never leaves a consumer stuck behind a marker. [`Consumer::seek`]
//!   moves it; data fetched before a seek is never returned after it.
//! - **read_committed.** Records of aborted transactions and all control
//!   records are dropped. Nothing past the last stable offset is returned,
//!   so an open transaction holds its partition until it commits or aborts.
//! - **Zero copy.** Keys, values and header values are [`Bytes`] slices of
//!   the fetch response (or of the one buffer a compressed batch was
//!   decompressed into). Holding a record keeps that buffer alive. One
//!   batch never decompresses to more than `fetch.max.decompressed.bytes`
//!   (256 MiB by default); a batch over it is a per-partition error.
//! - **Errors.** An error about one partition (out of range with
//!   `auto.offset.reset=none`, corrupt data, authorization) is returned
//!   once by `poll`/the stream; that partition then stops until the
//!   application seeks it, while the others continue.
//! - **Groups.** This module does manual assignment. With a `group.id` and
//!   manual assignment, commits carry generation -1 and an empty member id,
//!   as the Java client does; group membership (subscribe, rebalances) is
//!   provided by the `group` module and drives the same assignment and
//!   commit paths.

pub mod config;
mod fetcher;
pub mod group;
pub mod offsets;
mod position;
mod subscription;

pub use config::{ConsumerConfig, IsolationLevel, OffsetReset};
pub use offsets::ListedOffset;
pub use subscription::{RebalanceContext, RebalanceListener};

use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::record::{Headers, Record, Records, TimestampType};
use bytes::Bytes;
use fetcher::source::Chunk;
use fetcher::{Command, EventKind, PartitionEvent};
use position::StartAt;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A topic and partition.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    topic: Arc<str>,
    partition: i32,
}

impl TopicPartition {
    /// Names partition `partition` of `topic`.
    pub fn new(topic: impl AsRef<str>, partition: i32) -> Self {
        TopicPartition {
            topic: Arc::from(topic.as_ref()),
            partition,
        }
    }

    pub(crate) fn from_arc(topic: Arc<str>, partition: i32) -> Self {
        TopicPartition { topic, partition }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The topic, shared.
    pub fn topic_arc(&self) -> Arc<str> {
        self.topic.clone()
    }

    /// The partition index.
    pub fn partition(&self) -> i32 {
        self.partition
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

impl fmt::Debug for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An offset to commit (or a committed one), as in the Java client: the
/// offset of the next record to consume, the leader epoch of the last
/// consumed record, and free-form metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    pub metadata: String,
}

impl OffsetAndMetadata {
    /// An offset without leader epoch or metadata.
    pub fn new(offset: i64) -> Self {
        OffsetAndMetadata {
            offset,
            leader_epoch: None,
            metadata: String::new(),
        }
    }
}

/// The result of a lookup by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    /// The earliest offset whose timestamp is at or after the one asked.
    pub offset: i64,
    /// That record's timestamp.
    pub timestamp: i64,
    pub leader_epoch: Option<i32>,
}

/// The consumer's group identity, as committed offsets and the
/// transactional producer's `send_offsets_to_transaction` (KIP-447) need it.
///
/// Outside group membership (manual assignment) the generation is -1 and
/// the member id empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    pub group_id: String,
    /// Generation (classic protocol) or member epoch (KIP-848); -1 when not
    /// a member.
    pub generation_id: i32,
    /// Empty when not a member.
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

impl GroupMetadata {
    /// Metadata of a consumer that uses `group_id` without being a member.
    pub fn new(group_id: impl Into<String>) -> Self {
        GroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// One record handed to the application. Key, value and headers are
/// zero-copy slices of the fetched data.
#[derive(Debug, Clone)]
pub struct ConsumerRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch; meaning per `timestamp_type`.
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    /// Leader epoch of the batch the record came in, if recorded.
    pub leader_epoch: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// The decoded record, kept only when it has headers (they are read
    /// lazily from it); a headerless record costs no extra handle.
    with_headers: Option<Record>,
}

impl ConsumerRecord {
    /// The record's headers, in wire order (duplicates kept), read lazily
    /// from the fetched bytes.
    pub fn headers(&self) -> Headers<'_> {
        self.with_headers
            .as_ref()
            .map_or(Headers::EMPTY, Record::headers)
    }

    /// The record's partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::from_arc(self.topic.clone(), self.partition)
    }
}

/// Builds a [`Consumer`]. Setters are named after the Java configs;
/// [`set`](Self::set) takes any supported Java config by name.
#[derive(Debug, Clone, Default)]
pub struct ConsumerBuilder {
    cfg: ConsumerConfig,
    /// The first error from [`set`](Self::set), reported by `build`.
    error: Option<Error>,
}

impl ConsumerBuilder {
    /// `bootstrap.servers`, comma-separated.
    pub fn bootstrap_servers(mut self, servers: &str) -> Self {
        self.cfg.client.set_bootstrap_servers(servers);
        self
    }
    /// `client.id`.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.cfg.client.client_id = id.into();
        self
    }
    /// `group.id`.
    pub fn group_id(mut self, id: impl Into<String>) -> Self {
        self.cfg.group_id = Some(id.into());
        self
    }
    /// `isolation.level`.
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.cfg.isolation_level = level;
        self
    }
    /// `auto.offset.reset`.
    pub fn auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.cfg.auto_offset_reset = reset;
        self
    }
    /// `group.instance.id` (static membership).
    pub fn group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.cfg.group_instance_id = Some(id.into());
        self
    }
    /// `session.timeout.ms`.
    pub fn session_timeout(mut self, d: Duration) -> Self {
        self.cfg.session_timeout = d;
        self
    }
    /// `heartbeat.interval.ms`.
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.cfg.heartbeat_interval = d;
        self
    }
    /// `max.poll.interval.ms`.
    pub fn max_poll_interval(mut self, d: Duration) -> Self {
        self.cfg.max_poll_interval = d;
        self
    }
    /// `partition.assignment.strategy`: assignor names in order of
    /// preference (`range`, `roundrobin`, `cooperative-sticky`).
    pub fn partition_assignment_strategy(mut self, names: &[&str]) -> Self {
        self.cfg.partition_assignment_strategy = names.iter().map(|n| assignor_name(n)).collect();
        self
    }
    /// `group.protocol`.
    pub fn group_protocol(mut self, p: group::GroupProtocol) -> Self {
        self.cfg.group_protocol = p;
        self
    }
    /// `group.remote.assignor` (KIP-848).
    pub fn group_remote_assignor(mut self, name: impl Into<String>) -> Self {
        self.cfg.group_remote_assignor = Some(name.into());
        self
    }
    /// `enable.auto.commit`.
    pub fn enable_auto_commit(mut self, on: bool) -> Self {
        self.cfg.enable_auto_commit = on;
        self
    }
    /// Replaces the shared client settings.
    pub fn client_config(mut self, client: ClientConfig) -> Self {
        self.cfg.client = client;
        self
    }
    /// Replaces the whole configuration.
    pub fn config(mut self, cfg: ConsumerConfig) -> Self {
        self.cfg = cfg;
        self
    }
    /// Sets a config by its Java name (`fetch.min.bytes`, ...). Unknown
    /// names and unparsable values are reported by [`build`](Self::build).
    pub fn set(mut self, key: &str, value: &str) -> Self {
        if let Err(e) = apply(&mut self.cfg, key, value) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Validates the configuration and starts the consumer. Must be called
    /// inside a Tokio runtime. Does no network IO.
    pub fn build(self) -> Result<Consumer> {
        if let Some(e) = self.error {
            return Err(e);
        }
        Consumer::new(self.cfg)
    }
}

fn apply(cfg: &mut ConsumerConfig, key: &str, value: &str) -> Result<()> {
    let int = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| Error::config(key, format!("`{v}` is not an integer")))
    };
    let ms = |v: &str| {
        int(v)
            .and_then(|n| u64::try_from(n).map_err(|_| Error::config(key, "must not be negative")))
            .map(Duration::from_millis)
    };
    let i32v = |v: &str| {
        int(v).and_then(|n| i32::try_from(n).map_err(|_| Error::config(key, "out of range")))
    };
    let boolean = |v: &str| {
        v.parse::<bool>()
            .map_err(|_| Error::config(key, format!("`{v}` is not true or false")))
    };
    match key {
        "bootstrap.servers" => cfg.client.set_bootstrap_servers(value),
        "client.id" => cfg.client.client_id = value.to_string(),
        "group.id" => cfg.group_id = Some(value.to_string()),
        "group.instance.id" => cfg.group_instance_id = Some(value.to_string()),
        "session.timeout.ms" => cfg.session_timeout = ms(value)?,
        "heartbeat.interval.ms" => cfg.heartbeat_interval = ms(value)?,
        "max.poll.interval.ms" => cfg.max_poll_interval = ms(value)?,
        "partition.assignment.strategy" => {
            cfg.partition_assignment_strategy = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(assignor_name)
                .collect()
        }
        "group.protocol" => cfg.group_protocol = group::GroupProtocol::parse(value)?,
        "group.remote.assignor" => {
            cfg.group_remote_assignor = (!value.trim().is_empty()).then(|| value.trim().to_string())
        }
        "isolation.level" => cfg.isolation_level = value.parse()?,
        "auto.offset.reset" => cfg.auto_offset_reset = value.parse()?,
        "enable.auto.commit" => cfg.enable_auto_commit = boolean(value)?,
        "auto.commit.interval.ms" => cfg.auto_commit_interval = ms(value)?,
        "fetch.min.bytes" => cfg.fetch_min_bytes = i32v(value)?,
        "fetch.max.bytes" => cfg.fetch_max_bytes = i32v(value)?,
        "fetch.max.wait.ms" => cfg.fetch_max_wait = ms(value)?,
        "max.partition.fetch.bytes" => cfg.max_partition_fetch_bytes = i32v(value)?,
        "max.poll.records" => {
            cfg.max_poll_records = usize::try_from(int(value)?)
                .map_err(|_| Error::config(key, "must not be negative"))?
        }
        "check.crcs" => cfg.check_crcs = boolean(value)?,
        "client.rack" => cfg.client_rack = value.to_string(),
        "fetch.buffer.max.bytes" => {
            cfg.fetch_buffer_max_bytes = usize::try_from(int(value)?)
                .map_err(|_| Error::config(key, "must not be negative"))?
        }
        "fetch.max.decompressed.bytes" => {
            cfg.fetch_max_decompressed_bytes = usize::try_from(int(value)?)
                .map_err(|_| Error::config(key, "must not be negative"))?
        }
        "request.timeout.ms" => cfg.client.request_timeout = ms(value)?,
        "default.api.timeout.ms" => cfg.client.default_api_timeout = ms(value)?,
        "retry.backoff.ms" => cfg.client.retry_backoff = ms(value)?,
        "retry.backoff.max.ms" => cfg.client.retry_backoff_max = ms(value)?,
        "reconnect.backoff.ms" => cfg.client.reconnect_backoff = ms(value)?,
        "reconnect.backoff.max.ms" => cfg.client.reconnect_backoff_max = ms(value)?,
        "metadata.max.age.ms" => cfg.client.metadata_max_age = ms(value)?,
        other => {
            return Err(Error::config(
                other,
                "unknown or unsupported consumer config",
            ))
        }
    }
    Ok(())
}

/// Java's assignor class names to kafkawire's assignor names; other
/// values pass through (and are checked by validation).
fn assignor_name(s: &str) -> String {
    match s.rsplit('.').next().unwrap_or(s) {
        "RangeAssignor" => "range".into(),
        "RoundRobinAssignor" => "roundrobin".into(),
        "CooperativeStickyAssignor" => "cooperative-sticky".into(),
        _ => s.to_string(),
    }
}

/// The application's position in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    offset: i64,
    leader_epoch: Option<i32>,
}

/// A chunk being handed out, batch by batch, record by record.
struct Cursor {
    chunk: Chunk,
    records: Option<(Records, Option<i32>, TimestampType)>,
}

/// The handle's view of one assigned partition.
struct Assigned {
    gen: u64,
    position: Option<Position>,
    paused: bool,
    /// Events of the current generation, in the order the fetcher sent them.
    queue: VecDeque<EventKind>,
    cursor: Option<Cursor>,
    /// (high watermark, last stable offset) from the latest data taken.
    log_end: Option<(i64, i64)>,
}

impl Assigned {
    fn new(gen: u64) -> Self {
        Assigned {
            gen,
            position: None,
            paused: false,
            queue: VecDeque::new(),
            cursor: None,
            log_end: None,
        }
    }

    fn reset(&mut self, gen: u64, position: Option<Position>) {
        self.gen = gen;
        self.position = position;
        self.queue.clear();
        self.cursor = None;
    }

    /// Applies position events at the front of the queue, which need no
    /// consumption of data before them.
    fn settle(&mut self) {
        while self.cursor.is_none() {
            match self.queue.front() {
                Some(EventKind::Position {
                    offset,
                    leader_epoch,
                }) => {
                    self.position = Some(Position {
                        offset: *offset,
                        leader_epoch: *leader_epoch,
                    });
                    self.queue.pop_front();
                }
                _ => break,
            }
        }
    }

    /// The next record (or error) ready in this partition, without waiting.
    /// `Err(.., true)`: the data is unusable past the position; the caller
    /// must refetch from the position.
    fn next(
        &mut self,
        tp: &TopicPartition,
    ) -> Option<std::result::Result<ConsumerRecord, (Error, bool)>> {
        if self.paused {
            return None;
        }
        loop {
            let Some(cur) = &mut self.cursor else {
                match self.queue.pop_front()? {
                    EventKind::Position {
                        offset,
                        leader_epoch,
                    } => {
                        self.position = Some(Position {
                            offset,
                            leader_epoch,
                        })
                    }
                    EventKind::Error(e) => return Some(Err((e, false))),
                    EventKind::Chunk(chunk) => {
                        self.log_end = Some((chunk.high_watermark, chunk.last_stable_offset));
                        self.cursor = Some(Cursor {
                            chunk,
                            records: None,
                        })
                    }
                }
                continue;
            };
            let pos = self.position.map(|p| p.offset).unwrap_or(i64::MIN);
            if let Some((records, epoch, ts_type)) = &mut cur.records {
                // Records before the position (the rest of a batch the
                // position starts inside) are skipped without a handle.
                let (epoch, ts_type) = (*epoch, *ts_type);
                let next = records.next_map(|r| {
                    (r.offset >= pos).then(|| ConsumerRecord {
                        topic: tp.topic_arc(),
                        partition: tp.partition(),
                        offset: r.offset,
                        timestamp: r.timestamp,
                        timestamp_type: ts_type,
                        leader_epoch: epoch,
                        key: r.key_bytes(),
                        value: r.value_bytes(),
                        with_headers: (!r.headers().is_empty()).then(|| r.to_record()),
                    })
                });
                match next {
                    Some(Ok(None)) => continue,
                    Some(Ok(Some(r))) => {
                        self.position = Some(Position {
                            offset: r.offset.saturating_add(1),
                            leader_epoch: epoch,
                        });
                        return Some(Ok(r));
                    }
                    Some(Err(e)) => {
                        self.cursor = None;
                        self.queue.clear();
                        return Some(Err((corrupt_records(tp, pos, e), true)));
                    }
                    None => cur.records = None,
                }
                continue;
            }
            match cur.chunk.batches.pop_front() {
                Some(b) => {
                    if b.next_offset() <= pos {
                        continue;
                    }
                    let epoch = (b.magic() >= 2 && b.header().partition_leader_epoch >= 0)
                        .then_some(b.header().partition_leader_epoch);
                    match b.records() {
                        Ok(r) => cur.records = Some((r, epoch, b.timestamp_type())),
                        Err(e) => {
                            self.cursor = None;
                            self.queue.clear();
                            return Some(Err((corrupt_records(tp, pos, e), true)));
                        }
                    }
                }
                None => {
                    let next = cur.chunk.next_offset;
                    let err = cur.chunk.error.take();
                    self.cursor = None;
                    match &mut self.position {
                        Some(p) if p.offset < next => p.offset = next,
                        Some(_) => {}
                        None => {
                            self.position = Some(Position {
                                offset: next,
                                leader_epoch: None,
                            })
                        }
                    }
                    if let Some(e) = err {
                        return Some(Err((e, false)));
                    }
                }
            }
        }
    }
}

/// What a record error means to the user, for the consumer's messages: a
/// batch over the decompression bound names the setting that raises it.
pub(crate) fn record_error_summary(e: &crate::record::RecordError) -> &'static str {
    match e {
        crate::record::RecordError::DecompressedTooLarge { .. } => {
            "a batch that decompresses to more than fetch.max.decompressed.bytes (raise it if the batch is genuine)"
        }
        _ => "corrupt record data",
    }
}

fn corrupt_records(tp: &TopicPartition, pos: i64, e: crate::record::RecordError) -> Error {
    Error::protocol(format!(
        "{} at or after offset {pos}",
        record_error_summary(&e)
    ))
    .with_source(e)
    .with_api("Fetch")
    .with_partition(tp.topic(), tp.partition())
}

/// A commit in progress. Awaiting it gives the outcome; dropping it does
/// not cancel the commit.
#[derive(Debug)]
pub struct PendingCommit(oneshot::Receiver<Result<()>>);

impl Future for PendingCommit {
    type Output = Result<()>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Ready(Ok(r)) => Poll::Ready(r),
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::new(
                ErrorKind::Closed,
                "consumer closed before the commit finished",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Where a commit goes: with manual assignment, a plain OffsetCommit
/// carrying the given group metadata (generation -1 outside membership);
/// while subscribed, through the group member, which stamps the current
/// generation / member epoch and retries stale epochs.
enum CommitRoute {
    Plain(GroupMetadata),
    /// With `Some(last generation)`: a commit made on revocation, before
    /// the ack (see `subscription::commit_while_revoking`).
    Member(group::GroupHandle, Option<GroupMetadata>),
}

type CommitJob = (
    CommitRoute,
    Vec<(TopicPartition, OffsetAndMetadata)>,
    oneshot::Sender<Result<()>>,
);

/// Commits run one at a time, in the order they were asked for, so an
/// older asynchronous commit can never overwrite a newer one (this holds
/// across both routes, including commits made on revocation).
async fn committer(
    cluster: Arc<Cluster>,
    timeout: Duration,
    mut jobs: mpsc::UnboundedReceiver<CommitJob>,
) {
    while let Some((route, offsets, done)) = jobs.recv().await {
        let r = match route {
            CommitRoute::Plain(group) => {
                offsets::commit(&cluster, &group, &offsets, Instant::now() + timeout).await
            }
            CommitRoute::Member(handle, None) => {
                handle
                    .commit_offsets(&subscription::to_member_offsets(&offsets))
                    .await
            }
            CommitRoute::Member(handle, Some(last)) => {
                subscription::commit_while_revoking(
                    &cluster,
                    &handle,
                    &last,
                    &offsets,
                    Instant::now() + timeout,
                )
                .await
            }
        };
        if let Err(e) = &r {
            tracing::debug!(error = %e, "offset commit failed");
        }
        let _ = done.send(r);
    }
}

/// A Kafka consumer, with manual partition assignment
/// ([`assign`](Consumer::assign)) or group membership
/// ([`subscribe`](Consumer::subscribe)). See the [module documentation](self)
/// for a tutorial.
pub struct Consumer {
    cfg: Arc<ConsumerConfig>,
    cluster: Arc<Cluster>,
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<PartitionEvent>,
    fetcher: tokio::task::JoinHandle<()>,
    commits: mpsc::UnboundedSender<CommitJob>,
    parts: BTreeMap<TopicPartition, Assigned>,
    /// Round-robin order over assigned partitions.
    order: VecDeque<TopicPartition>,
    next_gen: u64,
    group: Option<GroupMetadata>,
    next_auto_commit: Instant,
    /// Positions last committed automatically (to skip empty commits).
    auto_committed: HashMap<TopicPartition, i64>,
    /// An error met while filling a batch poll, returned by the next call.
    pending_error: Option<Error>,
    /// Group membership, while subscribed.
    sub: Option<subscription::Subscription>,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("group", &self.cfg.group_id)
            .field("assignment", &self.parts.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.fetcher.abort();
    }
}

impl Consumer {
    /// A builder with the Java client's defaults.
    pub fn builder() -> ConsumerBuilder {
        ConsumerBuilder::default()
    }

    /// Starts a consumer with `cfg`. Must be called inside a Tokio runtime.
    pub fn new(cfg: ConsumerConfig) -> Result<Consumer> {
        cfg.validate()?;
        let cluster = Cluster::new(cfg.client.clone())?;
        let cfg = Arc::new(cfg);
        let f = fetcher::spawn(cfg.clone(), cluster.clone());
        let (ctx, crx) = mpsc::unbounded_channel();
        tokio::spawn(committer(
            cluster.clone(),
            cfg.client.default_api_timeout,
            crx,
        ));
        let group = cfg.group_id.as_ref().map(|g| GroupMetadata {
            group_instance_id: cfg.group_instance_id.clone(),
            ..GroupMetadata::new(g.clone())
        });
        Ok(Consumer {
            next_auto_commit: Instant::now() + cfg.auto_commit_interval,
            cfg,
            cluster,
            commands: f.commands,
            events: f.events,
            fetcher: f.task,
            commits: ctx,
            parts: BTreeMap::new(),
            order: VecDeque::new(),
            next_gen: 1,
            group,
            auto_committed: HashMap::new(),
            pending_error: None,
            sub: None,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ConsumerConfig {
        &self.cfg
    }

    fn send(&self, c: Command) -> Result<()> {
        self.commands
            .send(c)
            .map_err(|_| Error::new(ErrorKind::Closed, "the consumer's fetcher has stopped"))
    }

    fn gen(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    fn assigned_mut(&mut self, tp: &TopicPartition) -> Result<&mut Assigned> {
        self.parts.get_mut(tp).ok_or_else(|| {
            Error::illegal_state(format!("partition {tp} is not assigned to this consumer"))
        })
    }

    // ---- assignment ----

    /// Replaces the assignment with `partitions` (manual assignment, no
    /// group membership). Partitions kept from the previous assignment keep
    /// their positions and buffered data; new ones start at the committed
    /// offset (with a `group.id`) or per `auto.offset.reset`.
    ///
    /// Fails with an illegal-state error while subscribed (as in Java,
    /// assignment and subscription are mutually exclusive; `unsubscribe`
    /// first). Assigning an empty list is allowed and clears the
    /// assignment.
    pub fn assign(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        if self.sub.is_some() {
            return Err(Error::illegal_state(
                "assign() while subscribed: subscription and manual assignment are mutually exclusive \
                 (call unsubscribe() first)",
            ));
        }
        self.apply_assignment(partitions)
    }

    /// Replaces the fetcher's assignment; partitions kept keep their
    /// positions and buffered data, removed ones are dropped at once.
    fn apply_assignment(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let mut next = BTreeMap::new();
        let mut list = Vec::new();
        for tp in partitions {
            if next.contains_key(tp) {
                continue;
            }
            match self.parts.remove(tp) {
                Some(a) => {
                    list.push((tp.clone(), a.gen, None));
                    next.insert(tp.clone(), a);
                }
                None => {
                    let gen = self.gen();
                    list.push((tp.clone(), gen, Some(StartAt::Committed)));
                    next.insert(tp.clone(), Assigned::new(gen));
                }
            }
        }
        self.parts = next;
        self.order = self.parts.keys().cloned().collect();
        self.cluster
            .track_topics(partitions.iter().map(|tp| tp.topic()));
        self.send(Command::Assign(list))
    }

    /// The seam for group membership: applies an assignment received from
    /// the group (as [`assign`](Self::assign)) together with the group
    /// generation that commits must carry from now on.
    pub fn set_assignment(
        &mut self,
        partitions: &[TopicPartition],
        group: GroupMetadata,
    ) -> Result<()> {
        self.group = Some(group);
        self.apply_assignment(partitions)
    }

    /// Updates the group generation used by commits (after a rebalance
    /// that kept the assignment, for example).
    pub fn set_group_metadata(&mut self, group: GroupMetadata) {
        self.group = Some(group);
    }

    /// The partitions assigned to this consumer.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.parts.keys().cloned().collect()
    }

    /// The group identity for the transactional producer's
    /// `send_offsets_to_transaction`. Fails without a `group.id`.
    pub fn group_metadata(&self) -> Result<GroupMetadata> {
        self.group
            .clone()
            .ok_or_else(|| offsets::no_group("group_metadata()"))
    }

    // ---- positions ----

    /// Sets the position of `tp` to `offset`: the next record returned from
    /// it will be the one at `offset` (or the first after it).
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        self.seek_with_epoch(tp, OffsetAndMetadata::new(offset))
    }

    /// As [`seek`](Self::seek), with the leader epoch of the record before
    /// `offset` (enables truncation detection from that point).
    pub fn seek_with_epoch(&mut self, tp: &TopicPartition, to: OffsetAndMetadata) -> Result<()> {
        if to.offset < 0 {
            return Err(Error::illegal_state(format!(
                "cannot seek {tp} to negative offset {}",
                to.offset
            )));
        }
        let gen = self.gen();
        let pos = Position {
            offset: to.offset,
            leader_epoch: to.leader_epoch,
        };
        self.assigned_mut(tp)?.reset(gen, Some(pos));
        self.send(Command::Seek(
            tp.clone(),
            gen,
            StartAt::Offset {
                offset: to.offset,
                leader_epoch: to.leader_epoch,
            },
        ))
    }

    /// Moves each partition to its earliest offset (looked up lazily).
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_to(partitions, StartAt::Earliest)
    }

    /// Moves each partition to its end (the LSO for read_committed).
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_to(partitions, StartAt::Latest)
    }

    /// Moves each partition back to the group's committed offset (or per
    /// `auto.offset.reset` when none).
    pub fn seek_to_committed(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_to(partitions, StartAt::Committed)
    }

    fn seek_to(&mut self, partitions: &[TopicPartition], start: StartAt) -> Result<()> {
        for tp in partitions {
            self.assigned_mut(tp)?;
        }
        for tp in partitions {
            let gen = self.gen();
            if let Some(a) = self.parts.get_mut(tp) {
                a.reset(gen, None);
            }
            self.send(Command::Seek(tp.clone(), gen, start))?;
        }
        Ok(())
    }

    /// The position of `tp`: the offset of the next record to be returned.
    /// Waits (up to `default.api.timeout.ms`) while the starting position
    /// is being looked up.
    pub async fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        self.position_within(tp, self.cfg.client.default_api_timeout)
            .await
    }

    /// As [`position`](Self::position) with an explicit timeout.
    pub async fn position_within(&mut self, tp: &TopicPartition, timeout: Duration) -> Result<i64> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let a = self.assigned_mut(tp)?;
            a.settle();
            if let Some(p) = a.position {
                return Ok(p.offset);
            }
            if let Some(EventKind::Error(e)) = a.queue.front() {
                return Err(e.clone());
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev)) => self.route(ev),
                Ok(None) => {
                    return Err(Error::new(
                        ErrorKind::Closed,
                        "the consumer's fetcher has stopped",
                    ))
                }
                Err(_) => {
                    return Err(Error::timeout(format!(
                        "position of {tp} not known within {timeout:?}"
                    ))
                    .with_partition(tp.topic(), tp.partition()))
                }
            }
        }
    }

    /// How far the position of `tp` is behind the end of its log (the high
    /// watermark, or the LSO with read_committed), as of the latest data
    /// returned; `None` before any.
    pub fn current_lag(&self, tp: &TopicPartition) -> Option<i64> {
        let a = self.parts.get(tp)?;
        let (hw, lso) = a.log_end?;
        let end = match self.cfg.isolation_level {
            IsolationLevel::ReadCommitted if lso >= 0 => lso,
            _ => hw,
        };
        Some(end.saturating_sub(a.position?.offset).max(0))
    }

    /// Stops returning records from `partitions` and stops fetching them,
    /// keeping positions and already fetched data.
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            self.assigned_mut(tp)?.paused = true;
        }
        self.send(Command::Pause(partitions.to_vec()))
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            self.assigned_mut(tp)?.paused = false;
        }
        self.send(Command::Resume(partitions.to_vec()))
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.parts
            .iter()
            .filter(|(_, a)| a.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    // ---- records ----

    fn route(&mut self, ev: PartitionEvent) {
        if let Some(a) = self.parts.get_mut(&ev.tp) {
            if a.gen == ev.gen {
                a.queue.push_back(ev.kind);
                a.settle();
            }
        }
    }

    /// The next record ready without waiting, round-robin over partitions
    /// (each partition's fetched chunk is drained before moving on).
    fn next_ready(&mut self) -> Option<Result<ConsumerRecord>> {
        while let Ok(ev) = self.events.try_recv() {
            self.route(ev);
        }
        for _ in 0..self.order.len() {
            let tp = self.order.front()?.clone();
            let Some(a) = self.parts.get_mut(&tp) else {
                self.order.pop_front();
                continue;
            };
            match a.next(&tp) {
                Some(Ok(r)) => return Some(Ok(r)),
                Some(Err((e, refetch))) => {
                    if refetch {
                        // Fetch again from the position; if the data is
                        // really corrupt the error comes back, as in Java.
                        self.next_gen += 1;
                        let gen = self.next_gen;
                        let pos = a.position;
                        a.reset(gen, pos);
                        if let Some(p) = pos {
                            let _ = self.commands.send(Command::Seek(
                                tp.clone(),
                                gen,
                                StartAt::Offset {
                                    offset: p.offset,
                                    leader_epoch: p.leader_epoch,
                                },
                            ));
                        }
                    }
                    self.order.rotate_left(1);
                    return Some(Err(e));
                }
                None => self.order.rotate_left(1),
            }
        }
        None
    }

    /// Polls for the next record (the [`Stream`](futures_core::Stream)
    /// implementation).
    fn poll_record(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<ConsumerRecord>>> {
        if let Some(e) = self.pending_error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        // Rebalance events are handled before any record is returned, so
        // no record of a revoked partition comes out after its revocation.
        match self.poll_group(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
            Poll::Pending => return Poll::Pending,
        }
        self.maybe_auto_commit();
        loop {
            if let Some(r) = self.next_ready() {
                return Poll::Ready(Some(r));
            }
            match self.events.poll_recv(cx) {
                Poll::Ready(Some(ev)) => self.route(ev),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Waits for the next record.
    pub async fn recv(&mut self) -> Result<ConsumerRecord> {
        match std::future::poll_fn(|cx| self.poll_record(cx)).await {
            Some(r) => r,
            None => Err(Error::new(
                ErrorKind::Closed,
                "the consumer's fetcher has stopped",
            )),
        }
    }

    /// Returns up to `max.poll.records` records: waits up to `timeout` for
    /// the first, then takes what is ready without waiting. An empty vector
    /// means nothing arrived in time. A partition error is returned on its
    /// own (records ready before it are returned first).
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let first =
            tokio::time::timeout(timeout, std::future::poll_fn(|cx| self.poll_record(cx))).await;
        let mut out = match first {
            Err(_) => return Ok(Vec::new()),
            Ok(None) => {
                return Err(Error::new(
                    ErrorKind::Closed,
                    "the consumer's fetcher has stopped",
                ))
            }
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok(r))) => vec![r],
        };
        while out.len() < self.cfg.max_poll_records {
            match self.next_ready() {
                Some(Ok(r)) => out.push(r),
                Some(Err(e)) => {
                    self.pending_error = Some(e);
                    break;
                }
                None => break,
            }
        }
        Ok(out)
    }

    // ---- offsets ----

    /// The current positions of every partition whose position is known,
    /// as offsets to commit.
    pub fn positions(&self) -> Vec<(TopicPartition, OffsetAndMetadata)> {
        self.parts
            .iter()
            .filter_map(|(tp, a)| {
                a.position.map(|p| {
                    (
                        tp.clone(),
                        OffsetAndMetadata {
                            offset: p.offset,
                            leader_epoch: p.leader_epoch,
                            metadata: String::new(),
                        },
                    )
                })
            })
            .collect()
    }

    fn start_commit(&self, offsets: Vec<(TopicPartition, OffsetAndMetadata)>) -> PendingCommit {
        self.start_commit_as(offsets, None)
    }

    /// `revoking`: the generation of a revocation being handled; the commit
    /// carries it instead of whatever generation the member is in now.
    fn start_commit_as(
        &self,
        offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
        revoking: Option<GroupMetadata>,
    ) -> PendingCommit {
        let (tx, rx) = oneshot::channel();
        let route = match (&self.sub, &self.group) {
            (Some(sub), _) => CommitRoute::Member(sub.handle.clone(), revoking),
            (None, Some(g)) => CommitRoute::Plain(g.clone()),
            (None, None) => {
                let _ = tx.send(Err(offsets::no_group("committing offsets")));
                return PendingCommit(rx);
            }
        };
        if let Err(mpsc::error::SendError((_, _, tx))) = self.commits.send((route, offsets, tx)) {
            let _ = tx.send(Err(Error::new(ErrorKind::Closed, "the consumer is closed")));
        }
        PendingCommit(rx)
    }

    /// Commits the positions of all assigned partitions and waits for the
    /// outcome.
    pub async fn commit_sync(&mut self) -> Result<()> {
        self.commit_offsets_sync(self.positions()).await
    }

    /// Commits the given offsets and waits for the outcome.
    pub async fn commit_offsets_sync(
        &mut self,
        offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
    ) -> Result<()> {
        self.start_commit(offsets).await
    }

    /// Starts committing the positions of all assigned partitions; the
    /// returned future resolves with the outcome (dropping it does not
    /// cancel the commit). Commits are sent in the order they were started.
    pub fn commit_async(&mut self) -> PendingCommit {
        self.start_commit(self.positions())
    }

    /// As [`commit_async`](Self::commit_async) for the given offsets.
    pub fn commit_offsets_async(
        &mut self,
        offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
    ) -> PendingCommit {
        self.start_commit(offsets)
    }

    fn maybe_auto_commit(&mut self) {
        if !self.cfg.auto_commit() || Instant::now() < self.next_auto_commit {
            return;
        }
        self.next_auto_commit = Instant::now() + self.cfg.auto_commit_interval;
        let changed: Vec<_> = self
            .positions()
            .into_iter()
            .filter(|(tp, o)| self.auto_committed.get(tp) != Some(&o.offset))
            .collect();
        if changed.is_empty() {
            return;
        }
        for (tp, o) in &changed {
            self.auto_committed.insert(tp.clone(), o.offset);
        }
        drop(self.start_commit(changed));
    }

    /// The group's committed offsets for `partitions` (`None`: nothing
    /// committed). With read_committed, waits for pending transactional
    /// commits to complete.
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, Option<OffsetAndMetadata>>> {
        let group = self
            .cfg
            .group_id
            .as_deref()
            .ok_or_else(|| offsets::no_group("committed()"))?;
        let require_stable = self.cfg.isolation_level == IsolationLevel::ReadCommitted;
        let deadline = Instant::now() + self.cfg.client.default_api_timeout;
        offsets::fetch_committed(&self.cluster, group, partitions, require_stable, deadline).await
    }

    async fn list(
        &self,
        query: Vec<(TopicPartition, i64)>,
    ) -> Result<HashMap<TopicPartition, ListedOffset>> {
        let deadline = Instant::now() + self.cfg.client.default_api_timeout;
        let mut out = HashMap::new();
        for (tp, r) in
            offsets::list_offsets(&self.cluster, self.cfg.isolation_level, &query, deadline).await
        {
            out.insert(tp, r?);
        }
        Ok(out)
    }

    /// The earliest offset of each partition.
    pub async fn beginning_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        let q = partitions
            .iter()
            .map(|tp| (tp.clone(), offsets::EARLIEST_TIMESTAMP))
            .collect();
        Ok(self
            .list(q)
            .await?
            .into_iter()
            .map(|(tp, l)| (tp, l.offset))
            .collect())
    }

    /// The end offset of each partition: the high watermark, or the last
    /// stable offset with read_committed.
    pub async fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        let q = partitions
            .iter()
            .map(|tp| (tp.clone(), offsets::LATEST_TIMESTAMP))
            .collect();
        Ok(self
            .list(q)
            .await?
            .into_iter()
            .map(|(tp, l)| (tp, l.offset))
            .collect())
    }

    /// For each partition, the earliest offset whose timestamp is at or
    /// after the given one (`None`: no such record).
    pub async fn offsets_for_times(
        &self,
        query: &[(TopicPartition, i64)],
    ) -> Result<HashMap<TopicPartition, Option<OffsetAndTimestamp>>> {
        for (tp, ts) in query {
            if *ts < 0 {
                return Err(Error::illegal_state(format!(
                    "timestamp {ts} for {tp} is negative"
                )));
            }
        }
        Ok(self
            .list(query.to_vec())
            .await?
            .into_iter()
            .map(|(tp, l)| {
                let v = (l.offset >= 0).then_some(OffsetAndTimestamp {
                    offset: l.offset,
                    timestamp: l.timestamp,
                    leader_epoch: l.leader_epoch,
                });
                (tp, v)
            })
            .collect())
    }

    /// Commits positions if auto-commit is on; while subscribed, calls the
    /// rebalance listener's `on_partitions_revoked` for the whole
    /// assignment (committing what it asks) and leaves the group (static
    /// members only stop); then stops fetching.
    pub async fn close(mut self) -> Result<()> {
        let r = if self.sub.is_some() {
            self.leave_group().await
        } else if self.cfg.auto_commit() {
            self.commit_sync().await
        } else {
            Ok(())
        };
        self.fetcher.abort();
        r
    }
}

impl futures_core::Stream for Consumer {
    type Item = Result<ConsumerRecord>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_record(cx)
    }
}
