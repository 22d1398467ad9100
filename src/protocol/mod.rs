//! The Kafka wire protocol: primitives, request/response framing, message
//! codecs and version negotiation.

pub mod messages;
pub mod wire;

#[cfg(test)]
mod message_tests;
