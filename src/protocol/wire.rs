//! Bounded primitive readers and writers shared by every codec in the crate.
//!
//! Everything that reads bytes from a broker goes through [`Reader`]: each read
//! checks the remaining length first, so a truncated or hostile buffer yields a
//! [`DecodeError`] instead of a panic, and a declared length is never trusted
//! for an allocation before the bytes behind it are known to exist.
//!
//! Varints follow the Kafka protocol: unsigned LEB128 (`UNSIGNED_VARINT`) and
//! zig-zag signed `VARINT` / `VARLONG` as used in record batches.

use bytes::{BufMut, Bytes};
use std::fmt;

/// Why a byte sequence could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was being read (a field or structure name).
    pub what: &'static str,
    /// What was wrong with it.
    pub kind: DecodeErrorKind,
}

/// The kinds of decode failure. Every one is caused by the bytes, never by a bug.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// Fewer bytes were left than the field needs.
    Truncated { needed: usize, remaining: usize },
    /// A length or count was negative where that is not allowed.
    NegativeLength(i64),
    /// A length or count is larger than the bytes that could possibly hold it,
    /// or larger than a configured limit.
    TooLarge { declared: u64, limit: u64 },
    /// A varint ran past its maximum encoded width.
    VarintOverflow,
    /// A string was not valid UTF-8.
    InvalidUtf8,
    /// A null (length -1, or compact length 0) where null is not allowed.
    UnexpectedNull,
    /// The message version is not one the codec implements.
    UnsupportedVersion(i16),
    /// Any other structural violation, described in words.
    Invalid(String),
}

impl DecodeError {
    pub fn new(what: &'static str, kind: DecodeErrorKind) -> Self {
        DecodeError { what, kind }
    }
    pub fn invalid(what: &'static str, msg: impl Into<String>) -> Self {
        DecodeError {
            what,
            kind: DecodeErrorKind::Invalid(msg.into()),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DecodeErrorKind::Truncated { needed, remaining } => write!(
                f,
                "truncated {}: needed {} bytes, {} remaining",
                self.what, needed, remaining
            ),
            DecodeErrorKind::NegativeLength(n) => {
                write!(f, "negative length {} for {}", n, self.what)
            }
            DecodeErrorKind::TooLarge { declared, limit } => write!(
                f,
                "{} declares {} which exceeds the limit of {}",
                self.what, declared, limit
            ),
            DecodeErrorKind::VarintOverflow => write!(f, "varint overflow in {}", self.what),
            DecodeErrorKind::InvalidUtf8 => write!(f, "invalid UTF-8 in {}", self.what),
            DecodeErrorKind::UnexpectedNull => write!(f, "unexpected null for {}", self.what),
            DecodeErrorKind::UnsupportedVersion(v) => {
                write!(f, "version {} of {} is not supported", v, self.what)
            }
            DecodeErrorKind::Invalid(msg) => write!(f, "invalid {}: {}", self.what, msg),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A bounds-checked cursor over a shared, immutable buffer.
///
/// Slices handed out by [`Reader::bytes`] share the underlying allocation
/// (zero-copy). Invariant: `pos <= buf.len()`.
#[derive(Clone, Debug)]
pub struct Reader {
    buf: Bytes,
    pos: usize,
}

macro_rules! read_be {
    ($name:ident, $ty:ty, $n:expr) => {
        #[inline]
        pub fn $name(&mut self, what: &'static str) -> Result<$ty, DecodeError> {
            Ok(<$ty>::from_be_bytes(self.take_array::<$n>(what)?))
        }
    };
}

/// The error for a read of `needed` bytes with only `remaining` left. Kept
/// out of line so that each inlined read is just a compare and a branch.
#[cold]
#[inline(never)]
fn truncated(what: &'static str, needed: usize, remaining: usize) -> DecodeError {
    DecodeError::new(what, DecodeErrorKind::Truncated { needed, remaining })
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes consumed so far.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unconsumed part as a zero-copy slice (does not advance).
    pub fn rest(&self) -> Bytes {
        self.buf.slice(self.pos..)
    }

    // The reads below use `get` rather than indexing: the bounds check is
    // needed anyway, and this way no read site carries a panic path (which
    // would also bring unwinding cleanup into every generated decoder).
    #[inline]
    fn take_slice(&mut self, n: usize, what: &'static str) -> Result<&[u8], DecodeError> {
        let start = self.pos;
        match start
            .checked_add(n)
            .and_then(|end| self.buf.get(start..end))
        {
            Some(s) => {
                self.pos = start + n;
                Ok(s)
            }
            None => Err(truncated(what, n, self.remaining())),
        }
    }

    #[inline]
    fn take_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let start = self.pos;
        match self.buf.get(start..).and_then(|s| s.first_chunk::<N>()) {
            Some(a) => {
                self.pos = start + N;
                Ok(*a)
            }
            None => Err(truncated(what, N, self.remaining())),
        }
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), DecodeError> {
        self.take_slice(n, what).map(|_| ())
    }

    /// Takes `n` bytes as a zero-copy slice.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<Bytes, DecodeError> {
        if n > self.remaining() {
            return Err(truncated(what, n, self.remaining()));
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    /// Borrows the next `n` bytes (for callers that copy or validate them).
    #[inline]
    pub fn slice(&mut self, n: usize, what: &'static str) -> Result<&[u8], DecodeError> {
        self.take_slice(n, what)
    }

    /// The bytes consumed since position `start` (an earlier value of
    /// [`Reader::position`]) as a zero-copy slice. A `start` beyond the
    /// current position yields an empty slice.
    pub fn consumed_since(&self, start: usize) -> Bytes {
        self.buf.slice(start.min(self.pos)..self.pos)
    }

    /// Splits off the next `n` bytes as their own reader.
    pub fn sub_reader(&mut self, n: usize, what: &'static str) -> Result<Reader, DecodeError> {
        Ok(Reader::new(self.bytes(n, what)?))
    }

    #[inline]
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let [b] = self.take_array::<1>(what)?;
        Ok(b)
    }

    #[inline]
    pub fn i8(&mut self, what: &'static str) -> Result<i8, DecodeError> {
        Ok(self.u8(what)? as i8)
    }

    #[inline]
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        Ok(self.u8(what)? != 0)
    }

    read_be!(i16, i16, 2);
    read_be!(u16, u16, 2);
    read_be!(i32, i32, 4);
    read_be!(u32, u32, 4);
    read_be!(i64, i64, 8);
    read_be!(f64, f64, 8);

    /// Reads 16 bytes (a UUID).
    pub fn uuid(&mut self, what: &'static str) -> Result<[u8; 16], DecodeError> {
        self.take_array::<16>(what)
    }

    /// Unsigned LEB128 varint of at most 5 bytes (Kafka's UNSIGNED_VARINT).
    #[inline]
    pub fn uvarint(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.u8(what)?;
            if i == 4 && b > 0x0f {
                return Err(DecodeError::new(what, DecodeErrorKind::VarintOverflow));
            }
            value |= ((b & 0x7f) as u32) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::new(what, DecodeErrorKind::VarintOverflow))
    }

    /// Unsigned LEB128 varint of at most 10 bytes.
    #[inline]
    pub fn uvarlong(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let b = self.u8(what)?;
            if i == 9 && b > 0x01 {
                return Err(DecodeError::new(what, DecodeErrorKind::VarintOverflow));
            }
            value |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::new(what, DecodeErrorKind::VarintOverflow))
    }

    /// Zig-zag signed 32-bit varint (Kafka's VARINT).
    #[inline]
    pub fn varint(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        let u = self.uvarint(what)?;
        Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
    }

    /// Zig-zag signed 64-bit varint (Kafka's VARLONG).
    #[inline]
    pub fn varlong(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let u = self.uvarlong(what)?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Checks a declared element count against the bytes left, assuming each
    /// element takes at least `min_elem_size` bytes. Call this before
    /// allocating a collection of `count` elements: it bounds the allocation
    /// by the size of the buffer that was actually received.
    #[inline]
    pub fn check_count(
        &self,
        count: usize,
        min_elem_size: usize,
        what: &'static str,
    ) -> Result<(), DecodeError> {
        let need = count.saturating_mul(min_elem_size.max(1));
        if need > self.remaining() {
            return Err(DecodeError::new(
                what,
                DecodeErrorKind::TooLarge {
                    declared: count as u64,
                    limit: self.remaining() as u64,
                },
            ));
        }
        Ok(())
    }
}

/// Writers for Kafka's variable-length integers, on anything that is `BufMut`.
pub trait BufMutExt: BufMut {
    /// Unsigned LEB128 (UNSIGNED_VARINT).
    #[inline]
    fn put_uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.put_u8(v as u8);
    }

    /// Unsigned LEB128, 64-bit.
    #[inline]
    fn put_uvarlong(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.put_u8(v as u8);
    }

    /// Zig-zag VARINT.
    #[inline]
    fn put_varint(&mut self, v: i32) {
        self.put_uvarint(((v << 1) ^ (v >> 31)) as u32);
    }

    /// Zig-zag VARLONG.
    #[inline]
    fn put_varlong(&mut self, v: i64) {
        self.put_uvarlong(((v << 1) ^ (v >> 63)) as u64);
    }
}

impl<T: BufMut + ?Sized> BufMutExt for T {}

/// Encoded width of an unsigned varint.
#[inline]
pub fn uvarint_len(v: u32) -> usize {
    match v {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        0x20_0000..=0x0fff_ffff => 4,
        _ => 5,
    }
}

/// Encoded width of an unsigned 64-bit varint.
#[inline]
pub fn uvarlong_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Encoded width of a zig-zag VARINT.
#[inline]
pub fn varint_len(v: i32) -> usize {
    uvarint_len(((v << 1) ^ (v >> 31)) as u32)
}

/// Encoded width of a zig-zag VARLONG.
#[inline]
pub fn varlong_len(v: i64) -> usize {
    uvarlong_len(((v << 1) ^ (v >> 63)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn varints_round_trip_at_edges() {
        let ints = [0, 1, -1, 63, -64, 64, i32::MAX, i32::MIN, 300, -300];
        for &v in &ints {
            let mut b = BytesMut::new();
            b.put_varint(v);
            assert_eq!(b.len(), varint_len(v), "len of {v}");
            let mut r = Reader::new(b.freeze());
            assert_eq!(r.varint("v").unwrap(), v);
            assert!(r.is_empty());
        }
        let longs = [0i64, 1, -1, i64::MAX, i64::MIN, 1 << 35, -(1 << 40)];
        for &v in &longs {
            let mut b = BytesMut::new();
            b.put_varlong(v);
            assert_eq!(b.len(), varlong_len(v), "len of {v}");
            let mut r = Reader::new(b.freeze());
            assert_eq!(r.varlong("v").unwrap(), v);
        }
        for &v in &[0u32, 127, 128, 16383, 16384, u32::MAX] {
            let mut b = BytesMut::new();
            b.put_uvarint(v);
            assert_eq!(b.len(), uvarint_len(v));
            assert_eq!(Reader::new(b.freeze()).uvarint("u").unwrap(), v);
        }
    }

    #[test]
    fn overlong_varint_is_an_error_not_a_panic() {
        let mut r = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]));
        assert_eq!(
            r.uvarint("x").unwrap_err().kind,
            DecodeErrorKind::VarintOverflow
        );
        let mut r = Reader::new(Bytes::from_static(&[0xff; 11]));
        assert_eq!(
            r.varlong("x").unwrap_err().kind,
            DecodeErrorKind::VarintOverflow
        );
    }

    #[test]
    fn truncated_reads_report_what_and_how_much() {
        let mut r = Reader::new(Bytes::from_static(&[0, 1, 2]));
        let e = r.i32("size").unwrap_err();
        assert_eq!(
            e.kind,
            DecodeErrorKind::Truncated {
                needed: 4,
                remaining: 3
            }
        );
        assert_eq!(e.what, "size");
        assert_eq!(r.remaining(), 3, "a failed read consumes nothing");
    }

    #[test]
    fn counts_are_bounded_by_remaining_bytes() {
        let r = Reader::new(Bytes::from_static(&[0; 8]));
        assert!(r.check_count(8, 1, "n").is_ok());
        assert!(r.check_count(2, 4, "n").is_ok());
        assert!(r.check_count(3, 4, "n").is_err());
        assert!(r.check_count(usize::MAX, 8, "n").is_err());
    }
}
