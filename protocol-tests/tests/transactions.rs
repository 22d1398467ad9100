//! The transactional producer against one real broker (run for Kafka 4.x,
//! which negotiates transactions v2, and 3.x, which uses v1): commit and
//! abort across topics and partitions read back by kafkawire's, the Java
//! client's and librdkafka's read_committed consumers, illegal calls, zombie
//! fencing, an exactly-once consume-transform-produce copier, and
//! transactions written by the peers read by kafkawire.
//!
//! Waits are bounded by generous timeouts; nothing asserts on speed.

mod support;

use kafkawire::consumer::{Consumer, ConsumerRecord, IsolationLevel, OffsetReset, TopicPartition};
use kafkawire::producer::{DeliveryFuture, Producer, ProducerRecord, TransactionError, TxnState};
use kafkawire::ErrorKind;
use protocol_tests::interop::{self, Peer};
use protocol_tests::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);

async fn topic(prefix: &str, partitions: i32) -> String {
    protocol_tests::create_topic(prefix, partitions).await
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
    topics
        .iter()
        .flat_map(|t| (0..n).map(move |p| TopicPartition::new(t, p)))
        .collect()
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
                futures.push((
                    v.clone(),
                    p.send(ProducerRecord::new(t).partition(part).value(&v))
                        .await
                        .expect("send"),
                ));
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
            Err(e) => assert!(
                e.is_abortable() && e.to_string().contains("aborted"),
                "{v}: {e}"
            ),
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
    let e = p
        .send(ProducerRecord::new(&topics[0]).value("x"))
        .await
        .unwrap_err();
    assert_eq!(*e.kind(), ErrorKind::IllegalState, "{e}");
    p.init_transactions().await.expect("init_transactions");
    assert_eq!(p.transaction_state(), Some(TxnState::Ready));
    let e = p.commit_transaction().await.unwrap_err();
    assert_eq!(
        *e.kind(),
        ErrorKind::IllegalState,
        "commit without begin: {e}"
    );
    let e = p
        .send(ProducerRecord::new(&topics[0]).value("x"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("begin_transaction"),
        "send outside a transaction: {e}"
    );
    assert_eq!(p.transaction_state(), Some(TxnState::Ready));
    p.begin_transaction().unwrap();
    assert_eq!(
        *p.begin_transaction().unwrap_err().kind(),
        ErrorKind::IllegalState,
        "begin twice"
    );
    assert_eq!(p.transaction_state(), Some(TxnState::InTransaction));

    // Four transactions: commit, abort, commit, abort; plus an empty one.
    // `aborted`: records written to the log and then aborted (records
    // failed before they were sent never reach the log).
    let mut committed = Vec::new();
    let mut aborted = Vec::new();
    let (v, pending) = send_all(&p, &topics, 4, 5, "c1").await;
    p.commit_transaction().await.expect("commit 1");
    for (_, f) in pending {
        f.await
            .expect("a committed transaction's records are all delivered");
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
                p.send_and_forget(ProducerRecord::new(&t).partition(0).value("a5-closure"))
                    .await?;
                Err::<(), _>(kafkawire::Error::illegal_state("the work failed"))
            }
        })
        .await;
    assert!(matches!(r, Err(TransactionError::Aborted(_))), "{r:?}");
    let t = topics[1].clone();
    p.in_transaction(|p| async move {
        p.send_and_forget(ProducerRecord::new(&t).partition(3).value("c6-closure"))
            .await?;
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
    let got: Vec<String> = read(&mut rc, committed.len(), Duration::from_secs(2))
        .await
        .iter()
        .map(value)
        .collect();
    let want: HashSet<&String> = committed.iter().collect();
    let seen: HashSet<&String> = got.iter().collect();
    let missing: Vec<_> = want.difference(&seen).collect();
    let extra: Vec<_> = seen.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    assert_eq!(got.len(), committed.len(), "no duplicates");
    // read_uncommitted: both.
    let mut ru = consumer(IsolationLevel::ReadUncommitted, None);
    ru.assign(&tps).unwrap();
    let all: HashSet<String> = read(
        &mut ru,
        committed.len() + aborted.len(),
        Duration::from_secs(1),
    )
    .await
    .iter()
    .map(value)
    .collect();
    assert!(committed.iter().chain(&aborted).all(|v| all.contains(v)));

    // The Java client and librdkafka, read_committed, per topic.
    for peer in Peer::all() {
        for t in &topics {
            let expect: HashSet<String> = committed
                .iter()
                .filter(|v| {
                    v.contains(t.as_str()) || (v.as_str() == "c6-closure" && *t == topics[1])
                })
                .cloned()
                .collect();
            let tc = t.clone();
            let n = expect.len();
            let recs = tokio::task::spawn_blocking(move || {
                interop::consume(peer, &tc, "read_committed", n)
            })
            .await
            .unwrap();
            let seen: Vec<String> = recs.into_iter().filter_map(|r| r.value).collect();
            assert_eq!(seen.len(), n, "{} on {t}: {seen:?}", peer.name());
            assert_eq!(
                seen.into_iter().collect::<HashSet<_>>(),
                expect,
                "{} on {t}",
                peer.name()
            );
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
    old.send(ProducerRecord::new(&t).partition(0).value("zombie-before"))
        .await
        .unwrap()
        .await
        .unwrap();

    // The new instance fences the old one and aborts its open transaction.
    let new = txn_producer(&id);
    new.init_transactions().await.unwrap();

    // Whatever the old one does now fails: a send to a partition already
    // in the transaction, one to a new partition, and the commit. A stale
    // epoch on Produce alone cannot tell fencing from a transaction
    // timeout, so (as in Java) the commit may first report it as
    // abortable; the abort then asks the coordinator and fails with the
    // fatal fenced error.
    let mut errors = Vec::new();
    for part in [0, 1] {
        match old
            .send(
                ProducerRecord::new(&t)
                    .partition(part)
                    .value("zombie-after"),
            )
            .await
        {
            Ok(f) => {
                if let Err(e) = f.await {
                    errors.push(e)
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let commit = old
        .commit_transaction()
        .await
        .expect_err("commit by the zombie must fail");
    let e = if commit.is_fatal() {
        commit
    } else {
        old.abort_transaction()
            .await
            .expect_err("abort by the zombie")
    };
    assert!(e.is_fatal(), "the zombie ends with a fatal error: {e}");
    assert!(e.to_string().to_lowercase().contains("fenced"), "{e}");
    assert_eq!(old.transaction_state(), Some(TxnState::FatalError));
    assert!(!errors.is_empty());
    // Sticky: every later call reports it.
    assert!(old.begin_transaction().unwrap_err().is_fatal());
    assert!(old.abort_transaction().await.unwrap_err().is_fatal());

    new.begin_transaction().unwrap();
    new.send_and_forget(ProducerRecord::new(&t).partition(1).value("new-1"))
        .await
        .unwrap();
    new.send_and_forget(ProducerRecord::new(&t).partition(0).value("new-0"))
        .await
        .unwrap();
    new.commit_transaction().await.unwrap();

    let mut rc = consumer(IsolationLevel::ReadCommitted, None);
    rc.assign(&all_partitions(std::slice::from_ref(&t), 2))
        .unwrap();
    let got: HashSet<String> = read(&mut rc, 2, Duration::from_secs(3))
        .await
        .iter()
        .map(value)
        .collect();
    assert_eq!(
        got,
        HashSet::from(["new-0".to_string(), "new-1".to_string()])
    );
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
    c.assign(&all_partitions(&[input.to_string()], parts))
        .unwrap();
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
            p.send_and_forget(ProducerRecord::new(output).partition(r.partition).value(&v))
                .await
                .unwrap();
        }
        p.send_offsets_to_transaction(c.positions(), &c.group_metadata().unwrap())
            .await
            .expect("send offsets");
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
    let plain = Producer::builder()
        .bootstrap_servers(&bootstrap())
        .build()
        .unwrap();
    for i in 0..N {
        let v = format!("r{i}");
        plain
            .send_and_forget(
                ProducerRecord::new(&input)
                    .partition((i % 6) as i32)
                    .value(&v),
            )
            .await
            .unwrap();
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
    rc.assign(&all_partitions(std::slice::from_ref(&output), 6))
        .unwrap();
    let got = read(&mut rc, N, Duration::from_secs(3)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *counts.entry(value(r)).or_default() += 1;
    }
    let dups: BTreeMap<&String, &usize> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicates: {dups:?}");
    let missing: Vec<usize> = (0..N)
        .filter(|i| !counts.contains_key(&format!("copy-r{i}")))
        .collect();
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
    let got: Vec<String> = read(&mut rc, committed.len(), Duration::from_secs(2))
        .await
        .iter()
        .map(value)
        .collect();
    assert_eq!(got.len(), committed.len(), "{got:?}");
    assert_eq!(
        got.iter().collect::<HashSet<_>>(),
        committed.iter().collect::<HashSet<_>>()
    );
    assert!(aborted.iter().all(|a| !got.contains(a)));
}

/// The coordinator aborts a transaction that outlives transaction.timeout.ms
/// (and bumps the epoch). The producer learns it on its next call: the error
/// says the transaction timed out and is abortable, not fatal; after
/// abort_transaction() the same producer runs new transactions, and nothing
/// of the timed-out one is visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_the_broker_timed_out_is_abortable() {
    let t = topic("txn-timeout", 2).await;
    let id = unique("txn-timeout");
    let p = Producer::builder()
        .bootstrap_servers(&bootstrap())
        .client_id("txn-tests")
        .transactional_id(&id)
        .transaction_timeout(Duration::from_millis(2000))
        .linger(Duration::from_millis(2))
        .build()
        .expect("producer");
    p.init_transactions().await.unwrap();
    p.begin_transaction().unwrap();
    p.send(ProducerRecord::new(&t).partition(0).value("timed-out-0"))
        .await
        .unwrap()
        .await
        .unwrap();
    // The broker checks for expired transactions every second (compose
    // config); leave it ample time to abort this one.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let mut errors = Vec::new();
    for part in [0, 1] {
        match p
            .send(ProducerRecord::new(&t).partition(part).value("timed-out-1"))
            .await
        {
            Ok(f) => {
                if let Err(e) = f.await {
                    errors.push(e)
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let commit = p.commit_transaction().await;
    eprintln!(
        "sends after timeout: {errors:?}\ncommit: {commit:?}\nstate: {:?}",
        p.transaction_state()
    );
    let e = commit.expect_err("committing a transaction the broker aborted must fail");
    assert!(
        !e.is_fatal(),
        "a stale epoch on Produce is abortable, not fatal: {e}"
    );
    assert!(
        e.to_string().contains("transaction.timeout.ms"),
        "the error names the timeout: {e}"
    );
    let p = if kafka_major() >= 4 {
        // Transactions v2: the coordinator accepts the abort and the
        // producer goes on under a new epoch.
        p.abort_transaction()
            .await
            .expect("abort after the timeout");
        p
    } else {
        // Transactions v1 (as with the Java client): the coordinator refuses
        // the abort as fenced, and the fatal error names the timeout as a
        // possible cause. A new producer with the same id carries on.
        let e = p
            .abort_transaction()
            .await
            .expect_err("v1 refuses the stale epoch");
        assert!(e.is_fatal(), "{e}");
        assert!(
            e.to_string().contains("transaction.timeout.ms"),
            "the error names the timeout: {e}"
        );
        let p = txn_producer(&id);
        p.init_transactions().await.unwrap();
        p
    };

    p.begin_transaction().unwrap();
    p.send_and_forget(ProducerRecord::new(&t).partition(0).value("after-0"))
        .await
        .unwrap();
    p.send_and_forget(ProducerRecord::new(&t).partition(1).value("after-1"))
        .await
        .unwrap();
    p.commit_transaction()
        .await
        .expect("a new transaction after the timed-out one commits");

    let mut rc = consumer(IsolationLevel::ReadCommitted, None);
    rc.assign(&all_partitions(std::slice::from_ref(&t), 2))
        .unwrap();
    let got: HashSet<String> = read(&mut rc, 2, Duration::from_secs(3))
        .await
        .iter()
        .map(value)
        .collect();
    assert_eq!(
        got,
        HashSet::from(["after-0".to_string(), "after-1".to_string()])
    );
}

/// close() aborts a transaction left open, like the Java client, so a
/// read_committed consumer is not held at the last stable offset until
/// transaction.timeout.ms (set to 15 minutes here: the read below gives up
/// long before that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_aborts_an_open_transaction() {
    let t = topic("txn-close", 1).await;
    let id = unique("txn-close");
    let p = Producer::builder()
        .bootstrap_servers(&bootstrap())
        .client_id("txn-tests")
        .transactional_id(&id)
        .transaction_timeout(Duration::from_secs(900))
        .build()
        .expect("producer");
    p.init_transactions().await.unwrap();
    p.begin_transaction().unwrap();
    p.send(ProducerRecord::new(&t).partition(0).value("open"))
        .await
        .unwrap()
        .await
        .unwrap();
    let queued = p
        .send(ProducerRecord::new(&t).partition(0).value("queued"))
        .await
        .unwrap();
    p.close(Duration::from_secs(30)).await.expect("close");
    // The record still pending either made it into the aborted transaction
    // or failed; it is never visible.
    let _ = queued.await;
    assert!(
        p.send(ProducerRecord::new(&t).value("x")).await.is_err(),
        "a closed producer refuses records"
    );

    let plain = Producer::builder()
        .bootstrap_servers(&bootstrap())
        .build()
        .unwrap();
    plain
        .send(ProducerRecord::new(&t).partition(0).value("after"))
        .await
        .unwrap()
        .await
        .unwrap();
    let mut rc = consumer(IsolationLevel::ReadCommitted, None);
    rc.assign(&[TopicPartition::new(&t, 0)]).unwrap();
    let got: Vec<String> = read(&mut rc, 1, Duration::from_secs(2))
        .await
        .iter()
        .map(value)
        .collect();
    assert_eq!(
        got,
        vec!["after".to_string()],
        "only the record after the aborted transaction is visible"
    );
}

/// Many small batches of one partition pipelined to one broker inside
/// transactions: every request must reach the broker in the order its
/// batches were sequenced, or the broker answers OUT_OF_ORDER_SEQUENCE_NUMBER
/// for a batch whose predecessor then lands, and the transaction fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_batches_of_one_partition_commit() {
    let t = topic("txn-pipelined", 2).await;
    let p = Producer::builder()
        .bootstrap_servers(&bootstrap())
        .client_id("txn-tests")
        .transactional_id(unique("txn-pipelined"))
        .linger(Duration::from_millis(0))
        .batch_size(512)
        .build()
        .expect("producer");
    p.init_transactions().await.unwrap();
    let mut sent = 0usize;
    for round in 0..10 {
        p.begin_transaction().unwrap();
        for i in 0..3000 {
            let v = format!("r{round}-{i:05}-padding-padding-padding");
            p.send_and_forget(ProducerRecord::new(&t).partition(i % 2).value(&v))
                .await
                .unwrap();
            sent += 1;
        }
        p.commit_transaction()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    let mut rc = consumer(IsolationLevel::ReadCommitted, None);
    rc.assign(&all_partitions(std::slice::from_ref(&t), 2))
        .unwrap();
    let got = read(&mut rc, sent, Duration::from_secs(1)).await;
    assert_eq!(got.len(), sent);
}

/// Calls InitProducerId for `tid` on its coordinator through kafkawire's
/// connection layer until the coordinator answers with an epoch of at least
/// `until_epoch` or with a producer id other than the first one it gave.
/// Each call fences the previous producer and bumps the epoch by one.
/// Returns every (producer id, epoch) answered, in order.
async fn bump_epoch_raw(tid: &str, until_epoch: i16, limit: usize) -> Vec<(i64, i16)> {
    use kafkawire::cluster::CoordinatorType;
    use kafkawire::protocol::messages::init_producer_id::InitProducerIdRequest;
    let admin = admin();
    let cluster = admin.cluster();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut seen: Vec<(i64, i16)> = Vec::new();
    while seen.len() < limit {
        assert!(
            Instant::now() < deadline,
            "InitProducerId x{}: out of time",
            seen.len()
        );
        let (_, conn) = cluster
            .coordinator(CoordinatorType::Transaction, tid, deadline)
            .await
            .expect("transaction coordinator");
        let req = InitProducerIdRequest {
            transactional_id: Some(tid.to_string()),
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        };
        let resp = match conn.send(&req).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("InitProducerId: {e}; retrying");
                cluster.invalidate_coordinator(CoordinatorType::Transaction, tid);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let code = kafkawire::ErrorCode(resp.error_code);
        if !code.is_ok() {
            assert!(
                code.is_retriable(),
                "InitProducerId #{}: {}",
                seen.len(),
                code.name()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        seen.push((resp.producer_id, resp.producer_epoch));
        if resp.producer_epoch >= until_epoch || resp.producer_id != seen[0].0 {
            break;
        }
    }
    seen
}

/// Issue #8: when a transactional id's epoch is exhausted the coordinator
/// hands out a new producer id, and kafkawire's producer initialises with
/// it and commits. A first producer commits one record; raw InitProducerId
/// calls (each bumps the epoch: about 32,760 of them, one at a time) then
/// take the id to epoch `i16::MAX - 1`, the last the coordinator gives; the
/// next init, kafkawire's, gets a new producer id at epoch 0 and commits a
/// transaction a read_committed consumer sees, written under that id.
///
/// The InitProducerId calls took 14, 36 and 72 s in three runs on Kafka
/// 4.4.0 with one broker (the shared 2-core machine's load varied) and 45 s
/// on 3.9.2: too long to run twice in CI, so the plain run skips it and
/// `scripts/test.sh` runs it by name on Kafka 4.x only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "14-72 s of InitProducerId calls: scripts/test.sh runs it by name on Kafka 4.x"]
async fn an_exhausted_transactional_epoch_gets_a_new_producer_id() {
    let topic = topic("exhaust", 1).await;
    let tid = unique("exhaust");
    let commit = |p: Producer, values: Vec<String>| {
        let topic = topic.clone();
        async move {
            p.init_transactions().await.expect("init_transactions");
            p.begin_transaction().expect("begin");
            let mut fs = Vec::new();
            for v in &values {
                fs.push(
                    p.send(ProducerRecord::new(&topic).partition(0).value(v))
                        .await
                        .expect("send"),
                );
            }
            p.commit_transaction().await.expect("commit");
            for f in fs {
                f.await.expect("delivery");
            }
            p.close(Duration::from_secs(30)).await.expect("close");
        }
    };
    commit(txn_producer(&tid), vec!["before".to_string()]).await;

    let t0 = Instant::now();
    let seen = bump_epoch_raw(&tid, i16::MAX - 1, 40_000).await;
    let took = t0.elapsed();
    let old_id = seen[0].0;
    assert!(
        seen.iter().all(|(id, _)| *id == old_id),
        "a new id before the epoch ran out: {:?}",
        seen.last()
    );
    assert_eq!(
        seen.last().unwrap().1,
        i16::MAX - 1,
        "InitProducerId stopped short"
    );

    let after: Vec<String> = (0..10).map(|i| format!("after-{i}")).collect();
    commit(txn_producer(&tid), after.clone()).await;

    let mut c = consumer(IsolationLevel::ReadCommitted, None);
    c.assign(&[TopicPartition::new(&topic, 0)]).unwrap();
    let got: Vec<String> = read(&mut c, 11, Duration::from_secs(1))
        .await
        .iter()
        .map(value)
        .collect();
    let want: Vec<String> = std::iter::once("before".to_string()).chain(after).collect();
    assert_eq!(got, want, "read_committed");

    let log = support::read_all(&support::cluster(), &topic, WAIT)
        .await
        .remove(&0)
        .unwrap();
    assert_eq!(log.len(), 11, "data records in the log");
    assert_eq!(
        log[0].producer.0, old_id,
        "the first producer wrote under the id the raw calls bumped"
    );
    let (new_id, new_epoch) = log[1].producer;
    assert_ne!(new_id, old_id, "the exhausted id was replaced");
    assert_eq!(new_epoch, 0, "the new id starts at epoch 0");
    assert!(
        log[1..].iter().all(|r| r.producer == (new_id, 0)),
        "one transaction under the new id"
    );
    println!(
        "transactional epoch exhaustion: {} InitProducerId calls in {took:?}; producer {old_id} -> {new_id} epoch {new_epoch}",
        seen.len()
    );
}
