//! The admin client: topics (create, delete, add partitions, delete
//! records) and cluster description.
//!
//! ```no_run
//! # async fn demo() -> kafkawire::Result<()> {
//! use kafkawire::admin::{Admin, NewTopic};
//! let admin = Admin::builder().bootstrap_servers("127.0.0.1:19092").build()?;
//! admin.create_topics(&[NewTopic::new("orders", 6, 1)]).await?.into_result()?;
//! admin.wait_for_topics(&["orders"], std::time::Duration::from_secs(30)).await?;
//! let cluster = admin.describe_cluster().await?;
//! println!("{} brokers", cluster.brokers.len());
//! # Ok(()) }
//! ```

use crate::cluster::{BrokerInfo, Cluster, TopicInfo};
use crate::config::ClientConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::net::ConnKind;
use crate::net::NodeId;
use crate::protocol::messages::create_partitions::{
    CreatePartitionsRequest, CreatePartitionsTopic,
};
use crate::protocol::messages::create_topics::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use crate::protocol::messages::delete_records::{
    DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic,
};
use crate::protocol::messages::delete_topics::{DeleteTopicState, DeleteTopicsRequest};
use crate::protocol::messages::describe_cluster::DescribeClusterRequest;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Builds an [`Admin`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct AdminBuilder {
    cfg: ClientConfig,
}

impl AdminBuilder {
    /// `bootstrap.servers`, comma-separated `host:port` list.
    pub fn bootstrap_servers(mut self, servers: &str) -> Self {
        self.cfg.set_bootstrap_servers(servers);
        self
    }

    /// `client.id`.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.cfg.client_id = id.into();
        self
    }

    /// `request.timeout.ms`.
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.cfg.request_timeout = t;
        self
    }

    /// `default.api.timeout.ms`: bound on each admin call.
    pub fn default_api_timeout(mut self, t: Duration) -> Self {
        self.cfg.default_api_timeout = t;
        self
    }

    /// Replaces all common settings at once.
    pub fn client_config(mut self, cfg: ClientConfig) -> Self {
        self.cfg = cfg;
        self
    }

    /// Validates the settings and creates the client (no IO yet). Must be
    /// called inside a Tokio runtime.
    pub fn build(self) -> Result<Admin> {
        Ok(Admin {
            cluster: Cluster::new(self.cfg)?,
        })
    }
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    /// -1 for the broker's `num.partitions`.
    pub num_partitions: i32,
    /// -1 for the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Topic configs, e.g. `("min.insync.replicas", "2")`.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, num_partitions: i32, replication_factor: i16) -> Self {
        NewTopic {
            name: name.into(),
            num_partitions,
            replication_factor,
            configs: Vec::new(),
        }
    }

    /// Adds a topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// Per-topic outcome of a batched admin call.
#[derive(Debug, Clone)]
#[must_use]
pub struct TopicOutcomes(pub Vec<(String, Result<()>)>);

impl TopicOutcomes {
    /// `Ok` if every topic succeeded, else the first topic's error.
    pub fn into_result(self) -> Result<()> {
        for (_, r) in self.0 {
            r?;
        }
        Ok(())
    }

    /// The outcome for one topic.
    pub fn get(&self, topic: &str) -> Option<&Result<()>> {
        self.0.iter().find(|(t, _)| t == topic).map(|(_, r)| r)
    }
}

/// The cluster as described by DescribeCluster.
#[derive(Debug, Clone)]
pub struct ClusterDescription {
    pub cluster_id: String,
    pub controller_id: Option<NodeId>,
    pub brokers: Vec<BrokerInfo>,
}

/// The admin client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Arc<Cluster>,
}

impl Admin {
    pub fn builder() -> AdminBuilder {
        AdminBuilder::default()
    }

    /// The shared cluster state (metadata, connections).
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.cluster.config().default_api_timeout
    }

    /// Runs `op` against any broker, retrying retriable failures (with
    /// `retry.backoff.ms`) until `default.api.timeout.ms`.
    async fn with_retries<T, F, Fut>(&self, api: &'static str, mut op: F) -> Result<T>
    where
        F: FnMut(crate::net::BrokerConnection) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let cfg = self.cluster.config();
        let deadline = self.deadline();
        let mut backoff =
            crate::net::backoff::Backoff::new(cfg.retry_backoff, cfg.retry_backoff_max);
        // The last error a broker (or a connection attempt) gave: reported
        // when the deadline ends an attempt mid-way, so the caller learns
        // what was wrong (e.g. "connection refused by 127.0.0.1:1").
        let mut last: Option<Error> = None;
        loop {
            let attempt = async {
                match self.cluster.any_connection().await {
                    Ok(conn) => op(conn).await,
                    Err(e) => Err(e),
                }
            };
            // Bounded by the deadline: finding a connection may try every
            // broker in turn, each up to the connection setup timeout, which
            // brokers that accept but never answer stretch far past it.
            let r = match tokio::time::timeout_at(deadline.into(), attempt).await {
                Ok(r) => r,
                Err(_) => Err(match last.take() {
                    Some(e) => e,
                    None => Error::timeout(format!("{api}: no answer before the deadline")),
                }),
            };
            match r {
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tracing::debug!(api, error = %e, "retrying");
                    last = Some(e);
                    let wait = backoff
                        .on_failure()
                        .min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(wait).await;
                }
                Err(e) if e.is_retriable() => {
                    return Err(Error::timeout(format!(
                        "{api} did not succeed within default.api.timeout.ms; last error: {e}"
                    ))
                    .with_api(api))
                }
                r => return r,
            }
        }
    }

    /// Sends a controller request (topic creation, deletion, partitions)
    /// with [`with_retries`](Self::with_retries), retrying the whole request
    /// when any of the codes `error_codes` picks out of the response is
    /// NOT_CONTROLLER.
    async fn controller_call<R, F, I>(
        &self,
        api: &'static str,
        req: &R,
        error_codes: F,
    ) -> Result<R::Response>
    where
        R: crate::protocol::messages::Request,
        F: Fn(&R::Response) -> I,
        I: IntoIterator<Item = i16>,
    {
        let error_codes = &error_codes;
        self.with_retries(api, |conn| async move {
            let resp = conn.send(req).await?;
            retry_if_controller_moved(api, error_codes(&resp))?;
            Ok(resp)
        })
        .await
    }

    /// Creates topics. The call succeeds once the controller accepted the
    /// request; per-topic results tell which topics were created (an existing
    /// topic is TOPIC_ALREADY_EXISTS). Metadata may lag: see
    /// [`Admin::wait_for_topics`].
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<TopicOutcomes> {
        let timeout_ms = self
            .cluster
            .config()
            .request_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32;
        let req = CreateTopicsRequest {
            topics: topics
                .iter()
                .map(|t| CreatableTopic {
                    name: t.name.clone(),
                    num_partitions: t.num_partitions,
                    replication_factor: t.replication_factor,
                    configs: t
                        .configs
                        .iter()
                        .map(|(k, v)| CreatableTopicConfig {
                            name: k.clone(),
                            value: Some(v.clone()),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            timeout_ms,
            validate_only: false,
            ..Default::default()
        };
        let resp = self
            .controller_call("CreateTopics", &req, |r| {
                r.topics.iter().map(|t| t.error_code).collect::<Vec<_>>()
            })
            .await?;
        Ok(topic_outcomes(
            "CreateTopics",
            "topic not created",
            resp.topics
                .into_iter()
                .map(|t| (t.name, t.error_code, t.error_message)),
        ))
    }

    /// Deletes topics by name.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<TopicOutcomes> {
        let timeout_ms = self
            .cluster
            .config()
            .request_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32;
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let resp = self
            .with_retries("DeleteTopics", |conn| {
                let names = names.clone();
                async move {
                    let v = conn.version_of::<DeleteTopicsRequest>()?;
                    let req = if v >= 6 {
                        DeleteTopicsRequest {
                            topics: names
                                .iter()
                                .map(|n| DeleteTopicState {
                                    name: Some(n.clone()),
                                    ..Default::default()
                                })
                                .collect(),
                            timeout_ms,
                            ..Default::default()
                        }
                    } else {
                        DeleteTopicsRequest {
                            topic_names: names.clone(),
                            timeout_ms,
                            ..Default::default()
                        }
                    };
                    let resp = conn.send(&req).await?;
                    retry_if_controller_moved(
                        "DeleteTopics",
                        resp.responses.iter().map(|t| t.error_code),
                    )?;
                    Ok(resp)
                }
            })
            .await?;
        Ok(topic_outcomes(
            "DeleteTopics",
            "topic not deleted",
            resp.responses
                .into_iter()
                .map(|t| (t.name.unwrap_or_default(), t.error_code, t.error_message)),
        ))
    }

    /// Raises topics' partition counts (CreatePartitions): each pair is a
    /// topic and its new total number of partitions, which must be larger
    /// than the current one (INVALID_PARTITIONS otherwise). Per-topic
    /// results as for [`create_topics`](Self::create_topics).
    pub async fn create_partitions(&self, topics: &[(&str, i32)]) -> Result<TopicOutcomes> {
        let timeout_ms = self
            .cluster
            .config()
            .request_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32;
        let req = CreatePartitionsRequest {
            topics: topics
                .iter()
                .map(|(name, count)| CreatePartitionsTopic {
                    name: name.to_string(),
                    count: *count,
                    assignments: None,
                    ..Default::default()
                })
                .collect(),
            timeout_ms,
            validate_only: false,
            ..Default::default()
        };
        let resp = self
            .controller_call("CreatePartitions", &req, |r| {
                r.results.iter().map(|t| t.error_code).collect::<Vec<_>>()
            })
            .await?;
        Ok(topic_outcomes(
            "CreatePartitions",
            "partitions not created",
            resp.results
                .into_iter()
                .map(|t| (t.name, t.error_code, t.error_message)),
        ))
    }

    /// Deletes the records of `topic`-`partition` before `offset` (-1: the
    /// high watermark) by advancing the log start offset (DeleteRecords, sent
    /// to the partition leader). Returns the new low watermark.
    pub async fn delete_records(&self, topic: &str, partition: i32, offset: i64) -> Result<i64> {
        let timeout_ms = self
            .cluster
            .config()
            .request_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32;
        let names = vec![topic.to_string()];
        let req = DeleteRecordsRequest {
            topics: vec![DeleteRecordsTopic {
                name: topic.to_string(),
                partitions: vec![DeleteRecordsPartition {
                    partition_index: partition,
                    offset,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            timeout_ms,
            ..Default::default()
        };
        self.with_retries("DeleteRecords", |_| {
            let req = req.clone();
            let names = names.clone();
            async move {
                let snap = self.cluster.refresh(Some(&names)).await?;
                let leader = snap.leader_of(topic, partition).ok_or_else(|| {
                    Error::broker(ErrorCode::LEADER_NOT_AVAILABLE, "no leader")
                        .with_api("DeleteRecords")
                        .with_partition(topic, partition)
                })?;
                let conn = self.cluster.connection(leader, ConnKind::Control).await?;
                let resp = conn.send(&req).await?;
                let p = resp
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .find(|p| p.partition_index == partition)
                    .ok_or_else(|| {
                        Error::protocol("DeleteRecords response without the partition")
                            .with_api("DeleteRecords")
                    })?;
                let code = ErrorCode(p.error_code);
                if !code.is_ok() {
                    return Err(Error::broker(code, "records not deleted")
                        .with_api("DeleteRecords")
                        .with_partition(topic, partition));
                }
                Ok(p.low_watermark)
            }
        })
        .await
    }

    /// Describes the cluster: id, controller and live brokers.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        self.with_retries("DescribeCluster", |conn| async move {
            let resp = conn.send(&DescribeClusterRequest::default()).await?;
            let code = ErrorCode(resp.error_code);
            if !code.is_ok() {
                return Err(Error::broker(code, resp.error_message.unwrap_or_default())
                    .with_api("DescribeCluster"));
            }
            let mut brokers: Vec<BrokerInfo> = resp
                .brokers
                .into_iter()
                .map(|b| BrokerInfo {
                    node_id: b.broker_id,
                    host: b.host,
                    port: b.port,
                    rack: b.rack,
                })
                .collect();
            brokers.sort_by_key(|b| b.node_id);
            Ok(ClusterDescription {
                cluster_id: resp.cluster_id,
                controller_id: (resp.controller_id >= 0).then_some(resp.controller_id),
                brokers,
            })
        })
        .await
    }

    /// Describes topics from fresh metadata: partitions, leaders, replicas.
    /// A topic that does not exist is an UNKNOWN_TOPIC_OR_PARTITION error.
    pub async fn describe_topics(&self, names: &[&str]) -> Result<Vec<Arc<TopicInfo>>> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let snap = self
            .with_retries("Metadata", |_| self.cluster.refresh(Some(&names)))
            .await?;
        names
            .iter()
            .map(|n| match snap.topic(n) {
                Some(t) => Ok(t.clone()),
                None => {
                    let code = snap
                        .topic_errors
                        .get(n)
                        .copied()
                        .unwrap_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
                    Err(Error::broker(code, "cannot describe topic")
                        .with_api("Metadata")
                        .with_topic(n.clone()))
                }
            })
            .collect()
    }

    /// Names of all topics (internal ones included).
    pub async fn list_topics(&self) -> Result<Vec<String>> {
        let snap = self
            .with_retries("Metadata", |_| self.cluster.refresh(None))
            .await?;
        let mut v: Vec<String> = snap.topics.keys().cloned().collect();
        v.sort();
        Ok(v)
    }

    /// Waits until metadata shows every topic with a leader for each
    /// partition, or `timeout` passes.
    pub async fn wait_for_topics(&self, names: &[&str], timeout: Duration) -> Result<()> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        self.cluster
            .metadata_for(&names, Instant::now() + timeout)
            .await
            .map(|_| ())
    }
}

/// NOT_CONTROLLER for any topic of a controller request: the controller
/// moved, so the whole request is retried (a retriable error).
fn retry_if_controller_moved(
    api: &'static str,
    codes: impl IntoIterator<Item = i16>,
) -> Result<()> {
    match codes
        .into_iter()
        .map(ErrorCode)
        .find(|c| *c == ErrorCode::NOT_CONTROLLER)
    {
        Some(code) => Err(Error::broker(code, "controller moved").with_api(api)),
        None => Ok(()),
    }
}

/// Per-topic results of a topic call: `Ok` or the broker's error, named
/// after the topic (with `missing` when the broker sent no message).
fn topic_outcomes(
    api: &'static str,
    missing: &str,
    results: impl Iterator<Item = (String, i16, Option<String>)>,
) -> TopicOutcomes {
    TopicOutcomes(
        results
            .map(|(name, code, message)| {
                let code = ErrorCode(code);
                let r = if code.is_ok() {
                    Ok(())
                } else {
                    Err(
                        Error::broker(code, message.unwrap_or_else(|| missing.to_string()))
                            .with_api(api)
                            .with_topic(name.clone()),
                    )
                };
                (name, r)
            })
            .collect(),
    )
}
