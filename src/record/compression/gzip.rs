//! gzip (RFC 1952): `flate2` on the pure-Rust `miniz_oxide` backend to
//! compress; the `miniz_oxide` inflater driven directly to decompress, so
//! that each member inflates straight into the bounded output buffer (one
//! contiguous window, no intermediate ring buffer or copy).

use std::io::Write;

use bytes::{BufMut, BytesMut};
use flate2::write::GzEncoder;
use miniz_oxide::inflate::core::{decompress as inflate, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

use super::{BoundedOut, Compression};
use crate::record::error::RecordError;

/// Level used when none is configured: zlib's default, as the Java client.
const DEFAULT_LEVEL: u32 = 6;

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;

fn err(e: impl std::fmt::Display) -> RecordError {
    RecordError::decompression(Compression::Gzip, e)
}

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
    let mut hint = 0;
    if let Some(t) = input.len().checked_sub(4).and_then(|i| input.get(i..)) {
        let mut a = [0u8; 4];
        a.copy_from_slice(t);
        hint = u32::from_le_bytes(a) as usize;
    }
    let mut decomp = Box::<DecompressorOxide>::default();
    let mut rest = member(input, out, &mut decomp, hint)?;
    // Further members are concatenated content. Bytes after the last member
    // that do not start another one are ignored, as java.util.zip's
    // GZIPInputStream does.
    while rest.starts_with(&[0x1f, 0x8b]) {
        rest = member(rest, out, &mut decomp, 0)?;
    }
    Ok(())
}

/// Takes `n` bytes off the front of `s`.
fn take<'a>(s: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], RecordError> {
    if s.len() < n {
        return Err(err(format!("truncated {what}")));
    }
    let (a, b) = s.split_at(n);
    *s = b;
    Ok(a)
}

/// Skips a zero-terminated header field.
fn skip_cstr(s: &mut &[u8], what: &str) -> Result<(), RecordError> {
    let n = s
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| err(format!("unterminated {what}")))?;
    take(s, n + 1, what).map(|_| ())
}

/// Inflates one member, verifies its trailer, returns the bytes after it.
/// `hint` is the expected inflated size (0 if unknown).
fn member<'a>(
    input: &'a [u8],
    out: &mut BoundedOut,
    d: &mut DecompressorOxide,
    hint: usize,
) -> Result<&'a [u8], RecordError> {
    let mut s = input;
    let h = take(&mut s, 10, "gzip header")?;
    if h[0] != 0x1f || h[1] != 0x8b {
        return Err(err("bad gzip magic"));
    }
    if h[2] != 8 {
        return Err(err(format!("unsupported gzip method {}", h[2])));
    }
    let flg = h[3];
    if flg & FRESERVED != 0 {
        return Err(err("reserved gzip flags set"));
    }
    if flg & FEXTRA != 0 {
        let x = take(&mut s, 2, "gzip extra length")?;
        take(
            &mut s,
            u16::from_le_bytes([x[0], x[1]]) as usize,
            "gzip extra field",
        )?;
    }
    if flg & FNAME != 0 {
        skip_cstr(&mut s, "gzip file name")?;
    }
    if flg & FCOMMENT != 0 {
        skip_cstr(&mut s, "gzip comment")?;
    }
    if flg & FHCRC != 0 {
        let header_len = input.len() - s.len();
        let stored = take(&mut s, 2, "gzip header crc")?;
        let computed = crc32fast::hash(input.get(..header_len).unwrap_or_default()) as u16;
        if u16::from_le_bytes([stored[0], stored[1]]) != computed {
            return Err(err("gzip header checksum mismatch"));
        }
    }

    // Inflate with the member's whole output as the window. Back-references
    // cannot reach into earlier members: the slice starts at this member.
    *d = DecompressorOxide::default();
    let start = out.len();
    let mut written = 0usize;
    // Start with the hinted size (exact for a single member) or a guess,
    // then double; the buffer never grows past the limit.
    // The hint is untrusted: deflate cannot expand more than 1032:1, so a
    // larger claim is not honoured with an allocation.
    let possible = s.len().saturating_mul(1032).saturating_add(1024);
    let mut want = if hint > 0 {
        hint.min(possible)
    } else {
        s.len().saturating_mul(4).max(32 * 1024)
    };
    loop {
        let dst = out.from(start, want);
        let cur = dst.len();
        let (status, consumed, n) = inflate(
            d,
            s,
            dst,
            written,
            inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
        );
        written += n;
        s = s.get(consumed..).unwrap_or_default();
        match status {
            TINFLStatus::Done => break,
            TINFLStatus::HasMoreOutput => {
                if out.allocated() >= out.max() {
                    return Err(out.too_large());
                }
                want = cur.saturating_mul(2).max(64 * 1024);
            }
            TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
                return Err(err("truncated deflate stream"))
            }
            other => return Err(err(format!("invalid deflate stream ({other:?})"))),
        }
    }
    out.set_len(start + written);
    let t = take(&mut s, 8, "gzip trailer")?;
    let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    let isize = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
    let data = out.filled().get(start..).unwrap_or_default();
    let computed = crc32fast::hash(data);
    if crc != computed {
        return Err(err(format!(
            "gzip crc mismatch: stored {crc:#010x}, computed {computed:#010x}"
        )));
    }
    if isize != data.len() as u32 {
        return Err(err(format!(
            "gzip length mismatch: stored {isize}, inflated {}",
            data.len()
        )));
    }
    Ok(s)
}
