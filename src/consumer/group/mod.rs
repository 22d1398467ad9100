//! Consumer group membership.
pub mod assignor;
