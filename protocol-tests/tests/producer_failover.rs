//! The idempotent producer against three brokers while leaders are killed.

mod support;

use kafkawire::admin::NewTopic;
use kafkawire::producer::{DeliveryFuture, Producer, ProducerRecord};
use protocol_tests::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

async fn kafka_local_async(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        kafka_local(&a)
    })
    .await
    .expect("kafka-local task")
}

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
    let topic = unique("failover");
    admin
        .create_topics(&[NewTopic::new(&topic, 6, 3).config("min.insync.replicas", "2")])
        .await
        .expect("create")
        .into_result()
        .expect("created");
    admin.wait_for_topics(&[&topic], Duration::from_secs(30)).await.unwrap();

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
                fs.push(producer.send(ProducerRecord::new(&topic).key(&key).value(&value)).await.expect("enqueue"));
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
            Ok(m) => assert!(acked.insert((m.partition(), m.offset()), i).is_none(), "two acks for one offset"),
            Err(e) => failures.push((i, e)),
        }
    }
    println!("all outcomes known {:?} after sending finished", t0.elapsed());
    producer.close(Duration::from_secs(30)).await.unwrap();
    assert!(failures.is_empty(), "{} records failed, first: {:?}", failures.len(), failures.first());

    let all = support::read_all(&support::cluster(), &topic, Duration::from_secs(120)).await;
    let mut seen = vec![0u8; n];
    for (partition, records) in &all {
        let mut last: Option<usize> = None;
        for r in records {
            let i: usize = std::str::from_utf8(r.value.as_deref().unwrap()).unwrap().parse().unwrap();
            seen[i] += 1;
            assert_eq!(seen[i], 1, "record {i} is in the log twice (partition {partition})");
            assert_eq!(acked.get(&(*partition, r.offset)), Some(&i), "ack and log disagree at {partition}/{}", r.offset);
            assert!(last < Some(i), "partition {partition}: record {i} after {last:?}");
            last = Some(i);
        }
    }
    let lost: Vec<usize> = (0..n).filter(|&i| seen[i] == 0).take(10).collect();
    assert!(lost.is_empty(), "acknowledged records missing from the log: {lost:?}...");
    println!("{n} records, 0 duplicates, 0 losses, order preserved");
}
