//! One broker connection: a handle that callers clone, and two tasks that own
//! the socket.
//!
//! ```text
//!   callers ──(frame, reply)──▶ writer task ──bytes──▶ socket
//!                                  │ (correlation id, reply), in write order
//!                                  ▼
//!   callers ◀──── body ──────── reader task ◀──bytes── socket
//! ```
//!
//! Invariants:
//! - Callers encode and decode; the tasks only move bytes. The writer patches
//!   the correlation id into the already-encoded frame.
//! - Kafka answers requests on one connection in order, so the reader matches
//!   each response against the oldest pending request; a different correlation
//!   id is a protocol violation that closes the connection.
//! - A pending entry is handed to the reader before its frame is written, so a
//!   response can never arrive for an unknown request.
//! - The number of requests awaiting a response is bounded by the pending
//!   channel's capacity (`max_in_flight`): the writer waits for room.
//! - Any failure (IO error, EOF, malformed frame, request timeout) *poisons*
//!   the connection: the first error is stored, every pending and queued
//!   request fails with it, and every later call fails fast so the pool
//!   replaces the connection.
//! - Cancellation: a request whose caller went away before it was written is
//!   never written. One cancelled after it was written has an unknown outcome
//!   on the broker (its response is read and dropped).

use crate::error::{Error, ErrorKind, Result};
use crate::protocol::frame;
use bytes::{Buf, Bytes, BytesMut};
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

/// Settings of one connection.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Sent in every request header (`client.id`).
    pub client_id: Option<Arc<str>>,
    /// Bound on TCP connect plus the ApiVersions handshake
    /// (`socket.connection.setup.timeout.ms`).
    pub setup_timeout: Duration,
    /// Largest response frame accepted; larger ones close the connection.
    pub max_response_size: usize,
    /// Requests that may await a response at once on this connection.
    pub max_in_flight: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            client_id: Some(Arc::from("kafkawire")),
            setup_timeout: Duration::from_secs(10),
            max_response_size: 256 * 1024 * 1024,
            max_in_flight: 64,
        }
    }
}

/// An encoded request on its way to the writer.
struct Outgoing {
    frame: BytesMut,
    /// `None` for requests the broker does not answer (Produce with acks=0).
    reply: Option<oneshot::Sender<Result<Bytes>>>,
}

/// A written request awaiting its response.
struct Pending {
    correlation_id: i32,
    reply: oneshot::Sender<Result<Bytes>>,
}

/// State shared by the handle and both tasks.
struct Shared {
    /// Human-readable broker name for errors, e.g. `2 (127.0.0.1:29093)`.
    label: String,
    /// The first error that closed this connection.
    poison: OnceLock<Error>,
    /// Tells both tasks to stop once `poison` is set.
    shutdown: watch::Sender<bool>,
}

impl Shared {
    /// Records `err` as the reason the connection is closed (first one wins)
    /// and wakes both tasks.
    fn poison(&self, err: Error) -> Error {
        let stored = self.poison.get_or_init(|| err).clone();
        self.shutdown.send_replace(true);
        stored
    }
}

/// A cheap, cloneable handle to one broker connection. Dropping every clone
/// closes the connection once its pending responses are read.
#[derive(Clone)]
pub struct Connection {
    tx: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.shared.label)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Connection {
    /// Opens a TCP connection to `addr` and starts its tasks. No Kafka bytes
    /// are exchanged yet (see `net::BrokerConnection` for the handshake).
    pub async fn open(addr: &str, label: String, cfg: &ConnectionConfig) -> Result<Connection> {
        let stream = match tokio::time::timeout(cfg.setup_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(Error::io(format!("could not connect to {addr}"), e).with_broker(&label))
            }
            Err(_) => {
                return Err(Error::timeout(format!(
                    "connecting to {addr} took longer than {:?}",
                    cfg.setup_timeout
                ))
                .with_broker(&label))
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(Connection::from_stream(stream, label, cfg))
    }

    /// Starts the tasks on an already connected stream.
    pub fn from_stream(stream: TcpStream, label: String, cfg: &ConnectionConfig) -> Connection {
        let (read, write) = stream.into_split();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            label,
            poison: OnceLock::new(),
            shutdown,
        });
        let (tx, rx) = mpsc::channel(cfg.max_in_flight.max(1));
        let (pending_tx, pending_rx) = mpsc::channel(cfg.max_in_flight.max(1));
        tokio::spawn(write_loop(
            write,
            rx,
            pending_tx,
            shared.clone(),
            shutdown_rx.clone(),
        ));
        tokio::spawn(read_loop(
            read,
            pending_rx,
            shared.clone(),
            shutdown_rx,
            cfg.max_response_size,
        ));
        Connection { tx, shared }
    }

    /// The broker this connection talks to, for messages.
    pub fn label(&self) -> &str {
        &self.shared.label
    }

    /// Whether this connection has failed or been closed; a closed
    /// connection fails every request and should be replaced.
    pub fn is_closed(&self) -> bool {
        self.shared.poison.get().is_some() || self.tx.is_closed()
    }

    /// The error that closed this connection, if any.
    pub fn close_reason(&self) -> Option<Error> {
        self.shared.poison.get().cloned()
    }

    /// Closes the connection: every pending request fails with `reason`.
    pub fn close(&self, reason: Error) {
        self.shared.poison(reason);
    }

    /// Sends an encoded request frame (see [`frame::encode_request`]) and
    /// waits up to `timeout` for the response frame, returned without its
    /// size prefix and correlation id.
    ///
    /// A timeout closes the connection, as the Java client does: after it,
    /// the order of responses on the connection can no longer be trusted.
    pub async fn round_trip(
        &self,
        api: &'static str,
        frame: BytesMut,
        timeout: Duration,
    ) -> Result<Bytes> {
        self.enqueue(api, frame, timeout).await?.wait().await
    }

    /// [`round_trip`](Self::round_trip) in two steps: queues the frame for
    /// writing and returns the wait for its response. Frames are written in
    /// the order their `enqueue` calls complete, so a caller that must have
    /// requests reach the broker in a given order (pipelined Produce
    /// requests of one partition) enqueues them one after the other and
    /// awaits the responses concurrently. `timeout` covers both steps.
    pub async fn enqueue(
        &self,
        api: &'static str,
        frame: BytesMut,
        timeout: Duration,
    ) -> Result<PendingResponse> {
        if let Some(e) = self.shared.poison.get() {
            return Err(e.clone());
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        let out = Outgoing {
            frame,
            reply: Some(reply_tx),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, self.tx.send(out)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(self.closed_error()),
            Err(_) => return Err(self.timed_out(api, timeout)),
        }
        Ok(PendingResponse {
            conn: self.clone(),
            api,
            timeout,
            deadline,
            reply: reply_rx,
        })
    }

    /// Sends a request the broker will not answer (Produce with acks=0). The
    /// returned future completes once the frame is queued for writing.
    pub async fn send_only(&self, frame: BytesMut) -> Result<()> {
        if let Some(e) = self.shared.poison.get() {
            return Err(e.clone());
        }
        self.tx
            .send(Outgoing { frame, reply: None })
            .await
            .map_err(|_| self.closed_error())
    }

    fn timed_out(&self, api: &'static str, timeout: Duration) -> Error {
        let err = Error::timeout(format!(
            "no response within {timeout:?}; closing the connection"
        ))
        .with_api(api)
        .with_broker(&self.shared.label);
        self.shared.poison(err.clone());
        err
    }

    fn closed_error(&self) -> Error {
        self.shared.poison.get().cloned().unwrap_or_else(|| {
            Error::new(ErrorKind::Io, "connection closed").with_broker(&self.shared.label)
        })
    }
}

/// A request queued by [`Connection::enqueue`]; [`wait`](Self::wait) for
/// its response. Dropping it before the frame is written cancels the
/// request; after, its outcome on the broker is unknown.
pub struct PendingResponse {
    conn: Connection,
    api: &'static str,
    timeout: Duration,
    deadline: tokio::time::Instant,
    reply: oneshot::Receiver<Result<Bytes>>,
}

impl fmt::Debug for PendingResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingResponse")
            .field("broker", &self.conn.label())
            .field("api", &self.api)
            .finish()
    }
}

impl PendingResponse {
    /// The connection the request was queued on.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Waits for the response frame (within the timeout given to
    /// `enqueue`, which closes the connection when it passes).
    pub async fn wait(self) -> Result<Bytes> {
        let PendingResponse {
            conn,
            api,
            timeout,
            deadline,
            reply,
        } = self;
        match tokio::time::timeout_at(deadline, reply).await {
            Ok(Ok(result)) => result.map_err(|e| e.with_api(api)),
            Ok(Err(_)) => Err(conn.closed_error().with_api(api)),
            Err(_) => Err(conn.timed_out(api, timeout)),
        }
    }
}

/// Most frames coalesced into one socket write.
const MAX_COALESCE: usize = 64;

async fn write_loop(
    socket: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    pending_tx: mpsc::Sender<Pending>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut socket = BufWriter::with_capacity(64 * 1024, socket);
    let mut next_id: i32 = 0;
    let result: Result<()> = async {
        loop {
            let first = tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => return Ok(()), // every handle dropped
                },
            };
            let mut batch = Some(first);
            let mut written = 0;
            while let Some(mut out) = batch.take() {
                let live = out.reply.as_ref().is_none_or(|r| !r.is_closed());
                if live {
                    let id = next_id;
                    next_id = next_id.wrapping_add(1) & i32::MAX;
                    frame::set_correlation_id(&mut out.frame, id);
                    if let Some(reply) = out.reply {
                        let pending = Pending {
                            correlation_id: id,
                            reply,
                        };
                        tokio::select! {
                            biased;
                            _ = shutdown.wait_for(|s| *s) => return Ok(()),
                            r = pending_tx.send(pending) => if r.is_err() { return Ok(()) },
                        }
                    }
                    socket
                        .write_all(&out.frame)
                        .await
                        .map_err(|e| Error::io("write failed", e).with_broker(&shared.label))?;
                    written += 1;
                }
                if written < MAX_COALESCE {
                    batch = rx.try_recv().ok();
                }
            }
            socket
                .flush()
                .await
                .map_err(|e| Error::io("write failed", e).with_broker(&shared.label))?;
        }
    }
    .await;
    let err = match result {
        Ok(()) => shared
            .poison(Error::new(ErrorKind::Closed, "connection closed").with_broker(&shared.label)),
        Err(e) => shared.poison(e),
    };
    // Fail whatever is still queued.
    rx.close();
    while let Ok(out) = rx.try_recv() {
        if let Some(reply) = out.reply {
            let _ = reply.send(Err(err.clone()));
        }
    }
    let _ = socket.shutdown().await;
}

async fn read_loop(
    mut socket: OwnedReadHalf,
    mut pending_rx: mpsc::Receiver<Pending>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    max_frame: usize,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let result: Result<()> = async {
        loop {
            // Deliver every complete frame in the buffer.
            loop {
                if buf.len() < frame::SIZE_PREFIX_LEN {
                    break;
                }
                let declared = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                let size = frame::check_frame_size(declared, max_frame)
                    .map_err(|e| Error::from(e).with_broker(&shared.label))?;
                let total = frame::SIZE_PREFIX_LEN + size;
                if buf.len() < total {
                    // Grow towards the frame size in bounded steps, so a
                    // hostile size prefix costs memory only as bytes arrive.
                    let want = (total - buf.len()).min(4 * 1024 * 1024);
                    buf.reserve(want);
                    break;
                }
                buf.advance(frame::SIZE_PREFIX_LEN);
                let body = buf.split_to(size).freeze();
                let (id, body) = frame::split_correlation_id(body)
                    .map_err(|e| Error::from(e).with_broker(&shared.label))?;
                let pending = match pending_rx.try_recv() {
                    Ok(p) => p,
                    Err(_) => {
                        return Err(Error::protocol(format!(
                            "response with correlation id {id} arrived but no request is pending"
                        ))
                        .with_broker(&shared.label))
                    }
                };
                if pending.correlation_id != id {
                    let err = Error::protocol(format!(
                        "response correlation id {id} does not match the oldest pending request {}",
                        pending.correlation_id
                    ))
                    .with_broker(&shared.label);
                    let _ = pending.reply.send(Err(err.clone()));
                    return Err(err);
                }
                let _ = pending.reply.send(Ok(body));
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(64 * 1024);
            }
            let n = tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
                n = socket.read_buf(&mut buf) => n.map_err(|e| Error::io("read failed", e).with_broker(&shared.label))?,
            };
            if n == 0 {
                let msg = if buf.is_empty() {
                    "connection closed by the broker"
                } else {
                    "connection closed by the broker in the middle of a response"
                };
                return Err(Error::new(ErrorKind::Io, msg).with_broker(&shared.label));
            }
        }
    }
    .await;
    let err = match result {
        Ok(()) => shared.poison.get().cloned().unwrap_or_else(|| {
            Error::new(ErrorKind::Closed, "connection closed").with_broker(&shared.label)
        }),
        Err(e) => shared.poison(e),
    };
    pending_rx.close();
    while let Some(p) = pending_rx.recv().await {
        let _ = p.reply.send(Err(err.clone()));
    }
}

#[cfg(test)]
mod tests {
    //! Scripted peers on loopback play the broker byte by byte.
    use super::*;
    use crate::protocol::frame::{encode_request, peek_request_header};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn peer() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap().to_string();
        (l, a)
    }

    async fn read_request(s: &mut TcpStream) -> Option<(i16, i16, i32, Vec<u8>)> {
        let mut size = [0u8; 4];
        s.read_exact(&mut size).await.ok()?;
        let n = i32::from_be_bytes(size) as usize;
        let mut body = vec![0u8; n];
        s.read_exact(&mut body).await.ok()?;
        let mut full = size.to_vec();
        full.extend_from_slice(&body);
        let (k, v, c) = peek_request_header(&full)?;
        Some((k, v, c, full))
    }

    fn response(correlation_id: i32, body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        v.extend_from_slice(&correlation_id.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn req(tag: u8) -> BytesMut {
        encode_request(18, 0, 1, Some("t"), 1, |b| b.extend_from_slice(&[tag]))
    }

    #[tokio::test]
    async fn pipelined_requests_are_matched_in_order() {
        let (l, addr) = peer().await;
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            // Read all ten before answering: they must be pipelined.
            let mut got = vec![];
            for _ in 0..10 {
                got.push(read_request(&mut s).await.unwrap());
            }
            for (_, _, c, full) in got {
                let tag = *full.last().unwrap();
                s.write_all(&response(c, &[tag, tag])).await.unwrap();
            }
        });
        let conn = Connection::open(&addr, "test".into(), &ConnectionConfig::default())
            .await
            .unwrap();
        let futs = (0..10u8).map(|i| {
            let c = conn.clone();
            async move {
                c.round_trip("ApiVersions", req(i), Duration::from_secs(5))
                    .await
            }
        });
        let results = futures_join_all(futs).await;
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(&r.unwrap()[..], &[i as u8, i as u8]);
        }
    }

    /// A tiny join_all so the library needs no `futures` dependency.
    async fn futures_join_all<F: std::future::Future>(
        futs: impl Iterator<Item = F>,
    ) -> Vec<F::Output>
    where
        F: Send + 'static,
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futs.map(tokio::spawn).collect();
        let mut out = vec![];
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }

    async fn one_shot_peer(reply: Vec<u8>, close_after: bool) -> String {
        let (l, addr) = peer().await;
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let _ = read_request(&mut s).await;
            let _ = s.write_all(&reply).await;
            if !close_after {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn huge_size_prefix_is_a_protocol_error_without_allocation() {
        // 2 GiB - 1 declared, nothing behind it.
        let addr = one_shot_peer(vec![0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0], false).await;
        let conn = Connection::open(&addr, "hostile".into(), &ConnectionConfig::default())
            .await
            .unwrap();
        let err = conn
            .round_trip("Metadata", req(1), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Protocol, "{err}");
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
        assert!(conn.is_closed());
        // Later calls fail fast with the same reason.
        let again = conn
            .round_trip("Metadata", req(2), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(again.kind(), &ErrorKind::Protocol);
    }

    #[tokio::test]
    async fn negative_size_prefix_is_a_protocol_error() {
        let addr = one_shot_peer(vec![0xff, 0xff, 0xff, 0xfe], false).await;
        let conn = Connection::open(&addr, "hostile".into(), &ConnectionConfig::default())
            .await
            .unwrap();
        let err = conn
            .round_trip("Metadata", req(1), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Protocol, "{err}");
    }

    #[tokio::test]
    async fn close_mid_response_is_an_io_error() {
        let mut partial = response(0, &[1, 2, 3, 4, 5, 6, 7, 8]);
        partial.truncate(9);
        let addr = one_shot_peer(partial, true).await;
        let conn = Connection::open(&addr, "flaky".into(), &ConnectionConfig::default())
            .await
            .unwrap();
        let err = conn
            .round_trip("Fetch", req(1), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Io, "{err}");
        assert!(err.to_string().contains("middle of a response"), "{err}");
        assert_eq!(err.api(), Some("Fetch"));
    }

    #[tokio::test]
    async fn mismatched_correlation_id_is_a_protocol_error() {
        let addr = one_shot_peer(response(12345, &[0]), false).await;
        let conn = Connection::open(&addr, "confused".into(), &ConnectionConfig::default())
            .await
            .unwrap();
        let err = conn
            .round_trip("Fetch", req(1), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Protocol, "{err}");
        assert!(err.to_string().contains("12345"), "{err}");
    }

    #[tokio::test]
    async fn silence_times_out_and_closes_the_connection() {
        let addr = one_shot_peer(vec![], false).await;
        let conn = Connection::open(&addr, "silent".into(), &ConnectionConfig::default())
            .await
            .unwrap();
        let err = conn
            .round_trip("Metadata", req(1), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(conn.is_closed());
    }

    #[tokio::test]
    async fn oversized_frame_within_cap_is_read_in_steps() {
        // A 9 MiB body arrives whole: the reader must grow past its first
        // reservation without trusting the prefix for one big allocation.
        let body = vec![7u8; 9 * 1024 * 1024];
        let addr = one_shot_peer(response(0, &body), false).await;
        let conn = Connection::open(&addr, "big".into(), &ConnectionConfig::default())
            .await
            .unwrap();
        let got = conn
            .round_trip("Fetch", req(1), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(got.len(), body.len());
        assert!(got.iter().all(|&b| b == 7));
    }

    #[tokio::test]
    async fn connect_refused_is_a_retriable_io_error() {
        let (l, addr) = peer().await;
        drop(l);
        let err = Connection::open(&addr, "gone".into(), &ConnectionConfig::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Io);
        assert!(err.is_retriable());
    }
}
