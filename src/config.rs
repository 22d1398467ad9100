//! Settings shared by every client (producer, consumer, admin), named as in
//! the Java client, with validation that names the field and the rule.

use crate::error::{Error, Result};
use std::time::Duration;

/// Connection and retry settings common to all clients.
///
/// Defaults follow the Java client. Build one through a client's builder, or
/// directly and call [`ClientConfig::validate`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `bootstrap.servers`: `host:port` pairs used to discover the cluster.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`: sent with every request, shown in broker logs and quotas.
    pub client_id: String,
    /// `request.timeout.ms`: how long to wait for any one response.
    pub request_timeout: Duration,
    /// `default.api.timeout.ms`: bound on API calls that take no explicit timeout.
    pub default_api_timeout: Duration,
    /// `socket.connection.setup.timeout.ms`: TCP connect plus handshake.
    pub socket_connection_setup_timeout: Duration,
    /// `reconnect.backoff.ms`: first wait before reconnecting to a broker.
    pub reconnect_backoff: Duration,
    /// `reconnect.backoff.max.ms`: cap of the exponential reconnect wait.
    pub reconnect_backoff_max: Duration,
    /// `retry.backoff.ms`: first wait before retrying a failed request.
    pub retry_backoff: Duration,
    /// `retry.backoff.max.ms`: cap of the exponential retry wait.
    pub retry_backoff_max: Duration,
    /// `metadata.max.age.ms`: refresh metadata at least this often.
    pub metadata_max_age: Duration,
    /// Largest response frame accepted from a broker (kafkawire-specific;
    /// bounds memory against a broken or hostile broker).
    pub max_response_size: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            bootstrap_servers: Vec::new(),
            client_id: "kafkawire".to_string(),
            request_timeout: Duration::from_millis(30_000),
            default_api_timeout: Duration::from_millis(60_000),
            socket_connection_setup_timeout: Duration::from_millis(10_000),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_millis(1_000),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_millis(1_000),
            metadata_max_age: Duration::from_millis(300_000),
            max_response_size: 256 * 1024 * 1024,
        }
    }
}

impl ClientConfig {
    /// Parses `bootstrap.servers` from a comma-separated list.
    pub fn set_bootstrap_servers(&mut self, servers: &str) {
        self.bootstrap_servers = servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }

    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<()> {
        if self.bootstrap_servers.is_empty() {
            return Err(Error::config(
                "bootstrap.servers",
                "at least one host:port is required",
            ));
        }
        for s in &self.bootstrap_servers {
            parse_host_port(s)
                .map_err(|why| Error::config("bootstrap.servers", format!("`{s}`: {why}")))?;
        }
        if self.client_id.len() > i16::MAX as usize {
            return Err(Error::config(
                "client.id",
                "must be shorter than 32768 bytes",
            ));
        }
        for (name, d) in [
            ("request.timeout.ms", self.request_timeout),
            ("default.api.timeout.ms", self.default_api_timeout),
            (
                "socket.connection.setup.timeout.ms",
                self.socket_connection_setup_timeout,
            ),
        ] {
            if d.is_zero() {
                return Err(Error::config(name, "must be greater than 0"));
            }
        }
        if self.max_response_size < 1024 {
            return Err(Error::config(
                "max.response.size",
                "must be at least 1024 bytes",
            ));
        }
        Ok(())
    }
}

/// Splits `host:port` (IPv6 as `[::1]:9092`), checking the port.
pub fn parse_host_port(s: &str) -> std::result::Result<(&str, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']').ok_or("missing `]` after IPv6 address")?;
        let port = rest[end + 1..].strip_prefix(':').ok_or("missing `:port`")?;
        (&rest[..end], port)
    } else {
        s.rsplit_once(':').ok_or("missing `:port`")?
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` is not a valid port"))?;
    if port == 0 {
        return Err("port 0 is not valid".into());
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_is_required_and_checked() {
        let mut c = ClientConfig::default();
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("bootstrap.servers"), "{e}");
        c.set_bootstrap_servers("localhost:9092, 127.0.0.1:9093,[::1]:9094");
        assert_eq!(c.bootstrap_servers.len(), 3);
        c.validate().unwrap();
        c.set_bootstrap_servers("localhost");
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("missing `:port`"), "{e}");
        c.set_bootstrap_servers("localhost:99999");
        assert!(c.validate().is_err());
    }

    #[test]
    fn zero_timeouts_are_rejected_by_name() {
        let mut c = ClientConfig::default();
        c.set_bootstrap_servers("a:1");
        c.request_timeout = Duration::ZERO;
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("request.timeout.ms"), "{e}");
    }
}
