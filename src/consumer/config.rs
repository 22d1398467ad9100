//! Consumer settings, named as in the Java client, with validation that
//! names the field and the rule.

use super::group::{GroupConfig, GroupProtocol};
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use std::time::Duration;

/// `isolation.level`: which records a fetch may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IsolationLevel {
    /// Every record up to the high watermark, including records of open and
    /// aborted transactions (the Java default).
    #[default]
    ReadUncommitted,
    /// Only records up to the last stable offset (LSO), without the records
    /// of aborted transactions. An open transaction holds consumption of
    /// its partition at the LSO until it ends.
    ReadCommitted,
}

impl IsolationLevel {
    /// The protocol value (0 or 1).
    pub fn as_i8(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// `auto.offset.reset`: where to start when there is no committed offset,
/// or when the position is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OffsetReset {
    /// The earliest offset still in the log.
    Earliest,
    /// The end of the log (the Java default): only records produced from now.
    #[default]
    Latest,
    /// No automatic reset: `poll` returns an error naming the partition
    /// ([`ErrorKind::NotFound`](crate::ErrorKind::NotFound) for a missing
    /// committed offset, OFFSET_OUT_OF_RANGE otherwise) until the
    /// application seeks.
    None,
}

impl std::str::FromStr for OffsetReset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "earliest" => Ok(OffsetReset::Earliest),
            "latest" => Ok(OffsetReset::Latest),
            "none" => Ok(OffsetReset::None),
            other => Err(Error::config(
                "auto.offset.reset",
                format!("`{other}` is not one of earliest, latest, none"),
            )),
        }
    }
}

impl std::str::FromStr for IsolationLevel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "read_uncommitted" => Ok(IsolationLevel::ReadUncommitted),
            "read_committed" => Ok(IsolationLevel::ReadCommitted),
            other => Err(Error::config(
                "isolation.level",
                format!("`{other}` is not one of read_uncommitted, read_committed"),
            )),
        }
    }
}

/// Everything a [`Consumer`](super::Consumer) is configured with.
///
/// Defaults follow the Java client; the one kafkawire-specific setting is
/// `fetch.buffer.max.bytes`.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Connection, retry and metadata settings shared with other clients.
    pub client: ClientConfig,
    /// `group.id`: the consumer group whose committed offsets are read and
    /// written. Without it, commits are refused and positions start from
    /// `auto.offset.reset`.
    pub group_id: Option<String>,
    /// `group.instance.id`: static membership id (KIP-345), sent with
    /// commits. A static member keeps its partitions reserved for
    /// `session.timeout.ms` after it stops and does not leave on close.
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms` (classic protocol; KIP-848 groups use the
    /// broker's `group.consumer.session.timeout.ms`). Default 45 s.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (classic protocol; KIP-848 brokers dictate
    /// it). Default 3 s.
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`: the longest the application may go between
    /// polls while subscribed before the member leaves the group; also the
    /// rebalance timeout. Default 5 min.
    pub max_poll_interval: Duration,
    /// `partition.assignment.strategy` (classic protocol): assignor names
    /// in order of preference, `range`, `roundrobin`, `cooperative-sticky`
    /// (Java class names are accepted by `set`). Default range,
    /// cooperative-sticky.
    pub partition_assignment_strategy: Vec<String>,
    /// `group.protocol`: classic (default) or consumer (KIP-848, Kafka 4.0+).
    pub group_protocol: GroupProtocol,
    /// `group.remote.assignor` (KIP-848): the broker-side assignor, or the
    /// broker's default when unset.
    pub group_remote_assignor: Option<String>,
    /// `isolation.level`. Default read_uncommitted.
    pub isolation_level: IsolationLevel,
    /// `auto.offset.reset`. Default latest.
    pub auto_offset_reset: OffsetReset,
    /// `enable.auto.commit`: commit the positions of returned records every
    /// `auto.commit.interval.ms` (from `poll`) and on close. Only in effect
    /// with a `group.id`. Default true.
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms`. Default 5 s.
    pub auto_commit_interval: Duration,
    /// `fetch.min.bytes`: the broker waits for this much data (or
    /// `fetch.max.wait.ms`) before answering. Default 1.
    pub fetch_min_bytes: i32,
    /// `fetch.max.wait.ms`. Default 500 ms.
    pub fetch_max_wait: Duration,
    /// `fetch.max.bytes`: upper bound of one fetch response (a single batch
    /// larger than this is still returned, so consumption progresses).
    /// Default 50 MiB.
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`: per-partition bound of one fetch
    /// response (same exception). Default 1 MiB.
    pub max_partition_fetch_bytes: i32,
    /// `max.poll.records`: most records one [`poll`](super::Consumer::poll)
    /// returns. Default 500.
    pub max_poll_records: usize,
    /// `check.crcs`: verify the checksum of every fetched batch. Default true.
    pub check_crcs: bool,
    /// `client.rack`: sent with fetches (for follower fetching). Default empty.
    pub client_rack: String,
    /// `fetch.buffer.max.bytes` (kafkawire): bound on fetched bytes not yet
    /// returned to the application, counting the largest response every
    /// in-flight fetch may bring. Fetching pauses while the buffer is full.
    /// Default 64 MiB.
    pub fetch_buffer_max_bytes: usize,
    /// `fetch.max.decompressed.bytes` (kafkawire): largest size one fetched
    /// batch's records may decompress to. A batch that would exceed it (a
    /// decompression bomb, or a legitimate batch larger than expected) is
    /// an error for its partition, raised as soon as the bound is crossed,
    /// so decompressing never takes more memory than this. Default 256 MiB.
    pub fetch_max_decompressed_bytes: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        let group = GroupConfig::new("");
        ConsumerConfig {
            client: ClientConfig::default(),
            group_id: None,
            group_instance_id: None,
            session_timeout: group.session_timeout,
            heartbeat_interval: group.heartbeat_interval,
            max_poll_interval: group.max_poll_interval,
            partition_assignment_strategy: group.partition_assignment_strategy,
            group_protocol: group.group_protocol,
            group_remote_assignor: None,
            isolation_level: IsolationLevel::ReadUncommitted,
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_millis(5_000),
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            fetch_max_bytes: 52_428_800,
            max_partition_fetch_bytes: 1_048_576,
            max_poll_records: 500,
            check_crcs: true,
            client_rack: String::new(),
            fetch_buffer_max_bytes: 64 << 20,
            fetch_max_decompressed_bytes: 256 << 20,
        }
    }
}

impl ConsumerConfig {
    /// Whether offsets are committed automatically.
    pub fn auto_commit(&self) -> bool {
        self.enable_auto_commit && self.group_id.is_some()
    }

    /// The membership settings for [`subscribe`](super::Consumer::subscribe);
    /// `None` without a `group.id`.
    pub fn group_config(&self) -> Option<GroupConfig> {
        let mut g = GroupConfig::new(self.group_id.clone()?);
        g.group_instance_id = self.group_instance_id.clone();
        g.session_timeout = self.session_timeout;
        g.heartbeat_interval = self.heartbeat_interval;
        g.max_poll_interval = self.max_poll_interval;
        g.partition_assignment_strategy = self.partition_assignment_strategy.clone();
        g.group_protocol = self.group_protocol;
        g.group_remote_assignor = self.group_remote_assignor.clone();
        g.client_rack = (!self.client_rack.is_empty()).then(|| self.client_rack.clone());
        Some(g)
    }

    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<()> {
        self.client.validate()?;
        if let Some(g) = &self.group_id {
            if g.is_empty() {
                return Err(Error::config(
                    "group.id",
                    "must not be empty (leave it unset instead)",
                ));
            }
        }
        if let Some(g) = self.group_config() {
            g.validate()?;
        }
        if self.fetch_min_bytes < 0 {
            return Err(Error::config("fetch.min.bytes", "must be at least 0"));
        }
        if self.fetch_max_bytes < 1 {
            return Err(Error::config("fetch.max.bytes", "must be at least 1"));
        }
        if self.max_partition_fetch_bytes < 1 {
            return Err(Error::config(
                "max.partition.fetch.bytes",
                "must be at least 1",
            ));
        }
        if self.max_poll_records == 0 {
            return Err(Error::config("max.poll.records", "must be at least 1"));
        }
        if self.fetch_max_wait > Duration::from_millis(i32::MAX as u64) {
            return Err(Error::config("fetch.max.wait.ms", "must fit in 32 bits"));
        }
        if self.fetch_max_wait >= self.client.request_timeout {
            return Err(Error::config(
                "fetch.max.wait.ms",
                "must be less than request.timeout.ms",
            ));
        }
        if self.auto_commit_interval.is_zero() && self.auto_commit() {
            return Err(Error::config(
                "auto.commit.interval.ms",
                "must be greater than 0",
            ));
        }
        if self.fetch_buffer_max_bytes < 1024 {
            return Err(Error::config(
                "fetch.buffer.max.bytes",
                "must be at least 1024",
            ));
        }
        if self.fetch_max_decompressed_bytes < 1024 {
            return Err(Error::config(
                "fetch.max.decompressed.bytes",
                "must be at least 1024",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ConsumerConfig {
        let mut c = ConsumerConfig::default();
        c.client.set_bootstrap_servers("localhost:9092");
        c
    }

    #[test]
    fn defaults_match_the_java_client_and_validate() {
        let c = valid();
        c.validate().unwrap();
        assert_eq!(c.fetch_max_bytes, 50 * 1024 * 1024);
        assert_eq!(c.max_partition_fetch_bytes, 1024 * 1024);
        assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
        assert_eq!(c.isolation_level, IsolationLevel::ReadUncommitted);
        assert!(!c.auto_commit(), "no auto-commit without a group");
    }

    #[test]
    fn errors_name_the_field() {
        let mut c = valid();
        c.fetch_max_decompressed_bytes = 100;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("fetch.max.decompressed.bytes"));
        let mut c = valid();
        c.fetch_max_wait = c.client.request_timeout;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("fetch.max.wait.ms"));
        let mut c = valid();
        c.group_id = Some(String::new());
        assert!(c.validate().unwrap_err().to_string().contains("group.id"));
        assert!("sometimes"
            .parse::<OffsetReset>()
            .unwrap_err()
            .to_string()
            .contains("auto.offset.reset"));
        assert_eq!(
            "read_committed".parse::<IsolationLevel>().unwrap(),
            IsolationLevel::ReadCommitted
        );
        let mut c = valid();
        c.group_id = Some("g".into());
        c.heartbeat_interval = c.session_timeout;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("heartbeat.interval.ms"));
    }

    #[test]
    fn group_settings_default_to_java_s() {
        let c = valid();
        assert_eq!(c.session_timeout, Duration::from_secs(45));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(3));
        assert_eq!(c.max_poll_interval, Duration::from_secs(300));
        assert_eq!(
            c.partition_assignment_strategy,
            vec!["range", "cooperative-sticky"]
        );
        assert_eq!(c.group_protocol, GroupProtocol::Classic);
        assert!(c.group_config().is_none());
    }
}
