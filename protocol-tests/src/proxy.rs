//! A loopback TCP fault proxy between clients and brokers.
//!
//! One [`Link`] per broker listens on a 127.0.0.1 port and forwards every
//! accepted connection to the broker. A test changes a link's behaviour at
//! runtime:
//!
//! * [`Link::set_delay`]: every chunk of bytes, either way, is delivered
//!   this much later (latency, not a bandwidth cap);
//! * [`Link::set_blackhole`]: nothing moves either way, and new connections
//!   are accepted but never reach the broker — the client sees a peer gone
//!   silent, as behind a dead network path. Bytes are held, not thrown
//!   away: when the blackhole lifts, the streams resume intact, as TCP's
//!   retransmissions would make them (a client that timed out meanwhile has
//!   closed its side already);
//! * [`Link::set_refuse`]: new connections are accepted and reset at once;
//! * [`Link::sever`]: every open connection is reset (RST) now;
//! * [`Link::cut_responses_after`]: each connection open now or later is
//!   reset after forwarding that many more bytes from the broker, which
//!   usually splits a response frame (a connection lost mid-fetch or
//!   mid-produce-response).
//!
//! Clients must reach *every* broker through the proxy, not only the
//! bootstrap one, so the brokers must advertise the proxy's ports. The
//! clusters of `compose/kafka-local` have a `PROXIED` listener for this:
//! node N listens on one port and advertises another, where
//! [`FaultProxy::for_cluster`] listens (`kafka-local proxy-ports`). Metadata
//! and FindCoordinator answers on that listener then name the proxy, for any
//! client (kafkawire, librdkafka, Java), with no rewriting of Kafka frames.
//!
//! Every task of the proxy ends when the [`FaultProxy`] (or [`Link`]) is
//! dropped.

use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Bytes buffered per direction of one connection while a delay holds them
/// back: chunks of at most `CHUNK` bytes, at most `QUEUE` chunks.
const CHUNK: usize = 64 * 1024;
const QUEUE: usize = 64;
/// How often a paused (blackholed) direction looks whether it may go on.
const PAUSE_POLL: Duration = Duration::from_millis(20);

/// Counters of one link, for the figures a test prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Connections accepted from clients.
    pub accepted: u64,
    /// Connections reset by [`Link::sever`], [`Link::set_refuse`] or
    /// [`Link::cut_responses_after`].
    pub severed: u64,
}

/// Runtime behaviour of one link, read by its connection tasks.
#[derive(Debug)]
struct Control {
    delay_ms: AtomicU64,
    blackhole: AtomicBool,
    refuse: AtomicBool,
    /// `u64::MAX` = no cut; otherwise the budget given to each connection.
    cut_after: AtomicU64,
    accepted: AtomicU64,
    severed: AtomicU64,
}

/// One listening port forwarding to one broker.
pub struct Link {
    listen: SocketAddr,
    target: SocketAddr,
    ctl: Arc<Control>,
    /// Bumped by [`Link::sever`]; every connection task watches it.
    sever: watch::Sender<u64>,
    /// Bumped by [`Link::cut_responses_after`]: connections re-read the budget.
    cut: watch::Sender<u64>,
    /// The accept loop; its own `JoinSet` holds the connection tasks, so
    /// aborting it (on drop) ends them all.
    accept: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("listen", &self.listen)
            .field("target", &self.target)
            .finish()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Link {
    /// Listens on `listen` (port 0 picks a free one) and forwards to `target`.
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> std::io::Result<Link> {
        let listener = TcpListener::bind(listen).await?;
        let listen = listener.local_addr()?;
        let ctl = Arc::new(Control {
            delay_ms: AtomicU64::new(0),
            blackhole: AtomicBool::new(false),
            refuse: AtomicBool::new(false),
            cut_after: AtomicU64::new(u64::MAX),
            accepted: AtomicU64::new(0),
            severed: AtomicU64::new(0),
        });
        let (sever, _) = watch::channel(0u64);
        let (cut, _) = watch::channel(0u64);
        let accept = tokio::spawn(accept_loop(
            listener,
            target,
            ctl.clone(),
            sever.clone(),
            cut.clone(),
        ));
        Ok(Link {
            listen,
            target,
            ctl,
            sever,
            cut,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// Delivers every chunk `d` late (zero: no delay). Applies to bytes read
    /// from now on, on open and new connections.
    pub fn set_delay(&self, d: Duration) {
        self.ctl
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Stops or resumes all forwarding, both ways.
    pub fn set_blackhole(&self, on: bool) {
        self.ctl.blackhole.store(on, Ordering::SeqCst);
    }

    /// Starts or stops resetting new connections as soon as they are accepted.
    pub fn set_refuse(&self, on: bool) {
        self.ctl.refuse.store(on, Ordering::SeqCst);
    }

    /// Resets every open connection of this link.
    pub fn sever(&self) {
        self.sever.send_modify(|g| *g += 1);
    }

    /// Each connection, open or new, is reset after forwarding `bytes` more
    /// bytes from the broker to the client. `None` lifts the rule (also for
    /// connections whose budget is not used up yet).
    pub fn cut_responses_after(&self, bytes: Option<u64>) {
        self.ctl
            .cut_after
            .store(bytes.unwrap_or(u64::MAX), Ordering::SeqCst);
        self.cut.send_modify(|g| *g += 1);
    }

    /// Back to plain forwarding (open connections are kept).
    pub fn heal(&self) {
        self.set_delay(Duration::ZERO);
        self.set_blackhole(false);
        self.set_refuse(false);
        self.cut_responses_after(None);
    }

    /// Counters since the link started.
    pub fn stats(&self) -> LinkStats {
        LinkStats {
            accepted: self.ctl.accepted.load(Ordering::SeqCst),
            severed: self.ctl.severed.load(Ordering::SeqCst),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    ctl: Arc<Control>,
    sever: watch::Sender<u64>,
    cut: watch::Sender<u64>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else {
                    // EMFILE and the like: wait a little rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                ctl.accepted.fetch_add(1, Ordering::SeqCst);
                if ctl.refuse.load(Ordering::SeqCst) {
                    ctl.severed.fetch_add(1, Ordering::SeqCst);
                    reset(client);
                    continue;
                }
                conns.spawn(connection(client, target, ctl.clone(), sever.subscribe(), cut.subscribe()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Closes with RST instead of FIN: the abrupt loss a test wants.
// tokio deprecates set_linger because a non-zero linger blocks the thread
// in close; a zero linger does not block (the kernel sends RST at once).
#[allow(deprecated)]
fn reset(s: TcpStream) {
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}

/// Why a direction (or a connection) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// One side closed or failed: close the other side normally.
    Closed,
    /// A fault: reset both sides.
    Severed,
}

async fn connection(
    mut client: TcpStream,
    target: SocketAddr,
    ctl: Arc<Control>,
    mut sever: watch::Receiver<u64>,
    mut cut: watch::Receiver<u64>,
) {
    let _ = client.set_nodelay(true);
    // While blackholed, a new connection does not reach the broker yet.
    let reached = async {
        while ctl.blackhole.load(Ordering::SeqCst) {
            tokio::time::sleep(PAUSE_POLL).await;
        }
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target)).await
    };
    let mut upstream = tokio::select! {
        r = reached => match r {
            Ok(Ok(s)) => s,
            // The broker is down: the client sees the connection reset.
            _ => return reset(client),
        },
        _ = sever.changed() => {
            ctl.severed.fetch_add(1, Ordering::SeqCst);
            return reset(client);
        }
    };
    let _ = upstream.set_nodelay(true);
    let budget = Budget::new(ctl.cut_after.load(Ordering::SeqCst));
    let end = {
        let (cr, cw) = client.split();
        let (ur, uw) = upstream.split();
        let up = pump(cr, uw, &ctl, None);
        let down = pump(ur, cw, &ctl, Some(&budget));
        tokio::pin!(up, down);
        loop {
            tokio::select! {
                end = &mut up => break end,
                end = &mut down => break end,
                r = sever.changed() => break if r.is_ok() { End::Severed } else { End::Closed },
                r = cut.changed() => {
                    if r.is_err() { break End::Closed; }
                    budget.reset(ctl.cut_after.load(Ordering::SeqCst));
                }
            }
        }
    };
    if end == End::Severed {
        ctl.severed.fetch_add(1, Ordering::SeqCst);
        reset(client);
        reset(upstream);
    }
}

/// The bytes one connection may still forward from the broker
/// (`u64::MAX`: unlimited).
struct Budget {
    left: AtomicU64,
}

impl Budget {
    fn new(n: u64) -> Budget {
        Budget {
            left: AtomicU64::new(n),
        }
    }
    fn reset(&self, n: u64) {
        self.left.store(n, Ordering::SeqCst);
    }
    /// How many of `n` bytes may pass, and whether the budget is used up.
    fn take(&self, n: usize) -> (usize, bool) {
        let left = self.left.load(Ordering::SeqCst);
        if left == u64::MAX {
            return (n, false);
        }
        let pass = (n as u64).min(left);
        self.left.store(left - pass, Ordering::SeqCst);
        (pass as usize, left - pass == 0)
    }
}

/// Moves bytes from `r` to `w` through a bounded queue, holding each chunk
/// back by the link's delay and reading nothing while blackholed. Ends
/// `Severed` once `budget` is used up (after writing what it allowed).
async fn pump<R, W>(mut r: R, mut w: W, ctl: &Control, budget: Option<&Budget>) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(QUEUE);
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            // A chunk read just before the blackhole began waits it out.
            while ctl.blackhole.load(Ordering::SeqCst) {
                tokio::time::sleep(PAUSE_POLL).await;
            }
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            while ctl.blackhole.load(Ordering::SeqCst) {
                tokio::time::sleep(PAUSE_POLL).await;
            }
            let n = match r.read(&mut buf).await {
                Ok(0) | Err(_) => return End::Closed,
                Ok(n) => n,
            };
            let (pass, used_up) = budget.map_or((n, false), |b| b.take(n));
            let due = Instant::now() + Duration::from_millis(ctl.delay_ms.load(Ordering::SeqCst));
            if pass > 0
                && tx
                    .send((due, Bytes::copy_from_slice(&buf[..pass])))
                    .await
                    .is_err()
            {
                return End::Closed;
            }
            if used_up {
                return End::Severed;
            }
        }
        // `tx` drops here, so the writer ends once its queue is written.
    };
    let (end, ()) = tokio::join!(reader, writer);
    end
}

/// The proxy for a whole cluster: one [`Link`] per broker.
#[derive(Debug)]
pub struct FaultProxy {
    /// `(node id, link)`, by node id.
    links: Vec<(i32, Link)>,
}

impl FaultProxy {
    /// Starts links from `(node id, listen, target)` triples.
    pub async fn start(routes: &[(i32, SocketAddr, SocketAddr)]) -> std::io::Result<FaultProxy> {
        let mut links = Vec::with_capacity(routes.len());
        for &(node, listen, target) in routes {
            links.push((node, Link::start(listen, target).await?));
        }
        Ok(FaultProxy { links })
    }

    /// The proxy in front of the `compose/kafka-local` cluster under test
    /// (`KAFKAWIRE_CLUSTER`), on the ports its brokers advertise on their
    /// `PROXIED` listener. Panics with instructions if the cluster has no
    /// such listener (created by an older `kafka-local`).
    pub async fn for_cluster() -> FaultProxy {
        let out = tokio::task::spawn_blocking(|| crate::kafka_local(&["proxy-ports"]))
            .await
            .expect("kafka-local");
        let mut routes = Vec::new();
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let parse = |s: &str| {
                s.parse::<u16>()
                    .unwrap_or_else(|_| panic!("bad proxy-ports line `{line}`"))
            };
            assert_eq!(f.len(), 3, "bad proxy-ports line `{line}`");
            let node: i32 = f[0]
                .parse()
                .unwrap_or_else(|_| panic!("bad proxy-ports line `{line}`"));
            let listen = SocketAddr::from(([127, 0, 0, 1], parse(f[1])));
            let target = SocketAddr::from(([127, 0, 0, 1], parse(f[2])));
            if TcpStream::connect(target).await.is_err() {
                panic!(
                    "node {node} does not listen on its PROXIED port {target}: the cluster was created by an \
                     older compose/kafka-local, or the node is down. Run `compose/kafka-local --name {} down` \
                     and `up` again.",
                    crate::cluster_name()
                );
            }
            routes.push((node, listen, target));
        }
        assert!(
            !routes.is_empty(),
            "kafka-local proxy-ports printed nothing"
        );
        FaultProxy::start(&routes)
            .await
            .unwrap_or_else(|e| panic!("fault proxy could not listen: {e}"))
    }

    /// `bootstrap.servers` through the proxy.
    pub fn bootstrap(&self) -> String {
        self.links
            .iter()
            .map(|(_, l)| l.addr().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The link to broker `node`. Panics for an unknown node.
    pub fn link(&self, node: i32) -> &Link {
        &self
            .links
            .iter()
            .find(|(n, _)| *n == node)
            .unwrap_or_else(|| panic!("no proxy link for node {node}"))
            .1
    }

    /// Every link.
    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.iter().map(|(_, l)| l)
    }

    /// Node ids, ascending as given.
    pub fn nodes(&self) -> Vec<i32> {
        self.links.iter().map(|(n, _)| *n).collect()
    }

    /// Counters summed over all links.
    pub fn stats(&self) -> LinkStats {
        self.links()
            .map(Link::stats)
            .fold(LinkStats::default(), |a, s| LinkStats {
                accepted: a.accepted + s.accepted,
                severed: a.severed + s.severed,
            })
    }

    /// Cuts the client off from every broker: new connections are reset,
    /// open ones are reset now.
    pub fn isolate(&self) {
        for l in self.links() {
            l.set_refuse(true);
            l.sever();
        }
    }

    /// Every link back to plain forwarding.
    pub fn heal(&self) {
        for l in self.links() {
            l.heal();
        }
    }
}

/// A mutex-guarded log of the faults a test injected, for its summary line.
#[derive(Debug, Default)]
pub struct FaultLog {
    entries: Mutex<Vec<String>>,
}

impl FaultLog {
    /// Records one fault and prints it with a timestamp.
    pub fn note(&self, what: impl Into<String>) {
        let what = what.into();
        println!("fault: {what}");
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what);
    }

    /// Faults recorded so far.
    pub fn count(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that echoes every byte back.
    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                tokio::spawn(async move {
                    let (mut r, mut w) = s.into_split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn link_to_echo() -> Link {
        let target = echo_server().await;
        Link::start("127.0.0.1:0".parse().unwrap(), target)
            .await
            .unwrap()
    }

    async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(msg).await?;
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await?;
        Ok(got)
    }

    const BOUND: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn forwards_both_ways() {
        let link = link_to_echo().await;
        let mut s = TcpStream::connect(link.addr()).await.unwrap();
        let msg: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let got = tokio::time::timeout(BOUND, roundtrip(&mut s, &msg))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, msg);
        assert_eq!(link.stats().accepted, 1);
    }

    #[tokio::test]
    async fn delay_holds_bytes_back() {
        let link = link_to_echo().await;
        link.set_delay(Duration::from_millis(300));
        let mut s = TcpStream::connect(link.addr()).await.unwrap();
        let t0 = std::time::Instant::now();
        let got = tokio::time::timeout(BOUND, roundtrip(&mut s, b"ping"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"ping");
        // Delayed on the way there and back: at least the delay, once. (A
        // lower bound only; the machine may be slow, never fast.)
        assert!(
            t0.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t0.elapsed()
        );
    }

    #[tokio::test]
    async fn blackhole_holds_bytes_until_lifted() {
        let link = link_to_echo().await;
        let mut s = TcpStream::connect(link.addr()).await.unwrap();
        roundtrip(&mut s, b"before").await.unwrap();
        link.set_blackhole(true);
        s.write_all(b"lost").await.unwrap();
        let mut buf = [0u8; 4];
        let r = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await;
        assert!(r.is_err(), "a blackholed link answered: {r:?}");
        // A new connection is accepted but goes nowhere either.
        let mut s2 = TcpStream::connect(link.addr()).await.unwrap();
        s2.write_all(b"also lost").await.unwrap();
        let r = tokio::time::timeout(Duration::from_millis(500), s2.read(&mut buf)).await;
        assert!(r.is_err(), "a new blackholed connection answered: {r:?}");
        link.set_blackhole(false);
        // Held, not lost: both streams resume in order.
        let mut got = [0u8; 4];
        tokio::time::timeout(BOUND, s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"lost");
        let mut got = [0u8; 9];
        tokio::time::timeout(BOUND, s2.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"also lost");
    }

    #[tokio::test]
    async fn sever_resets_open_connections() {
        let link = link_to_echo().await;
        let mut s = TcpStream::connect(link.addr()).await.unwrap();
        roundtrip(&mut s, b"hello").await.unwrap();
        link.sever();
        let mut buf = [0u8; 16];
        let r = tokio::time::timeout(BOUND, async {
            // Either the read sees the reset/EOF, or a write after it fails.
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(r.is_ok(), "connection still open after sever");
        assert_eq!(link.stats().severed, 1);
        // New connections still work.
        let mut s2 = TcpStream::connect(link.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut s2, b"again").await.unwrap(), b"again");
    }

    #[tokio::test]
    async fn refuse_resets_new_connections() {
        let link = link_to_echo().await;
        link.set_refuse(true);
        let mut s = TcpStream::connect(link.addr()).await.unwrap();
        let r = tokio::time::timeout(BOUND, roundtrip(&mut s, b"x"))
            .await
            .unwrap();
        assert!(r.is_err(), "a refused connection answered");
        link.set_refuse(false);
        let mut s = TcpStream::connect(link.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut s, b"ok").await.unwrap(), b"ok");
    }

    #[tokio::test]
    async fn cut_splits_the_stream_after_the_budget() {
        let link = link_to_echo().await;
        let mut s = TcpStream::connect(link.addr()).await.unwrap();
        roundtrip(&mut s, b"warm").await.unwrap();
        link.cut_responses_after(Some(10));
        s.write_all(&[7u8; 100]).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 128];
        tokio::time::timeout(BOUND, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
        .expect("the cut connection never closed");
        assert_eq!(got, vec![7u8; 10], "exactly the budget passes");
        assert_eq!(link.stats().severed, 1);
    }

    #[tokio::test]
    async fn a_dead_target_resets_the_client() {
        // A port nobody listens on: bind, learn the port, close.
        let dead = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let link = Link::start("127.0.0.1:0".parse().unwrap(), dead)
            .await
            .unwrap();
        let mut s = TcpStream::connect(link.addr()).await.unwrap();
        let r = tokio::time::timeout(BOUND, roundtrip(&mut s, b"x"))
            .await
            .unwrap();
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn dropping_the_link_closes_its_port_and_connections() {
        let link = link_to_echo().await;
        let addr = link.addr();
        let mut s = TcpStream::connect(addr).await.unwrap();
        roundtrip(&mut s, b"hi").await.unwrap();
        drop(link);
        let mut buf = [0u8; 4];
        let r = tokio::time::timeout(BOUND, s.read(&mut buf))
            .await
            .expect("connection outlived the proxy");
        assert!(matches!(r, Ok(0) | Err(_)));
        // Bounded wait for the listener to go (the abort is asynchronous).
        let mut refused = false;
        for _ in 0..50 {
            if TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused, "the proxy port still accepts after drop");
    }
}
