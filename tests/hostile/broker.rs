//! A scripted one-node Kafka broker on loopback that the real clients talk
//! to: it answers ApiVersions, Metadata, FindCoordinator, InitProducerId,
//! Produce, ListOffsets, Fetch and OffsetFetch with valid responses encoded
//! by kafkawire's own codecs, and lets a test replace the next response of an
//! API with anything (see [`Broker::mutate`]).
//!
//! It serves one topic, [`TOPIC`], whose partitions hold record batches
//! appended by the test ([`Broker::append`]) or by a producer. Fetch
//! sessions are never created (session id 0): every fetch is a full fetch.
//! Requests it does not implement are recorded and the connection is closed.

use bytes::{BufMut, Bytes, BytesMut};
use kafkawire::protocol::frame;
use kafkawire::protocol::messages::*;
use kafkawire::protocol::wire::Reader;
use kafkawire::record::Batches;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The one topic the broker serves.
pub const TOPIC: &str = "hostile";
/// Its topic id.
pub const TOPIC_ID: Uuid = Uuid([0x42; 16]);
/// The broker's node id.
pub const NODE: i32 = 1;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const CORRUPT_MESSAGE: i16 = 2;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

/// What the connection does with one response.
#[derive(Debug)]
pub struct Reply {
    /// The whole frame to write, size prefix included.
    pub frame: Vec<u8>,
    /// Close the connection after writing it.
    pub close: bool,
}

/// Turns the valid response frame (size prefix included) of a response at
/// the given version into what is sent.
pub type Mutator = Box<dyn FnOnce(Vec<u8>, i16) -> Reply + Send>;

/// A batch a producer sent, as the broker stored it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub base_offset: i64,
    pub next_offset: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub bytes: Bytes,
}

/// Everything the broker knows; tests read and script it under the lock.
#[derive(Default)]
pub struct State {
    port: i32,
    /// Batches per partition, base offsets assigned, in offset order.
    pub logs: Vec<Vec<Stored>>,
    /// Responses to replace, per API, oldest first.
    pub mutations: VecDeque<(ApiKey, Mutator)>,
    /// Mutations applied so far.
    pub mutations_applied: u64,
    /// (api key, version) of every request served, in arrival order.
    pub requests: Vec<(i16, i16)>,
    /// Requests of APIs this broker does not implement.
    pub unexpected: Vec<i16>,
    /// Protocol violations by the client (corrupt batches).
    pub violations: Vec<String>,
    /// Answers to InitProducerId, oldest first; then `next_pid` with epoch 0.
    pub producer_ids: VecDeque<(i64, i16)>,
    pub next_pid: i64,
    /// Error codes to answer the next Produce partitions with (not appended).
    pub produce_errors: VecDeque<i16>,
    /// Committed offsets returned by OffsetFetch, per partition.
    pub committed: HashMap<i32, i64>,
}

impl State {
    pub fn log_end(&self, p: usize) -> i64 {
        self.logs[p].last().map_or(0, |b| b.next_offset)
    }
}

/// A running scripted broker; dropping it does not stop it (the runtime of
/// the test does).
#[derive(Clone)]
pub struct Broker {
    pub addr: String,
    state: Arc<Mutex<State>>,
}

impl Broker {
    /// Binds 127.0.0.1 on a free port and serves `partitions` partitions.
    pub async fn start(partitions: usize) -> Broker {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = l.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            port: port as i32,
            logs: vec![Vec::new(); partitions],
            next_pid: 1000,
            ..Default::default()
        }));
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let _ = s.set_nodelay(true);
                tokio::spawn(serve(s, st.clone()));
            }
        });
        Broker {
            addr: format!("127.0.0.1:{port}"),
            state,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one encoded batch (magic 2) to partition `p` at the log end:
    /// rewrites its base offset and leader epoch (not covered by the CRC).
    pub fn append(&self, p: usize, batch: &[u8]) -> i64 {
        let mut st = self.state();
        append(&mut st, p, batch)
    }

    /// Appends raw bytes (hostile batches), served as if they held
    /// `records` records; only the base offset is set to the log end.
    pub fn append_raw(&self, p: usize, bytes: Bytes, records: i64) {
        let mut st = self.state();
        let base = st.log_end(p);
        let mut bytes = bytes.to_vec();
        if bytes.len() >= 8 {
            bytes[..8].copy_from_slice(&base.to_be_bytes());
        }
        let bytes = Bytes::from(bytes);
        st.logs[p].push(Stored {
            base_offset: base,
            next_offset: base + records,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            bytes,
        });
    }

    /// Replaces the next response of `api` with what `m` makes of it.
    pub fn mutate(&self, api: ApiKey, m: Mutator) {
        self.state().mutations.push_back((api, m));
    }

    /// Whether every queued mutation has been applied.
    pub fn mutations_pending(&self) -> usize {
        self.state().mutations.len()
    }
}

fn append(st: &mut State, p: usize, batch: &[u8]) -> i64 {
    let base = st.log_end(p);
    let mut b = batch.to_vec();
    b[0..8].copy_from_slice(&base.to_be_bytes());
    b[12..16].copy_from_slice(&0i32.to_be_bytes());
    let h = Batches::new(Bytes::from(b.clone()))
        .next()
        .expect("one batch")
        .expect("a valid batch");
    let h = *h.header();
    st.logs[p].push(Stored {
        base_offset: base,
        next_offset: h.next_offset(),
        producer_id: h.producer_id,
        producer_epoch: h.producer_epoch,
        base_sequence: h.base_sequence,
        bytes: Bytes::from(b),
    });
    base
}

/// Replaces a frame's size prefix with its real size.
pub fn fix_size(frame: &mut [u8]) {
    let n = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&n.to_be_bytes());
}

async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).await.ok()?;
    let n = i32::from_be_bytes(size);
    assert!(
        (0..64 << 20).contains(&n),
        "client sent a request frame of {n} bytes"
    );
    let mut f = vec![0u8; 4 + n as usize];
    f[..4].copy_from_slice(&size);
    s.read_exact(&mut f[4..]).await.ok()?;
    Some(f)
}

async fn serve(mut s: TcpStream, state: Arc<Mutex<State>>) {
    while let Some(req) = read_frame(&mut s).await {
        let (reply, delay) = {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            respond(&mut st, &req)
        };
        let Some(reply) = reply else { return };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if s.write_all(&reply.frame).await.is_err() || reply.close {
            return;
        }
    }
}

/// Answers one request frame; `None` closes the connection. The duration
/// delays the answer (an empty fetch waits a little, as a broker would).
fn respond(st: &mut State, req: &[u8]) -> (Option<Reply>, Duration) {
    let (key, v, corr) = frame::peek_request_header(req).expect("request header");
    st.requests.push((key, v));
    let mut r = Reader::new(Bytes::copy_from_slice(&req[12..]));
    let mut delay = Duration::ZERO;
    let api = ApiKey::from_i16(key);
    let frame = match api {
        Some(ApiKey::ApiVersions) => {
            answer::<ApiVersionsRequest>(&mut r, v, corr, |_, _| api_versions())
        }
        Some(ApiKey::Metadata) => {
            answer::<MetadataRequest>(&mut r, v, corr, |req, _| metadata(st, req))
        }
        Some(ApiKey::FindCoordinator) => {
            answer::<FindCoordinatorRequest>(&mut r, v, corr, |req, v| find_coordinator(st, req, v))
        }
        Some(ApiKey::InitProducerId) => answer::<InitProducerIdRequest>(&mut r, v, corr, |_, _| {
            let (id, epoch) = st.producer_ids.pop_front().unwrap_or_else(|| {
                st.next_pid += 1;
                (st.next_pid - 1, 0)
            });
            InitProducerIdResponse {
                producer_id: id,
                producer_epoch: epoch,
                ..Default::default()
            }
        }),
        Some(ApiKey::Produce) => {
            answer::<ProduceRequest>(&mut r, v, corr, |req, _| produce(st, req))
        }
        Some(ApiKey::ListOffsets) => {
            answer::<ListOffsetsRequest>(&mut r, v, corr, |req, _| list_offsets(st, req))
        }
        Some(ApiKey::Fetch) => answer::<FetchRequest>(&mut r, v, corr, |req, _| {
            let (resp, empty) = fetch(st, &req);
            if empty {
                delay = Duration::from_millis(req.max_wait_ms.clamp(0, 20) as u64);
            }
            resp
        }),
        Some(ApiKey::OffsetFetch) => {
            answer::<OffsetFetchRequest>(&mut r, v, corr, |req, v| offset_fetch(st, req, v))
        }
        _ => {
            st.unexpected.push(key);
            return (None, delay);
        }
    };
    let api = api.expect("known api");
    let reply = match st.mutations.iter().position(|(k, _)| *k == api) {
        Some(i) => {
            let (_, m) = st.mutations.remove(i).expect("present");
            st.mutations_applied += 1;
            m(frame, v)
        }
        None => Reply {
            frame,
            close: false,
        },
    };
    (Some(reply), delay)
}

/// Decodes a request of type `R` (after the correlation id), lets `h`
/// answer it, and encodes the whole response frame.
fn answer<R: Request>(
    r: &mut Reader,
    v: i16,
    corr: i32,
    h: impl FnOnce(R, i16) -> R::Response,
) -> Vec<u8> {
    // Request header tail: client id (nullable string), then tags in v2.
    let len = r.i16("client id length").expect("client id");
    if len > 0 {
        r.skip(len as usize, "client id").expect("client id");
    }
    if R::request_header_version(v) >= 2 {
        frame::skip_tagged_fields(r).expect("header tags");
    }
    let req = R::decode(r, v)
        .unwrap_or_else(|e| panic!("client sent an undecodable {:?} v{v}: {e}", R::API_KEY));
    let resp = h(req, v);
    let mut out = BytesMut::new();
    out.put_i32(0);
    out.put_i32(corr);
    if R::response_header_version(v) >= 1 {
        out.put_u8(0);
    }
    resp.encode(&mut out, v)
        .unwrap_or_else(|e| panic!("cannot encode the response: {e}"));
    let mut f = out.to_vec();
    fix_size(&mut f);
    f
}

/// The versions advertised: what kafkawire's codecs implement, up to the
/// highest stable version.
fn api_versions() -> ApiVersionsResponse {
    fn v<R: Request>() -> ApiVersion {
        ApiVersion {
            api_key: R::API_KEY.as_i16(),
            min_version: R::VERSIONS.0,
            max_version: R::MAX_STABLE_VERSION,
            ..Default::default()
        }
    }
    ApiVersionsResponse {
        api_keys: vec![
            v::<ProduceRequest>(),
            v::<FetchRequest>(),
            v::<ListOffsetsRequest>(),
            v::<MetadataRequest>(),
            v::<OffsetFetchRequest>(),
            v::<FindCoordinatorRequest>(),
            v::<ApiVersionsRequest>(),
            v::<InitProducerIdRequest>(),
        ],
        ..Default::default()
    }
}

fn metadata(st: &State, req: MetadataRequest) -> MetadataResponse {
    let wanted: Vec<Option<String>> = match &req.topics {
        None => vec![Some(TOPIC.to_string())],
        Some(ts) => ts.iter().map(|t| t.name.clone()).collect(),
    };
    let topics = wanted
        .into_iter()
        .map(|name| {
            if name.as_deref() == Some(TOPIC) {
                MetadataResponseTopic {
                    name,
                    topic_id: TOPIC_ID,
                    partitions: (0..st.logs.len() as i32)
                        .map(|p| MetadataResponsePartition {
                            partition_index: p,
                            leader_id: NODE,
                            leader_epoch: 0,
                            replica_nodes: vec![NODE],
                            isr_nodes: vec![NODE],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }
            } else {
                MetadataResponseTopic {
                    name,
                    error_code: UNKNOWN_TOPIC_OR_PARTITION,
                    ..Default::default()
                }
            }
        })
        .collect();
    MetadataResponse {
        brokers: vec![MetadataResponseBroker {
            node_id: NODE,
            host: "127.0.0.1".into(),
            port: st.port,
            ..Default::default()
        }],
        cluster_id: Some("hostile-cluster".into()),
        controller_id: NODE,
        topics,
        ..Default::default()
    }
}

fn find_coordinator(st: &State, req: FindCoordinatorRequest, v: i16) -> FindCoordinatorResponse {
    if v >= 4 {
        FindCoordinatorResponse {
            coordinators: req
                .coordinator_keys
                .into_iter()
                .map(|key| Coordinator {
                    key,
                    node_id: NODE,
                    host: "127.0.0.1".into(),
                    port: st.port,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    } else {
        FindCoordinatorResponse {
            node_id: NODE,
            host: "127.0.0.1".into(),
            port: st.port,
            ..Default::default()
        }
    }
}

/// Appends like an idempotent Kafka broker: a new producer id or epoch
/// must start at sequence 0, later batches must follow the last one, and a
/// resend of an already stored batch is acknowledged with its offset.
fn produce_partition(st: &mut State, p: usize, records: &Bytes) -> (i16, i64) {
    if let Some(code) = st.produce_errors.pop_front() {
        return (code, -1);
    }
    let mut base = -1;
    for b in Batches::new(records.clone()) {
        let b = match b {
            Ok(b) => b,
            Err(e) => {
                st.violations
                    .push(format!("client sent a corrupt batch: {e}"));
                return (CORRUPT_MESSAGE, -1);
            }
        };
        let h = *b.header();
        if h.producer_id >= 0 {
            let dup = st.logs[p].iter().find(|s| {
                (s.producer_id, s.producer_epoch, s.base_sequence)
                    == (h.producer_id, h.producer_epoch, h.base_sequence)
            });
            if let Some(d) = dup {
                base = d.base_offset;
                continue;
            }
            let last = st.logs[p]
                .iter()
                .rev()
                .find(|s| s.producer_id == h.producer_id && s.producer_epoch == h.producer_epoch);
            let expected = match last {
                Some(s) => {
                    let count = (s.next_offset - s.base_offset) as i32;
                    increment(s.base_sequence, count)
                }
                None => 0,
            };
            if h.base_sequence != expected {
                return (OUT_OF_ORDER_SEQUENCE_NUMBER, -1);
            }
        }
        let at = append(st, p, b.raw());
        if base < 0 {
            base = at;
        }
    }
    (0, base)
}

/// Kafka's sequence arithmetic (wraps from i32::MAX to 0).
pub fn increment(seq: i32, by: i32) -> i32 {
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}

fn produce(st: &mut State, req: ProduceRequest) -> ProduceResponse {
    let mut responses = Vec::new();
    for t in req.topic_data {
        let known = t.name == TOPIC || t.topic_id == TOPIC_ID;
        let mut partition_responses = Vec::new();
        for pd in t.partition_data {
            let (error_code, base_offset) = match (known, usize::try_from(pd.index).ok()) {
                (true, Some(p)) if p < st.logs.len() => {
                    produce_partition(st, p, &pd.records.unwrap_or_default())
                }
                _ => (UNKNOWN_TOPIC_OR_PARTITION, -1),
            };
            partition_responses.push(PartitionProduceResponse {
                index: pd.index,
                error_code,
                base_offset,
                log_append_time_ms: -1,
                log_start_offset: 0,
                ..Default::default()
            });
        }
        responses.push(TopicProduceResponse {
            name: t.name,
            topic_id: t.topic_id,
            partition_responses,
            ..Default::default()
        });
    }
    ProduceResponse {
        responses,
        ..Default::default()
    }
}

fn list_offsets(st: &State, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let known = t.name == TOPIC;
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let idx = usize::try_from(p.partition_index)
                        .ok()
                        .filter(|&i| known && i < st.logs.len());
                    match idx {
                        None => ListOffsetsPartitionResponse {
                            partition_index: p.partition_index,
                            error_code: UNKNOWN_TOPIC_OR_PARTITION,
                            ..Default::default()
                        },
                        Some(i) => ListOffsetsPartitionResponse {
                            partition_index: p.partition_index,
                            timestamp: -1,
                            offset: if p.timestamp == -2 { 0 } else { st.log_end(i) },
                            leader_epoch: 0,
                            ..Default::default()
                        },
                    }
                })
                .collect();
            ListOffsetsTopicResponse {
                name: t.name,
                partitions,
                ..Default::default()
            }
        })
        .collect();
    ListOffsetsResponse {
        topics,
        ..Default::default()
    }
}

/// Returns the response and whether it carries no records at all.
fn fetch(st: &State, req: &FetchRequest) -> (FetchResponse, bool) {
    let mut empty = true;
    let mut budget = req.max_bytes.max(1) as usize;
    let mut responses = Vec::new();
    for t in &req.topics {
        let known = t.topic == TOPIC || t.topic_id == TOPIC_ID;
        let mut partitions = Vec::new();
        for fp in &t.partitions {
            let idx = usize::try_from(fp.partition)
                .ok()
                .filter(|&i| known && i < st.logs.len());
            let mut pd = PartitionData {
                partition_index: fp.partition,
                ..Default::default()
            };
            match idx {
                None => pd.error_code = UNKNOWN_TOPIC_OR_PARTITION,
                Some(i) if fp.fetch_offset > st.log_end(i) || fp.fetch_offset < 0 => {
                    pd.error_code = OFFSET_OUT_OF_RANGE
                }
                Some(i) => {
                    let end = st.log_end(i);
                    pd.high_watermark = end;
                    pd.last_stable_offset = end;
                    pd.log_start_offset = 0;
                    if req.isolation_level == 1 {
                        pd.aborted_transactions = Some(Vec::new());
                    }
                    let mut buf = BytesMut::new();
                    let limit = (fp.partition_max_bytes.max(1) as usize).min(budget);
                    for b in st.logs[i]
                        .iter()
                        .filter(|b| b.next_offset > fp.fetch_offset)
                    {
                        if !buf.is_empty() && buf.len() + b.bytes.len() > limit {
                            break;
                        }
                        buf.extend_from_slice(&b.bytes);
                    }
                    budget = budget.saturating_sub(buf.len());
                    empty &= buf.is_empty();
                    pd.records = Some(buf.freeze());
                }
            }
            partitions.push(pd);
        }
        responses.push(FetchableTopicResponse {
            topic: t.topic.clone(),
            topic_id: t.topic_id,
            partitions,
            ..Default::default()
        });
    }
    (
        FetchResponse {
            responses,
            ..Default::default()
        },
        empty,
    )
}

fn offset_fetch(st: &State, req: OffsetFetchRequest, v: i16) -> OffsetFetchResponse {
    let committed = |p: i32| st.committed.get(&p).copied().unwrap_or(-1);
    if v >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| OffsetFetchResponseGroup {
                group_id: g.group_id,
                topics: g
                    .topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| OffsetFetchResponseTopics {
                        name: t.name,
                        topic_id: t.topic_id,
                        partitions: t
                            .partition_indexes
                            .into_iter()
                            .map(|p| OffsetFetchResponsePartitions {
                                partition_index: p,
                                committed_offset: committed(p),
                                committed_leader_epoch: -1,
                                metadata: Some(String::new()),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        OffsetFetchResponse {
            groups,
            ..Default::default()
        }
    } else {
        let topics = req
            .topics
            .unwrap_or_default()
            .into_iter()
            .map(|t| OffsetFetchResponseTopic {
                name: t.name,
                partitions: t
                    .partition_indexes
                    .into_iter()
                    .map(|p| OffsetFetchResponsePartition {
                        partition_index: p,
                        committed_offset: committed(p),
                        committed_leader_epoch: -1,
                        metadata: Some(String::new()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        OffsetFetchResponse {
            topics,
            ..Default::default()
        }
    }
}
