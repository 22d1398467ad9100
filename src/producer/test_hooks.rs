//! Test-only starting points for an idempotent producer (cargo feature
//! `test-hooks`, off by default; enabled only by `protocol-tests`). Real
//! traffic needs 2^31 records on one partition to reach the sequence wrap
//! and 32,767 epoch bumps to exhaust an epoch; these hooks start a producer
//! right before either, so the broker-backed tests can check what happens
//! there. Not part of the supported API: do not use outside tests.

/// Where a new idempotent (non-transactional) producer starts instead of
/// where the broker's first InitProducerId answer puts it. The default
/// changes nothing. Ignored by transactional producers, whose epoch the
/// coordinator owns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestHooks {
    /// Base sequence of each partition's first batch under the first
    /// producer id and epoch (normally 0). The broker accepts any first
    /// sequence from a producer id it has no state for. Partitions restart
    /// at 0 after an epoch bump or a new producer id, as usual.
    pub first_sequence: i32,
    /// Replaces the epoch of the first producer id only (e.g.
    /// `i16::MAX - 1`: the next epoch bump exhausts it and asks for a new
    /// producer id). A producer id the broker has no state for may start
    /// at any epoch.
    pub first_epoch: Option<i16>,
}
