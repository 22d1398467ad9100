//! The transactional producer against one real broker (run for Kafka 4.x,
//! which negotiates transactions v2, and 3.x, which uses v1): commit and
//! abort across topics and partitions read back by kafkawire's, the Java
//! client's and librdkafka's read_committed consumers, illegal calls, zombie
//! fencing, an exactly-once consume-transform-produce copier, and
//! transactions written by the peers read by kafkawire.
//!
//! Waits are bounded by generous timeouts; nothing asserts on speed.

use kafkawire::admin::NewTopic;
use kafkawire::consumer::{Consumer, ConsumerRecord, IsolationLevel, OffsetReset, TopicPartition};
use kafkawire::producer::{DeliveryFuture, Producer, ProducerRecord, TransactionError, TxnState};
use kafkawire::ErrorKind;
use protocol_tests::interop::{self, Peer};
use protocol_tests::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);

async fn topic(prefix: &str, partitions: i32) -> String {
    let name = unique(prefix);
    let admin = admin();
    admin.create_topics(&[NewTopic::new(&name, partitions, 1)]).await.unwrap().into_result().unwrap();
    admin.wait_for_topics(&[&name], Duration::from_secs(30)).await.unwrap();
    name
}

fn txn_producer(id: &str) -> Producer {
    Producer::builder()
        .bootstrap_servers(&bootstrap())
        .client_id("txn-tests")
        .transactional_id(id)
        .linger(Duration::from_millis(2))
        .build()
        .expect("producer")
}

fn consumer(isolation: IsolationLevel, group: Option<&str>) -> Consumer {
    let mut b = Consumer::builder()
        .bootstrap_servers(&bootstrap())
        .client_id("txn-tests")
        .auto_offset_reset(OffsetReset::Earliest)
        .isolation_level(isolation)
        .enable_auto_commit(false)
        .set("fetch.max.wait.ms", "200");
    if let Some(g) = group {
        b = b.group_id(g);
    }
    b.build().expect("consumer")
}

fn value(r: &ConsumerRecord) -> String {
    String::from_utf8(r.value.as_ref().expect("value").to_vec()).unwrap()
}

/// Polls until `n` records arrived, then for `extra` more to catch any
/// record too many.
async fn read(c: &mut Consumer, n: usize, extra: Duration) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < n {
        if Instant::now() > deadline {
            eprintln!("got {} of {n} records before the timeout", out.len());
            return out;
        }
        out.extend(c.poll(Duration::from_millis(300)).await.expect("poll"));
    }
    let until = Instant::now() + extra;
    while Instant::now() < until {
        out.extend(c.poll(Duration::from_millis(200)).await.expect("poll"));
    }
    out
}

fn all_partitions(topics: &[String], n: i32) -> Vec<TopicPartition> {
    topics.iter().flat_map(|t| (0..n).map(move |p| TopicPartition::new(t, p))).collect()
}

/// Sends `per` records to every partition of `topics` with values
/// `{prefix}-{topic}-{p}-{i}`. Half of them are acknowledged before this
/// returns; the other half are still pending when the commit or abort
/// starts. Returns the values and the pending deliveries.
async fn send_all(
    p: &Producer,
    topics: &[String],
    parts: i32,
    per: usize,
    prefix: &str,
) -> (Vec<String>, Vec<(String, DeliveryFuture)>) {
    let mut values = Vec::new();
    let mut futures = Vec::new();
    for t in topics {
        for part in 0..parts {
            for i in 0..per {
                let v = format!("{prefix}-{t}-{part}-{i}");
                futures
                    .push((v.clone(), p.send(ProducerRecord::new(t).partition(part).value(&v)).await.expect("send")));
                values.push(v);
            }
        }
    }
    let pending = futures.split_off(futures.len() / 2);
    for (_, f) in futures {
        f.await.expect("delivery");
    }
    (values, pending)
}

/// Values whose pending delivery succeeded; the others must have failed
/// with the abortable "transaction aborted" error.
async fn delivered_or_aborted(pending: Vec<(String, DeliveryFuture)>) -> Vec<String> {
    let mut ok = Vec::new();
    for (v, f) in pending {
        match f.await {
            Ok(_) => ok.push(v),
            Err(e) => assert!(e.is_abortable() && e.to_string().contains("aborted"), "{v}: {e}"),
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_abort_across_3_topics_x_4_partitions() {
    let mut topics = Vec::new();
    for i in 0..3 {
        topics.push(topic(&format!("txn-3x4-{i}"), 4).await);
    }
    let p = txn_producer(&unique("txn-3x4"));
    // Illegal calls are typed errors and change nothing.
    assert_eq!(p.transaction_state(), Some(TxnState::Uninitialized));
    let e = p.send(ProducerRecord::new(&topics[0]).value("x")).await.unwrap_err();
    assert_eq!(*e.kind(), ErrorKind::IllegalState, "{e}");
    p.init_transactions().await.expect("init_transactions");
    assert_eq!(p.transaction_state(), Some(TxnState::Ready));
    let e = p.commit_transaction().await.unwrap_err();
    assert_eq!(*e.kind(), ErrorKind::IllegalState, "commit without begin: {e}");
    let e = p.send(ProducerRecord::new(&topics[0]).value("x")).await.unwrap_err();
    assert!(e.to_string().contains("begin_transaction"), "send outside a transaction: {e}");
    assert_eq!(p.transaction_state(), Some(TxnState::Ready));
    p.begin_transaction().unwrap();
    assert_eq!(*p.begin_transaction().unwrap_err().kind(), ErrorKind::IllegalState, "begin twice");
    assert_eq!(p.transaction_state(), Some(TxnState::InTransaction));

    // Four transactions: commit, abort, commit, abort; plus an empty one.
    // `aborted`: records written to the log and then aborted (records
    // failed before they were sent never reach the log).
    let mut committed = Vec::new();
    let mut aborted = Vec::new();
    let (v, pending) = send_all(&p, &topics, 4, 5, "c1").await;
    p.commit_transaction().await.expect("commit 1");
    for (_, f) in pending {
        f.await.expect("a committed transaction's records are all delivered");
    }
    committed.extend(v);
    p.begin_transaction().unwrap();
    let (_, pending) = send_all(&p, &topics, 4, 5, "a2").await;
    p.abort_transaction().await.expect("abort 2");
    aborted.extend(delivered_or_aborted(pending).await);
    p.begin_transaction().unwrap();
    let (v, _) = send_all(&p, &topics, 4, 5, "c3").await;
    p.commit_transaction().await.expect("commit 3");
    committed.extend(v);
    p.begin_transaction().unwrap();
    p.commit_transaction().await.expect("empty commit");
    p.begin_transaction().unwrap();
    let (_, pending) = send_all(&p, &topics, 4, 5, "a4").await;
    p.abort_transaction().await.expect("abort 4");
    aborted.extend(delivered_or_aborted(pending).await);
    // The convenience: the closure's error aborts and says so.
    let r = p
        .in_transaction(|p| {
            let t = topics[0].clone();
            async move {
                p.send_and_forget(ProducerRecord::new(&t).partition(0).value("a5-closure")).await?;
                Err::<(), _>(kafkawire::Error::illegal_state("the work failed"))
            }
        })
        .await;
    assert!(matches!(r, Err(TransactionError::Aborted(_))), "{r:?}");
    let t = topics[1].clone();
    p.in_transaction(|p| async move {
        p.send_and_forget(ProducerRecord::new(&t).partition(3).value("c6-closure")).await?;
        Ok(())
    })
    .await
    .expect("in_transaction commit");
    committed.push("c6-closure".into());
    p.close(Duration::from_secs(30)).await.unwrap();

    let tps = all_partitions(&topics, 4);
    // kafkawire, read_committed: exactly the committed records.
    let mut rc = consumer(IsolationLevel::ReadCommitted, None);
    rc.assign(&tps).unwrap();
    let got: Vec<String> = read(&mut rc, committed.len(), Duration::from_secs(2)).await.iter().map(value).collect();
    let want: HashSet<&String> = committed.iter().collect();
    let seen: HashSet<&String> = got.iter().collect();
    let missing: Vec<_> = want.difference(&seen).collect();
    let extra: Vec<_> = seen.difference(&want).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, extra {extra:?}");
    assert_eq!(got.len(), committed.len(), "no duplicates");
    // read_uncommitted: both.
    let mut ru = consumer(IsolationLevel::ReadUncommitted, None);
    ru.assign(&tps).unwrap();
    let all: HashSet<String> =
        read(&mut ru, committed.len() + aborted.len(), Duration::from_secs(1)).await.iter().map(value).collect();
    assert!(committed.iter().chain(&aborted).all(|v| all.contains(v)));

    // The Java client and librdkafka, read_committed, per topic.
    for peer in Peer::all() {
        for t in &topics {
            let expect: HashSet<String> = committed
                .iter()
                .filter(|v| v.contains(t.as_str()) || (v.as_str() == "c6-closure" && *t == topics[1]))
                .cloned()
                .collect();
            let tc = t.clone();
            let n = expect.len();
            let recs =
                tokio::task::spawn_blocking(move || interop::consume(peer, &tc, "read_committed", n)).await.unwrap();
            let seen: Vec<String> = recs.into_iter().filter_map(|r| r.value).collect();
            assert_eq!(seen.len(), n, "{} on {t}: {seen:?}", peer.name());
            assert_eq!(seen.into_iter().collect::<HashSet<_>>(), expect, "{} on {t}", peer.name());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_producer_fences_the_zombie() {
    let t = topic("txn-zombie", 2).await;
    let id = unique("txn-zombie");
    let old = txn_producer(&id);
    old.init_transactions().await.unwrap();
    old.begin_transaction().unwrap();
    old.send(ProducerRecord::new(&t).partition(0).value("zombie-before")).await.unwrap().await.unwrap();

    // The new instance fences the old one and aborts its open transaction.
    let new = txn_producer(&id);
    new.init_transactions().await.unwrap();

    // Whatever the old one does now fails with the fatal fenced error:
    // a send to a partition already in the transaction, one to a new
    // partition, and the commit.
    let mut errors = Vec::new();
    for part in [0, 1] {
        match old.send(ProducerRecord::new(&t).partition(part).value("zombie-after")).await {
            Ok(f) => {
                if let Err(e) = f.await {
                    errors.push(e)
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let e = old.commit_transaction().await.unwrap_err();
    assert!(e.is_fatal(), "commit by the zombie: {e}");
    assert!(e.to_string().to_lowercase().contains("fenced"), "{e}");
    assert_eq!(old.transaction_state(), Some(TxnState::FatalError));
    assert!(!errors.is_empty());
    // Sticky: every later call reports it.
    assert!(old.begin_transaction().unwrap_err().is_fatal());
    assert!(old.abort_transaction().await.unwrap_err().is_fatal());

    new.begin_transaction().unwrap();
    new.send_and_forget(ProducerRecord::new(&t).partition(1).value("new-1")).await.unwrap();
    new.send_and_forget(ProducerRecord::new(&t).partition(0).value("new-0")).await.unwrap();
    new.commit_transaction().await.unwrap();

    let mut rc = consumer(IsolationLevel::ReadCommitted, None);
    rc.assign(&all_partitions(std::slice::from_ref(&t), 2)).unwrap();
    let got: HashSet<String> = read(&mut rc, 2, Duration::from_secs(3)).await.iter().map(value).collect();
    assert_eq!(got, HashSet::from(["new-0".to_string(), "new-1".to_string()]));
}

/// One copier instance: consumes `input` (manual assignment, group `group`,
/// read_committed), writes `copy-<value>` to `output` and commits the
/// consumed offsets in the same transaction. Stops after `max_txns`
/// transactions (leaving the last one open, like a crash, when `crash`).
async fn copier(
    txn_id: &str,
    group: &str,
    input: &str,
    output: &str,
    parts: i32,
    max_txns: usize,
    crash: bool,
) -> usize {
    let p = txn_producer(txn_id);
    p.init_transactions().await.expect("copier init");
    let mut c = consumer(IsolationLevel::ReadCommitted, Some(group));
    c.assign(&all_partitions(&[input.to_string()], parts)).unwrap();
    let mut copied = 0;
    let mut idle = 0;
    for n in 0..max_txns {
        let recs = c.poll(Duration::from_millis(500)).await.expect("poll");
        if recs.is_empty() {
            idle += 1;
            if idle > 10 {
                break;
            }
            continue;
        }
        idle = 0;
        p.begin_transaction().unwrap();
        for r in &recs {
            let v = format!("copy-{}", value(r));
            p.send_and_forget(ProducerRecord::new(output).partition(r.partition).value(&v)).await.unwrap();
        }
        p.send_offsets_to_transaction(c.positions(), &c.group_metadata().unwrap()).await.expect("send offsets");
        if crash && n + 1 == max_txns {
            // Crash with the transaction open: nothing of it may show.
            p.flush().await;
            return copied;
        }
        p.commit_transaction().await.expect("copier commit");
        copied += recs.len();
    }
    p.close(Duration::from_secs(30)).await.unwrap();
    copied
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_copies_exactly_once() {
    const N: usize = 3000;
    let input = topic("txn-copy-in", 6).await;
    let output = topic("txn-copy-out", 6).await;
    let plain = Producer::builder().bootstrap_servers(&bootstrap()).build().unwrap();
    for i in 0..N {
        let v = format!("r{i}");
        plain.send_and_forget(ProducerRecord::new(&input).partition((i % 6) as i32).value(&v)).await.unwrap();
    }
    plain.flush().await;
    let group = unique("txn-copy-group");
    let txn_id = unique("txn-copier");
    // Instance 1 copies a few transactions and crashes with one open;
    // instance 2 (same transactional id) fences it and finishes.
    copier(&txn_id, &group, &input, &output, 6, 4, true).await;
    copier(&txn_id, &group, &input, &output, 6, 3, true).await;
    copier(&txn_id, &group, &input, &output, 6, 10_000, false).await;

    let mut rc = consumer(IsolationLevel::ReadCommitted, None);
    rc.assign(&all_partitions(std::slice::from_ref(&output), 6)).unwrap();
    let got = read(&mut rc, N, Duration::from_secs(3)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *counts.entry(value(r)).or_default() += 1;
    }
    let dups: BTreeMap<&String, &usize> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicates: {dups:?}");
    let missing: Vec<usize> = (0..N).filter(|i| !counts.contains_key(&format!("copy-r{i}"))).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert_eq!(got.len(), N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_transactions_interleaved_are_filtered_by_read_committed() {
    // The Java client and librdkafka write committed and aborted
    // transactions to the same partition at the same time.
    let t = topic("txn-peers", 1).await;
    let runs: Vec<_> = Peer::all()
        .into_iter()
        .map(|peer| {
            let t = t.clone();
            let id = unique(&format!("txn-{}", peer.name()));
            tokio::task::spawn_blocking(move || {
                interop::txn_produce(
                    peer,
                    &[
                        "--topic",
                        &t,
                        "--transactional-id",
                        &id,
                        "--transactions",
                        "8",
                        "--per-transaction",
                        "5",
                        "--abort-every",
                        "2",
                        "--partition",
                        "0",
                    ],
                )
            })
        })
        .collect();
    let mut committed = Vec::new();
    let mut aborted = Vec::new();
    for r in runs {
        let s = r.await.unwrap();
        committed.extend(s.committed);
        aborted.extend(s.aborted);
    }
    assert!(!committed.is_empty() && !aborted.is_empty());
    let mut rc = consumer(IsolationLevel::ReadCommitted, None);
    rc.assign(&[TopicPartition::new(&t, 0)]).unwrap();
    let got: Vec<String> = read(&mut rc, committed.len(), Duration::from_secs(2)).await.iter().map(value).collect();
    assert_eq!(got.len(), committed.len(), "{got:?}");
    assert_eq!(got.iter().collect::<HashSet<_>>(), committed.iter().collect::<HashSet<_>>());
    assert!(aborted.iter().all(|a| !got.contains(a)));
}

/// Several batches of one partition in flight at once inside each
/// transaction: Produce requests must reach the broker in the order their
/// sequences were assigned, or the broker answers OUT_OF_ORDER_SEQUENCE_NUMBER
/// and the transaction has to abort. (Found by the peer benchmark: the
/// sender's request tasks used to be written in whatever order the
/// multi-threaded runtime ran them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_batches_in_flight_per_partition_commit_in_order() {
    const TXNS: usize = 30;
    const PER_TXN: usize = 10_000;
    let t = topic("txn-inflight", 4).await;
    let p = Producer::builder()
        .bootstrap_servers(&bootstrap())
        .client_id("txn-tests")
        .transactional_id(unique("txn-inflight"))
        .linger(Duration::from_millis(5))
        .build()
        .expect("producer");
    p.init_transactions().await.expect("init");
    let filler = "x".repeat(90);
    for txn in 0..TXNS {
        p.begin_transaction().expect("begin");
        for i in 0..PER_TXN {
            let v = format!("{:08}-{filler}", txn * PER_TXN + i);
            p.send_and_forget(ProducerRecord::new(&t).value(&v)).await.expect("send");
        }
        p.commit_transaction().await.unwrap_or_else(|e| panic!("transaction {txn} did not commit: {e}"));
    }
    p.close(WAIT).await.expect("close");

    let mut c = consumer(IsolationLevel::ReadCommitted, None);
    c.assign(&all_partitions(std::slice::from_ref(&t), 4)).unwrap();
    let got = read(&mut c, TXNS * PER_TXN, Duration::from_millis(500)).await;
    let ids: HashSet<String> = got.iter().map(|r| value(r)[..8].to_string()).collect();
    assert_eq!(got.len(), TXNS * PER_TXN, "every committed record, once");
    assert_eq!(ids.len(), TXNS * PER_TXN, "no duplicates");
}
