//! gzip (RFC 1952) on the pure-Rust `miniz_oxide` backend of `flate2`.

use std::io::Write;

use bytes::{BufMut, BytesMut};
use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::{BoundedOut, Compression};
use crate::record::error::RecordError;

/// Level used when none is configured: zlib's default, as the Java client.
const DEFAULT_LEVEL: u32 = 6;

pub(super) fn compress(
    input: &[u8],
    level: Option<i32>,
    out: &mut BytesMut,
) -> Result<(), RecordError> {
    let level = match level {
        Some(l) if (0..=9).contains(&l) => l as u32,
        _ => DEFAULT_LEVEL,
    };
    // Deflate output rarely exceeds the input; reserve that much up front.
    out.reserve(input.len() / 2 + 64);
    let mut enc = GzEncoder::new(out.writer(), flate2::Compression::new(level));
    let err = |e: std::io::Error| RecordError::Compression {
        codec: Compression::Gzip,
        message: e.to_string(),
    };
    enc.write_all(input).map_err(err)?;
    enc.finish().map_err(err)?;
    Ok(())
}

pub(super) fn decompress(input: &[u8], out: &mut BoundedOut) -> Result<(), RecordError> {
    // The trailer's ISIZE field is the uncompressed length modulo 2^32 of the
    // last member: a good (but untrusted, hence clamped) capacity hint.
    if let Some(t) = input.len().checked_sub(4).and_then(|i| input.get(i..)) {
        let mut a = [0u8; 4];
        a.copy_from_slice(t);
        out.size_hint(u32::from_le_bytes(a) as usize);
    }
    // Concatenated members are accepted, like java.util.zip.GZIPInputStream.
    out.read_to_end(MultiGzDecoder::new(input))
}
