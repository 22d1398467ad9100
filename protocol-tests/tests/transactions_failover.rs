//! The transactional producer against three brokers while the transaction
//! coordinator's broker is killed during commit: every transaction must end
//! wholly committed or wholly aborted, never partly visible.
//!
//! `KAFKAWIRE_TXN_KILLS` sets how many kills (default 5, for a quick run;
//! `scripts/test.sh` runs 100 on a cluster of their own). The kill lands
//! 0-119 ms after the commit starts, varied from kill to kill; each line of
//! the log says how long the commit and the node's restart took.

use kafkawire::cluster::CoordinatorType;
use kafkawire::consumer::{Consumer, IsolationLevel, OffsetReset, TopicPartition};
use kafkawire::producer::{Producer, ProducerRecord};
use protocol_tests::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn producer(id: &str) -> Producer {
    Producer::builder()
        .bootstrap_servers(&bootstrap())
        .transactional_id(id)
        .max_block(Duration::from_secs(60))
        .request_timeout(Duration::from_secs(10))
        .delivery_timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

const PER_TXN: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_killed_during_commit_never_leaves_a_partial_transaction() {
    let kills: usize = std::env::var("KAFKAWIRE_TXN_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let admin = admin();
    let topic = create_replicated_topic(&admin, "txn-failover", 4).await;
    let tid = unique("txn-failover-id");
    let mut p = producer(&tid);
    p.init_transactions().await.expect("init");
    // Per transaction: did commit_transaction report success?
    let mut reported_ok: HashMap<usize, bool> = HashMap::new();
    for i in 0..kills {
        p.begin_transaction().unwrap();
        for n in 0..PER_TXN {
            let v = format!("t{i}-{n}");
            p.send_and_forget(
                ProducerRecord::new(&topic)
                    .partition((n % 4) as i32)
                    .value(&v),
            )
            .await
            .unwrap();
        }
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
        // Varied timing: kill before, at, or a little after the commit starts.
        let delay = Duration::from_millis(((i * 37) % 120) as u64);
        let committer = {
            let p = p.clone();
            tokio::spawn(async move { p.commit_transaction().await })
        };
        tokio::time::sleep(delay).await;
        let t_kill = Instant::now();
        kafka_local_async(&["kill", &node.to_string()]).await;
        // The node restarts while the commit resolves: a restart takes
        // longer than the coordinator's move, and the next kill must wait
        // for it (two nodes down would take the 3-node quorum down).
        let restart = tokio::spawn(kafka_local_async(&["start", &node.to_string()]));
        let r = committer.await.unwrap();
        let t_commit = t_kill.elapsed();
        let ok = match r {
            Ok(()) => true,
            Err(e) if e.is_fatal() => {
                eprintln!("transaction {i}: fatal {e}; starting a new producer");
                p = producer(&tid);
                p.init_transactions().await.expect("re-init");
                false
            }
            Err(e) => {
                eprintln!(
                    "transaction {i}: commit failed ({e}); retrying the commit, else aborting"
                );
                match p.commit_transaction().await {
                    Ok(()) => true,
                    Err(_) => {
                        let _ = p.abort_transaction().await;
                        if p.transaction_state() != Some(kafkawire::producer::TxnState::Ready) {
                            p = producer(&tid);
                            p.init_transactions().await.expect("re-init");
                        }
                        false
                    }
                }
            }
        };
        reported_ok.insert(i, ok);
        let t_resolved = t_kill.elapsed();
        restart.await.expect("restart task");
        eprintln!(
            "kill {i} (node {node}, +{delay:?}): commit answered {t_commit:?}, resolved {t_resolved:?}, node back {:?}",
            t_kill.elapsed()
        );
    }
    // One more transaction to make sure the producer still works.
    p.begin_transaction().unwrap();
    p.send_and_forget(ProducerRecord::new(&topic).partition(0).value("final"))
        .await
        .unwrap();
    p.commit_transaction().await.expect("final commit");

    let mut c = Consumer::builder()
        .bootstrap_servers(&bootstrap())
        .auto_offset_reset(OffsetReset::Earliest)
        .isolation_level(IsolationLevel::ReadCommitted)
        .enable_auto_commit(false)
        .build()
        .unwrap();
    c.assign(
        &(0..4)
            .map(|p| TopicPartition::new(&topic, p))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut per_txn: HashMap<usize, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Until the final record shows, then 3 s more for the other partitions.
    let mut drain_until: Option<Instant> = None;
    while drain_until.is_none_or(|t| Instant::now() < t) {
        assert!(
            Instant::now() < deadline,
            "the final transaction never became visible"
        );
        for r in c.poll(Duration::from_millis(300)).await.unwrap() {
            let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            if v == "final" {
                drain_until = Some(Instant::now() + Duration::from_secs(3));
            } else if let Some(i) = v
                .strip_prefix('t')
                .and_then(|s| s.split('-').next())
                .and_then(|s| s.parse().ok())
            {
                *per_txn.entry(i).or_default() += 1;
            }
        }
    }
    for i in 0..kills {
        let n = per_txn.get(&i).copied().unwrap_or(0);
        assert!(
            n == 0 || n == PER_TXN,
            "transaction {i} partly visible: {n} of {PER_TXN}"
        );
        if reported_ok[&i] {
            assert_eq!(
                n, PER_TXN,
                "transaction {i} reported committed but is not visible"
            );
        }
    }
    eprintln!(
        "{kills} coordinator kills: {} committed, {} aborted",
        per_txn.values().filter(|n| **n == PER_TXN).count(),
        kills - per_txn.values().filter(|n| **n == PER_TXN).count()
    );
}
