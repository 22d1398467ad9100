//! Zstandard. Pure Rust (`ruzstd`) by default; the C library with the
//! `zstd-c` feature.

use bytes::BytesMut;

use super::{BoundedOut, Compression};
use crate::record::error::RecordError;

/// Largest window accepted from a frame header: 2^27, the default limit of
/// the reference decoder (and of zstd-jni, the Java client's decoder).
/// Memory actually used is bounded by the output limit, not by this.
const MAX_WINDOW: u64 = 1 << 27;

fn derr(e: impl std::fmt::Display) -> RecordError {
    RecordError::decompression(Compression::Zstd, e)
}

#[cfg(not(feature = "zstd-c"))]
pub(super) fn compress(
    input: &[u8],
    _level: Option<i32>,
    out: &mut BytesMut,
) -> Result<(), RecordError> {
    use bytes::BufMut;
    use ruzstd::encoding::{CompressionLevel, FrameCompressor};
    // ruzstd implements one real level ("Fastest", about zstd level 1);
    // configured levels are therefore ignored.
    let mut c = FrameCompressor::new(CompressionLevel::Fastest);
    c.set_source(input);
    c.set_drain(out.writer());
    c.compress();
    Ok(())
}

#[cfg(feature = "zstd-c")]
pub(super) fn compress(
    input: &[u8],
    level: Option<i32>,
    out: &mut BytesMut,
) -> Result<(), RecordError> {
    use bytes::BufMut;
    let level = level.unwrap_or(3);
    let mut w = out.writer();
    zstd::stream::copy_encode(input, &mut w, level).map_err(|e| RecordError::Compression {
        codec: Compression::Zstd,
        message: e.to_string(),
    })
}

#[cfg(not(feature = "zstd-c"))]
pub(super) fn decompress(input: &[u8], out: &mut BoundedOut) -> Result<(), RecordError> {
    use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
    use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
    use std::io::Read;

    let mut dec = FrameDecoder::new();
    dec.set_max_window_size(MAX_WINDOW);
    let mut src = input;
    let mut frames = 0usize;
    while !src.is_empty() {
        match dec.reset(&mut src) {
            Ok(()) => {}
            Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                length,
                ..
            })) => {
                // Skippable frame: its payload carries no data.
                src = src
                    .get(length as usize..)
                    .ok_or_else(|| derr("truncated skippable frame"))?;
                continue;
            }
            Err(e) => return Err(derr(e)),
        }
        frames += 1;
        let declared = dec.content_size();
        if declared > out.room() as u64 {
            return Err(out.too_large());
        }
        out.size_hint(out.len() + declared as usize);
        let frame_start = out.len();
        loop {
            // Each call decodes at least one block (at most 128 KiB of
            // output) or fails, so this loop always progresses and the
            // decoder's buffer never runs far past what we drain.
            dec.decode_blocks(&mut src, BlockDecodingStrategy::UptoBytes(256 * 1024))
                .map_err(derr)?;
            loop {
                let n = dec.can_collect();
                if n == 0 {
                    break;
                }
                if n > out.room() {
                    return Err(out.too_large());
                }
                let dst = out.spare(n);
                let got = dec.read(dst).map_err(derr)?;
                out.commit(got);
                if got == 0 {
                    break;
                }
            }
            if dec.is_finished() {
                break;
            }
        }
        if dec.can_collect() != 0 {
            return Err(derr("frame did not drain"));
        }
        if let (Some(stored), Some(computed)) =
            (dec.get_checksum_from_data(), dec.get_calculated_checksum())
        {
            if stored != computed {
                return Err(derr(format!(
                    "content checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )));
            }
        }
        if declared != 0 && (out.len() - frame_start) as u64 != declared {
            return Err(derr(format!(
                "frame declares {declared} bytes but holds {}",
                out.len() - frame_start
            )));
        }
    }
    if frames == 0 {
        return Err(derr("no zstd frame"));
    }
    Ok(())
}

#[cfg(feature = "zstd-c")]
pub(super) fn decompress(input: &[u8], out: &mut BoundedOut) -> Result<(), RecordError> {
    let mut d = zstd::stream::read::Decoder::with_buffer(input).map_err(derr)?;
    d.window_log_max(27).map_err(derr)?;
    let _ = MAX_WINDOW;
    out.read_to_end(d)
}
