//! The LZ4 frame format, read and written here on top of `lz4_flex`'s block
//! codec.
//!
//! Owning the frame layer lets us decode straight into the bounded output
//! buffer (no intermediate block buffer), honour the output limit block by
//! block, and accept Kafka's historical header-checksum quirk for magic 0/1.
//!
//! Frame layout: magic `0x184D2204` (LE), FLG, BD, optional 8-byte content
//! size, optional 4-byte dictionary id, HC (second byte of the xxHash32 of
//! the descriptor); then blocks (LE u32 size, high bit = stored
//! uncompressed; optional xxHash32 per block), an end mark of 0, and an
//! optional xxHash32 of the whole content.

use bytes::BytesMut;
use twox_hash::XxHash32;

use super::{BoundedOut, Compression, Lz4HeaderCheck};
use crate::record::error::RecordError;

const MAGIC: u32 = 0x184D_2204;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const UNCOMPRESSED_BIT: u32 = 0x8000_0000;
/// Bytes of history a linked block may reference.
const WINDOW: usize = 64 * 1024;
/// Block size we write: 64 KiB, what the Java client writes and reads best.
const BLOCK: usize = 64 * 1024;

const FLG_VERSION_MASK: u8 = 0b1100_0000;
const FLG_VERSION_01: u8 = 0b0100_0000;
const FLG_INDEPENDENT: u8 = 0b0010_0000;
const FLG_BLOCK_CHECKSUM: u8 = 0b0001_0000;
const FLG_CONTENT_SIZE: u8 = 0b0000_1000;
const FLG_CONTENT_CHECKSUM: u8 = 0b0000_0100;
const FLG_RESERVED: u8 = 0b0000_0010;
const FLG_DICT_ID: u8 = 0b0000_0001;

fn err(e: impl std::fmt::Display) -> RecordError {
    RecordError::decompression(Compression::Lz4, e)
}

fn xxh32(data: &[u8]) -> u32 {
    XxHash32::oneshot(0, data)
}

/// A cursor over the compressed input.
struct Src<'a>(&'a [u8]);

impl<'a> Src<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], RecordError> {
        if n > self.0.len() {
            return Err(err(format!(
                "truncated {what}: need {n} bytes, {} left",
                self.0.len()
            )));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self, what: &str) -> Result<u8, RecordError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &str) -> Result<u32, RecordError> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
}

pub(super) fn decompress(
    input: &[u8],
    out: &mut BoundedOut,
    check: Lz4HeaderCheck,
) -> Result<(), RecordError> {
    let mut src = Src(input);
    let mut frames = 0usize;
    while !src.0.is_empty() {
        let frame_start = src.0;
        let magic = src.u32("frame magic")?;
        if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
            let n = src.u32("skippable frame size")?;
            src.take(n as usize, "skippable frame")?;
            continue;
        }
        if magic != MAGIC {
            return Err(err(format!("bad frame magic {magic:#010x}")));
        }
        frame(&mut src, frame_start, out, check)?;
        frames += 1;
    }
    if frames == 0 {
        return Err(err("no LZ4 frame"));
    }
    Ok(())
}

fn frame(
    src: &mut Src<'_>,
    frame_start: &[u8],
    out: &mut BoundedOut,
    check: Lz4HeaderCheck,
) -> Result<(), RecordError> {
    let descriptor_start = src.0;
    let flg = src.u8("frame descriptor")?;
    let bd = src.u8("frame descriptor")?;
    if flg & FLG_VERSION_MASK != FLG_VERSION_01 {
        return Err(err(format!("unsupported frame version in FLG {flg:#04x}")));
    }
    if flg & FLG_RESERVED != 0 || bd & 0b1000_1111 != 0 {
        return Err(err("reserved frame descriptor bits set"));
    }
    let block_max = match (bd >> 4) & 0x7 {
        4 => 64 * 1024,
        5 => 256 * 1024,
        6 => 1024 * 1024,
        7 => 4 * 1024 * 1024,
        n => return Err(err(format!("invalid block maximum size code {n}"))),
    };
    let content_size = if flg & FLG_CONTENT_SIZE != 0 {
        let s = src.take(8, "content size")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Some(u64::from_le_bytes(a))
    } else {
        None
    };
    if flg & FLG_DICT_ID != 0 {
        return Err(err("frames that need a dictionary are not supported"));
    }
    let descriptor_len = descriptor_start.len() - src.0.len();
    let hc = src.u8("header checksum")?;
    let descriptor = &descriptor_start[..descriptor_len];
    let correct = (xxh32(descriptor) >> 8) as u8;
    let ok = match check {
        Lz4HeaderCheck::Strict => hc == correct,
        Lz4HeaderCheck::AllowBroken => {
            // Kafka's old writer hashed from the start of the magic number.
            let with_magic = &frame_start[..4 + descriptor_len];
            hc == correct || hc == (xxh32(with_magic) >> 8) as u8
        }
        Lz4HeaderCheck::Ignore => true,
    };
    if !ok {
        return Err(err(format!(
            "frame header checksum mismatch: stored {hc:#04x}, computed {correct:#04x}"
        )));
    }
    if let Some(n) = content_size {
        if n > out.room() as u64 {
            return Err(out.too_large());
        }
        out.size_hint(out.len() + n as usize);
    }

    let independent = flg & FLG_INDEPENDENT != 0;
    let out_start = out.len();
    loop {
        let word = src.u32("block size")?;
        if word == 0 {
            break;
        }
        let stored = word & UNCOMPRESSED_BIT != 0;
        let len = (word & !UNCOMPRESSED_BIT) as usize;
        if len > block_max {
            return Err(err(format!(
                "block of {len} bytes exceeds the frame's maximum {block_max}"
            )));
        }
        let data = src.take(len, "block")?;
        if flg & FLG_BLOCK_CHECKSUM != 0 {
            let stored_sum = src.u32("block checksum")?;
            if xxh32(data) != stored_sum {
                return Err(err("block checksum mismatch"));
            }
        }
        if stored {
            out.extend_from_slice(data)?;
            continue;
        }
        // LZ4 expands at most about 255:1; do not set aside more scratch
        // than this block could fill.
        let fill = block_max.min(len.saturating_mul(256).saturating_add(1024));
        let limited = out.room() < fill;
        let result = if independent {
            lz4_flex::block::decompress_into(data, out.spare(fill))
        } else {
            let history = (out.len() - out_start).min(WINDOW);
            let (dict, dst) = out.spare_with_history(fill, history);
            lz4_flex::block::decompress_into_with_dict(data, dst, dict)
        };
        match result {
            Ok(n) => out.commit(n),
            Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) if limited => {
                return Err(out.too_large());
            }
            Err(e) => return Err(err(e)),
        }
    }
    let produced = out.len() - out_start;
    if flg & FLG_CONTENT_CHECKSUM != 0 {
        let stored_sum = src.u32("content checksum")?;
        let computed = xxh32(&out.filled()[out_start..]);
        if stored_sum != computed {
            return Err(err(format!(
                "content checksum mismatch: stored {stored_sum:#010x}, computed {computed:#010x}"
            )));
        }
    }
    if let Some(n) = content_size {
        if n != produced as u64 {
            return Err(err(format!(
                "frame declares {n} content bytes but holds {produced}"
            )));
        }
    }
    Ok(())
}

/// Writes one frame: independent 64 KiB blocks, no checksums beyond the
/// header's (the batch CRC-32C already covers the payload), blocks that do
/// not shrink stored uncompressed.
pub(super) fn compress(input: &[u8], out: &mut BytesMut) -> Result<(), RecordError> {
    let flg = FLG_VERSION_01 | FLG_INDEPENDENT;
    let bd = 4 << 4; // 64 KiB blocks
    let hc = (xxh32(&[flg, bd]) >> 8) as u8;
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&[flg, bd, hc]);
    let mut table = lz4_flex::block::CompressTable::large();
    for block in input.chunks(BLOCK) {
        let at = out.len();
        let max = lz4_flex::block::get_maximum_output_size(block.len());
        out.resize(at + 4 + max, 0);
        let n = lz4_flex::block::compress_into_with_table(block, &mut out[at + 4..], &mut table)
            .map_err(|e| RecordError::Compression {
                codec: Compression::Lz4,
                message: e.to_string(),
            })?;
        if n < block.len() {
            out[at..at + 4].copy_from_slice(&(n as u32).to_le_bytes());
            out.truncate(at + 4 + n);
        } else {
            out.truncate(at);
            out.extend_from_slice(&(block.len() as u32 | UNCOMPRESSED_BIT).to_le_bytes());
            out.extend_from_slice(block);
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    Ok(())
}
