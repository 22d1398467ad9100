//! The consumer against three brokers while a partition leader is killed.

use kafkawire::admin::NewTopic;
use kafkawire::consumer::{Consumer, IsolationLevel, OffsetReset, TopicPartition};
use kafkawire::producer::{Producer, ProducerRecord};
use protocol_tests::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// 30,000 records on 3 partitions (replication 3, min.insync.replicas 2) are
/// consumed while the leader of partition 0 is killed part-way: the
/// consumer follows the new leaders and returns every record exactly once,
/// in offset order, without gaps (read_committed and plain data alike).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_follows_a_killed_leader_without_gaps_or_duplicates() {
    let admin = admin();
    let topic = unique("cfailover");
    admin
        .create_topics(&[NewTopic::new(&topic, 3, 3).config("min.insync.replicas", "2")])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    admin.wait_for_topics(&[&topic], Duration::from_secs(60)).await.unwrap();

    let n_per_partition = 10_000usize;
    let producer = Producer::builder().bootstrap_servers(&bootstrap()).linger(Duration::from_millis(5)).build().unwrap();
    let mut acks = Vec::new();
    for i in 0..n_per_partition {
        for p in 0..3 {
            let v = format!("{p}-{i}");
            acks.push(producer.send(ProducerRecord::new(&topic).partition(p).value(&v)).await.unwrap());
        }
    }
    for a in acks {
        a.await.expect("acknowledged");
    }
    producer.close(Duration::from_secs(30)).await.unwrap();

    let mut consumer = Consumer::builder()
        .bootstrap_servers(&bootstrap())
        .isolation_level(IsolationLevel::ReadCommitted)
        .auto_offset_reset(OffsetReset::Earliest)
        .set("max.partition.fetch.bytes", "16384")
        .build()
        .unwrap();
    consumer.assign(&(0..3).map(|p| TopicPartition::new(&topic, p)).collect::<Vec<_>>()).unwrap();

    let total = 3 * n_per_partition;
    let mut got: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let mut count = 0usize;
    let mut killed: Option<RestartOnDrop> = None;
    let deadline = Instant::now() + Duration::from_secs(180);
    while count < total {
        assert!(Instant::now() < deadline, "only {count} of {total} records within the deadline");
        for r in consumer.poll(Duration::from_millis(500)).await.expect("poll") {
            let v = String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap();
            got.entry(r.partition).or_default().push((r.offset, v));
            count += 1;
        }
        if killed.is_none() && count >= total / 4 {
            let leader = admin.describe_topics(&[&topic]).await.unwrap()[0].partition(0).unwrap().leader.unwrap();
            println!("killing node {leader} (leader of partition 0) after {count} records");
            kafka_local_async(&["kill", &leader.to_string()]).await;
            killed = Some(RestartOnDrop(leader));
        }
    }
    drop(killed);
    assert_eq!(count, total, "no record returned twice");
    for p in 0..3 {
        let recs = &got[&p];
        assert_eq!(recs.len(), n_per_partition, "partition {p}");
        for (i, (offset, value)) in recs.iter().enumerate() {
            assert_eq!(*offset, i as i64, "partition {p}: offsets in order without gaps");
            assert_eq!(value, &format!("{p}-{i}"), "partition {p} offset {offset}: values in send order; around: {:?}", &recs[i.saturating_sub(3)..(i + 3).min(recs.len())]);
        }
    }
}
