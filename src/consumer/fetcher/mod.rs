//! The fetcher: one task that owns every assigned partition's fetch state
//! and every broker's fetch session, and keeps one Fetch in flight per
//! broker that leads fetchable partitions.
//!
//! ```text
//!  Consumer handle ──Command──► fetcher task ──spawn──► source::run (one per broker, one at a time)
//!        ▲                        │  ▲                        │ decode, CRC, aborted filter
//!        │                        │  └────── FetchResult ─────┘
//!        └────PartitionEvent──────┘  (chunks of zero-copy batches, positions, errors)
//! ```
//!
//! The fetcher never waits for the application: it stops issuing requests
//! while the fetch buffer is full (see [`buffer`]) and resumes when chunks
//! are consumed or dropped. Offset lookups (committed offsets,
//! `auto.offset.reset`) and metadata refreshes run as tasks too, so a slow
//! coordinator never stalls fetching from healthy brokers.

pub(crate) mod aborted;
pub(crate) mod buffer;
pub(crate) mod session;
pub(crate) mod source;

use super::config::{ConsumerConfig, OffsetReset};
use super::offsets::{self, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use super::position::{PartState, Phase, StartAt};
use super::TopicPartition;
use crate::cluster::Cluster;
use crate::error::{Error, ErrorClass, ErrorCode, ErrorKind};
use crate::net::backoff::Backoff;
use crate::net::NodeId;
use crate::protocol::messages::Uuid;
use crate::record::{DecodeLimits, DecodeOptions};
use buffer::FetchBuffer;
use session::{FetchSession, PartitionParams};
use source::{Chunk, FetchJob, FetchResult, PartResult};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Instructions from the consumer handle.
#[derive(Debug)]
pub(crate) enum Command {
    /// The complete new assignment. `None`: a retained partition, keep its
    /// state.
    Assign(Vec<(TopicPartition, u64, Option<StartAt>)>),
    Seek(TopicPartition, u64, StartAt),
    Pause(Vec<TopicPartition>),
    Resume(Vec<TopicPartition>),
}

/// What the fetcher tells the handle about one partition.
#[derive(Debug)]
pub(crate) struct PartitionEvent {
    pub tp: TopicPartition,
    pub gen: u64,
    pub kind: EventKind,
}

#[derive(Debug)]
pub(crate) enum EventKind {
    /// The position is now `offset` (after a lookup or a reset).
    Position {
        offset: i64,
        leader_epoch: Option<i32>,
    },
    /// Data, in order.
    Chunk(Chunk),
    /// An error the application must see (the partition is stopped until
    /// a seek).
    Error(Error),
}

/// What a finished background task brings back.
enum TaskDone {
    Fetch {
        job: Box<FetchJob>,
        result: FetchResult,
    },
    Lookup(Vec<Lookup>),
    Metadata,
}

struct Source {
    session: FetchSession,
    in_flight: bool,
    /// Highest Fetch version of this broker, once known to be below 13.
    names_only: bool,
    backoff: Backoff,
    not_before: Option<Instant>,
}

/// Handle to a running fetcher task.
pub(crate) struct FetcherHandle {
    pub commands: mpsc::UnboundedSender<Command>,
    pub events: mpsc::UnboundedReceiver<PartitionEvent>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the fetcher task.
pub(crate) fn spawn(cfg: Arc<ConsumerConfig>, cluster: Arc<Cluster>) -> FetcherHandle {
    let (ctx, crx) = mpsc::unbounded_channel();
    let (etx, erx) = mpsc::unbounded_channel();
    let buffer = FetchBuffer::new(cfg.fetch_buffer_max_bytes);
    let f = Fetcher {
        decode: DecodeOptions {
            check_crcs: cfg.check_crcs,
            limits: DecodeLimits {
                max_batch_size: (cfg.fetch_max_bytes.max(cfg.max_partition_fetch_bytes) as usize)
                    .max(DecodeLimits::default().max_batch_size),
                max_decompressed_size: cfg.fetch_max_decompressed_bytes,
                ..DecodeLimits::default()
            },
        },
        cfg,
        cluster,
        parts: BTreeMap::new(),
        sources: HashMap::new(),
        events: etx,
        buffer,
        reserved: 0,
        tasks: JoinSet::new(),
        metadata_in_flight: false,
        metadata_not_before: None,
    };
    let task = tokio::spawn(f.run(crx));
    FetcherHandle {
        commands: ctx,
        events: erx,
        task,
    }
}

struct Fetcher {
    cfg: Arc<ConsumerConfig>,
    cluster: Arc<Cluster>,
    decode: DecodeOptions,
    parts: BTreeMap<TopicPartition, PartState>,
    sources: HashMap<NodeId, Source>,
    events: mpsc::UnboundedSender<PartitionEvent>,
    buffer: Arc<FetchBuffer>,
    /// Sum of `max_bytes` of requests in flight.
    reserved: usize,
    tasks: JoinSet<TaskDone>,
    metadata_in_flight: bool,
    metadata_not_before: Option<Instant>,
}

impl Fetcher {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            let wake = self.plan();
            let buffer = self.buffer.clone();
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(c) => self.on_command(c),
                    None => return,
                },
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => match done {
                    Ok(d) => self.on_done(d),
                    Err(e) if e.is_panic() => {
                        tracing::error!("a consumer fetch task panicked: {e}");
                    }
                    Err(_) => {}
                },
                _ = buffer.freed.notified() => {}
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            if self.events.is_closed() {
                return;
            }
        }
    }

    fn emit(&self, tp: &TopicPartition, gen: u64, kind: EventKind) {
        let _ = self.events.send(PartitionEvent {
            tp: tp.clone(),
            gen,
            kind,
        });
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Assign(list) => {
                let mut next = BTreeMap::new();
                for (tp, gen, start) in list {
                    let st = match (self.parts.remove(&tp), start) {
                        (Some(old), None) => old,
                        (Some(mut old), Some(s)) => {
                            old.restart(gen, s);
                            old
                        }
                        (None, s) => PartState::new(gen, s.unwrap_or(StartAt::Committed)),
                    };
                    next.insert(tp, st);
                }
                self.parts = next;
            }
            Command::Seek(tp, gen, start) => {
                if let Some(p) = self.parts.get_mut(&tp) {
                    p.restart(gen, start);
                }
            }
            Command::Pause(tps) => {
                for tp in tps {
                    if let Some(p) = self.parts.get_mut(&tp) {
                        p.paused = true;
                    }
                }
            }
            Command::Resume(tps) => {
                for tp in tps {
                    if let Some(p) = self.parts.get_mut(&tp) {
                        p.paused = false;
                    }
                }
            }
        }
    }

    /// Starts whatever can start now; returns when to look again.
    fn plan(&mut self) -> Instant {
        let now = Instant::now();
        let mut wake = now + Duration::from_secs(1);
        self.start_lookups(now, &mut wake);
        self.start_fetches(now, &mut wake);
        wake
    }

    fn start_lookups(&mut self, now: Instant, wake: &mut Instant) {
        let mut items = Vec::new();
        for (tp, p) in self.parts.iter_mut() {
            if p.needs_lookup(now) {
                let want = match p.phase {
                    Phase::NeedsCommitted => None,
                    Phase::NeedsReset(r) => Some(r),
                    _ => continue,
                };
                p.phase = Phase::Resolving;
                items.push((tp.clone(), p.gen, want));
            } else if let (Some(t), true) = (
                p.retry_at,
                matches!(p.phase, Phase::NeedsCommitted | Phase::NeedsReset(_)),
            ) {
                *wake = (*wake).min(t);
            }
        }
        if items.is_empty() {
            return;
        }
        let cluster = self.cluster.clone();
        let cfg = self.cfg.clone();
        self.tasks
            .spawn(async move { TaskDone::Lookup(resolve(&cluster, &cfg, items).await) });
    }

    fn start_fetches(&mut self, now: Instant, wake: &mut Instant) {
        let snap = self.cluster.snapshot();
        let mut by_node: BTreeMap<NodeId, BTreeMap<TopicPartition, PartitionParams>> =
            BTreeMap::new();
        let mut missing_leader = false;
        for (tp, p) in &self.parts {
            if !p.fetchable(now) {
                if let (Some(t), Phase::Fetching) = (p.retry_at, p.phase) {
                    *wake = (*wake).min(t);
                }
                continue;
            }
            let topic = snap.topic(tp.topic());
            let info = topic.and_then(|t| t.partition(tp.partition()));
            let (Some(topic), Some(info), Some(leader)) =
                (topic, info, info.and_then(|i| i.leader))
            else {
                missing_leader = true;
                continue;
            };
            by_node.entry(leader).or_default().insert(
                tp.clone(),
                PartitionParams {
                    topic_id: topic.id,
                    fetch_offset: p.fetch_offset,
                    current_leader_epoch: info.leader_epoch,
                    last_fetched_epoch: p.last_epoch.unwrap_or(-1),
                    max_bytes: self.cfg.max_partition_fetch_bytes,
                },
            );
        }
        if missing_leader {
            self.refresh_metadata(now, wake);
        }
        // The buffer is shared equally among the brokers with partitions to
        // fetch, counting those whose fetch is already in flight: sized by
        // the fetchable ones alone, the sources long-polling for caught-up
        // partitions could reserve the whole buffer between them, and a
        // lagging partition's broker (last in this order) never got a turn.
        let in_flight_elsewhere = self
            .sources
            .iter()
            .filter(|(node, src)| src.in_flight && !by_node.contains_key(*node))
            .count();
        let nodes = (by_node.len() + in_flight_elsewhere).max(1);
        for (node, mut wanted) in by_node {
            let src = self.sources.entry(node).or_insert_with(|| Source {
                session: FetchSession::new(),
                in_flight: false,
                names_only: false,
                backoff: Backoff::new(
                    self.cfg.client.retry_backoff,
                    self.cfg.client.retry_backoff_max,
                ),
                not_before: None,
            });
            if src.in_flight {
                continue;
            }
            if let Some(t) = src.not_before {
                if t > now {
                    *wake = (*wake).min(t);
                    continue;
                }
            }
            let limit = self.buffer.limit();
            let used = self.buffer.used() + self.reserved;
            if used >= limit {
                // Woken by `freed` when the application consumes.
                return;
            }
            let share = (limit / nodes).max(1);
            let max_bytes = (self.cfg.fetch_max_bytes as usize)
                .min(limit - used)
                .min(share)
                .max(1);
            let max_bytes = i32::try_from(max_bytes).unwrap_or(i32::MAX);
            for p in wanted.values_mut() {
                p.max_bytes = p.max_bytes.min(max_bytes);
            }
            let by_id = !src.names_only && wanted.values().all(|p| !p.topic_id.is_zero());
            let plan = src.session.build(&wanted, by_id);
            src.in_flight = true;
            let mut names: HashMap<Uuid, Arc<str>> = HashMap::new();
            let mut fetch_offsets = HashMap::new();
            for (tp, p) in &wanted {
                names.insert(p.topic_id, tp.topic_arc());
                fetch_offsets.insert(tp.clone(), p.fetch_offset);
                if let Some(st) = self.parts.get_mut(tp) {
                    st.in_flight = true;
                }
            }
            self.reserved += max_bytes as usize;
            let job = Box::new(FetchJob {
                node,
                plan,
                by_id,
                fetch_offsets,
                names,
                max_bytes,
                min_bytes: self.cfg.fetch_min_bytes,
                max_wait: self.cfg.fetch_max_wait,
                isolation: self.cfg.isolation_level,
                rack: self.cfg.client_rack.clone(),
                decode: self.decode,
            });
            let cluster = self.cluster.clone();
            let buffer = self.buffer.clone();
            self.tasks.spawn(async move {
                let result = source::run(cluster, buffer, &job).await;
                TaskDone::Fetch { job, result }
            });
        }
    }

    fn refresh_metadata(&mut self, now: Instant, wake: &mut Instant) {
        if self.metadata_in_flight {
            return;
        }
        if let Some(t) = self.metadata_not_before {
            if t > now {
                *wake = (*wake).min(t);
                return;
            }
        }
        self.metadata_in_flight = true;
        self.metadata_not_before = Some(now + self.cfg.client.retry_backoff);
        let mut topics: Vec<String> = self.parts.keys().map(|tp| tp.topic().to_string()).collect();
        topics.dedup();
        let cluster = self.cluster.clone();
        self.tasks.spawn(async move {
            cluster.track_topics(topics.iter().map(String::as_str));
            if let Err(e) = cluster.refresh(Some(&topics)).await {
                tracing::debug!(error = %e, "consumer metadata refresh failed");
            }
            TaskDone::Metadata
        });
    }

    fn on_done(&mut self, d: TaskDone) {
        match d {
            TaskDone::Metadata => self.metadata_in_flight = false,
            TaskDone::Lookup(results) => self.on_lookup(results),
            TaskDone::Fetch { job, result } => self.on_fetch(job, result),
        }
    }

    fn on_lookup(&mut self, results: Vec<Lookup>) {
        let now = Instant::now();
        for Lookup {
            tp,
            gen,
            retry,
            result: r,
        } in results
        {
            let Some(p) = self.parts.get_mut(&tp) else {
                continue;
            };
            if p.gen != gen || p.phase != Phase::Resolving {
                continue;
            }
            match r {
                Ok(Some((offset, epoch))) => {
                    p.phase = Phase::Fetching;
                    p.fetch_offset = offset;
                    p.last_epoch = epoch;
                    p.retry_at = None;
                    self.emit(
                        &tp,
                        gen,
                        EventKind::Position {
                            offset,
                            leader_epoch: epoch,
                        },
                    );
                }
                Ok(None) => {
                    p.phase = Phase::Stopped;
                    let e = Error::new(
                        ErrorKind::NotFound,
                        "no committed offset and auto.offset.reset is none; seek to choose a position",
                    )
                    .with_partition(tp.topic(), tp.partition());
                    self.emit(&tp, gen, EventKind::Error(e));
                }
                Err(e) if e.is_retriable() => {
                    tracing::debug!(partition = %tp, error = %e, "offset lookup failed, retrying");
                    p.phase = retry;
                    p.retry_at = Some(now + self.cfg.client.retry_backoff);
                }
                Err(e) => {
                    p.phase = Phase::Stopped;
                    self.emit(&tp, gen, EventKind::Error(e));
                }
            }
        }
    }

    fn on_fetch(&mut self, job: Box<FetchJob>, result: FetchResult) {
        let now = Instant::now();
        self.reserved = self.reserved.saturating_sub(job.max_bytes.max(0) as usize);
        for tp in job.fetch_offsets.keys() {
            if let Some(p) = self.parts.get_mut(tp) {
                p.in_flight = false;
            }
        }
        let Some(src) = self.sources.get_mut(&job.node) else {
            return;
        };
        src.in_flight = false;
        let partitions = match result {
            FetchResult::NeedsNames { version } => {
                tracing::debug!(
                    node = job.node,
                    version,
                    "broker fetches by topic name only"
                );
                src.names_only = true;
                return;
            }
            FetchResult::Failed(e) => {
                let code = e.code();
                let session_error = matches!(
                    code,
                    Some(
                        ErrorCode::FETCH_SESSION_ID_NOT_FOUND
                            | ErrorCode::INVALID_FETCH_SESSION_EPOCH
                    )
                );
                src.session
                    .on_failure(code == Some(ErrorCode::FETCH_SESSION_ID_NOT_FOUND));
                if !session_error {
                    let wait = src.backoff.on_failure();
                    src.not_before = Some(now + wait);
                    tracing::debug!(node = job.node, error = %e, ?wait, "fetch failed");
                    self.cluster.request_update();
                    let mut w = now;
                    self.refresh_metadata(now, &mut w);
                }
                return;
            }
            FetchResult::Ok {
                session_id,
                partitions,
            } => {
                src.session.on_response(&job.plan, session_id);
                src.backoff.on_success();
                src.not_before = None;
                partitions
            }
        };
        let mut refresh = false;
        for out in partitions {
            let tp = out.tp;
            let Some(p) = self.parts.get_mut(&tp) else {
                continue;
            };
            // Data for an older decision (seek, reassignment) or another
            // offset than the one fetched from is dropped here.
            if p.phase != Phase::Fetching || job.fetch_offsets.get(&tp) != Some(&p.fetch_offset) {
                continue;
            }
            let gen = p.gen;
            match out.result {
                PartResult::Data { chunk, last_epoch } => {
                    let progressed = chunk.next_offset > p.fetch_offset || chunk.error.is_some();
                    if !progressed {
                        continue;
                    }
                    p.fetch_offset = chunk.next_offset;
                    if last_epoch.is_some() {
                        p.last_epoch = last_epoch;
                    }
                    if chunk.error.is_some() {
                        p.phase = Phase::Stopped;
                    }
                    self.emit(&tp, gen, EventKind::Chunk(chunk));
                }
                PartResult::Diverging { epoch, end_offset } => {
                    let msg = format!(
                        "log truncated: epoch {epoch} ends at offset {end_offset}, before the fetch offset {}",
                        p.fetch_offset
                    );
                    if self.cfg.auto_offset_reset == OffsetReset::None {
                        p.phase = Phase::Stopped;
                        let kind = ErrorKind::LogTruncation {
                            offset: end_offset,
                            leader_epoch: epoch,
                        };
                        let msg = format!("{msg}; auto.offset.reset is none: seek to continue");
                        let e = Error::new(kind, msg)
                            .with_api("Fetch")
                            .with_partition(tp.topic(), tp.partition())
                            .with_class(ErrorClass::Permanent);
                        self.emit(&tp, gen, EventKind::Error(e));
                    } else {
                        tracing::warn!(partition = %tp, "{msg}; resuming from {end_offset}");
                        p.fetch_offset = end_offset.min(p.fetch_offset);
                        p.last_epoch = Some(epoch);
                        let offset = p.fetch_offset;
                        self.emit(
                            &tp,
                            gen,
                            EventKind::Position {
                                offset,
                                leader_epoch: Some(epoch),
                            },
                        );
                    }
                }
                PartResult::Error(code) => match code {
                    ErrorCode::OFFSET_OUT_OF_RANGE => {
                        if self.cfg.auto_offset_reset == OffsetReset::None {
                            p.phase = Phase::Stopped;
                            let e = Error::broker(
                                code,
                                format!("fetch offset {} is out of range and auto.offset.reset is none; seek to continue", p.fetch_offset),
                            )
                            .with_api("Fetch")
                            .with_partition(tp.topic(), tp.partition())
                            .with_class(ErrorClass::Permanent);
                            self.emit(&tp, gen, EventKind::Error(e));
                        } else {
                            tracing::info!(partition = %tp, offset = p.fetch_offset, "fetch offset out of range, resetting");
                            p.phase = Phase::NeedsReset(self.cfg.auto_offset_reset);
                        }
                    }
                    ErrorCode::TOPIC_AUTHORIZATION_FAILED
                    | ErrorCode::CLUSTER_AUTHORIZATION_FAILED
                    | ErrorCode::CORRUPT_MESSAGE
                    | ErrorCode::UNSUPPORTED_COMPRESSION_TYPE
                    | ErrorCode::UNSUPPORTED_VERSION => {
                        p.phase = Phase::Stopped;
                        let e = Error::broker(
                            code,
                            "fetch refused; seek (after fixing the cause) to continue",
                        )
                        .with_api("Fetch")
                        .with_partition(tp.topic(), tp.partition());
                        self.emit(&tp, gen, EventKind::Error(e));
                    }
                    code => {
                        tracing::debug!(partition = %tp, error = %code, "fetch error, retrying after a backoff");
                        if code.invalidates_metadata() || !code.is_retriable() {
                            refresh = true;
                        }
                        p.retry_at = Some(now + self.cfg.client.retry_backoff);
                    }
                },
            }
        }
        if refresh {
            self.cluster.request_update();
            self.metadata_not_before = None;
            let mut w = now;
            self.refresh_metadata(now, &mut w);
        }
    }
}

/// The result of one partition's offset lookup.
struct Lookup {
    tp: TopicPartition,
    gen: u64,
    /// The phase to go back to if the lookup failed retriably.
    retry: Phase,
    /// `Ok(None)`: no committed offset and the reset policy is `none`.
    result: Result<Option<(i64, Option<i32>)>, Error>,
}

/// Resolves starting offsets: committed offsets first (when asked and a
/// group is configured), then `auto.offset.reset` lookups.
async fn resolve(
    cluster: &Cluster,
    cfg: &ConsumerConfig,
    items: Vec<(TopicPartition, u64, Option<OffsetReset>)>,
) -> Vec<Lookup> {
    let deadline = Instant::now() + cfg.client.default_api_timeout;
    let mut out = Vec::new();
    // (partition, gen, how to reset, phase to retry in)
    let mut resets: Vec<(TopicPartition, u64, OffsetReset, Phase)> = Vec::new();
    let mut committed_wanted = Vec::new();
    for (tp, gen, want) in items {
        match want {
            Some(how) => resets.push((tp, gen, how, Phase::NeedsReset(how))),
            None => committed_wanted.push((tp, gen)),
        }
    }
    if !committed_wanted.is_empty() {
        match &cfg.group_id {
            None => resets.extend(
                committed_wanted
                    .into_iter()
                    .map(|(tp, gen)| (tp, gen, cfg.auto_offset_reset, Phase::NeedsCommitted)),
            ),
            Some(group) => {
                let tps: Vec<TopicPartition> =
                    committed_wanted.iter().map(|(tp, _)| tp.clone()).collect();
                let require_stable =
                    cfg.isolation_level == super::config::IsolationLevel::ReadCommitted;
                match offsets::fetch_committed(cluster, group, &tps, require_stable, deadline).await
                {
                    Ok(found) => {
                        for (tp, gen) in committed_wanted {
                            match found.get(&tp).cloned().flatten() {
                                Some(om) => out.push(Lookup {
                                    tp,
                                    gen,
                                    retry: Phase::NeedsCommitted,
                                    result: Ok(Some((om.offset, om.leader_epoch))),
                                }),
                                None => resets.push((
                                    tp,
                                    gen,
                                    cfg.auto_offset_reset,
                                    Phase::NeedsCommitted,
                                )),
                            }
                        }
                    }
                    Err(e) => out.extend(committed_wanted.into_iter().map(|(tp, gen)| Lookup {
                        tp,
                        gen,
                        retry: Phase::NeedsCommitted,
                        result: Err(e.clone()),
                    })),
                }
            }
        }
    }
    let mut query = Vec::new();
    let mut meta = HashMap::new();
    for (tp, gen, how, retry) in resets {
        let ts = match how {
            OffsetReset::Earliest => EARLIEST_TIMESTAMP,
            OffsetReset::Latest => LATEST_TIMESTAMP,
            OffsetReset::None => {
                out.push(Lookup {
                    tp,
                    gen,
                    retry,
                    result: Ok(None),
                });
                continue;
            }
        };
        meta.insert(tp.clone(), (gen, retry));
        query.push((tp, ts));
    }
    if !query.is_empty() {
        for (tp, r) in offsets::list_offsets(cluster, cfg.isolation_level, &query, deadline).await {
            let Some(&(gen, retry)) = meta.get(&tp) else {
                continue;
            };
            out.push(Lookup {
                tp,
                gen,
                retry,
                result: r.map(|lo| Some((lo.offset, lo.leader_epoch))),
            });
        }
    }
    out
}
