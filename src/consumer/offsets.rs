//! Offset lookups and commits: ListOffsets to partition leaders, and
//! OffsetFetch / OffsetCommit to the group coordinator.
//!
//! Each call retries what the protocol calls retriable until its deadline:
//! leader moves (after a metadata refresh), NOT_COORDINATOR and
//! COORDINATOR_NOT_AVAILABLE (after a new coordinator lookup),
//! COORDINATOR_LOAD_IN_PROGRESS and UNSTABLE_OFFSET_COMMIT (after a backoff).

use super::{GroupMetadata, OffsetAndMetadata, TopicPartition};
use crate::cluster::{Cluster, CoordinatorType};
use crate::consumer::config::IsolationLevel;
use crate::error::{Error, ErrorCode, ErrorKind, Result};
use crate::net::backoff::Backoff;
use crate::net::ConnKind;
use crate::protocol::messages::list_offsets::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use crate::protocol::messages::offset_commit::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use crate::protocol::messages::offset_fetch::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use crate::protocol::messages::Uuid;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

/// ListOffsets timestamp asking for the log start offset.
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets timestamp asking for the log end (the LSO for read_committed).
pub const LATEST_TIMESTAMP: i64 = -1;

/// One answer of ListOffsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset; -1 when a timestamp lookup found no record at or after
    /// the timestamp.
    pub offset: i64,
    /// The timestamp of that record (-1 for earliest/latest lookups).
    pub timestamp: i64,
    /// The leader epoch of that record, if the broker knows it.
    pub leader_epoch: Option<i32>,
}

fn epoch_opt(e: i32) -> Option<i32> {
    (e >= 0).then_some(e)
}

async fn sleep_backoff(b: &mut Backoff, deadline: Instant) {
    let wait = b
        .on_failure()
        .min(deadline.saturating_duration_since(Instant::now()));
    tokio::time::sleep(wait).await;
}

/// Looks up offsets by timestamp (or [`EARLIEST_TIMESTAMP`] /
/// [`LATEST_TIMESTAMP`]) for each partition, from its leader. Retriable
/// failures are retried until `deadline`; each partition then gets its own
/// result.
pub async fn list_offsets(
    cluster: &Cluster,
    isolation: IsolationLevel,
    query: &[(TopicPartition, i64)],
    deadline: Instant,
) -> Vec<(TopicPartition, Result<ListedOffset>)> {
    let mut done: Vec<(TopicPartition, Result<ListedOffset>)> = Vec::new();
    let mut todo: Vec<(TopicPartition, i64)> = query.to_vec();
    let mut backoff = Backoff::new(
        cluster.config().retry_backoff,
        cluster.config().retry_backoff_max,
    );
    let mut topics: Vec<String> = query.iter().map(|(tp, _)| tp.topic().to_string()).collect();
    topics.sort();
    topics.dedup();
    while !todo.is_empty() {
        let last_chance = Instant::now() >= deadline;
        let snap = match cluster.metadata_for(&topics, deadline).await {
            Ok(s) => s,
            Err(e) => {
                done.extend(todo.drain(..).map(|(tp, _)| (tp, Err(e.clone()))));
                break;
            }
        };
        // Group by leader.
        let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, i64, i32)>> = BTreeMap::new();
        for (tp, ts) in std::mem::take(&mut todo) {
            let info = snap
                .topic(tp.topic())
                .and_then(|t| t.partition(tp.partition()));
            match info {
                Some(p) if p.leader.is_some() => by_leader
                    .entry(p.leader.unwrap_or_default())
                    .or_default()
                    .push((tp, ts, p.leader_epoch)),
                Some(_) => todo.push((tp, ts)),
                None => done.push((
                    tp.clone(),
                    Err(Error::broker(
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                        "partition not in metadata",
                    )
                    .with_api("ListOffsets")
                    .with_partition(tp.topic(), tp.partition())),
                )),
            }
        }
        let mut calls = Vec::new();
        for (leader, parts) in by_leader {
            calls.push(async move {
                let r = match tokio::time::timeout_at(
                    deadline.into(),
                    list_from(cluster, leader, isolation, &parts, deadline),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(Error::timeout(format!(
                        "ListOffsets to broker {leader}: no answer before the deadline"
                    ))),
                };
                (parts, r)
            });
        }
        let mut retry = std::mem::take(&mut todo);
        for (parts, r) in join_all(calls).await {
            match r {
                Err(e) => {
                    for (tp, ts, _) in parts {
                        if e.is_retriable() && !last_chance {
                            retry.push((tp, ts));
                        } else {
                            done.push((tp, Err(e.clone())));
                        }
                    }
                }
                Ok(answers) => {
                    for (tp, ts, _) in parts {
                        match answers.get(&tp) {
                            Some(Ok(lo)) => done.push((tp, Ok(*lo))),
                            Some(Err(e)) if e.is_retriable() && !last_chance => {
                                retry.push((tp, ts))
                            }
                            Some(Err(e)) => done.push((tp, Err(e.clone()))),
                            None if !last_chance => retry.push((tp, ts)),
                            None => done.push((
                                tp.clone(),
                                Err(
                                    Error::protocol("ListOffsets response left the partition out")
                                        .with_partition(tp.topic(), tp.partition()),
                                ),
                            )),
                        }
                    }
                }
            }
        }
        if !retry.is_empty() {
            cluster.request_update();
            sleep_backoff(&mut backoff, deadline).await;
            // Force a refresh so a moved leader is seen.
            let _ = tokio::time::timeout_at(deadline.into(), cluster.refresh(Some(&topics))).await;
        }
        todo = retry;
    }
    done
}

async fn list_from(
    cluster: &Cluster,
    leader: i32,
    isolation: IsolationLevel,
    parts: &[(TopicPartition, i64, i32)],
    deadline: Instant,
) -> Result<HashMap<TopicPartition, Result<ListedOffset>>> {
    let conn = cluster.connection(leader, ConnKind::Fetch).await?;
    let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for (tp, ts, epoch) in parts {
        topics
            .entry(tp.topic())
            .or_default()
            .push(ListOffsetsPartition {
                partition_index: tp.partition(),
                current_leader_epoch: *epoch,
                timestamp: *ts,
                ..Default::default()
            });
    }
    let timeout = deadline
        .saturating_duration_since(Instant::now())
        .max(std::time::Duration::from_millis(100));
    let req = ListOffsetsRequest {
        replica_id: -1,
        isolation_level: isolation.as_i8(),
        topics: topics
            .into_iter()
            .map(|(name, partitions)| ListOffsetsTopic {
                name: name.to_string(),
                partitions,
                ..Default::default()
            })
            .collect(),
        timeout_ms: timeout.as_millis().min(i32::MAX as u128) as i32,
        ..Default::default()
    };
    let resp = conn.send(&req).await?;
    let mut out = HashMap::new();
    for t in resp.topics {
        let name: Arc<str> = Arc::from(t.name.as_str());
        for p in t.partitions {
            let tp = TopicPartition::from_arc(name.clone(), p.partition_index);
            let code = ErrorCode(p.error_code);
            let r = if code.is_ok() {
                Ok(ListedOffset {
                    offset: p.offset,
                    timestamp: p.timestamp,
                    leader_epoch: epoch_opt(p.leader_epoch),
                })
            } else {
                Err(Error::broker(code, "offset lookup failed")
                    .with_api("ListOffsets")
                    .with_broker(conn.label())
                    .with_partition(tp.topic(), tp.partition()))
            };
            out.insert(tp, r);
        }
    }
    Ok(out)
}

/// Minimal join-all over a handful of futures, concurrently, without an
/// extra dependency.
async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::with_capacity(futs.len());
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in set.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Topic ids from metadata, for the OffsetCommit/OffsetFetch versions that
/// address topics by id. Missing ids stay zero (the request then cannot use
/// such a version; the broker rejects it and the caller sees the error).
async fn topic_ids(
    cluster: &Cluster,
    topics: &[String],
    deadline: Instant,
) -> Result<HashMap<String, Uuid>> {
    let snap = cluster.metadata_for(topics, deadline).await?;
    Ok(topics
        .iter()
        .map(|t| (t.clone(), snap.topic(t).map(|i| i.id).unwrap_or_default()))
        .collect())
}

/// What a coordinator-level error means for the retry loop.
fn coordinator_retry(cluster: &Cluster, group: &str, code: ErrorCode) -> bool {
    if code.invalidates_coordinator() {
        cluster.invalidate_coordinator(CoordinatorType::Group, group);
        return true;
    }
    matches!(
        code,
        ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
            | ErrorCode::UNSTABLE_OFFSET_COMMIT
            | ErrorCode::REQUEST_TIMED_OUT
    ) || code.is_retriable()
}

/// The committed offsets of `group` for `partitions` (`None`: nothing
/// committed). With `require_stable` the coordinator waits for pending
/// transactional commits (KIP-447), as `read_committed` consumers need.
pub async fn fetch_committed(
    cluster: &Cluster,
    group: &str,
    partitions: &[TopicPartition],
    require_stable: bool,
    deadline: Instant,
) -> Result<HashMap<TopicPartition, Option<OffsetAndMetadata>>> {
    let mut backoff = Backoff::new(
        cluster.config().retry_backoff,
        cluster.config().retry_backoff_max,
    );
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(tp.topic()).or_default().push(tp.partition());
    }
    let names: Vec<String> = by_topic.keys().map(|s| s.to_string()).collect();
    let ids = topic_ids(cluster, &names, deadline).await?;
    let names_by_id: HashMap<Uuid, &str> = ids.iter().map(|(n, id)| (*id, n.as_str())).collect();
    loop {
        let attempt = async {
            let (_, conn) = cluster
                .coordinator(CoordinatorType::Group, group, deadline)
                .await?;
            let version = conn.version_of::<OffsetFetchRequest>()?;
            let req = if version >= 8 {
                OffsetFetchRequest {
                    groups: vec![OffsetFetchRequestGroup {
                        group_id: group.to_string(),
                        member_id: None,
                        member_epoch: -1,
                        topics: Some(
                            by_topic
                                .iter()
                                .map(|(t, ps)| OffsetFetchRequestTopics {
                                    name: t.to_string(),
                                    topic_id: ids.get(*t).copied().unwrap_or_default(),
                                    partition_indexes: ps.clone(),
                                    ..Default::default()
                                })
                                .collect(),
                        ),
                        ..Default::default()
                    }],
                    require_stable,
                    ..Default::default()
                }
            } else {
                OffsetFetchRequest {
                    group_id: group.to_string(),
                    topics: Some(
                        by_topic
                            .iter()
                            .map(|(t, ps)| OffsetFetchRequestTopic {
                                name: t.to_string(),
                                partition_indexes: ps.clone(),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    require_stable,
                    ..Default::default()
                }
            };
            let resp = conn.send(&req).await?;
            let fail = |code: ErrorCode, what: &str| {
                Error::broker(
                    code,
                    format!("OffsetFetch for group `{group}` failed{what}"),
                )
                .with_api("OffsetFetch")
                .with_broker(conn.label())
            };
            // (topic, partition, offset, epoch, metadata, error)
            let mut rows: Vec<(String, i32, i64, i32, Option<String>, i16)> = Vec::new();
            if version >= 8 {
                let g = resp
                    .groups
                    .into_iter()
                    .find(|g| g.group_id == group)
                    .ok_or_else(|| {
                        Error::protocol("OffsetFetch response did not answer for the group")
                    })?;
                let code = ErrorCode(g.error_code);
                if !code.is_ok() && code != ErrorCode::GROUP_ID_NOT_FOUND {
                    return Err(fail(code, ""));
                }
                for t in g.topics {
                    let name = if t.name.is_empty() {
                        names_by_id
                            .get(&t.topic_id)
                            .map(|s| s.to_string())
                            .unwrap_or_default()
                    } else {
                        t.name
                    };
                    for p in t.partitions {
                        rows.push((
                            name.clone(),
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata,
                            p.error_code,
                        ));
                    }
                }
            } else {
                let code = ErrorCode(resp.error_code);
                if !code.is_ok() {
                    return Err(fail(code, ""));
                }
                for t in resp.topics {
                    for p in t.partitions {
                        rows.push((
                            t.name.clone(),
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata,
                            p.error_code,
                        ));
                    }
                }
            }
            let mut out = HashMap::new();
            for (topic, partition, offset, epoch, metadata, code) in rows {
                let code = ErrorCode(code);
                if !code.is_ok() {
                    return Err(fail(code, "").with_partition(topic, partition));
                }
                let v = (offset >= 0).then(|| OffsetAndMetadata {
                    offset,
                    leader_epoch: epoch_opt(epoch),
                    metadata: metadata.unwrap_or_default(),
                });
                out.insert(TopicPartition::new(topic, partition), v);
            }
            Ok(out)
        }
        .await;
        match attempt {
            Ok(mut out) => {
                for tp in partitions {
                    out.entry(tp.clone()).or_insert(None);
                }
                return Ok(out);
            }
            Err(e) => {
                let retry = match e.code() {
                    Some(code) => coordinator_retry(cluster, group, code),
                    None => e.is_retriable(),
                };
                if !retry || Instant::now() >= deadline {
                    return Err(e);
                }
                if e.code().is_none() {
                    cluster.invalidate_coordinator(CoordinatorType::Group, group);
                }
                tracing::debug!(error = %e, group, "OffsetFetch failed, retrying");
                sleep_backoff(&mut backoff, deadline).await;
            }
        }
    }
}

/// Commits `offsets` for the group and generation in `group`. A consumer
/// that is not a group member commits with generation -1 and an empty
/// member id (which the coordinator accepts only while the group has no
/// active members).
pub async fn commit(
    cluster: &Cluster,
    group: &GroupMetadata,
    offsets: &[(TopicPartition, OffsetAndMetadata)],
    deadline: Instant,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let gid = group.group_id.as_str();
    let mut backoff = Backoff::new(
        cluster.config().retry_backoff,
        cluster.config().retry_backoff_max,
    );
    let mut by_topic: BTreeMap<&str, Vec<&(TopicPartition, OffsetAndMetadata)>> = BTreeMap::new();
    for o in offsets {
        by_topic.entry(o.0.topic()).or_default().push(o);
    }
    let names: Vec<String> = by_topic.keys().map(|s| s.to_string()).collect();
    let ids = topic_ids(cluster, &names, deadline).await?;
    let names_by_id: HashMap<Uuid, &str> = ids.iter().map(|(n, id)| (*id, n.as_str())).collect();
    let req = OffsetCommitRequest {
        group_id: gid.to_string(),
        generation_id_or_member_epoch: group.generation_id,
        member_id: group.member_id.clone(),
        group_instance_id: group.group_instance_id.clone(),
        retention_time_ms: -1,
        topics: by_topic
            .iter()
            .map(|(t, ps)| OffsetCommitRequestTopic {
                name: t.to_string(),
                topic_id: ids.get(*t).copied().unwrap_or_default(),
                partitions: ps
                    .iter()
                    .map(|(tp, om)| OffsetCommitRequestPartition {
                        partition_index: tp.partition(),
                        committed_offset: om.offset,
                        committed_leader_epoch: om.leader_epoch.unwrap_or(-1),
                        committed_metadata: Some(om.metadata.clone()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    loop {
        let attempt = async {
            let (_, conn) = cluster
                .coordinator(CoordinatorType::Group, gid, deadline)
                .await?;
            let resp = conn.send(&req).await?;
            let mut first_err: Option<Error> = None;
            for t in resp.topics {
                let name = if t.name.is_empty() {
                    names_by_id
                        .get(&t.topic_id)
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                } else {
                    t.name
                };
                for p in t.partitions {
                    let code = ErrorCode(p.error_code);
                    if !code.is_ok() && first_err.is_none() {
                        let mut e =
                            Error::broker(code, format!("offset commit for group `{gid}` failed"))
                                .with_api("OffsetCommit")
                                .with_broker(conn.label())
                                .with_partition(name.clone(), p.partition_index);
                        if matches!(
                            code,
                            ErrorCode::UNKNOWN_MEMBER_ID
                                | ErrorCode::ILLEGAL_GENERATION
                                | ErrorCode::REBALANCE_IN_PROGRESS
                                | ErrorCode::FENCED_INSTANCE_ID
                                | ErrorCode::STALE_MEMBER_EPOCH
                        ) {
                            // The group moved on: this commit can never succeed.
                            e = e.with_class(crate::error::ErrorClass::Permanent);
                        }
                        first_err = Some(e);
                    }
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        .await;
        match attempt {
            Ok(()) => return Ok(()),
            Err(e) => {
                let retry = match e.code() {
                    Some(
                        ErrorCode::REBALANCE_IN_PROGRESS
                        | ErrorCode::UNKNOWN_MEMBER_ID
                        | ErrorCode::ILLEGAL_GENERATION,
                    ) => false,
                    Some(code) => coordinator_retry(cluster, gid, code),
                    None => e.is_retriable(),
                };
                if !retry || Instant::now() >= deadline {
                    return Err(e);
                }
                if e.code().is_none() {
                    cluster.invalidate_coordinator(CoordinatorType::Group, gid);
                }
                tracing::debug!(error = %e, group = gid, "OffsetCommit failed, retrying");
                sleep_backoff(&mut backoff, deadline).await;
            }
        }
    }
}

/// An error for calls that need a `group.id`.
pub fn no_group(what: &str) -> Error {
    Error::new(
        ErrorKind::IllegalState,
        format!("{what} needs a `group.id` in the consumer config"),
    )
}
