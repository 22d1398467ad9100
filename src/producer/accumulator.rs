//! The record accumulator (sans-IO): per-partition queues of batches that
//! records are encoded into, until the sender drains them.
//!
//! The producer handle appends under a short lock; the sender asks which
//! partitions are [`ready`](Accumulator::ready) and
//! [`drains`](Accumulator::drain) one batch at a time. Time is passed in.
//!
//! Invariants:
//! - Per partition, batches are drained in the order they were created, and
//!   records within a batch keep their append order; only the last batch of
//!   a partition accepts appends.
//! - A batch is ready when it is full (an append did not fit, or it is not
//!   the last one), when it is `linger` old (less [`Accumulator::linger_slack`],
//!   the timer's rounding), when a flush covers it, or when the accumulator
//!   is closed.
//! - Sticky partitioning (records without key or partition) moves on from a
//!   partition when its batch is full, when `batch.size` bytes went to it,
//!   or when its only batch was drained before it was full (sent by linger
//!   or a flush): the next record would start a new batch there anyway.
//! - Every batch holds the buffer-memory bytes reserved for it
//!   ([`QueuedBatch::reserved`]) until its outcome is known; the producer
//!   returns them to the memory semaphore then. Batches are created only
//!   with memory reserved, so memory is bounded by `buffer.memory`.
//! - Every created batch id is in `incomplete` until the sender reports it
//!   finished; `flush` waits for the ids below a mark to leave it.

use super::delivery::Completion;
use super::fasthash::FastMap;
use super::partitioner::TopicSticky;
use crate::record::{BatchBuilder, BatchOptions, Compression};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A topic and partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name (shared, not copied per record).
    pub topic: Arc<str>,
    /// Partition index.
    pub partition: i32,
}

/// Settings the accumulator needs.
#[derive(Debug, Clone)]
pub struct AccumulatorConfig {
    /// `batch.size`.
    pub batch_size: usize,
    /// `linger.ms`.
    pub linger: Duration,
    /// `compression.type`.
    pub compression: Compression,
    /// Compression level.
    pub compression_level: Option<i32>,
    /// `delivery.timeout.ms`.
    pub delivery_timeout: Duration,
}

/// When the first batch of a partition may be drained (module invariants).
#[derive(Debug, Clone, Copy)]
struct ReadyRule {
    closed: bool,
    flush_below: u64,
    /// `linger` less the timer slack.
    linger_wait: Duration,
}

impl ReadyRule {
    /// When `b` becomes ready by lingering.
    fn lingered_at(&self, b: &QueuedBatch) -> Instant {
        b.created + self.linger_wait
    }

    /// Whether `b`, the first batch of its partition (`is_last`: the only
    /// one), may be drained at `now`.
    fn allows(&self, b: &QueuedBatch, is_last: bool, now: Instant) -> bool {
        b.full || !is_last || self.closed || b.id < self.flush_below || now >= self.lingered_at(b)
    }
}

/// A batch in the accumulator.
#[derive(Debug)]
pub struct QueuedBatch {
    /// Unique, increasing per accumulator.
    pub id: u64,
    /// The records, encoded.
    pub builder: BatchBuilder,
    /// When the batch was created (linger and delivery timeout count from here).
    pub created: Instant,
    /// Resolves the record futures of the batch.
    pub completion: Arc<Completion>,
    /// Buffer-memory bytes held by the batch.
    pub reserved: usize,
    /// No more appends (a record did not fit).
    pub full: bool,
}

/// Result of [`Accumulator::try_append`].
#[derive(Debug)]
pub enum Appended {
    /// The record is in batch `batch_id` at `offset_delta`. `wake`: the
    /// sender should look again (a batch became full or was created).
    Yes {
        /// The batch's completion.
        completion: Arc<Completion>,
        /// The record's offset within the batch.
        offset_delta: i32,
        /// Tell the sender.
        wake: bool,
    },
    /// No open batch has room: reserve memory and call
    /// [`Accumulator::append_new`].
    NeedsNewBatch,
}

/// What [`Accumulator::ready`] found.
#[derive(Debug, Default)]
pub struct Ready {
    /// Partitions whose first batch may be drained now.
    pub partitions: Vec<TopicPartition>,
    /// The earliest time a not-yet-ready batch becomes ready (linger).
    pub next: Option<Instant>,
}

/// The accumulator. See the module docs.
#[derive(Debug)]
pub struct Accumulator {
    cfg: AccumulatorConfig,
    /// Per topic: its batches and partitioner state (one hash lookup per
    /// record on the hot path).
    queues: FastMap<Arc<str>, TopicQueues>,
    next_id: u64,
    incomplete: BTreeSet<u64>,
    flush_below: u64,
    closed: bool,
    rng: u64,
}

/// One topic's queues and partitioner state.
#[derive(Debug)]
struct TopicQueues {
    /// The shared name, handed to batches and record futures.
    name: Arc<str>,
    parts: FastMap<i32, VecDeque<QueuedBatch>>,
    sticky: TopicSticky,
    /// Partitions with a leader, and the metadata version they came from.
    available: Option<(usize, Vec<i32>)>,
}

/// How [`Accumulator::choose_and_append`] picks the partition.
#[derive(Debug, Clone, Copy)]
pub enum Choice {
    /// This partition (explicit, or from the key).
    Fixed(i32),
    /// Uniform sticky among partitions with a leader.
    Sticky {
        /// Partitions of the topic.
        num_partitions: i32,
        /// Identifies the metadata the availability list comes from.
        version: usize,
        /// The record's size estimate.
        size: usize,
    },
    /// Round robin.
    RoundRobin {
        /// Partitions of the topic.
        num_partitions: i32,
    },
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new(cfg: AccumulatorConfig) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Accumulator {
            cfg,
            queues: FastMap::default(),
            next_id: 0,
            incomplete: BTreeSet::new(),
            flush_below: 0,
            closed: false,
            rng: seed | 1,
        }
    }

    /// Stops accepting records; every queued batch becomes ready.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn random(&mut self) -> u32 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// Picks the partition for a record of `topic` and appends it to that
    /// partition's open batch if it has room: the hot path, one topic
    /// lookup. Returns the shared topic name and the partition with the
    /// outcome. `available` lists the partitions with a leader; it is called
    /// only when the metadata `version` changed.
    #[allow(clippy::too_many_arguments)]
    pub fn choose_and_append<H, K, V>(
        &mut self,
        topic: &str,
        choice: Choice,
        available: impl FnOnce() -> Vec<i32>,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) -> (Arc<str>, i32, Appended)
    where
        H: IntoIterator<Item = (K, Option<V>)> + Clone,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let random = self.random();
        let batch_size = self.cfg.batch_size;
        // One lookup on the hot path; a topic's first record inserts it.
        let t = match self.queues.get_mut(topic) {
            Some(t) => t,
            None => {
                let name: Arc<str> = Arc::from(topic);
                let t = TopicQueues {
                    name: name.clone(),
                    parts: FastMap::default(),
                    sticky: TopicSticky::default(),
                    available: None,
                };
                self.queues.entry(name).or_insert(t)
            }
        };
        let mut partition = match choice {
            Choice::Fixed(p) => p,
            Choice::RoundRobin { num_partitions } => t.sticky.round_robin(num_partitions),
            Choice::Sticky {
                num_partitions,
                version,
                size,
            } => {
                if t.available.as_ref().is_none_or(|(v, _)| *v != version) {
                    t.available = Some((version, available()));
                }
                let avail = t
                    .available
                    .as_ref()
                    .map(|(_, a)| a.as_slice())
                    .unwrap_or(&[]);
                t.sticky
                    .choose(num_partitions, avail, size, batch_size, random)
            }
        };
        let mut appended = append_open(
            t.parts.get_mut(&partition),
            batch_size,
            timestamp,
            key,
            value,
            headers.clone(),
        );
        if let Choice::Sticky {
            num_partitions,
            size,
            ..
        } = choice
        {
            // A full batch ends the stickiness (KIP-480): move on, and put
            // this record on the next partition already.
            let full = matches!(appended, Appended::NeedsNewBatch if t.parts.get(&partition).is_some_and(|q| !q.is_empty()))
                || matches!(appended, Appended::Yes { wake: true, .. });
            if full {
                t.sticky.switch();
                if matches!(appended, Appended::NeedsNewBatch) {
                    let avail = t
                        .available
                        .as_ref()
                        .map(|(_, a)| a.as_slice())
                        .unwrap_or(&[]);
                    partition = t.sticky.choose(
                        num_partitions,
                        avail,
                        size,
                        batch_size,
                        random.rotate_left(16),
                    );
                    appended = append_open(
                        t.parts.get_mut(&partition),
                        batch_size,
                        timestamp,
                        key,
                        value,
                        headers,
                    );
                }
            }
        }
        (t.name.clone(), partition, appended)
    }

    /// Appends to the partition's last batch if it is open and has room.
    /// A batch that refuses the record is marked full.
    pub fn try_append<H, K, V>(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) -> Appended
    where
        H: IntoIterator<Item = (K, Option<V>)> + Clone,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let batch_size = self.cfg.batch_size;
        let q = self
            .queues
            .get_mut(topic)
            .and_then(|t| t.parts.get_mut(&partition));
        append_open(q, batch_size, timestamp, key, value, headers)
    }

    /// Starts a new batch for the partition holding `reserved` bytes of
    /// buffer memory and appends the record to it. Tries the open batch
    /// first (another caller may have created one meanwhile); in that case
    /// the reservation is handed back in `Err`-free form: the second value
    /// is the unused reservation.
    ///
    /// Returns `None` if the record cannot be encoded at all.
    #[allow(clippy::too_many_arguments)]
    pub fn append_new<H, K, V>(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
        reserved: usize,
        now: Instant,
    ) -> Option<(Arc<Completion>, i32, usize)>
    where
        H: IntoIterator<Item = (K, Option<V>)> + Clone,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        if let Appended::Yes {
            completion,
            offset_delta,
            ..
        } = self.try_append(topic, partition, timestamp, key, value, headers.clone())
        {
            return Some((completion, offset_delta, reserved));
        }
        let opts = BatchOptions {
            compression: self.cfg.compression,
            compression_level: self.cfg.compression_level,
            size_limit: self.cfg.batch_size,
            ..BatchOptions::default()
        };
        let mut builder = BatchBuilder::new(opts);
        if !builder.append(timestamp, key, value, headers) {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.incomplete.insert(id);
        let completion = Arc::new(Completion::default());
        let full = builder.estimated_size() >= self.cfg.batch_size;
        let t = self
            .queues
            .entry(topic.clone())
            .or_insert_with(|| TopicQueues {
                name: topic.clone(),
                parts: FastMap::default(),
                sticky: TopicSticky::default(),
                available: None,
            });
        let q = t.parts.entry(partition).or_default();
        q.push_back(QueuedBatch {
            id,
            builder,
            created: now,
            completion: completion.clone(),
            reserved,
            full,
        });
        Some((completion, 0, 0))
    }

    /// How much before `linger` a lingering batch counts as ready. The
    /// sender sleeps on the runtime's timer, which fires up to 1 ms late
    /// (tokio rounds deadlines up to its 1 ms tick), so without slack a batch
    /// would wait `linger` to `linger` + 1 ms. With it, a batch leaves
    /// `linger` - 1 ms to `linger` after its first record, never later: like
    /// the Java client, whose millisecond clock gives the same window. At
    /// most half of `linger`, so a short linger still batches.
    pub fn linger_slack(&self) -> Duration {
        (self.cfg.linger / 2).min(Duration::from_millis(1))
    }

    /// The readiness rule, copied out so `drain` can apply it while it
    /// holds a queue.
    fn ready_rule(&self) -> ReadyRule {
        ReadyRule {
            closed: self.closed,
            flush_below: self.flush_below,
            linger_wait: self.cfg.linger - self.linger_slack(),
        }
    }

    /// Partitions whose first batch may be drained now, and when the next
    /// lingering batch becomes ready.
    pub fn ready(&self, now: Instant) -> Ready {
        let rule = self.ready_rule();
        let mut r = Ready::default();
        for (topic, t) in &self.queues {
            for (p, q) in &t.parts {
                let Some(first) = q.front() else { continue };
                if rule.allows(first, q.len() == 1, now) {
                    r.partitions.push(TopicPartition {
                        topic: topic.clone(),
                        partition: *p,
                    });
                } else {
                    let at = rule.lingered_at(first);
                    r.next = Some(r.next.map_or(at, |n: Instant| n.min(at)));
                }
            }
        }
        r
    }

    /// Estimated size of the first batch of `tp`, if any.
    pub fn peek_size(&self, tp: &TopicPartition) -> Option<usize> {
        self.queues
            .get(&tp.topic)?
            .parts
            .get(&tp.partition)?
            .front()
            .map(|b| b.builder.estimated_size())
    }

    /// Removes and returns the first batch of `tp` if it is ready.
    pub fn drain(&mut self, tp: &TopicPartition, now: Instant) -> Option<QueuedBatch> {
        let rule = self.ready_rule();
        let t = self.queues.get_mut(&tp.topic)?;
        let q = t.parts.get_mut(&tp.partition)?;
        if !rule.allows(q.front()?, q.len() == 1, now) {
            return None;
        }
        let batch = q.pop_front()?;
        if q.is_empty() && !batch.full {
            // The partition's open batch left before it was full (linger or
            // a flush): its stint is over. The next record would start a new
            // batch there anyway; on another partition it joins, or starts,
            // a batch that has already been filling. At rates where linger
            // rather than batch.size seals batches, this is what keeps
            // records from waiting a second linger in a small left-over batch.
            t.sticky.switch_from(tp.partition);
        }
        Some(batch)
    }

    /// Removes and returns every batch created `delivery.timeout.ms` or
    /// longer ago (never sent: their records simply fail).
    pub fn expire(&mut self, now: Instant) -> Vec<(TopicPartition, QueuedBatch)> {
        let mut out = Vec::new();
        let timeout = self.cfg.delivery_timeout;
        for (topic, t) in self.queues.iter_mut() {
            for (p, q) in t.parts.iter_mut() {
                while q.front().is_some_and(|b| now >= b.created + timeout) {
                    if let Some(b) = q.pop_front() {
                        out.push((
                            TopicPartition {
                                topic: topic.clone(),
                                partition: *p,
                            },
                            b,
                        ));
                    }
                }
            }
        }
        out
    }

    /// Earliest delivery-timeout expiry among queued batches.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.queues
            .values()
            .flat_map(|t| t.parts.values())
            .filter_map(|q| q.front())
            .map(|b| b.created + self.cfg.delivery_timeout)
            .min()
    }

    /// Removes every queued batch (forced close, fatal error).
    pub fn drain_all(&mut self) -> Vec<(TopicPartition, QueuedBatch)> {
        let mut out = Vec::new();
        for (topic, t) in self.queues.iter_mut() {
            for (p, q) in t.parts.iter_mut() {
                for b in q.drain(..) {
                    out.push((
                        TopicPartition {
                            topic: topic.clone(),
                            partition: *p,
                        },
                        b,
                    ));
                }
            }
        }
        out
    }

    /// Whether no batch is queued.
    pub fn is_empty(&self) -> bool {
        self.queues
            .values()
            .all(|t| t.parts.values().all(|q| q.is_empty()))
    }

    /// Marks every batch created so far ready at once; returns the mark to
    /// wait for with [`min_incomplete`](Self::min_incomplete).
    pub fn begin_flush(&mut self) -> u64 {
        self.flush_below = self.next_id;
        self.next_id
    }

    /// Records that batch `id` finished (acknowledged or failed).
    pub fn batch_done(&mut self, id: u64) {
        self.incomplete.remove(&id);
    }

    /// The smallest id of a batch not finished (or the next id).
    pub fn min_incomplete(&self) -> u64 {
        self.incomplete.first().copied().unwrap_or(self.next_id)
    }
}

/// Appends to the last batch of `q` if it is open and has room; marks it
/// full when it refuses the record or reaches `batch_size`.
fn append_open<H, K, V>(
    q: Option<&mut VecDeque<QueuedBatch>>,
    batch_size: usize,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: H,
) -> Appended
where
    H: IntoIterator<Item = (K, Option<V>)> + Clone,
    K: AsRef<str>,
    V: AsRef<[u8]>,
{
    let Some(last) = q.and_then(|q| q.back_mut()) else {
        return Appended::NeedsNewBatch;
    };
    if last.full {
        return Appended::NeedsNewBatch;
    }
    let offset_delta = last.builder.record_count() as i32;
    if last.builder.append(timestamp, key, value, headers) {
        let full = last.builder.estimated_size() >= batch_size;
        if full {
            last.full = true;
        }
        Appended::Yes {
            completion: last.completion.clone(),
            offset_delta,
            wake: full,
        }
    } else {
        last.full = true;
        Appended::NeedsNewBatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NO_HEADERS;

    fn acc(linger_ms: u64) -> Accumulator {
        Accumulator::new(AccumulatorConfig {
            batch_size: 200,
            linger: Duration::from_millis(linger_ms),
            compression: Compression::None,
            compression_level: None,
            delivery_timeout: Duration::from_secs(10),
        })
    }

    fn tp(t: &Arc<str>, p: i32) -> TopicPartition {
        TopicPartition {
            topic: t.clone(),
            partition: p,
        }
    }

    fn put(
        a: &mut Accumulator,
        t: &Arc<str>,
        p: i32,
        v: &[u8],
        now: Instant,
    ) -> (Arc<Completion>, i32) {
        match a.try_append(t, p, 0, None, Some(v), NO_HEADERS) {
            Appended::Yes {
                completion,
                offset_delta,
                ..
            } => (completion, offset_delta),
            Appended::NeedsNewBatch => {
                let (c, d, _) = a
                    .append_new(t, p, 0, None, Some(v), NO_HEADERS, 200, now)
                    .unwrap();
                (c, d)
            }
        }
    }

    #[test]
    fn batches_seal_on_size_and_linger() {
        let t: Arc<str> = Arc::from("t");
        let now = Instant::now();
        let mut a = acc(50);
        let (c0, d0) = put(&mut a, &t, 0, &[1; 30], now);
        let (c1, d1) = put(&mut a, &t, 0, &[2; 30], now);
        assert!(Arc::ptr_eq(&c0, &c1));
        assert_eq!((d0, d1), (0, 1));
        assert!(a.ready(now).partitions.is_empty(), "lingering");
        // Ready 1 ms (the timer's rounding) before linger is up.
        let ready_at = now + Duration::from_millis(49);
        assert_eq!(a.ready(now).next, Some(ready_at));
        assert!(a
            .ready(ready_at - Duration::from_micros(1))
            .partitions
            .is_empty());
        assert_eq!(a.ready(ready_at).partitions, vec![tp(&t, 0)]);
        assert!(a.drain(&tp(&t, 0), now).is_none());
        // Fill past 200 bytes: the first batch becomes ready.
        let (c2, d2) = put(&mut a, &t, 0, &[3; 30], now);
        assert!(Arc::ptr_eq(&c0, &c2) && d2 == 2);
        let (c3, d3) = put(&mut a, &t, 0, &[4; 30], now);
        assert!(
            !Arc::ptr_eq(&c0, &c3) && d3 == 0,
            "a new batch once the first refuses"
        );
        assert_eq!(a.ready(now).partitions, vec![tp(&t, 0)]);
        let b = a.drain(&tp(&t, 0), now).unwrap();
        assert_eq!(b.builder.record_count(), 3);
        assert!(
            a.drain(&tp(&t, 0), now).is_none(),
            "the second still lingers"
        );
        assert!(a
            .drain(
                &tp(&t, 0),
                now + Duration::from_millis(49) - Duration::from_micros(1)
            )
            .is_none());
        assert!(a
            .drain(&tp(&t, 0), now + Duration::from_millis(49))
            .is_some());
        assert!(a.is_empty());
    }

    #[test]
    fn linger_slack_is_the_timer_tick_but_at_most_half_the_linger() {
        assert_eq!(acc(0).linger_slack(), Duration::ZERO);
        assert_eq!(acc(1).linger_slack(), Duration::from_micros(500));
        assert_eq!(acc(2).linger_slack(), Duration::from_millis(1));
        assert_eq!(acc(5).linger_slack(), Duration::from_millis(1));
        assert_eq!(acc(1000).linger_slack(), Duration::from_millis(1));
        // linger 0: ready at once.
        let t: Arc<str> = Arc::from("t");
        let now = Instant::now();
        let mut a = acc(0);
        put(&mut a, &t, 0, b"x", now);
        assert_eq!(a.ready(now).partitions, vec![tp(&t, 0)]);
    }

    #[test]
    fn a_sticky_batch_sent_by_linger_ends_the_stint() {
        let now = Instant::now();
        let mut a = acc(5);
        let sticky = Choice::Sticky {
            num_partitions: 6,
            version: 1,
            size: 10,
        };
        let append = |a: &mut Accumulator| {
            let (name, p, appended) = a.choose_and_append(
                "t",
                sticky,
                || vec![0, 1, 2, 3, 4, 5],
                0,
                None,
                None,
                NO_HEADERS,
            );
            if matches!(appended, Appended::NeedsNewBatch) {
                a.append_new(&name, p, 0, None, Some(b"x"), NO_HEADERS, 200, now)
                    .unwrap();
            }
            (name, p)
        };
        let (name, p) = append(&mut a);
        assert_eq!(append(&mut a).1, p, "sticks while the batch fills");
        // Far from batch.size bytes, linger sends the batch off.
        let later = now + Duration::from_millis(5);
        let b = a.drain(&tp(&name, p), later).expect("lingered");
        assert_eq!(b.builder.record_count(), 2);
        let (_, q) = append(&mut a);
        assert_ne!(q, p, "the next record goes to another partition");
        assert_eq!(append(&mut a).1, q, "and sticks there");
        // A flush that drains a partition other than the current one does
        // not move the stint.
        put(&mut a, &name, p, b"y", later);
        let mark = a.begin_flush();
        assert!(a.drain(&tp(&name, p), later).is_some());
        assert_eq!(append(&mut a).1, q);
        let _ = mark;
    }

    #[test]
    fn flush_makes_existing_batches_ready_and_tracks_completion() {
        let t: Arc<str> = Arc::from("t");
        let now = Instant::now();
        let mut a = acc(10_000);
        put(&mut a, &t, 0, b"a", now);
        put(&mut a, &t, 1, b"b", now);
        assert!(a.ready(now).partitions.is_empty());
        let mark = a.begin_flush();
        assert_eq!(a.ready(now).partitions.len(), 2);
        let b0 = a.drain(&tp(&t, 0), now).unwrap();
        let b1 = a.drain(&tp(&t, 1), now).unwrap();
        put(&mut a, &t, 0, b"later", now);
        assert!(a.min_incomplete() < mark);
        a.batch_done(b1.id);
        assert!(a.min_incomplete() < mark);
        a.batch_done(b0.id);
        assert!(
            a.min_incomplete() >= mark,
            "batches after the flush do not hold it up"
        );
    }

    #[test]
    fn expiry_removes_old_batches_only() {
        let t: Arc<str> = Arc::from("t");
        let now = Instant::now();
        let mut a = acc(0);
        put(&mut a, &t, 0, b"old", now);
        put(&mut a, &t, 1, b"new", now + Duration::from_secs(5));
        assert_eq!(a.next_expiry(), Some(now + Duration::from_secs(10)));
        let gone = a.expire(now + Duration::from_secs(11));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, tp(&t, 0));
        assert!(!a.is_empty());
    }

    #[test]
    fn sticky_partition_sticks_then_moves() {
        let now = Instant::now();
        let mut a = acc(0);
        let sticky = |size| Choice::Sticky {
            num_partitions: 6,
            version: 1,
            size,
        };
        let (_, p, _) = a.choose_and_append(
            "t",
            sticky(150),
            || vec![0, 1, 2, 3, 4, 5],
            0,
            None,
            None,
            NO_HEADERS,
        );
        let (_, p2, _) = a.choose_and_append(
            "t",
            sticky(100),
            || unreachable!("cached"),
            0,
            None,
            None,
            NO_HEADERS,
        );
        assert_eq!(p, p2);
        let (_, q, _) = a.choose_and_append(
            "t",
            sticky(100),
            || unreachable!(),
            0,
            None,
            None,
            NO_HEADERS,
        );
        assert_ne!(p, q, "switch after batch.size bytes");
        // A new metadata version without p's leader re-reads availability.
        let choice = Choice::Sticky {
            num_partitions: 6,
            version: 2,
            size: 1,
        };
        let (name, r, appended) =
            a.choose_and_append("t", choice, || vec![5], 0, None, None, NO_HEADERS);
        assert_eq!(r, 5);
        assert_eq!(&*name, "t");
        assert!(matches!(appended, Appended::NeedsNewBatch));
        a.append_new(&name, 5, 0, None, Some(b"x"), NO_HEADERS, 10, now)
            .unwrap();
        let (_, _, appended) =
            a.choose_and_append("t", Choice::Fixed(5), Vec::new, 0, None, None, NO_HEADERS);
        assert!(matches!(
            appended,
            Appended::Yes {
                offset_delta: 1,
                ..
            }
        ));
    }

    #[test]
    fn closed_accumulator_makes_everything_ready() {
        let t: Arc<str> = Arc::from("t");
        let now = Instant::now();
        let mut a = acc(10_000);
        put(&mut a, &t, 0, b"x", now);
        a.close();
        assert!(a.is_closed());
        assert!(a.drain(&tp(&t, 0), now).is_some());
    }
}
