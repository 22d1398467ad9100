//! Tests of the record batch codec (`kafkawire::record`), through its
//! public API only.

mod codecs;
mod common;
mod edge;
mod fuzz_seeds;
mod legacy;
mod props;
mod roundtrip;
mod vectors;
