//! Snappy: raw blocks, and the xerial framing written by the Java client
//! (`snappy-java`'s `SnappyOutputStream`).
//!
//! Xerial framing: the 8-byte magic `\x82SNAPPY\0`, two big-endian i32
//! (version, minimum compatible version), then blocks, each a big-endian
//! i32 compressed length followed by one raw snappy block.

use bytes::{BufMut, BytesMut};

use super::{BoundedOut, Compression};
use crate::record::error::RecordError;

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
/// Uncompressed bytes per xerial block; snappy-java's default.
const XERIAL_BLOCK: usize = 32 * 1024;

fn err(e: impl std::fmt::Display) -> RecordError {
    RecordError::decompression(Compression::Snappy, e)
}

pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), RecordError> {
    out.put_slice(XERIAL_MAGIC);
    out.put_i32(1); // version
    out.put_i32(1); // minimum compatible version
                    // Room for every block's worst case up front: no reallocation mid-way.
    let blocks = input.len().div_ceil(XERIAL_BLOCK);
    out.reserve(blocks * (4 + snap::raw::max_compress_len(XERIAL_BLOCK.min(input.len()))));
    let mut enc = snap::raw::Encoder::new();
    for block in input.chunks(XERIAL_BLOCK) {
        let at = out.len();
        let max = snap::raw::max_compress_len(block.len());
        out.resize(at + 4 + max, 0);
        let n = enc
            .compress(block, &mut out[at + 4..])
            .map_err(|e| RecordError::Compression {
                codec: Compression::Snappy,
                message: e.to_string(),
            })?;
        out[at..at + 4].copy_from_slice(&(n as u32).to_be_bytes());
        out.truncate(at + 4 + n);
    }
    Ok(())
}

pub(super) fn decompress(input: &[u8], out: &mut BoundedOut) -> Result<(), RecordError> {
    if input.len() >= XERIAL_HEADER_LEN && input.starts_with(XERIAL_MAGIC) {
        let mut rest = &input[XERIAL_HEADER_LEN..];
        let mut dec = snap::raw::Decoder::new();
        while !rest.is_empty() {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return Err(err("truncated xerial block length"));
            };
            let len = i32::from_be_bytes(*len);
            let len = usize::try_from(len)
                .map_err(|_| err(format!("negative xerial block length {len}")))?;
            if len > tail.len() {
                return Err(err(format!(
                    "xerial block of {len} bytes but only {} left",
                    tail.len()
                )));
            }
            let (block, tail) = tail.split_at(len);
            rest = tail;
            raw_block(&mut dec, block, out)?;
        }
        Ok(())
    } else {
        raw_block(&mut snap::raw::Decoder::new(), input, out)
    }
}

/// Decompresses one raw snappy block, whose preamble states its exact size.
fn raw_block(
    dec: &mut snap::raw::Decoder,
    block: &[u8],
    out: &mut BoundedOut,
) -> Result<(), RecordError> {
    let n = snap::raw::decompress_len(block).map_err(err)?;
    if n > out.room() {
        return Err(out.too_large());
    }
    // A snappy element expands at most 64 bytes from 3 (ratio < 22): refuse
    // an impossible claim before allocating for it.
    if n > block.len().saturating_mul(22).saturating_add(16) {
        return Err(err(format!(
            "block of {} bytes cannot hold {n} bytes",
            block.len()
        )));
    }
    let dst = out.spare(n);
    let written = dec.decompress(block, dst).map_err(err)?;
    out.commit(written);
    Ok(())
}
