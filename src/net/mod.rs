//! Networking: broker connections, the connection pool and reconnect backoff.

pub mod backoff;
pub mod conn;
