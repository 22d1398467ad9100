//! kafkawire: a pure-Rust, async Apache Kafka client that speaks the binary
//! protocol itself, built around exactly-once messaging.
// The only exception is the CRC-32C folding in record/checksum.rs
// (`std::arch` intrinsics behind run-time CPU feature detection).
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod admin;
pub mod cluster;
pub mod config;
pub mod consumer;
pub mod error;
pub mod net;
pub mod producer;
pub mod protocol;
pub mod record;
pub use error::{Error, ErrorClass, ErrorCode, ErrorKind, Result};
