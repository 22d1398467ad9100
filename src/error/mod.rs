//! The crate's error type.
//!
//! Every failure surfaces as one opaque, cheaply cloneable [`Error`] that says
//! *what kind* of failure it was ([`ErrorKind`]), *where* it came from (the API,
//! broker, topic and partition when known), and *what the caller should do*
//! ([`Error::is_retriable`], [`Error::is_abortable`], [`Error::is_fatal`]).
//!
//! Classification rules (one place, not at each call site):
//! - a broker error code is retriable when the protocol marks it so;
//! - connection failures and timeouts are retriable;
//! - malformed broker bytes are retriable at the request level (the connection
//!   is closed and a fresh one may behave), but are reported with the decode
//!   detail so that a persistent problem is visible;
//! - configuration errors and API misuse are neither retriable nor fatal: the
//!   caller fixes the call;
//! - the transactional producer marks errors abortable or fatal explicitly
//!   with [`Error::with_class`].

mod code;

pub use code::ErrorCode;

use crate::protocol::wire::DecodeError;
use std::fmt;
use std::sync::Arc;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in broad strokes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A broker answered with an error code.
    Broker(ErrorCode),
    /// A connection could not be made, or broke.
    Io,
    /// A request or operation did not complete within its timeout.
    Timeout,
    /// A broker sent bytes that violate the protocol (undecodable, truncated,
    /// oversized, mismatched correlation id, ...).
    Protocol,
    /// No API version is supported by both this client and the broker.
    UnsupportedVersion,
    /// A configuration value is invalid; the message names the field and rule.
    Config,
    /// The API was used in a way its current state does not allow.
    IllegalState,
    /// The client (or the part of it the call needed) was closed.
    Closed,
    /// A record, batch or request exceeds a configured size limit.
    TooLarge,
    /// A bounded buffer stayed full for longer than the caller may wait.
    BufferExhausted,
    /// Something the caller asked for does not exist (topic, partition, group).
    NotFound,
    /// The consumer's position is past the end of its last fetched leader
    /// epoch on the current leader: records it had fetched are no longer in
    /// the log (an unclean leader election). Raised when
    /// `auto.offset.reset` is `none` (Java's `LogTruncationException`);
    /// otherwise the consumer resumes at `offset`. Seek to continue.
    LogTruncation {
        /// First offset known to diverge: the end of the consumer's last
        /// fetched epoch on the current leader.
        offset: i64,
        /// The leader epoch that ends at `offset`.
        leader_epoch: i32,
    },
}

/// How a caller should react to an error. Set by the component that knows
/// (e.g. the transaction manager), defaulted from the kind otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Transient: retrying the same operation may succeed.
    Retriable,
    /// The current transaction cannot commit: abort it, then carry on.
    Abortable,
    /// The client instance can no longer be used: drop it.
    Fatal,
    /// Neither: the call failed as a whole (bad argument, bad config, ...).
    Permanent,
}

/// The error type of every fallible kafkawire operation.
///
/// Cloning is cheap (an `Arc`), so one failure can complete many futures, e.g.
/// every record of a failed batch or every request in flight on a broken
/// connection.
#[derive(Clone)]
pub struct Error(Arc<Inner>);

struct Inner {
    kind: ErrorKind,
    class: ErrorClass,
    api: Option<&'static str>,
    broker: Option<String>,
    topic: Option<String>,
    partition: Option<i32>,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// A new error of `kind` with a message saying what happened.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let class = default_class(&kind);
        Error(Arc::new(Inner {
            kind,
            class,
            api: None,
            broker: None,
            topic: None,
            partition: None,
            message: message.into(),
            source: None,
        }))
    }

    /// A broker error code.
    pub fn broker(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Broker(code), message)
    }

    /// An invalid configuration: names the field and the rule it broke.
    pub fn config(field: &str, rule: impl fmt::Display) -> Self {
        Error::new(
            ErrorKind::Config,
            format!("invalid config `{field}`: {rule}"),
        )
    }

    /// API misuse in the current state.
    pub fn illegal_state(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::IllegalState, message)
    }

    /// Broker bytes that could not be decoded.
    pub fn protocol(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Protocol, message)
    }

    /// A timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Timeout, message)
    }

    /// An IO failure with its source.
    pub fn io(message: impl Into<String>, source: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, message).with_source(source)
    }

    fn edit(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        match Arc::get_mut(&mut self.0) {
            Some(inner) => f(inner),
            None => {
                let o = &*self.0;
                let mut inner = Inner {
                    kind: o.kind.clone(),
                    class: o.class,
                    api: o.api,
                    broker: o.broker.clone(),
                    topic: o.topic.clone(),
                    partition: o.partition,
                    message: o.message.clone(),
                    source: o.source.clone(),
                };
                f(&mut inner);
                self.0 = Arc::new(inner);
            }
        }
        self
    }

    /// Records which API the failure belongs to (e.g. "Produce").
    pub fn with_api(self, api: &'static str) -> Self {
        self.edit(|i| i.api = Some(api))
    }

    /// Records which broker (id and/or address) the failure came from.
    pub fn with_broker(self, broker: impl fmt::Display) -> Self {
        let b = broker.to_string();
        self.edit(|i| i.broker = Some(b))
    }

    /// Records the topic and partition the failure is about.
    pub fn with_partition(self, topic: impl Into<String>, partition: i32) -> Self {
        let t = topic.into();
        self.edit(|i| {
            i.topic = Some(t);
            i.partition = Some(partition);
        })
    }

    /// Records the topic the failure is about.
    pub fn with_topic(self, topic: impl Into<String>) -> Self {
        let t = topic.into();
        self.edit(|i| i.topic = Some(t))
    }

    /// Overrides the classification (e.g. the transaction manager marking a
    /// produce failure abortable, or a fencing error fatal).
    pub fn with_class(self, class: ErrorClass) -> Self {
        self.edit(|i| i.class = class)
    }

    /// Attaches the underlying cause.
    pub fn with_source(self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        let s: Arc<dyn std::error::Error + Send + Sync> = Arc::new(source);
        self.edit(|i| i.source = Some(s))
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// How the caller should react.
    pub fn class(&self) -> ErrorClass {
        self.0.class
    }

    /// The broker error code, if a broker reported this error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self.0.kind {
            ErrorKind::Broker(c) => Some(c),
            _ => None,
        }
    }

    /// The API this failure belongs to, if known.
    pub fn api(&self) -> Option<&'static str> {
        self.0.api
    }

    /// The broker this failure came from, if known.
    pub fn broker_name(&self) -> Option<&str> {
        self.0.broker.as_deref()
    }

    /// The topic this failure is about, if known.
    pub fn topic(&self) -> Option<&str> {
        self.0.topic.as_deref()
    }

    /// The partition this failure is about, if known.
    pub fn partition(&self) -> Option<i32> {
        self.0.partition
    }

    /// The message without context.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Retrying the same operation may succeed.
    pub fn is_retriable(&self) -> bool {
        self.0.class == ErrorClass::Retriable
    }

    /// The current transaction must be aborted; the producer stays usable.
    pub fn is_abortable(&self) -> bool {
        self.0.class == ErrorClass::Abortable
    }

    /// The client instance is unusable and must be dropped.
    pub fn is_fatal(&self) -> bool {
        self.0.class == ErrorClass::Fatal
    }

    /// A timeout.
    pub fn is_timeout(&self) -> bool {
        self.0.kind == ErrorKind::Timeout
    }
}

fn default_class(kind: &ErrorKind) -> ErrorClass {
    match kind {
        ErrorKind::Broker(code) if code.is_retriable() => ErrorClass::Retriable,
        ErrorKind::Broker(_) => ErrorClass::Permanent,
        ErrorKind::Io | ErrorKind::Timeout | ErrorKind::Protocol => ErrorClass::Retriable,
        ErrorKind::UnsupportedVersion => ErrorClass::Permanent,
        _ => ErrorClass::Permanent,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.0;
        if let Some(api) = i.api {
            write!(f, "{api}")?;
            if let Some(b) = &i.broker {
                write!(f, " to broker {b}")?;
            }
            write!(f, ": ")?;
        } else if let Some(b) = &i.broker {
            write!(f, "broker {b}: ")?;
        }
        if let ErrorKind::Broker(code) = i.kind {
            write!(f, "{}: ", code.name())?;
        }
        write!(f, "{}", i.message)?;
        match (&i.topic, i.partition) {
            (Some(t), Some(p)) => write!(f, " (partition {t}-{p})")?,
            (Some(t), None) => write!(f, " (topic {t})")?,
            _ => {}
        }
        if let Some(s) = &i.source {
            write!(f, ": {s}")?;
        }
        match i.class {
            ErrorClass::Fatal => write!(f, " [fatal: this client can no longer be used]")?,
            ErrorClass::Abortable => write!(f, " [abort the current transaction]")?,
            _ => {}
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.0;
        f.debug_struct("Error")
            .field("kind", &i.kind)
            .field("class", &i.class)
            .field("api", &i.api)
            .field("broker", &i.broker)
            .field("topic", &i.topic)
            .field("partition", &i.partition)
            .field("message", &i.message)
            .field("source", &i.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|s| &**s as &(dyn std::error::Error + 'static))
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::new(ErrorKind::Protocol, "could not decode broker response").with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_api_broker_code_and_partition() {
        let e = Error::broker(ErrorCode::NOT_LEADER_OR_FOLLOWER, "leader moved")
            .with_api("Produce")
            .with_broker("2 (127.0.0.1:29093)")
            .with_partition("orders", 3);
        assert_eq!(
            e.to_string(),
            "Produce to broker 2 (127.0.0.1:29093): NOT_LEADER_OR_FOLLOWER: leader moved (partition orders-3)"
        );
        assert!(e.is_retriable());
        assert_eq!(e.code(), Some(ErrorCode::NOT_LEADER_OR_FOLLOWER));
    }

    #[test]
    fn class_defaults_and_overrides() {
        assert!(!Error::broker(ErrorCode::PRODUCER_FENCED, "x").is_retriable());
        let fatal = Error::broker(ErrorCode::PRODUCER_FENCED, "x").with_class(ErrorClass::Fatal);
        assert!(fatal.is_fatal());
        assert!(fatal.to_string().contains("fatal"));
        assert!(Error::timeout("t").is_retriable());
        assert!(!Error::config("acks", "must be all").is_retriable());
        // editing a shared error does not change the other clone
        let a = Error::timeout("t");
        let b = a.clone().with_api("Fetch");
        assert_eq!(a.api(), None);
        assert_eq!(b.api(), Some("Fetch"));
    }
}
