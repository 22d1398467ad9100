//! Foundation tests against one real broker (run for Kafka 4.x and 3.x).

use kafkawire::admin::NewTopic;
use kafkawire::cluster::CoordinatorType;
use kafkawire::net::conn::ConnectionConfig;
use kafkawire::net::BrokerConnection;
use kafkawire::protocol::messages::{self, ApiKey, Request};
use kafkawire::{ErrorCode, ErrorKind};
use protocol_tests::*;
use std::time::{Duration, Instant};

fn ours<R: Request>() -> (i16, i16) {
    (<R as messages::Message>::VERSIONS.0, R::MAX_STABLE_VERSION)
}

#[tokio::test]
async fn negotiated_versions_are_the_highest_common_ones() {
    let first = bootstrap().split(',').next().unwrap().to_string();
    let conn = BrokerConnection::connect(
        &first,
        first.clone(),
        &ConnectionConfig::default(),
        Duration::from_secs(30),
    )
    .await
    .expect("connect and ApiVersions handshake");
    let t = conn.versions();
    println!("Kafka {}.x negotiated versions: {t:?}", kafka_major());
    macro_rules! check {
        ($req:ty) => {{
            let key = <$req as Request>::API_KEY;
            let (bmin, bmax) = t
                .broker_range(key)
                .unwrap_or_else(|| panic!("broker lacks {}", key.name()));
            let (omin, omax) = ours::<$req>();
            let v = conn.version_of::<$req>().unwrap();
            println!(
                "  {:<18} client v{omin}-v{omax}  broker v{bmin}-v{bmax}  -> v{v}",
                key.name()
            );
            assert_eq!(
                v,
                omax.min(bmax),
                "{} must use the highest common version",
                key.name()
            );
            assert!(v >= omin.max(bmin));
        }};
    }
    check!(messages::ApiVersionsRequest);
    check!(messages::MetadataRequest);
    check!(messages::CreateTopicsRequest);
    check!(messages::DeleteTopicsRequest);
    check!(messages::DescribeClusterRequest);
    check!(messages::FindCoordinatorRequest);
    check!(messages::ProduceRequest);
    check!(messages::FetchRequest);
    check!(messages::InitProducerIdRequest);
    // Flexible versions are in use for everything modern brokers speak.
    assert!(conn.version_of::<messages::MetadataRequest>().unwrap() >= 9);
    // Kafka 4 clusters formatted at the latest level run transactions v2.
    let tv = t.finalized_feature("transaction.version");
    println!("  transaction.version finalized: {tv:?}");
    if kafka_major() >= 4 {
        assert_eq!(
            tv,
            Some(2),
            "the 4.x test cluster should have transaction.version=2"
        );
    }
    assert!(t.broker_range(ApiKey::Produce).is_some());
}

#[tokio::test]
async fn create_describe_and_delete_topics() {
    let admin = admin();
    let name = unique("admin");
    admin
        .create_topics(&[NewTopic::new(&name, 3, 1).config("cleanup.policy", "compact")])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    admin
        .wait_for_topics(&[&name], Duration::from_secs(30))
        .await
        .unwrap();
    let topics = admin.describe_topics(&[&name]).await.unwrap();
    assert_eq!(topics[0].partitions.len(), 3);
    assert!(topics[0]
        .partitions
        .iter()
        .all(|p| p.leader.is_some() && p.replicas.len() == 1));
    assert!(admin.list_topics().await.unwrap().contains(&name));

    // Creating it again is a per-topic TOPIC_ALREADY_EXISTS.
    let again = admin
        .create_topics(&[NewTopic::new(&name, 3, 1)])
        .await
        .unwrap();
    let err = again.get(&name).unwrap().as_ref().unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TOPIC_ALREADY_EXISTS), "{err}");
    assert_eq!(err.topic(), Some(name.as_str()));

    // Invalid requests come back as typed errors naming the topic.
    let bad = admin
        .create_topics(&[NewTopic::new(unique("bad"), 1, 7)])
        .await
        .unwrap();
    let (_, r) = &bad.0[0];
    assert_eq!(
        r.as_ref().unwrap_err().code(),
        Some(ErrorCode::INVALID_REPLICATION_FACTOR)
    );

    admin
        .delete_topics(&[&name])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "topic deletion to show in metadata",
        || async {
            match admin.describe_topics(&[&name]).await {
                Err(e) if e.code() == Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION) => Some(()),
                _ => None,
            }
        },
    )
    .await;
    let gone = admin.delete_topics(&[&name]).await.unwrap();
    assert_eq!(
        gone.get(&name).unwrap().as_ref().unwrap_err().code(),
        Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
    );
}

#[tokio::test]
async fn describe_cluster_lists_the_brokers() {
    let admin = admin();
    let d = admin.describe_cluster().await.unwrap();
    assert!(!d.cluster_id.is_empty());
    assert_eq!(d.brokers.len(), 1);
    let boot = bootstrap();
    assert!(
        boot.contains(&d.brokers[0].port.to_string()),
        "{d:?} vs {boot}"
    );
}

#[tokio::test]
async fn coordinators_are_found_for_groups_and_transactions() {
    let admin = admin();
    let cluster = admin.cluster();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (g, _) = cluster
        .coordinator(CoordinatorType::Group, &unique("group"), deadline)
        .await
        .unwrap();
    let (t, _) = cluster
        .coordinator(CoordinatorType::Transaction, &unique("txn"), deadline)
        .await
        .unwrap();
    let d = admin.describe_cluster().await.unwrap();
    assert!(d.brokers.iter().any(|b| b.node_id == g));
    assert!(d.brokers.iter().any(|b| b.node_id == t));
}

#[tokio::test]
async fn unknown_topic_fails_after_the_deadline_with_its_name() {
    let admin = admin();
    let name = unique("missing");
    let started = Instant::now();
    let err = admin
        .wait_for_topics(&[&name], Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        err.code(),
        Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
        "{err}"
    );
    assert!(err.to_string().contains(&name), "{err}");
}

#[tokio::test]
async fn unreachable_bootstrap_is_a_clear_retriable_error() {
    let admin = kafkawire::admin::Admin::builder()
        .bootstrap_servers("127.0.0.1:1")
        .default_api_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = admin.describe_cluster().await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Timeout), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}
