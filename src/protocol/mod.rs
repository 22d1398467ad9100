//! The Kafka wire protocol: primitives, request/response framing, message
//! codecs and version negotiation.

pub mod frame;
pub mod messages;
pub mod versions;
pub mod wire;

#[cfg(test)]
mod message_tests;
