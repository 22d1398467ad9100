//! CRC-32C (Castagnoli) of record batches.
//!
//! [`crc32c`] returns exactly what the `crc32c` crate returns. On x86-64
//! CPUs with AVX-512 and VPCLMULQDQ (detected at run time) buffers of at
//! least [`FOLD_MIN`] bytes take a carry-less-multiplication folding path
//! that processes 256 bytes per step; everything else goes to the `crc32c`
//! crate (SSE 4.2 `crc32` instructions, 3-way interleaved, or software).
//!
//! Why: the `crc32` instruction retires at most 8 bytes per cycle, which
//! made CRC-32C about half of the time spent encoding a batch of 1 KiB
//! records (and of verifying one on decode); 512-bit carry-less multiplies
//! fold four times as many bytes per cycle.
//!
//! An uncompressed batch's records are checksummed while it is built, in
//! 4 KiB chunks still in cache ([`DeferredPrefixCrc`]); its header, known
//! only when it is sealed, is joined in then by one polynomial
//! multiplication, since the register after `header ++ records` is the
//! register after the records from zero, xor the register after the header
//! multiplied by `x^(8 * records length)`.
//!
//! This module is the crate's only `unsafe` code: `std::arch` intrinsics,
//! called only after the CPU features they need were detected.
//!
//! # The folding, in short
//!
//! In a reflected CRC the first byte holds the highest-degree coefficients,
//! and the CRC register after a message `M` (register starting at 0, no
//! final inversion) is `M(x) * x^32 mod P`. A 16-byte block `A` (low 64-bit
//! lane = earlier bytes = `L`, high lane = `H`, so `A = L x^64 + H`) that
//! lies `D` bytes before another block contributes `A x^(8D)`, congruent to
//! `L (x^(8D+64) mod P) + H (x^(8D) mod P)`, a polynomial that fits in one
//! block: so `A` can be multiplied forward and xored into the later block
//! without changing the CRC. With bit-reflected 64-bit operands, a
//! carry-less multiply yields the product times `x`, hence the constants
//! below use exponents one lower. The initial register value is xored into
//! the first four bytes (equivalent for a reflected CRC), and the final
//! 16-byte remainder goes through two `crc32` instructions.

/// Shortest buffer worth the folding path (below, the `crc32c` crate's
/// interleaved loop is as fast).
pub(crate) const FOLD_MIN: usize = 512;

/// CRC-32C of `data` (initial value 0, as in the batch header).
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    !register_after(!0, data)
}

/// The CRC-32C register after `data`, starting from register `reg`, without
/// the final inversion: `crc32c(d) == !register_after(!0, d)`, and
/// `register_after(register_after(r, a), b) == register_after(r, a ++ b)`.
#[inline]
pub(crate) fn register_after(reg: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if data.len() >= FOLD_MIN && x86::available() {
            return x86::register_after_fold(reg, data);
        }
    }
    !crc32c::crc32c_append(!reg, data)
}

/// The CRC polynomial's low 32 bits, bit-reflected (bit 31 is `x^0`).
const POLY_REFLECTED: u32 = 0x82F6_3B78;

/// `a * b mod P` for two bit-reflected polynomials (bit 31 is `x^0`, bit 0
/// is `x^31`): shift-and-add over the bits of `a`.
const fn mul_mod(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    let mut bit = 0;
    while bit < 32 {
        if a & (1 << (31 - bit)) != 0 {
            product ^= b;
        }
        // b *= x
        b = if b & 1 != 0 {
            (b >> 1) ^ POLY_REFLECTED
        } else {
            b >> 1
        };
        bit += 1;
    }
    product
}

/// `x^(8 * bytes) mod P`, bit-reflected: advancing a register over `bytes`
/// zero bytes multiplies it by this.
const fn zeros_operator(bytes: u64) -> u32 {
    // Square-and-multiply on x^8.
    let mut result: u32 = 1 << 31; // x^0
    let mut square: u32 = 1 << (31 - 8); // x^8
    let mut n = bytes;
    while n != 0 {
        if n & 1 != 0 {
            result = mul_mod(result, square);
        }
        square = mul_mod(square, square);
        n >>= 1;
    }
    result
}

/// Chunk size of [`DeferredPrefixCrc`]: small enough that a chunk just
/// written is still in the L1 cache when it is checksummed.
pub(crate) const CHUNK: usize = 4 * 1024;

/// Chunks [`DeferredPrefixCrc`] absorbs as they complete (1 MiB); the
/// rest of a larger body is checksummed at the end.
const MAX_CHUNKS: usize = 256;

/// `CHUNK_SHIFTS[k]` advances a register over `k` chunks of zeros.
const CHUNK_SHIFTS: [u32; MAX_CHUNKS + 1] = {
    let one_chunk = zeros_operator(CHUNK as u64);
    let mut t = [0u32; MAX_CHUNKS + 1];
    t[0] = 1 << 31;
    let mut k = 1;
    while k <= MAX_CHUNKS {
        t[k] = mul_mod(t[k - 1], one_chunk);
        k += 1;
    }
    t
};

/// CRC-32C of `prefix ++ body` where the body is written first and the
/// (short) prefix last, as with a record batch whose header depends on its
/// records: the body is checksummed chunk by chunk while it is still in
/// cache, and the prefix joined in at the end by one multiplication.
///
/// Invariant: `reg` is the register after `body[..chunks * CHUNK]` starting
/// from register 0, and that part of the body never changes afterwards.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DeferredPrefixCrc {
    reg: u32,
    chunks: usize,
}

impl DeferredPrefixCrc {
    /// Bytes of the body absorbed so far.
    #[inline]
    pub(crate) fn absorbed(&self) -> usize {
        self.chunks * CHUNK
    }

    /// Absorbs every complete chunk of `body` not absorbed yet. `body` is
    /// the whole body so far; what was absorbed before must be unchanged.
    #[inline]
    pub(crate) fn absorb(&mut self, body: &[u8]) {
        while self.chunks < MAX_CHUNKS {
            let Some(chunk) = body.get(self.absorbed()..self.absorbed() + CHUNK) else {
                break;
            };
            self.reg = register_after(self.reg, chunk);
            self.chunks += 1;
        }
    }

    /// CRC-32C of `prefix ++ body`.
    pub(crate) fn finish(&self, prefix: &[u8], body: &[u8]) -> u32 {
        // register(!0, prefix ++ chunks) = register(0, chunks)
        //   ^ register(!0, prefix) * x^(8 * chunk bytes), by linearity.
        let after_prefix = register_after(!0, prefix);
        let reg = self.reg ^ mul_mod(after_prefix, CHUNK_SHIFTS[self.chunks]);
        !register_after(reg, body.get(self.absorbed()..).unwrap_or_default())
    }
}

/// The CRC-32C polynomial in normal form, `x^32` included.
#[cfg(any(target_arch = "x86_64", test))]
const POLY: u64 = 0x1_1EDC_6F41;

/// `x^n mod P` in normal form (bit `d` is the coefficient of `x^d`).
#[cfg(any(target_arch = "x86_64", test))]
const fn xpow_mod(n: u32) -> u64 {
    let mut r: u64 = 1;
    let mut i = 0;
    while i < n {
        r <<= 1;
        if r & (1 << 32) != 0 {
            r ^= POLY;
        }
        i += 1;
    }
    r
}

/// The pair of constants folding a block forward by `bytes` bytes: for the
/// low lane `x^(8D+64-1) mod P`, for the high lane `x^(8D-1) mod P`, each
/// bit-reflected into 64 bits.
#[cfg(any(target_arch = "x86_64", test))]
const fn fold_constants(bytes: u32) -> (u64, u64) {
    (
        xpow_mod(8 * bytes + 63).reverse_bits(),
        xpow_mod(8 * bytes - 1).reverse_bits(),
    )
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    use super::fold_constants;

    const K256: (u64, u64) = fold_constants(256);
    const K64: (u64, u64) = fold_constants(64);
    const K48: (u64, u64) = fold_constants(48);
    const K32: (u64, u64) = fold_constants(32);
    const K16: (u64, u64) = fold_constants(16);

    /// Whether [`crc32c_fold`] may run on this CPU (cached by std).
    #[inline]
    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("vpclmulqdq")
            && is_x86_feature_detected!("pclmulqdq")
            && is_x86_feature_detected!("sse4.2")
    }

    /// The register after `data` starting from `reg` (see
    /// [`super::register_after`]); `data` must be at least 256 bytes long
    /// and the CPU must have the features [`available`] checks.
    pub(super) fn register_after_fold(reg: u32, data: &[u8]) -> u32 {
        debug_assert!(data.len() >= 256 && available());
        // SAFETY: the caller checked `available()`, so every target feature
        // `fold` enables is present.
        unsafe { fold(reg, data) }
    }

    /// CRC-32C of `data`, under the same conditions.
    #[cfg(test)]
    pub(super) fn crc32c_fold(data: &[u8]) -> u32 {
        !register_after_fold(!0, data)
    }

    #[target_feature(enable = "avx512f,vpclmulqdq,pclmulqdq,sse4.2,sse4.1")]
    unsafe fn fold(reg: u32, data: &[u8]) -> u32 {
        let blocks = data.len() / 256;
        let ptr = data.as_ptr();
        // SAFETY (all loads below): `i * 256 + 64 * j + 64 <= blocks * 256
        // <= data.len()`; `loadu` has no alignment requirement.
        macro_rules! load {
            ($off:expr) => {
                unsafe { _mm512_loadu_si512(ptr.add($off).cast()) }
            };
        }
        let k256 = _mm512_broadcast_i32x4(_mm_set_epi64x(K256.1 as i64, K256.0 as i64));
        // The initial register xored into the first 4 bytes.
        let mut x0 = _mm512_xor_si512(load!(0), _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, reg as i64));
        let mut x1 = load!(64);
        let mut x2 = load!(128);
        let mut x3 = load!(192);
        for i in 1..blocks {
            let at = i * 256;
            x0 = fold512(x0, k256, load!(at));
            x1 = fold512(x1, k256, load!(at + 64));
            x2 = fold512(x2, k256, load!(at + 128));
            x3 = fold512(x3, k256, load!(at + 192));
        }
        // Fold the four 64-byte accumulators into the last one.
        let k64 = _mm512_broadcast_i32x4(_mm_set_epi64x(K64.1 as i64, K64.0 as i64));
        x1 = fold512(x0, k64, x1);
        x2 = fold512(x1, k64, x2);
        x3 = fold512(x2, k64, x3);
        // Then its four 16-byte lanes into the last lane.
        let l0 = _mm512_extracti32x4_epi32::<0>(x3);
        let l1 = _mm512_extracti32x4_epi32::<1>(x3);
        let l2 = _mm512_extracti32x4_epi32::<2>(x3);
        let l3 = _mm512_extracti32x4_epi32::<3>(x3);
        let mut r = _mm_xor_si128(l3, fold128(l0, K48));
        r = _mm_xor_si128(r, fold128(l1, K32));
        r = _mm_xor_si128(r, fold128(l2, K16));
        // The remaining 16 bytes through the crc32 instruction, from a zero
        // register: the result is the register after `blocks * 256` bytes.
        let lo = _mm_extract_epi64::<0>(r) as u64;
        let hi = _mm_extract_epi64::<1>(r) as u64;
        let reg = _mm_crc32_u64(_mm_crc32_u64(0, lo), hi) as u32;
        // `crc32c_append` takes and returns the inverted register.
        !crc32c::crc32c_append(!reg, &data[blocks * 256..])
    }

    /// `acc` folded forward by the distance `k` was built for, xored with
    /// `next`, independently in each 128-bit lane.
    #[inline]
    #[target_feature(enable = "avx512f,vpclmulqdq")]
    fn fold512(acc: __m512i, k: __m512i, next: __m512i) -> __m512i {
        let lo = _mm512_clmulepi64_epi128::<0x00>(acc, k);
        let hi = _mm512_clmulepi64_epi128::<0x11>(acc, k);
        // 0x96: three-way xor.
        _mm512_ternarylogic_epi64::<0x96>(lo, hi, next)
    }

    #[inline]
    #[target_feature(enable = "pclmulqdq,sse2")]
    fn fold128(acc: __m128i, k: (u64, u64)) -> __m128i {
        let k = _mm_set_epi64x(k.1 as i64, k.0 as i64);
        _mm_xor_si128(
            _mm_clmulepi64_si128::<0x00>(acc, k),
            _mm_clmulepi64_si128::<0x11>(acc, k),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes (64-bit LCG).
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn known_vectors() {
        // RFC 3720 (iSCSI) test vectors, and the usual check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        // Long all-zero and all-one buffers take the folding path.
        assert_eq!(crc32c(&[0u8; 4096]), crc32c::crc32c(&[0u8; 4096]));
        assert_eq!(crc32c(&[0xFFu8; 4096]), crc32c::crc32c(&[0xFFu8; 4096]));
    }

    #[test]
    fn same_as_crc32c_crate_for_every_length_and_alignment() {
        let data = bytes(70_000, 7);
        for len in (0..3000).chain([65_535, 65_536, 65_537, 69_900]) {
            for start in [0, 1, 3, 7, 8, 13] {
                let s = &data[start..start + len];
                assert_eq!(crc32c(s), crc32c::crc32c(s), "len {len} start {start}");
            }
        }
    }

    #[test]
    fn detects_single_bit_flips() {
        let mut data = bytes(5000, 11);
        let good = crc32c(&data);
        for bit in (0..data.len() * 8).step_by(97) {
            data[bit / 8] ^= 1 << (bit % 8);
            assert_ne!(crc32c(&data), good, "bit {bit}");
            assert_eq!(crc32c(&data), crc32c::crc32c(&data), "bit {bit}");
            data[bit / 8] ^= 1 << (bit % 8);
        }
    }

    #[test]
    fn register_after_continues_across_splits() {
        let data = bytes(20_000, 5);
        for split in [0, 1, 4, 255, 256, 511, 512, 8192, 12_345, 20_000] {
            for start in [!0u32, 0, 0x1234_5678] {
                let (a, b) = data.split_at(split);
                assert_eq!(
                    register_after(register_after(start, a), b),
                    register_after(start, &data),
                    "split {split} start {start:#x}"
                );
            }
        }
        // The portable path agrees with the folding one for a non-trivial
        // starting register.
        let portable = !crc32c::crc32c_append(!0x1234_5678, &data);
        assert_eq!(register_after(0x1234_5678, &data), portable);
    }

    #[test]
    fn zeros_operator_advances_over_zero_bytes() {
        for n in [0usize, 1, 3, 8, 100, 4096, CHUNK, 3 * CHUNK + 7] {
            let zeros = vec![0u8; n];
            for reg in [1u32, 0x8000_0000, 0xDEAD_BEEF, !0] {
                assert_eq!(
                    mul_mod(reg, zeros_operator(n as u64)),
                    register_after(reg, &zeros),
                    "{n} zero bytes from {reg:#x}"
                );
            }
        }
        for k in [0, 1, 2, 77, MAX_CHUNKS] {
            assert_eq!(
                CHUNK_SHIFTS[k],
                zeros_operator((k * CHUNK) as u64),
                "{k} chunks"
            );
        }
    }

    #[test]
    fn deferred_prefix_crc_equals_the_crc_of_the_whole() {
        let data = bytes(MAX_CHUNKS * CHUNK + 3 * CHUNK + 99, 9);
        let prefix = &bytes(40, 1)[..];
        let lens = [
            0,
            1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            5 * CHUNK + 17,
            MAX_CHUNKS * CHUNK,
            data.len(),
        ];
        for len in lens {
            let body = &data[..len];
            // Absorbed in irregular steps, as records of varying sizes are
            // appended, and all at once.
            let mut stepped = DeferredPrefixCrc::default();
            let mut at = 0;
            let mut step = 1;
            while at < len {
                at = (at + step).min(len);
                stepped.absorb(&body[..at]);
                step = step * 3 % 10_007 + 1;
            }
            let mut whole = DeferredPrefixCrc::default();
            whole.absorb(body);
            let mut joined = prefix.to_vec();
            joined.extend_from_slice(body);
            let expected = crc32c::crc32c(&joined);
            assert_eq!(stepped.finish(prefix, body), expected, "len {len}, stepped");
            assert_eq!(whole.finish(prefix, body), expected, "len {len}, whole");
            assert_eq!(DeferredPrefixCrc::default().finish(prefix, body), expected);
            assert_eq!(whole.absorbed(), (len / CHUNK).min(MAX_CHUNKS) * CHUNK);
        }
    }

    #[test]
    fn fold_constants_follow_the_polynomial() {
        // x^32 mod P is P without its leading term.
        assert_eq!(xpow_mod(32), POLY & 0xFFFF_FFFF);
        assert_eq!(xpow_mod(31), 1 << 31);
        let (lo, hi) = fold_constants(16);
        assert_eq!(lo, xpow_mod(191).reverse_bits());
        assert_eq!(hi, xpow_mod(127).reverse_bits());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn folding_path_is_exercised_where_available() {
        // Not a skip: on CPUs without AVX-512/VPCLMULQDQ the public function
        // is the crate's, which the tests above compare against itself;
        // here the folding path is called directly when it can run.
        if x86::available() {
            let data = bytes(10_000, 3);
            for len in [256, 257, 511, 512, 1000, 4096, 9999] {
                assert_eq!(x86::crc32c_fold(&data[..len]), crc32c::crc32c(&data[..len]));
            }
        } else {
            eprintln!("AVX-512 VPCLMULQDQ not available: folding path not run");
        }
    }
}
