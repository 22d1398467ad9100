//! The metadata cache and its refresh policy, without IO.
//!
//! A [`MetadataSnapshot`] is immutable; an update produces a new snapshot,
//! so readers hold an `Arc` without locks. Merging follows KIP-320: partition
//! metadata carrying an older leader epoch than the cached one is stale and
//! ignored (unless the topic was re-created under a new topic id).

use crate::error::ErrorCode;
use crate::net::NodeId;
use crate::protocol::messages::metadata::MetadataResponse;
use crate::protocol::messages::Uuid;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A broker as named by metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: NodeId,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`, bracketing IPv6 literals.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition as named by metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// `None` while the partition has no leader.
    pub leader: Option<NodeId>,
    /// -1 if the broker did not report one.
    pub leader_epoch: i32,
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    pub offline_replicas: Vec<NodeId>,
    pub error: ErrorCode,
}

/// One topic as named by metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub is_internal: bool,
    /// Partitions ordered by partition index.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    pub fn partition(&self, p: i32) -> Option<&PartitionInfo> {
        usize::try_from(p)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .filter(|pi| pi.partition == p)
            .or_else(|| self.partitions.iter().find(|pi| pi.partition == p))
    }
}

/// An immutable view of the cluster.
#[derive(Debug, Clone, Default)]
pub struct MetadataSnapshot {
    pub cluster_id: Option<String>,
    pub controller_id: Option<NodeId>,
    pub brokers: HashMap<NodeId, BrokerInfo>,
    pub topics: HashMap<String, Arc<TopicInfo>>,
    /// Topics the last responses reported as errored, with their error
    /// (e.g. UNKNOWN_TOPIC_OR_PARTITION), so callers can fail fast or wait.
    pub topic_errors: HashMap<String, ErrorCode>,
}

impl MetadataSnapshot {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicInfo>> {
        self.topics.get(name)
    }

    /// The leader of a partition, if known.
    pub fn leader_of(&self, topic: &str, partition: i32) -> Option<NodeId> {
        self.topics.get(topic)?.partition(partition)?.leader
    }

    /// Applies a response. `requested` lists the topics asked for (`None`:
    /// all topics, so topics absent from the response are dropped).
    pub fn merged(
        &self,
        resp: &MetadataResponse,
        requested: Option<&[String]>,
    ) -> MetadataSnapshot {
        let mut next = MetadataSnapshot {
            cluster_id: resp.cluster_id.clone(),
            controller_id: (resp.controller_id >= 0).then_some(resp.controller_id),
            brokers: resp
                .brokers
                .iter()
                .map(|b| {
                    (
                        b.node_id,
                        BrokerInfo {
                            node_id: b.node_id,
                            host: b.host.clone(),
                            port: b.port,
                            rack: b.rack.clone(),
                        },
                    )
                })
                .collect(),
            topics: if requested.is_some() {
                self.topics.clone()
            } else {
                HashMap::new()
            },
            topic_errors: if requested.is_some() {
                self.topic_errors.clone()
            } else {
                HashMap::new()
            },
        };
        for t in &resp.topics {
            let Some(name) = t.name.clone() else { continue };
            let code = ErrorCode(t.error_code);
            if !code.is_ok() {
                // A topic-level error means no usable partition data.
                next.topic_errors.insert(name.clone(), code);
                if code == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION {
                    next.topics.remove(&name);
                }
                continue;
            }
            next.topic_errors.remove(&name);
            let old = self.topics.get(&name);
            let same_topic = old.is_some_and(|o| o.id == Uuid::default() || o.id == t.topic_id);
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| {
                    let fresh = PartitionInfo {
                        partition: p.partition_index,
                        leader: (p.leader_id >= 0).then_some(p.leader_id),
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.clone(),
                        isr: p.isr_nodes.clone(),
                        offline_replicas: p.offline_replicas.clone(),
                        error: ErrorCode(p.error_code),
                    };
                    match old.and_then(|o| o.partition(p.partition_index)) {
                        // KIP-320: never go back to an older leader epoch.
                        Some(cached)
                            if same_topic
                                && fresh.leader_epoch >= 0
                                && cached.leader_epoch > fresh.leader_epoch =>
                        {
                            cached.clone()
                        }
                        _ => fresh,
                    }
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            next.topics.insert(
                name.clone(),
                Arc::new(TopicInfo {
                    name,
                    id: t.topic_id,
                    is_internal: t.is_internal,
                    partitions,
                }),
            );
        }
        next
    }
}

/// When to refresh metadata: on demand (after an error that means it is
/// stale), and at least every `metadata.max.age.ms`; never more often than
/// the retry backoff allows after a failed refresh.
#[derive(Debug, Clone)]
pub struct RefreshPolicy {
    max_age: Duration,
    backoff: crate::net::backoff::BackoffTimer,
    last_success: Option<Instant>,
    requested: bool,
}

impl RefreshPolicy {
    pub fn new(max_age: Duration, retry_backoff: Duration, retry_backoff_max: Duration) -> Self {
        RefreshPolicy {
            max_age,
            backoff: crate::net::backoff::BackoffTimer::new(retry_backoff, retry_backoff_max),
            last_success: None,
            requested: true,
        }
    }

    /// Marks the cache stale: the next check says refresh now (subject to
    /// backoff after failures).
    pub fn request_update(&mut self) {
        self.requested = true;
    }

    /// Whether a refresh is wanted now.
    pub fn is_due(&self, now: Instant) -> bool {
        self.time_to_next(now).is_zero()
    }

    /// How long until the next refresh should start.
    pub fn time_to_next(&self, now: Instant) -> Duration {
        let backoff_wait = self
            .backoff
            .not_before()
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        let age_wait = if self.requested {
            Duration::ZERO
        } else {
            match self.last_success {
                None => Duration::ZERO,
                Some(t) => (t + self.max_age).saturating_duration_since(now),
            }
        };
        backoff_wait.max(age_wait)
    }

    pub fn on_success(&mut self, now: Instant) {
        self.last_success = Some(now);
        self.requested = false;
        self.backoff.succeed();
    }

    pub fn on_failure(&mut self, now: Instant) -> Duration {
        self.backoff.fail(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::metadata::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };

    fn resp(epoch: i32, leader: i32) -> MetadataResponse {
        MetadataResponse {
            cluster_id: Some("c".into()),
            controller_id: 1,
            brokers: vec![
                MetadataResponseBroker {
                    node_id: 1,
                    host: "127.0.0.1".into(),
                    port: 9092,
                    ..Default::default()
                },
                MetadataResponseBroker {
                    node_id: 2,
                    host: "::1".into(),
                    port: 9093,
                    ..Default::default()
                },
            ],
            topics: vec![MetadataResponseTopic {
                name: Some("t".into()),
                topic_id: Uuid([7; 16]),
                partitions: vec![
                    MetadataResponsePartition {
                        partition_index: 1,
                        leader_id: leader,
                        leader_epoch: epoch,
                        ..Default::default()
                    },
                    MetadataResponsePartition {
                        partition_index: 0,
                        leader_id: -1,
                        leader_epoch: epoch,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn merge_orders_partitions_and_reads_leaders() {
        let s = MetadataSnapshot::default().merged(&resp(5, 2), None);
        assert_eq!(s.leader_of("t", 1), Some(2));
        assert_eq!(s.leader_of("t", 0), None, "leader -1 means no leader");
        assert_eq!(s.topic("t").unwrap().partitions[0].partition, 0);
        assert_eq!(s.brokers[&2].address(), "[::1]:9093");
        assert_eq!(s.controller_id, Some(1));
    }

    #[test]
    fn older_leader_epoch_is_ignored_newer_is_taken() {
        let s = MetadataSnapshot::default().merged(&resp(5, 2), None);
        let stale = s.merged(&resp(4, 1), Some(&["t".into()]));
        assert_eq!(stale.leader_of("t", 1), Some(2), "epoch 4 < 5 must not win");
        let fresh = s.merged(&resp(6, 1), Some(&["t".into()]));
        assert_eq!(fresh.leader_of("t", 1), Some(1));
    }

    #[test]
    fn unknown_topic_is_dropped_and_remembered_as_error() {
        let s = MetadataSnapshot::default().merged(&resp(5, 2), None);
        let mut r = resp(5, 2);
        r.topics[0].error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0;
        r.topics[0].partitions.clear();
        let s2 = s.merged(&r, Some(&["t".into()]));
        assert!(s2.topic("t").is_none());
        assert_eq!(
            s2.topic_errors.get("t"),
            Some(&ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
        );
    }

    #[test]
    fn partial_refresh_keeps_other_topics_full_refresh_drops_them() {
        let s = MetadataSnapshot::default().merged(&resp(5, 2), None);
        let mut other = resp(1, 1);
        other.topics[0].name = Some("u".into());
        let partial = s.merged(&other, Some(&["u".into()]));
        assert!(partial.topic("t").is_some() && partial.topic("u").is_some());
        let full = s.merged(&other, None);
        assert!(full.topic("t").is_none() && full.topic("u").is_some());
    }

    #[test]
    fn refresh_policy_due_on_request_age_and_backoff() {
        let t0 = Instant::now();
        let mut p = RefreshPolicy::new(
            Duration::from_secs(300),
            Duration::from_millis(100),
            Duration::from_secs(1),
        );
        assert!(p.is_due(t0), "first refresh is due at once");
        p.on_success(t0);
        assert!(!p.is_due(t0));
        assert!(p.is_due(t0 + Duration::from_secs(300)), "due at max age");
        p.request_update();
        assert!(p.is_due(t0), "due when requested");
        let wait = p.on_failure(t0);
        assert!(!p.is_due(t0), "backoff after a failure");
        assert!(p.is_due(t0 + wait));
    }
}
