//! The producer.
pub mod partitioner;
