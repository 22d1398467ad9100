//! Legacy message sets (magic 0 and 1), read-only.
//!
//! A legacy message is `offset: i64, size: i32` followed by `size` bytes:
//! `crc: u32` (CRC-32/IEEE of everything after it), `magic: i8`,
//! `attributes: i8` (compression bits 0-2; for magic 1 bit 3 is the
//! timestamp type), `timestamp: i64` (magic 1 only), then key and value as
//! `i32` length-prefixed bytes (-1 for null).
//!
//! A compressed message ("wrapper") carries, as its value, a compressed
//! message set of uncompressed inner messages of the same magic. For magic 0
//! inner offsets are absolute. For magic 1 they are relative, and the
//! wrapper's offset is the absolute offset of the last inner message, so
//! `absolute = wrapper_offset - last_inner_offset + inner_offset`. A magic 1
//! wrapper with log-append time gives all inner messages its timestamp.

use bytes::Bytes;

use super::batch::{
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, NO_TIMESTAMP,
};
use super::compression::{self, Compression, Lz4HeaderCheck};
use super::decode::{BatchHeader, DecodeOptions, Record, RecordView, Span};
use super::error::{AtOffset, RecordError};
use crate::protocol::wire::{DecodeError, DecodeErrorKind, Reader};

/// Smallest magic 0 message body: crc, magic, attributes, key and value
/// lengths.
pub(crate) const MIN_MESSAGE_LEN_V0: usize = 4 + 1 + 1 + 4 + 4;
/// Smallest magic 1 message body: as magic 0 plus the timestamp.
pub(crate) const MIN_MESSAGE_LEN_V1: usize = MIN_MESSAGE_LEN_V0 + 8;

const COMPRESSION_MASK: i8 = 0x07;
const TIMESTAMP_TYPE_BIT: i8 = 0x08;

fn min_len(magic: i8) -> usize {
    if magic == 0 {
        MIN_MESSAGE_LEN_V0
    } else {
        MIN_MESSAGE_LEN_V1
    }
}

struct Message {
    offset: i64,
    size: i32,
    crc: u32,
    attributes: i8,
    timestamp: i64,
    /// The message after its size field; key and value lie inside.
    body: Bytes,
    /// Where `body` starts in the buffer the message was read from.
    body_start: usize,
    key: Span,
    value: Span,
}

impl Message {
    fn into_record(self, offset: i64, timestamp: i64) -> Record {
        Record::new_legacy(offset, timestamp, self.body, self.key, self.value)
    }
}

/// An `i32` length followed by that many bytes; -1 means null.
fn nullable32(r: &mut Reader, what: &'static str) -> Result<Span, DecodeError> {
    let n = r.i32(what)?;
    if n < 0 {
        if n == -1 {
            return Ok(Span::NULL);
        }
        return Err(DecodeError::new(
            what,
            DecodeErrorKind::NegativeLength(n as i64),
        ));
    }
    let start = r.position();
    r.skip(n as usize, what)?;
    Ok(Span {
        start: start as u32,
        len: n,
    })
}

/// Reads one message of the expected magic.
fn message(r: &mut Reader, magic: i8, check_crc: bool) -> Result<Message, RecordError> {
    let offset = r.i64("message offset")?;
    let size = r.i32("message size").at(offset)?;
    if size < 0 || (size as usize) < min_len(magic) {
        return Err(RecordError::InvalidBatchLength {
            base_offset: offset,
            length: size as i64,
            min: min_len(magic),
            max: r.remaining(),
        });
    }
    let body_start = r.position();
    let body = r.bytes(size as usize, "message").at(offset)?;
    let mut b = Reader::new(body.clone());
    let crc = b.u32("message crc").at(offset)?;
    if check_crc {
        let computed = crc32fast::hash(body.get(4..).unwrap_or_default());
        if computed != crc {
            return Err(RecordError::CrcMismatch {
                base_offset: offset,
                stored: crc,
                computed,
            });
        }
    }
    let m = b.i8("message magic").at(offset)?;
    if m != magic {
        return Err(RecordError::corrupt(
            Some(offset),
            format!("message magic {m} inside a message set of magic {magic}"),
        ));
    }
    let attributes = b.i8("message attributes").at(offset)?;
    let timestamp = if magic >= 1 {
        b.i64("message timestamp").at(offset)?
    } else {
        NO_TIMESTAMP
    };
    let key = nullable32(&mut b, "message key").at(offset)?;
    let value = nullable32(&mut b, "message value").at(offset)?;
    if !b.is_empty() {
        return Err(RecordError::corrupt(
            Some(offset),
            format!(
                "{} bytes after the value of a legacy message",
                b.remaining()
            ),
        ));
    }
    Ok(Message {
        offset,
        size,
        crc,
        attributes,
        timestamp,
        body,
        body_start,
        key,
        value,
    })
}

/// The records of a legacy batch.
#[derive(Debug, Clone)]
pub(crate) enum LegacyBody {
    /// An uncompressed message: its one record.
    Single(Record),
    /// A compressed wrapper: the decompressed inner message set.
    Wrapped {
        inner: Bytes,
        count: u32,
        /// Added to inner offsets to make them absolute.
        adjust: i64,
        magic: i8,
        log_append_time: Option<i64>,
        wrapper_offset: i64,
    },
}

/// Parses a complete legacy message (prefix included) into a batch header
/// and its records. Compressed wrappers are decompressed here, once.
pub(crate) fn parse(
    raw: &Bytes,
    magic: i8,
    opts: &DecodeOptions,
) -> Result<(BatchHeader, LegacyBody), RecordError> {
    let mut r = Reader::new(raw.clone());
    let m = message(&mut r, magic, opts.check_crcs)?;
    let codec_id = (m.attributes & COMPRESSION_MASK) as u8;
    let codec = Compression::from_id(codec_id).ok_or(RecordError::UnknownCompression {
        base_offset: Some(m.offset),
        id: codec_id,
    })?;
    let mut attr_mask = COMPRESSION_MASK;
    if magic >= 1 {
        attr_mask |= TIMESTAMP_TYPE_BIT;
    }
    let log_append = magic >= 1 && m.attributes & TIMESTAMP_TYPE_BIT != 0;
    let mut header = BatchHeader {
        base_offset: m.offset,
        batch_length: m.size,
        partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        magic,
        crc: m.crc,
        attributes: (m.attributes & attr_mask) as i16,
        last_offset_delta: 0,
        base_timestamp: m.timestamp,
        max_timestamp: m.timestamp,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        base_sequence: NO_SEQUENCE,
        record_count: 1,
    };
    if codec == Compression::None {
        let (offset, timestamp) = (m.offset, m.timestamp);
        return Ok((header, LegacyBody::Single(m.into_record(offset, timestamp))));
    }

    let value = m.value.slice(&m.body, 0).ok_or_else(|| {
        RecordError::corrupt(Some(m.offset), "compressed message without a value")
    })?;
    let check = if magic == 0 {
        Lz4HeaderCheck::Ignore
    } else {
        Lz4HeaderCheck::AllowBroken
    };
    let inner =
        compression::decompress_with(codec, &value, opts.limits.max_decompressed_size, check)
            .at(m.offset)?;

    // Walk the inner framing (offset and size only) to learn the count and
    // the offset range; messages are fully decoded during iteration.
    let mut s = Reader::new(inner.clone());
    let mut count: u32 = 0;
    let mut first = None;
    let mut last = 0i64;
    while !s.is_empty() {
        let off = s.i64("inner message offset").at(m.offset)?;
        let size = s.i32("inner message size").at(m.offset)?;
        if size < 0 || (size as usize) < min_len(magic) {
            return Err(RecordError::corrupt(
                Some(m.offset),
                format!("inner message of invalid size {size}"),
            ));
        }
        s.skip(size as usize, "inner message").at(m.offset)?;
        count += 1;
        if count as usize > opts.limits.max_records_per_batch {
            return Err(RecordError::InvalidRecordCount {
                base_offset: m.offset,
                count: count as i64,
                limit: opts.limits.max_records_per_batch as u64,
            });
        }
        first.get_or_insert(off);
        last = off;
    }
    let Some(first) = first else {
        return Err(RecordError::corrupt(
            Some(m.offset),
            "compressed message holds no messages",
        ));
    };
    let adjust = if magic >= 1 {
        m.offset.wrapping_sub(last)
    } else {
        0
    };
    header.base_offset = first.wrapping_add(adjust);
    header.last_offset_delta = last.wrapping_sub(first) as i32;
    header.record_count = count as i32;
    if magic == 0 {
        header.base_timestamp = NO_TIMESTAMP;
        header.max_timestamp = NO_TIMESTAMP;
    }
    Ok((
        header,
        LegacyBody::Wrapped {
            inner,
            count,
            adjust,
            magic,
            log_append_time: log_append.then_some(m.timestamp),
            wrapper_offset: m.offset,
        },
    ))
}

impl LegacyBody {
    /// Number of records.
    pub(crate) fn count(&self) -> usize {
        match self {
            LegacyBody::Single(_) => 1,
            LegacyBody::Wrapped { count, .. } => *count as usize,
        }
    }

    fn walker(&self, check_crcs: bool) -> Option<Walker> {
        match self {
            LegacyBody::Single(_) => None,
            LegacyBody::Wrapped {
                inner,
                count,
                adjust,
                magic,
                log_append_time,
                wrapper_offset,
            } => Some(Walker {
                r: Reader::new(inner.clone()),
                left: *count,
                adjust: *adjust,
                magic: *magic,
                log_append_time: *log_append_time,
                wrapper_offset: *wrapper_offset,
                check_crcs,
            }),
        }
    }

    /// Owned iteration.
    pub(crate) fn records(&self, check_crcs: bool) -> LegacyRecords {
        match (self, self.walker(check_crcs)) {
            (_, Some(w)) => LegacyRecords::Wrapped(w),
            (LegacyBody::Single(r), None) => LegacyRecords::Single(Some(r.clone())),
            (LegacyBody::Wrapped { .. }, None) => LegacyRecords::Single(None),
        }
    }

    /// Borrowed iteration.
    pub(crate) fn cursor(&self, check_crcs: bool) -> LegacyCursor<'_> {
        match self {
            LegacyBody::Single(r) => LegacyCursor::Single(Some(r)),
            LegacyBody::Wrapped { inner, .. } => match self.walker(check_crcs) {
                Some(w) => LegacyCursor::Wrapped(inner, w),
                None => LegacyCursor::Single(None),
            },
        }
    }
}

/// Walks the inner messages of a compressed wrapper.
#[derive(Debug, Clone)]
pub(crate) struct Walker {
    r: Reader,
    left: u32,
    adjust: i64,
    magic: i8,
    log_append_time: Option<i64>,
    wrapper_offset: i64,
    check_crcs: bool,
}

impl Walker {
    /// The next inner message with its absolute offset and timestamp.
    fn next(&mut self) -> Option<Result<(Message, i64, i64), RecordError>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let result = message(&mut self.r, self.magic, self.check_crcs).and_then(|m| {
            if m.attributes & COMPRESSION_MASK != 0 {
                return Err(RecordError::corrupt(
                    Some(self.wrapper_offset),
                    "nested compressed message",
                ));
            }
            let offset = m.offset.wrapping_add(self.adjust);
            let timestamp = self.log_append_time.unwrap_or(m.timestamp);
            Ok((m, offset, timestamp))
        });
        if result.is_err() {
            self.left = 0;
        }
        Some(result.map_err(|e| e.at_base_offset(self.wrapper_offset)))
    }
}

/// Owned iterator over a legacy batch's records.
#[derive(Debug, Clone)]
pub(crate) enum LegacyRecords {
    Single(Option<Record>),
    Wrapped(Walker),
}

impl LegacyRecords {
    pub(crate) fn next(&mut self) -> Option<Result<Record, RecordError>> {
        match self {
            LegacyRecords::Single(r) => r.take().map(Ok),
            LegacyRecords::Wrapped(w) => w.next().map(|r| r.map(|(m, o, t)| m.into_record(o, t))),
        }
    }

    pub(crate) fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            LegacyRecords::Single(r) => (r.is_some() as usize, Some(r.is_some() as usize)),
            LegacyRecords::Wrapped(w) => (0, Some(w.left as usize)),
        }
    }
}

/// Borrowed iterator over a legacy batch's records.
#[derive(Debug, Clone)]
pub(crate) enum LegacyCursor<'a> {
    Single(Option<&'a Record>),
    Wrapped(&'a Bytes, Walker),
}

impl<'a> LegacyCursor<'a> {
    pub(crate) fn next(&mut self) -> Option<Result<RecordView<'a>, RecordError>> {
        match self {
            LegacyCursor::Single(r) => r.take().map(|r| Ok(r.view())),
            LegacyCursor::Wrapped(inner, w) => {
                let inner: &'a Bytes = inner;
                w.next().map(|r| {
                    r.map(|(m, offset, timestamp)| {
                        RecordView::from_legacy(
                            inner,
                            m.body_start,
                            m.body.len(),
                            offset,
                            timestamp,
                            m.key,
                            m.value,
                        )
                    })
                })
            }
        }
    }

    pub(crate) fn left(&self) -> usize {
        match self {
            LegacyCursor::Single(r) => r.is_some() as usize,
            LegacyCursor::Wrapped(_, w) => w.left as usize,
        }
    }
}
