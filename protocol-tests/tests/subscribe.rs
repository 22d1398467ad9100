//! `Consumer::subscribe` against one real broker (Kafka 4.x and 3.x):
//! consumers in a group that members join, leave and are killed from,
//! committing after processing; auto-commit on revocation; and a
//! librdkafka consumer sharing the group.
//!
//! No timing assertions: waits are bounded by generous timeouts only.

use kafkawire::admin::NewTopic;
use kafkawire::consumer::{
    Consumer, OffsetAndMetadata, OffsetReset, RebalanceContext, RebalanceListener, TopicPartition,
};
use protocol_tests::interop::{self, Peer};
use protocol_tests::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

const PARTITIONS: i32 = 6;
const WAIT: Duration = Duration::from_secs(180);

async fn topic_with_partitions(n: i32) -> String {
    protocol_tests::create_topic("sub", n).await
}

/// Produces `count` records with unique values (`v0`, `v1`, ...) and keys
/// spread over the partitions, with the Java producer. Returns
/// (partition, offset) of each.
async fn produce(topic: &str, count: usize) -> Vec<(i32, i64)> {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let n = count.to_string();
        interop::produce(
            Peer::Java,
            &["--topic", &topic, "--count", &n, "--key-prefix", "k"],
        )
        .into_iter()
        .map(|(p, o, _)| (p, o))
        .collect()
    })
    .await
    .unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Flavour {
    Eager,
    Cooperative,
    Kip848,
}

fn consumer(group: &str, flavour: Flavour) -> Consumer {
    let b = Consumer::builder()
        .bootstrap_servers(&bootstrap())
        .group_id(group)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .set("max.poll.records", "20")
        .set("max.poll.interval.ms", "60000");
    let b = match flavour {
        Flavour::Eager => b.set("partition.assignment.strategy", "range"),
        Flavour::Cooperative => b.set("partition.assignment.strategy", "cooperative-sticky"),
        Flavour::Kip848 => b.set("group.protocol", "consumer"),
    };
    let b = match flavour {
        Flavour::Kip848 => b,
        _ => b
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500"),
    };
    b.build().unwrap()
}

/// Everything the members did, in one global order (`seq`).
#[derive(Default)]
struct Log {
    seq: u64,
    /// (seq, member, partition, offset) per record processed.
    processed: Vec<(u64, String, i32, i64)>,
    /// (seq, member, partition, committed offset) per successful commit,
    /// logged after the commit returned.
    committed: Vec<(u64, String, i32, i64)>,
    errors: Vec<String>,
}

type SharedLog = Arc<Mutex<Log>>;

struct Member {
    name: String,
    leave: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// A member's loop: poll, process (log, then a short pause standing for
/// the work), commit the offsets after the processed records, repeat.
fn spawn_member(name: &str, group: &str, topic: &str, flavour: Flavour, log: SharedLog) -> Member {
    let mut c = consumer(group, flavour);
    c.subscribe(&[topic]).unwrap();
    let leave = Arc::new(AtomicBool::new(false));
    let (n, l) = (name.to_string(), leave.clone());
    let task = tokio::spawn(async move {
        while !l.load(Ordering::SeqCst) {
            let records = match c.poll(Duration::from_millis(500)).await {
                Ok(r) => r,
                Err(e) => {
                    log.lock().unwrap().errors.push(format!("{n} poll: {e}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if records.is_empty() {
                continue;
            }
            let mut next: BTreeMap<i32, i64> = BTreeMap::new();
            {
                let mut g = log.lock().unwrap();
                for r in &records {
                    g.seq += 1;
                    let s = g.seq;
                    g.processed.push((s, n.clone(), r.partition, r.offset));
                    next.insert(r.partition, r.offset + 1);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let topic: Arc<str> = records[0].topic.clone();
            let offsets = next
                .iter()
                .map(|(p, o)| (TopicPartition::new(&*topic, *p), OffsetAndMetadata::new(*o)))
                .collect();
            // A failed commit (the group rebalanced meanwhile) is normal:
            // those records may be processed again by the next owner.
            if c.commit_offsets_sync(offsets).await.is_ok() {
                let mut g = log.lock().unwrap();
                for (p, o) in next {
                    g.seq += 1;
                    let s = g.seq;
                    g.committed.push((s, n.clone(), p, o));
                }
            }
        }
        if let Err(e) = c.close().await {
            log.lock().unwrap().errors.push(format!("{n} close: {e}"));
        }
    });
    Member {
        name: name.to_string(),
        leave,
        task,
    }
}

async fn leave(m: Member) {
    m.leave.store(true, Ordering::SeqCst);
    tokio::time::timeout(WAIT, m.task)
        .await
        .expect("member closes")
        .unwrap();
}

/// A kill: the task and its consumer are dropped mid-flight, without
/// committing or leaving; the broker drops the member after its session
/// timeout.
async fn kill(m: Member) {
    m.task.abort();
    let _ = m.task.await;
}

fn distinct_processed(log: &SharedLog) -> usize {
    log.lock()
        .unwrap()
        .processed
        .iter()
        .map(|(_, _, p, o)| (*p, *o))
        .collect::<HashSet<_>>()
        .len()
}

async fn group_churn(flavour: Flavour) {
    const N: usize = 30_000;
    let topic = topic_with_partitions(PARTITIONS).await;
    let produced = produce(&topic, N).await;
    assert_eq!(produced.len(), N);
    let group = unique("g");
    let log = SharedLog::default();
    let a = spawn_member("a", &group, &topic, flavour, log.clone());
    let b = spawn_member("b", &group, &topic, flavour, log.clone());
    let c = spawn_member("c", &group, &topic, flavour, log.clone());
    let progress = |frac: f64, what: &'static str| {
        let log = log.clone();
        async move {
            eventually(WAIT, what, || async {
                (distinct_processed(&log) as f64 >= frac * N as f64).then_some(())
            })
            .await
        }
    };
    progress(0.15, "15% processed").await;
    println!("{flavour:?}: {} leaves", a.name);
    leave(a).await;
    progress(0.35, "35% processed").await;
    println!("{flavour:?}: {} killed", b.name);
    kill(b).await;
    progress(0.5, "50% processed").await;
    println!("{flavour:?}: d joins");
    let d = spawn_member("d", &group, &topic, flavour, log.clone());
    progress(1.0, "every record processed").await;
    leave(c).await;
    leave(d).await;

    let g = log.lock().unwrap();
    // Every record produced was processed at least once.
    let seen: HashSet<(i32, i64)> = g.processed.iter().map(|(_, _, p, o)| (*p, *o)).collect();
    let missing: Vec<_> = produced
        .iter()
        .filter(|r| !seen.contains(r))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{flavour:?}: records never processed, e.g. {missing:?}"
    );
    // "No committed record is processed twice by a live member": once a
    // commit of offset C for partition P has returned successfully (logged
    // at sequence S), the records of P below C are done for the group, so
    // no member may process any record of P at an offset below C after S.
    // Only live members process anything (a killed member's task is gone),
    // and members that processed records without committing them (killed,
    // or a commit refused by a rebalance) may legitimately see those
    // records processed again: they were never committed.
    let mut high: BTreeMap<i32, Vec<(u64, i64)>> = BTreeMap::new();
    for (s, _, p, o) in &g.committed {
        high.entry(*p).or_default().push((*s, *o));
    }
    let mut violations = Vec::new();
    for (s, m, p, o) in &g.processed {
        if let Some(c) = high
            .get(p)
            .and_then(|cs| cs.iter().filter(|(cs, _)| cs < s).map(|(_, c)| *c).max())
        {
            if *o < c {
                violations.push(format!("{m} processed {p}@{o} after {c} was committed"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "{flavour:?}: {} violations, e.g. {:?}",
        violations.len(),
        &violations[..5.min(violations.len())]
    );
    let again = g.processed.len() - seen.len();
    println!(
        "{flavour:?}: {} records processed {} times ({again} repeats of uncommitted records), {} commits, errors: {:?}",
        seen.len(),
        g.processed.len(),
        g.committed.len(),
        g.errors
    );
    assert!(g.errors.is_empty(), "{flavour:?}: {:?}", g.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_classic_eager() {
    group_churn(Flavour::Eager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_classic_cooperative() {
    group_churn(Flavour::Cooperative).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_kip848() {
    if kafka_major() < 4 {
        println!("KIP-848 needs Kafka 4.x; skipped on {}", kafka_major());
        return;
    }
    group_churn(Flavour::Kip848).await;
}

/// Records what the listener saw.
#[derive(Clone, Default)]
struct Seen {
    holds: Arc<Mutex<BTreeSet<i32>>>,
    revoked: Arc<Mutex<Vec<TopicPartition>>>,
}

impl RebalanceListener for Seen {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition], _: &mut RebalanceContext) {
        let mut h = self.holds.lock().unwrap();
        for tp in partitions {
            h.remove(&tp.partition());
        }
        self.revoked
            .lock()
            .unwrap()
            .extend(partitions.iter().cloned());
    }
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition], _: &mut RebalanceContext) {
        self.holds
            .lock()
            .unwrap()
            .extend(partitions.iter().map(|tp| tp.partition()));
    }
}

/// With enable.auto.commit and an auto-commit interval too long to fire,
/// the only commits are those on revocation: after a second member joins,
/// the partitions taken from the first are committed at its positions
/// (the end of each partition, as it consumed everything).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_commit_commits_revoked_partitions() {
    for strategy in ["range", "cooperative-sticky"] {
        let topic = topic_with_partitions(PARTITIONS).await;
        let produced = produce(&topic, 600).await;
        let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
        for (p, o) in &produced {
            let e = ends.entry(*p).or_default();
            *e = (*e).max(o + 1);
        }
        let group = unique("g");
        let mk = || {
            Consumer::builder()
                .bootstrap_servers(&bootstrap())
                .group_id(&group)
                .auto_offset_reset(OffsetReset::Earliest)
                .set("auto.commit.interval.ms", "3600000")
                .set("partition.assignment.strategy", strategy)
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "500")
                .build()
                .unwrap()
        };
        let mut first = mk();
        let seen = Seen::default();
        first
            .subscribe_with_listener(&[&topic], seen.clone())
            .unwrap();
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + WAIT;
        while got < produced.len() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{strategy}: consumed only {got}"
            );
            got += first.poll(Duration::from_millis(500)).await.unwrap().len();
        }
        assert!(first
            .committed(&[TopicPartition::new(&topic, 0)])
            .await
            .unwrap()[&TopicPartition::new(&topic, 0)]
            .is_none());
        // A second member joins; the first keeps polling (that is where the
        // revocation is handled and its commit made).
        let mut second = mk();
        second.subscribe(&[&topic]).unwrap();
        let second_task = tokio::spawn(async move {
            let mut n = 0;
            for _ in 0..40 {
                n += second.poll(Duration::from_millis(250)).await.unwrap().len();
            }
            (second, n)
        });
        let deadline = tokio::time::Instant::now() + WAIT;
        while seen.revoked.lock().unwrap().is_empty()
            || seen.holds.lock().unwrap().len() == PARTITIONS as usize
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{strategy}: no revocation"
            );
            first.poll(Duration::from_millis(200)).await.unwrap();
        }
        // The commit is made before the revocation is acknowledged, inside
        // the polls; keep polling until it is visible.
        let revoked: Vec<TopicPartition> = seen.revoked.lock().unwrap().clone();
        let want: BTreeMap<TopicPartition, Option<i64>> = revoked
            .iter()
            .map(|tp| (tp.clone(), Some(ends[&tp.partition()])))
            .collect();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got: BTreeMap<TopicPartition, Option<i64>> = first
                .committed(&revoked)
                .await
                .unwrap()
                .into_iter()
                .map(|(tp, o)| (tp, o.map(|o| o.offset)))
                .collect();
            if got == want {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{strategy}: committed {got:?}, want {want:?}"
            );
            first.poll(Duration::from_millis(200)).await.unwrap();
        }
        let (second, n) = second_task.await.unwrap();
        assert_eq!(
            n, 0,
            "{strategy}: the second member re-read records the first had processed"
        );
        println!("{strategy}: revoked {revoked:?}, committed at the end offsets; the new owner read nothing again");
        first.close().await.unwrap();
        second.close().await.unwrap();
    }
}

/// A kafkawire consumer (through `subscribe`) and a librdkafka consumer in
/// one group split the partitions without overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn librdkafka_consumer_shares_the_group() {
    for assignor in ["range", "cooperative-sticky"] {
        let topic = topic_with_partitions(PARTITIONS).await;
        let group = unique("g");
        let mut c = Consumer::builder()
            .bootstrap_servers(&bootstrap())
            .group_id(&group)
            .set("partition.assignment.strategy", assignor)
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .build()
            .unwrap();
        let seen = Seen::default();
        c.subscribe_with_listener(&[&topic], seen.clone()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let ours = tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                c.poll(Duration::from_millis(200)).await.unwrap();
            }
            c.close().await.unwrap();
        });
        eventually(WAIT, "kafkawire holds every partition", || async {
            (seen.holds.lock().unwrap().len() == PARTITIONS as usize).then_some(())
        })
        .await;
        let peer =
            interop::GroupPeer::spawn(interop::Peer::Rdkafka, &topic, &group, assignor, 60000);
        eventually(
            WAIT,
            "kafkawire and librdkafka share the partitions",
            || async {
                let theirs = peer.holds();
                let mine = seen.holds.lock().unwrap().clone();
                let union: BTreeSet<i32> = theirs.union(&mine).copied().collect();
                (union.len() == PARTITIONS as usize
                    && theirs.is_disjoint(&mine)
                    && !theirs.is_empty()
                    && !mine.is_empty())
                .then_some(())
            },
        )
        .await;
        // Settled: hold for a moment and check again that nobody overlaps.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let theirs = peer.holds();
        let mine = seen.holds.lock().unwrap().clone();
        assert!(
            theirs.is_disjoint(&mine),
            "{assignor}: overlap: librdkafka {theirs:?}, kafkawire {mine:?}"
        );
        println!("{assignor}: kafkawire {mine:?}, librdkafka {theirs:?}");
        peer.kill().await;
        stop.store(true, Ordering::SeqCst);
        tokio::time::timeout(WAIT, ours).await.unwrap().unwrap();
    }
}

/// `max.poll.interval.ms` on a real broker, as in the Java client: a member
/// that stops polling leaves the group once the interval passes (its
/// heartbeats go on meanwhile, so only the poll interval can end its
/// membership), the other member gets every partition and consumes them,
/// and the idle member rejoins on its next poll and gets partitions back.
async fn poll_interval_expiry(flavour: Flavour) {
    let partitions = 4;
    let topic = topic_with_partitions(partitions).await;
    let group = unique("g");
    let mk = || {
        let b = Consumer::builder()
            .bootstrap_servers(&bootstrap())
            .group_id(&group)
            .auto_offset_reset(OffsetReset::Earliest)
            .enable_auto_commit(false)
            .set("max.poll.interval.ms", "4000");
        let b = match flavour {
            Flavour::Eager => b.set("partition.assignment.strategy", "range"),
            Flavour::Cooperative => b.set("partition.assignment.strategy", "cooperative-sticky"),
            Flavour::Kip848 => b.set("group.protocol", "consumer"),
        };
        let b = match flavour {
            Flavour::Kip848 => b,
            _ => b
                .set("session.timeout.ms", "30000")
                .set("heartbeat.interval.ms", "500"),
        };
        b.build().unwrap()
    };
    // The other member polls all along and publishes its assignment and
    // the partitions it read records from.
    let others: Arc<Mutex<(Vec<i32>, BTreeSet<i32>)>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut other = mk();
    other.subscribe(&[&topic]).unwrap();
    let task = {
        let (others, stop) = (others.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let records = other
                    .poll(Duration::from_millis(200))
                    .await
                    .expect("the polling member's poll");
                let mut g = others.lock().unwrap();
                g.0 = other.assignment().iter().map(|tp| tp.partition()).collect();
                g.1.extend(records.iter().map(|r| r.partition));
            }
            other.close().await.unwrap();
        })
    };
    let mut idle = mk();
    idle.subscribe(&[&topic]).unwrap();
    let held = |c: &Consumer| c.assignment().len();
    let deadline = tokio::time::Instant::now() + WAIT;
    while held(&idle) == 0 || others.lock().unwrap().0.len() + held(&idle) != partitions as usize {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{flavour:?}: the two members never shared the partitions"
        );
        idle.poll(Duration::from_millis(200)).await.unwrap();
    }
    println!("{flavour:?}: idle member holds {:?}", idle.assignment());

    // Stop polling: after max.poll.interval.ms the member leaves and the
    // other one takes (and consumes) every partition.
    let deadline = tokio::time::Instant::now() + WAIT;
    while others.lock().unwrap().0.len() != partitions as usize {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{flavour:?}: the idle member's partitions never moved"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let p = kafkawire::producer::Producer::builder()
        .bootstrap_servers(&bootstrap())
        .build()
        .unwrap();
    for partition in 0..partitions {
        p.send(
            kafkawire::producer::ProducerRecord::new(&topic)
                .partition(partition)
                .value("x"),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while others.lock().unwrap().1.len() != partitions as usize {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{flavour:?}: the remaining member did not consume every partition"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The next poll rejoins.
    let deadline = tokio::time::Instant::now() + WAIT;
    while held(&idle) == 0 || others.lock().unwrap().0.len() == partitions as usize {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{flavour:?}: the idle member did not rejoin on poll"
        );
        idle.poll(Duration::from_millis(200)).await.unwrap();
    }
    println!("{flavour:?}: rejoined with {:?}", idle.assignment());
    stop.store(true, Ordering::SeqCst);
    task.await.unwrap();
    idle.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_poll_interval_classic_eager() {
    poll_interval_expiry(Flavour::Eager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_poll_interval_classic_cooperative() {
    poll_interval_expiry(Flavour::Cooperative).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_poll_interval_kip848() {
    if kafka_major() < 4 {
        println!("KIP-848 needs Kafka 4.x; skipped on {}", kafka_major());
        return;
    }
    poll_interval_expiry(Flavour::Kip848).await;
}

fn fast_metadata_consumer(group: &str, flavour: Flavour) -> Consumer {
    let b = Consumer::builder()
        .bootstrap_servers(&bootstrap())
        .group_id(group)
        .auto_offset_reset(OffsetReset::Earliest)
        .set("metadata.max.age.ms", "1000");
    let b = match flavour {
        Flavour::Eager => b.set("partition.assignment.strategy", "range"),
        Flavour::Cooperative => b.set("partition.assignment.strategy", "cooperative-sticky"),
        Flavour::Kip848 => b.set("group.protocol", "consumer"),
    };
    let b = match flavour {
        Flavour::Kip848 => b,
        _ => b
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500"),
    };
    b.build().unwrap()
}

/// Sends `per_partition` records to each of `partitions` with values
/// `{topic}/{partition}/{i}`.
async fn produce_to(topic: &str, partitions: std::ops::Range<i32>, per_partition: usize) {
    let p = kafkawire::producer::Producer::builder()
        .bootstrap_servers(&bootstrap())
        .build()
        .unwrap();
    let mut fs = Vec::new();
    for partition in partitions {
        for i in 0..per_partition {
            let v = format!("{topic}/{partition}/{i}");
            fs.push(
                p.send(
                    kafkawire::producer::ProducerRecord::new(topic)
                        .partition(partition)
                        .value(&v),
                )
                .await
                .unwrap(),
            );
        }
    }
    for f in fs {
        f.await.unwrap();
    }
    p.close(Duration::from_secs(10)).await.unwrap();
}

/// Polls until `want` (topic, partition) pairs each delivered `per_partition`
/// records, and returns how many records each pair delivered.
async fn consume_until(
    c: &mut Consumer,
    want: &BTreeSet<(String, i32)>,
    per_partition: usize,
    what: &str,
) -> BTreeMap<(String, i32), usize> {
    let mut got: BTreeMap<(String, i32), usize> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !want
        .iter()
        .all(|k| got.get(k).copied().unwrap_or(0) >= per_partition)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: got {got:?}"
        );
        for r in c.poll(Duration::from_millis(300)).await.unwrap() {
            let v = String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap();
            assert!(
                v.starts_with(&format!("{}/{}/", r.topic, r.partition)),
                "{what}: {v} at {}-{}",
                r.topic,
                r.partition
            );
            *got.entry((r.topic.to_string(), r.partition)).or_default() += 1;
        }
    }
    got
}

/// A pattern subscription (Java's `subscribe(Pattern)`) consumes the
/// matching topics, then a matching topic created afterwards, found by the
/// periodic metadata refresh; a topic whose name only contains a match is
/// not subscribed.
async fn pattern_subscription(flavour: Flavour) {
    let prefix = unique("pat");
    let admin = admin();
    let first = format!("{prefix}-a");
    admin
        .create_topics(&[NewTopic::new(&first, 2, 1)])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    admin
        .wait_for_topics(&[&first], Duration::from_secs(30))
        .await
        .unwrap();
    produce_to(&first, 0..2, 5).await;
    let mut c = fast_metadata_consumer(&unique("g"), flavour);
    c.subscribe_pattern(&format!("{prefix}-[a-z]+")).unwrap();
    let want: BTreeSet<(String, i32)> = (0..2).map(|p| (first.clone(), p)).collect();
    consume_until(
        &mut c,
        &want,
        5,
        &format!("{flavour:?}: the first matching topic"),
    )
    .await;

    let second = format!("{prefix}-b");
    let not_matching = format!("x{prefix}-c");
    admin
        .create_topics(&[
            NewTopic::new(&second, 3, 1),
            NewTopic::new(&not_matching, 1, 1),
        ])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    admin
        .wait_for_topics(&[&second, &not_matching], Duration::from_secs(30))
        .await
        .unwrap();
    produce_to(&second, 0..3, 5).await;
    produce_to(&not_matching, 0..1, 5).await;
    let want: BTreeSet<(String, i32)> = (0..3).map(|p| (second.clone(), p)).collect();
    let got = consume_until(
        &mut c,
        &want,
        5,
        &format!("{flavour:?}: a matching topic created after subscribing"),
    )
    .await;
    assert!(
        !got.keys().any(|(t, _)| *t == not_matching),
        "{flavour:?}: read a topic the pattern does not match"
    );
    assert_eq!(
        c.subscription(),
        vec![first.clone(), second.clone()],
        "{flavour:?}"
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pattern_subscription_classic() {
    pattern_subscription(Flavour::Cooperative).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pattern_subscription_kip848() {
    if kafka_major() < 4 {
        println!("KIP-848 needs Kafka 4.x; skipped on {}", kafka_major());
        return;
    }
    pattern_subscription(Flavour::Kip848).await;
}

/// Partitions added to a subscribed topic (CreatePartitions) are assigned
/// and consumed: the classic leader notices the new count on a metadata
/// refresh and rejoins, as the Java client does; with KIP-848 the broker
/// reassigns. Two members share the group, so the new partitions are
/// spread over both.
async fn partitions_added(flavour: Flavour) {
    let topic = topic_with_partitions(2).await;
    let group = unique("g");
    let mut a = fast_metadata_consumer(&group, flavour);
    let mut b = fast_metadata_consumer(&group, flavour);
    a.subscribe(&[&topic]).unwrap();
    b.subscribe(&[&topic]).unwrap();
    produce_to(&topic, 0..2, 5).await;
    // Both members poll in turns until the two partitions were read.
    let mut got: BTreeMap<i32, usize> = BTreeMap::new();
    let read = |records: Vec<kafkawire::consumer::ConsumerRecord>,
                got: &mut BTreeMap<i32, usize>| {
        for r in records {
            *got.entry(r.partition).or_default() += 1;
        }
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while (0..2).any(|p| got.get(&p).copied().unwrap_or(0) < 5) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{flavour:?}: before growth got {got:?}"
        );
        read(a.poll(Duration::from_millis(200)).await.unwrap(), &mut got);
        read(b.poll(Duration::from_millis(200)).await.unwrap(), &mut got);
    }
    admin()
        .create_partitions(&[(&topic, 4)])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    admin()
        .wait_for_topics(&[&topic], Duration::from_secs(30))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "4 partitions in metadata",
        || async {
            let t = admin().describe_topics(&[&topic]).await.ok()?;
            (t.first()?.partitions.len() == 4).then_some(())
        },
    )
    .await;
    produce_to(&topic, 2..4, 5).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while (0..4).any(|p| got.get(&p).copied().unwrap_or(0) < 5)
        || a.assignment().len() + b.assignment().len() != 4
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{flavour:?}: after growth got {got:?}, assignments {:?} / {:?}",
            a.assignment(),
            b.assignment()
        );
        read(a.poll(Duration::from_millis(200)).await.unwrap(), &mut got);
        read(b.poll(Duration::from_millis(200)).await.unwrap(), &mut got);
    }
    assert!(
        (0..4).all(|p| got[&p] == 5),
        "{flavour:?}: each record once: {got:?}"
    );
    assert!(
        !a.assignment().is_empty() && !b.assignment().is_empty(),
        "{flavour:?}: both members hold partitions"
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_added_classic_eager() {
    partitions_added(Flavour::Eager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_added_classic_cooperative() {
    partitions_added(Flavour::Cooperative).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_added_kip848() {
    if kafka_major() < 4 {
        println!("KIP-848 needs Kafka 4.x; skipped on {}", kafka_major());
        return;
    }
    partitions_added(Flavour::Kip848).await;
}
