//! Produces records with the idempotent producer and reports the rate.
//!
//! `KAFKAWIRE_BOOTSTRAP=host:9092 cargo run --release --example producer -- [RECORDS] [VALUE_BYTES] [CODEC]`
//!
//! Creates the topic `kafkawire-producer-example` (6 partitions) if needed,
//! sends RECORDS keyless records (default 1,000,000 of 100 bytes)
//! fire-and-forget, then 100,000 more awaiting each record's future, and
//! prints records/s for both.

use kafkawire::admin::{Admin, NewTopic};
use kafkawire::producer::{Compression, Producer, ProducerRecord};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> kafkawire::Result<()> {
    let bootstrap =
        std::env::var("KAFKAWIRE_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let mut args = std::env::args().skip(1);
    let records: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let codec = args
        .next()
        .and_then(|c| Compression::ALL.into_iter().find(|k| k.name() == c))
        .unwrap_or(Compression::None);

    let topic = "kafkawire-producer-example";
    let admin = Admin::builder().bootstrap_servers(&bootstrap).build()?;
    let _ = admin.create_topics(&[NewTopic::new(topic, 6, 1)]).await?;
    admin
        .wait_for_topics(&[topic], Duration::from_secs(30))
        .await?;

    let producer = Producer::builder()
        .bootstrap_servers(&bootstrap)
        .client_id("kafkawire-producer-example")
        .compression(codec)
        .batch_size(64 * 1024)
        .linger(Duration::from_millis(5))
        .build()?;
    let value = vec![b'x'; size];

    let t0 = Instant::now();
    for _ in 0..records {
        producer
            .send_and_forget(ProducerRecord::new(topic).value(&value))
            .await?;
    }
    producer.flush().await;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "fire-and-forget: {records} records of {size} bytes ({codec}) in {secs:.2}s: {:.0} records/s, {:.1} MB/s",
        records as f64 / secs,
        (records * size) as f64 / secs / 1e6
    );

    let n = records.min(100_000);
    let t0 = Instant::now();
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let key = (i as u64).to_be_bytes();
        pending.push(
            producer
                .send(ProducerRecord::new(topic).key(&key).value(&value))
                .await?,
        );
    }
    for f in pending {
        f.await?;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "with futures: {n} keyed records in {secs:.2}s: {:.0} records/s",
        n as f64 / secs
    );
    producer.close(Duration::from_secs(30)).await
}
