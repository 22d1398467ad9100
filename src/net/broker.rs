//! A negotiated broker connection: a [`Connection`] plus the API versions
//! agreed with that broker, with typed `send`.
//!
//! On connect the client sends ApiVersions at the highest version it
//! implements. A broker that does not know that version answers with
//! UNSUPPORTED_VERSION and (per KIP-511) a version-0 body listing what it
//! does support; the client then retries once at the broker's highest
//! ApiVersions version (0 if it names none).

use super::conn::{Connection, ConnectionConfig};
use crate::error::{Error, ErrorCode, ErrorKind, Result};
use crate::protocol::frame;
use crate::protocol::messages::api_versions::ApiVersionsRequest;
use crate::protocol::messages::{ApiKey, Message, Request};
use crate::protocol::versions::ApiVersionTable;
use crate::protocol::wire::Reader;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Identifies a broker in the cluster (`node.id`).
pub type NodeId = i32;

/// A connection to one broker whose API versions are known.
#[derive(Clone)]
pub struct BrokerConnection {
    conn: Connection,
    versions: Arc<ApiVersionTable>,
    client_id: Option<Arc<str>>,
    request_timeout: Duration,
}

impl fmt::Debug for BrokerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConnection")
            .field("broker", &self.conn.label())
            .finish()
    }
}

/// The name and version this client reports in ApiVersions (KIP-511).
pub const SOFTWARE_NAME: &str = "kafkawire";
/// See [`SOFTWARE_NAME`].
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

impl BrokerConnection {
    /// Connects to `addr` and negotiates API versions, all within
    /// `cfg.setup_timeout`.
    pub async fn connect(
        addr: &str,
        label: String,
        cfg: &ConnectionConfig,
        request_timeout: Duration,
    ) -> Result<BrokerConnection> {
        let setup = cfg.setup_timeout;
        let fut = async {
            let conn = Connection::open(addr, label.clone(), cfg).await?;
            let versions = handshake(&conn, cfg.client_id.as_deref(), setup)
                .await
                .inspect_err(|e| {
                    conn.close(e.clone());
                })?;
            Ok::<_, Error>(BrokerConnection {
                conn,
                versions: Arc::new(versions),
                client_id: cfg.client_id.clone(),
                request_timeout,
            })
        };
        match tokio::time::timeout(setup, fut).await {
            Ok(r) => r,
            Err(_) => Err(
                Error::timeout(format!("connection setup took longer than {setup:?}"))
                    .with_broker(label),
            ),
        }
    }

    /// The broker this connection talks to, for messages.
    pub fn label(&self) -> &str {
        self.conn.label()
    }

    /// Whether the connection has failed and must be replaced.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// Closes the connection; pending requests fail with `reason`.
    pub fn close(&self, reason: Error) {
        self.conn.close(reason)
    }

    /// The versions negotiated with this broker.
    pub fn versions(&self) -> &ApiVersionTable {
        &self.versions
    }

    /// The version `R` will be sent at: the highest stable version both
    /// sides support (versions Kafka marks unstable are never sent).
    pub fn version_of<R: Request>(&self) -> Result<i16> {
        self.versions
            .negotiate(R::API_KEY, (R::VERSIONS.0, R::MAX_STABLE_VERSION))
            .map_err(|e| e.with_broker(self.label()))
    }

    /// Sends `req` at the negotiated version and waits `request.timeout.ms`.
    pub async fn send<R: Request>(&self, req: &R) -> Result<R::Response> {
        let v = self.version_of::<R>()?;
        self.send_at(req, v, self.request_timeout).await
    }

    /// Sends `req` at the negotiated version with a custom timeout (e.g. a
    /// long-poll Fetch or a JoinGroup that waits for a rebalance).
    pub async fn send_with_timeout<R: Request>(
        &self,
        req: &R,
        timeout: Duration,
    ) -> Result<R::Response> {
        let v = self.version_of::<R>()?;
        self.send_at(req, v, timeout).await
    }

    /// Sends `req` at an explicit `version`.
    pub async fn send_at<R: Request>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.enqueue_at(req, version, timeout).await?.wait().await
    }

    /// [`send_at`](Self::send_at) in two steps: queues `req` for writing
    /// (requests are written in the order their `enqueue_at` calls
    /// complete) and returns the wait for its response.
    pub async fn enqueue_at<R: Request>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<InFlight<R>> {
        let frame = encode::<R>(req, version, self.client_id.as_deref())
            .map_err(|e| e.with_broker(self.label()))?;
        let pending = self.conn.enqueue(R::API_KEY.name(), frame, timeout).await?;
        Ok(InFlight {
            pending,
            version,
            request: std::marker::PhantomData,
        })
    }

    /// Sends a request that the broker does not answer (Produce, acks=0).
    pub async fn send_no_response<R: Request>(&self, req: &R) -> Result<()> {
        let v = self.version_of::<R>()?;
        let frame = encode::<R>(req, v, self.client_id.as_deref())?;
        self.conn.send_only(frame).await
    }
}

/// A typed request queued by [`BrokerConnection::enqueue_at`].
pub struct InFlight<R: Request> {
    pending: super::conn::PendingResponse,
    version: i16,
    request: std::marker::PhantomData<fn() -> R>,
}

impl<R: Request> fmt::Debug for InFlight<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("api", &R::API_KEY.name())
            .field("version", &self.version)
            .finish()
    }
}

impl<R: Request> InFlight<R> {
    /// Waits for and decodes the response.
    pub async fn wait(self) -> Result<R::Response> {
        let conn = self.pending.connection().clone();
        let body = self.pending.wait().await?;
        decode_response::<R>(body, self.version).map_err(|e| e.with_broker(conn.label()))
    }
}

/// Encodes a whole request frame for `R` at `version`.
pub fn encode<R: Request>(
    req: &R,
    version: i16,
    client_id: Option<&str>,
) -> Result<bytes::BytesMut> {
    let mut err = None;
    let frame = frame::encode_request(
        R::API_KEY as i16,
        version,
        R::request_header_version(version),
        client_id,
        req.encoded_len(version),
        |buf| {
            if let Err(e) = req.encode(buf, version) {
                err = Some(e);
            }
        },
    );
    match err {
        Some(e) => Err(Error::new(
            ErrorKind::IllegalState,
            format!("could not encode request: {e}"),
        )
        .with_api(R::API_KEY.name())),
        None => Ok(frame),
    }
}

/// Decodes a response body (after the correlation id) for `R` at `version`.
pub fn decode_response<R: Request>(body: bytes::Bytes, version: i16) -> Result<R::Response> {
    let mut r = Reader::new(body);
    frame::skip_response_header_tail(&mut r, R::response_header_version(version))
        .map_err(|e| Error::from(e).with_api(R::API_KEY.name()))?;
    let resp = <R::Response as Message>::decode(&mut r, version).map_err(|e| {
        Error::protocol(format!(
            "could not decode {} v{version} response: {e}",
            R::API_KEY.name()
        ))
        .with_api(R::API_KEY.name())
    })?;
    Ok(resp)
}

async fn handshake(
    conn: &Connection,
    client_id: Option<&str>,
    timeout: Duration,
) -> Result<ApiVersionTable> {
    let req = ApiVersionsRequest {
        client_software_name: SOFTWARE_NAME.to_string(),
        client_software_version: SOFTWARE_VERSION.to_string(),
        ..Default::default()
    };
    let mut version = ApiVersionsRequest::VERSIONS.1;
    for _attempt in 0..2 {
        let frame = encode::<ApiVersionsRequest>(&req, version, client_id)?;
        let body = conn.round_trip("ApiVersions", frame, timeout).await?;
        // An UNSUPPORTED_VERSION answer is always a v0 body, whatever we asked.
        let resp = match decode_response::<ApiVersionsRequest>(body.clone(), version) {
            Ok(r) if r.error_code != ErrorCode::UNSUPPORTED_VERSION.0 => r,
            _ => decode_response::<ApiVersionsRequest>(body, 0)
                .map_err(|e| e.with_broker(conn.label()))?,
        };
        let code = ErrorCode(resp.error_code);
        if code == ErrorCode::UNSUPPORTED_VERSION {
            let broker_max = resp
                .api_keys
                .iter()
                .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                .map(|k| k.max_version)
                .unwrap_or(0);
            let next = broker_max.min(version - 1).max(0);
            if next == version {
                break;
            }
            tracing::debug!(
                broker = conn.label(),
                from = version,
                to = next,
                "ApiVersions version not supported, retrying"
            );
            version = next;
            continue;
        }
        if !code.is_ok() {
            return Err(Error::broker(code, "ApiVersions handshake failed")
                .with_api("ApiVersions")
                .with_broker(conn.label()));
        }
        let table = ApiVersionTable::from_response(&resp);
        tracing::debug!(
            broker = conn.label(),
            api_versions_version = version,
            "negotiated API versions: {table:?}"
        );
        return Ok(table);
    }
    Err(Error::new(
        ErrorKind::UnsupportedVersion,
        "broker rejected every ApiVersions version",
    )
    .with_api("ApiVersions")
    .with_broker(conn.label()))
}

#[cfg(test)]
mod tests {
    //! The handshake against scripted peers that play the broker.
    use super::*;
    use crate::protocol::frame::peek_request_header;
    use crate::protocol::messages::api_versions::ApiVersion;
    use bytes::BytesMut;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
        let mut size = [0u8; 4];
        s.read_exact(&mut size).await.ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        s.read_exact(&mut body).await.ok()?;
        let mut f = size.to_vec();
        f.extend(body);
        Some(f)
    }

    fn reply(correlation_id: i32, body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        v.extend_from_slice(&correlation_id.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn api_versions_body(version: i16, resp: &ApiVersionsResponse) -> Vec<u8> {
        let mut b = BytesMut::new();
        resp.encode(&mut b, version).unwrap();
        b.to_vec()
    }

    use crate::protocol::messages::api_versions::ApiVersionsResponse;

    #[tokio::test]
    async fn unsupported_api_versions_version_is_retried_at_the_brokers_max() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let seen = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut versions = vec![];
            // First attempt: answer UNSUPPORTED_VERSION with a v0 body.
            let f = read_frame(&mut s).await.unwrap();
            let (_, v, c) = peek_request_header(&f).unwrap();
            versions.push(v);
            let old = ApiVersionsResponse {
                error_code: ErrorCode::UNSUPPORTED_VERSION.0,
                api_keys: vec![ApiVersion {
                    api_key: 18,
                    min_version: 0,
                    max_version: 2,
                    ..Default::default()
                }],
                ..Default::default()
            };
            s.write_all(&reply(c, &api_versions_body(0, &old)))
                .await
                .unwrap();
            // Second attempt must be at v2.
            let f = read_frame(&mut s).await.unwrap();
            let (_, v, c) = peek_request_header(&f).unwrap();
            versions.push(v);
            let ok = ApiVersionsResponse {
                api_keys: vec![
                    ApiVersion {
                        api_key: 18,
                        min_version: 0,
                        max_version: 2,
                        ..Default::default()
                    },
                    ApiVersion {
                        api_key: 3,
                        min_version: 0,
                        max_version: 9,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            };
            s.write_all(&reply(c, &api_versions_body(v, &ok)))
                .await
                .unwrap();
            versions
        });
        let conn = BrokerConnection::connect(
            &addr,
            "old".into(),
            &ConnectionConfig::default(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(seen.await.unwrap(), vec![ApiVersionsRequest::VERSIONS.1, 2]);
        assert_eq!(conn.versions().broker_range(ApiKey::Metadata), Some((0, 9)));
        let v = conn
            .version_of::<crate::protocol::messages::metadata::MetadataRequest>()
            .unwrap();
        assert_eq!(v, 9);
    }

    #[tokio::test]
    async fn garbage_api_versions_answer_is_a_protocol_error_naming_api_and_broker() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let f = read_frame(&mut s).await.unwrap();
            let (_, _, c) = peek_request_header(&f).unwrap();
            // A count of 2^31-1 api keys with nothing behind it.
            s.write_all(&reply(c, &[0, 0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3]))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let err = BrokerConnection::connect(
            &addr,
            "garbage".into(),
            &ConnectionConfig::default(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Protocol, "{err}");
        let s = err.to_string();
        assert!(s.contains("ApiVersions") && s.contains("garbage"), "{s}");
    }
}
