//! The interop peers themselves work against the cluster under test (so a
//! failing interop test points at kafkawire, not at the harness).

use kafkawire::admin::NewTopic;
use protocol_tests::interop::{self, Peer};
use protocol_tests::*;
use std::time::Duration;

#[tokio::test]
async fn peers_produce_transact_and_consume_read_committed() {
    let admin = admin();
    let topic = unique("peers");
    admin
        .create_topics(&[NewTopic::new(&topic, 2, 1)])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    admin
        .wait_for_topics(&[&topic], Duration::from_secs(30))
        .await
        .unwrap();
    for peer in Peer::all() {
        let prefix = format!("{}-plain-", peer.name());
        let acked = interop::produce(
            peer,
            &[
                "--topic",
                &topic,
                "--count",
                "5",
                "--key-prefix",
                "k",
                "--value-prefix",
                &prefix,
            ],
        );
        assert_eq!(acked.len(), 5);
        let txn_prefix = format!("{}-txn-", peer.name());
        let tid = unique("tid");
        let s = interop::txn_produce(
            peer,
            &[
                "--topic",
                &topic,
                "--transactional-id",
                &tid,
                "--transactions",
                "2",
                "--per-transaction",
                "3",
                "--abort-every",
                "2",
                "--value-prefix",
                &txn_prefix,
            ],
        );
        assert_eq!((s.committed.len(), s.aborted.len()), (3, 3));
    }
    for peer in Peer::all() {
        let committed = interop::consume(peer, &topic, "read_committed", 16);
        assert_eq!(
            committed.len(),
            16,
            "{} read_committed: {committed:?}",
            peer.name()
        );
        assert!(committed
            .iter()
            .all(|r| !r.value.as_deref().unwrap_or("").contains("txn-1-")));
        let all = interop::consume(peer, &topic, "read_uncommitted", 22);
        assert_eq!(all.len(), 22, "{} read_uncommitted", peer.name());
    }
    // Both clients' default partitioners agree.
    let keys = ["a", "key-0", "key-1", "order-42", "foobar"];
    let java = interop::java_partitions(&keys, 2);
    let rd = interop::rdkafka_partitions(&keys, &topic);
    assert_eq!(java, rd);
}
