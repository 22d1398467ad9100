//! Compression codecs for record batches.
//!
//! All four Kafka codecs are implemented in pure Rust by default:
//! gzip (`flate2` on `miniz_oxide`), snappy (`snap`), LZ4 (`lz4_flex`
//! blocks inside our own LZ4 frame reader and writer) and zstd (`rusty_zstd`).
//! The `zstd-c` cargo feature switches zstd to the C library for speed.
//!
//! Decompression is always bounded: output is produced into one buffer that
//! never grows beyond the caller's limit; a payload that would decompress to
//! more is rejected with [`RecordError::DecompressedTooLarge`] as soon as the
//! limit is crossed, so a small "decompression bomb" costs at most `limit`
//! bytes of memory.

use std::fmt;

use bytes::{Bytes, BytesMut};

use super::error::RecordError;

mod gzip;
mod lz4;
mod snappy;
mod zstd;

/// A record batch compression codec (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression (id 0).
    #[default]
    None,
    /// gzip (id 1).
    Gzip,
    /// Snappy (id 2). Written in the xerial framing that the Java client
    /// uses; raw snappy is accepted on read.
    Snappy,
    /// LZ4 frame format (id 3), independent 64 KiB blocks.
    Lz4,
    /// Zstandard (id 4).
    Zstd,
}

impl Compression {
    /// All codecs, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec for a wire id (attributes bits 0-2), or `None` if unknown.
    pub fn from_id(id: u8) -> Option<Compression> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The wire id of this codec.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec's name as used in Kafka configuration (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the LZ4 frame header checksum (HC byte) is checked. Kafka's early
/// LZ4 writer hashed the magic number together with the frame descriptor;
/// magic 0 readers must ignore the byte and magic 1 readers should accept
/// that variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lz4HeaderCheck {
    /// Correct checksum required (magic 2).
    Strict,
    /// Correct checksum or Kafka's old variant (magic 1).
    AllowBroken,
    /// Not checked at all (magic 0, like the Java client).
    Ignore,
}

/// Compresses `input` with `codec` and appends the result to `out`.
///
/// `level` is a codec-specific compression level: gzip 0-9 (default 6, as
/// the Java client), zstd -7..=22 (default 3; the `zstd-c` feature accepts
/// libzstd's wider negative range). LZ4 and snappy have a single speed and
/// ignore it.
/// For [`Compression::None`] the input is copied unchanged.
pub fn compress(
    codec: Compression,
    level: Option<i32>,
    input: &[u8],
    out: &mut BytesMut,
) -> Result<(), RecordError> {
    match codec {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        Compression::Gzip => gzip::compress(input, level, out),
        Compression::Snappy => snappy::compress(input, out),
        Compression::Lz4 => lz4::compress(input, out),
        Compression::Zstd => zstd::compress(input, level, out),
    }
}

/// Decompresses a whole `codec` payload into a new buffer of at most
/// `max_output` bytes.
///
/// Invariant: the returned buffer is never longer than `max_output`, and no
/// allocation larger than `max_output` (plus a codec window bounded by the
/// format: 4 MiB for LZ4, one 128 KiB block for zstd) is
/// made, whatever sizes the payload declares. Payloads of a magic 2 batch are
/// expected (LZ4 header checksum strictly checked). For
/// [`Compression::None`] the input is copied, subject to the same bound.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_output: usize,
) -> Result<Bytes, RecordError> {
    decompress_with(codec, input, max_output, Lz4HeaderCheck::Strict)
}

pub(crate) fn decompress_with(
    codec: Compression,
    input: &[u8],
    max_output: usize,
    lz4_check: Lz4HeaderCheck,
) -> Result<Bytes, RecordError> {
    let mut out = BoundedOut::new(codec, max_output);
    match codec {
        Compression::None => out.extend_from_slice(input)?,
        Compression::Gzip => gzip::decompress(input, &mut out)?,
        Compression::Snappy => snappy::decompress(input, &mut out)?,
        Compression::Lz4 => lz4::decompress(input, &mut out, lz4_check)?,
        Compression::Zstd => zstd::decompress(input, &mut out)?,
    }
    Ok(out.into_bytes())
}

/// Why a decoder driven by [`BoundedOut::append_bounded`] stopped.
#[cfg_attr(feature = "zstd-c", allow(dead_code))]
pub(crate) enum AppendError {
    /// Its output would have crossed the limit.
    TooLarge,
    /// Anything else: corrupt input, a checksum mismatch, ...
    Other(RecordError),
}

/// An output buffer that refuses to grow beyond a limit.
///
/// Invariants: `filled <= buf.len() <= max`; `buf[..filled]` is output,
/// `buf[filled..]` is initialised scratch space (contents unspecified)
/// handed to decompressors.
pub(crate) struct BoundedOut {
    buf: Vec<u8>,
    filled: usize,
    max: usize,
    codec: Compression,
}

impl BoundedOut {
    pub(crate) fn new(codec: Compression, max: usize) -> Self {
        BoundedOut {
            buf: Vec::new(),
            filled: 0,
            max,
            codec,
        }
    }

    pub(crate) fn too_large(&self) -> RecordError {
        RecordError::DecompressedTooLarge {
            base_offset: None,
            codec: self.codec,
            limit: self.max,
        }
    }

    /// Bytes of output so far.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.filled
    }

    /// Output written so far.
    pub(crate) fn filled(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    /// Bytes that may still be written before the limit.
    #[inline]
    pub(crate) fn room(&self) -> usize {
        self.max - self.filled
    }

    /// Makes the allocation at least `hint` bytes (clamped to the limit), so
    /// that a payload whose size is known up front decodes without regrowth.
    pub(crate) fn size_hint(&mut self, hint: usize) {
        let want = hint.min(self.max);
        if want > self.buf.capacity() {
            self.buf.reserve_exact(want - self.buf.len());
        }
    }

    /// Returns initialised scratch of up to `want` bytes after the output, fewer
    /// only if the limit is nearer. Callers write into it and then
    /// [`commit`](Self::commit) what they wrote.
    pub(crate) fn spare(&mut self, want: usize) -> &mut [u8] {
        let want = want.min(self.room());
        let need = self.filled + want;
        if self.buf.len() < need {
            // Grow geometrically, but never past the limit.
            let target = need
                .max(self.buf.len().saturating_mul(2))
                .min(self.max)
                .max(need);
            self.buf.resize(target, 0);
        }
        &mut self.buf[self.filled..need]
    }

    /// Like [`spare`](Self::spare), but also returns the last `dict_len`
    /// bytes of output (the history an LZ4 linked block may refer to).
    pub(crate) fn spare_with_history(
        &mut self,
        want: usize,
        dict_len: usize,
    ) -> (&[u8], &mut [u8]) {
        let n = self.spare(want).len();
        let start = self.filled.saturating_sub(dict_len);
        let (head, tail) = self.buf.split_at_mut(self.filled);
        (&head[start..], &mut tail[..n])
    }

    /// The output written since position `start` plus all scratch after it,
    /// the scratch grown first so that the slice holds at least `len` bytes
    /// (fewer only if the limit is nearer). For decoders that need their
    /// whole output contiguous (back-references into it); they report what
    /// they wrote with [`set_len`](Self::set_len).
    pub(crate) fn from(&mut self, start: usize, len: usize) -> &mut [u8] {
        let start = start.min(self.filled);
        let need = start.saturating_add(len).min(self.max);
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        &mut self.buf[start..]
    }

    /// Sets the output length (clamped to the buffer).
    pub(crate) fn set_len(&mut self, n: usize) {
        self.filled = n.min(self.buf.len());
    }

    /// Total bytes allocated (output plus scratch).
    pub(crate) fn allocated(&self) -> usize {
        self.buf.len()
    }

    /// The limit.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Marks `n` scratch bytes as output. `n` must not exceed the length of
    /// the last scratch slice; larger values are clamped.
    pub(crate) fn commit(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.len());
    }

    /// Appends bytes, failing if the limit would be crossed.
    pub(crate) fn extend_from_slice(&mut self, data: &[u8]) -> Result<(), RecordError> {
        if data.len() > self.room() {
            return Err(self.too_large());
        }
        let dst = self.spare(data.len());
        dst.copy_from_slice(data);
        self.commit(data.len());
        Ok(())
    }

    /// Reads `r` to its end into the buffer, failing as soon as more than
    /// the limit would be produced.
    #[cfg_attr(not(feature = "zstd-c"), allow(dead_code))]
    pub(crate) fn read_to_end(&mut self, mut r: impl std::io::Read) -> Result<(), RecordError> {
        loop {
            if self.room() == 0 {
                // Full: the stream must be at its end now.
                let mut probe = [0u8; 1];
                return match r.read(&mut probe) {
                    Ok(0) => Ok(()),
                    Ok(_) => Err(self.too_large()),
                    Err(e) => Err(RecordError::decompression(self.codec, e)),
                };
            }
            let chunk = (self.buf.len() - self.filled).max(32 * 1024);
            let dst = self.spare(chunk);
            match r.read(dst) {
                Ok(0) => return Ok(()),
                Ok(n) => self.commit(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(RecordError::decompression(self.codec, e)),
            }
        }
    }

    /// Hands the output so far, as a `Vec`, to a decoder that appends to it
    /// and enforces the limit itself (it is given the room left); the
    /// decoder's own "limit crossed" becomes
    /// [`RecordError::DecompressedTooLarge`]. Output past the limit is an
    /// error even if the decoder did not say so.
    #[cfg_attr(feature = "zstd-c", allow(dead_code))]
    pub(crate) fn append_bounded(
        &mut self,
        decode: impl FnOnce(&mut Vec<u8>, usize) -> Result<(), AppendError>,
    ) -> Result<(), RecordError> {
        self.buf.truncate(self.filled);
        let room = self.room();
        let result = decode(&mut self.buf, room);
        if self.buf.len() > self.max {
            self.buf.truncate(self.filled);
            return Err(self.too_large());
        }
        self.filled = self.buf.len();
        match result {
            Ok(()) => Ok(()),
            Err(AppendError::TooLarge) => Err(self.too_large()),
            Err(AppendError::Other(e)) => Err(e),
        }
    }

    pub(crate) fn into_bytes(mut self) -> Bytes {
        self.buf.truncate(self.filled);
        Bytes::from(self.buf)
    }
}
