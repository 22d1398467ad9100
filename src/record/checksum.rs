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
    #[cfg(target_arch = "x86_64")]
    {
        if data.len() >= FOLD_MIN && x86::available() {
            return x86::crc32c_fold(data);
        }
    }
    crc32c::crc32c(data)
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

    /// CRC-32C of `data`, which must be at least 256 bytes long; the CPU
    /// must have the features [`available`] checks.
    pub(super) fn crc32c_fold(data: &[u8]) -> u32 {
        debug_assert!(data.len() >= 256 && available());
        // SAFETY: the caller checked `available()`, so every target feature
        // `fold` enables is present.
        unsafe { fold(data) }
    }

    #[target_feature(enable = "avx512f,vpclmulqdq,pclmulqdq,sse4.2,sse4.1")]
    unsafe fn fold(data: &[u8]) -> u32 {
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
        // The initial register (all ones) xored into the first 4 bytes.
        let mut x0 = _mm512_xor_si512(load!(0), _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, 0xFFFF_FFFF));
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
        crc32c::crc32c_append(!reg, &data[blocks * 256..])
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
