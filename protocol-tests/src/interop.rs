//! Runs the interop peers in `protocol-tests/interop/`: the Apache Kafka
//! Java client (`java-peer`) and librdkafka through Python confluent-kafka
//! (`rdkafka-peer`). Each prints one JSON object per line; these helpers run
//! a peer to completion, fail loudly if it fails, and parse its lines.

use serde_json::Value;
use std::process::{Command, Stdio};

/// Which client to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The Apache Kafka Java client (same major version as the cluster).
    Java,
    /// librdkafka via Python confluent-kafka.
    Rdkafka,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Java => "java-peer",
            Peer::Rdkafka => "rdkafka-peer",
        }
    }

    /// Both peers.
    pub fn all() -> [Peer; 2] {
        [Peer::Java, Peer::Rdkafka]
    }
}

/// A record as printed by a peer's `consume` mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: Vec<(String, Option<String>)>,
}

/// Runs `peer MODE ARGS...` to completion and returns its stdout lines that
/// are JSON objects (non-JSON lines are passed to stderr). Panics with the
/// peer's stderr if it exits non-zero.
pub fn run(peer: Peer, mode: &str, args: &[&str]) -> Vec<Value> {
    let text = run_raw(peer, mode, args);
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('{') {
                Some(
                    serde_json::from_str(l)
                        .unwrap_or_else(|e| panic!("{}: bad JSON line {l:?}: {e}", peer.name())),
                )
            } else {
                if !l.is_empty() {
                    eprintln!("[{}] {l}", peer.name());
                }
                None
            }
        })
        .collect()
}

/// Runs a peer and returns its raw stdout.
pub fn run_raw(peer: Peer, mode: &str, args: &[&str]) -> String {
    let script = format!("{}/interop/{}", env!("CARGO_MANIFEST_DIR"), peer.name());
    let out = Command::new("bash")
        .arg(&script)
        .arg(mode)
        .args(args)
        .env("KAFKAWIRE_PEER_KAFKA", crate::kafka_major().to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("could not run {script}: {e}"));
    if !out.status.success() {
        panic!(
            "{} {mode} {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            peer.name(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a peer's `consume` mode on `topic` and returns the records.
pub fn consume(peer: Peer, topic: &str, isolation: &str, expect: usize) -> Vec<PeerRecord> {
    consume_args(peer, topic, isolation, &expect.to_string(), 8000)
}

/// Runs a peer's `consume` mode on `topic` until no record came for
/// `idle_ms` (however many records that is) and returns the records.
pub fn consume_until_idle(
    peer: Peer,
    topic: &str,
    isolation: &str,
    idle_ms: u64,
) -> Vec<PeerRecord> {
    consume_args(peer, topic, isolation, "-1", idle_ms)
}

fn consume_args(
    peer: Peer,
    topic: &str,
    isolation: &str,
    expect: &str,
    idle_ms: u64,
) -> Vec<PeerRecord> {
    let bootstrap = crate::bootstrap();
    let idle = idle_ms.to_string();
    run(
        peer,
        "consume",
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            topic,
            "--isolation",
            isolation,
            "--expect",
            expect,
            "--idle-ms",
            &idle,
        ],
    )
    .into_iter()
    .filter(|v| v.get("offset").is_some())
    .map(|v| PeerRecord {
        partition: v["partition"].as_i64().expect("partition") as i32,
        offset: v["offset"].as_i64().expect("offset"),
        key: v["key"].as_str().map(str::to_string),
        value: v["value"].as_str().map(str::to_string),
        headers: v["headers"]
            .as_array()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h[0].as_str().unwrap_or_default().to_string(),
                            h[1].as_str().map(str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
    .collect()
}

/// The partitions the Java client's default partitioner picks for `keys`
/// among `partitions` (computed by the Java client, no broker needed).
pub fn java_partitions(keys: &[&str], partitions: i32) -> Vec<(String, i32)> {
    let n = partitions.to_string();
    let mut args = vec!["--partitions", n.as_str()];
    args.extend_from_slice(keys);
    parse_key_partitions(&run_raw(Peer::Java, "partition", &args))
}

/// The partitions librdkafka's `murmur2_random` picks for `keys`, found by
/// producing one record per key to `topic`.
pub fn rdkafka_partitions(keys: &[&str], topic: &str) -> Vec<(String, i32)> {
    let bootstrap = crate::bootstrap();
    let mut args = vec!["--bootstrap", bootstrap.as_str(), "--topic", topic];
    args.extend_from_slice(keys);
    parse_key_partitions(&run_raw(Peer::Rdkafka, "partition", &args))
}

fn parse_key_partitions(out: &str) -> Vec<(String, i32)> {
    out.lines()
        .filter_map(|l| {
            let (k, p) = l.rsplit_once('\t')?;
            Some((k.to_string(), p.trim().parse().ok()?))
        })
        .collect()
}

/// Summary printed by `txn-produce`: values of committed and aborted
/// transactions.
#[derive(Debug, Clone, Default)]
pub struct TxnSummary {
    pub committed: Vec<String>,
    pub aborted: Vec<String>,
}

/// Runs a peer's `txn-produce` mode.
pub fn txn_produce(peer: Peer, args: &[&str]) -> TxnSummary {
    let bootstrap = crate::bootstrap();
    let mut all = vec!["--bootstrap", bootstrap.as_str()];
    all.extend_from_slice(args);
    let lines = run(peer, "txn-produce", &all);
    let last = lines
        .iter()
        .rev()
        .find(|v| v.get("committed").is_some())
        .expect("txn-produce summary line");
    let strings = |v: &Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    TxnSummary {
        committed: strings(&last["committed"]),
        aborted: strings(&last["aborted"]),
    }
}

/// Runs a peer's `produce` mode and returns (partition, offset, value) per record.
pub fn produce(peer: Peer, args: &[&str]) -> Vec<(i32, i64, String)> {
    let bootstrap = crate::bootstrap();
    let mut all = vec!["--bootstrap", bootstrap.as_str()];
    all.extend_from_slice(args);
    run(peer, "produce", &all)
        .into_iter()
        .map(|v| {
            (
                v["partition"].as_i64().expect("partition") as i32,
                v["offset"].as_i64().expect("offset"),
                v["value"].as_str().expect("value").to_string(),
            )
        })
        .collect()
}

/// A peer consumer running `group-consume` in the background, tracking
/// which partitions of its topic it holds from the assignment events it
/// prints. Killed when dropped.
pub struct GroupPeer {
    child: tokio::process::Child,
    holds: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<i32>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl GroupPeer {
    /// Starts `peer group-consume` in `group` on `topic` with `assignor`,
    /// for at most `run_ms`.
    pub fn spawn(peer: Peer, topic: &str, group: &str, assignor: &str, run_ms: u64) -> GroupPeer {
        let script = format!("{}/interop/{}", env!("CARGO_MANIFEST_DIR"), peer.name());
        let mut child = tokio::process::Command::new(&script)
            .args([
                "group-consume",
                "--bootstrap",
                &crate::bootstrap(),
                "--topic",
                topic,
                "--group",
                group,
            ])
            .args(["--assignor", assignor, "--run-ms", &run_ms.to_string()])
            .env("KAFKAWIRE_PEER_KAFKA", crate::kafka_major().to_string())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {script}: {e}"));
        let stdout = child.stdout.take().expect("peer stdout");
        let holds: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<i32>>> =
            Default::default();
        let h = holds.clone();
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let parts: Vec<i32> = v["partitions"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter_map(|p| p[1].as_i64())
                            .map(|p| p as i32)
                            .collect()
                    })
                    .unwrap_or_default();
                let mut held = h.lock().unwrap_or_else(|p| p.into_inner());
                match v["event"].as_str() {
                    Some("assigned") => held.extend(parts),
                    Some("revoked") | Some("lost") => parts.iter().for_each(|p| {
                        held.remove(p);
                    }),
                    _ => {}
                }
            }
        });
        GroupPeer {
            child,
            holds,
            reader,
        }
    }

    /// The partitions the peer holds now.
    pub fn holds(&self) -> std::collections::BTreeSet<i32> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops the peer (without a clean leave: like a kill).
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
        self.reader.abort();
    }
}
