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
    /// as the Java client since 4.0). An upper bound: a lingering batch
    /// leaves up to 1 ms (at most half of linger) early, the rounding of the
    /// runtime's timer, never late.
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
    /// `compression.gzip.level`: -1 (the default, zlib's level 6) or 1-9;
    /// used when `compression.type` is gzip.
    pub compression_gzip_level: Option<i32>,
    /// `compression.lz4.level`: 1-17 (Java's default 9). Accepted and
    /// checked so that Java configurations carry over, but it does not
    /// change the output: the pure-Rust LZ4 encoder has a single level.
    pub compression_lz4_level: Option<i32>,
    /// `compression.zstd.level`: -131072..=22 (default 3; the pure-Rust
    /// encoder treats levels below -7 as -7); used when `compression.type`
    /// is zstd.
    pub compression_zstd_level: Option<i32>,
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
            compression_gzip_level: None,
            compression_lz4_level: None,
            compression_zstd_level: None,
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
                return Err(Error::config(
                    "transactional.id",
                    "must not be empty (leave it unset for no transactions)",
                ));
            }
            if !self.enable_idempotence {
                return Err(Error::config(
                    "enable.idempotence",
                    "must be true when `transactional.id` is set (transactions build on idempotence)",
                ));
            }
        }
        if self.transaction_timeout.is_zero()
            || self.transaction_timeout > Duration::from_millis(i32::MAX as u64)
        {
            return Err(Error::config(
                "transaction.timeout.ms",
                "must be between 1 and 2147483647",
            ));
        }
        if self.max_in_flight_requests_per_connection == 0 {
            return Err(Error::config(
                "max.in.flight.requests.per.connection",
                "must be at least 1",
            ));
        }
        if self.batch_size == 0 || self.batch_size > i32::MAX as usize {
            return Err(Error::config(
                "batch.size",
                "must be between 1 and 2147483647",
            ));
        }
        if self.max_request_size < 1024 || self.max_request_size > i32::MAX as usize {
            return Err(Error::config(
                "max.request.size",
                "must be between 1024 and 2147483647",
            ));
        }
        if self.buffer_memory < 1024 {
            return Err(Error::config(
                "buffer.memory",
                "must be at least 1024 bytes",
            ));
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
            return Err(Error::config(
                "request.timeout.ms",
                "must fit in 31 bits of milliseconds",
            ));
        }
        self.validate_compression_levels()
    }

    /// The level the batches of `compression.type` are compressed at
    /// (`None`: the codec's default), as in the Java client: each codec
    /// reads its own `compression.<codec>.level`.
    pub fn compression_level(&self) -> Option<i32> {
        match self.compression {
            Compression::Gzip => self.compression_gzip_level,
            Compression::Zstd => self.compression_zstd_level,
            _ => None,
        }
    }

    /// Each level is checked against its codec's range, whatever
    /// `compression.type` is (as Java validates every setting).
    fn validate_compression_levels(&self) -> Result<()> {
        type Valid = fn(i32) -> bool;
        let checks: [(&str, Option<i32>, Valid, &str); 3] = [
            (
                "compression.gzip.level",
                self.compression_gzip_level,
                |l| l == -1 || (1..=9).contains(&l),
                "must be -1 or 1-9",
            ),
            (
                "compression.lz4.level",
                self.compression_lz4_level,
                |l| (1..=17).contains(&l),
                "must be 1-17",
            ),
            (
                "compression.zstd.level",
                self.compression_zstd_level,
                |l| (-131_072..=22).contains(&l),
                "must be between -131072 and 22",
            ),
        ];
        for (field, level, valid, rule) in checks {
            if let Some(l) = level.filter(|&l| !valid(l)) {
                return Err(Error::config(field, format!("{rule} (got {l})")));
            }
        }
        Ok(())
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
        assert!(
            e.contains("acks") && e.contains("enable.idempotence"),
            "{e}"
        );

        let mut c = base();
        c.max_in_flight_requests_per_connection = 6;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("max.in.flight.requests.per.connection") && e.contains("enable.idempotence"),
            "{e}"
        );

        let mut c = base();
        c.retries = 0;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("retries") && e.contains("enable.idempotence"),
            "{e}"
        );

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
        assert!(
            e.contains("enable.idempotence") && e.contains("transactional.id"),
            "{e}"
        );
        c.enable_idempotence = true;
        c.transactional_id = Some(String::new());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("transactional.id"));
    }

    #[test]
    fn compression_levels_are_checked_per_codec() {
        type Field = fn(&mut ProducerConfig) -> &mut Option<i32>;
        let fields: [(&str, Field, [i32; 3], [i32; 2]); 3] = [
            (
                "gzip",
                |c| &mut c.compression_gzip_level,
                [-1, 1, 9],
                [0, 10],
            ),
            ("lz4", |c| &mut c.compression_lz4_level, [1, 9, 17], [0, 18]),
            (
                "zstd",
                |c| &mut c.compression_zstd_level,
                [-131_072, 3, 22],
                [-131_073, 23],
            ),
        ];
        for (codec, field, good, bad) in fields {
            // Checked whatever the codec in use, as Java does.
            let mut c = base();
            for level in good {
                *field(&mut c) = Some(level);
                c.validate().unwrap();
            }
            for level in bad {
                *field(&mut c) = Some(level);
                let e = c.validate().unwrap_err().to_string();
                assert!(
                    e.contains(&format!("compression.{codec}.level"))
                        && e.contains(&level.to_string()),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn java_level_keys_are_accepted_by_set() {
        let b = crate::producer::Producer::builder()
            .set("compression.type", "zstd")
            .and_then(|b| b.set("compression.gzip.level", "4"))
            .and_then(|b| b.set("compression.lz4.level", "9"))
            .and_then(|b| b.set("compression.zstd.level", " -2 "))
            .unwrap();
        let c = b.config();
        assert_eq!(
            (
                c.compression_gzip_level,
                c.compression_lz4_level,
                c.compression_zstd_level
            ),
            (Some(4), Some(9), Some(-2))
        );
        assert_eq!(c.compression_level(), Some(-2));
        let e = crate::producer::Producer::builder()
            .set("compression.zstd.level", "fast")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("compression.zstd.level") && e.contains("fast"),
            "{e}"
        );
    }

    #[test]
    fn each_codec_reads_its_own_level() {
        let mut c = base();
        c.compression_gzip_level = Some(9);
        c.compression_lz4_level = Some(12);
        c.compression_zstd_level = Some(-3);
        let expect = [
            (Compression::None, None),
            (Compression::Gzip, Some(9)),
            (Compression::Snappy, None),
            (Compression::Lz4, None),
            (Compression::Zstd, Some(-3)),
        ];
        for (codec, level) in expect {
            c.compression = codec;
            assert_eq!(c.compression_level(), level, "{codec}");
        }
    }

    #[test]
    fn delivery_timeout_must_cover_linger_and_request_timeout() {
        let mut c = base();
        c.delivery_timeout = Duration::from_secs(1);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("delivery.timeout.ms"), "{e}");
    }
}
