//! FindCoordinator for consumer groups and transactional ids.
//!
//! Versions 4+ take a batch of keys and answer per key; older versions take
//! one key. Both are hidden behind [`find`], which looks up one key.

use crate::error::{Error, ErrorCode, Result};
use crate::net::{BrokerConnection, NodeId};
use crate::protocol::messages::find_coordinator::FindCoordinatorRequest;

/// What kind of coordinator to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoordinatorType {
    /// The group coordinator of a consumer group.
    Group,
    /// The transaction coordinator of a `transactional.id`.
    Transaction,
}

impl CoordinatorType {
    fn key_type(self) -> i8 {
        match self {
            CoordinatorType::Group => 0,
            CoordinatorType::Transaction => 1,
        }
    }
}

/// A coordinator as answered by FindCoordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub node_id: NodeId,
    pub address: String,
}

/// Asks `conn`'s broker for the coordinator of `key`. Broker errors come
/// back as typed errors (COORDINATOR_NOT_AVAILABLE and
/// COORDINATOR_LOAD_IN_PROGRESS are retriable).
pub async fn find(conn: &BrokerConnection, ty: CoordinatorType, key: &str) -> Result<Found> {
    let version = conn.version_of::<FindCoordinatorRequest>()?;
    let batched = version >= 4;
    let req = FindCoordinatorRequest {
        key: if batched {
            String::new()
        } else {
            key.to_string()
        },
        key_type: ty.key_type(),
        coordinator_keys: if batched {
            vec![key.to_string()]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let resp = conn.send(&req).await?;
    let (code, msg, node, host, port) = if batched {
        let c = resp
            .coordinators
            .iter()
            .find(|c| c.key == key)
            .ok_or_else(|| {
                Error::protocol(format!(
                    "FindCoordinator response did not answer for key `{key}`"
                ))
                .with_api("FindCoordinator")
            })?;
        (
            c.error_code,
            c.error_message.clone(),
            c.node_id,
            c.host.clone(),
            c.port,
        )
    } else {
        (
            resp.error_code,
            resp.error_message.clone(),
            resp.node_id,
            resp.host.clone(),
            resp.port,
        )
    };
    let code = ErrorCode(code);
    if !code.is_ok() {
        return Err(Error::broker(
            code,
            msg.unwrap_or_else(|| format!("no coordinator for `{key}`")),
        )
        .with_api("FindCoordinator")
        .with_broker(conn.label()));
    }
    if node < 0 || port <= 0 || port > u16::MAX as i32 {
        return Err(Error::protocol(format!(
            "FindCoordinator answered node {node} at port {port}"
        ))
        .with_api("FindCoordinator"));
    }
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(Found {
        node_id: node,
        address,
    })
}
