//! Networking: broker connections, version negotiation on connect, the
//! connection pool and reconnect backoff.

pub mod backoff;
pub mod broker;
pub mod conn;
pub mod pool;

pub use broker::{BrokerConnection, NodeId};
pub use pool::{ConnKind, Endpoint, Pool};
