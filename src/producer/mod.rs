//! The producer: batching, partitioning, retries and idempotence.
//!
//! ```no_run
//! # async fn demo() -> kafkawire::Result<()> {
//! use kafkawire::producer::{Producer, ProducerRecord};
//! use std::time::Duration;
//!
//! let producer = Producer::builder()
//!     .bootstrap_servers("127.0.0.1:9092")
//!     .linger(Duration::from_millis(5))
//!     .build()?;
//!
//! // `send` waits only to enqueue (metadata, buffer memory); the returned
//! // future resolves when the broker acknowledged the record.
//! let delivery = producer.send(ProducerRecord::new("orders").key("order-42").value("paid")).await?;
//! let meta = delivery.await?;
//! println!("written to {}-{} at offset {}", meta.topic(), meta.partition(), meta.offset());
//!
//! // Highest throughput: no per-record future.
//! for i in 0..1000u32 {
//!     producer.send_and_forget(ProducerRecord::new("metrics").value(&i.to_be_bytes())).await?;
//! }
//! producer.flush().await;
//! producer.close(Duration::from_secs(30)).await?;
//! # Ok(()) }
//! ```
//!
//! # What happens to a record
//!
//! 1. [`Producer::send`] picks the partition (explicit, else murmur2 of the
//!    key as the Java client does, else *uniform sticky*), waiting up to
//!    `max.block.ms` for the topic's metadata, and encodes the record straight
//!    into that partition's open batch. If `buffer.memory` is used up, it
//!    waits (up to `max.block.ms`) for batches to finish: memory is bounded.
//! 2. A batch is sent when it reaches `batch.size`, after `linger.ms`, on
//!    [`Producer::flush`], or on [`Producer::close`]. One background task
//!    builds one Produce request per broker from all its ready batches and
//!    keeps up to `max.in.flight.requests.per.connection` requests in flight
//!    per broker.
//! 3. Retriable failures (leader moved, broker down, timeouts) are retried
//!    with exponential backoff and jitter (`retry.backoff.ms`,
//!    `retry.backoff.max.ms`), following the new leader after a metadata
//!    refresh, until `delivery.timeout.ms` after the record was enqueued.
//!
//! # Idempotence (on by default)
//!
//! As in the Java client since 3.0, the producer gets a producer id from the
//! cluster and numbers each partition's batches, so a retried batch is
//! never written twice and batches of a partition are written in send
//! order. It requires `acks=all`, at most 5 in-flight requests per
//! connection and `retries > 0`; the builder refuses contradicting settings.
//! Turn it off with [`ProducerBuilder::enable_idempotence`]`(false)`.
//!
//! # Errors
//!
//! `send` fails at once, without touching other records, for a record larger
//! than `max.request.size` (or `buffer.memory`), a topic missing after
//! `max.block.ms`, an invalid explicit partition, or a closed producer. A
//! record whose delivery fails yields the error from its [`DeliveryFuture`]:
//! the broker's code by name, the partition, and whether retrying may help.
//!
//! # Cancellation and shutdown
//!
//! Dropping a [`DeliveryFuture`] does not cancel the record. Dropping the last
//! [`Producer`] clone closes it gracefully in the background: records already
//! sent are still delivered. [`Producer::close`] does the same and waits.

pub(crate) mod accumulator;
pub mod config;
mod delivery;
mod fasthash;
pub(crate) mod idempotence;
pub mod partitioner;
mod sender;
mod split;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
mod transactional;
pub mod txn;

pub use crate::record::Compression;
pub use config::{Acks, ProducerConfig};
pub use partitioner::Partitioner;
pub use transactional::TransactionError;
pub use txn::TxnState;

use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::record::BATCH_HEADER_LEN;
use accumulator::{Accumulator, AccumulatorConfig, Appended, Choice};
use delivery::Completion;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// A record to send. Borrows its data: the bytes are copied into a batch
/// before [`Producer::send`] returns.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord<'a> {
    /// The topic.
    pub topic: &'a str,
    /// An explicit partition; `None` lets the partitioner choose.
    pub partition: Option<i32>,
    /// The key (`None` is a null key).
    pub key: Option<&'a [u8]>,
    /// The value (`None` is a null value, a tombstone on compacted topics).
    pub value: Option<&'a [u8]>,
    /// Headers, in order (a null header value is `None`).
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
    /// Create timestamp in milliseconds since the epoch; `None` for now.
    pub timestamp: Option<i64>,
}

impl<'a> ProducerRecord<'a> {
    /// A record for `topic` with null key and value.
    pub fn new(topic: &'a str) -> Self {
        ProducerRecord {
            topic,
            ..Default::default()
        }
    }

    /// Sets the key.
    pub fn key<K: AsRef<[u8]> + ?Sized>(mut self, key: &'a K) -> Self {
        self.key = Some(key.as_ref());
        self
    }

    /// Sets the value.
    pub fn value<V: AsRef<[u8]> + ?Sized>(mut self, value: &'a V) -> Self {
        self.value = Some(value.as_ref());
        self
    }

    /// Sends to this partition, bypassing the partitioner.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the create timestamp (milliseconds since the epoch).
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }

    /// Adds a header.
    pub fn header<V: AsRef<[u8]> + ?Sized>(mut self, key: &'a str, value: Option<&'a V>) -> Self {
        self.headers.push((key, value.map(|v| v.as_ref())));
        self
    }

    /// An upper bound of the record's encoded size in a batch.
    fn size_upper_bound(&self) -> usize {
        // length, attributes, timestamp delta, offset delta, key and value
        // lengths, header count: at most 5 + 1 + 10 + 5 + 5 + 5 + 5 bytes.
        let mut n = 36 + self.key.map_or(0, <[u8]>::len) + self.value.map_or(0, <[u8]>::len);
        for (k, v) in &self.headers {
            n += 10 + k.len() + v.map_or(0, <[u8]>::len);
        }
        n
    }
}

/// Where and when a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    timestamp: i64,
}

impl RecordMetadata {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// The partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }
    /// The record's offset, or -1 when unknown (`acks=0`, or an idempotent
    /// batch proved written by a later acknowledgement after its own answer
    /// was lost).
    pub fn offset(&self) -> i64 {
        self.offset
    }
    /// The record's timestamp: its create time, or the broker's append time
    /// for topics with `message.timestamp.type=LogAppendTime`.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
}

/// Resolves when the broker acknowledged the record (or it failed for
/// good). Dropping it does not cancel the record.
#[must_use = "the record is sent either way; await this to learn its outcome"]
#[derive(Debug)]
pub struct DeliveryFuture {
    completion: Arc<Completion>,
    slot: Option<usize>,
    topic: Arc<str>,
    partition: i32,
    offset_delta: i32,
    timestamp: i64,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.completion.poll(cx, &mut this.slot, this.offset_delta) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok((ack, delta))) => Poll::Ready(Ok(RecordMetadata {
                topic: this.topic.clone(),
                partition: this.partition,
                offset: if ack.base_offset < 0 {
                    -1
                } else {
                    ack.base_offset + delta as i64
                },
                timestamp: if ack.log_append_time >= 0 {
                    ack.log_append_time
                } else {
                    this.timestamp
                },
            })),
        }
    }
}

/// Builds a [`Producer`]. Setters are named after the Java client's settings.
#[derive(Debug, Clone, Default)]
pub struct ProducerBuilder {
    cfg: ProducerConfig,
    #[cfg(feature = "test-hooks")]
    hooks: test_hooks::TestHooks,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident : $ty:ty => $($field:ident).+) => {
        $(#[$doc])*
        pub fn $name(mut self, v: $ty) -> Self {
            self.cfg.$($field).+ = v;
            self
        }
    };
}

impl ProducerBuilder {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub fn bootstrap_servers(mut self, servers: &str) -> Self {
        self.cfg.client.set_bootstrap_servers(servers);
        self
    }
    /// `client.id`.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.cfg.client.client_id = id.into();
        self
    }
    setter!(/// `acks` (default [`Acks::All`]).
        acks: Acks => acks);
    setter!(/// `linger.ms` (default 5 ms).
        linger: Duration => linger);
    setter!(/// `batch.size` in bytes (default 16384).
        batch_size: usize => batch_size);
    setter!(/// `buffer.memory` in bytes (default 32 MiB).
        buffer_memory: usize => buffer_memory);
    setter!(/// `max.block.ms` (default 60 s).
        max_block: Duration => max_block);
    setter!(/// `compression.type` (default none).
        compression: Compression => compression);
    /// `compression.gzip.level` (-1 or 1-9, default -1: zlib's 6).
    pub fn compression_gzip_level(mut self, level: i32) -> Self {
        self.cfg.compression_gzip_level = Some(level);
        self
    }
    /// `compression.lz4.level` (1-17): checked, but no effect on the output
    /// (the pure-Rust LZ4 encoder has one level).
    pub fn compression_lz4_level(mut self, level: i32) -> Self {
        self.cfg.compression_lz4_level = Some(level);
        self
    }
    /// `compression.zstd.level` (-131072..=22, default 3).
    pub fn compression_zstd_level(mut self, level: i32) -> Self {
        self.cfg.compression_zstd_level = Some(level);
        self
    }
    setter!(/// `max.request.size` in bytes (default 1 MiB).
        max_request_size: usize => max_request_size);
    setter!(/// `request.timeout.ms` (default 30 s).
        request_timeout: Duration => client.request_timeout);
    setter!(/// `delivery.timeout.ms` (default 120 s).
        delivery_timeout: Duration => delivery_timeout);
    setter!(/// `retries` (default `i32::MAX`).
        retries: u32 => retries);
    setter!(/// `retry.backoff.ms` (default 100 ms).
        retry_backoff: Duration => client.retry_backoff);
    setter!(/// `retry.backoff.max.ms` (default 1 s).
        retry_backoff_max: Duration => client.retry_backoff_max);
    setter!(/// `max.in.flight.requests.per.connection` (default 5).
        max_in_flight_requests_per_connection: usize => max_in_flight_requests_per_connection);
    setter!(/// `enable.idempotence` (default true).
        enable_idempotence: bool => enable_idempotence);
    setter!(/// `partitioner.class` / `partitioner.ignore.keys`.
        partitioner: Partitioner => partitioner);
    setter!(/// `metadata.max.age.ms` (default 5 min).
        metadata_max_age: Duration => client.metadata_max_age);
    setter!(/// `transaction.timeout.ms` (default 60 s).
        transaction_timeout: Duration => transaction_timeout);

    /// `transactional.id`: makes the producer transactional (see
    /// [`Producer::init_transactions`]).
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.cfg.transactional_id = Some(id.into());
        self
    }

    /// Replaces the shared client settings (connection, metadata, backoff).
    pub fn client_config(mut self, cfg: ClientConfig) -> Self {
        self.cfg.client = cfg;
        self
    }

    /// Sets one setting by its Java name from a string, e.g.
    /// `.set("linger.ms", "20")?`.
    pub fn set(mut self, key: &str, value: &str) -> Result<Self> {
        let bad = |why: &str| Error::config(key, format!("`{value}`: {why}"));
        let ms = || {
            value
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| bad("expected milliseconds"))
        };
        let num = || {
            value
                .trim()
                .parse::<usize>()
                .map_err(|_| bad("expected a non-negative integer"))
        };
        let flag = || {
            value
                .trim()
                .parse::<bool>()
                .map_err(|_| bad("expected true or false"))
        };
        let level = || {
            value
                .trim()
                .parse::<i32>()
                .map_err(|_| bad("expected an integer"))
        };
        let c = &mut self.cfg;
        match key {
            "bootstrap.servers" => c.client.set_bootstrap_servers(value),
            "client.id" => c.client.client_id = value.to_string(),
            "acks" => {
                c.acks = match value.trim() {
                    "0" => Acks::None,
                    "1" => Acks::Leader,
                    "all" | "-1" => Acks::All,
                    _ => return Err(bad("expected 0, 1, all or -1")),
                }
            }
            "linger.ms" => c.linger = ms()?,
            "batch.size" => c.batch_size = num()?,
            "buffer.memory" => c.buffer_memory = num()?,
            "max.block.ms" => c.max_block = ms()?,
            "compression.type" => {
                c.compression = crate::record::Compression::ALL
                    .into_iter()
                    .find(|k| k.name() == value.trim())
                    .ok_or_else(|| bad("expected none, gzip, snappy, lz4 or zstd"))?
            }
            "compression.gzip.level" => c.compression_gzip_level = Some(level()?),
            "compression.lz4.level" => c.compression_lz4_level = Some(level()?),
            "compression.zstd.level" => c.compression_zstd_level = Some(level()?),
            "max.request.size" => c.max_request_size = num()?,
            "request.timeout.ms" => c.client.request_timeout = ms()?,
            "delivery.timeout.ms" => c.delivery_timeout = ms()?,
            "retries" => c.retries = num()?.min(u32::MAX as usize) as u32,
            "retry.backoff.ms" => c.client.retry_backoff = ms()?,
            "retry.backoff.max.ms" => c.client.retry_backoff_max = ms()?,
            "max.in.flight.requests.per.connection" => {
                c.max_in_flight_requests_per_connection = num()?
            }
            "enable.idempotence" => c.enable_idempotence = flag()?,
            "partitioner.ignore.keys" => {
                if flag()? {
                    c.partitioner = Partitioner::UniformSticky
                }
            }
            "metadata.max.age.ms" => c.client.metadata_max_age = ms()?,
            "transactional.id" => c.transactional_id = Some(value.to_string()),
            "transaction.timeout.ms" => c.transaction_timeout = ms()?,
            _ => return Err(Error::config(key, "unknown producer setting")),
        }
        Ok(self)
    }

    /// The settings so far.
    pub fn config(&self) -> &ProducerConfig {
        &self.cfg
    }

    /// Test only (cargo feature `test-hooks`): where an idempotent producer
    /// starts its sequences and epoch; see [`test_hooks::TestHooks`].
    #[cfg(feature = "test-hooks")]
    pub fn test_hooks(mut self, hooks: test_hooks::TestHooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// Validates the settings and starts the producer (no IO yet). Must be
    /// called inside a Tokio runtime.
    pub fn build(self) -> Result<Producer> {
        #[cfg(feature = "test-hooks")]
        {
            let h = self.hooks;
            if h.first_sequence < 0 || h.first_epoch.is_some_and(|e| e < 0) {
                return Err(Error::config(
                    "test_hooks",
                    format!("{h:?}: sequence and epoch must not be negative"),
                ));
            }
            return Producer::start(self.cfg, h);
        }
        #[cfg(not(feature = "test-hooks"))]
        Producer::new(self.cfg)
    }
}

/// State shared by the producer handles and the sender task.
pub(crate) struct Shared {
    cfg: ProducerConfig,
    cluster: Arc<Cluster>,
    acc: Mutex<Accumulator>,
    /// `buffer.memory`, in bytes, as permits.
    memory: Semaphore,
    /// Wakes the sender (new or full batch, flush, close).
    wake: Notify,
    /// Signalled whenever batches finish (for flush and close).
    finished: Notify,
    fatal: Mutex<Option<Error>>,
    #[cfg(feature = "test-hooks")]
    hooks: test_hooks::TestHooks,
    /// `fatal` is set (checked per record without locking).
    has_fatal: AtomicBool,
    force_close: AtomicBool,
    /// The transaction state (transactional producers only). Locked for
    /// single method calls only, never together with another lock except
    /// inside the accumulator lock (`send` registers the partition), so the
    /// order is always accumulator, then transaction manager.
    txn: Option<Mutex<txn::TxnManager>>,
    /// Serialises the transactional calls of the user (init, offsets,
    /// commit, abort): one coordinator conversation at a time.
    txn_op: tokio::sync::Mutex<()>,
}

impl Shared {
    fn lock_acc(&self) -> MutexGuard<'_, Accumulator> {
        self.acc.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn force_closed(&self) -> bool {
        self.force_close.load(Ordering::Acquire)
    }

    fn set_fatal(&self, e: Error) {
        let mut f = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(e);
            self.has_fatal.store(true, Ordering::Release);
        }
    }

    fn fatal(&self) -> Option<Error> {
        if !self.has_fatal.load(Ordering::Acquire) {
            return None;
        }
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A batch finished: return its memory and wake flush/close waiters.
    fn release(&self, id: u64, reserved: usize) {
        self.memory.add_permits(reserved);
        self.lock_acc().batch_done(id);
        self.finished.notify_waiters();
    }

    /// Waits until every batch with an id below `mark` finished.
    async fn wait_finished(&self, mark: u64) {
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock_acc().min_incomplete() >= mark {
                return;
            }
            notified.await;
        }
    }
}

struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Graceful close in the background: the sender finishes what was
        // sent, then exits.
        self.shared.lock_acc().close();
        self.shared.wake.notify_one();
    }
}

/// An asynchronous Kafka producer. Cheap to clone; all clones share one
/// set of batches, connections and producer id.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("client_id", &self.inner.shared.cfg.client.client_id)
            .finish()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Producer {
    /// A builder with the Java client's defaults.
    pub fn builder() -> ProducerBuilder {
        ProducerBuilder::default()
    }

    /// Starts a producer with `cfg` (validated first).
    pub fn new(cfg: ProducerConfig) -> Result<Producer> {
        #[cfg(feature = "test-hooks")]
        return Producer::start(cfg, test_hooks::TestHooks::default());
        #[cfg(not(feature = "test-hooks"))]
        Producer::start(cfg)
    }

    fn start(
        cfg: ProducerConfig,
        #[cfg(feature = "test-hooks")] hooks: test_hooks::TestHooks,
    ) -> Result<Producer> {
        cfg.validate()?;
        let cluster = Cluster::new(cfg.client.clone())?;
        let acc = Accumulator::new(AccumulatorConfig {
            batch_size: cfg.batch_size,
            linger: cfg.linger,
            compression: cfg.compression,
            compression_level: cfg.compression_level(),
            delivery_timeout: cfg.delivery_timeout,
        });
        let txn = cfg
            .transactional_id
            .as_ref()
            .map(|id| Mutex::new(txn::TxnManager::new(id.clone())));
        let shared = Arc::new(Shared {
            txn,
            txn_op: tokio::sync::Mutex::new(()),
            memory: Semaphore::new(cfg.buffer_memory),
            cfg,
            cluster,
            acc: Mutex::new(acc),
            wake: Notify::new(),
            finished: Notify::new(),
            fatal: Mutex::new(None),
            #[cfg(feature = "test-hooks")]
            hooks,
            has_fatal: AtomicBool::new(false),
            force_close: AtomicBool::new(false),
        });
        tokio::spawn(sender::Sender::new(shared.clone()).run());
        Ok(Producer {
            inner: Arc::new(Handle { shared }),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &ProducerConfig {
        &self.inner.shared.cfg
    }

    /// Enqueues `record` and returns a future of its outcome.
    ///
    /// Waits only for what enqueueing needs: the topic's metadata and room
    /// in `buffer.memory`, each for at most `max.block.ms` in total. Fails
    /// at once, without affecting other records, if the record is larger
    /// than `max.request.size`, the explicit partition does not exist, or
    /// the producer is closed.
    pub async fn send(&self, record: ProducerRecord<'_>) -> Result<DeliveryFuture> {
        let (completion, topic, partition, offset_delta, timestamp) = self.enqueue(&record).await?;
        Ok(DeliveryFuture {
            completion,
            slot: None,
            topic,
            partition,
            offset_delta,
            timestamp,
        })
    }

    /// Enqueues `record` without a per-record future: the fastest way to
    /// send. Delivery failures are only logged; use [`flush`](Self::flush)
    /// to wait for delivery.
    pub async fn send_and_forget(&self, record: ProducerRecord<'_>) -> Result<()> {
        self.enqueue(&record).await.map(|_| ())
    }

    async fn enqueue(
        &self,
        r: &ProducerRecord<'_>,
    ) -> Result<(Arc<Completion>, Arc<str>, i32, i32, i64)> {
        let shared = &self.inner.shared;
        let cfg = &shared.cfg;
        if let Some(e) = shared.fatal() {
            return Err(e);
        }
        // `max.block.ms` bounds the waits below. The deadline is fixed at
        // the first wait rather than on entry: most records never wait, and
        // a clock read per record is measurable (nothing before the first
        // wait blocks, so the budget is the same).
        let mut deadline = None;
        let size = r.size_upper_bound();
        if size + BATCH_HEADER_LEN > cfg.max_request_size {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "the record is {} bytes when serialized, larger than max.request.size ({})",
                    size + BATCH_HEADER_LEN,
                    cfg.max_request_size
                ),
            )
            .with_topic(r.topic));
        }
        if size + BATCH_HEADER_LEN > cfg.buffer_memory {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "the record is {} bytes, larger than buffer.memory ({})",
                    size + BATCH_HEADER_LEN,
                    cfg.buffer_memory
                ),
            )
            .with_topic(r.topic));
        }
        if r.topic.is_empty() {
            return Err(Error::new(
                ErrorKind::IllegalState,
                "the record has no topic",
            ));
        }
        let mut snap = shared.cluster.snapshot();
        if snap.topic(r.topic).is_none_or(|t| t.partitions.is_empty()) {
            snap = shared
                .cluster
                .metadata_for(
                    &[r.topic.to_string()],
                    block_deadline(&mut deadline, cfg.max_block),
                )
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        Error::timeout(format!(
                            "topic not present in metadata after max.block.ms ({} ms): {}",
                            cfg.max_block.as_millis(),
                            e.message()
                        ))
                        .with_topic(r.topic)
                    } else {
                        e
                    }
                })?;
        }
        let Some(info) = snap.topic(r.topic) else {
            return Err(
                Error::new(ErrorKind::NotFound, "topic not in metadata").with_topic(r.topic)
            );
        };
        let n = info.partitions.len() as i32;
        if let Some(p) = r.partition {
            if p < 0 || p >= n {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("partition {p} does not exist: the topic has {n}"),
                )
                .with_partition(r.topic, p));
            }
        }
        let timestamp = r.timestamp.unwrap_or_else(now_ms);
        let headers = r.headers.iter().map(|(k, v)| (*k, *v));
        let choice = match (r.partition, r.key, cfg.partitioner) {
            (Some(p), _, _) => Choice::Fixed(p),
            (None, Some(k), Partitioner::Default) => {
                Choice::Fixed(partitioner::partition_for_key(k, n))
            }
            (None, _, Partitioner::RoundRobin) => Choice::RoundRobin { num_partitions: n },
            (None, _, _) => {
                // Bytes the record adds to a batch, roughly (the stickiness
                // budget is batch.size of these).
                let approx = size.saturating_sub(28);
                Choice::Sticky {
                    num_partitions: n,
                    version: Arc::as_ptr(&snap) as usize,
                    size: approx,
                }
            }
        };
        let available = || {
            info.partitions
                .iter()
                .filter(|p| p.leader.is_some())
                .map(|p| p.partition)
                .collect()
        };
        // First attempt: the open batch, under one short lock.
        let (topic, partition) = {
            let mut acc = shared.lock_acc();
            if acc.is_closed() {
                return Err(closed());
            }
            if let Some(txn) = &shared.txn {
                // Refuse before anything is appended (outside a transaction,
                // or after an abortable/fatal error).
                transactional::lock_txn(txn).check_send()?;
            }
            let (topic, partition, appended) = acc.choose_and_append(
                r.topic,
                choice,
                available,
                timestamp,
                r.key,
                r.value,
                headers.clone(),
            );
            if let Some(txn) = &shared.txn {
                // Still inside the accumulator lock: a commit or abort that
                // starts now sees this record in its flush.
                let tp = accumulator::TopicPartition {
                    topic: topic.clone(),
                    partition,
                };
                if transactional::lock_txn(txn).on_send(&tp)? {
                    shared.wake.notify_one();
                }
            }
            match appended {
                Appended::Yes {
                    completion,
                    offset_delta,
                    wake,
                } => {
                    drop(acc);
                    if wake {
                        shared.wake.notify_one();
                    }
                    return Ok((completion, topic, partition, offset_delta, timestamp));
                }
                Appended::NeedsNewBatch => (topic, partition),
            }
        };
        // A new batch: reserve its memory first (back-pressure).
        let want = cfg
            .batch_size
            .max(size + BATCH_HEADER_LEN)
            .min(cfg.buffer_memory);
        let permits = u32::try_from(want).unwrap_or(u32::MAX);
        match tokio::time::timeout_at(block_deadline(&mut deadline, cfg.max_block).into(), shared.memory.acquire_many(permits)).await {
            Ok(Ok(p)) => p.forget(),
            Ok(Err(_)) => return Err(closed()),
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::BufferExhausted,
                    format!(
                        "buffer.memory ({} bytes) stayed full for max.block.ms ({} ms): records are produced faster than they can be sent",
                        cfg.buffer_memory,
                        cfg.max_block.as_millis()
                    ),
                )
                .with_partition(r.topic, partition))
            }
        }
        let appended = {
            let mut acc = shared.lock_acc();
            if acc.is_closed() {
                None
            } else {
                Some(acc.append_new(
                    &topic,
                    partition,
                    timestamp,
                    r.key,
                    r.value,
                    headers,
                    permits as usize,
                    Instant::now(),
                ))
            }
        };
        match appended {
            None => {
                shared.memory.add_permits(permits as usize);
                Err(closed())
            }
            Some(None) => {
                shared.memory.add_permits(permits as usize);
                Err(Error::new(
                    ErrorKind::TooLarge,
                    "the record cannot be encoded in a batch",
                )
                .with_partition(r.topic, partition))
            }
            Some(Some((completion, offset_delta, unused))) => {
                if unused > 0 {
                    shared.memory.add_permits(unused);
                } else {
                    shared.wake.notify_one();
                }
                Ok((completion, topic, partition, offset_delta, timestamp))
            }
        }
    }

    /// Sends every record enqueued before the call at once (ignoring
    /// `linger.ms`) and waits until each has an outcome. Individual failures
    /// are reported by their futures, not here.
    pub async fn flush(&self) {
        let shared = &self.inner.shared;
        let mark = shared.lock_acc().begin_flush();
        shared.wake.notify_one();
        shared.wait_finished(mark).await;
    }

    /// Stops accepting records, sends what was enqueued and waits up to
    /// `timeout` for every outcome. If time runs out, records still
    /// unfinished fail with a "closed" error and this returns a timeout.
    /// Later sends fail with a "closed" error.
    ///
    /// A transactional producer with a transaction still open aborts it
    /// first (within the same `timeout`), as the Java client does on a
    /// graceful close, so its partitions' last stable offset moves on now
    /// rather than after `transaction.timeout.ms`.
    pub async fn close(&self, timeout: Duration) -> Result<()> {
        let shared = &self.inner.shared;
        let started = Instant::now();
        if matches!(
            self.transaction_state(),
            Some(TxnState::InTransaction | TxnState::AbortableError)
        ) {
            match tokio::time::timeout(timeout, self.abort_transaction()).await {
                Ok(Ok(())) => tracing::debug!("close: aborted the open transaction"),
                Ok(Err(e)) => tracing::warn!(error = %e, "close: could not abort the open transaction; the coordinator will time it out"),
                Err(_) => tracing::warn!("close: aborting the open transaction did not finish in time; the coordinator will time it out"),
            }
        }
        let timeout = timeout.saturating_sub(started.elapsed());
        let mark = {
            let mut acc = shared.lock_acc();
            acc.close();
            acc.begin_flush()
        };
        shared.wake.notify_one();
        match tokio::time::timeout(timeout, shared.wait_finished(mark)).await {
            Ok(()) => Ok(()),
            Err(_) => {
                shared.force_close.store(true, Ordering::Release);
                shared.wake.notify_one();
                Err(Error::timeout(format!(
                    "close: records were still unfinished after {timeout:?}; they fail with a closed error"
                )))
            }
        }
    }
}

/// The `max.block.ms` deadline of one send, fixed by its first wait.
fn block_deadline(deadline: &mut Option<Instant>, max_block: Duration) -> Instant {
    *deadline.get_or_insert_with(|| Instant::now() + max_block)
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the producer is closed")
}
