//! Partitioners: where a record goes.
//!
//! - Keyed records: `toPositive(murmur2(key)) % partitions`, bit-for-bit the
//!   Java client's default (and librdkafka's `murmur2_random`), so the same
//!   key lands on the same partition whichever client wrote it.
//! - Keyless records: *uniform sticky* (KIP-480, KIP-794): stick to one
//!   partition until about `batch.size` bytes went to it, or until its batch
//!   was sent before filling up (by linger: KIP-480's switch on a new batch),
//!   then switch to another partition chosen at random among those with a
//!   leader, so batches fill up instead of spreading every record thin.
//! - An explicit partition on the record is always honoured.

use std::collections::HashMap;

/// Kafka's murmur2 variant (seed `0x9747b28c`), as `Utils.murmur2` in the
/// Java client.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner picks for `key`.
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> i32 {
    debug_assert!(num_partitions > 0);
    (murmur2(key) & 0x7fff_ffff) % num_partitions.max(1)
}

/// Which partitioner to use for records without an explicit partition
/// (`partitioner.class` in the Java client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Partitioner {
    /// Java's default: murmur2 for keyed records, uniform sticky otherwise.
    #[default]
    Default,
    /// Uniform sticky for every record, keys ignored
    /// (`partitioner.ignore.keys=true`).
    UniformSticky,
    /// Round robin over all partitions, record by record.
    RoundRobin,
}

/// Per-topic state of the sticky partitioner. Sans-IO: the caller passes
/// the partitions that currently have a leader and the random numbers.
#[derive(Debug, Default)]
pub struct StickyState {
    topics: HashMap<String, TopicSticky>,
}

/// Sticky and round-robin state of one topic.
#[derive(Debug, Clone, Copy, Default)]
pub struct TopicSticky {
    /// The partition stuck to and the bytes produced to it since.
    current: Option<(i32, usize)>,
    /// Round-robin cursor.
    next_rr: u32,
}

impl TopicSticky {
    /// Chooses the partition for a keyless record of `size` bytes.
    ///
    /// `available`: partitions of the topic that have a leader (if empty,
    /// all `0..num_partitions` are used). `batch_size`: switch after this
    /// many bytes. `random`: a uniformly random number.
    pub fn choose(
        &mut self,
        num_partitions: i32,
        available: &[i32],
        size: usize,
        batch_size: usize,
        random: u32,
    ) -> i32 {
        let pick = |avoid: Option<i32>| -> i32 {
            if available.is_empty() {
                let n = num_partitions.max(1) as u32;
                let mut p = (random % n) as i32;
                if Some(p) == avoid && n > 1 {
                    p = (p + 1) % n as i32;
                }
                p
            } else {
                let n = available.len() as u32;
                let mut i = (random % n) as usize;
                if Some(available[i]) == avoid && n > 1 {
                    i = (i + 1) % n as usize;
                }
                available[i]
            }
        };
        let (partition, produced) = match self.current {
            Some((p, produced)) => {
                let still_valid =
                    p < num_partitions && (available.is_empty() || available.contains(&p));
                if !still_valid || produced >= batch_size.max(1) {
                    (pick(Some(p)), 0)
                } else {
                    (p, produced)
                }
            }
            None => (pick(None), 0),
        };
        self.current = Some((partition, produced.saturating_add(size)));
        partition
    }

    /// Moves on to another partition at the next record (the current
    /// partition's batch is full).
    pub fn switch(&mut self) {
        if let Some((_, produced)) = &mut self.current {
            *produced = usize::MAX;
        }
    }

    /// Moves on to another partition at the next record if `partition` is
    /// the one stuck to (its batch was sent before it filled up).
    pub fn switch_from(&mut self, partition: i32) {
        if self.current.is_some_and(|(p, _)| p == partition) {
            self.switch();
        }
    }

    /// Round robin over all partitions.
    pub fn round_robin(&mut self, num_partitions: i32) -> i32 {
        let p = (self.next_rr % num_partitions.max(1) as u32) as i32;
        self.next_rr = self.next_rr.wrapping_add(1);
        p
    }
}

impl StickyState {
    /// Runs `f` on the topic's state, creating it on first use (the
    /// topic name is copied only then).
    fn with_topic<T>(&mut self, topic: &str, f: impl FnOnce(&mut TopicSticky) -> T) -> T {
        if let Some(t) = self.topics.get_mut(topic) {
            return f(t);
        }
        let mut t = TopicSticky::default();
        let out = f(&mut t);
        self.topics.insert(topic.to_string(), t);
        out
    }

    /// Chooses the partition for a keyless record of `size` bytes; see
    /// [`TopicSticky::choose`].
    pub fn choose(
        &mut self,
        topic: &str,
        num_partitions: i32,
        available: &[i32],
        size: usize,
        batch_size: usize,
        random: u32,
    ) -> i32 {
        self.with_topic(topic, |t| {
            t.choose(num_partitions, available, size, batch_size, random)
        })
    }

    /// Round robin over all partitions.
    pub fn round_robin(&mut self, topic: &str, num_partitions: i32) -> i32 {
        self.with_topic(topic, |t| t.round_robin(num_partitions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by the Java client's `Utils.murmur2` and
    /// `toPositive(murmur2(key)) % n` (kafka-clients 4.4.0), for n = 6 and 7.
    const JAVA: &[(&str, i32, i32, i32)] = &[
        ("", 275646681, 3, 2),
        ("a", -1563381124, 4, 5),
        ("ab", 316155434, 2, 0),
        ("abc", 479470107, 3, 4),
        ("21", -973932308, 0, 3),
        ("foobar", -790332482, 0, 0),
        ("a-little-bit-long-string", -985981536, 2, 1),
        ("a-little-bit-longer-string", -1486304829, 5, 0),
        (
            "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58897971,
            5,
            3,
        ),
        ("key-0", 29210041, 1, 0),
        ("key-1", 193331640, 0, 5),
        ("key-12345", -952703915, 3, 0),
        ("été", -2101193575, 1, 4),
        ("order-42", 501153024, 0, 1),
    ];

    #[test]
    fn murmur2_matches_the_java_client() {
        for &(key, hash, p6, p7) in JAVA {
            assert_eq!(murmur2(key.as_bytes()), hash, "murmur2({key:?})");
            assert_eq!(partition_for_key(key.as_bytes(), 6), p6, "{key:?} % 6");
            assert_eq!(partition_for_key(key.as_bytes(), 7), p7, "{key:?} % 7");
        }
    }

    #[test]
    fn sticky_switches_after_batch_size_bytes() {
        let mut s = StickyState::default();
        let first = s.choose("t", 4, &[], 100, 1000, 7);
        for _ in 0..9 {
            assert_eq!(
                s.choose("t", 4, &[], 100, 1000, 7),
                first,
                "sticks until 1000 bytes"
            );
        }
        let next = s.choose("t", 4, &[], 100, 1000, 7);
        assert_ne!(next, first, "switches once the batch is full");
    }

    #[test]
    fn sticky_only_uses_available_partitions() {
        let mut s = StickyState::default();
        for r in 0..100 {
            let p = s.choose("t", 6, &[1, 4], 10_000, 100, r);
            assert!(p == 1 || p == 4);
        }
        // The stuck partition losing its leader forces a switch.
        let p = s.choose("u", 6, &[2, 3], 1, 1 << 20, 0);
        let q = s.choose("u", 6, &[5], 1, 1 << 20, 0);
        assert_eq!(q, 5);
        assert_ne!(p, q);
    }

    #[test]
    fn round_robin_cycles() {
        let mut s = StickyState::default();
        let v: Vec<i32> = (0..7).map(|_| s.round_robin("t", 3)).collect();
        assert_eq!(v, vec![0, 1, 2, 0, 1, 2, 0]);
    }
}
