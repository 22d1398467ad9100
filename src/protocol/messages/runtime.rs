//! Support code for the generated codecs: the `Message`/`Request` traits,
//! `Uuid`, `EncodeError`, and the primitive encoders/decoders (`codec`) the
//! generated files call. Hand-written (not generated); `tools/protocol-gen`
//! emits `mod runtime;` into `messages/mod.rs` and reserves these names.

use super::ApiKey;
use crate::protocol::wire::{DecodeError, Reader};
use bytes::{Bytes, BytesMut};
use std::fmt;

/// A Kafka UUID (topic ids, directory ids): 16 raw bytes in network order.
///
/// [`fmt::Display`] prints the usual 8-4-4-4-12 hex form (Kafka itself shows
/// ids in URL-safe base64; both name the same 16 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero id, which Kafka uses to mean "no id".
    pub const ZERO: Uuid = Uuid([0; 16]);

    pub const fn from_bytes(b: [u8; 16]) -> Self {
        Uuid(b)
    }

    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

/// A tagged field this codec has no definition for, kept verbatim so that a
/// decoded message re-encodes with it. Keep a struct's list sorted by tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTaggedField {
    pub tag: u32,
    /// The field's encoded value, without tag and length.
    pub data: Bytes,
}

/// Why a value could not be encoded at the requested version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    /// The struct being encoded (a message or one of its nested structs).
    pub message: &'static str,
    /// The field at fault; empty when the whole message is.
    pub field: &'static str,
    pub version: i16,
    pub kind: EncodeErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeErrorKind {
    /// The codec does not implement this version.
    UnsupportedVersion,
    /// The field does not exist in this version, holds a non-default value,
    /// and the schema says dropping it would change the meaning.
    NotInVersion,
    /// The field is null but this version cannot express null.
    NullNotAllowed,
    /// The value is longer than this encoding can express.
    TooLong { len: usize, max: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EncodeErrorKind::UnsupportedVersion => {
                write!(
                    f,
                    "{} does not support version {}",
                    self.message, self.version
                )
            }
            EncodeErrorKind::NotInVersion => write!(
                f,
                "{}.{} has a non-default value but does not exist in version {}",
                self.message, self.field, self.version
            ),
            EncodeErrorKind::NullNotAllowed => write!(
                f,
                "{}.{} is null but version {} does not allow null",
                self.message, self.field, self.version
            ),
            EncodeErrorKind::TooLong { len, max } => write!(
                f,
                "{}.{} has length {} but version {} allows at most {}",
                self.message, self.field, len, self.version, max
            ),
        }
    }
}

impl std::error::Error for EncodeError {}

/// A versioned Kafka message (request or response body, header, or other
/// schema-defined data) with its codec.
pub trait Message: Sized {
    /// Lowest and highest version this codec implements.
    const VERSIONS: (i16, i16);
    /// First flexible version, if any.
    const FLEXIBLE_FROM: Option<i16>;
    /// Appends the encoding of `self` at `version`. On error nothing is
    /// appended.
    fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError>;
    /// Exact number of bytes [`Message::encode`] appends at `version`.
    fn encoded_len(&self, version: i16) -> usize;
    /// Decodes one value at `version`, leaving any following bytes unread.
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError>;
}

/// A request body and what goes with it on the wire.
pub trait Request: Message {
    const API_KEY: ApiKey;
    type Response: Message;
    /// Highest version that Kafka considers stable; a client should not send
    /// a higher one even if the broker advertises it.
    const MAX_STABLE_VERSION: i16 = <Self as Message>::VERSIONS.1;
    fn request_header_version(version: i16) -> i16;
    fn response_header_version(version: i16) -> i16;
}

/// Primitive readers and writers the generated code is made of. None of
/// them panics on any input; readers bound every length by the bytes left.
pub(super) mod codec {
    use super::{EncodeError, EncodeErrorKind, RawTaggedField};
    use crate::protocol::wire::{uvarint_len, BufMutExt, DecodeError, DecodeErrorKind, Reader};
    use bytes::{BufMut, Bytes, BytesMut};

    /// Kafka caps every string at 32767 bytes, compact or not.
    const MAX_STRING: usize = 0x7fff;
    const MAX_COMPACT: usize = u32::MAX as usize - 1;
    const MAX_I32: usize = i32::MAX as usize;

    #[cold]
    #[inline(never)]
    fn encode_error(
        m: &'static str,
        f: &'static str,
        v: i16,
        kind: EncodeErrorKind,
    ) -> EncodeError {
        EncodeError {
            message: m,
            field: f,
            version: v,
            kind,
        }
    }

    #[cold]
    #[inline(never)]
    pub fn unsupported_version(m: &'static str, v: i16) -> EncodeError {
        encode_error(m, "", v, EncodeErrorKind::UnsupportedVersion)
    }

    #[cold]
    #[inline(never)]
    pub fn not_in_version(m: &'static str, f: &'static str, v: i16) -> EncodeError {
        encode_error(m, f, v, EncodeErrorKind::NotInVersion)
    }

    #[cold]
    #[inline(never)]
    pub fn decode_unsupported_version(m: &'static str, v: i16) -> DecodeError {
        DecodeError::new(m, DecodeErrorKind::UnsupportedVersion(v))
    }

    #[cold]
    #[inline(never)]
    fn unexpected_null(what: &'static str) -> DecodeError {
        DecodeError::new(what, DecodeErrorKind::UnexpectedNull)
    }

    /// The value of an optional field in a version where it may not be null.
    #[inline]
    pub fn non_null<'a, T: ?Sized>(
        v: Option<&'a T>,
        m: &'static str,
        f: &'static str,
        ver: i16,
    ) -> Result<&'a T, EncodeError> {
        match v {
            Some(v) => Ok(v),
            None => Err(encode_error(m, f, ver, EncodeErrorKind::NullNotAllowed)),
        }
    }

    #[inline]
    fn check_len(
        len: usize,
        max: usize,
        m: &'static str,
        f: &'static str,
        v: i16,
    ) -> Result<(), EncodeError> {
        if len > max {
            return Err(encode_error(m, f, v, EncodeErrorKind::TooLong { len, max }));
        }
        Ok(())
    }

    /// Width of a compact (uvarint N+1) length prefix.
    #[inline]
    fn compact_prefix(len: usize) -> usize {
        uvarint_len(u32::try_from(len).unwrap_or(u32::MAX - 1).saturating_add(1))
    }

    // ---- encoding ----

    #[inline]
    pub fn put_str(
        buf: &mut BytesMut,
        s: &str,
        flexible: bool,
        m: &'static str,
        f: &'static str,
        v: i16,
    ) -> Result<(), EncodeError> {
        check_len(s.len(), MAX_STRING, m, f, v)?;
        if flexible {
            buf.put_uvarint(s.len() as u32 + 1);
        } else {
            buf.put_i16(s.len() as i16);
        }
        buf.put_slice(s.as_bytes());
        Ok(())
    }

    #[inline]
    pub fn put_opt_str(
        buf: &mut BytesMut,
        s: Option<&str>,
        flexible: bool,
        m: &'static str,
        f: &'static str,
        v: i16,
    ) -> Result<(), EncodeError> {
        match s {
            Some(s) => put_str(buf, s, flexible, m, f, v),
            None => {
                if flexible {
                    buf.put_u8(0);
                } else {
                    buf.put_i16(-1);
                }
                Ok(())
            }
        }
    }

    #[inline]
    pub fn str_size(s: &str, flexible: bool) -> usize {
        s.len() + if flexible { compact_prefix(s.len()) } else { 2 }
    }

    #[inline]
    pub fn opt_str_size(s: Option<&str>, flexible: bool) -> usize {
        match s {
            Some(s) => str_size(s, flexible),
            None if flexible => 1,
            None => 2,
        }
    }

    /// Length prefix of bytes, records and arrays (int32 or compact).
    #[inline]
    pub fn put_len(
        buf: &mut BytesMut,
        len: usize,
        flexible: bool,
        m: &'static str,
        f: &'static str,
        v: i16,
    ) -> Result<(), EncodeError> {
        if flexible {
            check_len(len, MAX_COMPACT, m, f, v)?;
            buf.put_uvarint(len as u32 + 1);
        } else {
            check_len(len, MAX_I32, m, f, v)?;
            buf.put_i32(len as i32);
        }
        Ok(())
    }

    /// The null marker of bytes, records and arrays.
    #[inline]
    pub fn put_null(buf: &mut BytesMut, flexible: bool) {
        if flexible {
            buf.put_u8(0);
        } else {
            buf.put_i32(-1);
        }
    }

    #[inline]
    pub fn len_size(len: usize, flexible: bool) -> usize {
        if flexible {
            compact_prefix(len)
        } else {
            4
        }
    }

    #[inline]
    pub fn null_size(flexible: bool) -> usize {
        if flexible {
            1
        } else {
            4
        }
    }

    #[inline]
    pub fn put_bytes(
        buf: &mut BytesMut,
        b: &[u8],
        flexible: bool,
        m: &'static str,
        f: &'static str,
        v: i16,
    ) -> Result<(), EncodeError> {
        put_len(buf, b.len(), flexible, m, f, v)?;
        buf.put_slice(b);
        Ok(())
    }

    #[inline]
    pub fn put_opt_bytes(
        buf: &mut BytesMut,
        b: Option<&Bytes>,
        flexible: bool,
        m: &'static str,
        f: &'static str,
        v: i16,
    ) -> Result<(), EncodeError> {
        match b {
            Some(b) => put_bytes(buf, b, flexible, m, f, v),
            None => {
                put_null(buf, flexible);
                Ok(())
            }
        }
    }

    #[inline]
    pub fn bytes_size(b: &[u8], flexible: bool) -> usize {
        b.len() + len_size(b.len(), flexible)
    }

    #[inline]
    pub fn opt_bytes_size(b: Option<&Bytes>, flexible: bool) -> usize {
        match b {
            Some(b) => bytes_size(b, flexible),
            None => null_size(flexible),
        }
    }

    /// Writes the unknown tagged fields from `raw[*next..]` whose tag is
    /// below `below`, so known and unknown fields come out in tag order.
    #[inline]
    pub fn put_raw_tags_below(
        buf: &mut BytesMut,
        raw: &[RawTaggedField],
        next: &mut usize,
        below: u32,
    ) {
        while let Some(f) = raw.get(*next) {
            if f.tag >= below {
                break;
            }
            put_raw_tag(buf, f);
            *next += 1;
        }
    }

    /// Writes the unknown tagged fields from `raw[next..]`.
    #[inline]
    pub fn put_raw_tags_rest(buf: &mut BytesMut, raw: &[RawTaggedField], next: usize) {
        for f in raw.get(next..).unwrap_or_default() {
            put_raw_tag(buf, f);
        }
    }

    /// A whole tagged-field section holding only unknown fields.
    #[inline]
    pub fn put_unknown_tags(buf: &mut BytesMut, raw: &[RawTaggedField]) {
        buf.put_uvarint(raw.len() as u32);
        put_raw_tags_rest(buf, raw, 0);
    }

    /// Size of a tagged-field section holding only unknown fields.
    #[inline]
    pub fn unknown_tags_size(raw: &[RawTaggedField]) -> usize {
        uvarint_size(raw.len()) + raw_tags_size(raw)
    }

    fn put_raw_tag(buf: &mut BytesMut, f: &RawTaggedField) {
        buf.put_uvarint(f.tag);
        buf.put_uvarint(f.data.len() as u32);
        buf.put_slice(&f.data);
    }

    #[inline]
    pub fn put_tag_header(buf: &mut BytesMut, tag: u32, size: usize) {
        buf.put_uvarint(tag);
        buf.put_uvarint(size as u32);
    }

    /// Encoded size of a tagged field whose value takes `size` bytes.
    #[inline]
    pub fn tagged_size(tag: u32, size: usize) -> usize {
        uvarint_len(tag) + uvarint_len(size as u32) + size
    }

    pub fn raw_tags_size(raw: &[RawTaggedField]) -> usize {
        raw.iter().map(|f| tagged_size(f.tag, f.data.len())).sum()
    }

    #[inline]
    pub fn uvarint_size(v: usize) -> usize {
        uvarint_len(v as u32)
    }

    // ---- decoding ----

    /// Reads a string/bytes/array length: `None` for null. `wide` selects
    /// an int32 (bytes, arrays) over an int16 (strings) in the classic
    /// encoding.
    #[inline]
    fn get_len(
        r: &mut Reader,
        flexible: bool,
        wide: bool,
        what: &'static str,
    ) -> Result<Option<usize>, DecodeError> {
        if flexible {
            let n = r.uvarint(what)?;
            Ok(n.checked_sub(1).map(|n| n as usize))
        } else {
            let n: i32 = if wide {
                r.i32(what)?
            } else {
                r.i16(what)?.into()
            };
            match n {
                -1 => Ok(None),
                n if n < 0 => Err(DecodeError::new(
                    what,
                    DecodeErrorKind::NegativeLength(n.into()),
                )),
                n => Ok(Some(n as usize)),
            }
        }
    }

    fn get_str_body(r: &mut Reader, len: usize, what: &'static str) -> Result<String, DecodeError> {
        if len > MAX_STRING {
            return Err(DecodeError::new(
                what,
                DecodeErrorKind::TooLarge {
                    declared: len as u64,
                    limit: MAX_STRING as u64,
                },
            ));
        }
        let raw = r.slice(len, what)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError::new(what, DecodeErrorKind::InvalidUtf8)),
        }
    }

    #[inline]
    pub fn get_str(
        r: &mut Reader,
        flexible: bool,
        what: &'static str,
    ) -> Result<String, DecodeError> {
        match get_len(r, flexible, false, what)? {
            Some(n) => get_str_body(r, n, what),
            None => Err(unexpected_null(what)),
        }
    }

    #[inline]
    pub fn get_opt_str(
        r: &mut Reader,
        flexible: bool,
        what: &'static str,
    ) -> Result<Option<String>, DecodeError> {
        match get_len(r, flexible, false, what)? {
            Some(n) => get_str_body(r, n, what).map(Some),
            None => Ok(None),
        }
    }

    #[inline]
    pub fn get_bytes(
        r: &mut Reader,
        flexible: bool,
        what: &'static str,
    ) -> Result<Bytes, DecodeError> {
        match get_len(r, flexible, true, what)? {
            Some(n) => r.bytes(n, what),
            None => Err(unexpected_null(what)),
        }
    }

    #[inline]
    pub fn get_opt_bytes(
        r: &mut Reader,
        flexible: bool,
        what: &'static str,
    ) -> Result<Option<Bytes>, DecodeError> {
        match get_len(r, flexible, true, what)? {
            Some(n) => r.bytes(n, what).map(Some),
            None => Ok(None),
        }
    }

    /// Reads an array length and checks that `len * min_elem` bytes are
    /// left, so the caller may allocate `len` elements.
    #[inline]
    pub fn get_array_len(
        r: &mut Reader,
        flexible: bool,
        min_elem: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        match get_len(r, flexible, true, what)? {
            Some(n) => {
                r.check_count(n, min_elem, what)?;
                Ok(n)
            }
            None => Err(unexpected_null(what)),
        }
    }

    #[inline]
    pub fn get_opt_array_len(
        r: &mut Reader,
        flexible: bool,
        min_elem: usize,
        what: &'static str,
    ) -> Result<Option<usize>, DecodeError> {
        match get_len(r, flexible, true, what)? {
            Some(n) => {
                r.check_count(n, min_elem, what)?;
                Ok(Some(n))
            }
            None => Ok(None),
        }
    }

    /// Elements to reserve for a checked count of `n`. Counts are already
    /// bounded by the bytes left; this also keeps a frame that declares many
    /// elements but holds junk from costing more than a small reservation
    /// before decoding fails. Real elements beyond it grow the vector as
    /// they are decoded.
    #[inline]
    pub fn prealloc(n: usize) -> usize {
        const MAX_PREALLOC: usize = 1024;
        n.min(MAX_PREALLOC)
    }

    /// Number of tagged fields; each takes at least two bytes.
    #[inline]
    pub fn get_tag_count(r: &mut Reader, what: &'static str) -> Result<usize, DecodeError> {
        let n = r.uvarint(what)? as usize;
        r.check_count(n, 2, what)?;
        Ok(n)
    }

    /// Reads a tag and its size; returns the tag and a reader over the value.
    #[inline]
    pub fn get_tagged(r: &mut Reader, what: &'static str) -> Result<(u32, Reader), DecodeError> {
        let tag = r.uvarint(what)?;
        let size = r.uvarint(what)? as usize;
        Ok((tag, r.sub_reader(size, what)?))
    }

    pub fn raw_tag(tag: u32, value: &Reader) -> RawTaggedField {
        RawTaggedField {
            tag,
            data: value.rest(),
        }
    }
}
