//! Consumer group membership: the classic protocol (JoinGroup/SyncGroup/
//! Heartbeat/LeaveGroup with client-side assignors) and the KIP-848
//! consumer protocol (ConsumerGroupHeartbeat with server-side assignment).
//!
//! Layers, each knowing only the one below:
//!
//! - [`assignor`]: sans-IO partition assignors (`range`, `roundrobin`,
//!   `cooperative-sticky`) and the consumer-protocol bytes they travel in.
//! - [`classic`] and [`consumer_protocol`]: sans-IO membership state
//!   machines. They are fed responses and the current time and say which
//!   request to send next, which rebalance event to hand the consumer, and
//!   when they next need to be woken. Every transition is unit-tested.
//! - [`member`]: the IO task. It owns the coordinator connection and one
//!   state machine, heartbeats on its own timer (never dependent on the
//!   application polling), and talks to the consumer through a
//!   [`member::GroupHandle`] and a channel of [`member::GroupEvent`]s.
//!
//! The consumer (fetcher, positions) drives membership through the handle:
//! it calls [`member::GroupHandle::poll_tick`] on every poll (the
//! `max.poll.interval.ms` contract), reacts to `Assigned`/`Revoked`/`Lost`
//! (committing before acknowledging a revocation, as Java's rebalance
//! listener does), and commits offsets through the handle so commits carry
//! the current generation/member epoch.

pub mod assignor;
pub mod classic;
pub mod consumer_protocol;
pub mod member;

pub use member::{Ack, CommittedOffset, GroupEvent, GroupHandle, GroupMember, OffsetToCommit};

pub use assignor::TopicPartition;

use crate::error::{Error, Result};
use std::time::Duration;

/// Which group protocol a member speaks (Java's `group.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup with client-side assignment (all Kafka versions).
    #[default]
    Classic,
    /// KIP-848 ConsumerGroupHeartbeat with server-side assignment (Kafka 4.0+).
    Consumer,
}

impl GroupProtocol {
    /// Parses Java's `group.protocol` values `classic` and `consumer`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "classic" => Ok(GroupProtocol::Classic),
            "consumer" => Ok(GroupProtocol::Consumer),
            other => Err(Error::config(
                "group.protocol",
                format!("`{other}` is not one of classic, consumer"),
            )),
        }
    }
}

/// Group settings, named and defaulted as in the Java consumer.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.id`.
    pub group_id: String,
    /// `group.instance.id`: makes the member static (KIP-345). A static
    /// member that restarts within the session timeout gets its partitions
    /// back without a rebalance; it does not leave the group on close.
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms` (classic only; KIP-848 groups use the broker's
    /// `group.consumer.session.timeout.ms`).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (classic only; KIP-848 brokers dictate it).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`: the longest the application may go without
    /// polling before the member leaves the group. Also the rebalance
    /// timeout sent to the broker, as in Java.
    pub max_poll_interval: Duration,
    /// `partition.assignment.strategy` (classic): assignor names in order of
    /// preference.
    pub partition_assignment_strategy: Vec<String>,
    /// `group.protocol`.
    pub group_protocol: GroupProtocol,
    /// `group.remote.assignor` (KIP-848): server-side assignor name, or the
    /// broker's default when `None`.
    pub group_remote_assignor: Option<String>,
    /// `client.rack`.
    pub client_rack: Option<String>,
}

impl GroupConfig {
    /// Java's defaults for `group_id`.
    pub fn new(group_id: impl Into<String>) -> Self {
        GroupConfig {
            group_id: group_id.into(),
            group_instance_id: None,
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(3_000),
            max_poll_interval: Duration::from_millis(300_000),
            partition_assignment_strategy: vec!["range".into(), "cooperative-sticky".into()],
            group_protocol: GroupProtocol::Classic,
            group_remote_assignor: None,
            client_rack: None,
        }
    }

    /// The rebalance timeout sent to the broker: `max.poll.interval.ms`.
    pub fn rebalance_timeout(&self) -> Duration {
        self.max_poll_interval
    }

    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<()> {
        if self.group_id.is_empty() {
            return Err(Error::config(
                "group.id",
                "must not be empty for a group member",
            ));
        }
        if self.group_instance_id.as_deref() == Some("") {
            return Err(Error::config(
                "group.instance.id",
                "must not be empty when set",
            ));
        }
        let ms = |d: Duration| d.as_millis();
        for (name, d) in [
            ("session.timeout.ms", self.session_timeout),
            ("heartbeat.interval.ms", self.heartbeat_interval),
            ("max.poll.interval.ms", self.max_poll_interval),
        ] {
            if d.is_zero() || ms(d) > i32::MAX as u128 {
                return Err(Error::config(name, "must be between 1 and 2147483647 ms"));
            }
        }
        if self.group_protocol == GroupProtocol::Classic
            && self.heartbeat_interval >= self.session_timeout
        {
            return Err(Error::config(
                "heartbeat.interval.ms",
                "must be lower than session.timeout.ms",
            ));
        }
        if self.group_protocol == GroupProtocol::Classic {
            if self.partition_assignment_strategy.is_empty() {
                return Err(Error::config(
                    "partition.assignment.strategy",
                    "must name at least one assignor",
                ));
            }
            for n in &self.partition_assignment_strategy {
                if assignor::by_name(n).is_none() {
                    return Err(Error::config(
                        "partition.assignment.strategy",
                        format!(
                            "unknown assignor `{n}` (known: range, roundrobin, cooperative-sticky)"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The member's identity in its current generation, for offset commits
/// (including transactional ones, KIP-447).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// The classic generation id, or the KIP-848 member epoch.
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_java_s_and_validation_names_fields() {
        let c = GroupConfig::new("g");
        assert_eq!(c.session_timeout, Duration::from_secs(45));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(3));
        assert_eq!(c.rebalance_timeout(), Duration::from_secs(300));
        assert_eq!(
            c.partition_assignment_strategy,
            vec!["range", "cooperative-sticky"]
        );
        c.validate().unwrap();
        let mut bad = c.clone();
        bad.partition_assignment_strategy = vec!["sticky".into()];
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("partition.assignment.strategy"));
        let mut bad = c.clone();
        bad.heartbeat_interval = Duration::from_secs(50);
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("heartbeat.interval.ms"));
        assert!(GroupConfig::new("").validate().is_err());
        assert_eq!(
            GroupProtocol::parse("CONSUMER").unwrap(),
            GroupProtocol::Consumer
        );
        assert!(GroupProtocol::parse("x").is_err());
    }
}
