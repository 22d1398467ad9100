//! Fault scenarios against a real three-broker cluster (issue #8): brokers
//! killed (SIGKILL), frozen (SIGSTOP/SIGCONT) or cut off by the loopback
//! fault proxy (`protocol_tests::proxy`), while kafkawire produces and
//! consumes. The final state of every topic is judged by the independent
//! checker (`protocol_tests::checker`), read back by kafkawire's and by
//! librdkafka's read_committed consumers.
//!
//! Each test prints one summary line starting with `RELIABILITY` (records
//! checked, faults injected, violations found). By default each runs its CI
//! short form (two rounds of faults, a minute or so); environment
//! variables make them long:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `KAFKAWIRE_SOAK_SECS` | 0 | keep injecting faults for this many seconds per scenario |
//! | `KAFKAWIRE_FAULT_ROUNDS` | 2 | at least this many fault rounds per scenario |
//! | `KAFKAWIRE_KILL_EVERY_SECS` | 30 | period of the leader kills |
//! | `KAFKAWIRE_FAULT_RATE` | 5000 | records/s (at most) of the idempotent streams |
//! | `KAFKAWIRE_FAULT_SEED` | fixed | seed of the proxy scenario's fault sequence |
//!
//! The tests kill brokers: run them one at a time (`--test-threads 1`) on
//! a three-broker `compose/kafka-local` cluster.

use kafkawire::admin::Admin;
use kafkawire::cluster::CoordinatorType;
use kafkawire::consumer::{Consumer, ConsumerRecord, IsolationLevel, OffsetReset, TopicPartition};
use kafkawire::producer::{Producer, ProducerRecord, TxnState};
use protocol_tests::checker::{self, Ack, Ledger, Observed, Report, Send};
use protocol_tests::proxy::{FaultLog, FaultProxy};
use protocol_tests::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Scale

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={s:?} is not a number")),
        Err(_) => default,
    }
}

/// Fault rounds: at least `KAFKAWIRE_FAULT_ROUNDS` (default `min`), and more
/// until `KAFKAWIRE_SOAK_SECS` have passed since the first.
struct Rounds {
    min: u64,
    until: Instant,
    n: u64,
}

impl Rounds {
    fn new(min: u64) -> Rounds {
        let min = env_u64("KAFKAWIRE_FAULT_ROUNDS", min);
        let until = Instant::now() + Duration::from_secs(env_u64("KAFKAWIRE_SOAK_SECS", 0));
        Rounds { min, until, n: 0 }
    }

    fn next(&mut self) -> Option<u64> {
        if self.n < self.min || Instant::now() < self.until {
            self.n += 1;
            Some(self.n - 1)
        } else {
            None
        }
    }
}

/// A small deterministic generator, so a failing soak can be replayed with
/// the seed it printed (`KAFKAWIRE_FAULT_SEED`).
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = env_u64("KAFKAWIRE_FAULT_SEED", 0x5eed_f00d);
        println!("fault seed {seed} (KAFKAWIRE_FAULT_SEED)");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % n.max(1)
    }
}

// ---------------------------------------------------------------------------
// Cluster control

/// Brings every node back (starts stopped ones, thaws frozen ones) when
/// dropped, also when the test panics, so the next test finds a healthy
/// cluster. Never panics itself.
struct HealOnDrop;

impl Drop for HealOnDrop {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../compose/kafka-local");
        let ok = std::process::Command::new("bash")
            .args([script, "--name", &cluster_name(), "up"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            eprintln!(
                "warning: kafka-local up after the test failed; the cluster may be unhealthy"
            );
        }
    }
}

/// SIGSTOPs node `n` directly (a few milliseconds, where `kafka-local
/// freeze` takes a bash start-up), so the freeze lands at the intended
/// moment of a commit. `kafka-local thaw`/`up` undo it.
fn freeze_now(n: i32) {
    let clusters = std::env::var("KAFKAWIRE_CLUSTERS").unwrap_or_else(|_| {
        let cache = std::env::var("KAFKAWIRE_CACHE").unwrap_or_else(|_| {
            format!("{}/.cache/kafkawire", std::env::var("HOME").expect("HOME"))
        });
        format!("{cache}/clusters")
    });
    let pidfile = format!("{clusters}/{}/node-{n}/pid", cluster_name());
    let pid = std::fs::read_to_string(&pidfile).unwrap_or_else(|e| panic!("{pidfile}: {e}"));
    let ok = std::process::Command::new("kill")
        .args(["-STOP", pid.trim()])
        .status()
        .map(|s| s.success());
    assert!(
        matches!(ok, Ok(true)),
        "kill -STOP {} (node {n}) failed",
        pid.trim()
    );
}

/// The broker leading `topic`-`partition` now, from fresh metadata.
async fn leader_of(admin: &Admin, topic: &str, partition: i32) -> i32 {
    eventually(Duration::from_secs(60), "a leader", || async {
        let t = admin.describe_topics(&[topic]).await.ok()?;
        t.first()?.partition(partition)?.leader
    })
    .await
}

/// Awaits `f`, which must finish on its own within `limit` (its own timeout
/// plus a generous margin): a hang is the failure, not slowness.
async fn bounded<T>(what: &str, limit: Duration, f: impl std::future::Future<Output = T>) -> T {
    let t0 = Instant::now();
    match tokio::time::timeout(limit, f).await {
        Ok(v) => {
            println!("  {what}: returned after {:.1?}", t0.elapsed());
            v
        }
        Err(_) => panic!("{what} hung: no result after {limit:?}"),
    }
}

// ---------------------------------------------------------------------------
// Producing into a ledger

/// An idempotent producer writing unique values `<prefix>-<seq>` to
/// partition `seq % partitions` as fast as a pacing allows, each send
/// recorded in the ledger with its ack (one ordered stream per partition).
struct Stream {
    stop: Arc<AtomicBool>,
    sender: tokio::task::JoinHandle<()>,
    acker: tokio::task::JoinHandle<(u64, u64)>,
    failures: Arc<Mutex<Vec<String>>>,
}

impl Stream {
    fn start(
        producer: Producer,
        topic: &str,
        partitions: i32,
        prefix: &str,
        ledger: Arc<Mutex<Ledger>>,
    ) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = tokio::sync::mpsc::channel(50_000);
        let sender = {
            let (stop, topic, prefix, ledger) = (
                stop.clone(),
                topic.to_string(),
                prefix.to_string(),
                ledger.clone(),
            );
            let pause =
                Duration::from_micros(100_000_000 / env_u64("KAFKAWIRE_FAULT_RATE", 5_000).max(1));
            tokio::spawn(async move {
                let mut seq: u64 = 0;
                while !stop.load(Ordering::SeqCst) {
                    let p = (seq % partitions as u64) as i32;
                    let v = format!("{prefix}-{seq}");
                    ledger
                        .lock()
                        .unwrap()
                        .send(Send::new(&v, p).order(format!("{prefix}/p{p}"), seq));
                    match producer
                        .send(ProducerRecord::new(&topic).partition(p).value(&v))
                        .await
                    {
                        Ok(f) => {
                            if tx.send((v, Some(f))).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            println!("send of {v} refused: {e}");
                            let _ = tx.send((v, None)).await;
                        }
                    }
                    seq += 1;
                    if seq % 100 == 0 {
                        // Paced (`KAFKAWIRE_FAULT_RATE`, records/s at most),
                        // so faults land mid-stream.
                        tokio::time::sleep(pause).await;
                    }
                }
            })
        };
        let acker = {
            let failures = failures.clone();
            tokio::spawn(async move {
                let (mut acked, mut failed) = (0, 0);
                while let Some((v, f)) = rx.recv().await {
                    let outcome = match f {
                        Some(f) => f.await,
                        None => Err(kafkawire::Error::illegal_state("refused at send")),
                    };
                    match outcome {
                        Ok(m) => {
                            ledger.lock().unwrap().acked(&v, m.offset());
                            acked += 1;
                        }
                        Err(e) => {
                            ledger.lock().unwrap().failed(&v);
                            let mut fs = failures.lock().unwrap();
                            if fs.len() < 20 {
                                fs.push(format!("{v}: {e}"));
                            }
                            failed += 1;
                        }
                    }
                }
                (acked, failed)
            })
        };
        Stream {
            stop,
            sender,
            acker,
            failures,
        }
    }

    /// Stops sending and waits for every outcome: (acked, failed, first failures).
    async fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.sender.await.expect("sender task");
        let (acked, failed) = self.acker.await.expect("acker task");
        let fs = self.failures.lock().unwrap().clone();
        (acked, failed, fs)
    }
}

// ---------------------------------------------------------------------------
// Judging

/// What a scenario adds up to, for its summary line.
#[derive(Default)]
struct Tally {
    records: usize,
    lost: usize,
    duplicates: usize,
    aborted_visible: usize,
    partial: usize,
    order: usize,
    other: usize,
    readers: Vec<String>,
}

impl Tally {
    fn add(&mut self, r: &Report) {
        self.records += r.visible;
        self.lost += r.lost.len();
        self.duplicates += r.duplicates.len();
        self.aborted_visible += r.aborted_visible.len();
        self.partial += r.partial_txns.len();
        self.order += r.order_violations.len();
        self.other += r.misplaced.len() + r.phantoms.len();
        self.readers.push(r.reader.clone());
    }

    fn is_clean(&self) -> bool {
        self.lost + self.duplicates + self.aborted_visible + self.partial + self.order + self.other
            == 0
    }

    fn summary(&self, scenario: &str, faults: usize, extra: &str, t0: Instant) -> String {
        format!(
            "RELIABILITY {scenario}: {} records checked ({}), {faults} faults injected, {} duplicates, {} lost, \
             {} partial transactions, {} aborted visible, {} order violations, {} other; {extra}; {:.0?}",
            self.records,
            self.readers.join(" + "),
            self.duplicates,
            self.lost,
            self.partial,
            self.aborted_visible,
            self.order,
            self.other,
            t0.elapsed()
        )
    }
}

/// Prints a summary line straight to the process's stdout, past libtest's
/// output capture, so the figures show in CI logs for passing tests too.
fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// Acknowledged offsets must be where the record is: (value, acked at, seen at).
fn ack_offset_mismatches(ledger: &Ledger, seen: &Observed) -> Vec<(String, i64, i64)> {
    let acked: HashMap<&str, i64> = ledger
        .sends()
        .iter()
        .filter_map(|s| match s.ack {
            // -1: acknowledged without a known offset (proved written
            // by a later acknowledgement).
            Ack::Acked { offset } if s.txn.is_none() && offset >= 0 => {
                Some((s.value.as_str(), offset))
            }
            _ => None,
        })
        .collect();
    seen.records
        .iter()
        .filter_map(|r| match acked.get(r.value.as_str()) {
            Some(&o) if o != r.offset => Some((r.value.clone(), o, r.offset)),
            _ => None,
        })
        .collect()
}

/// Reads `topic` back with kafkawire's and librdkafka's read_committed
/// consumers (directly, not through any proxy) and checks both against
/// the ledger. Panics, with the reports, on any violation.
async fn judge(
    topic: &str,
    ledger: &Ledger,
    txn_header: Option<&str>,
    extra: Vec<Observed>,
) -> Tally {
    await_decided(topic).await;
    let mut observed = extra;
    // Reading back takes longer the more was written (soaks write millions).
    let read_bound = Duration::from_secs(180 + ledger.sends().len() as u64 / 2_000);
    observed.push(checker::read_kafkawire(topic, txn_header, read_bound).await);
    let (t, h) = (topic.to_string(), txn_header.map(str::to_string));
    observed.push(
        tokio::task::spawn_blocking(move || checker::read_rdkafka(&t, h.as_deref(), 5_000))
            .await
            .expect("rdkafka"),
    );
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for o in &observed {
        let r = checker::check(ledger, o);
        print!("{r}");
        let mismatched = ack_offset_mismatches(ledger, o);
        if !mismatched.is_empty() {
            failures.push(format!(
                "[{}] acked offsets differ from the log: {:?}",
                o.reader,
                &mismatched[..5.min(mismatched.len())]
            ));
            tally.other += mismatched.len();
        }
        if !r.is_clean() {
            failures.push(r.to_string());
        }
        tally.add(&r);
    }
    if tally.duplicates > 0 {
        // For whoever debugs it: the batches that hold the first duplicates
        // (producer id, epoch and sequence tell a resend from a re-sequence).
        if let Some(o) = observed.first() {
            let r = checker::check(ledger, o);
            for (value, _) in r.duplicates.iter().take(2) {
                for seen in o.records.iter().filter(|x| &x.value == value) {
                    dump_batch(topic, seen.partition, seen.offset).await;
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "the checker found violations:\n{}",
        failures.join("\n")
    );
    assert!(tally.is_clean());
    tally
}

/// Waits (bounded) until no transaction on `topic` is undecided: the last
/// stable offset equals the high watermark on every partition. A commit
/// returns once the coordinator logged it; its markers reach the partitions
/// a little later, and a reader that stops at the LSO must not stop before.
async fn await_decided(topic: &str) {
    let consumer = |level| {
        Consumer::builder()
            .bootstrap_servers(&bootstrap())
            .client_id("reliability-settle")
            .isolation_level(level)
            .build()
            .unwrap()
    };
    let (committed, uncommitted) = (
        consumer(IsolationLevel::ReadCommitted),
        consumer(IsolationLevel::ReadUncommitted),
    );
    let snap = admin().describe_topics(&[topic]).await.expect("describe");
    let parts: Vec<TopicPartition> = snap[0]
        .partitions
        .iter()
        .map(|p| TopicPartition::new(topic, p.partition))
        .collect();
    eventually(
        Duration::from_secs(120),
        "LSO = high watermark (no undecided transaction)",
        || async {
            let lso = committed.end_offsets(&parts).await.ok()?;
            let hw = uncommitted.end_offsets(&parts).await.ok()?;
            (lso == hw).then_some(())
        },
    )
    .await;
}

/// Prints the header of the batch holding `offset` (a diagnostic).
async fn dump_batch(topic: &str, partition: i32, offset: i64) {
    use kafkawire::net::ConnKind;
    use kafkawire::protocol::messages::fetch::{FetchPartition, FetchRequest, FetchTopic};
    let admin = admin();
    let cluster = admin.cluster();
    let deadline = Instant::now() + Duration::from_secs(30);
    let attempt = async {
        let snap = cluster.metadata_for(&[topic.to_string()], deadline).await?;
        let id = snap.topic(topic).map(|t| t.id).unwrap_or_default();
        let leader = cluster.leader_for(topic, partition, deadline).await?;
        let conn = cluster.connection(leader, ConnKind::Fetch).await?;
        let req = FetchRequest {
            max_wait_ms: 100,
            min_bytes: 1,
            max_bytes: 1 << 20,
            topics: vec![FetchTopic {
                topic: topic.to_string(),
                topic_id: id,
                partitions: vec![FetchPartition {
                    partition,
                    fetch_offset: offset,
                    partition_max_bytes: 1 << 20,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        conn.send(&req).await
    };
    let resp = match attempt.await {
        Ok(r) => r,
        Err(e) => return println!("  (batch dump of {partition}@{offset} failed: {e})"),
    };
    let Some(bytes) = resp
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .and_then(|p| p.records.clone())
    else {
        return println!("  (no data at {partition}@{offset})");
    };
    for b in kafkawire::record::Batches::new(bytes).flatten() {
        if b.base_offset() <= offset && offset <= b.last_offset() {
            println!(
                "  batch {partition}@{}..={}: producer id {} epoch {} base sequence {} ({} records)",
                b.base_offset(),
                b.last_offset(),
                b.producer_id(),
                b.producer_epoch(),
                b.base_sequence(),
                b.last_offset() - b.base_offset() + 1
            );
        }
    }
}

fn idempotent_producer(bootstrap: &str, id: &str) -> Producer {
    Producer::builder()
        .bootstrap_servers(bootstrap)
        .client_id(id)
        .max_in_flight_requests_per_connection(5)
        .linger(Duration::from_millis(5))
        .request_timeout(Duration::from_secs(10))
        .delivery_timeout(Duration::from_secs(300))
        .retry_backoff(Duration::from_millis(50))
        .metadata_max_age(Duration::from_secs(5))
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------
// 1. Leader kills under idempotent produce

/// An idempotent producer (5 requests in flight) writes to 6 partitions
/// while the leader of partition 0 is SIGKILLed every
/// `KAFKAWIRE_KILL_EVERY_SECS` (and restarted 5 s later). No send may fail
/// (no fatal sequence error); every acknowledged record must be in the log
/// exactly once, at its acknowledged offset, in send order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_produce_while_the_leader_is_killed() {
    let t0 = Instant::now();
    let _heal = HealOnDrop;
    let admin = admin();
    let topic = create_replicated_topic(&admin, "rel-kill", 6).await;
    let ledger = Arc::new(Mutex::new(Ledger::new()));
    let producer = idempotent_producer(&bootstrap(), "rel-kill");
    let stream = Stream::start(producer.clone(), &topic, 6, "k", ledger.clone());
    let every = Duration::from_secs(env_u64("KAFKAWIRE_KILL_EVERY_SECS", 30));
    let log = FaultLog::default();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut rounds = Rounds::new(2);
    let mut last_kill: Option<Instant> = None;
    while let Some(r) = rounds.next() {
        if let Some(t) = last_kill {
            tokio::time::sleep(every.saturating_sub(t.elapsed())).await;
        }
        let victim = leader_of(&admin, &topic, 0).await;
        last_kill = Some(Instant::now());
        log.note(format!(
            "round {r}: SIGKILL broker {victim} (leader of partition 0)"
        ));
        kafka_local_async(&["kill", &victim.to_string()]).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        kafka_local_async(&["start", &victim.to_string()]).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (acked, failed, failures) = stream.finish().await;
    producer.close(Duration::from_secs(60)).await.unwrap();
    assert_eq!(failed, 0, "{failed} sends failed; first: {failures:?}");
    let ledger = ledger.lock().unwrap().clone();
    let tally = judge(&topic, &ledger, None, Vec::new()).await;
    announce(&tally.summary(
        "leader-kill",
        log.count(),
        &format!("{acked} acked, 0 failed"),
        t0,
    ));
}

// ---------------------------------------------------------------------------
// 2. Transaction coordinator frozen around EndTxn

fn txn_producer(bootstrap: &str, tid: &str) -> Producer {
    Producer::builder()
        .bootstrap_servers(bootstrap)
        .client_id("rel-txn")
        .transactional_id(tid)
        .max_block(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(60))
        .transaction_timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Ends the current transaction after a failed commit the way an
/// application would: commit again, else abort, else (fatal) a new
/// producer. Returns the producer to use next and the outcome known.
async fn settle(
    p: Producer,
    tid: &str,
    first: kafkawire::Error,
    bound: Duration,
) -> (Producer, Option<bool>) {
    if !first.is_fatal() {
        if bounded("commit again", bound, p.commit_transaction())
            .await
            .is_ok()
        {
            return (p, Some(true));
        }
        if bounded("abort", bound, p.abort_transaction()).await.is_ok() {
            return (p, Some(false));
        }
        if p.transaction_state() == Some(TxnState::Ready) {
            return (p, None);
        }
    }
    println!("  fatal or stuck ({first}); a new producer takes over {tid}");
    let q = txn_producer(&bootstrap(), tid);
    bounded(
        "init_transactions of the successor",
        bound,
        q.init_transactions(),
    )
    .await
    .expect("re-init");
    (q, None)
}

/// A transactional producer commits while its coordinator is frozen
/// (SIGSTOP) for 5-15 s: just before EndTxn, just after it was sent, or
/// while the transaction's records are still in flight. A transaction
/// reported committed must be wholly visible, every other one wholly
/// visible or wholly invisible; the producer keeps working afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_frozen_around_end_txn() {
    let t0 = Instant::now();
    let _heal = HealOnDrop;
    let admin = admin();
    let topic = create_replicated_topic(&admin, "rel-freeze", 4).await;
    let tid = unique("rel-freeze-id");
    let mut p = txn_producer(&bootstrap(), &tid);
    p.init_transactions().await.expect("init");
    let mut ledger = Ledger::new();
    let log = FaultLog::default();
    let bound = Duration::from_secs(120);
    let mut rounds = Rounds::new(3);
    while let Some(r) = rounds.next() {
        let name = format!("freeze-{r}");
        let freeze_for = Duration::from_secs(5 + (r * 7) % 11);
        let mode = r % 3;
        ledger.begin(&name);
        p.begin_transaction().unwrap();
        let cluster = admin.cluster().clone();
        cluster.invalidate_coordinator(CoordinatorType::Transaction, &tid);
        let (node, _) = cluster
            .coordinator(
                CoordinatorType::Transaction,
                &tid,
                Instant::now() + Duration::from_secs(30),
            )
            .await
            .unwrap();
        let thaw = |node: i32, after: Duration| {
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                kafka_local_async(&["thaw", &node.to_string()]).await;
            })
        };
        let mut thawer = None;
        for n in 0..40u32 {
            if mode == 2 && n == 20 {
                log.note(format!(
                    "{name}: SIGSTOP coordinator {node} for {freeze_for:?} mid-transaction"
                ));
                freeze_now(node);
                thawer = Some(thaw(node, freeze_for));
            }
            let v = format!("{name}-{n}");
            let part = (n % 4) as i32;
            ledger.send(Send::new(&v, part).txn(&name));
            p.send_and_forget(
                ProducerRecord::new(&topic)
                    .partition(part)
                    .value(&v)
                    .header("txn", Some(&name)),
            )
            .await
            .unwrap();
        }
        if mode == 0 {
            log.note(format!(
                "{name}: SIGSTOP coordinator {node} for {freeze_for:?} before commit"
            ));
            freeze_now(node);
            thawer = Some(thaw(node, freeze_for));
        }
        let committer = {
            let p = p.clone();
            tokio::spawn(async move { p.commit_transaction().await })
        };
        if mode == 1 {
            tokio::time::sleep(Duration::from_millis(r * 13 % 60)).await;
            freeze_now(node);
            log.note(format!(
                "{name}: SIGSTOP coordinator {node} for {freeze_for:?} during commit"
            ));
            thawer = Some(thaw(node, freeze_for));
        }
        let first = bounded(&format!("{name} commit"), bound, committer)
            .await
            .unwrap();
        let outcome = match first {
            Ok(()) => Some(true),
            Err(e) => {
                println!("  {name}: commit failed: {e}");
                let (q, o) = settle(p, &tid, e, bound).await;
                p = q;
                o
            }
        };
        match outcome {
            Some(true) => ledger.committed(&name),
            Some(false) => ledger.aborted(&name),
            None => {}
        }
        if let Some(t) = thawer {
            t.await.unwrap();
        }
        // Let the thawed broker catch up before the next round.
        kafka_local_async(&["up"]).await;
    }
    // The producer still works.
    ledger.begin("final");
    p.begin_transaction().unwrap();
    ledger.send(Send::new("final", 0).txn("final"));
    p.send_and_forget(
        ProducerRecord::new(&topic)
            .partition(0)
            .value("final")
            .header("txn", Some("final")),
    )
    .await
    .unwrap();
    p.commit_transaction().await.expect("final commit");
    ledger.committed("final");
    let (committed, aborted, unknown) = ledger.txn_counts();
    let tally = judge(&topic, &ledger, Some("txn"), Vec::new()).await;
    announce(&tally.summary(
        "coordinator-freeze",
        log.count(),
        &format!(
            "transactions: {committed} committed, {aborted} aborted, {unknown} unknown outcome"
        ),
        t0,
    ));
}

// ---------------------------------------------------------------------------
// 3. Every broker unreachable

/// Every client call made while no broker can be reached must come back
/// with an error (or, for poll, empty) within its own timeout plus a
/// margin; none may hang. Done twice per round: with every connection
/// reset (refused) and with every connection silent (blackholed). The
/// calls of one phase run concurrently, each bounded on its own. After the
/// proxy heals, the same clients work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_brokers_unreachable_calls_fail_cleanly_and_clients_recover() {
    all_brokers_away(&["refused", "blackholed"], "all-brokers-unreachable").await;
}

/// The same calls with every broker really down: all three killed
/// (SIGKILL, the KRaft quorum gone too), then `kafka-local up` brings them
/// back and the same clients (still routed through a transparent proxy)
/// work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_brokers_killed_calls_fail_cleanly_and_clients_recover() {
    all_brokers_away(&["killed"], "all-brokers-killed").await;
}

/// One outage per mode and round: `refused` (the proxy resets every
/// connection), `blackholed` (the proxy stays silent) or `killed` (every
/// broker SIGKILLed, restarted by `kafka-local up`).
async fn all_brokers_away(modes: &[&str], scenario: &str) {
    let t0 = Instant::now();
    let _heal = HealOnDrop;
    let admin = admin();
    let topic = create_replicated_topic(&admin, "rel-down", 3).await;
    let proxy = FaultProxy::for_cluster().await;
    let via = proxy.bootstrap();
    let log = FaultLog::default();
    let ledger = Mutex::new(Ledger::new());

    // Each client's own bound, and the margin on top of it.
    let delivery = Duration::from_secs(15);
    let max_block = Duration::from_secs(10);
    let api = Duration::from_secs(10);
    let margin = Duration::from_secs(30);

    let producer = Producer::builder()
        .bootstrap_servers(&via)
        .client_id("rel-down")
        .request_timeout(Duration::from_secs(5))
        .delivery_timeout(delivery)
        .max_block(max_block)
        .metadata_max_age(Duration::from_secs(5))
        .build()
        .unwrap();
    let tid = unique("rel-down-id");
    let txp = Producer::builder()
        .bootstrap_servers(&via)
        .client_id("rel-down-txn")
        .transactional_id(&tid)
        .request_timeout(Duration::from_secs(5))
        .delivery_timeout(delivery)
        .max_block(max_block)
        .build()
        .unwrap();
    txp.init_transactions().await.expect("init");
    let parts: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new(&topic, p)).collect();
    let mut consumer = Consumer::builder()
        .bootstrap_servers(&via)
        .client_id("rel-down-consumer")
        .isolation_level(IsolationLevel::ReadCommitted)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .set("default.api.timeout.ms", "10000")
        .set("request.timeout.ms", "5000")
        .build()
        .unwrap();
    consumer.assign(&parts).unwrap();
    let proxied_admin = Admin::builder()
        .bootstrap_servers(&via)
        .client_id("rel-down-admin")
        .request_timeout(Duration::from_secs(5))
        .default_api_timeout(api)
        .build()
        .unwrap();

    let mut seen: Vec<ConsumerRecord> = Vec::new();
    let mut seq = 0u64;
    let mut calls = 0usize;
    let mut rounds = Rounds::new(1);
    while let Some(r) = rounds.next() {
        // Healthy: records and a transaction go through.
        let tag = format!("ok{r}");
        produce_and_see(
            &producer,
            &mut consumer,
            &topic,
            &ledger,
            &mut seq,
            &tag,
            &mut seen,
        )
        .await;
        txn_round(&txp, &topic, &ledger, &format!("down-{r}-before"), true)
            .await
            .expect("healthy transaction");

        for &mode in modes {
            match mode {
                "refused" => proxy.isolate(),
                "blackholed" => {
                    for l in proxy.links() {
                        l.set_blackhole(true);
                    }
                }
                "killed" => {
                    for n in ["1", "2", "3"] {
                        kafka_local_async(&["kill", n]).await;
                    }
                }
                other => panic!("unknown outage mode {other}"),
            }
            log.note(if mode == "killed" {
                format!("round {r}: every broker killed (SIGKILL)")
            } else {
                format!("round {r}: every broker {mode} by the proxy")
            });
            let name = format!("down-{r}-{mode}");
            // Producer: each record fails within delivery.timeout.ms.
            let records = async {
                let mut futs = Vec::new();
                for i in 0..5 {
                    let v = format!("rec-{r}-{mode}-{i}");
                    ledger.lock().unwrap().send(Send::new(&v, i % 3));
                    let rec = ProducerRecord::new(&topic).partition(i % 3).value(&v);
                    let sent = bounded(
                        "producer.send (enqueue)",
                        max_block + margin,
                        producer.send(rec),
                    )
                    .await;
                    futs.push((v, sent));
                }
                for (v, sent) in futs {
                    let outcome = match sent {
                        Ok(f) => bounded("delivery of a record", delivery + margin, f)
                            .await
                            .map(|_| ()),
                        Err(e) => Err(e),
                    };
                    match outcome {
                        Ok(()) => panic!("{v} was acknowledged with every broker {mode}"),
                        Err(e) => {
                            println!("  {v}: {e}");
                            ledger.lock().unwrap().failed(&v);
                        }
                    }
                }
                bounded("producer.flush", delivery + margin, producer.flush()).await;
            };
            let offsets = async {
                let e = bounded(
                    "consumer.end_offsets",
                    api + margin,
                    consumer.end_offsets(&parts),
                )
                .await;
                assert!(
                    e.is_err(),
                    "end_offsets answered with every broker {mode}: {e:?}"
                );
                println!("  end_offsets: {}", e.unwrap_err());
            };
            // Transactions: a commit fails; a new producer cannot initialize.
            let commit = async {
                let res = txn_round(&txp, &topic, &ledger, &name, false).await;
                assert!(
                    res.is_err(),
                    "transaction {name} committed with every broker {mode}"
                );
                println!(
                    "  commit_transaction: {} (state {:?})",
                    res.unwrap_err(),
                    txp.transaction_state()
                );
            };
            let init = async {
                let fresh = Producer::builder()
                    .bootstrap_servers(&via)
                    .transactional_id(unique("rel-down-fresh"))
                    .max_block(max_block)
                    .request_timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                let e = bounded(
                    "init_transactions",
                    max_block + margin,
                    fresh.init_transactions(),
                )
                .await;
                assert!(
                    e.is_err(),
                    "init_transactions succeeded with every broker {mode}"
                );
                println!("  init_transactions: {}", e.unwrap_err());
            };
            let describe = async {
                let e = bounded(
                    "admin.describe_topics",
                    api + margin,
                    proxied_admin.describe_topics(&[&topic]),
                )
                .await;
                assert!(
                    e.is_err(),
                    "describe_topics answered with every broker {mode}"
                );
                println!("  describe_topics: {}", e.unwrap_err());
            };
            tokio::join!(records, offsets, commit, init, describe);
            // Consumer: poll returns (empty or an error) within its timeout.
            let polled = bounded(
                "consumer.poll(2s)",
                Duration::from_secs(2) + margin,
                consumer.poll(Duration::from_secs(2)),
            )
            .await;
            match polled {
                Ok(rs) => seen.extend(rs),
                Err(e) => println!("  poll: {e}"),
            }
            calls += 5 + 5 + 1 + 1 + 1 + 1 + 1;

            if mode == "killed" {
                kafka_local_async(&["up"]).await;
                println!("round {r}: brokers restarted");
            } else {
                proxy.heal();
                println!("round {r}: proxy healed");
            }
            // Recovery: the interrupted transaction ends the documented way
            // (a timed-out commit is called again; an abortable one aborts),
            // then the same clients work again.
            finish_interrupted(&txp, &name, &ledger).await;
            let tag = format!("after-{r}-{mode}");
            produce_and_see(
                &producer,
                &mut consumer,
                &topic,
                &ledger,
                &mut seq,
                &tag,
                &mut seen,
            )
            .await;
            assert_eq!(
                txp.transaction_state(),
                Some(TxnState::Ready),
                "the transactional producer did not recover after the brokers came back"
            );
            txn_round(
                &txp,
                &topic,
                &ledger,
                &format!("down-{r}-{mode}-after"),
                true,
            )
            .await
            .expect("a transaction after the brokers came back");
        }
    }
    producer.close(Duration::from_secs(30)).await.unwrap();
    let ledger = ledger.into_inner().unwrap();
    // The transactional records are judged by the final readers; the live
    // consumer is judged on the plain stream.
    let mut live = Observed::new("kafkawire live, via proxy");
    for rec in seen.iter().filter(|r| r.headers().last("txn").is_none()) {
        let v = String::from_utf8_lossy(rec.value.as_deref().unwrap_or_default());
        live.push(rec.partition, rec.offset, v, None);
    }
    let mut live_ledger = Ledger::new();
    for s in ledger.sends().iter().filter(|s| s.txn.is_none()) {
        live_ledger.send(Send::new(&s.value, s.partition));
        if let Ack::Acked { offset } = s.ack {
            live_ledger.acked(&s.value, offset);
        }
    }
    let live_report = checker::check(&live_ledger, &live);
    print!("{live_report}");
    assert!(
        live_report.lost.is_empty()
            && live_report.duplicates.is_empty()
            && live_report.order_violations.is_empty(),
        "live consumer: {live_report}"
    );
    let mut tally = judge(&topic, &ledger, Some("txn"), Vec::new()).await;
    tally.add(&live_report);
    let stats = proxy.stats();
    announce(&tally.summary(
        scenario,
        log.count(),
        &format!(
            "{calls} calls made while unreachable, all returned; {} proxy connections, {} reset",
            stats.accepted, stats.severed
        ),
        t0,
    ));
}

/// Ends a transaction whose commit failed while the brokers were away:
/// commit again if the commit timed out, abort if it became abortable.
/// Each call returns within `max.block.ms`; while the restarted cluster is
/// still settling (the coordinator answering CONCURRENT_TRANSACTIONS while
/// it finishes the transaction's markers) that is a retriable timeout, and
/// the call is made again, as an application would, for up to 120 s.
async fn finish_interrupted(p: &Producer, name: &str, ledger: &Mutex<Ledger>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let bound = Duration::from_secs(120);
    while p.transaction_state() == Some(TxnState::Committing) {
        match bounded("commit_transaction again", bound, p.commit_transaction()).await {
            Ok(()) => {
                ledger.lock().unwrap().committed(name);
                return;
            }
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                println!("  {name}: commit again failed, retrying: {e}")
            }
            Err(e) => {
                println!("  {name}: commit again failed: {e}");
                break;
            }
        }
    }
    if matches!(
        p.transaction_state(),
        Some(TxnState::AbortableError | TxnState::InTransaction | TxnState::Aborting)
    ) {
        loop {
            match bounded("abort_transaction", bound, p.abort_transaction()).await {
                Ok(()) => break,
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    println!("  {name}: abort failed, retrying: {e}")
                }
                Err(e) => panic!("abort after heal: {e:?}"),
            }
        }
        ledger.lock().unwrap().aborted(name);
    }
}

/// Sends 50 records and waits (bounded) until they are acknowledged and the
/// consumer has seen them.
async fn produce_and_see(
    producer: &Producer,
    consumer: &mut Consumer,
    topic: &str,
    ledger: &Mutex<Ledger>,
    seq: &mut u64,
    tag: &str,
    seen: &mut Vec<ConsumerRecord>,
) {
    let mut futs = Vec::new();
    for _ in 0..50 {
        let p = (*seq % 3) as i32;
        let v = format!("{tag}-{}", *seq);
        ledger
            .lock()
            .unwrap()
            .send(Send::new(&v, p).order(format!("p{p}"), *seq));
        futs.push((
            v.clone(),
            producer
                .send(ProducerRecord::new(topic).partition(p).value(&v))
                .await,
        ));
        *seq += 1;
    }
    let mut want = Vec::new();
    for (v, f) in futs {
        let m = bounded(
            "delivery after heal",
            Duration::from_secs(120),
            f.expect("enqueue"),
        )
        .await;
        let m = m.unwrap_or_else(|e| panic!("{v} failed after the brokers came back: {e}"));
        ledger.lock().unwrap().acked(&v, m.offset());
        want.push(v);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let has = |seen: &Vec<ConsumerRecord>, v: &str| {
        seen.iter()
            .any(|r| r.value.as_deref() == Some(v.as_bytes()))
    };
    while !want.iter().all(|v| has(seen, v)) {
        assert!(
            Instant::now() < deadline,
            "the consumer did not see the records of {tag} within 120 s"
        );
        match consumer.poll(Duration::from_millis(500)).await {
            Ok(rs) => seen.extend(rs),
            Err(e) => println!("  poll while recovering: {e}"),
        }
    }
}

/// One transaction of 6 records, tagged `txn` = `name`; commits and returns
/// the commit's result (recorded in the ledger when OK). `must` panics on
/// a failed send.
async fn txn_round(
    p: &Producer,
    topic: &str,
    ledger: &Mutex<Ledger>,
    name: &str,
    must: bool,
) -> kafkawire::Result<()> {
    ledger.lock().unwrap().begin(name);
    p.begin_transaction()?;
    for i in 0..6 {
        let v = format!("{name}-{i}");
        ledger.lock().unwrap().send(Send::new(&v, i % 3).txn(name));
        let r = bounded(
            "send in a transaction",
            Duration::from_secs(60),
            p.send_and_forget(
                ProducerRecord::new(topic)
                    .partition(i % 3)
                    .value(&v)
                    .header("txn", Some(name)),
            ),
        )
        .await;
        if must {
            r.unwrap();
        }
    }
    let r = bounded(
        "commit_transaction",
        Duration::from_secs(60),
        p.commit_transaction(),
    )
    .await;
    if r.is_ok() {
        ledger.lock().unwrap().committed(name);
    }
    r
}

// ---------------------------------------------------------------------------
// 4. A producer killed mid-transaction

/// A transactional producer process (`txn_crash_child`) is SIGKILLed with
/// its transaction open and never restarted. The transaction must be
/// aborted by the coordinator when `transaction.timeout.ms` (10 s) runs
/// out, so the last stable offset moves on: a read_committed consumer that
/// was reading all along sees the records written after the open
/// transaction, and never the dead producer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_killed_mid_transaction_lso_advances() {
    let t0 = Instant::now();
    let admin = admin();
    let topic = create_replicated_topic(&admin, "rel-crash", 3).await;
    let txn_timeout = Duration::from_secs(10);
    let mut ledger = Ledger::new();
    let log = FaultLog::default();
    let parts: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new(&topic, p)).collect();
    let mut consumer = Consumer::builder()
        .bootstrap_servers(&bootstrap())
        .isolation_level(IsolationLevel::ReadCommitted)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .build()
        .unwrap();
    consumer.assign(&parts).unwrap();
    let producer = idempotent_producer(&bootstrap(), "rel-crash-after");
    let mut seen: Vec<ConsumerRecord> = Vec::new();
    let mut waits = Vec::new();
    let mut rounds = Rounds::new(1);
    while let Some(r) = rounds.next() {
        let tag = format!("crash-{r}");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_txn_crash_child"))
            .args([
                &bootstrap(),
                &topic,
                "3",
                &unique("rel-crash-id"),
                &txn_timeout.as_millis().to_string(),
                "30",
                &tag,
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("txn_crash_child");
        let stdout = child.stdout.take().unwrap();
        let lines = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut lines = Vec::new();
            for l in std::io::BufReader::new(stdout).lines() {
                let l = l.unwrap_or_default();
                let open = l == "OPEN";
                lines.push(l);
                if open {
                    break;
                }
            }
            lines
        });
        let lines = bounded(
            "the child's open transaction",
            Duration::from_secs(120),
            lines,
        )
        .await
        .unwrap();
        assert_eq!(
            lines.last().map(String::as_str),
            Some("OPEN"),
            "the child died early: {lines:?}"
        );
        child.kill().expect("SIGKILL the child");
        let killed = Instant::now();
        let _ = child.wait();
        log.note(format!(
            "{tag}: producer process SIGKILLed with its transaction open"
        ));
        ledger.begin(&tag);
        for l in &lines[..lines.len() - 1] {
            let f: Vec<&str> = l.split_whitespace().collect();
            ledger.send(Send::new(f[3], f[1].parse().unwrap()).txn(&tag));
        }
        // Never committed, and the producer is gone: the coordinator must abort it.
        ledger.aborted(&tag);
        // Records written after the open transaction.
        let mut want = Vec::new();
        for i in 0..30 {
            let v = format!("after-{r}-{i}");
            let p = (i % 3) as i32;
            ledger.send(Send::new(&v, p).order(format!("p{p}"), r * 1000 + i));
            let m = producer
                .send(ProducerRecord::new(&topic).partition(p).value(&v))
                .await
                .unwrap()
                .await
                .unwrap();
            ledger.acked(&v, m.offset());
            want.push(v);
        }
        let bound = txn_timeout + Duration::from_secs(90);
        let has = |seen: &Vec<ConsumerRecord>, v: &str| {
            seen.iter()
                .any(|r| r.value.as_deref() == Some(v.as_bytes()))
        };
        while !want.iter().all(|v| has(&seen, v)) {
            assert!(
                killed.elapsed() < bound,
                "the read_committed consumer is stuck behind the dead producer's transaction {bound:?} after the kill \
                 (transaction.timeout.ms = {txn_timeout:?})"
            );
            seen.extend(consumer.poll(Duration::from_millis(500)).await.unwrap());
        }
        println!(
            "  {tag}: later records visible {:.1?} after the kill",
            killed.elapsed()
        );
        waits.push(killed.elapsed());
    }
    producer.close(Duration::from_secs(30)).await.unwrap();
    let mut live = Observed::new("kafkawire live consumer");
    for rec in &seen {
        let txn = rec
            .headers()
            .last("txn")
            .flatten()
            .map(|v| String::from_utf8_lossy(v).into_owned());
        live.push(
            rec.partition,
            rec.offset,
            String::from_utf8_lossy(rec.value.as_deref().unwrap_or_default()),
            txn,
        );
    }
    let tally = judge(&topic, &ledger, Some("txn"), vec![live]).await;
    announce(&tally.summary(
        "producer-crash",
        log.count(),
        &format!("LSO moved on after the kill in {waits:.1?}"),
        t0,
    ));
}

// ---------------------------------------------------------------------------
// 5. Connection faults via the proxy

/// An idempotent producer and a read_committed consumer, both behind the
/// fault proxy, while it delays, severs, cuts mid-response and blackholes
/// connections to one broker or all of them. No send may fail; the live
/// consumer and the final readers must see every acknowledged record once,
/// in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_faults_during_produce_and_consume() {
    let t0 = Instant::now();
    let admin = admin();
    let topic = create_replicated_topic(&admin, "rel-proxy", 6).await;
    let proxy = FaultProxy::for_cluster().await;
    let via = proxy.bootstrap();
    let ledger = Arc::new(Mutex::new(Ledger::new()));
    let log = FaultLog::default();
    let producer = idempotent_producer(&via, "rel-proxy");
    let stream = Stream::start(producer.clone(), &topic, 6, "x", ledger.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (via, topic, stop) = (via.clone(), topic.clone(), stop.clone());
        tokio::spawn(async move {
            let mut c = Consumer::builder()
                .bootstrap_servers(&via)
                .client_id("rel-proxy-consumer")
                .isolation_level(IsolationLevel::ReadCommitted)
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false)
                .set("request.timeout.ms", "10000")
                .build()
                .unwrap();
            c.assign(
                &(0..6)
                    .map(|p| TopicPartition::new(&topic, p))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
            let mut seen = Observed::new("kafkawire live, via proxy");
            let mut errors = 0u32;
            while !stop.load(Ordering::SeqCst) {
                match c.poll(Duration::from_millis(300)).await {
                    Ok(rs) => {
                        for r in rs {
                            seen.push(
                                r.partition,
                                r.offset,
                                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()),
                                None,
                            );
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        if errors <= 5 {
                            println!("  live poll: {e}");
                        }
                    }
                }
            }
            (c, seen)
        })
    };
    let mut rng = Rng::from_env();
    let nodes = proxy.nodes();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut rounds = Rounds::new(6);
    while let Some(r) = rounds.next() {
        let node = nodes[rng.below(nodes.len() as u64) as usize];
        let link = proxy.link(node);
        match rng.below(5) {
            0 => {
                let d = Duration::from_millis(200 + rng.below(1300));
                log.note(format!("round {r}: delay {d:?} on broker {node} for 5 s"));
                link.set_delay(d);
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            1 => {
                log.note(format!(
                    "round {r}: sever every connection to broker {node}"
                ));
                link.sever();
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            2 => {
                let n = 1 + rng.below(20_000);
                log.note(format!(
                    "round {r}: cut connections to broker {node} after {n} response bytes, for 4 s"
                ));
                link.cut_responses_after(Some(n));
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
            3 => {
                let d = Duration::from_secs(3 + rng.below(12));
                log.note(format!("round {r}: blackhole broker {node} for {d:?}"));
                link.set_blackhole(true);
                tokio::time::sleep(d).await;
            }
            _ => {
                log.note(format!("round {r}: sever and refuse every broker for 3 s"));
                proxy.isolate();
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
        proxy.heal();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (acked, failed, failures) = stream.finish().await;
    producer.close(Duration::from_secs(60)).await.unwrap();
    assert_eq!(failed, 0, "{failed} sends failed; first: {failures:?}");
    let ledger = ledger.lock().unwrap().clone();
    let want = ledger.sends().len();
    let (mut consumer, live) = finish_reader(&stop, reader).await;
    // Whatever the live reader had not reached yet, it reads now.
    let mut live = live;
    let end = Instant::now() + Duration::from_secs(120);
    while live.len() < want && Instant::now() < end {
        for r in consumer
            .poll(Duration::from_millis(500))
            .await
            .unwrap_or_default()
        {
            live.push(
                r.partition,
                r.offset,
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()),
                None,
            );
        }
    }
    let stats = proxy.stats();
    let tally = judge(&topic, &ledger, None, vec![live]).await;
    announce(&tally.summary(
        "proxy-connection-faults",
        log.count(),
        &format!(
            "{acked} acked, 0 failed; {} proxy connections, {} reset",
            stats.accepted, stats.severed
        ),
        t0,
    ));
}

async fn finish_reader(
    stop: &AtomicBool,
    reader: tokio::task::JoinHandle<(Consumer, Observed)>,
) -> (Consumer, Observed) {
    stop.store(true, Ordering::SeqCst);
    bounded("live consumer stop", Duration::from_secs(60), reader)
        .await
        .expect("live reader")
}
