//! Calls against brokers that accept connections but never answer (a dead
//! network path, a frozen broker) must end within their own timeout.
//!
//! Finding a connection may try every known and bootstrap broker in turn,
//! each for up to `socket.connection.setup.timeout.ms`; the bound of the
//! call (`default.api.timeout.ms`, `max.block.ms`) must cut that short.
//! Here the setup timeout is 20 s and there are three silent brokers, so an
//! unbounded attempt would take a minute; the calls' own timeout is 1 s and
//! the test allows 15 s (a hang bound, not a speed target).

use kafkawire::admin::Admin;
use kafkawire::config::ClientConfig;
use kafkawire::consumer::{Consumer, TopicPartition};
use kafkawire::producer::Producer;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const CALL_TIMEOUT: Duration = Duration::from_secs(1);
const HANG: Duration = Duration::from_secs(15);

/// Three listeners that accept and hold every connection, reading nothing.
async fn silent_brokers() -> (String, tokio::task::JoinHandle<()>) {
    let mut addrs = Vec::new();
    let mut listeners = Vec::new();
    for _ in 0..3 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(l.local_addr().unwrap().to_string());
        listeners.push(l);
    }
    let task = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for l in listeners {
            tasks.spawn(async move {
                let mut held: Vec<tokio::net::TcpStream> = Vec::new();
                while let Ok((s, _)) = l.accept().await {
                    held.push(s);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    (addrs.join(","), task)
}

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::default();
    c.set_bootstrap_servers(bootstrap);
    c.socket_connection_setup_timeout = Duration::from_secs(20);
    c.request_timeout = Duration::from_secs(20);
    c.default_api_timeout = CALL_TIMEOUT;
    c
}

async fn ends_in_time<T: std::fmt::Debug>(
    what: &str,
    f: impl std::future::Future<Output = kafkawire::Result<T>>,
) {
    let t0 = Instant::now();
    let r = tokio::time::timeout(HANG, f).await;
    let r = r.unwrap_or_else(|_| {
        panic!("{what} still running after {HANG:?} (its timeout is {CALL_TIMEOUT:?})")
    });
    assert!(r.is_err(), "{what} succeeded against silent brokers: {r:?}");
    eprintln!("{what}: {} after {:?}", r.unwrap_err(), t0.elapsed());
}

#[tokio::test]
async fn admin_call_ends_within_default_api_timeout() {
    let (bootstrap, _peers) = silent_brokers().await;
    let admin = Admin::builder()
        .client_config(client_config(&bootstrap))
        .build()
        .unwrap();
    ends_in_time("describe_topics", admin.describe_topics(&["t"])).await;
}

#[tokio::test]
async fn consumer_offset_lookup_ends_within_default_api_timeout() {
    let (bootstrap, _peers) = silent_brokers().await;
    let consumer = Consumer::builder()
        .client_config(client_config(&bootstrap))
        .build()
        .unwrap();
    ends_in_time(
        "end_offsets",
        consumer.end_offsets(&[TopicPartition::new("t", 0)]),
    )
    .await;
}

#[tokio::test]
async fn init_transactions_ends_within_max_block() {
    let (bootstrap, _peers) = silent_brokers().await;
    let p = Producer::builder()
        .client_config(client_config(&bootstrap))
        .transactional_id("silent")
        .max_block(CALL_TIMEOUT)
        .build()
        .unwrap();
    ends_in_time("init_transactions", p.init_transactions()).await;
}
