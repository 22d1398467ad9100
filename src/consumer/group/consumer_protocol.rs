//! KIP-848 placeholder.
