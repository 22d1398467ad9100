//! Cluster state: the metadata cache, its refresh, and coordinator lookup.
//!
//! [`Cluster`] owns the connection [`Pool`], the current
//! [`MetadataSnapshot`] (replaced wholesale on refresh, read without
//! locks held across awaits) and the coordinator cache. Refreshes happen on
//! demand (`request_update` after NOT_LEADER_OR_FOLLOWER and friends, or when
//! a topic is missing) and at least every `metadata.max.age.ms` for the
//! topics in use, from a background task that ends with the `Cluster`.

pub mod coordinator;
pub mod metadata;

pub use coordinator::CoordinatorType;
pub use metadata::{BrokerInfo, MetadataSnapshot, PartitionInfo, RefreshPolicy, TopicInfo};

use crate::config::ClientConfig;
use crate::error::{Error, ErrorCode, ErrorKind, Result};
use crate::net::backoff::Backoff;
use crate::net::pool::lock;
use crate::net::{BrokerConnection, ConnKind, NodeId, Pool};
use crate::protocol::messages::metadata::{MetadataRequest, MetadataRequestTopic};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

/// Shared cluster state for one client.
pub struct Cluster {
    cfg: ClientConfig,
    pool: Pool,
    snapshot: RwLock<Arc<MetadataSnapshot>>,
    policy: Mutex<RefreshPolicy>,
    /// Single-flight: one metadata request at a time per client.
    refresh_lock: tokio::sync::Mutex<()>,
    /// Topics this client uses; periodic refreshes ask for these.
    tracked: Mutex<BTreeSet<String>>,
    coordinators: Mutex<HashMap<(CoordinatorType, String), NodeId>>,
    /// Rotates the broker chosen for metadata requests.
    next_broker: AtomicUsize,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("bootstrap", &self.cfg.bootstrap_servers)
            .finish()
    }
}

impl Cluster {
    /// Creates the cluster state and starts its periodic refresh task. Does
    /// no IO itself. Must be called inside a Tokio runtime.
    pub fn new(cfg: ClientConfig) -> Result<Arc<Cluster>> {
        cfg.validate()?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::illegal_state("kafkawire clients must be created inside a Tokio runtime")
        })?;
        let cluster = Arc::new(Cluster {
            pool: Pool::new(&cfg),
            snapshot: RwLock::new(Arc::new(MetadataSnapshot::default())),
            policy: Mutex::new(RefreshPolicy::new(
                cfg.metadata_max_age,
                cfg.retry_backoff,
                cfg.retry_backoff_max,
            )),
            refresh_lock: tokio::sync::Mutex::new(()),
            tracked: Mutex::new(BTreeSet::new()),
            coordinators: Mutex::new(HashMap::new()),
            next_broker: AtomicUsize::new(0),
            cfg,
        });
        rt.spawn(periodic_refresh(Arc::downgrade(&cluster)));
        Ok(cluster)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The current metadata.
    pub fn snapshot(&self) -> Arc<MetadataSnapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Marks metadata stale; the next refresh check runs at once.
    pub fn request_update(&self) {
        lock(&self.policy).request_update();
    }

    /// Adds topics to those refreshed periodically.
    pub fn track_topics<'a>(&self, topics: impl IntoIterator<Item = &'a str>) {
        let mut t = lock(&self.tracked);
        for name in topics {
            if !t.contains(name) {
                t.insert(name.to_string());
            }
        }
    }

    /// A connection to any broker for control requests.
    pub async fn any_connection(&self) -> Result<BrokerConnection> {
        let start = self.next_broker.fetch_add(1, Ordering::Relaxed);
        self.pool.any(ConnKind::Control, start).await
    }

    /// A connection to `node` for `kind`.
    pub async fn connection(&self, node: NodeId, kind: ConnKind) -> Result<BrokerConnection> {
        self.pool.get(node, kind).await
    }

    /// Asks one broker for metadata. `topics`: `None` for all topics,
    /// `Some(&[])` for brokers only. Returns the merged snapshot.
    pub async fn refresh(&self, topics: Option<&[String]>) -> Result<Arc<MetadataSnapshot>> {
        let _single = self.refresh_lock.lock().await;
        let result = self.refresh_once(topics).await;
        let now = Instant::now();
        match &result {
            Ok(_) => lock(&self.policy).on_success(now),
            Err(_) => {
                lock(&self.policy).on_failure(now);
            }
        }
        result
    }

    async fn refresh_once(&self, topics: Option<&[String]>) -> Result<Arc<MetadataSnapshot>> {
        let conn = self.any_connection().await?;
        let req = MetadataRequest {
            topics: topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic {
                        name: Some(t.clone()),
                        ..Default::default()
                    })
                    .collect()
            }),
            allow_auto_topic_creation: false,
            ..Default::default()
        };
        let resp = conn.send(&req).await?;
        if resp.brokers.is_empty() {
            return Err(Error::protocol("metadata response named no brokers")
                .with_api("Metadata")
                .with_broker(conn.label()));
        }
        let next = {
            let mut guard = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
            let next = Arc::new(guard.merged(&resp, topics));
            *guard = next.clone();
            next
        };
        self.pool
            .set_addresses(next.brokers.values().map(|b| (b.node_id, b.address())));
        Ok(next)
    }

    /// Metadata in which every topic of `topics` is known and every one of
    /// its partitions has a leader, refreshing with backoff until `deadline`.
    ///
    /// A topic the cluster does not have fails after the deadline with an
    /// UNKNOWN_TOPIC_OR_PARTITION error naming it (as Java's producer does
    /// after `max.block.ms`); authorization failures fail at once.
    pub async fn metadata_for(
        &self,
        topics: &[String],
        deadline: Instant,
    ) -> Result<Arc<MetadataSnapshot>> {
        self.track_topics(topics.iter().map(String::as_str));
        let mut backoff = Backoff::new(self.cfg.retry_backoff, self.cfg.retry_backoff_max);
        let mut last_err: Option<Error> = None;
        loop {
            let snap = self.snapshot();
            let missing: Vec<String> = topics
                .iter()
                .filter(|t| match snap.topic(t) {
                    Some(info) => {
                        info.partitions.is_empty()
                            || info.partitions.iter().any(|p| p.leader.is_none())
                    }
                    None => true,
                })
                .cloned()
                .collect();
            if missing.is_empty() {
                return Ok(snap);
            }
            for t in &missing {
                if let Some(code) = snap.topic_errors.get(t) {
                    if *code == ErrorCode::TOPIC_AUTHORIZATION_FAILED
                        || *code == ErrorCode::INVALID_TOPIC_EXCEPTION
                    {
                        return Err(Error::broker(*code, "metadata refused the topic")
                            .with_api("Metadata")
                            .with_topic(t.clone()));
                    }
                }
            }
            if Instant::now() >= deadline {
                let code = missing
                    .iter()
                    .find_map(|t| snap.topic_errors.get(t).copied());
                let msg = format!("topics {missing:?} not present in metadata (or without leaders) before the deadline");
                return Err(match (code, last_err) {
                    (Some(c), _) => Error::broker(c, msg).with_api("Metadata"),
                    (None, Some(e)) => Error::timeout(format!("{msg}; last error: {e}")),
                    (None, None) => Error::timeout(msg),
                });
            }
            // One refresh may try every known and bootstrap broker, each up
            // to the connection setup timeout: bound it by the caller's
            // deadline, or silent brokers stretch a call far past it.
            let refreshed = match tokio::time::timeout_at(
                deadline.into(),
                self.refresh(Some(&missing)),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(Error::timeout(
                    "metadata refresh did not finish before the deadline",
                )),
            };
            match refreshed {
                Ok(_) => {
                    // Present now? Loop re-checks; otherwise back off.
                    let s = self.snapshot();
                    if missing.iter().all(|t| {
                        s.topic(t)
                            .is_some_and(|i| i.partitions.iter().all(|p| p.leader.is_some()))
                    }) {
                        continue;
                    }
                }
                Err(e) => last_err = Some(e),
            }
            let wait = backoff.on_failure();
            let now = Instant::now();
            tokio::time::sleep(wait.min(deadline.saturating_duration_since(now))).await;
        }
    }

    /// The leader of `topic`/`partition`, refreshing if unknown.
    pub async fn leader_for(
        &self,
        topic: &str,
        partition: i32,
        deadline: Instant,
    ) -> Result<NodeId> {
        let snap = self.metadata_for(&[topic.to_string()], deadline).await?;
        let info = snap
            .topic(topic)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "topic vanished").with_topic(topic))?;
        let p = info.partition(partition).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("topic has {} partitions", info.partitions.len()),
            )
            .with_partition(topic, partition)
        })?;
        p.leader.ok_or_else(|| {
            Error::broker(ErrorCode::LEADER_NOT_AVAILABLE, "no leader")
                .with_partition(topic, partition)
        })
    }

    /// The coordinator for `key`, from cache or by FindCoordinator, retrying
    /// retriable errors until `deadline`.
    pub async fn coordinator(
        &self,
        ty: CoordinatorType,
        key: &str,
        deadline: Instant,
    ) -> Result<(NodeId, BrokerConnection)> {
        let cached = lock(&self.coordinators)
            .get(&(ty, key.to_string()))
            .copied();
        if let Some(node) = cached {
            match self.pool.get(node, ConnKind::Control).await {
                Ok(c) => return Ok((node, c)),
                Err(_) => self.invalidate_coordinator(ty, key),
            }
        }
        let mut backoff = Backoff::new(self.cfg.retry_backoff, self.cfg.retry_backoff_max);
        loop {
            let attempt = async {
                let conn = self.any_connection().await?;
                let found = coordinator::find(&conn, ty, key).await?;
                self.pool.add_address(found.node_id, found.address.clone());
                let c = self.pool.get(found.node_id, ConnKind::Control).await?;
                Ok::<_, Error>((found.node_id, c))
            };
            // Bounded by the deadline: trying every broker in turn can take
            // far longer when they accept connections but never answer.
            let attempt = match tokio::time::timeout_at(deadline.into(), attempt).await {
                Ok(r) => r,
                Err(_) => Err(Error::timeout(format!(
                    "{ty:?} coordinator lookup did not finish before the deadline"
                ))),
            };
            match attempt {
                Ok((node, c)) => {
                    lock(&self.coordinators).insert((ty, key.to_string()), node);
                    return Ok((node, c));
                }
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tracing::debug!(error = %e, ?ty, key, "coordinator lookup failed, retrying");
                    let wait = backoff.on_failure();
                    tokio::time::sleep(
                        wait.min(deadline.saturating_duration_since(Instant::now())),
                    )
                    .await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Forgets the cached coordinator for `key` (after NOT_COORDINATOR or
    /// COORDINATOR_NOT_AVAILABLE, or when it is unreachable).
    pub fn invalidate_coordinator(&self, ty: CoordinatorType, key: &str) {
        lock(&self.coordinators).remove(&(ty, key.to_string()));
    }

    /// The cached coordinator for `key`, if any.
    pub fn cached_coordinator(&self, ty: CoordinatorType, key: &str) -> Option<NodeId> {
        lock(&self.coordinators)
            .get(&(ty, key.to_string()))
            .copied()
    }
}

async fn periodic_refresh(cluster: Weak<Cluster>) {
    loop {
        let wait = match cluster.upgrade() {
            Some(c) => {
                let wait = lock(&c.policy).time_to_next(Instant::now());
                if wait.is_zero() {
                    let topics: Vec<String> = lock(&c.tracked).iter().cloned().collect();
                    if let Err(e) = c.refresh(Some(&topics)).await {
                        tracing::debug!(error = %e, "periodic metadata refresh failed");
                    }
                    continue;
                }
                wait
            }
            None => return,
        };
        // Wake at least every second to notice on-demand requests and drop.
        tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
    }
}
