//! Request and response framing.
//!
//! A frame is a big-endian `i32` size followed by that many bytes. A request
//! frame starts with the request header (v1: api key, api version, correlation
//! id, client id; v2 adds a tagged-field section), a response frame with the
//! response header (v0: correlation id; v1 adds a tagged-field section).
//!
//! Requests are encoded whole by the caller with a placeholder correlation id
//! which the connection task patches in place ([`set_correlation_id`]) when it
//! assigns one, so the request bytes are written exactly once.

use super::wire::{BufMutExt, DecodeError, DecodeErrorKind, Reader};
use bytes::{BufMut, Bytes, BytesMut};

/// Byte offset of the correlation id inside a request frame (after the size
/// prefix, api key and api version).
pub const CORRELATION_ID_OFFSET: usize = 8;

/// Bytes of the size prefix.
pub const SIZE_PREFIX_LEN: usize = 4;

/// Writes the size prefix and request header into a new buffer, then lets
/// `body` append the request body, then fills in the size.
///
/// `header_version` must be 1 or 2 (0 is only used by ControlledShutdown v0,
/// which this client never sends). The correlation id is left as 0.
pub fn encode_request(
    api_key: i16,
    api_version: i16,
    header_version: i16,
    client_id: Option<&str>,
    body_len_hint: usize,
    body: impl FnOnce(&mut BytesMut),
) -> BytesMut {
    let client_len = client_id.map_or(0, str::len).min(i16::MAX as usize);
    let mut buf = BytesMut::with_capacity(SIZE_PREFIX_LEN + 11 + client_len + body_len_hint);
    buf.put_i32(0); // size, patched below
    buf.put_i16(api_key);
    buf.put_i16(api_version);
    buf.put_i32(0); // correlation id, patched by the connection
    match client_id {
        // The client id is always a classic (non-compact) nullable string,
        // even in header v2.
        Some(id) => {
            buf.put_i16(client_len as i16);
            buf.put_slice(&id.as_bytes()[..client_len]);
        }
        None => buf.put_i16(-1),
    }
    if header_version >= 2 {
        buf.put_uvarint(0); // no tagged fields
    }
    body(&mut buf);
    let size = (buf.len() - SIZE_PREFIX_LEN) as i32;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    buf
}

/// Patches the correlation id of an encoded request frame.
///
/// # Panics
/// Never for frames built by [`encode_request`], which are always longer than
/// the header; shorter slices are left untouched.
pub fn set_correlation_id(frame: &mut [u8], correlation_id: i32) {
    if let Some(slot) = frame.get_mut(CORRELATION_ID_OFFSET..CORRELATION_ID_OFFSET + 4) {
        slot.copy_from_slice(&correlation_id.to_be_bytes());
    }
}

/// Reads the api key, version and correlation id back from a request frame
/// (used by tests and scripted peers that play the broker).
pub fn peek_request_header(frame: &[u8]) -> Option<(i16, i16, i32)> {
    if frame.len() < CORRELATION_ID_OFFSET + 4 {
        return None;
    }
    let k = i16::from_be_bytes([frame[4], frame[5]]);
    let v = i16::from_be_bytes([frame[6], frame[7]]);
    let c = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
    Some((k, v, c))
}

/// Validates a response size prefix against the configured cap.
pub fn check_frame_size(size: i32, max: usize) -> Result<usize, DecodeError> {
    if size < 4 {
        // A response must at least carry its correlation id.
        return Err(DecodeError::new(
            "response frame size",
            DecodeErrorKind::NegativeLength(size as i64),
        ));
    }
    let size = size as usize;
    if size > max {
        return Err(DecodeError::new(
            "response frame size",
            DecodeErrorKind::TooLarge {
                declared: size as u64,
                limit: max as u64,
            },
        ));
    }
    Ok(size)
}

/// Splits a response frame (without its size prefix) into its correlation id
/// and the remainder.
pub fn split_correlation_id(frame: Bytes) -> Result<(i32, Bytes), DecodeError> {
    let mut r = Reader::new(frame);
    let id = r.i32("response correlation id")?;
    Ok((id, r.rest()))
}

/// Skips the rest of a response header of `header_version` (0 or 1) whose
/// correlation id was already consumed, leaving the reader at the body.
pub fn skip_response_header_tail(r: &mut Reader, header_version: i16) -> Result<(), DecodeError> {
    if header_version >= 1 {
        skip_tagged_fields(r)?;
    }
    Ok(())
}

/// Skips a tagged-field section.
pub fn skip_tagged_fields(r: &mut Reader) -> Result<(), DecodeError> {
    let n = r.uvarint("tagged field count")? as usize;
    r.check_count(n, 2, "tagged field count")?;
    for _ in 0..n {
        let _tag = r.uvarint("tag")?;
        let len = r.uvarint("tagged field size")? as usize;
        r.skip(len, "tagged field")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_header_v1_layout() {
        let f = encode_request(18, 3, 1, Some("cli"), 0, |b| b.put_u8(0xAB));
        assert_eq!(
            &f[..],
            &[0, 0, 0, 14, 0, 18, 0, 3, 0, 0, 0, 0, 0, 3, b'c', b'l', b'i', 0xAB]
        );
    }

    #[test]
    fn request_header_v2_adds_tag_section_and_correlation_is_patched() {
        let mut f = encode_request(3, 12, 2, None, 0, |_| {});
        set_correlation_id(&mut f, 0x01020304);
        assert_eq!(
            &f[..],
            &[0, 0, 0, 11, 0, 3, 0, 12, 1, 2, 3, 4, 0xff, 0xff, 0]
        );
        assert_eq!(peek_request_header(&f), Some((3, 12, 0x01020304)));
    }

    #[test]
    fn frame_size_bounds() {
        assert!(check_frame_size(3, 100).is_err());
        assert!(check_frame_size(-1, 100).is_err());
        assert!(check_frame_size(i32::MAX, 1 << 20).is_err());
        assert_eq!(check_frame_size(100, 100).unwrap(), 100);
    }

    #[test]
    fn response_header_v1_tagged_fields_are_skipped() {
        let frame = Bytes::from_static(&[0, 0, 0, 7, 1, 5, 2, 0xAA, 0xBB, 0x42]);
        let (id, rest) = split_correlation_id(frame).unwrap();
        assert_eq!(id, 7);
        let mut r = Reader::new(rest);
        skip_response_header_tail(&mut r, 1).unwrap();
        assert_eq!(r.u8("body").unwrap(), 0x42);
        // a hostile tag count cannot make us loop or allocate
        let mut r = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f]));
        assert!(skip_tagged_fields(&mut r).is_err());
    }
}
