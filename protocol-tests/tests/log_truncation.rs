//! KIP-320 on three brokers: a real unclean leader election truncates a
//! log the consumer already read. Its own test binary, which scripts/test.sh
//! runs on a 3-broker cluster of its own: it stops two of the three nodes,
//! churn the other fault tests should not inherit.

use kafkawire::admin::NewTopic;
use kafkawire::consumer::{Consumer, OffsetReset, TopicPartition};
use kafkawire::producer::{Producer, ProducerRecord};
use protocol_tests::*;
use std::time::{Duration, Instant};

/// KIP-320 truncation detection on a real unclean leader election. A
/// replication-2 topic with unclean election allowed: records `a*` reach
/// both replicas; the follower is stopped; records `b*` are written to the
/// leader alone and read by two consumers; then the leader is stopped and
/// the stale follower becomes leader without the `b*` records, and takes
/// new records `c*` at their offsets. The consumers' next fetches carry the
/// epoch of the `b*` records; the new leader reports where that epoch ends
/// in its log (the diverging offset). With `auto.offset.reset=none` the
/// consumer gets a typed LogTruncation error naming that offset (Java's
/// LogTruncationException); with a reset policy it resumes there, as the
/// Java client does, and reads the `c*` records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_detects_log_truncation_after_an_unclean_election() {
    let admin = admin();
    let topic = unique("truncation");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 2)
            .config("min.insync.replicas", "1")
            .config("unclean.leader.election.enable", "true")])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    admin
        .wait_for_topics(&[&topic], Duration::from_secs(60))
        .await
        .unwrap();
    let describe = || async {
        let t = admin.describe_topics(&[&topic]).await.ok()?;
        t.first()?.partition(0).cloned()
    };
    let info = describe().await.expect("partition 0");
    let leader = info.leader.expect("a leader");
    let follower = *info
        .replicas
        .iter()
        .find(|r| **r != leader)
        .expect("a second replica");
    let produce = |prefix: &'static str| {
        let topic = topic.clone();
        async move {
            let p = Producer::builder()
                .bootstrap_servers(&bootstrap())
                .build()
                .unwrap();
            for i in 0..10 {
                let v = format!("{prefix}{i}");
                p.send(ProducerRecord::new(&topic).partition(0).value(&v))
                    .await
                    .unwrap()
                    .await
                    .expect("acknowledged");
            }
            p.close(Duration::from_secs(30)).await.unwrap();
        }
    };
    produce("a").await;
    println!("stopping follower {follower}");
    kafka_local_async(&["stop", &follower.to_string()]).await;
    let _restart_follower = RestartOnDrop(follower);
    eventually(
        Duration::from_secs(120),
        "the ISR without the follower",
        || async { describe().await.filter(|p| p.isr == vec![leader]) },
    )
    .await;
    produce("b").await;

    let consumer = |reset: OffsetReset| {
        let mut c = Consumer::builder()
            .bootstrap_servers(&bootstrap())
            .auto_offset_reset(reset)
            .build()
            .unwrap();
        c.assign(&[TopicPartition::new(&topic, 0)]).unwrap();
        c.seek(&TopicPartition::new(&topic, 0), 0).unwrap();
        c
    };
    let mut strict = consumer(OffsetReset::None);
    let mut lenient = consumer(OffsetReset::Earliest);
    for c in [&mut strict, &mut lenient] {
        let mut n = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while n < 20 {
            assert!(
                Instant::now() < deadline,
                "read only {n} of 20 records before the election"
            );
            n += c
                .poll(Duration::from_millis(500))
                .await
                .expect("poll")
                .len();
        }
    }

    println!("stopping leader {leader}, starting the stale follower {follower}");
    kafka_local_async(&["stop", &leader.to_string()]).await;
    let _restart_leader = RestartOnDrop(leader);
    kafka_local_async(&["start", &follower.to_string()]).await;
    eventually(
        Duration::from_secs(180),
        "the stale follower elected (unclean)",
        || async { describe().await.filter(|p| p.leader == Some(follower)) },
    )
    .await;
    produce("c").await;

    let deadline = Instant::now() + Duration::from_secs(120);
    let e = loop {
        assert!(Instant::now() < deadline, "no truncation error");
        match strict.poll(Duration::from_millis(500)).await {
            Err(e) => break e,
            Ok(r) => assert!(
                r.is_empty(),
                "records after a truncation without reset policy: {:?}",
                r[0].offset
            ),
        }
    };
    assert!(
        matches!(
            e.kind(),
            kafkawire::ErrorKind::LogTruncation { offset: 10, .. }
        ),
        "{e}"
    );

    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while got.len() < 10 {
        assert!(
            Instant::now() < deadline,
            "the lenient consumer read only {got:?}"
        );
        for r in lenient
            .poll(Duration::from_millis(500))
            .await
            .expect("poll")
        {
            got.push((
                r.offset,
                String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap(),
            ));
        }
    }
    let want: Vec<(i64, String)> = (0..10).map(|i| (10 + i as i64, format!("c{i}"))).collect();
    assert_eq!(
        got, want,
        "resumed at the diverging offset, on the new leader's records"
    );

    // Both replicas were down at once (with them two of the three
    // controllers): leave the cluster whole for the next test, every
    // replica back in sync.
    drop(_restart_leader);
    eventually(
        Duration::from_secs(180),
        "the cluster fully in sync again",
        || async {
            let all = admin.list_topics().await.ok()?;
            let mut names: Vec<&str> = vec![&topic];
            names.extend(
                ["__consumer_offsets", "__transaction_state"]
                    .into_iter()
                    .filter(|t| all.iter().any(|a| a == t)),
            );
            let topics = admin.describe_topics(&names).await.ok()?;
            topics
                .iter()
                .all(|t| {
                    t.partitions
                        .iter()
                        .all(|p| p.leader.is_some() && p.isr.len() == p.replicas.len())
                })
                .then_some(())
        },
    )
    .await;
}
