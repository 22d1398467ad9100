//! Foundation tests against three real brokers, with broker kills.

use kafkawire::admin::NewTopic;
use kafkawire::cluster::CoordinatorType;
use protocol_tests::*;
use std::time::{Duration, Instant};

/// Restarts node `n` when dropped, so a failed assertion leaves the
/// cluster whole for the next test.
struct Restart(i32);
impl Drop for Restart {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| kafka_local(&["start", &self.0.to_string()]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_partition_leader_yields_a_new_leader() {
    let admin = admin();
    let topic = unique("failover");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 3)])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    admin
        .wait_for_topics(&[&topic], Duration::from_secs(60))
        .await
        .unwrap();
    let cluster = admin.cluster();
    let old = cluster
        .leader_for(&topic, 0, Instant::now() + Duration::from_secs(30))
        .await
        .unwrap();

    kafka_local(&["kill", &old.to_string()]);
    let _restart = Restart(old);
    let started = Instant::now();
    let new = eventually(
        Duration::from_secs(60),
        "a new leader in metadata",
        || async {
            cluster.request_update();
            let snap = cluster.refresh(Some(&[topic.clone()])).await.ok()?;
            match snap.leader_of(&topic, 0) {
                Some(l) if l != old => Some(l),
                _ => None,
            }
        },
    )
    .await;
    println!("leader moved {old} -> {new} in {:?}", started.elapsed());
    assert_ne!(new, old);
    let info = admin.describe_topics(&[&topic]).await.unwrap();
    assert!(!info[0].partitions[0].isr.contains(&old) || info[0].partitions[0].leader == Some(new));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_group_coordinator_moves_the_lookup() {
    let admin = admin();
    let cluster = admin.cluster();
    let group = unique("coord");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (old, _) = cluster
        .coordinator(CoordinatorType::Group, &group, deadline)
        .await
        .unwrap();

    kafka_local(&["kill", &old.to_string()]);
    let _restart = Restart(old);
    cluster.invalidate_coordinator(CoordinatorType::Group, &group);
    let new = eventually(
        Duration::from_secs(90),
        "a live group coordinator",
        || async {
            cluster.invalidate_coordinator(CoordinatorType::Group, &group);
            let deadline = Instant::now() + Duration::from_secs(10);
            match cluster
                .coordinator(CoordinatorType::Group, &group, deadline)
                .await
            {
                Ok((n, _)) if n != old => Some(n),
                _ => None,
            }
        },
    )
    .await;
    println!("group coordinator moved {old} -> {new}");
    assert_ne!(new, old);
}
