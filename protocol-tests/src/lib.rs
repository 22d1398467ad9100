//! Shared helpers for tests against real Apache Kafka.
