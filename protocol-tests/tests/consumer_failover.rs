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
    follow_a_killed_leader(None, Duration::ZERO).await;
}

/// The same with a fetch buffer of 20,000 bytes and a slow application, so
/// that partitions 1 and 2 are caught up (their brokers long-polling) while
/// partition 0 still lags behind its failover. The buffer used to be shared
/// among the brokers with fetchable partitions only: the two long polls
/// reserved all of it between them, partition 0's broker never got a turn,
/// and the consumer stalled silently until the next periodic metadata
/// refresh (this stalled every time before the fix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_partition_is_not_starved_by_caught_up_ones_after_a_failover() {
    follow_a_killed_leader(Some("20000"), Duration::from_millis(20)).await;
}

async fn follow_a_killed_leader(fetch_buffer: Option<&str>, pause_per_poll: Duration) {
    let admin = admin();
    let topic = unique("cfailover");
    admin
        .create_topics(&[NewTopic::new(&topic, 3, 3).config("min.insync.replicas", "2")])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    admin
        .wait_for_topics(&[&topic], Duration::from_secs(60))
        .await
        .unwrap();

    let n_per_partition = 10_000usize;
    let producer = Producer::builder()
        .bootstrap_servers(&bootstrap())
        .linger(Duration::from_millis(5))
        .build()
        .unwrap();
    let mut acks = Vec::new();
    for i in 0..n_per_partition {
        for p in 0..3 {
            let v = format!("{p}-{i}");
            acks.push(
                producer
                    .send(ProducerRecord::new(&topic).partition(p).value(&v))
                    .await
                    .unwrap(),
            );
        }
    }
    for a in acks {
        a.await.expect("acknowledged");
    }
    producer.close(Duration::from_secs(30)).await.unwrap();

    let mut builder = Consumer::builder()
        .bootstrap_servers(&bootstrap())
        .isolation_level(IsolationLevel::ReadCommitted)
        .auto_offset_reset(OffsetReset::Earliest)
        .set("max.partition.fetch.bytes", "16384");
    if let Some(bytes) = fetch_buffer {
        builder = builder.set("fetch.buffer.max.bytes", bytes);
    }
    let mut consumer = builder.build().unwrap();
    consumer
        .assign(
            &(0..3)
                .map(|p| TopicPartition::new(&topic, p))
                .collect::<Vec<_>>(),
        )
        .unwrap();

    let total = 3 * n_per_partition;
    let mut got: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let mut count = 0usize;
    let mut killed: Option<RestartOnDrop> = None;
    let deadline = Instant::now() + Duration::from_secs(180);
    while count < total {
        assert!(
            Instant::now() < deadline,
            "only {count} of {total} records within the deadline: {:?}",
            got.iter().map(|(p, r)| (p, r.len())).collect::<Vec<_>>()
        );
        for r in consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll")
        {
            let v = String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap();
            got.entry(r.partition).or_default().push((r.offset, v));
            count += 1;
        }
        tokio::time::sleep(pause_per_poll).await;
        if killed.is_none() && count >= total / 4 {
            let leader = admin.describe_topics(&[&topic]).await.unwrap()[0]
                .partition(0)
                .unwrap()
                .leader
                .unwrap();
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
            assert_eq!(
                *offset, i as i64,
                "partition {p}: offsets in order without gaps"
            );
            assert_eq!(
                value,
                &format!("{p}-{i}"),
                "partition {p} offset {offset}: values in send order; around: {:?}",
                &recs[i.saturating_sub(3)..(i + 3).min(recs.len())]
            );
        }
    }
}
