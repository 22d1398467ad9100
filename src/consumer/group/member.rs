//! The group member task: IO around one membership state machine.
//!
//! [`GroupMember::start`] spawns a task that owns the coordinator
//! connection and a [`ClassicMember`] or [`ConsumerMember`], and returns a
//! [`GroupHandle`] plus a channel of [`GroupEvent`]s.
//!
//! - The task heartbeats on its own timer; the application polling or not
//!   only matters through `max.poll.interval.ms` ([`GroupHandle::poll_tick`]).
//! - At most one membership request is in flight. JoinGroup, SyncGroup,
//!   heartbeats and LeaveGroup go over the pool's `Group` connection to the
//!   coordinator. Offset commits and fetches from the handle use the
//!   `Control` connection, so a commit never queues behind a JoinGroup
//!   that waits for a rebalance. Give each member its own [`Cluster`]
//!   (as each consumer has): two members sharing one `Group` connection
//!   would have their JoinGroups queued one behind the other.
//! - `Revoked` and `Lost` events carry an [`Ack`]. The member does not
//!   rejoin (nor, with KIP-848, report the partitions released) until the
//!   consumer acknowledged or dropped the `Ack`: that is the window in
//!   which to commit the offsets of revoked partitions, as in Java's
//!   `onPartitionsRevoked`. Heartbeats go on meanwhile.
//! - Dropping every handle without [`GroupHandle::leave`] stops the task
//!   silently, like a crashed process: the broker removes the member after
//!   the session timeout.
//! - Every `metadata.max.age.ms` the task refreshes topic metadata when it
//!   has something to watch, as the Java consumer does: a pattern
//!   subscription ([`GroupHandle::update_pattern`]) is matched against all
//!   topic names (internal topics excluded) and the subscription follows
//!   the matches; a classic leader compares the partition counts it
//!   assigned with and rejoins when they changed. (With KIP-848 the broker
//!   notices partition changes itself.)

use super::assignor::TopicPartition;
use super::classic::{self, ClassicMember, MemberEvent};
use super::consumer_protocol::{self, ConsumerMember};
use super::{Generation, GroupConfig, GroupProtocol};
use crate::cluster::{Cluster, CoordinatorType, MetadataSnapshot};
use crate::error::{Error, ErrorCode, ErrorKind, Result};
use crate::net::{BrokerConnection, ConnKind};
use crate::protocol::messages::leave_group::LeaveGroupRequest;
use crate::protocol::messages::offset_commit::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use crate::protocol::messages::offset_fetch::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use crate::protocol::messages::{Request, Uuid};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// A rebalance event for the consumer.
#[derive(Debug)]
#[non_exhaustive]
pub enum GroupEvent {
    /// Partitions added to this member's assignment (incremental: the full
    /// assignment is [`GroupHandle::assignment`]). Start fetching them from
    /// their committed offsets.
    Assigned(Vec<TopicPartition>),
    /// Partitions taken away in an orderly rebalance. Stop fetching them,
    /// commit what was processed, then acknowledge.
    Revoked(Vec<TopicPartition>, Ack),
    /// Partitions lost with the membership (session timeout, fencing, poll
    /// timeout). Others may own them already; commits for them fail. Stop
    /// fetching them, then acknowledge.
    Lost(Vec<TopicPartition>, Ack),
    /// The member stopped for good (fenced static member, authorization,
    /// unsupported assignor, ...). Also returned by `poll_tick`.
    Failed(Error),
}

/// The consumer's acknowledgement of a `Revoked` or `Lost` event. Dropping
/// it acknowledges too.
#[derive(Debug)]
pub struct Ack(Option<oneshot::Sender<()>>, Option<Generation>);

impl Ack {
    /// Lets the member go on (rejoin, report the partitions released).
    pub fn ack(mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }

    /// An `Ack` nobody waits for.
    pub fn detached() -> Ack {
        Ack(None, None)
    }

    /// The generation the partitions were owned in when the event was
    /// emitted: commits made before acknowledging must carry it (the member
    /// may already have left its stable state by the time they are sent).
    pub fn generation(&self) -> Option<&Generation> {
        self.1.as_ref()
    }
}

/// One offset to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    /// The next offset to consume (last processed + 1).
    pub offset: i64,
    pub metadata: Option<String>,
    /// The leader epoch of the last consumed record, if known.
    pub leader_epoch: Option<i32>,
}

/// A committed offset as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub metadata: Option<String>,
    pub leader_epoch: Option<i32>,
}

/// What the task publishes for the handle.
#[derive(Debug, Default)]
struct Shared {
    generation: Option<Generation>,
    /// The latest stable generation, kept while rebalancing.
    last_generation: Option<Generation>,
    assignment: Vec<TopicPartition>,
    failure: Option<Error>,
    finished: bool,
    /// The topics subscribed to now (for a pattern: the current matches).
    topics: Vec<String>,
}

#[derive(Debug)]
enum Command {
    PollTick(Instant),
    UpdateSubscription(Vec<String>),
    UpdatePattern(regex::Regex),
    Leave(oneshot::Sender<()>),
}

/// Starts group members.
#[derive(Debug)]
pub struct GroupMember;

impl GroupMember {
    /// Validates `cfg` and starts a member task for `topics` on the
    /// current Tokio runtime. The task runs until [`GroupHandle::leave`],
    /// a fatal error, or every handle is dropped.
    pub fn start(
        cluster: Arc<Cluster>,
        cfg: GroupConfig,
        topics: Vec<String>,
    ) -> Result<(GroupHandle, mpsc::Receiver<GroupEvent>)> {
        let now = Instant::now();
        let c = cluster.config();
        let backoff = (c.retry_backoff, c.retry_backoff_max);
        let machine = match cfg.group_protocol {
            GroupProtocol::Classic => {
                Machine::Classic(ClassicMember::new(&cfg, topics.clone(), backoff, now)?)
            }
            GroupProtocol::Consumer => {
                Machine::Consumer(ConsumerMember::new(&cfg, topics.clone(), backoff, now)?)
            }
        };
        cluster.track_topics(topics.iter().map(String::as_str));
        let shared = Arc::new(Mutex::new(Shared {
            topics: topics.clone(),
            ..Shared::default()
        }));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::channel(1024);
        let task = MemberTask {
            cluster: cluster.clone(),
            cfg: cfg.clone(),
            machine,
            conn: None,
            shared: shared.clone(),
            events: ev_tx,
            commands: cmd_rx,
            leave_waiters: Vec::new(),
            pattern: None,
            topics,
            watch_at: now,
        };
        tokio::spawn(task.run());
        let handle = GroupHandle {
            inner: Arc::new(HandleInner {
                cluster,
                cfg,
                shared,
                commands: cmd_tx,
            }),
        };
        Ok((handle, ev_rx))
    }
}

/// The consumer's side of a group member. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GroupHandle {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    cluster: Arc<Cluster>,
    cfg: GroupConfig,
    shared: Arc<Mutex<Shared>>,
    commands: mpsc::UnboundedSender<Command>,
}

impl GroupHandle {
    pub fn group_id(&self) -> &str {
        &self.inner.cfg.group_id
    }

    /// The member's current generation (classic) or member epoch (KIP-848),
    /// while it is in a stable one.
    pub fn generation(&self) -> Option<Generation> {
        self.shared().generation.clone()
    }

    /// The latest stable generation this member was in, kept while it
    /// rebalances: what commits for partitions being revoked (before the
    /// ack, so before the member rejoins) must carry.
    pub fn last_generation(&self) -> Option<Generation> {
        self.shared().last_generation.clone()
    }

    /// The partitions this member holds now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.shared().assignment.clone()
    }

    /// Call on every application poll. Restarts the `max.poll.interval.ms`
    /// clock (and rejoins after a poll timeout). Fails once the member has
    /// failed fatally.
    pub fn poll_tick(&self) -> Result<()> {
        if let Some(e) = self.shared().failure.clone() {
            return Err(e);
        }
        let _ = self.inner.commands.send(Command::PollTick(Instant::now()));
        Ok(())
    }

    /// Changes the subscribed topics (a rebalance follows). Ends a
    /// pattern subscription.
    pub fn update_subscription(&self, topics: Vec<String>) {
        self.inner
            .cluster
            .track_topics(topics.iter().map(String::as_str));
        let _ = self
            .inner
            .commands
            .send(Command::UpdateSubscription(topics));
    }

    /// Subscribes to every topic whose whole name matches `pattern` (anchor
    /// it yourself: it is used as given), re-evaluated on every metadata
    /// refresh (`metadata.max.age.ms`); a change of the matching set
    /// rebalances as [`update_subscription`](Self::update_subscription) does.
    pub fn update_pattern(&self, pattern: regex::Regex) {
        let _ = self.inner.commands.send(Command::UpdatePattern(pattern));
    }

    /// The topics subscribed to now (for a pattern, the current matches).
    pub fn topics(&self) -> Vec<String> {
        self.shared().topics.clone()
    }

    /// Leaves the group and ends the task. Dynamic members send LeaveGroup
    /// (KIP-848: epoch -1); static members only stop (KIP-848: epoch -2),
    /// keeping their partitions reserved for the session timeout. Commit
    /// before calling this. Waits at most `request.timeout.ms` for the
    /// broker.
    pub async fn leave(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.inner.commands.send(Command::Leave(tx)).is_err() {
            return Ok(()); // already stopped
        }
        let wait = self.inner.cluster.config().request_timeout + Duration::from_secs(1);
        match tokio::time::timeout(wait, rx).await {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::timeout(
                "leaving the group took longer than request.timeout.ms",
            )),
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.inner.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits offsets as this group member (OffsetCommit with the current
    /// generation and member id, or member epoch with KIP-848).
    ///
    /// Fails with REBALANCE_IN_PROGRESS / ILLEGAL_GENERATION /
    /// UNKNOWN_MEMBER_ID / FENCED_MEMBER_EPOCH / STALE_MEMBER_EPOCH when the
    /// group rebalanced: the partitions may have moved, and those records
    /// may be processed again by their new owner.
    pub async fn commit_offsets(&self, offsets: &[OffsetToCommit]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.inner.cluster.config().default_api_timeout;
        let mut backoff = crate::net::backoff::Backoff::new(
            self.inner.cluster.config().retry_backoff,
            self.inner.cluster.config().retry_backoff_max,
        );
        loop {
            let Some(generation) = self.generation() else {
                return Err(rebalanced(
                    "OffsetCommit",
                    None,
                    "the member is not in a stable generation (rebalancing)",
                ));
            };
            match self.commit_once(offsets, &generation, deadline).await {
                Ok(()) => return Ok(()),
                Err(e) if retry_commit(&e) && Instant::now() < deadline => {
                    if e.code().is_some_and(|c| c.invalidates_coordinator()) {
                        self.inner
                            .cluster
                            .invalidate_coordinator(CoordinatorType::Group, self.group_id());
                    }
                    if e.code() == Some(ErrorCode::STALE_MEMBER_EPOCH)
                        && self
                            .generation()
                            .is_some_and(|g| g.generation_id != generation.generation_id)
                    {
                        continue; // a newer epoch arrived: retry with it at once
                    }
                    tokio::time::sleep(backoff.on_failure()).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn commit_once(
        &self,
        offsets: &[OffsetToCommit],
        g: &Generation,
        deadline: Instant,
    ) -> Result<()> {
        let (_, conn) = self
            .inner
            .cluster
            .coordinator(CoordinatorType::Group, self.group_id(), deadline)
            .await?;
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for o in offsets {
            topics
                .entry(o.topic.as_str())
                .or_default()
                .push(OffsetCommitRequestPartition {
                    partition_index: o.partition,
                    committed_offset: o.offset,
                    committed_leader_epoch: o.leader_epoch.unwrap_or(-1),
                    committed_metadata: o.metadata.clone(),
                    ..Default::default()
                });
        }
        let req = OffsetCommitRequest {
            group_id: self.group_id().to_string(),
            generation_id_or_member_epoch: g.generation_id,
            member_id: g.member_id.clone(),
            group_instance_id: g.group_instance_id.clone(),
            retention_time_ms: -1,
            topics: topics
                .into_iter()
                .map(|(t, partitions)| OffsetCommitRequestTopic {
                    name: t.to_string(),
                    partitions,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        // v10 names topics by id only; v9 has everything else we need.
        let version = conn.version_of::<OffsetCommitRequest>()?.min(9);
        let resp = conn
            .send_at(&req, version, self.inner.cluster.config().request_timeout)
            .await?;
        let mut first: Option<Error> = None;
        for t in resp.topics {
            for p in t.partitions {
                let code = ErrorCode(p.error_code);
                if !code.is_ok() && first.is_none() {
                    first = Some(match code {
                        ErrorCode::REBALANCE_IN_PROGRESS
                        | ErrorCode::ILLEGAL_GENERATION
                        | ErrorCode::UNKNOWN_MEMBER_ID
                        | ErrorCode::FENCED_MEMBER_EPOCH
                        | ErrorCode::STALE_MEMBER_EPOCH
                        | ErrorCode::FENCED_INSTANCE_ID => {
                            rebalanced("OffsetCommit", Some(code), "")
                                .with_partition(t.name.clone(), p.partition_index)
                        }
                        _ => Error::broker(code, "offset commit failed")
                            .with_api("OffsetCommit")
                            .with_partition(t.name.clone(), p.partition_index),
                    });
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The group's committed offsets for `partitions` (`None`: nothing
    /// committed). Waits out unstable offsets of pending transactions
    /// (`require_stable`, KIP-447).
    pub async fn fetch_committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<CommittedOffset>)>> {
        let deadline = Instant::now() + self.inner.cluster.config().default_api_timeout;
        let mut backoff = crate::net::backoff::Backoff::new(
            self.inner.cluster.config().retry_backoff,
            self.inner.cluster.config().retry_backoff_max,
        );
        loop {
            match self.fetch_once(partitions, deadline).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    if e.code().is_some_and(|c| c.invalidates_coordinator()) {
                        self.inner
                            .cluster
                            .invalidate_coordinator(CoordinatorType::Group, self.group_id());
                    }
                    tokio::time::sleep(backoff.on_failure()).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn fetch_once(
        &self,
        partitions: &[TopicPartition],
        deadline: Instant,
    ) -> Result<Vec<(TopicPartition, Option<CommittedOffset>)>> {
        let (_, conn) = self
            .inner
            .cluster
            .coordinator(CoordinatorType::Group, self.group_id(), deadline)
            .await?;
        let version = conn.version_of::<OffsetFetchRequest>()?.min(9);
        if version < 8 {
            return Err(Error::new(
                ErrorKind::UnsupportedVersion,
                format!("the group coordinator speaks OffsetFetch v{version}; kafkawire's group member needs v8+ (Kafka 3.0+)"),
            ));
        }
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            by_topic.entry(t.as_str()).or_default().push(*p);
        }
        // KIP-848 members identify themselves so the broker can check the epoch.
        let (member_id, member_epoch) = match (self.inner.cfg.group_protocol, self.generation()) {
            (GroupProtocol::Consumer, Some(g)) => (Some(g.member_id), g.generation_id),
            _ => (None, -1),
        };
        let req = OffsetFetchRequest {
            groups: vec![OffsetFetchRequestGroup {
                group_id: self.group_id().to_string(),
                member_id,
                member_epoch,
                topics: Some(
                    by_topic
                        .into_iter()
                        .map(|(t, ps)| OffsetFetchRequestTopics {
                            name: t.to_string(),
                            partition_indexes: ps,
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }],
            require_stable: true,
            ..Default::default()
        };
        let resp = conn
            .send_at(&req, version, self.inner.cluster.config().request_timeout)
            .await?;
        let Some(group) = resp
            .groups
            .into_iter()
            .find(|g| g.group_id == self.group_id())
        else {
            return Err(
                Error::protocol("OffsetFetch response did not answer for our group")
                    .with_api("OffsetFetch"),
            );
        };
        let code = ErrorCode(group.error_code);
        if !code.is_ok() {
            return Err(Error::broker(code, "offset fetch failed").with_api("OffsetFetch"));
        }
        let mut found: BTreeMap<TopicPartition, Option<CommittedOffset>> = BTreeMap::new();
        for t in group.topics {
            for p in t.partitions {
                let code = ErrorCode(p.error_code);
                if !code.is_ok() {
                    return Err(Error::broker(code, "offset fetch failed")
                        .with_api("OffsetFetch")
                        .with_partition(t.name.clone(), p.partition_index));
                }
                let v = (p.committed_offset >= 0).then(|| CommittedOffset {
                    offset: p.committed_offset,
                    metadata: p.metadata.filter(|m| !m.is_empty()),
                    leader_epoch: (p.committed_leader_epoch >= 0)
                        .then_some(p.committed_leader_epoch),
                });
                found.insert((t.name.clone(), p.partition_index), v);
            }
        }
        Ok(partitions
            .iter()
            .map(|tp| (tp.clone(), found.get(tp).cloned().flatten()))
            .collect())
    }
}

fn retry_commit(e: &Error) -> bool {
    match e.code() {
        Some(ErrorCode::STALE_MEMBER_EPOCH) => true,
        Some(c) if c.invalidates_coordinator() || c == ErrorCode::COORDINATOR_LOAD_IN_PROGRESS => {
            true
        }
        Some(_) => e.is_retriable() && e.message() != REBALANCED,
        None => e.is_retriable(),
    }
}

const REBALANCED: &str = "the group rebalanced; the partitions may have moved";

fn rebalanced(api: &'static str, code: Option<ErrorCode>, detail: &str) -> Error {
    let msg = if detail.is_empty() {
        REBALANCED.to_string()
    } else {
        format!("{REBALANCED} ({detail})")
    };
    match code {
        Some(c) => Error::broker(c, msg),
        None => Error::new(ErrorKind::IllegalState, msg),
    }
    .with_api(api)
}

// ---------------------------------------------------------------------------
// The task.

enum Machine {
    Classic(ClassicMember),
    Consumer(ConsumerMember),
}

/// What a finished request brings back.
enum Outcome {
    Coordinator(Result<BrokerConnection>),
    Join(Result<crate::protocol::messages::join_group::JoinGroupResponse>),
    Sync(Result<crate::protocol::messages::sync_group::SyncGroupResponse>),
    Heartbeat(Result<crate::protocol::messages::heartbeat::HeartbeatResponse>),
    Leave(Result<crate::protocol::messages::leave_group::LeaveGroupResponse>),
    Metadata(Result<BTreeMap<String, i32>>),
    CgHeartbeat(
        Result<crate::protocol::messages::consumer_group_heartbeat::ConsumerGroupHeartbeatResponse>,
    ),
    Resolved(BTreeMap<Uuid, String>),
}

type Pending = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// A metadata refresh for the watch (pattern matching, partition counts).
type Watch = Pin<Box<dyn Future<Output = Result<Arc<MetadataSnapshot>>> + Send>>;

struct MemberTask {
    cluster: Arc<Cluster>,
    cfg: GroupConfig,
    machine: Machine,
    /// The `Group` connection to the current coordinator.
    conn: Option<BrokerConnection>,
    shared: Arc<Mutex<Shared>>,
    events: mpsc::Sender<GroupEvent>,
    commands: mpsc::UnboundedReceiver<Command>,
    leave_waiters: Vec<oneshot::Sender<()>>,
    /// A pattern subscription (whole-name match), if any.
    pattern: Option<regex::Regex>,
    /// The subscribed topics (a pattern's current matches).
    topics: Vec<String>,
    /// When the next metadata watch is due.
    watch_at: Instant,
}

enum Step {
    Request(Pending),
    Event(MemberEvent),
}

impl MemberTask {
    async fn run(mut self) {
        let mut pending: Option<Pending> = None;
        let mut ack: Option<oneshot::Receiver<()>> = None;
        let mut watch: Option<Watch> = None;
        let mut commands_open = true;
        loop {
            if watch.is_none() && Instant::now() >= self.watch_at {
                self.watch_at = Instant::now() + self.cluster.config().metadata_max_age;
                watch = self.start_watch();
            }
            // Drive the machine until it waits.
            while pending.is_none() {
                let now = Instant::now();
                match self.next_step(now) {
                    Some(Step::Request(f)) => pending = Some(f),
                    Some(Step::Event(e)) => {
                        if let Some(rx) = self.emit(e) {
                            ack = Some(rx);
                        } else {
                            self.event_done();
                        }
                    }
                    None => break,
                }
            }
            self.publish();
            if self.finished() && pending.is_none() {
                break;
            }
            if !commands_open && pending.is_none() {
                // Every handle is gone: stop like a crashed process would.
                break;
            }
            let wake = self
                .next_wakeup()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let wake = if watch.is_none() {
                wake.min(self.watch_at)
            } else {
                wake
            };
            tokio::select! {
                snap = async { watch.as_mut().expect("guarded").await }, if watch.is_some() => {
                    watch = None;
                    self.on_watch(snap);
                }
                outcome = async { pending.as_mut().expect("guarded").await }, if pending.is_some() => {
                    pending = None;
                    self.on_outcome(outcome);
                }
                _ = async { ack.as_mut().expect("guarded").await }, if ack.is_some() => {
                    ack = None;
                    self.event_done();
                }
                cmd = self.commands.recv(), if commands_open => match cmd {
                    Some(Command::PollTick(t)) => self.poll_tick(t),
                    Some(Command::UpdateSubscription(t)) => {
                        self.pattern = None;
                        self.update_subscription(t);
                    }
                    Some(Command::UpdatePattern(p)) => {
                        self.pattern = Some(p);
                        // Match now rather than at the next refresh.
                        watch = None;
                        self.watch_at = Instant::now();
                    }
                    Some(Command::Leave(tx)) => {
                        self.leave_waiters.push(tx);
                        // Abandon a JoinGroup/SyncGroup that may wait for a
                        // whole rebalance; heartbeats and leaves finish.
                        if pending.is_some() && self.in_join() {
                            pending = None;
                            self.cancel_in_flight();
                        }
                        // Events for a member that is leaving need no wait.
                        if ack.take().is_some() {
                            self.event_done();
                        }
                        self.leave();
                    }
                    None => commands_open = false,
                },
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        self.publish_finished();
        for tx in self.leave_waiters.drain(..) {
            let _ = tx.send(());
        }
    }

    fn finished(&self) -> bool {
        match &self.machine {
            Machine::Classic(m) => {
                matches!(m.state(), classic::State::Left | classic::State::Failed)
            }
            Machine::Consumer(m) => matches!(
                m.state(),
                consumer_protocol::State::Left | consumer_protocol::State::Failed
            ),
        }
    }

    fn in_join(&self) -> bool {
        match &self.machine {
            Machine::Classic(m) => {
                matches!(m.state(), classic::State::Joining | classic::State::Syncing)
            }
            Machine::Consumer(_) => false,
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        match &self.machine {
            Machine::Classic(m) => m.next_wakeup(),
            Machine::Consumer(m) => m.next_wakeup(),
        }
    }

    fn poll_tick(&mut self, t: Instant) {
        match &mut self.machine {
            Machine::Classic(m) => m.poll_tick(t),
            Machine::Consumer(m) => m.poll_tick(t),
        }
    }

    /// The metadata refresh due now, if there is anything to watch: all
    /// topics for a pattern, else the topics a classic leader assigned.
    fn start_watch(&self) -> Option<Watch> {
        let topics = match (&self.pattern, &self.machine) {
            (Some(_), _) => None,
            (None, Machine::Classic(m)) => {
                Some(m.watched_topics()).filter(|t| !t.is_empty())?.into()
            }
            (None, Machine::Consumer(_)) => return None,
        };
        let cluster = self.cluster.clone();
        Some(Box::pin(
            async move { cluster.refresh(topics.as_deref()).await },
        ))
    }

    /// Applies a metadata refresh: follows the pattern's matches, and lets
    /// a classic leader compare partition counts.
    fn on_watch(&mut self, snap: Result<Arc<MetadataSnapshot>>) {
        let snap = match snap {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(group = %self.cfg.group_id, error = %e, "metadata refresh for the subscription failed");
                return;
            }
        };
        if let Some(re) = &self.pattern {
            let mut names: Vec<String> = snap
                .topics
                .values()
                .filter(|t| !t.is_internal && re.is_match(&t.name))
                .map(|t| t.name.clone())
                .collect();
            names.sort();
            if names != self.topics {
                tracing::info!(group = %self.cfg.group_id, topics = ?names, "the pattern subscription matches new topics");
                self.cluster.track_topics(names.iter().map(String::as_str));
                self.update_subscription(names);
            }
        }
        if let Machine::Classic(m) = &mut self.machine {
            let watched = m.watched_topics();
            // A topic missing for another reason than not existing (e.g. a
            // leader election) says nothing about its partition count.
            let unsure = watched.iter().any(|t| {
                snap.topic(t).is_none()
                    && snap
                        .topic_errors
                        .get(t)
                        .is_some_and(|c| *c != ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
            });
            if !watched.is_empty() && !unsure {
                let counts: BTreeMap<String, i32> = watched
                    .into_iter()
                    .filter_map(|t| snap.topic(&t).map(|i| (t, i.partitions.len() as i32)))
                    .collect();
                m.on_partition_counts(&counts);
            }
        }
    }

    fn update_subscription(&mut self, t: Vec<String>) {
        self.topics = t.clone();
        match &mut self.machine {
            Machine::Classic(m) => m.update_subscription(t),
            Machine::Consumer(m) => m.update_subscription(t),
        }
    }

    fn leave(&mut self) {
        match &mut self.machine {
            Machine::Classic(m) => m.leave(),
            Machine::Consumer(m) => m.leave(),
        }
    }

    fn cancel_in_flight(&mut self) {
        match &mut self.machine {
            Machine::Classic(m) => m.cancel_in_flight(),
            Machine::Consumer(m) => m.cancel_in_flight(),
        }
    }

    fn event_done(&mut self) {
        match &mut self.machine {
            Machine::Classic(m) => m.event_done(),
            Machine::Consumer(m) => m.event_done(),
        }
    }

    fn publish(&self) {
        let (generation, assignment, failure) = match &self.machine {
            Machine::Classic(m) => (
                m.generation(),
                m.assignment().to_vec(),
                m.failure().cloned(),
            ),
            Machine::Consumer(m) => (
                m.generation(),
                m.assignment().to_vec(),
                m.failure().cloned(),
            ),
        };
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if generation.is_some() {
            s.last_generation = generation.clone();
        }
        s.generation = generation;
        s.assignment = assignment;
        s.failure = failure;
        s.topics.clone_from(&self.topics);
    }

    fn publish_finished(&self) {
        self.publish();
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        s.finished = true;
        s.generation = None;
        if s.failure.is_none() {
            s.failure = Some(Error::new(
                ErrorKind::Closed,
                "the group member has left the group",
            ));
        }
    }

    /// Hands an event to the consumer; returns the acknowledgement to wait
    /// for, if any.
    fn emit(&mut self, e: MemberEvent) -> Option<oneshot::Receiver<()>> {
        tracing::debug!(group = %self.cfg.group_id, event = ?e, "rebalance event");
        let generation = match &self.machine {
            Machine::Classic(m) => m.generation(),
            Machine::Consumer(m) => m.generation(),
        }
        .or_else(|| {
            self.shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .last_generation
                .clone()
        });
        let (ev, rx) = match e {
            MemberEvent::Assigned(p) => (GroupEvent::Assigned(p), None),
            MemberEvent::Revoked(p) => {
                let (tx, rx) = oneshot::channel();
                (GroupEvent::Revoked(p, Ack(Some(tx), generation)), Some(rx))
            }
            MemberEvent::Lost(p) => {
                let (tx, rx) = oneshot::channel();
                (GroupEvent::Lost(p, Ack(Some(tx), generation)), Some(rx))
            }
        };
        match self.events.try_send(ev) {
            Ok(()) => rx,
            Err(mpsc::error::TrySendError::Closed(_)) => None,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(group = %self.cfg.group_id, "the consumer is not reading group events; dropping one");
                None
            }
        }
    }

    /// Asks the machine what to do and starts it.
    fn next_step(&mut self, now: Instant) -> Option<Step> {
        let failure_before = self.current_failure().is_some();
        let step = match &mut self.machine {
            Machine::Classic(m) => match m.poll(now)? {
                classic::Action::Event(e) => Step::Event(e),
                classic::Action::FindCoordinator => Step::Request(self.find_coordinator()),
                classic::Action::Join(req) => {
                    let t = self.join_timeout();
                    Step::Request(self.send(req, t, Outcome::Join))
                }
                classic::Action::Sync(req) => {
                    let t = self.join_timeout();
                    Step::Request(self.send(req, t, Outcome::Sync))
                }
                classic::Action::Heartbeat(req) => {
                    let t = self.cluster.config().request_timeout;
                    Step::Request(self.send(req, t, Outcome::Heartbeat))
                }
                classic::Action::Leave(req) => Step::Request(self.send_leave(req)),
                classic::Action::Metadata(topics) => Step::Request(self.partition_counts(topics)),
            },
            Machine::Consumer(m) => match m.poll(now)? {
                consumer_protocol::Action::Event(e) => Step::Event(e),
                consumer_protocol::Action::FindCoordinator => {
                    Step::Request(self.find_coordinator())
                }
                consumer_protocol::Action::Heartbeat(req) => {
                    let t = self.cluster.config().request_timeout;
                    Step::Request(self.send(req, t, Outcome::CgHeartbeat))
                }
                consumer_protocol::Action::ResolveTopics(ids) => {
                    let topics = m.topics().to_vec();
                    Step::Request(self.resolve_topics(topics, ids))
                }
            },
        };
        if !failure_before {
            if let Some(e) = self.current_failure() {
                let _ = self.events.try_send(GroupEvent::Failed(e));
            }
        }
        Some(step)
    }

    fn current_failure(&self) -> Option<Error> {
        match &self.machine {
            Machine::Classic(m) => m.failure().cloned(),
            Machine::Consumer(m) => m.failure().cloned(),
        }
    }

    fn join_timeout(&self) -> Duration {
        // JoinGroup may wait for the whole rebalance (as Java: the rebalance
        // timeout plus a lapse, at least the request timeout).
        (self.cfg.rebalance_timeout() + Duration::from_secs(5))
            .max(self.cluster.config().request_timeout)
    }

    fn find_coordinator(&mut self) -> Pending {
        self.conn = None;
        let cluster = self.cluster.clone();
        let group = self.cfg.group_id.clone();
        cluster.invalidate_coordinator(CoordinatorType::Group, &group);
        Box::pin(async move {
            let deadline = Instant::now() + cluster.config().request_timeout;
            let r = async {
                let (node, _) = cluster
                    .coordinator(CoordinatorType::Group, &group, deadline)
                    .await?;
                cluster.connection(node, ConnKind::Group).await
            }
            .await;
            Outcome::Coordinator(r)
        })
    }

    fn send<R>(
        &self,
        req: R,
        timeout: Duration,
        wrap: fn(Result<R::Response>) -> Outcome,
    ) -> Pending
    where
        R: Request + Send + Sync + 'static,
        R::Response: Send + 'static,
    {
        let conn = self.conn.clone();
        Box::pin(async move {
            let r = match conn {
                Some(c) => c.send_with_timeout(&req, timeout).await,
                None => Err(Error::new(ErrorKind::Io, "no coordinator connection")),
            };
            wrap(r)
        })
    }

    fn send_leave(&self, mut req: LeaveGroupRequest) -> Pending {
        let conn = self.conn.clone();
        let timeout = self.cluster.config().request_timeout;
        Box::pin(async move {
            let r = async {
                let c =
                    conn.ok_or_else(|| Error::new(ErrorKind::Io, "no coordinator connection"))?;
                let v = c.version_of::<LeaveGroupRequest>()?;
                if v < 3 {
                    // Before KIP-345 LeaveGroup named one member directly.
                    req.member_id = req
                        .members
                        .first()
                        .map(|m| m.member_id.clone())
                        .unwrap_or_default();
                    req.members.clear();
                }
                c.send_at(&req, v, timeout).await
            }
            .await;
            Outcome::Leave(r)
        })
    }

    fn partition_counts(&self, topics: Vec<String>) -> Pending {
        let cluster = self.cluster.clone();
        Box::pin(async move {
            let r = async {
                let snap = cluster.refresh(Some(&topics)).await?;
                Ok(topics
                    .iter()
                    .filter_map(|t| {
                        snap.topic(t)
                            .map(|i| (t.clone(), i.partitions.len() as i32))
                    })
                    .filter(|(_, n)| *n > 0)
                    .collect())
            }
            .await;
            Outcome::Metadata(r)
        })
    }

    fn resolve_topics(&self, subscribed: Vec<String>, ids: Vec<Uuid>) -> Pending {
        let cluster = self.cluster.clone();
        Box::pin(async move {
            let mut found = BTreeMap::new();
            let known = |snap: &crate::cluster::MetadataSnapshot,
                         found: &mut BTreeMap<Uuid, String>| {
                for info in snap.topics.values() {
                    if ids.contains(&info.id) {
                        found.insert(info.id, info.name.clone());
                    }
                }
            };
            known(&cluster.snapshot(), &mut found);
            if found.len() < ids.len() {
                match cluster.refresh(Some(&subscribed)).await {
                    Ok(snap) => known(&snap, &mut found),
                    Err(e) => {
                        tracing::debug!(error = %e, "metadata refresh for assigned topic ids failed")
                    }
                }
            }
            Outcome::Resolved(found)
        })
    }

    fn on_outcome(&mut self, outcome: Outcome) {
        let now = Instant::now();
        let group = self.cfg.group_id.clone();
        let transport = |this: &mut Self, e: &Error| {
            this.cluster
                .invalidate_coordinator(CoordinatorType::Group, &group);
            this.conn = None;
            match &mut this.machine {
                Machine::Classic(m) => m.on_transport_error(now, e),
                Machine::Consumer(m) => m.on_transport_error(now, e),
            }
        };
        match (&mut self.machine, outcome) {
            (Machine::Classic(m), Outcome::Coordinator(r)) => {
                let r = r.map(|c| self.conn = Some(c));
                m.on_coordinator(now, r);
            }
            (Machine::Consumer(m), Outcome::Coordinator(r)) => {
                let r = r.map(|c| self.conn = Some(c));
                m.on_coordinator(now, r);
            }
            (Machine::Classic(m), Outcome::Join(Ok(r))) => m.on_join(now, r),
            (Machine::Classic(m), Outcome::Sync(Ok(r))) => m.on_sync(now, r),
            (Machine::Classic(m), Outcome::Heartbeat(Ok(r))) => m.on_heartbeat(now, r),
            (Machine::Classic(m), Outcome::Leave(Ok(r))) => m.on_leave(now, r),
            (Machine::Classic(m), Outcome::Metadata(r)) => m.on_metadata(now, r),
            (Machine::Consumer(m), Outcome::CgHeartbeat(Ok(r))) => m.on_heartbeat(now, r),
            (Machine::Consumer(m), Outcome::Resolved(found)) => m.on_topic_names(now, found),
            (
                _,
                Outcome::Join(Err(e))
                | Outcome::Sync(Err(e))
                | Outcome::Heartbeat(Err(e))
                | Outcome::Leave(Err(e))
                | Outcome::CgHeartbeat(Err(e)),
            ) => transport(self, &e),
            _ => {}
        }
    }
}
