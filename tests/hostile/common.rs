//! Test data, client settings and the checks every hostile test shares.

use crate::broker::{Broker, TOPIC};
use bytes::Bytes;
use kafkawire::admin::Admin;
use kafkawire::config::ClientConfig;
use kafkawire::consumer::{Consumer, ConsumerBuilder, ConsumerRecord, OffsetReset, TopicPartition};
use kafkawire::producer::Producer;
use kafkawire::record::{BatchBuilder, BatchOptions, Compression};
use kafkawire::{Error, ErrorKind};
use std::collections::HashMap;
use std::time::Duration;

/// Ceiling on live heap bytes any test may reach. Well above what the
/// tests legitimately use (a decompression bomb is cut at the consumer's
/// 256 MiB bound), well below what trusting one hostile size (2 GiB) costs.
pub const HEAP_CEILING: usize = 1 << 30;

/// Asserts the ceiling on the process's peak live heap; returns the peak.
pub fn assert_heap_bounded(what: &str) -> usize {
    let peak = crate::peak_heap();
    assert!(
        peak < HEAP_CEILING,
        "{what}: peak live heap {} MiB",
        peak >> 20
    );
    peak
}

/// A deterministic generator (SplitMix64), so that a failing mutation can
/// be replayed from its seed.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One record as the test wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub timestamp: i64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Rec {
    pub fn of(r: &ConsumerRecord) -> Rec {
        Rec {
            timestamp: r.timestamp,
            key: r.key.as_deref().unwrap_or_default().to_vec(),
            value: r.value.as_deref().unwrap_or_default().to_vec(),
            headers: r
                .headers()
                .iter()
                .map(|h| (h.key().to_vec(), h.value().map(<[u8]>::to_vec)))
                .collect(),
        }
    }
}

/// The records the broker was given, per partition, by offset.
///
/// "No corrupt record" means: every record the consumer delivers is, in
/// key, value, headers and timestamp, exactly one of these. Those fields
/// are covered by the batch CRC-32C (checked by default), so no mutation
/// can change them undetected. What the CRC does *not* cover is where a
/// batch is said to belong: its base offset (before the CRC'd bytes) and
/// the topic id and partition index of the response around it. A mutation
/// there makes a lying broker, and the client can only believe it: a
/// genuine record may then come out under another offset or partition.
/// So partition and offset are checked only when the responses were valid
/// ([`read_exactly`]).
#[derive(Debug, Default)]
pub struct Originals {
    pub by_partition: Vec<Vec<Rec>>,
    /// Key -> (partition, offset); keys are unique across partitions.
    index: HashMap<Vec<u8>, (i32, i64)>,
}

impl Originals {
    /// Fills each of `partitions` partitions of `broker` with `batches`
    /// batches of 1..=7 records, cycling through every codec.
    pub fn fill(broker: &Broker, partitions: usize, batches: usize) -> Originals {
        let mut o = Originals::default();
        let codecs = Compression::ALL;
        for p in 0..partitions {
            let mut recs: Vec<Rec> = Vec::new();
            for b in 0..batches {
                let n = 1 + (b * 5 + p) % 7;
                let mut builder = BatchBuilder::new(BatchOptions {
                    compression: codecs[(b + p) % codecs.len()],
                    size_limit: usize::MAX,
                    ..BatchOptions::default()
                });
                for _ in 0..n {
                    let i = recs.len();
                    let r = Rec {
                        timestamp: 1_700_000_000_000 + i as i64,
                        key: format!("p{p}-r{i}").into_bytes(),
                        value: format!("value {i} of partition {p} {}", "x".repeat(i % 40))
                            .into_bytes(),
                        headers: vec![
                            (b"h".to_vec(), Some(i.to_string().into_bytes())),
                            (b"null".to_vec(), None),
                        ],
                    };
                    let hs: Vec<(&str, Option<&[u8]>)> =
                        vec![("h", r.headers[0].1.as_deref()), ("null", None)];
                    assert!(builder.append(r.timestamp, Some(&r.key[..]), Some(&r.value[..]), hs));
                    recs.push(r);
                }
                let bytes: Bytes = builder.finish().expect("batch");
                broker.append(p, &bytes);
            }
            for (i, r) in recs.iter().enumerate() {
                o.index.insert(r.key.clone(), (p as i32, i as i64));
            }
            o.by_partition.push(recs);
        }
        o
    }

    /// Checks that `r` is genuine; returns its original partition and
    /// offset.
    pub fn check(&self, r: &ConsumerRecord, context: &dyn std::fmt::Display) -> (i32, i64) {
        let got = Rec::of(r);
        let Some(&(p, i)) = self.index.get(&got.key) else {
            panic!(
                "{context}: delivered a record that was never written: {got:?} at {}-{}",
                r.partition, r.offset
            )
        };
        let want = &self.by_partition[p as usize][i as usize];
        assert_eq!(&got, want, "{context}: record {p}-{i} delivered corrupted");
        (p, i)
    }
}

/// Checks an error that a hostile response may cause: a kafkawire error of
/// a kind that describes a broker fault, never an internal one.
pub fn check_error(e: &Error, context: &dyn std::fmt::Display) {
    let ok = matches!(
        e.kind(),
        ErrorKind::Protocol
            | ErrorKind::Broker(_)
            | ErrorKind::Io
            | ErrorKind::Timeout
            | ErrorKind::UnsupportedVersion
            | ErrorKind::NotFound
            | ErrorKind::TooLarge
    );
    assert!(ok, "{context}: unexpected kind of error {e:?}");
    assert!(
        !e.message().is_empty(),
        "{context}: error without a message {e:?}"
    );
}

/// A consumer with short backoffs and timeouts, so faults are retried fast.
pub fn consumer(broker: &Broker) -> Consumer {
    consumer_builder(broker).build().expect("consumer")
}

/// The settings of [`consumer`], to add to.
pub fn consumer_builder(broker: &Broker) -> ConsumerBuilder {
    Consumer::builder()
        .bootstrap_servers(&broker.addr)
        .auto_offset_reset(OffsetReset::Earliest)
        .set("fetch.max.wait.ms", "5")
        .set("retry.backoff.ms", "1")
        .set("retry.backoff.max.ms", "5")
        .set("reconnect.backoff.ms", "1")
        .set("reconnect.backoff.max.ms", "5")
        .set("request.timeout.ms", "5000")
        .set("max.partition.fetch.bytes", "2048")
}

/// An admin client with short backoffs and timeouts.
pub fn admin(broker: &Broker) -> Admin {
    let mut cfg = ClientConfig::default();
    cfg.set_bootstrap_servers(&broker.addr);
    cfg.retry_backoff = Duration::from_millis(1);
    cfg.retry_backoff_max = Duration::from_millis(5);
    cfg.reconnect_backoff = Duration::from_millis(1);
    cfg.reconnect_backoff_max = Duration::from_millis(5);
    cfg.request_timeout = Duration::from_secs(5);
    cfg.default_api_timeout = Duration::from_secs(10);
    Admin::builder().client_config(cfg).build().expect("admin")
}

/// An idempotent producer with short backoffs.
pub fn producer(broker: &Broker) -> Producer {
    Producer::builder()
        .bootstrap_servers(&broker.addr)
        .linger(Duration::from_millis(0))
        .retry_backoff(Duration::from_millis(1))
        .retry_backoff_max(Duration::from_millis(5))
        .request_timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(20))
        .max_block(Duration::from_secs(20))
        .build()
        .expect("producer")
}

pub fn tp(p: i32) -> TopicPartition {
    TopicPartition::new(TOPIC, p)
}

/// Polls until `want` records of partition `p` from offset `from` arrived,
/// genuine and at their original offsets, or panics after `limit`.
/// Errors on the way (data still in flight from a fault) are checked and
/// tolerated only before the first record.
pub async fn read_exactly(
    c: &mut Consumer,
    o: &Originals,
    p: i32,
    from: i64,
    want: usize,
    context: &dyn std::fmt::Display,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    c.seek(&tp(p), from).expect("seek");
    let mut next = from;
    while next < from + want as i64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{context}: client did not recover: stuck at offset {next}"
        );
        match c.poll(Duration::from_millis(200)).await {
            Ok(recs) => {
                for r in &recs {
                    // Other partitions may still hold data of an earlier
                    // fault: genuine content is all that can be asked.
                    let at = o.check(r, context);
                    if r.partition != p {
                        continue;
                    }
                    assert_eq!(
                        at,
                        (p, r.offset),
                        "{context}: valid data delivered at a wrong partition or offset"
                    );
                    assert_eq!(r.offset, next, "{context}: records skipped or repeated");
                    next += 1;
                }
            }
            Err(e) => {
                check_error(&e, context);
                assert_eq!(next, from, "{context}: error after valid data resumed: {e}");
                // Data of the fault may still have been in flight; a
                // partition that reported corrupt data waits for a seek.
                c.seek(&tp(p), from).expect("seek");
            }
        }
    }
}
