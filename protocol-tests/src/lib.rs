//! Shared helpers for tests against real Apache Kafka.
//!
//! The suites are started by `scripts/test.sh`, which brings up a cluster
//! with `compose/kafka-local` and passes its address in `KAFKAWIRE_BOOTSTRAP`
//! and its name in `KAFKAWIRE_CLUSTER`. A test run without them fails loudly:
//! a broker-backed test never passes without a broker.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The cluster's bootstrap servers. Panics with instructions when unset.
pub fn bootstrap() -> String {
    match std::env::var("KAFKAWIRE_BOOTSTRAP") {
        Ok(s) if !s.trim().is_empty() => s,
        _ => panic!(
            "KAFKAWIRE_BOOTSTRAP is not set: these tests need a real Kafka cluster. \
             Run scripts/test.sh (it starts one), or start one with compose/kafka-local up \
             and export KAFKAWIRE_BOOTSTRAP=$(compose/kafka-local bootstrap)"
        ),
    }
}

/// The cluster name known to `compose/kafka-local` (e.g. `k4-3`).
pub fn cluster_name() -> String {
    std::env::var("KAFKAWIRE_CLUSTER")
        .unwrap_or_else(|_| panic!("KAFKAWIRE_CLUSTER is not set; run scripts/test.sh"))
}

/// The Kafka major version under test (`4` or `3`).
pub fn kafka_major() -> u32 {
    std::env::var("KAFKAWIRE_KAFKA")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// Runs `compose/kafka-local --name <cluster> <args>` and panics on failure.
pub fn kafka_local(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../compose/kafka-local");
    let name = cluster_name();
    let out = Command::new("bash")
        .arg(script)
        .arg("--name")
        .arg(&name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("could not run {script}: {e}"));
    if !out.status.success() {
        panic!(
            "compose/kafka-local {:?} failed ({}):\n{}\n{}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`kafka_local`] from async code (on a blocking thread). The arguments
/// are copied before the future is returned, so it can be spawned.
pub fn kafka_local_async(
    args: &[&str],
) -> impl std::future::Future<Output = String> + Send + 'static {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    async move {
        tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            kafka_local(&a)
        })
        .await
        .expect("kafka-local task")
    }
}

/// Restarts node `.0` when dropped, also when the test panics, so a failed
/// assertion leaves the cluster whole for the next test. Never panics itself.
pub struct RestartOnDrop(pub i32);

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| kafka_local(&["start", &self.0.to_string()]));
    }
}

/// A topic name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{pid}-{nanos:x}-{}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An admin client for the cluster under test.
pub fn admin() -> kafkawire::admin::Admin {
    kafkawire::admin::Admin::builder()
        .bootstrap_servers(&bootstrap())
        .client_id("protocol-tests")
        .build()
        .expect("admin client")
}

/// Creates a topic named `unique(prefix)` with `partitions` partitions and
/// replication factor 1, waits until every broker knows it, and returns its
/// name.
pub async fn create_topic(prefix: &str, partitions: i32) -> String {
    let topic = unique(prefix);
    let admin = admin();
    admin
        .create_topics(&[kafkawire::admin::NewTopic::new(&topic, partitions, 1)])
        .await
        .expect("create topic")
        .into_result()
        .expect("topic created");
    admin
        .wait_for_topics(&[&topic], Duration::from_secs(30))
        .await
        .expect("topic known to every broker");
    topic
}

/// Creates a topic named `unique(prefix)` with `partitions` partitions,
/// replication factor 3 and `min.insync.replicas=2` (the fault tests'
/// shape: one broker may die without losing an acknowledged write), waits
/// until every broker knows it, and returns its name.
pub async fn create_replicated_topic(
    admin: &kafkawire::admin::Admin,
    prefix: &str,
    partitions: i32,
) -> String {
    let topic = unique(prefix);
    admin
        .create_topics(&[kafkawire::admin::NewTopic::new(&topic, partitions, 3)
            .config("min.insync.replicas", "2")])
        .await
        .expect("create topic")
        .into_result()
        .expect("topic created");
    admin
        .wait_for_topics(&[&topic], Duration::from_secs(60))
        .await
        .expect("topic known to every broker");
    topic
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub mod checker;
pub mod interop;
pub mod proxy;
