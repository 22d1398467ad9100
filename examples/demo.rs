//! The README demo: connect, create a topic, describe the cluster and topic.
//!
//! Run with `scripts/demo.sh`, which starts a local Kafka if none is running,
//! or against any cluster: `KAFKAWIRE_BOOTSTRAP=host:9092 cargo run --example demo`.

use kafkawire::admin::{Admin, NewTopic};
use kafkawire::ErrorCode;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> kafkawire::Result<()> {
    let bootstrap = std::env::var("KAFKAWIRE_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let admin = Admin::builder().bootstrap_servers(&bootstrap).client_id("kafkawire-demo").build()?;

    let cluster = admin.describe_cluster().await?;
    println!("cluster {} with {} broker(s):", cluster.cluster_id, cluster.brokers.len());
    for b in &cluster.brokers {
        println!("  broker {} at {}", b.node_id, b.address());
    }

    let topic = "kafkawire-demo";
    let created = admin.create_topics(&[NewTopic::new(topic, 3, 1)]).await?;
    match created.get(topic) {
        Some(Err(e)) if e.code() == Some(ErrorCode::TOPIC_ALREADY_EXISTS) => println!("topic {topic} already exists"),
        Some(Err(e)) => return Err(e.clone()),
        _ => println!("created topic {topic}"),
    }
    admin.wait_for_topics(&[topic], Duration::from_secs(30)).await?;
    for t in admin.describe_topics(&[topic]).await? {
        for p in &t.partitions {
            println!("  {}-{}: leader {:?}, epoch {}", t.name, p.partition, p.leader, p.leader_epoch);
        }
    }
    Ok(())
}
