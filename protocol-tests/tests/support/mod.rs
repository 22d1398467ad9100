//! Helpers shared by the producer suites: a small Fetch-based reader that
//! reads a whole topic back (until kafkawire's consumer exists), and record
//! checks.
#![allow(dead_code)]

use bytes::Bytes;
use kafkawire::cluster::Cluster;
use kafkawire::config::ClientConfig;
use kafkawire::net::ConnKind;
use kafkawire::protocol::messages::fetch::{FetchPartition, FetchRequest, FetchTopic};
use kafkawire::record::Batches;
use kafkawire::ErrorCode;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Producer id and epoch of the record's batch (-1 without idempotence).
    pub producer: (i64, i16),
    /// The record's own sequence: its batch's base sequence plus its offset
    /// delta, wrapping from `i32::MAX` to 0 as the broker counts (-1
    /// without idempotence).
    pub sequence: i32,
    /// Base offset of the record's batch.
    pub batch_offset: i64,
}

/// A cluster handle for reading.
pub fn cluster() -> Arc<Cluster> {
    let mut c = ClientConfig::default();
    c.set_bootstrap_servers(&protocol_tests::bootstrap());
    c.client_id = "producer-tests-reader".into();
    Cluster::new(c).expect("cluster")
}

/// Reads every partition of `topic` from offset 0 up to its high watermark
/// (read_uncommitted). Panics after `timeout`.
pub async fn read_all(
    cluster: &Arc<Cluster>,
    topic: &str,
    timeout: Duration,
) -> BTreeMap<i32, Vec<Read>> {
    let deadline = Instant::now() + timeout;
    let snap = cluster
        .metadata_for(&[topic.to_string()], deadline)
        .await
        .expect("metadata for read");
    let info = snap.topic(topic).expect("topic").clone();
    let mut out = BTreeMap::new();
    for p in &info.partitions {
        out.insert(
            p.partition,
            read_partition(cluster, topic, p.partition, deadline).await,
        );
    }
    out
}

/// Reads one partition from offset 0 up to its high watermark.
pub async fn read_partition(
    cluster: &Arc<Cluster>,
    topic: &str,
    partition: i32,
    deadline: Instant,
) -> Vec<Read> {
    let mut records = Vec::new();
    let mut offset = 0i64;
    loop {
        assert!(
            Instant::now() < deadline,
            "reading {topic}-{partition} timed out at offset {offset}"
        );
        let attempt = async {
            let leader = cluster.leader_for(topic, partition, deadline).await?;
            let conn = cluster.connection(leader, ConnKind::Fetch).await?;
            let snap = cluster.snapshot();
            let id = snap.topic(topic).map(|t| t.id).unwrap_or_default();
            let req = FetchRequest {
                max_wait_ms: 100,
                min_bytes: 1,
                max_bytes: 32 << 20,
                topics: vec![FetchTopic {
                    topic: topic.to_string(),
                    topic_id: id,
                    partitions: vec![FetchPartition {
                        partition,
                        fetch_offset: offset,
                        partition_max_bytes: 16 << 20,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            };
            conn.send(&req).await
        }
        .await;
        let resp = match attempt {
            Ok(r) => r,
            Err(e) => {
                eprintln!("read {topic}-{partition}: {e}; retrying");
                cluster.request_update();
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        };
        let Some(pd) = resp.responses.first().and_then(|t| t.partitions.first()) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let code = ErrorCode(pd.error_code);
        if !code.is_ok() {
            eprintln!("read {topic}-{partition}: {}; retrying", code.name());
            cluster.request_update();
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        let hw = pd.high_watermark;
        if let Some(bytes) = pd.records.clone() {
            for batch in Batches::new(bytes) {
                let batch = batch.expect("batch decodes");
                if batch.is_control() {
                    offset = batch.next_offset();
                    continue;
                }
                for r in batch.records().expect("records") {
                    let r = r.expect("record decodes");
                    if r.offset < offset {
                        continue;
                    }
                    offset = r.offset + 1;
                    records.push(Read {
                        offset: r.offset,
                        timestamp: r.timestamp,
                        key: r.key_bytes(),
                        value: r.value_bytes(),
                        headers: r
                            .headers()
                            .iter()
                            .map(|h| {
                                (
                                    h.key_str().expect("utf-8 header key").to_string(),
                                    h.value_bytes(),
                                )
                            })
                            .collect(),
                        producer: (batch.producer_id(), batch.producer_epoch()),
                        sequence: record_sequence(
                            batch.base_sequence(),
                            r.offset - batch.base_offset(),
                        ),
                        batch_offset: batch.base_offset(),
                    });
                }
                offset = offset.max(batch.next_offset());
            }
        }
        if offset >= hw {
            return records;
        }
    }
}

/// The sequence of the record `delta` offsets into a batch whose base
/// sequence is `base` (Kafka's arithmetic: after `i32::MAX` comes 0).
pub fn record_sequence(base: i32, delta: i64) -> i32 {
    if base < 0 {
        return base;
    }
    ((base as i64 + delta) % (i32::MAX as i64 + 1)) as i32
}
