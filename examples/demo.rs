//! The README demo: create a topic, produce a few records with the idempotent
//! producer, and read them back with a `read_committed` consumer.
//!
//! Run with `scripts/demo.sh`, which starts a local Kafka if none is running,
//! or against any cluster: `KAFKAWIRE_BOOTSTRAP=host:9092 cargo run --example demo`.

use kafkawire::admin::{Admin, NewTopic};
use kafkawire::consumer::{Consumer, IsolationLevel, OffsetReset, TopicPartition};
use kafkawire::producer::{Producer, ProducerRecord};
use kafkawire::ErrorCode;
use std::time::Duration;

#[tokio::main]
async fn main() -> kafkawire::Result<()> {
    let bootstrap =
        std::env::var("KAFKAWIRE_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:19092".into());

    // 1. A topic with three partitions.
    let admin = Admin::builder()
        .bootstrap_servers(&bootstrap)
        .client_id("kafkawire-demo")
        .build()?;
    let cluster = admin.describe_cluster().await?;
    println!(
        "cluster {} with {} broker(s)",
        cluster.cluster_id,
        cluster.brokers.len()
    );
    let topic = "kafkawire-demo";
    match admin
        .create_topics(&[NewTopic::new(topic, 3, 1)])
        .await?
        .get(topic)
    {
        Some(Err(e)) if e.code() == Some(ErrorCode::TOPIC_ALREADY_EXISTS) => {}
        Some(Err(e)) => return Err(e.clone()),
        _ => println!("created topic {topic}"),
    }
    admin
        .wait_for_topics(&[topic], Duration::from_secs(30))
        .await?;

    // 2. Produce: idempotence is on by default; each future resolves on ack.
    let producer = Producer::builder().bootstrap_servers(&bootstrap).build()?;
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut acks = Vec::new();
    for i in 0..9 {
        let key = format!("customer-{}", i % 3);
        let value = format!("order {i} of run {run}");
        acks.push(
            producer
                .send(ProducerRecord::new(topic).key(&key).value(&value))
                .await?,
        );
    }
    for ack in acks {
        let meta = ack.await?;
        println!(
            "acked {}-{} @ {}",
            meta.topic(),
            meta.partition(),
            meta.offset()
        );
    }
    producer.close(Duration::from_secs(10)).await?;

    // 3. Consume what this run wrote, read_committed.
    let mut consumer = Consumer::builder()
        .bootstrap_servers(&bootstrap)
        .isolation_level(IsolationLevel::ReadCommitted)
        .auto_offset_reset(OffsetReset::Earliest)
        .build()?;
    let partitions: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new(topic, p)).collect();
    consumer.assign(&partitions)?;
    let mut seen = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen < 9 && tokio::time::Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(500)).await? {
            let value = r
                .value
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            if value.ends_with(&format!("run {run}")) {
                seen += 1;
                let key = r
                    .key
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                println!(
                    "read  {}-{} @ {}: {key} => {value}",
                    r.topic, r.partition, r.offset
                );
            }
        }
    }
    println!("read back {seen} of 9 records");
    if seen == 9 {
        Ok(())
    } else {
        Err(kafkawire::Error::timeout(
            "not every record was read back within 30 s",
        ))
    }
}
