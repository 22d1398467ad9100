//! Consumer-group membership against real Kafka: classic (eager and
//! cooperative) and KIP-848 members joining, leaving and being killed,
//! static membership, group offset commits, and a librdkafka member in the
//! same group.
//!
//! Each simulated consumer acknowledges Revoked/Lost at once and records
//! what it holds in one shared map; handing a partition to a member while
//! another live member still holds it fails the test. There are no timing
//! assertions: waits are generous `eventually`s.

use kafkawire::cluster::Cluster;
use kafkawire::config::ClientConfig;
use kafkawire::consumer::group::{
    GroupConfig, GroupEvent, GroupHandle, GroupMember, GroupProtocol, OffsetToCommit,
    TopicPartition,
};
use protocol_tests::interop;
use protocol_tests::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const PARTITIONS: i32 = 6;
const WAIT: Duration = Duration::from_secs(90);

/// Who holds which partition, as the simulated consumers see it, and any
/// rule broken so far.
#[derive(Default)]
struct Book {
    owners: BTreeMap<TopicPartition, String>,
    violations: Vec<String>,
}

type Shared = Arc<Mutex<Book>>;

struct Sim {
    name: String,
    handle: GroupHandle,
    task: JoinHandle<()>,
}

async fn topic_with_partitions(n: i32) -> String {
    protocol_tests::create_topic("group", n).await
}

fn cluster() -> Arc<Cluster> {
    let mut c = ClientConfig::default();
    c.set_bootstrap_servers(&bootstrap());
    c.client_id = "group-tests".into();
    Cluster::new(c).unwrap()
}

fn classic(group: &str, strategy: &[&str]) -> GroupConfig {
    let mut c = GroupConfig::new(group);
    c.partition_assignment_strategy = strategy.iter().map(|s| s.to_string()).collect();
    c.session_timeout = Duration::from_secs(6);
    c.heartbeat_interval = Duration::from_millis(500);
    c.max_poll_interval = Duration::from_secs(30);
    c
}

fn kip848(group: &str) -> GroupConfig {
    let mut c = GroupConfig::new(group);
    c.group_protocol = GroupProtocol::Consumer;
    c.max_poll_interval = Duration::from_secs(30);
    c
}

/// Starts a member in its own cluster (as a separate consumer would be)
/// and a task that plays the consumer: polls, records, acknowledges.
fn spawn(name: &str, cfg: GroupConfig, topic: &str, book: Shared) -> Sim {
    let (handle, events) = GroupMember::start(cluster(), cfg, vec![topic.to_string()]).unwrap();
    let task = tokio::spawn(play(name.to_string(), handle.clone(), events, book));
    Sim {
        name: name.to_string(),
        handle,
        task,
    }
}

async fn play(
    name: String,
    handle: GroupHandle,
    mut events: mpsc::Receiver<GroupEvent>,
    book: Shared,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = handle.poll_tick() {
                    if !e.to_string().contains("has left") {
                        book.lock().unwrap().violations.push(format!("{name}: member failed: {e}"));
                    }
                    return;
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else { return };
                let mut b = book.lock().unwrap();
                match ev {
                    GroupEvent::Assigned(ps) => {
                        for p in ps {
                            if let Some(other) = b.owners.get(&p).filter(|o| **o != name).cloned() {
                                b.violations.push(format!("{p:?} assigned to {name} while {other} holds it"));
                            }
                            b.owners.insert(p, name.clone());
                        }
                    }
                    GroupEvent::Revoked(ps, ack) | GroupEvent::Lost(ps, ack) => {
                        for p in ps {
                            if b.owners.get(&p) == Some(&name) {
                                b.owners.remove(&p);
                            }
                        }
                        ack.ack();
                    }
                    GroupEvent::Failed(e) => b.violations.push(format!("{name}: {e}")),
                    _ => {}
                }
            }
        }
    }
}

/// Kills a member: no LeaveGroup, no more heartbeats. Its partitions are
/// free as far as the live members are concerned.
fn kill(sim: Sim, book: &Shared) {
    sim.task.abort();
    drop(sim.handle);
    book.lock().unwrap().owners.retain(|_, o| *o != sim.name);
}

async fn leave(sim: Sim) {
    sim.handle.leave().await.unwrap();
    let _ = sim.task.await;
}

/// Waits until the live members hold every partition exactly once, as
/// both the handles and the simulated consumers see it.
async fn settled(live: &[&Sim], topic: &str, book: &Shared, what: &str) {
    let all: BTreeSet<TopicPartition> = (0..PARTITIONS).map(|p| (topic.to_string(), p)).collect();
    eventually(WAIT, what, || async {
        let mut seen = BTreeSet::new();
        for s in live {
            s.handle.generation()?;
            for p in s.handle.assignment() {
                if !seen.insert(p) {
                    return None;
                }
            }
        }
        let b = book.lock().unwrap();
        let book_view: BTreeSet<TopicPartition> = b.owners.keys().cloned().collect();
        let agrees = live.iter().all(|s| {
            let h: BTreeSet<_> = s.handle.assignment().into_iter().collect();
            let k: BTreeSet<_> = b
                .owners
                .iter()
                .filter(|(_, o)| **o == s.name)
                .map(|(p, _)| p.clone())
                .collect();
            h == k
        });
        // Every assignor here balances a single topic to within one partition.
        let sizes: Vec<usize> = live.iter().map(|s| s.handle.assignment().len()).collect();
        let balanced = sizes.iter().max()? - sizes.iter().min()? <= 1;
        (seen == all && book_view == all && agrees && balanced).then_some(())
    })
    .await;
    let b = book.lock().unwrap();
    assert!(b.violations.is_empty(), "{what}: {:?}", b.violations);
    let sizes: Vec<usize> = live
        .iter()
        .map(|s| b.owners.values().filter(|o| **o == s.name).count())
        .collect();
    println!("{what}: {sizes:?}");
}

/// Three members join, one leaves, one is killed, one joins again.
async fn join_leave_kill(cfg: impl Fn(&str) -> GroupConfig) {
    let topic = topic_with_partitions(PARTITIONS).await;
    let group = unique("g");
    let book: Shared = Shared::default();
    let a = spawn("a", cfg(&group), &topic, book.clone());
    settled(&[&a], &topic, &book, "one member holds everything").await;
    let b = spawn("b", cfg(&group), &topic, book.clone());
    let c = spawn("c", cfg(&group), &topic, book.clone());
    settled(&[&a, &b, &c], &topic, &book, "three members share").await;
    leave(c).await;
    settled(&[&a, &b], &topic, &book, "after c left").await;
    kill(b, &book);
    settled(&[&a], &topic, &book, "after b was killed (session timeout)").await;
    let d = spawn("d", cfg(&group), &topic, book.clone());
    settled(&[&a, &d], &topic, &book, "after d joined").await;
    leave(a).await;
    leave(d).await;
    assert!(book.lock().unwrap().violations.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn classic_eager_members_join_leave_and_get_killed() {
    join_leave_kill(|g| classic(g, &["range"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn classic_default_strategy_rebalances_eagerly_with_range() {
    // Java's default [range, cooperative-sticky]: every member offers both,
    // the group picks range and rebalances eagerly.
    let topic = topic_with_partitions(PARTITIONS).await;
    let group = unique("g");
    let book: Shared = Shared::default();
    let mut cfg = GroupConfig::new(&group);
    cfg.session_timeout = Duration::from_secs(6);
    cfg.heartbeat_interval = Duration::from_millis(500);
    let a = spawn("a", cfg.clone(), &topic, book.clone());
    let b = spawn("b", cfg.clone(), &topic, book.clone());
    settled(&[&a, &b], &topic, &book, "two default members").await;
    let mut held: Vec<Vec<i32>> = [&a, &b]
        .iter()
        .map(|s| s.handle.assignment().iter().map(|p| p.1).collect())
        .collect();
    held.sort();
    assert_eq!(
        held,
        vec![vec![0, 1, 2], vec![3, 4, 5]],
        "range's contiguous ranges"
    );
    leave(a).await;
    leave(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn classic_cooperative_members_join_leave_and_get_killed() {
    join_leave_kill(|g| classic(g, &["cooperative-sticky"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumer_protocol_members_join_leave_and_get_killed() {
    if kafka_major() < 4 {
        println!("skipped: the KIP-848 consumer protocol needs Kafka 4.x");
        return;
    }
    // The kill step waits out the broker's 45 s consumer session timeout.
    join_leave_kill(kip848).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn static_member_rejoins_without_a_rebalance() {
    let topic = topic_with_partitions(PARTITIONS).await;
    let group = unique("g");
    let book: Shared = Shared::default();
    let cfg = |inst: &str| {
        let mut c = classic(&group, &["range"]);
        c.group_instance_id = Some(inst.to_string());
        c.session_timeout = Duration::from_secs(20);
        c
    };
    let a = spawn("a", cfg("inst-a"), &topic, book.clone());
    let b = spawn("b", cfg("inst-b"), &topic, book.clone());
    settled(&[&a, &b], &topic, &book, "two static members").await;
    let a_parts = a.handle.assignment();
    let b_generation = b.handle.generation().unwrap();
    // a's process dies and restarts within the session timeout.
    kill(a, &book);
    let a2 = spawn("a2", cfg("inst-a"), &topic, book.clone());
    settled(
        &[&a2, &b],
        &topic,
        &book,
        "after the static member restarted",
    )
    .await;
    assert_eq!(
        a2.handle.assignment(),
        a_parts,
        "the restarted static member gets its partitions back"
    );
    assert_eq!(
        b.handle.generation().unwrap().generation_id,
        b_generation.generation_id,
        "b saw no rebalance"
    );
    // Static members do not leave on close; a clean shutdown of both is fine.
    leave(a2).await;
    leave(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commits_carry_the_generation_and_read_back() {
    for protocol in [GroupProtocol::Classic, GroupProtocol::Consumer] {
        if protocol == GroupProtocol::Consumer && kafka_major() < 4 {
            continue;
        }
        let topic = topic_with_partitions(2).await;
        let group = unique("g");
        let book: Shared = Shared::default();
        let cfg = match protocol {
            GroupProtocol::Classic => classic(&group, &["range"]),
            GroupProtocol::Consumer => kip848(&group),
        };
        let a = spawn("a", cfg, &topic, book.clone());
        eventually(WAIT, "assignment", || async {
            (a.handle.assignment().len() == 2).then_some(())
        })
        .await;
        let offsets: Vec<OffsetToCommit> = (0..2)
            .map(|p| OffsetToCommit {
                topic: topic.clone(),
                partition: p,
                offset: 10 + p as i64,
                metadata: Some(format!("m{p}")),
                leader_epoch: Some(0),
            })
            .collect();
        a.handle.commit_offsets(&offsets).await.unwrap();
        let back = a
            .handle
            .fetch_committed(&[(topic.clone(), 0), (topic.clone(), 1)])
            .await
            .unwrap();
        assert_eq!(back[0].1.as_ref().unwrap().offset, 10, "{protocol:?}");
        assert_eq!(back[1].1.as_ref().unwrap().offset, 11);
        assert_eq!(back[1].1.as_ref().unwrap().metadata.as_deref(), Some("m1"));
        leave(a).await;
    }
}

/// A librdkafka member (protocol-tests/interop/rdkafka-peer group-consume)
/// and a kafkawire member in one group split the partitions without
/// overlap, for an eager and the cooperative assignor.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn librdkafka_member_shares_partitions_without_overlap() {
    for assignor in ["range", "roundrobin", "cooperative-sticky"] {
        let topic = topic_with_partitions(PARTITIONS).await;
        let group = unique("g");
        let book: Shared = Shared::default();
        let ours = spawn(
            "kafkawire",
            classic(&group, &[assignor]),
            &topic,
            book.clone(),
        );
        settled(&[&ours], &topic, &book, "kafkawire alone").await;
        let peer =
            interop::GroupPeer::spawn(interop::Peer::Rdkafka, &topic, &group, assignor, 40000);
        // Shared: both hold some, together all, never the same one.
        eventually(
            WAIT,
            "kafkawire and librdkafka share the partitions",
            || async {
                let peer: BTreeSet<i32> = peer.holds();
                let mine: BTreeSet<i32> = ours.handle.assignment().iter().map(|p| p.1).collect();
                assert!(
                    peer.is_disjoint(&mine),
                    "{assignor}: overlap: librdkafka {peer:?}, kafkawire {mine:?}"
                );
                let union: BTreeSet<i32> = peer.union(&mine).copied().collect();
                (union.len() == PARTITIONS as usize && !peer.is_empty() && !mine.is_empty())
                    .then_some(())
            },
        )
        .await;
        println!(
            "{assignor}: kafkawire {:?}, librdkafka {:?}",
            ours.handle.assignment(),
            peer.holds()
        );
        assert!(
            book.lock().unwrap().violations.is_empty(),
            "{:?}",
            book.lock().unwrap().violations
        );
        peer.kill().await;
        leave(ours).await;
    }
}
