//! Zstandard. Pure Rust (`rusty_zstd`) by default; the C library with the
//! `zstd-c` feature. Both honour the configured level (default 3, as the
//! Java client).

use bytes::BytesMut;

#[cfg(not(feature = "zstd-c"))]
use super::AppendError;
use super::{BoundedOut, Compression};
use crate::record::error::RecordError;

/// Largest window accepted from a frame header: 2^27, the default limit of
/// the reference decoder (and of zstd-jni, the Java client's decoder).
/// Memory actually used is bounded by the output limit, not by this.
const MAX_WINDOW: u64 = 1 << 27;

/// `compression.zstd.level` when unset: libzstd's and the Java client's 3.
const DEFAULT_LEVEL: i32 = 3;

fn derr(e: impl std::fmt::Display) -> RecordError {
    RecordError::decompression(Compression::Zstd, e)
}

#[cfg(not(feature = "zstd-c"))]
pub(super) fn compress(
    input: &[u8],
    level: Option<i32>,
    out: &mut BytesMut,
) -> Result<(), RecordError> {
    let opts = rusty_zstd::CompressOptions {
        level: level
            .unwrap_or(DEFAULT_LEVEL)
            .clamp(rusty_zstd::MIN_CLEVEL, rusty_zstd::MAX_CLEVEL),
        // No XXH64 content checksum: the batch CRC-32C already covers the
        // compressed bytes, and libzstd (the Java client's zstd-jni) writes
        // none by default either.
        checksum: false,
    };
    let frame = rusty_zstd::compress_with(input, opts).map_err(|e| RecordError::Compression {
        codec: Compression::Zstd,
        message: e.to_string(),
    })?;
    out.extend_from_slice(&frame);
    Ok(())
}

#[cfg(feature = "zstd-c")]
pub(super) fn compress(
    input: &[u8],
    level: Option<i32>,
    out: &mut BytesMut,
) -> Result<(), RecordError> {
    use bytes::BufMut;
    let level = level.unwrap_or(DEFAULT_LEVEL);
    let mut w = out.writer();
    zstd::stream::copy_encode(input, &mut w, level).map_err(|e| RecordError::Compression {
        codec: Compression::Zstd,
        message: e.to_string(),
    })
}

#[cfg(not(feature = "zstd-c"))]
pub(super) fn decompress(input: &[u8], out: &mut BoundedOut) -> Result<(), RecordError> {
    use rusty_zstd::{decompress_into_with_limit, DecompressOptions, Error};
    let opts = DecompressOptions {
        window_max: MAX_WINDOW,
        force_ignore_checksum: false,
    };
    // One call decodes every frame (skippable frames ignored) straight into
    // the output, refusing a declared content size beyond the limit before
    // allocating and stopping within one block (128 KiB) past it otherwise.
    out.append_bounded(
        |buf, room| match decompress_into_with_limit(buf, input, opts, room) {
            Ok(_) => Ok(()),
            Err(Error::ContentSizeTooLarge) => Err(AppendError::TooLarge),
            Err(e) => Err(AppendError::Other(derr(e))),
        },
    )
}

#[cfg(feature = "zstd-c")]
pub(super) fn decompress(input: &[u8], out: &mut BoundedOut) -> Result<(), RecordError> {
    let mut d = zstd::stream::read::Decoder::with_buffer(input).map_err(derr)?;
    d.window_log_max(27).map_err(derr)?;
    let _ = MAX_WINDOW;
    out.read_to_end(d)
}
