//! The idempotent producer against three brokers while leaders are killed.

mod support;

use kafkawire::producer::{DeliveryFuture, Producer, ProducerRecord};
use protocol_tests::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The broker leading `topic`-`partition` now, from fresh metadata.
async fn leader_of(admin: &kafkawire::admin::Admin, topic: &str, partition: i32) -> i32 {
    eventually(Duration::from_secs(60), "a leader", || async {
        let t = admin.describe_topics(&[topic]).await.ok()?;
        t.first()?.partition(partition)?.leader
    })
    .await
}

/// 200,000 records to 6 partitions (replication 3, min.insync.replicas 2)
/// while the leader of partition 0 is killed (SIGKILL) and restarted,
/// twice. Every acknowledged record must be in the log exactly once, in
/// per-partition send order; none may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_survives_leader_kills_without_duplicates_or_loss() {
    let admin = admin();
    let topic = create_replicated_topic(&admin, "failover", 6).await;

    let producer = Producer::builder()
        .bootstrap_servers(&bootstrap())
        .client_id("failover-test")
        .linger(Duration::from_millis(5))
        .request_timeout(Duration::from_secs(10))
        .delivery_timeout(Duration::from_secs(180))
        .retry_backoff(Duration::from_millis(50))
        .metadata_max_age(Duration::from_secs(5))
        .build()
        .unwrap();

    let n: usize = 200_000;
    let sender = {
        let producer = producer.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            let mut fs: Vec<DeliveryFuture> = Vec::with_capacity(n);
            for i in 0..n {
                let key = format!("key-{}", i % 1000);
                let value = format!("{i}");
                fs.push(
                    producer
                        .send(ProducerRecord::new(&topic).key(&key).value(&value))
                        .await
                        .expect("enqueue"),
                );
                if i % 1000 == 999 {
                    // About 10,000 records/s, so the kills land mid-stream.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            fs
        })
    };

    for round in 0..2 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let victim = leader_of(&admin, &topic, 0).await;
        println!("round {round}: killing broker {victim} (leader of partition 0)");
        kafka_local_async(&["kill", &victim.to_string()]).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        println!("round {round}: restarting broker {victim}");
        kafka_local_async(&["start", &victim.to_string()]).await;
    }

    let fs = sender.await.expect("sender task");
    let t0 = Instant::now();
    let mut acked: HashMap<(i32, i64), usize> = HashMap::with_capacity(n);
    let mut failures = Vec::new();
    for (i, f) in fs.into_iter().enumerate() {
        match f.await {
            Ok(m) => assert!(
                acked.insert((m.partition(), m.offset()), i).is_none(),
                "two acks for one offset"
            ),
            Err(e) => failures.push((i, e)),
        }
    }
    println!(
        "all outcomes known {:?} after sending finished",
        t0.elapsed()
    );
    producer.close(Duration::from_secs(30)).await.unwrap();
    assert!(
        failures.is_empty(),
        "{} records failed, first: {:?}",
        failures.len(),
        failures.first()
    );

    let all = support::read_all(&support::cluster(), &topic, Duration::from_secs(120)).await;
    let mut seen = vec![0u8; n];
    for (partition, records) in &all {
        let mut last: Option<usize> = None;
        for r in records {
            let i: usize = std::str::from_utf8(r.value.as_deref().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            seen[i] += 1;
            assert_eq!(
                seen[i], 1,
                "record {i} is in the log twice (partition {partition})"
            );
            assert_eq!(
                acked.get(&(*partition, r.offset)),
                Some(&i),
                "ack and log disagree at {partition}/{}",
                r.offset
            );
            assert!(
                last < Some(i),
                "partition {partition}: record {i} after {last:?}"
            );
            last = Some(i);
        }
    }
    let lost: Vec<usize> = (0..n).filter(|&i| seen[i] == 0).take(10).collect();
    assert!(
        lost.is_empty(),
        "acknowledged records missing from the log: {lost:?}..."
    );
    println!("{n} records, 0 duplicates, 0 losses, order preserved");
}

/// Thaws a frozen node when dropped, so a failing test leaves the cluster
/// usable.
struct Thaw(i32);

impl Drop for Thaw {
    fn drop(&mut self) {
        let n = self.0.to_string();
        let _ = std::panic::catch_unwind(|| kafka_local(&["thaw", &n]));
    }
}

/// `delivery.timeout.ms` bounds a record's whole life, also while its batch
/// is in flight (as in the Java client): with the partition leader frozen
/// (SIGSTOP) the record's future fails with a timeout that says the batch
/// was in flight, without waiting for the request timeout. The batch's
/// sequence stays unresolved until its attempt ends; records sent after
/// the thaw succeed, and the log holds each record at most once, in send
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_timeout_fails_a_batch_in_flight_to_a_frozen_leader() {
    let admin = admin();
    let topic = create_replicated_topic(&admin, "inflight-expiry", 1).await;
    let producer = Producer::builder()
        .bootstrap_servers(&bootstrap())
        .client_id("inflight-expiry-test")
        .linger(Duration::from_millis(0))
        .request_timeout(Duration::from_secs(20))
        .delivery_timeout(Duration::from_secs(20))
        .retry_backoff(Duration::from_millis(50))
        .metadata_max_age(Duration::from_secs(2))
        .build()
        .unwrap();
    let send = |v: String| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            producer
                .send(ProducerRecord::new(&topic).partition(0).value(&v))
                .await
                .expect("enqueue")
        }
    };
    send("before".into()).await.await.expect("first record");

    let victim = leader_of(&admin, &topic, 0).await;
    println!("freezing broker {victim} (leader of partition 0)");
    kafka_local_async(&["freeze", &victim.to_string()]).await;
    let thaw = Thaw(victim);
    let stuck = send("stuck".into()).await;
    let e = tokio::time::timeout(Duration::from_secs(120), stuck)
        .await
        .expect("the record's outcome within 120 s")
        .expect_err("a record in flight to a frozen leader past delivery.timeout.ms fails");
    assert!(e.is_timeout(), "{e}");
    assert!(
        e.to_string().contains("in flight"),
        "failed by the in-flight expiry, not the request timeout: {e}"
    );

    // After the thaw, later records succeed (on whichever broker leads now)
    // once the stuck attempt ended.
    drop(thaw);
    let mut later = Vec::new();
    for i in 0..50 {
        later.push(send(format!("after-{i}")).await);
    }
    let mut offsets = Vec::new();
    for (i, f) in later.into_iter().enumerate() {
        let m = tokio::time::timeout(Duration::from_secs(120), f)
            .await
            .expect("outcome within 120 s")
            .unwrap_or_else(|e| panic!("record after-{i} failed: {e}"));
        offsets.push(m.offset());
    }
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "acknowledged in send order: {offsets:?}"
    );
    producer.close(Duration::from_secs(30)).await.unwrap();

    let all = support::read_all(&support::cluster(), &topic, Duration::from_secs(120)).await;
    let values: Vec<String> = all[&0]
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    let mut want: Vec<String> = vec!["before".into()];
    if values.get(1).map(String::as_str) == Some("stuck") {
        // The expired record's outcome was unknown: it may be in the log, once.
        want.push("stuck".into());
    }
    want.extend((0..50).map(|i| format!("after-{i}")));
    assert_eq!(values, want, "each record at most once, in send order");
}
