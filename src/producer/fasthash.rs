//! A fast, non-cryptographic hasher for the producer's per-record maps
//! (topic name -> queues, partition -> batches).
//!
//! The keys are topic names the application chose and partition indexes,
//! never attacker-controlled bytes from the network, so the DoS resistance
//! of std's SipHash buys nothing here while costing ~10% of the per-record
//! CPU. This is a multiply-rotate word hasher (the idea behind rustc's
//! FxHash): one multiply per 8 bytes of key.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` using [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// See the module docs. Not for keys an adversary picks.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

/// An odd constant with well-spread bits (from the golden ratio family).
const K: u64 = 0xf135_7aea_2e62_a9c5;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(K).rotate_left(26);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
        // The length, so that zero padding cannot make "a" and "a\0" equal.
        self.add(bytes.len() as u64);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_i32(&mut self, i: i32) {
        self.add(i as u32 as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // One more multiply so both the low bits (bucket index) and the
        // high bits (hashbrown's tag) depend on every input word.
        self.0.wrapping_mul(K)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keep_distinct_keys_apart() {
        let mut m: FastMap<String, usize> = FastMap::default();
        for i in 0..1000 {
            m.insert(format!("topic-{i}"), i);
        }
        for i in 0..1000 {
            assert_eq!(m.get(format!("topic-{i}").as_str()), Some(&i));
        }
        assert_eq!(m.get("topic-1000"), None);
        let mut p: FastMap<i32, i32> = FastMap::default();
        for i in -50..50 {
            p.insert(i, i * 2);
        }
        assert!((-50..50).all(|i| p.get(&i) == Some(&(i * 2))));
        assert_eq!(p.len(), 100);
    }

    #[test]
    fn prefixes_and_padding_hash_differently() {
        let h = |s: &str| {
            let mut x = FastHasher::default();
            std::hash::Hash::hash(s, &mut x);
            x.finish()
        };
        assert_ne!(h("a"), h("a\0"));
        assert_ne!(h("orders"), h("orders2"));
        assert_ne!(h(""), h("\0"));
    }
}
