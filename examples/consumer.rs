//! Reads a topic's partitions from the beginning with read_committed and
//! prints each record.
//!
//! ```text
//! cargo run --example consumer -- 127.0.0.1:9092 my-topic 3
//! ```

use kafkawire::consumer::{Consumer, IsolationLevel, OffsetReset, TopicPartition};
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> kafkawire::Result<()> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "kafkawire-demo".into());
    let partitions: i32 = args.next().and_then(|p| p.parse().ok()).unwrap_or(1);

    let mut consumer = Consumer::builder()
        .bootstrap_servers(&bootstrap)
        .isolation_level(IsolationLevel::ReadCommitted)
        .auto_offset_reset(OffsetReset::Earliest)
        .build()?;
    let tps: Vec<_> = (0..partitions)
        .map(|p| TopicPartition::new(&topic, p))
        .collect();
    consumer.assign(&tps)?;
    loop {
        let records = consumer.poll(Duration::from_secs(5)).await?;
        if records.is_empty() {
            println!("no record for 5 s, stopping");
            return Ok(());
        }
        for r in records {
            let value = r.value.as_deref().map(String::from_utf8_lossy);
            println!("{}-{}@{}: {:?}", r.topic, r.partition, r.offset, value);
        }
    }
}
