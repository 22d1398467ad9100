//! The connection pool: at most one live connection per (broker, purpose).
//!
//! Purposes ([`ConnKind`]) get separate connections, so that a long-polling
//! Fetch or a JoinGroup that waits for a rebalance never delays a Produce or
//! a metadata request queued behind it on the same socket.
//!
//! Reconnects follow `reconnect.backoff.ms` / `reconnect.backoff.max.ms`: after
//! a failed attempt to a broker, the next attempt to that broker waits an
//! exponentially growing, jittered delay; a success resets it. Bootstrap
//! addresses are used when no broker from metadata is reachable (or before
//! any metadata is known).

use super::backoff::BackoffTimer;
use super::broker::{BrokerConnection, NodeId};
use super::conn::ConnectionConfig;
use crate::config::ClientConfig;
use crate::error::{Error, ErrorClass, ErrorKind, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a connection is used for; each gets its own socket per broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnKind {
    /// Metadata, coordinator lookup, admin and transaction-coordinator calls.
    Control,
    /// Produce requests.
    Produce,
    /// Fetch and ListOffsets.
    Fetch,
    /// Group membership and offsets (JoinGroup, Heartbeat, OffsetCommit, ...).
    Group,
}

/// Where a connection goes: a known broker, or a bootstrap address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A broker by node id; its address comes from metadata.
    Node(NodeId),
    /// The n-th entry of `bootstrap.servers`.
    Bootstrap(usize),
}

struct Slot {
    /// Serialises connection attempts for this slot: concurrent callers wait
    /// for the one attempt in progress instead of opening their own.
    state: tokio::sync::Mutex<SlotState>,
}

struct SlotState {
    conn: Option<BrokerConnection>,
    /// Address the live connection (if any) was made to.
    addr: Option<String>,
    backoff: BackoffTimer,
}

/// Shared, cloneable pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    conn_cfg: ConnectionConfig,
    request_timeout: Duration,
    reconnect_backoff: (Duration, Duration),
    bootstrap: Vec<String>,
    /// Broker addresses from the latest metadata.
    addresses: Mutex<HashMap<NodeId, String>>,
    slots: Mutex<HashMap<(Endpoint, ConnKind), Arc<Slot>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("bootstrap", &self.inner.bootstrap)
            .finish()
    }
}

impl Pool {
    /// A pool for the cluster described by `cfg` (which must be validated).
    pub fn new(cfg: &ClientConfig) -> Pool {
        let conn_cfg = ConnectionConfig {
            client_id: Some(Arc::from(cfg.client_id.as_str())),
            setup_timeout: cfg.socket_connection_setup_timeout,
            max_response_size: cfg.max_response_size,
            ..ConnectionConfig::default()
        };
        Pool {
            inner: Arc::new(PoolInner {
                conn_cfg,
                request_timeout: cfg.request_timeout,
                reconnect_backoff: (cfg.reconnect_backoff, cfg.reconnect_backoff_max),
                bootstrap: cfg.bootstrap_servers.clone(),
                addresses: Mutex::new(HashMap::new()),
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Replaces the known broker addresses (from a metadata response).
    /// Connections to a broker whose address changed are replaced lazily.
    pub fn set_addresses(&self, addrs: impl IntoIterator<Item = (NodeId, String)>) {
        let mut a = lock(&self.inner.addresses);
        a.clear();
        a.extend(addrs);
    }

    /// Adds or updates one broker's address (e.g. a coordinator found by
    /// FindCoordinator before metadata named it).
    pub fn add_address(&self, node: NodeId, addr: String) {
        lock(&self.inner.addresses).insert(node, addr);
    }

    /// The address of `node`, if metadata has named it.
    pub fn address(&self, node: NodeId) -> Option<String> {
        lock(&self.inner.addresses).get(&node).cloned()
    }

    /// Known broker ids, in ascending order.
    pub fn known_nodes(&self) -> Vec<NodeId> {
        let mut v: Vec<_> = lock(&self.inner.addresses).keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Number of bootstrap addresses.
    pub fn bootstrap_len(&self) -> usize {
        self.inner.bootstrap.len()
    }

    fn slot(&self, ep: &Endpoint, kind: ConnKind) -> Arc<Slot> {
        let mut slots = lock(&self.inner.slots);
        slots
            .entry((ep.clone(), kind))
            .or_insert_with(|| {
                let (lo, hi) = self.inner.reconnect_backoff;
                Arc::new(Slot {
                    state: tokio::sync::Mutex::new(SlotState {
                        conn: None,
                        addr: None,
                        backoff: BackoffTimer::new(lo, hi),
                    }),
                })
            })
            .clone()
    }

    fn resolve(&self, ep: &Endpoint) -> Result<(String, String)> {
        match ep {
            Endpoint::Node(id) => match self.address(*id) {
                Some(a) => Ok((a.clone(), format!("{id} ({a})"))),
                // Retriable: a broker that was just killed drops out of
                // metadata while FindCoordinator may still name it, and a
                // refresh may race an address learnt from FindCoordinator.
                // Callers retry within their deadlines (as Java treats an
                // unknown coordinator node).
                None => Err(Error::new(
                    ErrorKind::NotFound,
                    format!("broker {id} is not in the cluster metadata"),
                )
                .with_class(ErrorClass::Retriable)),
            },
            Endpoint::Bootstrap(i) => match self.inner.bootstrap.get(*i) {
                Some(a) => Ok((a.clone(), format!("bootstrap {a}"))),
                None => Err(Error::new(
                    ErrorKind::NotFound,
                    format!("no bootstrap server #{i}"),
                )),
            },
        }
    }

    /// A live connection to `node` for `kind`, connecting (after any pending
    /// reconnect backoff) if needed.
    pub async fn get(&self, node: NodeId, kind: ConnKind) -> Result<BrokerConnection> {
        self.get_endpoint(Endpoint::Node(node), kind).await
    }

    /// As [`Pool::get`] for any endpoint.
    pub async fn get_endpoint(&self, ep: Endpoint, kind: ConnKind) -> Result<BrokerConnection> {
        let (addr, label) = self.resolve(&ep)?;
        let slot = self.slot(&ep, kind);
        let mut st = slot.state.lock().await;
        if let Some(c) = &st.conn {
            if !c.is_closed() && st.addr.as_deref() == Some(addr.as_str()) {
                return Ok(c.clone());
            }
            st.conn = None;
        }
        if let Some(t) = st.backoff.not_before() {
            tokio::time::sleep_until(t.into()).await;
        }
        match BrokerConnection::connect(
            &addr,
            label,
            &self.inner.conn_cfg,
            self.inner.request_timeout,
        )
        .await
        {
            Ok(c) => {
                st.backoff.succeed();
                st.conn = Some(c.clone());
                st.addr = Some(addr);
                Ok(c)
            }
            Err(e) => {
                let wait = st.backoff.fail(Instant::now());
                tracing::debug!(endpoint = ?ep, error = %e, ?wait, "connection attempt failed");
                Err(e)
            }
        }
    }

    /// Whether `ep` is waiting out a reconnect backoff right now.
    async fn backing_off(&self, ep: &Endpoint, kind: ConnKind) -> bool {
        let slot = self.slot(ep, kind);
        let st = slot.state.lock().await;
        st.backoff.not_before().is_some_and(|t| t > Instant::now())
    }

    /// A connection to any reachable broker: known brokers first (those not
    /// backing off first), then the bootstrap addresses. `start` rotates the
    /// order so load spreads. Fails with the last error if none answers.
    pub async fn any(&self, kind: ConnKind, start: usize) -> Result<BrokerConnection> {
        let mut eps: Vec<Endpoint> = self.known_nodes().into_iter().map(Endpoint::Node).collect();
        let n = eps.len();
        if n > 0 {
            eps.rotate_left(start % n);
        }
        let b = self.inner.bootstrap.len();
        let mut boots: Vec<Endpoint> = (0..b).map(Endpoint::Bootstrap).collect();
        if b > 0 {
            boots.rotate_left(start % b);
        }
        eps.extend(boots);
        // Those not in backoff first, keeping the rotation otherwise.
        let mut ready = Vec::new();
        let mut waiting = Vec::new();
        for ep in eps {
            if self.backing_off(&ep, kind).await {
                waiting.push(ep);
            } else {
                ready.push(ep);
            }
        }
        let mut last_err = None;
        for ep in ready.into_iter().chain(waiting) {
            match self.get_endpoint(ep, kind).await {
                Ok(c) => return Ok(c),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::new(ErrorKind::Io, "no broker address is known")))
    }

    /// Closes every connection (used when a client shuts down).
    pub async fn close_all(&self) {
        let slots: Vec<_> = lock(&self.inner.slots).values().cloned().collect();
        for s in slots {
            let mut st = s.state.lock().await;
            if let Some(c) = st.conn.take() {
                c.close(Error::new(ErrorKind::Closed, "client closed"));
            }
        }
    }
}

/// Locks a std mutex, recovering from poisoning (the guarded maps stay
/// consistent because no code path panics while holding them).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_node_missing_from_metadata_is_a_retriable_error() {
        let pool = Pool::new(&ClientConfig::default());
        pool.set_addresses([(1, "127.0.0.1:1".to_string())]);
        let e = pool.get(3, ConnKind::Control).await.unwrap_err();
        assert_eq!(*e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.is_retriable(), "{e}");
    }
}
