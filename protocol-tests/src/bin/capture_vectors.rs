//! Captures golden record-batch vectors from real Kafka into a directory
//! (normally `protocol-tests/vectors/`, through `regenerate.sh`).
//!
//! For each producer (the Java client and librdkafka, run through the
//! interop peers), each compression, with and without headers, and for
//! transactions (one committed, one aborted), it produces records to a fresh
//! one-partition topic, then stores the raw bytes of the Fetch response's
//! `records` field as `<name>.bin`. `manifest.json` describes each vector.
//!
//! The expected records in the manifest come from what the producer was told
//! to write (keys, values, headers, explicit timestamps), with offsets from
//! the producer's own acknowledgements (or, for transactions, from the log
//! layout: each transaction's records, then its marker). Batch boundaries
//! and producer id/epoch are not chosen by the producer: they are read from
//! the raw batch headers by [`walk`] here, a header-only parse independent
//! of kafkawire's decoder. kafkawire is used only to send the Fetch.
//!
//! Needs KAFKAWIRE_BOOTSTRAP (and KAFKAWIRE_KAFKA for the Java peer).

use bytes::Bytes;
use kafkawire::admin::NewTopic;
use kafkawire::cluster::Cluster;
use kafkawire::config::ClientConfig;
use kafkawire::net::ConnKind;
use kafkawire::protocol::messages::fetch::{FetchPartition, FetchRequest, FetchTopic};
use protocol_tests::interop::{self, Peer};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
/// Records per plain vector, and per transaction.
const COUNT: i64 = 6;
const PER_TXN: i64 = 3;
/// Create times are explicit: `TS_BASE + vector index * 1000 + record index`.
const TS_BASE: i64 = 1_700_000_000_000;

/// What a vector's producer is told to write.
struct Spec {
    name: String,
    peer: Peer,
    codec: &'static str,
    /// Plain produce: keyed records with one header each, or unkeyed
    /// records without headers.
    headers: bool,
    transactional: bool,
    timestamp: i64,
    value_prefix: String,
}

#[tokio::main]
async fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: capture_vectors OUT_DIR"),
    );
    std::fs::create_dir_all(&dir).expect("create output dir");
    let mut specs = Vec::new();
    for peer in Peer::all() {
        let who = match peer {
            Peer::Java => "java",
            Peer::Rdkafka => "rdkafka",
        };
        for codec in CODECS {
            for (kind, headers, transactional) in [
                ("plain", false, false),
                ("headers", true, false),
                ("txn", false, true),
            ] {
                let n = specs.len() as i64;
                specs.push(Spec {
                    name: format!("{who}-{codec}-{kind}"),
                    peer,
                    codec,
                    headers,
                    transactional,
                    timestamp: TS_BASE + n * 1000,
                    // Repetitive, so every codec shrinks the batch (librdkafka
                    // sends a batch uncompressed when compression does not help).
                    value_prefix: format!("{who}-{codec}-{kind}-{}-", "abcd".repeat(16)),
                });
            }
        }
    }
    let cluster = cluster();
    let mut vectors = Vec::new();
    for spec in &specs {
        eprintln!("capturing {}", spec.name);
        let (expected, end) = produce(spec).await;
        let raw = fetch_all(&cluster, &spec.topic(), end).await;
        let batches = walk(&raw);
        let file = format!("{}.bin", spec.name);
        std::fs::write(dir.join(&file), &raw).expect("write vector");
        let producer = match spec.peer {
            Peer::Java => format!("Apache Kafka Java client {}", kafka_version()),
            Peer::Rdkafka => "librdkafka through confluent-kafka (Python) 2.16.1".to_string(),
        };
        let mut v = json!({
            "file": file,
            "producer": producer,
            "compression": spec.codec,
            "transactional": spec.transactional,
            "batches": batches,
            "records": expected,
        });
        if let Some(f) = framing(spec.codec, &raw) {
            v["framing"] = json!(f);
        }
        vectors.push(v);
    }
    let manifest = json!({
        "about": "Record batches written by other clients, as the raw `records` bytes of a Fetch \
                  response from Apache Kafka. Regenerate with regenerate.sh. `records` lists every \
                  record and control marker in offset order as the producer was told to write it; \
                  `batches` (boundaries, producer id/epoch, first bytes of the compressed payload) \
                  is read from the raw batch headers; `framing` names the compressed format.",
        "kafka": kafka_version(),
        "vectors": vectors,
    });
    let text = serde_json::to_string_pretty(&manifest).expect("manifest json") + "\n";
    std::fs::write(dir.join("manifest.json"), text).expect("write manifest");
    eprintln!("wrote {} vectors to {}", specs.len(), dir.display());
}

impl Spec {
    fn topic(&self) -> String {
        format!("vectors-{}-{}", self.name, std::process::id())
    }
}

/// Produces `spec` to a fresh topic and returns the expected records and
/// the offset just past the last one.
async fn produce(spec: &Spec) -> (Vec<Value>, i64) {
    let admin = protocol_tests::admin();
    let topic = spec.topic();
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 1)])
        .await
        .unwrap()
        .into_result()
        .expect("create topic");
    admin
        .wait_for_topics(&[&topic], Duration::from_secs(30))
        .await
        .expect("topic ready");
    let ts = spec.timestamp.to_string();
    let peer = spec.peer;
    let mut args: Vec<String> = [
        "--topic",
        &topic,
        "--partition",
        "0",
        "--compression",
        spec.codec,
        "--timestamp",
        &ts,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--value-prefix".to_string(), spec.value_prefix.clone()]);
    let mut expected = Vec::new();
    if spec.transactional {
        // Transaction 0 commits, transaction 1 aborts: records, marker, records, marker.
        let tid = protocol_tests::unique("vectors-tid");
        args.extend(
            [
                "--transactional-id",
                &tid,
                "--transactions",
                "2",
                "--abort-every",
                "2",
            ]
            .map(String::from),
        );
        args.extend(["--per-transaction".to_string(), PER_TXN.to_string()]);
        let summary = tokio::task::spawn_blocking(move || {
            interop::txn_produce(peer, &args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        let mut offset = 0;
        for t in 0..2 {
            for i in 0..PER_TXN {
                let value = format!("{}{t}-{i}", spec.value_prefix);
                let done = if t == 0 {
                    &summary.committed
                } else {
                    &summary.aborted
                };
                assert!(
                    done.contains(&value),
                    "{}: peer did not report {value}",
                    spec.name
                );
                expected.push(json!({
                    "offset": offset,
                    "timestamp": spec.timestamp + t * PER_TXN + i,
                    "key": null,
                    "value": value,
                    "headers": [],
                }));
                offset += 1;
            }
            expected.push(
                json!({ "offset": offset, "control": if t == 0 { "COMMIT" } else { "ABORT" } }),
            );
            offset += 1;
        }
        (expected, offset)
    } else {
        args.extend(["--count".to_string(), COUNT.to_string()]);
        if spec.headers {
            args.extend(["--key-prefix", "key-", "--headers"].map(String::from));
        }
        let acked = tokio::task::spawn_blocking(move || {
            interop::produce(peer, &args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        assert_eq!(acked.len() as i64, COUNT, "{}: acknowledgements", spec.name);
        for (i, (partition, offset, value)) in acked.into_iter().enumerate() {
            assert_eq!(partition, 0);
            assert_eq!(value, format!("{}{i}", spec.value_prefix));
            let (key, headers) = if spec.headers {
                (
                    json!(format!("key-{i}")),
                    json!([[format!("h{i}"), format!("hv{i}")]]),
                )
            } else {
                (Value::Null, json!([]))
            };
            expected.push(json!({
                "offset": offset,
                "timestamp": spec.timestamp + i as i64,
                "key": key,
                "value": value,
                "headers": headers,
            }));
        }
        (expected, COUNT)
    }
}

fn cluster() -> Arc<Cluster> {
    let mut c = ClientConfig::default();
    c.set_bootstrap_servers(&protocol_tests::bootstrap());
    c.client_id = "capture-vectors".into();
    Cluster::new(c).expect("cluster")
}

fn kafka_version() -> String {
    if protocol_tests::kafka_major() >= 4 {
        "4.4.0"
    } else {
        "3.9.2"
    }
    .to_string()
}

/// Fetches partition 0 of `topic` (read_uncommitted) from offset 0 until
/// `end`, and returns the concatenated raw batches.
async fn fetch_all(cluster: &Arc<Cluster>, topic: &str, end: i64) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    let mut offset = 0i64;
    while offset < end {
        assert!(
            Instant::now() < deadline,
            "{topic}: only offsets below {offset} arrived, want {end}"
        );
        let attempt = async {
            let leader = cluster.leader_for(topic, 0, deadline).await?;
            let conn = cluster.connection(leader, ConnKind::Fetch).await?;
            let id = cluster
                .snapshot()
                .topic(topic)
                .map(|t| t.id)
                .unwrap_or_default();
            let req = FetchRequest {
                max_wait_ms: 200,
                min_bytes: 1,
                max_bytes: 8 << 20,
                topics: vec![FetchTopic {
                    topic: topic.to_string(),
                    topic_id: id,
                    partitions: vec![FetchPartition {
                        partition: 0,
                        fetch_offset: offset,
                        partition_max_bytes: 8 << 20,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            };
            conn.send(&req).await
        }
        .await;
        let records = match attempt {
            Ok(r) => r
                .responses
                .first()
                .and_then(|t| t.partitions.first())
                .and_then(|p| (p.error_code == 0).then(|| p.records.clone()).flatten()),
            Err(e) => {
                eprintln!("fetch {topic}: {e}; retrying");
                None
            }
        };
        let Some(records) = records.filter(|r| !r.is_empty()) else {
            cluster.request_update();
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        // Keep whole batches only; a fetch may end in a partial one.
        for (start, len) in batch_spans(&records) {
            let b = &records[start..start + len];
            let base = i64::from_be_bytes(b[0..8].try_into().unwrap());
            let last = base + i32::from_be_bytes(b[23..27].try_into().unwrap()) as i64;
            if last < offset {
                continue;
            }
            out.extend_from_slice(b);
            offset = last + 1;
        }
    }
    assert_eq!(
        offset, end,
        "{topic}: the log has more than the producer wrote"
    );
    out
}

/// (start, length) of each complete v2 batch in `records`.
fn batch_spans(records: &Bytes) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut at = 0;
    while at + 61 <= records.len() {
        let len = 12 + i32::from_be_bytes(records[at + 8..at + 12].try_into().unwrap()) as usize;
        assert_eq!(records[at + 16], 2, "magic 2 batch expected");
        if at + len > records.len() {
            break;
        }
        spans.push((at, len));
        at += len;
    }
    spans
}

/// Reads each v2 batch header of `raw` (fixed field positions of the
/// RecordBatch format) into the manifest's batch description.
fn walk(raw: &[u8]) -> Vec<Value> {
    let raw = Bytes::copy_from_slice(raw);
    batch_spans(&raw)
        .into_iter()
        .map(|(start, len)| {
            let b = &raw[start..start + len];
            let i16_at = |i: usize| i16::from_be_bytes(b[i..i + 2].try_into().unwrap());
            let i32_at = |i: usize| i32::from_be_bytes(b[i..i + 4].try_into().unwrap());
            let i64_at = |i: usize| i64::from_be_bytes(b[i..i + 8].try_into().unwrap());
            let attributes = i16_at(21);
            let codec = CODECS[(attributes & 7) as usize];
            let mut v = json!({
                "base_offset": i64_at(0),
                "last_offset": i64_at(0) + i32_at(23) as i64,
                "compression": codec,
                "transactional": attributes & 0x10 != 0,
                "control": attributes & 0x20 != 0,
                "producer_id": i64_at(43),
                "producer_epoch": i16_at(51),
                "base_sequence": i32_at(53),
            });
            if codec != "none" {
                v["payload_prefix"] = json!(hex(&b[61..(61 + 8).min(b.len())]));
            }
            v
        })
        .collect()
}

/// The compressed format of the first compressed batch, for snappy and lz4
/// where clients differ.
fn framing(codec: &str, raw: &[u8]) -> Option<String> {
    let raw = Bytes::copy_from_slice(raw);
    let (start, _) = batch_spans(&raw)
        .into_iter()
        .find(|&(s, _)| raw[s + 22] & 7 != 0)?;
    let p = &raw[start + 61..];
    match codec {
        "snappy" if p.starts_with(b"\x82SNAPPY\x00") => Some("xerial-framed snappy".into()),
        "snappy" => Some("raw snappy block (no xerial framing)".into()),
        "lz4" if p.starts_with(&[0x04, 0x22, 0x4d, 0x18]) => Some(format!(
            "LZ4 frame, FLG 0x{:02x} (block checksum {}, content size {}, content checksum {}), BD 0x{:02x}",
            p[4],
            p[4] & 0x10 != 0,
            p[4] & 0x08 != 0,
            p[4] & 0x04 != 0,
            p[5]
        )),
        "lz4" => Some("not an LZ4 frame".into()),
        _ => None,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
