//! One Fetch round trip to one broker: build the request from the session
//! plan, send it, and turn the response into per-partition outcomes.
//!
//! This runs as its own task per request (so decoding, CRC checks and the
//! aborted-transaction filter of different brokers run in parallel), while
//! the fetcher task keeps owning all state: the job carries everything it
//! needs and returns everything it learned.

use super::aborted::{AbortedFilter, Verdict};
use super::buffer::{BufferPermit, FetchBuffer};
use super::session::SessionRequest;
use crate::cluster::Cluster;
use crate::consumer::config::IsolationLevel;
use crate::consumer::TopicPartition;
use crate::error::{Error, ErrorCode};
use crate::net::{ConnKind, NodeId};
use crate::protocol::messages::fetch::{
    FetchPartition, FetchRequest, FetchTopic, ForgottenTopic, PartitionData,
};
use crate::protocol::messages::Uuid;
use crate::record::{Batch, Batches, DecodeOptions};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Fetched data of one partition, on its way to the application.
///
/// Holds zero-copy slices of the response; its [`BufferPermit`] keeps the
/// bytes counted against `fetch.buffer.max.bytes` until the chunk is
/// dropped.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// Data batches to show, in offset order (aborted and control batches
    /// already removed). The first may start before the fetch offset.
    pub batches: VecDeque<Batch>,
    /// The offset after every complete batch of the response, dropped ones
    /// included: the position once this chunk is consumed.
    pub next_offset: i64,
    /// Reported after the batches: a corrupt batch stops the partition.
    pub error: Option<Error>,
    /// Log end offsets the broker reported with this data.
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub _permit: BufferPermit,
}

/// What the response said about one partition.
#[derive(Debug)]
pub(crate) enum PartResult {
    /// Data (possibly none) and the leader epoch of the last batch.
    Data {
        chunk: Chunk,
        last_epoch: Option<i32>,
    },
    /// A partition-level error code.
    Error(ErrorCode),
    /// The log diverged from what was fetched (KIP-320): truncated to
    /// `end_offset` for `epoch`.
    Diverging { epoch: i32, end_offset: i64 },
}

#[derive(Debug)]
pub(crate) struct PartitionOutcome {
    pub tp: TopicPartition,
    pub result: PartResult,
}

/// A request to send and how to read its answer.
#[derive(Debug)]
pub(crate) struct FetchJob {
    pub node: NodeId,
    pub plan: SessionRequest,
    pub by_id: bool,
    /// Fetch offset of every partition in the session, by topic name.
    pub fetch_offsets: HashMap<TopicPartition, i64>,
    /// Topic names by id, for v13+ responses.
    pub names: HashMap<Uuid, Arc<str>>,
    pub max_bytes: i32,
    pub min_bytes: i32,
    pub max_wait: Duration,
    pub isolation: IsolationLevel,
    pub rack: String,
    pub decode: DecodeOptions,
}

/// How a round trip ended.
#[derive(Debug)]
pub(crate) enum FetchResult {
    /// The broker answered; `session_id` is its session id.
    Ok {
        session_id: i32,
        partitions: Vec<PartitionOutcome>,
    },
    /// The broker cannot address topics by id (version below 13): retry by
    /// name.
    NeedsNames { version: i16 },
    /// Transport failure or a top-level error code.
    Failed(Error),
}

/// Builds the wire request of a job at `version`.
pub(crate) fn build_request(job: &FetchJob, version: i16) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (tp, p) in &job.plan.send {
        let same = topics.last().is_some_and(|t| {
            if job.by_id {
                t.topic_id == p.topic_id
            } else {
                t.topic == tp.topic()
            }
        });
        if !same {
            topics.push(FetchTopic {
                topic: tp.topic().to_string(),
                topic_id: p.topic_id,
                partitions: Vec::new(),
                ..Default::default()
            });
        }
        if let Some(t) = topics.last_mut() {
            t.partitions.push(FetchPartition {
                partition: tp.partition(),
                current_leader_epoch: p.current_leader_epoch,
                fetch_offset: p.fetch_offset,
                last_fetched_epoch: if version >= 12 {
                    p.last_fetched_epoch
                } else {
                    -1
                },
                log_start_offset: -1,
                partition_max_bytes: p.max_bytes,
                ..Default::default()
            });
        }
    }
    let mut forgotten: Vec<ForgottenTopic> = Vec::new();
    for (tp, id) in &job.plan.forget {
        let same = forgotten.last().is_some_and(|t| {
            if job.by_id {
                t.topic_id == *id
            } else {
                t.topic == tp.topic()
            }
        });
        if !same {
            forgotten.push(ForgottenTopic {
                topic: tp.topic().to_string(),
                topic_id: *id,
                ..Default::default()
            });
        }
        if let Some(t) = forgotten.last_mut() {
            t.partitions.push(tp.partition());
        }
    }
    FetchRequest {
        replica_id: -1,
        max_wait_ms: job.max_wait.as_millis().min(i32::MAX as u128) as i32,
        min_bytes: job.min_bytes,
        max_bytes: job.max_bytes,
        isolation_level: job.isolation.as_i8(),
        session_id: job.plan.session_id,
        session_epoch: job.plan.session_epoch,
        topics,
        forgotten_topics_data: forgotten,
        rack_id: job.rack.clone(),
        ..Default::default()
    }
}

/// Sends the job's request and decodes the answer.
pub(crate) async fn run(
    cluster: Arc<Cluster>,
    buffer: Arc<FetchBuffer>,
    job: &FetchJob,
) -> FetchResult {
    let conn = match cluster.connection(job.node, ConnKind::Fetch).await {
        Ok(c) => c,
        Err(e) => return FetchResult::Failed(e),
    };
    let version = match conn.version_of::<FetchRequest>() {
        Ok(v) => v,
        Err(e) => return FetchResult::Failed(e),
    };
    if job.by_id && version < 13 {
        return FetchResult::NeedsNames { version };
    }
    let version = if job.by_id { version } else { version.min(12) };
    let req = build_request(job, version);
    let timeout = cluster.config().request_timeout + job.max_wait;
    let resp = match conn.send_at(&req, version, timeout).await {
        Ok(r) => r,
        Err(e) => return FetchResult::Failed(e),
    };
    let code = ErrorCode(resp.error_code);
    if !code.is_ok() {
        return FetchResult::Failed(
            Error::broker(code, "fetch failed")
                .with_api("Fetch")
                .with_broker(conn.label()),
        );
    }
    let mut out = Vec::new();
    for t in resp.responses {
        let name: Arc<str> = if t.topic.is_empty() {
            match job.names.get(&t.topic_id) {
                Some(n) => n.clone(),
                None => {
                    tracing::debug!(topic_id = %t.topic_id, "fetch response names a topic id not in the session");
                    continue;
                }
            }
        } else {
            Arc::from(t.topic.as_str())
        };
        for p in t.partitions {
            let tp = TopicPartition::from_arc(name.clone(), p.partition_index);
            let Some(&fetch_offset) = job.fetch_offsets.get(&tp) else {
                tracing::debug!(partition = %tp, "fetch response names a partition not in the session");
                continue;
            };
            let result = decode_partition(&tp, p, fetch_offset, job.isolation, job.decode, &buffer);
            out.push(PartitionOutcome { tp, result });
        }
    }
    FetchResult::Ok {
        session_id: resp.session_id,
        partitions: out,
    }
}

/// Turns one partition of a response into what the application will see:
/// batches decoded (headers and CRCs), aborted and control batches removed,
/// and the offset where the next fetch starts.
pub(crate) fn decode_partition(
    tp: &TopicPartition,
    p: PartitionData,
    fetch_offset: i64,
    isolation: IsolationLevel,
    decode: DecodeOptions,
    buffer: &Arc<FetchBuffer>,
) -> PartResult {
    let code = ErrorCode(p.error_code);
    if p.diverging_epoch.epoch >= 0 && p.diverging_epoch.end_offset >= 0 {
        return PartResult::Diverging {
            epoch: p.diverging_epoch.epoch,
            end_offset: p.diverging_epoch.end_offset,
        };
    }
    if !code.is_ok() {
        return PartResult::Error(code);
    }
    let records = p.records.unwrap_or_default();
    let mut filter = match isolation {
        IsolationLevel::ReadCommitted => AbortedFilter::read_committed(
            p.aborted_transactions
                .iter()
                .flatten()
                .map(|a| (a.producer_id, a.first_offset)),
        ),
        IsolationLevel::ReadUncommitted => AbortedFilter::read_uncommitted(),
    };
    let permit = BufferPermit::new(buffer.clone(), records.len());
    let mut batches = VecDeque::new();
    let mut next_offset = fetch_offset;
    let mut last_epoch = None;
    let mut error = None;
    let had_bytes = !records.is_empty();
    let mut progressed = false;
    for b in Batches::with_options(records, decode) {
        let b = match b {
            Ok(b) => b,
            Err(e) => {
                error = Some(corrupt(tp, next_offset, e));
                break;
            }
        };
        let control = if b.is_control() {
            match b.control_record() {
                Ok(c) => c.map(|c| c.kind),
                Err(e) => {
                    error = Some(corrupt(tp, b.base_offset(), e));
                    break;
                }
            }
        } else {
            None
        };
        let verdict = filter.classify(b.header(), control);
        if b.next_offset() <= fetch_offset {
            continue;
        }
        progressed = true;
        next_offset = next_offset.max(b.next_offset());
        if b.magic() >= 2 && b.header().partition_leader_epoch >= 0 {
            last_epoch = Some(b.header().partition_leader_epoch);
        }
        if verdict == Verdict::Deliver {
            batches.push_back(b);
        }
    }
    if had_bytes && !progressed && error.is_none() {
        // Since KIP-74 (Fetch v3) a broker returns at least one whole batch
        // at or after the fetch offset. Without one, fetching again from the
        // same offset would get the same answer forever: report it, as the
        // Java consumer does, instead of spinning silently.
        error = Some(no_progress(tp, fetch_offset));
    }
    PartResult::Data {
        chunk: Chunk {
            batches,
            next_offset,
            error,
            high_watermark: p.high_watermark,
            last_stable_offset: p.last_stable_offset,
            _permit: permit,
        },
        last_epoch,
    }
}

fn no_progress(tp: &TopicPartition, offset: i64) -> Error {
    Error::protocol(format!(
        "the broker returned record data but no complete batch at or after offset {offset} (a truncated \
         or misnumbered batch); seek past it to continue"
    ))
    .with_api("Fetch")
    .with_partition(tp.topic(), tp.partition())
    .with_class(crate::error::ErrorClass::Permanent)
}

fn corrupt(tp: &TopicPartition, offset: i64, e: crate::record::RecordError) -> Error {
    let what = crate::consumer::record_error_summary(&e);
    Error::protocol(format!(
        "{what} at or after offset {offset}; seek past it to continue"
    ))
    .with_source(e)
    .with_api("Fetch")
    .with_partition(tp.topic(), tp.partition())
    .with_class(crate::error::ErrorClass::Permanent)
}
