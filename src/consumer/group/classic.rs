//! The classic group protocol as a sans-IO state machine.
//!
//! The IO layer asks [`ClassicMember::poll`] what to do, performs it, and
//! feeds the outcome back (`on_join`, `on_sync`, `on_heartbeat`, ...). At
//! most one request is in flight at a time; rebalance events for the
//! consumer are handed out by `poll` as well, and the machine does not
//! rejoin until the IO layer reports them done ([`ClassicMember::event_done`]),
//! which it does once the consumer acknowledged (so revoked partitions can
//! be committed first). Heartbeats continue while an event is pending.
//! Time is always passed in.
//!
//! ```text
//!                 ┌────────────────────────────── fatal error ──▶ Failed
//!                 ▼
//!   Unjoined ──JoinGroup──▶ Joining ──(leader)──▶ AwaitingMetadata ──▶ Syncing
//!      ▲   ▲                   │ MEMBER_ID_REQUIRED: retry with the id     │
//!      │   │                   └──────────(follower)───────────────────────┤
//!      │   │                                                               ▼
//!      │   └──── rejoin (REBALANCE_IN_PROGRESS, new subscription, ─── Stable ◀─┐
//!      │          cooperative revocation; eager: revoke all first)   │ heartbeat│
//!      │                                                              └─────────┘
//!      └── membership lost (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION): emit Lost
//!
//!   any member state ──leave()──▶ Leaving ──▶ Left
//!   any member state ──max.poll.interval.ms passes──▶ (leave) ──▶ PollExpired
//!   PollExpired ──poll_tick()──▶ Unjoined
//! ```
//!
//! NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE / transport failures mark the
//! coordinator unknown; `poll` then asks for a coordinator lookup before
//! anything else. A join or sync interrupted that way starts over from
//! Unjoined keeping the member id (and generation), so the broker sees the
//! same member rejoin.

use super::assignor::{
    self, common_protocol, decode_assignment, decode_subscription, encode_assignment,
    encode_subscription, sorted, Assignment, Assignor, MemberSubscription, RebalanceProtocol,
    Subscription, TopicPartition, NO_GENERATION,
};
use super::{Generation, GroupConfig};
use crate::error::{Error, ErrorClass, ErrorCode, Result};
use crate::net::backoff::Backoff;
use crate::protocol::messages::heartbeat::{HeartbeatRequest, HeartbeatResponse};
use crate::protocol::messages::join_group::{
    JoinGroupRequest, JoinGroupRequestProtocol, JoinGroupResponse,
};
use crate::protocol::messages::leave_group::{
    LeaveGroupRequest, LeaveGroupResponse, MemberIdentity,
};
use crate::protocol::messages::sync_group::{
    SyncGroupRequest, SyncGroupRequestAssignment, SyncGroupResponse,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The consumer protocol's `protocol_type`.
pub const PROTOCOL_TYPE: &str = "consumer";

/// Where the member is in the protocol. See the module diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Unjoined,
    Joining,
    AwaitingMetadata,
    Syncing,
    Stable,
    Leaving,
    Left,
    PollExpired,
    Failed,
}

/// A change of the member's partitions, for the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEvent {
    /// Partitions added to the assignment.
    Assigned(Vec<TopicPartition>),
    /// Partitions given up in an orderly way: the consumer may still commit
    /// their offsets before acknowledging.
    Revoked(Vec<TopicPartition>),
    /// Partitions lost with the membership: other members may own them
    /// already, commits for them will fail.
    Lost(Vec<TopicPartition>),
}

impl MemberEvent {
    /// Whether the member must wait for the consumer before going on.
    pub fn needs_ack(&self) -> bool {
        !matches!(self, MemberEvent::Assigned(_))
    }
}

/// What the IO layer should do next.
#[derive(Debug, Clone)]
pub enum Action {
    /// Find the group coordinator, then call `on_coordinator`.
    FindCoordinator,
    /// Send JoinGroup (it may block up to the rebalance timeout).
    Join(JoinGroupRequest),
    /// The leader needs the partition counts of these topics: call
    /// `on_metadata`.
    Metadata(Vec<String>),
    Sync(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    /// Send LeaveGroup (built for v3+; the IO layer adapts it for older
    /// brokers).
    Leave(LeaveGroupRequest),
    /// Hand this to the consumer; call `event_done` when it is handled.
    Event(MemberEvent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    Coordinator,
    Join,
    Metadata,
    Sync,
    Heartbeat,
    Leave,
}

/// The leader's view of the group from JoinGroup, kept until it assigned.
#[derive(Debug, Clone)]
struct LeaderState {
    protocol: String,
    members: Vec<MemberSubscription>,
    skip_assignment: bool,
}

/// The classic-protocol membership of one consumer.
#[derive(Debug)]
pub struct ClassicMember {
    group_id: String,
    instance_id: Option<String>,
    rack: Option<String>,
    session_timeout: Duration,
    heartbeat_interval: Duration,
    rebalance_timeout: Duration,
    max_poll_interval: Duration,
    assignors: Vec<Arc<dyn Assignor>>,
    protocol: RebalanceProtocol,

    state: State,
    topics: Vec<String>,
    /// As leader: the partition count of every topic the group subscribed
    /// to when the current assignment was computed (0 for a topic that did
    /// not exist). A later count that differs (partitions added, a topic
    /// created or deleted) makes the leader rejoin, so the group is
    /// reassigned, as the Java client's assignment snapshot does. `None`
    /// for followers.
    leader_counts: Option<BTreeMap<String, i32>>,
    /// The topics the last JoinGroup carried.
    joined_topics: Vec<String>,
    /// Empty until the broker gives one (KIP-394).
    member_id: String,
    /// `NO_GENERATION` when not a member of a generation.
    generation: i32,
    /// The protocol (assignor) the group chose in our generation.
    chosen_protocol: Option<String>,
    leader_id: String,
    leader: Option<LeaderState>,
    /// The leader's SyncGroup assignments, built from metadata.
    sync_pending: Option<Vec<SyncGroupRequestAssignment>>,
    /// The partitions the consumer holds now. Changes only together with an
    /// emitted event, so it always equals what the consumer was told.
    owned: Vec<TopicPartition>,
    /// The generation `owned` was assigned in (cooperative subscriptions).
    owned_generation: i32,

    coordinator_known: bool,
    in_flight: Option<InFlight>,
    events: VecDeque<MemberEvent>,
    /// An event was handed out and needs the consumer's acknowledgement.
    awaiting_ack: bool,
    rejoin_needed: bool,
    rejoin_reason: Option<String>,
    /// Set while preparing a rejoin, once the pre-join revocation is queued.
    prepared: bool,
    leave_requested: bool,

    last_heartbeat_sent: Option<Instant>,
    /// Last sign of life from the coordinator for this membership.
    last_heartbeat_ok: Instant,
    last_poll: Instant,
    retry_at: Option<Instant>,
    backoff: Backoff,
    failure: Option<Error>,
}

impl ClassicMember {
    /// A member of `cfg.group_id` for `topics`, not joined yet. `cfg` must
    /// be valid.
    pub fn new(
        cfg: &GroupConfig,
        topics: Vec<String>,
        retry_backoff: (Duration, Duration),
        now: Instant,
    ) -> Result<Self> {
        cfg.validate()?;
        let assignors: Vec<Arc<dyn Assignor>> = cfg
            .partition_assignment_strategy
            .iter()
            .filter_map(|n| assignor::by_name(n))
            .collect();
        let protocol = common_protocol(&assignors);
        Ok(ClassicMember {
            group_id: cfg.group_id.clone(),
            instance_id: cfg.group_instance_id.clone(),
            rack: cfg.client_rack.clone(),
            session_timeout: cfg.session_timeout,
            heartbeat_interval: cfg.heartbeat_interval,
            rebalance_timeout: cfg.rebalance_timeout(),
            max_poll_interval: cfg.max_poll_interval,
            assignors,
            protocol,
            state: State::Unjoined,
            topics: sorted(topics.into_iter().map(|t| (t, 0)))
                .into_iter()
                .map(|(t, _)| t)
                .collect(),
            leader_counts: None,
            joined_topics: Vec::new(),
            member_id: String::new(),
            generation: NO_GENERATION,
            chosen_protocol: None,
            leader_id: String::new(),
            leader: None,
            sync_pending: None,
            owned: Vec::new(),
            owned_generation: NO_GENERATION,
            coordinator_known: false,
            in_flight: None,
            events: VecDeque::new(),
            awaiting_ack: false,
            rejoin_needed: true,
            rejoin_reason: None,
            prepared: false,
            leave_requested: false,
            last_heartbeat_sent: None,
            last_heartbeat_ok: now,
            last_poll: now,
            retry_at: None,
            backoff: Backoff::new(retry_backoff.0, retry_backoff.1),
            failure: None,
        })
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The rebalance protocol this member follows.
    pub fn rebalance_protocol(&self) -> RebalanceProtocol {
        self.protocol
    }

    /// The current generation, when the member is in a stable one.
    pub fn generation(&self) -> Option<Generation> {
        (self.generation >= 0 && !self.member_id.is_empty() && self.state == State::Stable).then(
            || Generation {
                generation_id: self.generation,
                member_id: self.member_id.clone(),
                group_instance_id: self.instance_id.clone(),
            },
        )
    }

    /// The partitions the consumer holds now.
    pub fn assignment(&self) -> &[TopicPartition] {
        &self.owned
    }

    /// The member id (empty before the first JoinGroup answer).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// Whether this member is the group leader in its generation.
    pub fn is_leader(&self) -> bool {
        !self.member_id.is_empty() && self.member_id == self.leader_id
    }

    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// The fatal error the member stopped with.
    pub fn failure(&self) -> Option<&Error> {
        self.failure.as_ref()
    }

    fn is_dynamic(&self) -> bool {
        self.instance_id.is_none()
    }

    // ---- inputs from the consumer ----

    /// The application polled (the `max.poll.interval.ms` clock restarts).
    /// After a poll timeout this rejoins the group.
    pub fn poll_tick(&mut self, now: Instant) {
        self.last_poll = now;
        if self.state == State::PollExpired {
            self.state = State::Unjoined;
            self.request_rejoin("the application polled again after a poll timeout");
        }
    }

    /// Changes the subscription; a member rejoins so the leader reassigns.
    pub fn update_subscription(&mut self, topics: Vec<String>) {
        let topics: Vec<String> = sorted(topics.into_iter().map(|t| (t, 0)))
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        if topics != self.topics {
            self.topics = topics;
            self.request_rejoin("the subscription changed");
        }
    }

    /// Topics whose partition counts the leader watches (the group's
    /// subscriptions when it last assigned); empty for followers.
    pub fn watched_topics(&self) -> Vec<String> {
        self.leader_counts
            .as_ref()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Fresh partition counts (topic → count, missing = no such topic) for
    /// the [`watched_topics`](Self::watched_topics). As leader, a count that
    /// differs from the one the assignment used triggers a rejoin.
    pub fn on_partition_counts(&mut self, counts: &BTreeMap<String, i32>) {
        let Some(snap) = &self.leader_counts else {
            return;
        };
        let changed: Vec<String> = snap
            .iter()
            .filter(|(t, n)| counts.get(*t).copied().unwrap_or(0) != **n)
            .map(|(t, n)| format!("{t}: {n} -> {}", counts.get(t).copied().unwrap_or(0)))
            .collect();
        if !changed.is_empty() {
            tracing::info!(group = %self.group_id, ?changed, "partition counts changed: rejoining so the group is reassigned");
            self.leader_counts = None;
            self.request_rejoin("the partition counts of subscribed topics changed");
        }
    }

    /// Asks for a rebalance (e.g. the leader saw partitions added).
    pub fn request_rejoin(&mut self, reason: &str) {
        if !self.rejoin_needed {
            self.rejoin_needed = true;
            self.prepared = false;
            self.rejoin_reason = Some(reason.to_string());
        }
    }

    /// Leaves the group: LeaveGroup for dynamic members; a static member
    /// just stops (its partitions stay reserved until the session times
    /// out, KIP-345). The owned partitions are reported Revoked (without
    /// waiting). `poll` returns `None` once left.
    pub fn leave(&mut self) {
        if matches!(self.state, State::Left | State::Failed) {
            return;
        }
        self.leave_requested = true;
    }

    /// The consumer handled the last event.
    pub fn event_done(&mut self) {
        self.awaiting_ack = false;
    }

    // ---- the driver ----

    /// The next thing to do at `now`, or `None` to wait (for a response, an
    /// acknowledgement, or until [`ClassicMember::next_wakeup`]).
    pub fn poll(&mut self, now: Instant) -> Option<Action> {
        if matches!(self.state, State::Failed | State::Left) {
            return self.events.pop_front().map(Action::Event);
        }
        // Events go out first, one at a time.
        if !self.awaiting_ack {
            if let Some(e) = self.events.pop_front() {
                self.awaiting_ack = e.needs_ack();
                return Some(Action::Event(e));
            }
        }
        if self.in_flight.is_some() {
            return None;
        }
        if self.leave_requested {
            return self.start_leave("the consumer is closing");
        }
        if self.state == State::PollExpired {
            return None;
        }
        if self.is_member_state() && now >= self.last_poll + self.max_poll_interval {
            tracing::warn!(
                group = %self.group_id,
                "max.poll.interval.ms ({:?}) passed without a poll: leaving the group; poll more often or raise \
                 max.poll.interval.ms",
                self.max_poll_interval
            );
            return self.expire_poll();
        }
        if let Some(t) = self.retry_at {
            if now < t {
                return None;
            }
            self.retry_at = None;
        }
        if !self.coordinator_known {
            self.in_flight = Some(InFlight::Coordinator);
            return Some(Action::FindCoordinator);
        }
        match self.state {
            State::Stable if self.rejoin_needed => {
                if !self.prepared {
                    self.prepare_rejoin();
                    return self.poll(now);
                }
                if self.awaiting_ack || !self.events.is_empty() {
                    return self.heartbeat_if_due(now);
                }
                self.state = State::Unjoined;
                self.poll(now)
            }
            State::Stable => {
                if now >= self.last_heartbeat_ok + self.session_timeout {
                    tracing::info!(group = %self.group_id, "no heartbeat answer within session.timeout.ms: rediscovering the coordinator");
                    self.coordinator_known = false;
                    self.last_heartbeat_ok = now;
                    return self.poll(now);
                }
                self.heartbeat_if_due(now)
            }
            State::Unjoined => {
                if !self.prepared {
                    self.prepare_rejoin();
                    return self.poll(now);
                }
                if self.awaiting_ack || !self.events.is_empty() {
                    return None;
                }
                Some(self.join())
            }
            State::AwaitingMetadata => {
                let l = self.leader.as_ref()?;
                let topics: BTreeSet<String> = l
                    .members
                    .iter()
                    .flat_map(|m| m.subscription.topics.iter().cloned())
                    .collect();
                self.in_flight = Some(InFlight::Metadata);
                Some(Action::Metadata(topics.into_iter().collect()))
            }
            State::Syncing => {
                let assignments = self.sync_pending.take().unwrap_or_default();
                Some(self.sync(assignments))
            }
            _ => None,
        }
    }

    /// When `poll` should be called again if nothing else happens.
    pub fn next_wakeup(&self) -> Option<Instant> {
        if matches!(self.state, State::Failed | State::Left | State::PollExpired) {
            return None;
        }
        let mut t: Vec<Instant> = Vec::new();
        if let Some(r) = self.retry_at {
            t.push(r);
        }
        if self.is_member_state() {
            t.push(self.last_poll + self.max_poll_interval);
        }
        if self.state == State::Stable {
            t.push(self.heartbeat_due());
            t.push(self.last_heartbeat_ok + self.session_timeout);
        }
        t.into_iter().min()
    }

    fn is_member_state(&self) -> bool {
        matches!(
            self.state,
            State::Joining | State::AwaitingMetadata | State::Syncing | State::Stable
        )
    }

    fn heartbeat_due(&self) -> Instant {
        match self.last_heartbeat_sent {
            Some(t) => t + self.heartbeat_interval,
            None => self.last_heartbeat_ok,
        }
    }

    fn heartbeat_if_due(&mut self, now: Instant) -> Option<Action> {
        if now < self.heartbeat_due() {
            return None;
        }
        self.last_heartbeat_sent = Some(now);
        self.in_flight = Some(InFlight::Heartbeat);
        Some(Action::Heartbeat(HeartbeatRequest {
            group_id: self.group_id.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: self.instance_id.clone(),
            ..Default::default()
        }))
    }

    /// Before a JoinGroup: eager members give up everything; cooperative
    /// members give up only partitions of topics they no longer subscribe to.
    fn prepare_rejoin(&mut self) {
        self.prepared = true;
        let revoke: Vec<TopicPartition> = match self.protocol {
            RebalanceProtocol::Eager => self.owned.clone(),
            RebalanceProtocol::Cooperative => self
                .owned
                .iter()
                .filter(|(t, _)| !self.topics.contains(t))
                .cloned()
                .collect(),
        };
        if !revoke.is_empty() {
            self.owned.retain(|tp| !revoke.contains(tp));
            self.events.push_back(MemberEvent::Revoked(revoke));
        }
    }

    fn join(&mut self) -> Action {
        self.state = State::Joining;
        self.in_flight = Some(InFlight::Join);
        self.joined_topics.clone_from(&self.topics);
        let protocols = self
            .assignors
            .iter()
            .map(|a| {
                let sub = Subscription {
                    topics: self.topics.clone(),
                    user_data: a.subscription_user_data(&self.owned, self.owned_generation),
                    owned_partitions: self.owned.clone(),
                    generation_id: self.owned_generation,
                    rack_id: self.rack.clone(),
                };
                JoinGroupRequestProtocol {
                    name: a.name().to_string(),
                    // Encoding our own well-formed subscription cannot fail.
                    metadata: encode_subscription(&sub).unwrap_or_default(),
                    ..Default::default()
                }
            })
            .collect();
        Action::Join(JoinGroupRequest {
            group_id: self.group_id.clone(),
            session_timeout_ms: millis(self.session_timeout),
            rebalance_timeout_ms: millis(self.rebalance_timeout),
            member_id: self.member_id.clone(),
            group_instance_id: self.instance_id.clone(),
            protocol_type: PROTOCOL_TYPE.to_string(),
            protocols,
            reason: self.rejoin_reason.clone(),
            ..Default::default()
        })
    }

    fn sync(&mut self, assignments: Vec<SyncGroupRequestAssignment>) -> Action {
        self.state = State::Syncing;
        self.in_flight = Some(InFlight::Sync);
        Action::Sync(SyncGroupRequest {
            group_id: self.group_id.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: self.instance_id.clone(),
            protocol_type: Some(PROTOCOL_TYPE.to_string()),
            protocol_name: self.chosen_protocol.clone(),
            assignments,
            ..Default::default()
        })
    }

    fn start_leave(&mut self, reason: &str) -> Option<Action> {
        self.leave_requested = false;
        let was_member = !self.member_id.is_empty();
        if !self.owned.is_empty() {
            let owned = std::mem::take(&mut self.owned);
            self.events.push_back(MemberEvent::Revoked(owned));
            self.awaiting_ack = false;
        }
        if self.is_dynamic() && was_member && self.coordinator_known {
            self.state = State::Leaving;
            self.in_flight = Some(InFlight::Leave);
            return Some(Action::Leave(self.leave_request(reason)));
        }
        self.finish_leave();
        self.poll_events_only()
    }

    fn leave_request(&self, reason: &str) -> LeaveGroupRequest {
        LeaveGroupRequest {
            group_id: self.group_id.clone(),
            members: vec![MemberIdentity {
                member_id: self.member_id.clone(),
                group_instance_id: self.instance_id.clone(),
                reason: Some(reason.to_string()),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn finish_leave(&mut self) {
        self.state = State::Left;
        self.generation = NO_GENERATION;
        self.member_id.clear();
        self.owned_generation = NO_GENERATION;
    }

    fn poll_events_only(&mut self) -> Option<Action> {
        self.events.pop_front().map(Action::Event)
    }

    /// `max.poll.interval.ms` passed: leave like Java does (dynamic members
    /// send LeaveGroup, static ones go silent) and report the partitions
    /// lost, without waiting for the consumer (which is not polling).
    fn expire_poll(&mut self) -> Option<Action> {
        if !self.owned.is_empty() {
            let owned = std::mem::take(&mut self.owned);
            self.events.push_back(MemberEvent::Lost(owned));
        }
        let leave = (self.is_dynamic() && !self.member_id.is_empty() && self.coordinator_known)
            .then(|| self.leave_request("consumer poll timeout has expired"));
        self.generation = NO_GENERATION;
        self.owned_generation = NO_GENERATION;
        self.leader = None;
        self.state = State::PollExpired;
        self.rejoin_needed = true;
        self.prepared = false;
        if let Some(req) = leave {
            self.member_id.clear();
            self.in_flight = Some(InFlight::Leave);
            return Some(Action::Leave(req));
        }
        self.member_id.clear();
        self.poll_events_only()
    }

    // ---- responses ----

    /// The coordinator lookup finished.
    pub fn on_coordinator(&mut self, now: Instant, result: Result<()>) {
        self.take_in_flight(InFlight::Coordinator);
        match result {
            Ok(()) => {
                self.coordinator_known = true;
                self.backoff.on_success();
                // A fresh coordinator: give the heartbeat a full session.
                self.last_heartbeat_ok = now;
                self.last_heartbeat_sent = None;
            }
            Err(e) => self.retry_later(now, &e),
        }
    }

    /// A request failed without a response (connection or timeout).
    pub fn on_transport_error(&mut self, now: Instant, e: &Error) {
        let which = self.in_flight.take();
        tracing::debug!(group = %self.group_id, ?which, error = %e, "group request failed");
        self.coordinator_known = false;
        match which {
            Some(InFlight::Join) | Some(InFlight::Sync) | Some(InFlight::Metadata) => {
                self.state = State::Unjoined;
                self.prepared = false;
            }
            Some(InFlight::Leave) => {
                self.finish_leave_or_pause();
                return;
            }
            _ => {}
        }
        self.retry_later(now, e);
    }

    fn finish_leave_or_pause(&mut self) {
        if self.state == State::PollExpired {
            return;
        }
        self.finish_leave();
    }

    pub fn on_join(&mut self, now: Instant, resp: JoinGroupResponse) {
        self.take_in_flight(InFlight::Join);
        let code = ErrorCode(resp.error_code);
        if self.state != State::Joining {
            return; // left or expired meanwhile
        }
        if code == ErrorCode::MEMBER_ID_REQUIRED {
            // KIP-394: the broker named our member id; join again with it.
            self.member_id = resp.member_id;
            self.state = State::Unjoined;
            return;
        }
        if !code.is_ok() {
            self.state = State::Unjoined;
            return self.group_error(now, code, "JoinGroup");
        }
        let Some(protocol) = resp
            .protocol_name
            .clone()
            .filter(|p| self.assignors.iter().any(|a| a.name() == p))
        else {
            return self.fail(Error::protocol(format!(
                "JoinGroup chose protocol {:?}, which this member did not offer",
                resp.protocol_name
            )));
        };
        self.backoff.on_success();
        self.member_id = resp.member_id;
        self.generation = resp.generation_id;
        self.chosen_protocol = Some(protocol.clone());
        self.leader_id = resp.leader;
        self.rejoin_needed = false;
        if self.joined_topics != self.topics {
            // The subscription changed while JoinGroup was in flight: this
            // generation was formed with the old topics (Java compares its
            // joined subscription the same way).
            self.request_rejoin("the subscription changed during the join");
        }
        self.rejoin_reason = None;
        if self.is_leader() {
            let members = resp
                .members
                .into_iter()
                .filter_map(|m| match decode_subscription(m.metadata) {
                    Ok(s) => Some(MemberSubscription {
                        member_id: m.member_id,
                        group_instance_id: m.group_instance_id,
                        subscription: s,
                    }),
                    Err(e) => {
                        tracing::warn!(group = %self.group_id, member = %m.member_id, error = %e, "ignoring a member whose subscription cannot be read");
                        None
                    }
                })
                .collect();
            self.leader = Some(LeaderState {
                protocol,
                members,
                skip_assignment: resp.skip_assignment,
            });
            if self.leader.as_ref().is_some_and(|l| l.skip_assignment) {
                // KIP-814: a static leader rejoined; the broker keeps the
                // current assignment and just wants a SyncGroup.
                self.leader = None;
                self.state = State::Syncing;
            } else {
                self.state = State::AwaitingMetadata;
            }
        } else {
            self.leader = None;
            self.leader_counts = None;
            self.state = State::Syncing;
        }
    }

    /// The leader's metadata lookup finished: topic → partition count for
    /// the topics that exist.
    pub fn on_metadata(&mut self, now: Instant, result: Result<BTreeMap<String, i32>>) {
        self.take_in_flight(InFlight::Metadata);
        if self.state != State::AwaitingMetadata {
            return;
        }
        let counts = match result {
            Ok(c) => c,
            Err(e) => {
                self.state = State::Unjoined;
                self.prepared = true;
                self.rejoin_needed = true;
                return self.retry_later(now, &e);
            }
        };
        let Some(leader) = self.leader.take() else {
            return;
        };
        let Some(assignor) = self
            .assignors
            .iter()
            .find(|a| a.name() == leader.protocol)
            .cloned()
        else {
            return;
        };
        let subscribed: BTreeSet<&String> = leader
            .members
            .iter()
            .flat_map(|m| m.subscription.topics.iter())
            .collect();
        self.leader_counts = Some(
            subscribed
                .into_iter()
                .map(|t| (t.clone(), counts.get(t).copied().unwrap_or(0)))
                .collect(),
        );
        let result = assignor.assign(&counts, &leader.members);
        tracing::debug!(group = %self.group_id, generation = self.generation, assignor = assignor.name(), ?result, "leader computed assignment");
        let mut assignments = Vec::with_capacity(result.len());
        for (member_id, partitions) in result {
            let a = Assignment {
                partitions,
                user_data: None,
            };
            match encode_assignment(&a) {
                Ok(bytes) => assignments.push(SyncGroupRequestAssignment {
                    member_id,
                    assignment: bytes,
                    ..Default::default()
                }),
                Err(e) => return self.fail(e),
            }
        }
        self.sync_pending = Some(assignments);
        self.state = State::Syncing;
    }

    pub fn on_sync(&mut self, now: Instant, resp: SyncGroupResponse) {
        self.take_in_flight(InFlight::Sync);
        if self.state != State::Syncing {
            return;
        }
        let code = ErrorCode(resp.error_code);
        if !code.is_ok() {
            self.state = State::Unjoined;
            return self.group_error(now, code, "SyncGroup");
        }
        let assignment = match decode_assignment(resp.assignment) {
            Ok(a) => a,
            Err(e) => {
                // Undecodable: rejoin rather than guess.
                tracing::warn!(group = %self.group_id, error = %e, "could not read our assignment; rejoining");
                self.state = State::Unjoined;
                self.rejoin_needed = true;
                self.prepared = false;
                return self.retry_later(now, &e);
            }
        };
        self.backoff.on_success();
        let new: Vec<TopicPartition> = assignment.partitions;
        let new_set: BTreeSet<&TopicPartition> = new.iter().collect();
        let old_set: BTreeSet<&TopicPartition> = self.owned.iter().collect();
        let revoked: Vec<TopicPartition> = self
            .owned
            .iter()
            .filter(|p| !new_set.contains(p))
            .cloned()
            .collect();
        let added: Vec<TopicPartition> = new
            .iter()
            .filter(|p| !old_set.contains(p))
            .cloned()
            .collect();
        self.state = State::Stable;
        self.last_heartbeat_ok = now;
        self.last_heartbeat_sent = Some(now);
        self.prepared = false;
        if !revoked.is_empty() {
            // Cooperative: give these up, then rejoin so they can move.
            self.events.push_back(MemberEvent::Revoked(revoked));
            self.request_rejoin("partitions were revoked in a cooperative rebalance");
            self.prepared = true; // nothing more to revoke before that join
        }
        self.owned = sorted(new.iter().cloned());
        self.owned_generation = self.generation;
        if !added.is_empty() {
            self.events.push_back(MemberEvent::Assigned(added));
        }
        // Partitions of topics we no longer subscribe to (changed meanwhile).
        if self.owned.iter().any(|(t, _)| !self.topics.contains(t)) {
            self.request_rejoin("the subscription changed during the rebalance");
        }
    }

    pub fn on_heartbeat(&mut self, now: Instant, resp: HeartbeatResponse) {
        self.take_in_flight(InFlight::Heartbeat);
        if self.state != State::Stable {
            return;
        }
        let code = ErrorCode(resp.error_code);
        if code.is_ok() {
            self.last_heartbeat_ok = now;
            self.backoff.on_success();
            return;
        }
        if code == ErrorCode::REBALANCE_IN_PROGRESS {
            self.last_heartbeat_ok = now;
            self.request_rejoin("the group is rebalancing");
            return;
        }
        self.group_error(now, code, "Heartbeat");
    }

    pub fn on_leave(&mut self, _now: Instant, resp: LeaveGroupResponse) {
        self.take_in_flight(InFlight::Leave);
        let code = ErrorCode(resp.error_code);
        if !code.is_ok() {
            tracing::debug!(group = %self.group_id, code = code.name(), "LeaveGroup failed; the session timeout will remove the member");
        }
        self.finish_leave_or_pause();
    }

    /// The IO layer abandoned the request in flight (e.g. a JoinGroup still
    /// waiting when the consumer closes). A join or sync starts over.
    pub fn cancel_in_flight(&mut self) {
        if let Some(InFlight::Join | InFlight::Sync | InFlight::Metadata) = self.in_flight.take() {
            self.state = State::Unjoined;
            self.prepared = false;
        }
    }

    fn take_in_flight(&mut self, expected: InFlight) {
        if self.in_flight == Some(expected) {
            self.in_flight = None;
        }
    }

    /// Handles a broker error code from Join/Sync/Heartbeat.
    fn group_error(&mut self, now: Instant, code: ErrorCode, api: &'static str) {
        tracing::debug!(group = %self.group_id, api, code = code.name(), "group error");
        match code {
            ErrorCode::UNKNOWN_MEMBER_ID => {
                self.lose_membership(true, "the coordinator does not know this member");
            }
            ErrorCode::ILLEGAL_GENERATION => {
                self.lose_membership(false, "the group moved to a newer generation");
            }
            ErrorCode::REBALANCE_IN_PROGRESS => {
                // (Sync) the group started another round: rejoin at once.
                self.state = State::Unjoined;
                self.rejoin_needed = true;
                self.prepared = false;
            }
            ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
                self.coordinator_known = false;
                if self.state != State::Stable {
                    self.state = State::Unjoined;
                    self.prepared = false;
                }
            }
            ErrorCode::COORDINATOR_LOAD_IN_PROGRESS => {
                let e = Error::broker(code, "the coordinator is loading the group").with_api(api);
                self.retry_later(now, &e);
            }
            ErrorCode::FENCED_INSTANCE_ID => self.fail(
                Error::broker(
                    code,
                    format!(
                        "another consumer with group.instance.id {:?} joined the group; this one is fenced",
                        self.instance_id.as_deref().unwrap_or("")
                    ),
                )
                .with_api(api)
                .with_class(ErrorClass::Fatal),
            ),
            ErrorCode::GROUP_AUTHORIZATION_FAILED
            | ErrorCode::INVALID_GROUP_ID
            | ErrorCode::INCONSISTENT_GROUP_PROTOCOL
            | ErrorCode::INVALID_SESSION_TIMEOUT
            | ErrorCode::GROUP_MAX_SIZE_REACHED
            | ErrorCode::UNSUPPORTED_VERSION => self.fail(
                Error::broker(code, format!("cannot be a member of group `{}`", self.group_id))
                    .with_api(api)
                    .with_class(ErrorClass::Fatal),
            ),
            _ => {
                let e = Error::broker(code, "group request failed").with_api(api);
                if self.state != State::Stable {
                    self.state = State::Unjoined;
                    self.prepared = false;
                }
                self.retry_later(now, &e);
            }
        }
    }

    /// The membership is gone: report everything lost and join afresh.
    fn lose_membership(&mut self, forget_member_id: bool, why: &str) {
        tracing::info!(group = %self.group_id, member = %self.member_id, "membership lost: {why}");
        if !self.owned.is_empty() {
            let owned = std::mem::take(&mut self.owned);
            self.events.push_back(MemberEvent::Lost(owned));
        }
        if forget_member_id {
            self.member_id.clear();
        }
        self.generation = NO_GENERATION;
        self.owned_generation = NO_GENERATION;
        self.state = State::Unjoined;
        self.rejoin_needed = true;
        self.prepared = false;
    }

    fn retry_later(&mut self, now: Instant, e: &Error) {
        let wait = self.backoff.on_failure();
        tracing::debug!(group = %self.group_id, error = %e, ?wait, "retrying later");
        self.retry_at = Some(now + wait);
    }

    fn fail(&mut self, e: Error) {
        tracing::warn!(group = %self.group_id, error = %e, "group membership failed");
        if !self.owned.is_empty() {
            let owned = std::mem::take(&mut self.owned);
            self.events.push_back(MemberEvent::Lost(owned));
        }
        self.failure = Some(e);
        self.state = State::Failed;
        self.in_flight = None;
    }
}

fn millis(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::join_group::JoinGroupResponseMember;

    const T: &str = "t";

    fn cfg(strategy: &[&str], instance: Option<&str>) -> GroupConfig {
        let mut c = GroupConfig::new("g");
        c.partition_assignment_strategy = strategy.iter().map(|s| s.to_string()).collect();
        c.group_instance_id = instance.map(str::to_string);
        c.session_timeout = Duration::from_secs(10);
        c.heartbeat_interval = Duration::from_secs(3);
        c.max_poll_interval = Duration::from_secs(60);
        c
    }

    fn new_member(strategy: &[&str], instance: Option<&str>, now: Instant) -> ClassicMember {
        let b = (Duration::from_millis(100), Duration::from_millis(100));
        ClassicMember::new(&cfg(strategy, instance), vec![T.into()], b, now).unwrap()
    }

    fn tps(ps: &[i32]) -> Vec<TopicPartition> {
        ps.iter().map(|p| (T.to_string(), *p)).collect()
    }

    fn expect_join(m: &mut ClassicMember, now: Instant) -> JoinGroupRequest {
        match m.poll(now) {
            Some(Action::Join(j)) => j,
            other => panic!("expected JoinGroup, got {other:?} in {:?}", m.state()),
        }
    }

    fn join_ok(
        member_id: &str,
        leader: &str,
        generation: i32,
        protocol: &str,
        members: Vec<JoinGroupResponseMember>,
    ) -> JoinGroupResponse {
        JoinGroupResponse {
            generation_id: generation,
            protocol_type: Some(PROTOCOL_TYPE.into()),
            protocol_name: Some(protocol.into()),
            leader: leader.into(),
            member_id: member_id.into(),
            members,
            ..Default::default()
        }
    }

    fn sync_ok(ps: &[i32]) -> SyncGroupResponse {
        SyncGroupResponse {
            assignment: encode_assignment(&Assignment {
                partitions: tps(ps),
                user_data: None,
            })
            .unwrap(),
            ..Default::default()
        }
    }

    /// Drives a fresh member through coordinator lookup, the KIP-394 member
    /// id round trip, JoinGroup as a follower and SyncGroup.
    fn stable_follower(
        strategy: &[&str],
        instance: Option<&str>,
        ps: &[i32],
        now: Instant,
    ) -> ClassicMember {
        let mut m = new_member(strategy, instance, now);
        assert!(matches!(m.poll(now), Some(Action::FindCoordinator)));
        assert!(m.poll(now).is_none(), "one request at a time");
        m.on_coordinator(now, Ok(()));
        let j = expect_join(&mut m, now);
        assert_eq!(j.member_id, "");
        assert_eq!(j.protocol_type, "consumer");
        assert_eq!(j.rebalance_timeout_ms, 60_000);
        if instance.is_none() {
            m.on_join(
                now,
                JoinGroupResponse {
                    error_code: ErrorCode::MEMBER_ID_REQUIRED.0,
                    member_id: "m-1".into(),
                    ..Default::default()
                },
            );
            assert_eq!(expect_join(&mut m, now).member_id, "m-1");
        }
        m.on_join(now, join_ok("m-1", "leader-x", 4, strategy[0], vec![]));
        let Some(Action::Sync(s)) = m.poll(now) else {
            panic!("expected SyncGroup")
        };
        assert_eq!((s.generation_id, s.member_id.as_str()), (4, "m-1"));
        assert!(s.assignments.is_empty(), "followers send no assignments");
        m.on_sync(now, sync_ok(ps));
        assert!(
            matches!(m.poll(now), Some(Action::Event(MemberEvent::Assigned(a))) if a == tps(ps))
        );
        m.event_done();
        assert_eq!(m.state(), State::Stable);
        m
    }

    #[test]
    fn joins_with_the_member_id_round_trip_and_heartbeats_on_schedule() {
        let t0 = Instant::now();
        let mut m = stable_follower(&["range"], None, &[0, 1], t0);
        assert_eq!(
            m.generation(),
            Some(Generation {
                generation_id: 4,
                member_id: "m-1".into(),
                group_instance_id: None
            })
        );
        assert!(m.poll(t0 + Duration::from_secs(1)).is_none());
        assert_eq!(m.next_wakeup(), Some(t0 + Duration::from_secs(3)));
        let Some(Action::Heartbeat(h)) = m.poll(t0 + Duration::from_secs(3)) else {
            panic!()
        };
        assert_eq!((h.generation_id, h.member_id.as_str()), (4, "m-1"));
        m.on_heartbeat(t0 + Duration::from_secs(3), HeartbeatResponse::default());
        assert!(m.poll(t0 + Duration::from_secs(4)).is_none());
    }

    #[test]
    fn the_leader_assigns_with_the_chosen_assignor() {
        let t0 = Instant::now();
        let mut m = new_member(&["range", "cooperative-sticky"], None, t0);
        m.poll(t0);
        m.on_coordinator(t0, Ok(()));
        let j = expect_join(&mut m, t0);
        let names: Vec<_> = j.protocols.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["range", "cooperative-sticky"]);
        let sub = |id: &str| JoinGroupResponseMember {
            member_id: id.into(),
            metadata: encode_subscription(&Subscription {
                topics: vec![T.into()],
                generation_id: -1,
                ..Default::default()
            })
            .unwrap(),
            ..Default::default()
        };
        m.on_join(t0, join_ok("a", "a", 1, "range", vec![sub("a"), sub("b")]));
        assert!(m.is_leader());
        let Some(Action::Metadata(topics)) = m.poll(t0) else {
            panic!()
        };
        assert_eq!(topics, vec![T.to_string()]);
        m.on_metadata(t0, Ok([(T.to_string(), 4)].into()));
        let Some(Action::Sync(s)) = m.poll(t0) else {
            panic!()
        };
        let got: BTreeMap<_, _> = s
            .assignments
            .iter()
            .map(|a| {
                (
                    a.member_id.clone(),
                    decode_assignment(a.assignment.clone()).unwrap().partitions,
                )
            })
            .collect();
        assert_eq!(got["a"], tps(&[0, 1]));
        assert_eq!(got["b"], tps(&[2, 3]));

        // The leader watches the counts it assigned with: unchanged counts
        // do nothing, a partition added makes it rejoin (Java's assignment
        // snapshot check).
        m.on_sync(t0, sync_ok(&[0, 1]));
        assert!(matches!(
            m.poll(t0),
            Some(Action::Event(MemberEvent::Assigned(_)))
        ));
        m.event_done();
        assert_eq!(m.watched_topics(), vec![T.to_string()]);
        m.on_partition_counts(&[(T.to_string(), 4)].into());
        assert!(!m.rejoin_needed);
        m.on_partition_counts(&[(T.to_string(), 6)].into());
        assert!(m.rejoin_needed, "partitions added: rejoin");
        assert!(
            m.watched_topics().is_empty(),
            "checked again after the next assignment"
        );
    }

    #[test]
    fn a_subscription_change_during_join_rejoins_after_it() {
        let t0 = Instant::now();
        let mut m = new_member(&["range"], None, t0);
        m.poll(t0);
        m.on_coordinator(t0, Ok(()));
        let _ = expect_join(&mut m, t0);
        m.update_subscription(vec![T.to_string(), "other".to_string()]);
        m.on_join(t0, join_ok("m-1", "leader-x", 1, "range", vec![]));
        assert!(
            m.rejoin_needed,
            "the generation was formed with the old topics"
        );
        let mut m = new_member(&["range"], None, t0);
        m.poll(t0);
        m.on_coordinator(t0, Ok(()));
        let _ = expect_join(&mut m, t0);
        m.on_join(t0, join_ok("m-1", "leader-x", 1, "range", vec![]));
        assert!(!m.rejoin_needed);
    }

    #[test]
    fn followers_do_not_watch_partition_counts() {
        let t0 = Instant::now();
        let mut m = stable_follower(&["range"], None, &[0, 1], t0);
        assert!(m.watched_topics().is_empty());
        m.on_partition_counts(&[(T.to_string(), 9)].into());
        assert!(!m.rejoin_needed);
    }

    #[test]
    fn eager_rebalance_revokes_everything_before_rejoining() {
        let t0 = Instant::now();
        let mut m = stable_follower(&["range"], None, &[0, 1, 2], t0);
        let t1 = t0 + Duration::from_secs(3);
        let Some(Action::Heartbeat(_)) = m.poll(t1) else {
            panic!()
        };
        m.on_heartbeat(
            t1,
            HeartbeatResponse {
                error_code: ErrorCode::REBALANCE_IN_PROGRESS.0,
                ..Default::default()
            },
        );
        assert!(
            matches!(m.poll(t1), Some(Action::Event(MemberEvent::Revoked(r))) if r == tps(&[0, 1, 2]))
        );
        // Waiting for the consumer to commit: no join yet, but heartbeats go on.
        assert!(m.poll(t1).is_none());
        assert!(matches!(
            m.poll(t1 + Duration::from_secs(3)),
            Some(Action::Heartbeat(_))
        ));
        m.on_heartbeat(t1 + Duration::from_secs(3), HeartbeatResponse::default());
        m.event_done();
        let j = expect_join(&mut m, t1 + Duration::from_secs(3));
        assert_eq!(j.member_id, "m-1", "rejoins as the same member");
        let sub = decode_subscription(j.protocols[0].metadata.clone()).unwrap();
        assert!(sub.owned_partitions.is_empty());
        assert!(m.assignment().is_empty());
    }

    #[test]
    fn cooperative_rebalance_keeps_partitions_and_revokes_only_what_moves() {
        let t0 = Instant::now();
        let mut m = stable_follower(&["cooperative-sticky"], None, &[0, 1, 2], t0);
        assert_eq!(m.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let t1 = t0 + Duration::from_secs(3);
        m.poll(t1);
        m.on_heartbeat(
            t1,
            HeartbeatResponse {
                error_code: ErrorCode::REBALANCE_IN_PROGRESS.0,
                ..Default::default()
            },
        );
        // No revocation before the join: the subscription reports ownership.
        let j = expect_join(&mut m, t1);
        let sub = decode_subscription(j.protocols[0].metadata.clone()).unwrap();
        assert_eq!(sub.owned_partitions, tps(&[0, 1, 2]));
        assert_eq!(sub.generation_id, 4);
        assert_eq!(sub.user_data.as_deref(), Some(&4i32.to_be_bytes()[..]));
        m.on_join(t1, join_ok("m-1", "other", 5, "cooperative-sticky", vec![]));
        m.poll(t1);
        m.on_sync(t1, sync_ok(&[0, 1]));
        // Revoke t-2, then rejoin once the consumer acknowledged.
        assert!(
            matches!(m.poll(t1), Some(Action::Event(MemberEvent::Revoked(r))) if r == tps(&[2]))
        );
        assert_eq!(m.assignment(), &tps(&[0, 1])[..]);
        assert!(m.poll(t1).is_none());
        m.event_done();
        let j = expect_join(&mut m, t1);
        let sub = decode_subscription(j.protocols[0].metadata.clone()).unwrap();
        assert_eq!(sub.owned_partitions, tps(&[0, 1]));
        m.on_join(t1, join_ok("m-1", "other", 6, "cooperative-sticky", vec![]));
        m.poll(t1);
        m.on_sync(t1, sync_ok(&[0, 1]));
        assert!(m.poll(t1).is_none(), "nothing changed: no events");
        assert_eq!(m.generation().unwrap().generation_id, 6);
    }

    #[test]
    fn unknown_member_and_illegal_generation_lose_the_partitions() {
        let t0 = Instant::now();
        let mut m = stable_follower(&["range"], None, &[0], t0);
        let t1 = t0 + Duration::from_secs(3);
        m.poll(t1);
        m.on_heartbeat(
            t1,
            HeartbeatResponse {
                error_code: ErrorCode::ILLEGAL_GENERATION.0,
                ..Default::default()
            },
        );
        assert!(matches!(m.poll(t1), Some(Action::Event(MemberEvent::Lost(l))) if l == tps(&[0])));
        assert!(m.generation().is_none());
        m.event_done();
        assert_eq!(
            expect_join(&mut m, t1).member_id,
            "m-1",
            "ILLEGAL_GENERATION keeps the member id"
        );
        m.on_join(
            t1,
            JoinGroupResponse {
                error_code: ErrorCode::UNKNOWN_MEMBER_ID.0,
                ..Default::default()
            },
        );
        assert_eq!(
            expect_join(&mut m, t1).member_id,
            "",
            "UNKNOWN_MEMBER_ID starts afresh"
        );
    }

    #[test]
    fn coordinator_errors_rediscover_and_rejoin_as_the_same_member() {
        let t0 = Instant::now();
        let mut m = stable_follower(&["range"], None, &[0], t0);
        let t1 = t0 + Duration::from_secs(3);
        m.poll(t1);
        m.on_heartbeat(
            t1,
            HeartbeatResponse {
                error_code: ErrorCode::NOT_COORDINATOR.0,
                ..Default::default()
            },
        );
        assert!(matches!(m.poll(t1), Some(Action::FindCoordinator)));
        m.on_coordinator(t1, Ok(()));
        assert_eq!(
            m.state(),
            State::Stable,
            "still a member: heartbeats go to the new coordinator"
        );
        assert!(matches!(
            m.poll(t1 + Duration::from_secs(3)),
            Some(Action::Heartbeat(_))
        ));
        // A transport failure during a join restarts the join after a lookup.
        m.on_heartbeat(
            t1,
            HeartbeatResponse {
                error_code: ErrorCode::REBALANCE_IN_PROGRESS.0,
                ..Default::default()
            },
        );
        assert!(matches!(
            m.poll(t1),
            Some(Action::Event(MemberEvent::Revoked(_)))
        ));
        m.event_done();
        expect_join(&mut m, t1);
        m.on_transport_error(t1, &Error::timeout("t"));
        let t2 = t1 + Duration::from_secs(1);
        assert!(matches!(m.poll(t2), Some(Action::FindCoordinator)));
        m.on_coordinator(t2, Ok(()));
        assert_eq!(expect_join(&mut m, t2).member_id, "m-1");
    }

    #[test]
    fn no_heartbeat_answer_for_a_session_rediscovers_the_coordinator() {
        let t0 = Instant::now();
        let mut m = stable_follower(&["range"], None, &[0], t0);
        // Heartbeats fail with retriable broker errors for a whole session.
        let mut t = t0;
        for _ in 0..3 {
            t += Duration::from_secs(3);
            if let Some(Action::Heartbeat(_)) = m.poll(t) {
                m.on_heartbeat(
                    t,
                    HeartbeatResponse {
                        error_code: ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.0,
                        ..Default::default()
                    },
                );
            }
        }
        assert!(matches!(
            m.poll(t0 + Duration::from_secs(11)),
            Some(Action::FindCoordinator)
        ));
    }

    #[test]
    fn fenced_static_member_fails_fatally() {
        let t0 = Instant::now();
        let mut m = stable_follower(&["range"], Some("inst-1"), &[0, 1], t0);
        let t1 = t0 + Duration::from_secs(3);
        let Some(Action::Heartbeat(h)) = m.poll(t1) else {
            panic!()
        };
        assert_eq!(h.group_instance_id.as_deref(), Some("inst-1"));
        m.on_heartbeat(
            t1,
            HeartbeatResponse {
                error_code: ErrorCode::FENCED_INSTANCE_ID.0,
                ..Default::default()
            },
        );
        assert_eq!(m.state(), State::Failed);
        assert!(m.failure().unwrap().is_fatal());
        assert!(m.failure().unwrap().to_string().contains("inst-1"));
        assert!(matches!(
            m.poll(t1),
            Some(Action::Event(MemberEvent::Lost(_)))
        ));
        assert!(m.poll(t1).is_none());
    }

    #[test]
    fn static_members_do_not_send_leave_group() {
        let t0 = Instant::now();
        let mut m = stable_follower(&["range"], Some("inst-1"), &[0], t0);
        m.leave();
        assert!(matches!(
            m.poll(t0),
            Some(Action::Event(MemberEvent::Revoked(_)))
        ));
        assert!(m.poll(t0).is_none());
        assert_eq!(m.state(), State::Left);
        let mut d = stable_follower(&["range"], None, &[0], t0);
        d.leave();
        let Some(Action::Leave(l)) = d.poll(t0) else {
            panic!()
        };
        assert_eq!(l.members[0].member_id, "m-1");
        d.on_leave(t0, LeaveGroupResponse::default());
        assert_eq!(d.state(), State::Left);
    }

    #[test]
    fn a_poll_timeout_leaves_and_the_next_poll_rejoins() {
        let t0 = Instant::now();
        let mut m = stable_follower(&["range"], None, &[0, 1], t0);
        // Heartbeats keep going while the application does not poll...
        let mut t = t0;
        while t < t0 + Duration::from_secs(57) {
            t += Duration::from_secs(3);
            if let Some(Action::Heartbeat(_)) = m.poll(t) {
                m.on_heartbeat(t, HeartbeatResponse::default());
            }
        }
        assert_eq!(m.state(), State::Stable);
        // ...until max.poll.interval.ms passes.
        let late = t0 + Duration::from_secs(61);
        let Some(Action::Leave(l)) = m.poll(late) else {
            panic!("expected LeaveGroup")
        };
        assert!(l.members[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("poll timeout"));
        m.on_leave(late, LeaveGroupResponse::default());
        assert!(
            matches!(m.poll(late), Some(Action::Event(MemberEvent::Lost(p))) if p == tps(&[0, 1]))
        );
        m.event_done();
        assert_eq!(m.state(), State::PollExpired);
        assert!(m.poll(late + Duration::from_secs(100)).is_none());
        m.poll_tick(late + Duration::from_secs(100));
        assert_eq!(
            expect_join(&mut m, late + Duration::from_secs(100)).member_id,
            ""
        );
    }

    #[test]
    fn subscription_change_triggers_a_rejoin_with_the_new_topics() {
        let t0 = Instant::now();
        let mut m = stable_follower(&["cooperative-sticky"], None, &[0, 1], t0);
        m.update_subscription(vec!["other".into()]);
        // Cooperative: partitions of the dropped topic are revoked first.
        assert!(
            matches!(m.poll(t0), Some(Action::Event(MemberEvent::Revoked(r))) if r == tps(&[0, 1]))
        );
        m.event_done();
        let j = expect_join(&mut m, t0);
        let sub = decode_subscription(j.protocols[0].metadata.clone()).unwrap();
        assert_eq!(sub.topics, vec!["other".to_string()]);
        assert!(sub.owned_partitions.is_empty());
    }

    #[test]
    fn a_protocol_we_did_not_offer_is_an_error_not_a_panic() {
        let t0 = Instant::now();
        let mut m = new_member(&["range"], None, t0);
        m.poll(t0);
        m.on_coordinator(t0, Ok(()));
        expect_join(&mut m, t0);
        m.on_join(t0, join_ok("m", "m", 1, "mystery", vec![]));
        assert_eq!(m.state(), State::Failed);
        // Garbage assignment bytes: rejoin.
        let mut m = new_member(&["range"], None, t0);
        m.poll(t0);
        m.on_coordinator(t0, Ok(()));
        expect_join(&mut m, t0);
        m.on_join(t0, join_ok("m", "x", 1, "range", vec![]));
        m.poll(t0);
        m.on_sync(
            t0,
            SyncGroupResponse {
                assignment: bytes::Bytes::from_static(&[0, 1, 0x7f]),
                ..Default::default()
            },
        );
        assert_eq!(m.state(), State::Unjoined);
    }
}
