//! The producer.
pub mod partitioner;
pub mod txn;
