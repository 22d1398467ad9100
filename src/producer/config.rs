//! Producer settings, named and defaulted as in the Java client, with
//! validation that names the offending field.

use super::partitioner::Partitioner;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::record::Compression;
use std::time::Duration;

/// `acks`: how many replicas must have a record before the leader answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// `acks=0`: the producer does not wait for any answer. Records are
    /// reported as sent once written to the socket, with offset -1.
    None,
    /// `acks=1`: the leader wrote the record to its log.
    Leader,
    /// `acks=all` (`-1`): every in-sync replica has the record. The default,
    /// and required by idempotence.
    #[default]
    All,
}

impl Acks {
    /// The value sent in Produce requests.
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Every producer setting. Build through [`crate::producer::ProducerBuilder`],
/// or fill in and call [`ProducerConfig::validate`].
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Connection, metadata and retry-backoff settings shared by all clients.
    pub client: ClientConfig,
    /// `acks` (default `all`).
    pub acks: Acks,
    /// `linger.ms`: how long a batch may wait for more records (default 5 ms,
    /// as the Java client since 4.0).
    pub linger: Duration,
    /// `batch.size`: target size of one partition's batch in bytes
    /// (default 16384).
    pub batch_size: usize,
    /// `buffer.memory`: bytes of records waiting to be sent, across all
    /// partitions, before `send` blocks (default 32 MiB).
    pub buffer_memory: usize,
    /// `max.block.ms`: how long `send` may wait for metadata or buffer
    /// memory (default 60 s).
    pub max_block: Duration,
    /// `compression.type` (default none).
    pub compression: Compression,
    /// `compression.gzip.level` / `compression.zstd.level`; `None` for the
    /// codec's default.
    pub compression_level: Option<i32>,
    /// `max.request.size`: largest Produce request, and so largest record
    /// (default 1 MiB).
    pub max_request_size: usize,
    /// `delivery.timeout.ms`: bound on the time between `send` returning and
    /// the record's outcome, retries included (default 120 s). Must be at
    /// least `linger.ms + request.timeout.ms`.
    pub delivery_timeout: Duration,
    /// `retries` (default `i32::MAX`: retry until `delivery.timeout.ms`).
    pub retries: u32,
    /// `max.in.flight.requests.per.connection` (default 5; at most 5 with
    /// idempotence).
    pub max_in_flight_requests_per_connection: usize,
    /// `enable.idempotence` (default true).
    pub enable_idempotence: bool,
    /// `partitioner.class` / `partitioner.ignore.keys`.
    pub partitioner: Partitioner,
    /// `transactional.id` (default none). Makes the producer transactional:
    /// call `init_transactions()` once, then send only inside
    /// `begin_transaction()` … `commit_transaction()`/`abort_transaction()`.
    /// Requires idempotence.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms`: how long the coordinator lets a transaction
    /// stay open before aborting it (default 60 s; the broker caps it with
    /// `transaction.max.timeout.ms`).
    pub transaction_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            client: ClientConfig::default(),
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 16 * 1024,
            buffer_memory: 32 * 1024 * 1024,
            max_block: Duration::from_millis(60_000),
            compression: Compression::None,
            compression_level: None,
            max_request_size: 1024 * 1024,
            delivery_timeout: Duration::from_millis(120_000),
            retries: i32::MAX as u32,
            max_in_flight_requests_per_connection: 5,
            enable_idempotence: true,
            partitioner: Partitioner::Default,
            transactional_id: None,
            transaction_timeout: Duration::from_millis(60_000),
        }
    }
}

impl ProducerConfig {
    /// Checks every field; the error names the offending field(s) and rule.
    pub fn validate(&self) -> Result<()> {
        self.client.validate()?;
        if self.enable_idempotence {
            if self.acks != Acks::All {
                return Err(Error::config(
                    "acks",
                    "must be `all` when `enable.idempotence` is true (set acks=all or enable.idempotence=false)",
                ));
            }
            if self.max_in_flight_requests_per_connection > 5 {
                return Err(Error::config(
                    "max.in.flight.requests.per.connection",
                    "must be at most 5 when `enable.idempotence` is true",
                ));
            }
            if self.retries == 0 {
                return Err(Error::config(
                    "retries",
                    "must be greater than 0 when `enable.idempotence` is true",
                ));
            }
        }
        if let Some(id) = &self.transactional_id {
            if id.is_empty() {
                return Err(Error::config("transactional.id", "must not be empty (leave it unset for no transactions)"));
            }
            if !self.enable_idempotence {
                return Err(Error::config(
                    "enable.idempotence",
                    "must be true when `transactional.id` is set (transactions build on idempotence)",
                ));
            }
        }
        if self.transaction_timeout.is_zero() || self.transaction_timeout > Duration::from_millis(i32::MAX as u64) {
            return Err(Error::config("transaction.timeout.ms", "must be between 1 and 2147483647"));
        }
        if self.max_in_flight_requests_per_connection == 0 {
            return Err(Error::config("max.in.flight.requests.per.connection", "must be at least 1"));
        }
        if self.batch_size == 0 || self.batch_size > i32::MAX as usize {
            return Err(Error::config("batch.size", "must be between 1 and 2147483647"));
        }
        if self.max_request_size < 1024 || self.max_request_size > i32::MAX as usize {
            return Err(Error::config("max.request.size", "must be between 1024 and 2147483647"));
        }
        if self.buffer_memory < 1024 {
            return Err(Error::config("buffer.memory", "must be at least 1024 bytes"));
        }
        // Buffer memory is accounted in 32-bit permit counts.
        if self.buffer_memory > u32::MAX as usize {
            return Err(Error::config("buffer.memory", "must be less than 4 GiB"));
        }
        if self.max_block > Duration::from_secs(24 * 3600) {
            return Err(Error::config("max.block.ms", "must be at most one day"));
        }
        let floor = self.linger + self.client.request_timeout;
        if self.delivery_timeout < floor {
            return Err(Error::config(
                "delivery.timeout.ms",
                format!(
                    "must be at least linger.ms + request.timeout.ms ({} ms)",
                    floor.as_millis()
                ),
            ));
        }
        if self.client.request_timeout > Duration::from_millis(i32::MAX as u64) {
            return Err(Error::config("request.timeout.ms", "must fit in 31 bits of milliseconds"));
        }
        self.validate_compression_level()
    }

    /// The level's range depends on the codec, as in the Java client: gzip
    /// 1-9 or -1 (its default), zstd libzstd's -131072..=22 (the pure-Rust
    /// encoder clamps below -7); lz4, snappy and none take no level.
    fn validate_compression_level(&self) -> Result<()> {
        let Some(level) = self.compression_level else {
            return Ok(());
        };
        let (field, ok, rule) = match self.compression {
            Compression::Gzip => ("compression.gzip.level", level == -1 || (1..=9).contains(&level), "must be -1 or 1-9"),
            Compression::Zstd => ("compression.zstd.level", (-131_072..=22).contains(&level), "must be between -131072 and 22"),
            c => return Err(Error::config("compression.type", format!("{c} takes no compression level (the level is set to {level})"))),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::config(field, format!("{rule} (got {level})")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ProducerConfig {
        let mut c = ProducerConfig::default();
        c.client.set_bootstrap_servers("localhost:9092");
        c
    }

    #[test]
    fn defaults_are_valid_and_idempotent() {
        let c = base();
        c.validate().unwrap();
        assert!(c.enable_idempotence);
        assert_eq!(c.acks, Acks::All);
    }

    #[test]
    fn idempotence_conflicts_name_the_fields() {
        let mut c = base();
        c.acks = Acks::Leader;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("acks") && e.contains("enable.idempotence"), "{e}");

        let mut c = base();
        c.max_in_flight_requests_per_connection = 6;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("max.in.flight.requests.per.connection") && e.contains("enable.idempotence"), "{e}");

        let mut c = base();
        c.retries = 0;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("retries") && e.contains("enable.idempotence"), "{e}");

        // Without idempotence, all three are allowed.
        let mut c = base();
        c.enable_idempotence = false;
        c.acks = Acks::None;
        c.retries = 0;
        c.max_in_flight_requests_per_connection = 10;
        c.validate().unwrap();
    }

    #[test]
    fn transactions_require_idempotence_and_a_name() {
        let mut c = base();
        c.transactional_id = Some("tx".into());
        c.validate().unwrap();
        c.enable_idempotence = false;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("enable.idempotence") && e.contains("transactional.id"), "{e}");
        c.enable_idempotence = true;
        c.transactional_id = Some(String::new());
        assert!(c.validate().unwrap_err().to_string().contains("transactional.id"));
    }

    #[test]
    fn compression_levels_are_checked_per_codec() {
        let mut c = base();
        for (codec, good, bad) in [(Compression::Gzip, [-1, 1, 9], 10), (Compression::Zstd, [-5, 3, 22], 23)] {
            c.compression = codec;
            for level in good {
                c.compression_level = Some(level);
                c.validate().unwrap();
            }
            c.compression_level = Some(bad);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(&format!("compression.{codec}.level")) && e.contains(&bad.to_string()), "{e}");
        }
        c.compression = Compression::Lz4;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("compression.type") && e.contains("lz4"), "{e}");
        c.compression_level = None;
        c.validate().unwrap();
    }

    #[test]
    fn delivery_timeout_must_cover_linger_and_request_timeout() {
        let mut c = base();
        c.delivery_timeout = Duration::from_secs(1);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("delivery.timeout.ms"), "{e}");
    }
}
