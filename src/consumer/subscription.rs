//! The consumer's side of group membership: [`Consumer::subscribe`],
//! handling of rebalance events inside `poll`/`recv`/the stream, and the
//! user's [`RebalanceListener`].
//!
//! The group member task (`group::member`) heartbeats on its own and sends
//! [`GroupEvent`]s. The consumer handles them at the start of every poll,
//! before any record is returned:
//!
//! - `Assigned`: the new partitions join the fetcher, starting at the
//!   group's committed offset (or per `auto.offset.reset`); the listener's
//!   `on_partitions_assigned` runs.
//! - `Revoked`: the positions of the revoked partitions are taken, the
//!   partitions leave the fetcher (their buffered records are dropped, so
//!   none is returned after this point), the listener's
//!   `on_partitions_revoked` runs, then the positions (with
//!   `enable.auto.commit`, as Java's consumer does) and whatever the
//!   listener asked to commit are committed. Only then is the revocation
//!   acknowledged and the member goes on to rejoin / release the
//!   partitions, so their next owner starts from those commits.
//! - `Lost`: as revoked, without committing (the partitions may already be
//!   owned by someone else; commits would be refused).
//! - `Failed`: returned as the poll's error.

use super::group::{Ack, GroupEvent, GroupHandle, GroupMember, OffsetToCommit};
use super::*;
use std::sync::Mutex;

/// How often a busy poll loop restarts the `max.poll.interval.ms` clock.
const TICK_EVERY: Duration = Duration::from_millis(100);

/// Callbacks run inside `poll`/`recv`/the stream when the group's
/// rebalances change this consumer's assignment (Java's
/// `ConsumerRebalanceListener`). Set with
/// [`Consumer::subscribe_with_listener`].
///
/// The callbacks are synchronous and cannot borrow the consumer (it is
/// busy polling); they act through the [`RebalanceContext`]: offsets given
/// to [`RebalanceContext::commit`] from `on_partitions_revoked` are
/// committed **before** the revocation is acknowledged to the group, which
/// is the window in which the next owner cannot yet start; a failure of
/// that commit is returned by the poll. Seeks from `on_partitions_assigned`
/// are applied before any record of those partitions is returned.
///
/// ```no_run
/// use kafkawire::consumer::{RebalanceContext, RebalanceListener, TopicPartition};
///
/// struct CommitOnRevoke;
/// impl RebalanceListener for CommitOnRevoke {
///     fn on_partitions_revoked(&mut self, _: &[TopicPartition], ctx: &mut RebalanceContext) {
///         ctx.commit_positions(); // everything returned so far was processed
///     }
/// }
/// ```
pub trait RebalanceListener: Send {
    /// Partitions taken away in an orderly rebalance (or on `unsubscribe`
    /// / `close`). No record of them is returned from now on.
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition], ctx: &mut RebalanceContext) {
        let _ = (partitions, ctx);
    }

    /// Partitions added to the assignment (only the new ones).
    fn on_partitions_assigned(
        &mut self,
        partitions: &[TopicPartition],
        ctx: &mut RebalanceContext,
    ) {
        let _ = (partitions, ctx);
    }

    /// Partitions lost with the membership (session timeout, fencing, poll
    /// timeout): others may own them already, so commits asked here are
    /// not attempted. As in Java, the default calls
    /// [`on_partitions_revoked`](Self::on_partitions_revoked).
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition], ctx: &mut RebalanceContext) {
        self.on_partitions_revoked(partitions, ctx)
    }
}

/// What a [`RebalanceListener`] callback can see and ask for.
#[derive(Debug)]
pub struct RebalanceContext {
    positions: Vec<(TopicPartition, OffsetAndMetadata)>,
    group: Option<GroupMetadata>,
    commits: Vec<(TopicPartition, OffsetAndMetadata)>,
    seeks: Vec<(TopicPartition, OffsetAndMetadata)>,
}

impl RebalanceContext {
    fn new(
        positions: Vec<(TopicPartition, OffsetAndMetadata)>,
        group: Option<GroupMetadata>,
    ) -> Self {
        RebalanceContext {
            positions,
            group,
            commits: Vec::new(),
            seeks: Vec::new(),
        }
    }

    /// The last positions of the partitions concerned (revoked or lost),
    /// i.e. the offsets to commit if everything returned was processed.
    /// Empty for assigned partitions.
    pub fn positions(&self) -> &[(TopicPartition, OffsetAndMetadata)] {
        &self.positions
    }

    /// The group identity at the time of the callback.
    pub fn group_metadata(&self) -> Option<&GroupMetadata> {
        self.group.as_ref()
    }

    /// Commits `offsets` before the rebalance goes on (from
    /// `on_partitions_revoked`; ignored for lost partitions). Later offsets
    /// for the same partition win.
    pub fn commit(&mut self, offsets: Vec<(TopicPartition, OffsetAndMetadata)>) {
        self.commits.extend(offsets);
    }

    /// Commits [`positions`](Self::positions).
    pub fn commit_positions(&mut self) {
        self.commits.extend(self.positions.iter().cloned());
    }

    /// Moves a newly assigned partition's position (from
    /// `on_partitions_assigned`).
    pub fn seek(&mut self, tp: TopicPartition, to: OffsetAndMetadata) {
        self.seeks.push((tp, to));
    }
}

/// A commit that must finish before the group may go on.
struct PendingRebalance {
    commit: PendingCommit,
    ack: Option<Ack>,
    /// Whether a failure is the application's to see (it asked for the
    /// commit) rather than only logged (auto-commit on revocation, as Java).
    report: bool,
}

/// The consumer's membership state while subscribed.
pub(super) struct Subscription {
    pub(super) handle: GroupHandle,
    events: mpsc::Receiver<GroupEvent>,
    /// The topics given to `subscribe` (empty for a pattern).
    topics: Vec<String>,
    /// The pattern given to `subscribe_pattern`, if that is the
    /// subscription.
    pattern: Option<String>,
    listener: Option<Mutex<Box<dyn RebalanceListener>>>,
    pending: Option<PendingRebalance>,
    last_tick: Option<Instant>,
}

pub(super) fn to_member_offsets(
    offsets: &[(TopicPartition, OffsetAndMetadata)],
) -> Vec<OffsetToCommit> {
    offsets
        .iter()
        .map(|(tp, om)| OffsetToCommit {
            topic: tp.topic().to_string(),
            partition: tp.partition(),
            offset: om.offset,
            metadata: (!om.metadata.is_empty()).then(|| om.metadata.clone()),
            leader_epoch: om.leader_epoch,
        })
        .collect()
}

/// Commits the offsets of partitions being revoked. The member has not
/// acknowledged the revocation, so the group cannot complete a newer
/// generation without it, and the broker accepts commits carrying the
/// generation it last completed (as Java's consumer commits from
/// `onJoinPrepare`). The member may already have left its stable state
/// (a heartbeat saw the next rebalance start), so when it has no stable
/// generation the commit carries the last one the consumer saw (`last`).
/// A classic coordinator (Kafka 3.x) also answers REBALANCE_IN_PROGRESS
/// while others have not synced yet; that passes, so it is retried (with
/// backoff, until `deadline`) rather than losing the commit and having the
/// next owner process those records again.
pub(super) async fn commit_while_revoking(
    cluster: &Cluster,
    handle: &GroupHandle,
    last: &GroupMetadata,
    offsets: &[(TopicPartition, OffsetAndMetadata)],
    deadline: Instant,
) -> Result<()> {
    let mut delay = Duration::from_millis(50);
    loop {
        // `last` is the generation the revoked partitions were owned in. The
        // member's own path is used only while it is still in that same
        // generation (it also retries stale KIP-848 epochs).
        let r = match handle.generation() {
            Some(g) if g.generation_id == last.generation_id && g.member_id == last.member_id => {
                handle.commit_offsets(&to_member_offsets(offsets)).await
            }
            _ => offsets::commit(cluster, last, offsets, deadline).await,
        };
        match r {
            Err(e)
                if e.code() == Some(crate::error::ErrorCode::REBALANCE_IN_PROGRESS)
                    && Instant::now() + delay < deadline =>
            {
                tracing::debug!(error = %e, "commit on revocation met a rebalance in progress; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            r => return r,
        }
    }
}

fn from_member(tps: Vec<group::TopicPartition>) -> Vec<TopicPartition> {
    tps.into_iter()
        .map(|(t, p)| TopicPartition::new(t, p))
        .collect()
}

impl Consumer {
    /// Joins the consumer group (`group.id`) subscribed to `topics`; the
    /// group's rebalances then decide the assignment. Membership runs in
    /// the background (heartbeats do not depend on polling), but
    /// assignment changes are applied, and the listener called, inside
    /// `poll`/`recv`/the stream. Poll at least every
    /// `max.poll.interval.ms`, or the member leaves the group.
    ///
    /// Calling it again while subscribed changes the topics (a rebalance
    /// follows). Fails without a `group.id`, with no or empty topic names,
    /// and, with an illegal-state error, while partitions are manually
    /// assigned (as in Java: `unsubscribe` or `assign(&[])` first).
    ///
    /// Commits made while subscribed carry the member's generation (or
    /// KIP-848 member epoch); they fail once the group rebalanced the
    /// partitions away.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        self.subscribe_inner(topics, None)
    }

    /// As [`subscribe`](Self::subscribe), with a listener called on every
    /// assignment change (replacing any previous listener).
    pub fn subscribe_with_listener(
        &mut self,
        topics: &[&str],
        listener: impl RebalanceListener + 'static,
    ) -> Result<()> {
        self.subscribe_inner(topics, Some(Box::new(listener)))
    }

    /// Joins the consumer group subscribed to every topic whose whole name
    /// matches the regular expression `pattern` (as Java's
    /// `subscribe(Pattern)`: `orders-.*` matches `orders-eu`, not
    /// `old-orders-eu`; internal topics never match). The matching set is
    /// re-evaluated on every metadata refresh, every `metadata.max.age.ms`:
    /// topics created later join the subscription (a rebalance follows).
    /// [`subscription`](Self::subscription) lists the current matches.
    /// Otherwise as [`subscribe`](Self::subscribe); a bad pattern is a
    /// config error naming it.
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        self.subscribe_pattern_inner(pattern, None)
    }

    /// As [`subscribe_pattern`](Self::subscribe_pattern), with a listener
    /// called on every assignment change (replacing any previous listener).
    pub fn subscribe_pattern_with_listener(
        &mut self,
        pattern: &str,
        listener: impl RebalanceListener + 'static,
    ) -> Result<()> {
        self.subscribe_pattern_inner(pattern, Some(Box::new(listener)))
    }

    fn subscribe_pattern_inner(
        &mut self,
        pattern: &str,
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<()> {
        let Some(gcfg) = self.cfg.group_config() else {
            return Err(Error::config(
                "group.id",
                "subscribe_pattern() needs a group.id",
            ));
        };
        let re = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            Error::config(
                "subscribe_pattern",
                format!("`{pattern}` is not a valid regular expression: {e}"),
            )
        })?;
        if self.sub.is_none() && !self.parts.is_empty() {
            return Err(Error::illegal_state(
                "subscribe_pattern() with manually assigned partitions: subscription and manual assignment are \
                 mutually exclusive (call unsubscribe() or assign(&[]) first)",
            ));
        }
        let listener = listener.map(Mutex::new);
        if let Some(sub) = &mut self.sub {
            if listener.is_some() {
                sub.listener = listener;
            }
            if sub.pattern.as_deref() != Some(pattern) {
                sub.pattern = Some(pattern.to_string());
                sub.topics.clear();
                sub.handle.update_pattern(re);
            }
            return Ok(());
        }
        let (handle, events) = GroupMember::start(self.cluster.clone(), gcfg, Vec::new())?;
        handle.update_pattern(re);
        self.sub = Some(Subscription {
            handle,
            events,
            topics: Vec::new(),
            pattern: Some(pattern.to_string()),
            listener,
            pending: None,
            last_tick: None,
        });
        Ok(())
    }

    fn subscribe_inner(
        &mut self,
        topics: &[&str],
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<()> {
        let Some(gcfg) = self.cfg.group_config() else {
            return Err(Error::config(
                "group.id",
                "subscribe() needs a group.id (use assign() without one)",
            ));
        };
        if topics.is_empty() {
            return Err(Error::illegal_state(
                "subscribe() with no topics (call unsubscribe() to leave the group)",
            ));
        }
        if let Some(t) = topics.iter().find(|t| t.trim().is_empty()) {
            return Err(Error::illegal_state(format!(
                "subscribe(): topic name `{t}` is empty"
            )));
        }
        if self.sub.is_none() && !self.parts.is_empty() {
            return Err(Error::illegal_state(
                "subscribe() with manually assigned partitions: subscription and manual assignment are \
                 mutually exclusive (call unsubscribe() or assign(&[]) first)",
            ));
        }
        let mut names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        names.sort();
        names.dedup();
        let listener = listener.map(Mutex::new);
        if let Some(sub) = &mut self.sub {
            if listener.is_some() {
                sub.listener = listener;
            }
            if sub.topics != names || sub.pattern.is_some() {
                sub.topics = names.clone();
                sub.pattern = None;
                sub.handle.update_subscription(names);
            }
            return Ok(());
        }
        let (handle, events) = GroupMember::start(self.cluster.clone(), gcfg, names.clone())?;
        self.sub = Some(Subscription {
            handle,
            events,
            topics: names,
            pattern: None,
            listener,
            pending: None,
            last_tick: None,
        });
        Ok(())
    }

    /// The topics subscribed to (empty when not subscribed); for a pattern
    /// subscription, the topics it matches now.
    pub fn subscription(&self) -> Vec<String> {
        match &self.sub {
            Some(s) if s.pattern.is_some() => s.handle.topics(),
            Some(s) => s.topics.clone(),
            None => Vec::new(),
        }
    }

    /// Leaves the group (after the listener's `on_partitions_revoked` for
    /// the whole assignment and, with `enable.auto.commit`, a commit of the
    /// positions) and clears the assignment. Without a subscription, clears
    /// a manual assignment. The first error met is returned; the consumer
    /// is unsubscribed either way.
    pub async fn unsubscribe(&mut self) -> Result<()> {
        let r = if self.sub.is_some() {
            self.leave_group().await
        } else {
            Ok(())
        };
        self.apply_assignment(&[])?;
        r
    }

    /// Revokes everything (listener, commits), then leaves the group.
    pub(super) async fn leave_group(&mut self) -> Result<()> {
        let mut first: Option<Error> = None;
        // Finish a revocation in progress: its commit comes first.
        if let Some(p) = self.sub.as_mut().and_then(|s| s.pending.take()) {
            let r = p.commit.await;
            drop(p.ack);
            if let Err(e) = r {
                if p.report {
                    first.get_or_insert(e);
                }
            }
        }
        let all = self.assignment();
        let positions = self.positions();
        let mut ctx = RebalanceContext::new(positions.clone(), self.group.clone());
        if !all.is_empty() {
            self.with_listener(|l, ctx| l.on_partitions_revoked(&all, ctx), &mut ctx);
        }
        let mut commit: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
        if self.cfg.auto_commit() {
            commit.extend(positions);
        }
        commit.extend(ctx.commits);
        if !commit.is_empty() {
            if let Err(e) = self.start_commit(commit.into_iter().collect()).await {
                first.get_or_insert(e);
            }
        }
        self.apply_assignment(&[])?;
        if let Some(sub) = self.sub.take() {
            // Dropping the receiver acknowledges any event still queued,
            // so the member is free to leave.
            let Subscription { handle, events, .. } = sub;
            drop(events);
            if let Err(e) = handle.leave().await {
                first.get_or_insert(e);
            }
        }
        self.group = self.cfg.group_id.as_ref().map(|g| GroupMetadata {
            group_instance_id: self.cfg.group_instance_id.clone(),
            ..GroupMetadata::new(g.clone())
        });
        first.map_or(Ok(()), Err)
    }

    fn with_listener(
        &mut self,
        f: impl FnOnce(&mut dyn RebalanceListener, &mut RebalanceContext),
        ctx: &mut RebalanceContext,
    ) {
        if let Some(l) = self.sub.as_mut().and_then(|s| s.listener.as_mut()) {
            let l = l.get_mut().unwrap_or_else(|p| p.into_inner());
            f(l.as_mut(), ctx);
        }
    }

    /// Keeps the group identity (for commits and `group_metadata()`)
    /// current with the member's generation.
    fn refresh_group_metadata(&mut self) {
        let Some(sub) = &self.sub else { return };
        if let Some(g) = sub.handle.generation() {
            self.group = Some(GroupMetadata {
                group_id: sub.handle.group_id().to_string(),
                generation_id: g.generation_id,
                member_id: g.member_id,
                group_instance_id: g.group_instance_id,
            });
        }
    }

    /// Runs membership duties before records are handed out: the
    /// `max.poll.interval.ms` tick, a commit-before-ack in progress, and
    /// every queued rebalance event. Pending only while a revocation's
    /// commit is in flight.
    pub(super) fn poll_group(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(sub) = self.sub.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let now = Instant::now();
        if sub
            .last_tick
            .is_none_or(|t| now.duration_since(t) >= TICK_EVERY)
        {
            sub.last_tick = Some(now);
            if let Err(e) = sub.handle.poll_tick() {
                return Poll::Ready(Err(e));
            }
        }
        loop {
            let Some(sub) = self.sub.as_mut() else { break };
            if let Some(p) = &mut sub.pending {
                let r = match Pin::new(&mut p.commit).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r,
                };
                let p = sub.pending.take().expect("pending checked above");
                if let Some(ack) = p.ack {
                    ack.ack();
                }
                if let Err(e) = r {
                    if p.report {
                        return Poll::Ready(Err(e));
                    }
                    tracing::warn!(error = %e, "committing the positions of revoked partitions failed");
                }
            }
            match sub.events.poll_recv(cx) {
                Poll::Ready(Some(ev)) => {
                    if let Err(e) = self.on_group_event(ev) {
                        return Poll::Ready(Err(e));
                    }
                }
                // The member stopped (a failure is reported by poll_tick).
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        self.refresh_group_metadata();
        Poll::Ready(Ok(()))
    }

    fn on_group_event(&mut self, ev: GroupEvent) -> Result<()> {
        self.refresh_group_metadata();
        match ev {
            GroupEvent::Assigned(tps) => {
                let added = from_member(tps);
                tracing::debug!(partitions = ?added, "partitions assigned");
                let mut all = self.assignment();
                all.extend(added.iter().cloned());
                self.apply_assignment(&all)?;
                let mut ctx = RebalanceContext::new(Vec::new(), self.group.clone());
                self.with_listener(|l, ctx| l.on_partitions_assigned(&added, ctx), &mut ctx);
                for (tp, to) in ctx.seeks {
                    self.seek_with_epoch(&tp, to)?;
                }
                if !ctx.commits.is_empty() {
                    let commit = self.start_commit(ctx.commits);
                    self.set_pending(PendingRebalance {
                        commit,
                        ack: None,
                        report: true,
                    });
                }
            }
            GroupEvent::Revoked(tps, ack) => {
                let revoked = from_member(tps);
                tracing::debug!(partitions = ?revoked, "partitions revoked");
                let positions = self.drop_partitions(&revoked)?;
                let mut ctx = RebalanceContext::new(positions.clone(), self.group.clone());
                self.with_listener(|l, ctx| l.on_partitions_revoked(&revoked, ctx), &mut ctx);
                let report = !ctx.commits.is_empty();
                let mut commit: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
                if self.cfg.auto_commit() {
                    commit.extend(positions);
                }
                commit.extend(ctx.commits);
                if commit.is_empty() {
                    ack.ack();
                } else {
                    // Commit under the generation the partitions were owned
                    // in, captured when the member emitted the revocation.
                    let revoking = match (ack.generation(), &self.group) {
                        (Some(g), Some(meta)) => Some(GroupMetadata {
                            group_id: meta.group_id.clone(),
                            generation_id: g.generation_id,
                            member_id: g.member_id.clone(),
                            group_instance_id: g.group_instance_id.clone(),
                        }),
                        (_, meta) => meta.clone(),
                    };
                    let commit = self.start_commit_as(commit.into_iter().collect(), revoking);
                    self.set_pending(PendingRebalance {
                        commit,
                        ack: Some(ack),
                        report,
                    });
                }
            }
            GroupEvent::Lost(tps, ack) => {
                let lost = from_member(tps);
                tracing::debug!(partitions = ?lost, "partitions lost");
                let positions = self.drop_partitions(&lost)?;
                let mut ctx = RebalanceContext::new(positions, self.group.clone());
                self.with_listener(|l, ctx| l.on_partitions_lost(&lost, ctx), &mut ctx);
                ack.ack();
            }
            GroupEvent::Failed(e) => return Err(e),
            #[allow(unreachable_patterns)]
            _ => {}
        }
        Ok(())
    }

    fn set_pending(&mut self, p: PendingRebalance) {
        if let Some(sub) = &mut self.sub {
            // The loop in poll_group waits for one pending commit before
            // taking the next event, so there is never one already.
            debug_assert!(sub.pending.is_none());
            sub.pending = Some(p);
        }
    }

    /// Removes `gone` from the fetcher and returns their last positions.
    fn drop_partitions(
        &mut self,
        gone: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, OffsetAndMetadata)>> {
        let positions: Vec<_> = self
            .positions()
            .into_iter()
            .filter(|(tp, _)| gone.contains(tp))
            .collect();
        let keep: Vec<TopicPartition> = self
            .assignment()
            .into_iter()
            .filter(|tp| !gone.contains(tp))
            .collect();
        self.apply_assignment(&keep)?;
        for tp in gone {
            self.auto_committed.remove(tp);
        }
        Ok(positions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn consumer_stays_send_and_sync() {
        send_sync::<Consumer>();
    }

    #[test]
    fn group_settings_by_java_name() {
        let b = Consumer::builder()
            .set("group.id", "g")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .set("max.poll.interval.ms", "30000")
            .set(
                "partition.assignment.strategy",
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor, range",
            )
            .set("group.protocol", "consumer")
            .set("group.remote.assignor", "uniform")
            .set("group.instance.id", "i-1");
        let c = b.cfg.group_config().unwrap();
        assert_eq!(c.session_timeout, Duration::from_secs(6));
        assert_eq!(c.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(c.max_poll_interval, Duration::from_secs(30));
        assert_eq!(
            c.partition_assignment_strategy,
            vec!["cooperative-sticky", "range"]
        );
        assert_eq!(c.group_protocol, group::GroupProtocol::Consumer);
        assert_eq!(c.group_remote_assignor.as_deref(), Some("uniform"));
        assert_eq!(c.group_instance_id.as_deref(), Some("i-1"));
        let err = Consumer::builder()
            .bootstrap_servers("localhost:9092")
            .group_id("g")
            .set("partition.assignment.strategy", "sticky")
            .build()
            .unwrap_err();
        assert!(
            err.to_string().contains("partition.assignment.strategy"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn subscribe_needs_a_group_and_excludes_assign() {
        let mut c = Consumer::builder()
            .bootstrap_servers("localhost:1")
            .build()
            .unwrap();
        assert!(c
            .subscribe(&["t"])
            .unwrap_err()
            .to_string()
            .contains("group.id"));
        let mut c = Consumer::builder()
            .bootstrap_servers("localhost:1")
            .group_id("g")
            .build()
            .unwrap();
        c.assign(&[TopicPartition::new("t", 0)]).unwrap();
        let e = c.subscribe(&["t"]).unwrap_err();
        assert_eq!(*e.kind(), ErrorKind::IllegalState, "{e}");
        c.assign(&[]).unwrap();
        c.subscribe(&["t"]).unwrap();
        assert_eq!(c.subscription(), vec!["t"]);
        let e = c.assign(&[TopicPartition::new("t", 0)]).unwrap_err();
        assert_eq!(*e.kind(), ErrorKind::IllegalState, "{e}");
        assert!(c.subscribe(&[]).is_err());
    }

    #[tokio::test]
    async fn subscribe_pattern_checks_the_pattern_and_switches_with_subscribe() {
        let mut c = Consumer::builder()
            .bootstrap_servers("localhost:1")
            .build()
            .unwrap();
        assert!(c
            .subscribe_pattern("t.*")
            .unwrap_err()
            .to_string()
            .contains("group.id"));
        let mut c = Consumer::builder()
            .bootstrap_servers("localhost:1")
            .group_id("g")
            .build()
            .unwrap();
        let e = c.subscribe_pattern("orders-(").unwrap_err();
        assert_eq!(*e.kind(), ErrorKind::Config, "{e}");
        assert!(e.to_string().contains("orders-("), "{e}");
        c.subscribe_pattern("orders-.*").unwrap();
        assert!(
            c.subscription().is_empty(),
            "nothing matched yet (no broker)"
        );
        c.subscribe(&["t"]).unwrap();
        assert_eq!(c.subscription(), vec!["t"]);
    }
}
