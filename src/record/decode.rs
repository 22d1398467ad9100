//! The lazy, zero-copy batch decoder.

use std::iter::FusedIterator;

use bytes::Bytes;

use super::batch::{
    i16_at, i32_at, i64_at, u32_at, ATTRIBUTES_AT, BASE_OFFSET_AT, BASE_SEQUENCE_AT,
    BASE_TIMESTAMP_AT, BATCH_HEADER_LEN, COMPRESSION_MASK, CONTROL_BIT, CRC_AT, DELETE_HORIZON_BIT,
    LAST_OFFSET_DELTA_AT, LEADER_EPOCH_AT, LENGTH_AT, LOG_OVERHEAD, MAGIC_AT, MAX_TIMESTAMP_AT,
    PRODUCER_EPOCH_AT, PRODUCER_ID_AT, RECORDS_COUNT_AT, TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT,
};
use super::compression::{self, Compression, Lz4HeaderCheck};
use super::control::ControlRecord;
use super::error::{AtOffset, RecordError};
use super::legacy;
use super::TimestampType;
use crate::protocol::wire::{DecodeError, DecodeErrorKind, Reader};

/// The smallest possible encoded v2 record: length, attributes, timestamp
/// delta, offset delta, key length, value length, header count (one byte
/// each).
pub(crate) const MIN_RECORD_LEN: usize = 7;

/// Bounds applied while decoding untrusted batches. Each violation is a
/// typed [`RecordError`] raised before any allocation of the offending size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest batch accepted, in bytes, counting the 12-byte offset and
    /// length prefix. Default 256 MiB.
    pub max_batch_size: usize,
    /// Largest decompressed record payload of one batch (or of one legacy
    /// wrapper message), in bytes. Default 256 MiB.
    pub max_decompressed_size: usize,
    /// Largest record count accepted in one batch. Default 2^24. A count is
    /// also rejected if the batch's bytes could not hold that many records.
    pub max_records_per_batch: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_batch_size: 256 << 20,
            max_decompressed_size: 256 << 20,
            max_records_per_batch: 1 << 24,
        }
    }
}

/// How batches are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Verify each batch's checksum (CRC-32C for magic 2, CRC-32 for each
    /// legacy message), like the Java consumer's `check.crcs`. Default on.
    pub check_crcs: bool,
    /// Size bounds.
    pub limits: DecodeLimits,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            check_crcs: true,
            limits: DecodeLimits::default(),
        }
    }
}

/// The fixed header of a batch, decoded without touching its records.
///
/// For legacy messages (magic 0/1) the fields are filled with their closest
/// equivalents: `base_offset` is the first record's absolute offset,
/// `batch_length` the outer message size, `crc` its CRC-32, `attributes`
/// holds the compression and timestamp type bits, base and max timestamp
/// are the outer message's timestamp (-1 for magic 0), and partition leader
/// epoch, producer id, producer epoch and base sequence are -1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchHeader {
    /// Offset of the first record (the batch's first offset, even if
    /// compaction removed that record).
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// Leader epoch of the partition when the batch was appended.
    pub partition_leader_epoch: i32,
    /// Format version: 0, 1 or 2.
    pub magic: i8,
    /// Stored checksum.
    pub crc: u32,
    /// Raw attributes (compression bits 0-2, timestamp type bit 3,
    /// transactional bit 4, control bit 5, delete horizon bit 6).
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (or the delete horizon when bit 6 is
    /// set).
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Producer id, -1 if none.
    pub producer_id: i64,
    /// Producer epoch, -1 if none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 if none.
    pub base_sequence: i32,
    /// Number of records declared by the header.
    pub record_count: i32,
}

impl BatchHeader {
    /// The codec of the records. Unknown codec ids are rejected when the
    /// batch is decoded, so this is always a known one.
    pub fn compression(&self) -> Compression {
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8).unwrap_or_default()
    }

    /// The meaning of the record timestamps.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.magic > 0 && self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.magic >= 2 && self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch holds control records (transaction markers).
    pub fn is_control(&self) -> bool {
        self.magic >= 2 && self.attributes & CONTROL_BIT != 0
    }

    /// Whether `base_timestamp` holds a delete horizon (set by compaction).
    pub fn has_delete_horizon(&self) -> bool {
        self.magic >= 2 && self.attributes & DELETE_HORIZON_BIT != 0
    }

    /// Offset of the last record: `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset.wrapping_add(self.last_offset_delta as i64)
    }

    /// The offset after this batch (where the next fetch should start).
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }
}

#[derive(Debug, Clone)]
enum Body {
    /// Magic 2: the record section (compressed or not), a slice of the batch.
    V2(Bytes),
    /// Magic 0/1.
    Legacy(legacy::LegacyBody),
}

/// One batch (or one legacy message, with its wrapped messages).
///
/// Holds zero-copy slices of the fetched buffer. Creating it decodes only
/// the header (and checks the CRC if enabled); records are decoded on
/// demand by [`records`](Self::records). Exception: a compressed legacy
/// wrapper is decompressed when the batch is created, because its base
/// offset and record count are only known from the inner messages.
#[derive(Debug, Clone)]
pub struct Batch {
    header: BatchHeader,
    raw: Bytes,
    body: Body,
    opts: DecodeOptions,
}

impl Batch {
    /// The decoded header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The complete batch as received (offset and length prefix included).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Size of the batch in bytes, prefix included.
    pub fn size_in_bytes(&self) -> usize {
        self.raw.len()
    }

    /// See [`BatchHeader::base_offset`].
    pub fn base_offset(&self) -> i64 {
        self.header.base_offset
    }
    /// See [`BatchHeader::last_offset`].
    pub fn last_offset(&self) -> i64 {
        self.header.last_offset()
    }
    /// See [`BatchHeader::next_offset`].
    pub fn next_offset(&self) -> i64 {
        self.header.next_offset()
    }
    /// See [`BatchHeader::magic`].
    pub fn magic(&self) -> i8 {
        self.header.magic
    }
    /// See [`BatchHeader::compression`].
    pub fn compression(&self) -> Compression {
        self.header.compression()
    }
    /// See [`BatchHeader::timestamp_type`].
    pub fn timestamp_type(&self) -> TimestampType {
        self.header.timestamp_type()
    }
    /// See [`BatchHeader::is_transactional`].
    pub fn is_transactional(&self) -> bool {
        self.header.is_transactional()
    }
    /// See [`BatchHeader::is_control`].
    pub fn is_control(&self) -> bool {
        self.header.is_control()
    }
    /// See [`BatchHeader::producer_id`].
    pub fn producer_id(&self) -> i64 {
        self.header.producer_id
    }
    /// See [`BatchHeader::producer_epoch`].
    pub fn producer_epoch(&self) -> i16 {
        self.header.producer_epoch
    }
    /// See [`BatchHeader::base_sequence`].
    pub fn base_sequence(&self) -> i32 {
        self.header.base_sequence
    }
    /// See [`BatchHeader::record_count`].
    pub fn record_count(&self) -> i32 {
        self.header.record_count
    }

    /// Decodes the record section for iteration: for a compressed magic 2
    /// batch this decompresses it once, into one buffer bounded by
    /// [`DecodeLimits::max_decompressed_size`]. Records are then read from
    /// the set, borrowed ([`RecordSet::iter`]) or owned (`into_iter`); their
    /// keys, values and headers are slices of that buffer (or of the fetched
    /// buffer when uncompressed). Each call decompresses again: call it once
    /// per batch.
    pub fn record_set(&self) -> Result<RecordSet, RecordError> {
        let h = &self.header;
        match &self.body {
            Body::V2(section) => {
                let payload = match h.compression() {
                    Compression::None => section.clone(),
                    codec => {
                        let p = compression::decompress_with(
                            codec,
                            section,
                            self.opts.limits.max_decompressed_size,
                            Lz4HeaderCheck::Strict,
                        )
                        .at(h.base_offset)?;
                        check_count_fits(h.base_offset, h.record_count, p.len())?;
                        p
                    }
                };
                let log_append_time =
                    (h.timestamp_type() == TimestampType::LogAppendTime).then_some(h.max_timestamp);
                Ok(RecordSet(SetInner::V2 {
                    payload,
                    cursor: V2Cursor {
                        pos: 0,
                        left: h.record_count.max(0) as u32,
                        base_offset: h.base_offset,
                        base_timestamp: h.base_timestamp,
                        log_append_time,
                        done: false,
                    },
                }))
            }
            Body::Legacy(b) => Ok(RecordSet(SetInner::Legacy(b.clone(), self.opts.check_crcs))),
        }
    }

    /// Iterates the records as owned [`Record`]s: shorthand for
    /// `record_set()?.into_iter()`.
    pub fn records(&self) -> Result<Records, RecordError> {
        Ok(self.record_set()?.into_iter())
    }

    /// For a control batch, parses its control record; `Ok(None)` for data
    /// batches. A control batch without records is corrupt.
    pub fn control_record(&self) -> Result<Option<ControlRecord>, RecordError> {
        if !self.is_control() {
            return Ok(None);
        }
        let rec = match self.records()?.next() {
            Some(r) => r?,
            None => {
                return Err(RecordError::corrupt(
                    Some(self.base_offset()),
                    "control batch without records",
                ))
            }
        };
        ControlRecord::parse(
            rec.key(),
            rec.value(),
            self.producer_id(),
            self.producer_epoch(),
        )
        .map(Some)
        .at(self.base_offset())
    }
}

fn check_count_fits(base_offset: i64, count: i32, payload_len: usize) -> Result<(), RecordError> {
    let possible = payload_len / MIN_RECORD_LEN;
    if count < 0 || count as usize > possible {
        return Err(RecordError::InvalidRecordCount {
            base_offset,
            count: count as i64,
            limit: possible as u64,
        });
    }
    Ok(())
}

/// Iterates the batches of a partition's `records` bytes.
///
/// Stops cleanly at a trailing partial batch (a broker cuts the last batch
/// at the fetch size limit): iteration ends, [`truncated_tail`] becomes true
/// and [`remaining`] tells how many bytes were left over. After an error the
/// iterator yields nothing more (the framing can no longer be trusted).
///
/// [`truncated_tail`]: Batches::truncated_tail
/// [`remaining`]: Batches::remaining
#[derive(Debug, Clone)]
pub struct Batches {
    buf: Bytes,
    pos: usize,
    opts: DecodeOptions,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Finished,
    Truncated,
    Failed,
}

impl Batches {
    /// Decodes `records` with default options (CRC checks on).
    pub fn new(records: Bytes) -> Self {
        Self::with_options(records, DecodeOptions::default())
    }

    /// Decodes `records` with the given options.
    pub fn with_options(records: Bytes, opts: DecodeOptions) -> Self {
        Batches {
            buf: records,
            pos: 0,
            opts,
            state: State::Running,
        }
    }

    /// True once iteration ended at an incomplete trailing batch.
    pub fn truncated_tail(&self) -> bool {
        self.state == State::Truncated
    }

    /// Bytes not consumed yet: after a truncated tail, its size.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes consumed so far (the start of the next batch).
    pub fn position(&self) -> usize {
        self.pos
    }

    fn fail(&mut self, e: RecordError) -> Option<Result<Batch, RecordError>> {
        self.state = State::Failed;
        Some(Err(e))
    }

    fn truncated(&mut self) -> Option<Result<Batch, RecordError>> {
        self.state = State::Truncated;
        None
    }
}

impl Iterator for Batches {
    type Item = Result<Batch, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state != State::Running {
            return None;
        }
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            self.state = State::Finished;
            return None;
        }
        let (Some(base_offset), Some(length)) =
            (i64_at(rest, BASE_OFFSET_AT), i32_at(rest, LENGTH_AT))
        else {
            return self.truncated();
        };
        let magic = rest.get(MAGIC_AT).map(|&m| m as i8);
        let min = match magic {
            Some(2) => BATCH_HEADER_LEN - LOG_OVERHEAD,
            Some(1) => legacy::MIN_MESSAGE_LEN_V1,
            Some(0) | None => legacy::MIN_MESSAGE_LEN_V0,
            Some(m) => {
                return self.fail(RecordError::UnsupportedMagic {
                    base_offset,
                    magic: m,
                })
            }
        };
        let max = self.opts.limits.max_batch_size.saturating_sub(LOG_OVERHEAD);
        if length < 0 || (length as usize) < min || length as usize > max {
            return self.fail(RecordError::InvalidBatchLength {
                base_offset,
                length: length as i64,
                min,
                max,
            });
        }
        let total = LOG_OVERHEAD + length as usize;
        let (true, Some(magic)) = (rest.len() >= total, magic) else {
            return self.truncated();
        };
        let raw = self.buf.slice(self.pos..self.pos + total);
        self.pos += total;
        let result = if magic == 2 {
            parse_v2(raw, self.opts)
        } else {
            legacy::parse(&raw, magic, &self.opts).map(|(header, body)| Batch {
                header,
                raw,
                body: Body::Legacy(body),
                opts: self.opts,
            })
        };
        match result {
            Ok(b) => Some(Ok(b)),
            Err(e) => self.fail(e),
        }
    }
}

impl FusedIterator for Batches {}

fn parse_v2(raw: Bytes, opts: DecodeOptions) -> Result<Batch, RecordError> {
    let b = &raw[..];
    if b.len() < BATCH_HEADER_LEN {
        return Err(RecordError::corrupt(None, "batch shorter than its header"));
    }
    // The header is complete, so every fixed-position read below succeeds.
    let base_offset = i64_at(b, BASE_OFFSET_AT).unwrap_or_default();
    let crc = u32_at(b, CRC_AT).unwrap_or_default();
    if opts.check_crcs {
        let computed = super::checksum::crc32c(b.get(ATTRIBUTES_AT..).unwrap_or_default());
        if computed != crc {
            return Err(RecordError::CrcMismatch {
                base_offset,
                stored: crc,
                computed,
            });
        }
    }
    let attributes = i16_at(b, ATTRIBUTES_AT).unwrap_or_default();
    let header = BatchHeader {
        base_offset,
        batch_length: i32_at(b, LENGTH_AT).unwrap_or_default(),
        partition_leader_epoch: i32_at(b, LEADER_EPOCH_AT).unwrap_or_default(),
        magic: 2,
        crc,
        attributes,
        last_offset_delta: i32_at(b, LAST_OFFSET_DELTA_AT).unwrap_or_default(),
        base_timestamp: i64_at(b, BASE_TIMESTAMP_AT).unwrap_or_default(),
        max_timestamp: i64_at(b, MAX_TIMESTAMP_AT).unwrap_or_default(),
        producer_id: i64_at(b, PRODUCER_ID_AT).unwrap_or_default(),
        producer_epoch: i16_at(b, PRODUCER_EPOCH_AT).unwrap_or_default(),
        base_sequence: i32_at(b, BASE_SEQUENCE_AT).unwrap_or_default(),
        record_count: i32_at(b, RECORDS_COUNT_AT).unwrap_or_default(),
    };
    let codec_id = (attributes & COMPRESSION_MASK) as u8;
    let codec = Compression::from_id(codec_id).ok_or(RecordError::UnknownCompression {
        base_offset: Some(base_offset),
        id: codec_id,
    })?;
    let count = header.record_count;
    if count < 0 || count as usize > opts.limits.max_records_per_batch {
        return Err(RecordError::InvalidRecordCount {
            base_offset,
            count: count as i64,
            limit: opts.limits.max_records_per_batch as u64,
        });
    }
    let section = raw.slice(BATCH_HEADER_LEN.min(raw.len())..);
    if codec == Compression::None {
        check_count_fits(base_offset, count, section.len())?;
    }
    Ok(Batch {
        header,
        raw,
        body: Body::V2(section),
        opts,
    })
}

/// Where a nullable field lies inside a record's bytes, relative to the
/// record's start. `len < 0` is null.
///
/// Invariant (established by the decoder): a non-null span lies within the
/// record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) len: i32,
}

impl Span {
    pub(crate) const NULL: Span = Span { start: 0, len: -1 };

    #[inline]
    fn range(self, base: usize) -> Option<std::ops::Range<usize>> {
        if self.len < 0 {
            return None;
        }
        let start = base + self.start as usize;
        Some(start..start + self.len as usize)
    }

    /// The field inside `parent`, for a record starting at `base`.
    #[inline]
    fn get(self, parent: &[u8], base: usize) -> Option<&[u8]> {
        parent.get(self.range(base)?)
    }

    /// The field as a zero-copy slice of `parent`.
    #[inline]
    pub(crate) fn slice(self, parent: &Bytes, base: usize) -> Option<Bytes> {
        let r = self.range(base)?;
        let end = r.end.min(parent.len());
        Some(parent.slice(r.start.min(end)..end))
    }
}

/// Positions of a decoded record's fields. Invariant: all lie within
/// `start..end` of the buffer the record was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fields {
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) key: Span,
    pub(crate) value: Span,
    pub(crate) headers_at: u32,
    pub(crate) header_count: u32,
}

/// One record, owned.
///
/// Holds one zero-copy [`Bytes`] handle on the record's encoded bytes (a
/// slice of the fetched buffer, or of the batch's decompressed buffer), so
/// producing a record costs one reference-count increment whatever its
/// shape. Key, value and headers are read from it without copying:
/// borrowed with [`key`](Self::key) / [`value`](Self::value), or as owned
/// `Bytes` slices of the same buffer with [`key_bytes`](Self::key_bytes) /
/// [`value_bytes`](Self::value_bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset in the partition.
    pub offset: i64,
    /// Timestamp in milliseconds: the create time, or the batch's log append
    /// time when the batch's timestamp type says so (-1 for magic 0).
    pub timestamp: i64,
    data: Bytes,
    key: Span,
    value: Span,
    headers_at: u32,
    header_count: u32,
}

impl Record {
    pub(crate) fn new_legacy(
        offset: i64,
        timestamp: i64,
        data: Bytes,
        key: Span,
        value: Span,
    ) -> Record {
        Record {
            offset,
            timestamp,
            data,
            key,
            value,
            headers_at: 0,
            header_count: 0,
        }
    }

    pub(crate) fn from_fields(parent: &Bytes, f: Fields) -> Record {
        Record {
            offset: f.offset,
            timestamp: f.timestamp,
            data: parent.slice(f.start.min(f.end).min(parent.len())..f.end.min(parent.len())),
            key: f.key,
            value: f.value,
            headers_at: f.headers_at,
            header_count: f.header_count,
        }
    }

    /// The key; `None` for a null key.
    #[inline]
    pub fn key(&self) -> Option<&[u8]> {
        self.key.get(&self.data, 0)
    }

    /// The value; `None` for a null value (a tombstone).
    #[inline]
    pub fn value(&self) -> Option<&[u8]> {
        self.value.get(&self.data, 0)
    }

    /// The key as a zero-copy slice of the fetched (or decompressed) buffer.
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.key.slice(&self.data, 0)
    }

    /// The value as a zero-copy slice of the fetched (or decompressed)
    /// buffer.
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value.slice(&self.data, 0)
    }

    /// The headers (always empty for magic 0/1).
    pub fn headers(&self) -> Headers<'_> {
        Headers {
            parent: &self.data,
            base: 0,
            at: self.headers_at,
            count: self.header_count,
        }
    }

    /// A borrowed view of this record.
    pub fn view(&self) -> RecordView<'_> {
        RecordView {
            offset: self.offset,
            timestamp: self.timestamp,
            parent: &self.data,
            base: 0,
            len: self.data.len(),
            key: self.key,
            value: self.value,
            headers_at: self.headers_at,
            header_count: self.header_count,
        }
    }
}

/// One record, borrowed from its [`RecordSet`]: the same accessors as
/// [`Record`] without touching a reference count, so iterating views costs
/// no atomic operation per record. [`to_record`](Self::to_record) makes an
/// owned (still zero-copy) record.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    /// Absolute offset in the partition.
    pub offset: i64,
    /// Timestamp in milliseconds (see [`Record::timestamp`]).
    pub timestamp: i64,
    parent: &'a Bytes,
    base: usize,
    len: usize,
    key: Span,
    value: Span,
    headers_at: u32,
    header_count: u32,
}

impl<'a> RecordView<'a> {
    pub(crate) fn from_legacy(
        parent: &'a Bytes,
        start: usize,
        len: usize,
        offset: i64,
        timestamp: i64,
        key: Span,
        value: Span,
    ) -> Self {
        RecordView {
            offset,
            timestamp,
            parent,
            base: start,
            len,
            key,
            value,
            headers_at: 0,
            header_count: 0,
        }
    }

    fn new(parent: &'a Bytes, f: Fields) -> Self {
        RecordView {
            offset: f.offset,
            timestamp: f.timestamp,
            parent,
            base: f.start,
            len: f.end.saturating_sub(f.start),
            key: f.key,
            value: f.value,
            headers_at: f.headers_at,
            header_count: f.header_count,
        }
    }

    /// The key; `None` for a null key.
    #[inline]
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key.get(self.parent, self.base)
    }

    /// The value; `None` for a null value (a tombstone).
    #[inline]
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value.get(self.parent, self.base)
    }

    /// The key as a zero-copy slice of the fetched (or decompressed) buffer.
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.key.slice(self.parent, self.base)
    }

    /// The value as a zero-copy slice of the fetched (or decompressed)
    /// buffer.
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value.slice(self.parent, self.base)
    }

    /// The headers (always empty for magic 0/1).
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            parent: self.parent,
            base: self.base,
            at: self.headers_at,
            count: self.header_count,
        }
    }

    /// An owned record sharing the same buffer.
    pub fn to_record(&self) -> Record {
        Record::from_fields(
            self.parent,
            Fields {
                offset: self.offset,
                timestamp: self.timestamp,
                start: self.base,
                end: self.base + self.len,
                key: self.key,
                value: self.value,
                headers_at: self.headers_at,
                header_count: self.header_count,
            },
        )
    }
}

/// The headers of one record, validated when the record was decoded and
/// read lazily.
#[derive(Debug, Clone, Copy)]
pub struct Headers<'a> {
    parent: &'a Bytes,
    base: usize,
    at: u32,
    count: u32,
}

/// The buffer behind [`Headers::EMPTY`].
static NO_BYTES: Bytes = Bytes::new();

impl Headers<'static> {
    /// No headers.
    pub const EMPTY: Headers<'static> = Headers {
        parent: &NO_BYTES,
        base: 0,
        at: 0,
        count: 0,
    };
}

impl<'a> Headers<'a> {
    /// Number of headers.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Iterates the headers in wire order (duplicates kept).
    pub fn iter(&self) -> HeaderIter<'a> {
        HeaderIter {
            parent: self.parent,
            base: self.base,
            pos: self.at as usize,
            left: self.count,
        }
    }

    /// The value of the last header with this key: `Some(None)` if that
    /// header's value is null, `None` if no header has the key.
    pub fn last(&self, key: &str) -> Option<Option<&'a [u8]>> {
        self.iter()
            .filter(|h| h.key() == key.as_bytes())
            .last()
            .map(|h| h.value())
    }
}

impl<'a> IntoIterator for Headers<'a> {
    type Item = Header<'a>;
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

/// One record header, borrowed from its record.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    parent: &'a Bytes,
    base: usize,
    key: Span,
    value: Span,
}

impl<'a> Header<'a> {
    /// Key bytes: UTF-8 by contract, not validated here (see
    /// [`key_str`](Self::key_str)).
    pub fn key(&self) -> &'a [u8] {
        self.key.get(self.parent, self.base).unwrap_or_default()
    }

    /// The key as a string, if it is valid UTF-8.
    pub fn key_str(&self) -> Result<&'a str, std::str::Utf8Error> {
        std::str::from_utf8(self.key())
    }

    /// The value; `None` for null.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value.get(self.parent, self.base)
    }

    /// The value as a zero-copy slice of the fetched (or decompressed)
    /// buffer.
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value.slice(self.parent, self.base)
    }
}

/// Iterator over [`Headers`]. Infallible: the headers were validated when
/// their record was decoded.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    parent: &'a Bytes,
    base: usize,
    /// Position relative to `base`.
    pos: usize,
    left: u32,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Header<'a>;
    fn next(&mut self) -> Option<Header<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let rec: &[u8] = self.parent.get(self.base..).unwrap_or_default();
        let p = &mut self.pos;
        let h = (|| {
            let klen = fast::varint(rec, p)?;
            let key = fast::span(rec, p, klen, rec.len())?;
            let vlen = fast::varint(rec, p)?;
            let value = fast::span(rec, p, vlen, rec.len())?;
            Some(Header {
                parent: self.parent,
                base: self.base,
                key,
                value,
            })
        })();
        if h.is_none() {
            self.left = 0;
        }
        h
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// The decoded (decompressed if needed) records of one batch. Iterate it by
/// reference for borrowed [`RecordView`]s, or by value for owned
/// [`Record`]s.
#[derive(Debug, Clone)]
pub struct RecordSet(SetInner);

#[derive(Debug, Clone)]
enum SetInner {
    V2 { payload: Bytes, cursor: V2Cursor },
    Legacy(legacy::LegacyBody, bool),
}

impl RecordSet {
    /// Number of records declared by the batch.
    pub fn declared_len(&self) -> usize {
        match &self.0 {
            SetInner::V2 { cursor, .. } => cursor.left as usize,
            SetInner::Legacy(b, _) => b.count(),
        }
    }

    /// Iterates borrowed views of the records (no reference counting per
    /// record). Ends after the first error, like [`Records`].
    pub fn iter(&self) -> RecordViews<'_> {
        match &self.0 {
            SetInner::V2 { payload, cursor } => RecordViews(ViewsInner::V2 {
                payload,
                cursor: cursor.clone(),
            }),
            SetInner::Legacy(b, check) => RecordViews(ViewsInner::Legacy(b.cursor(*check))),
        }
    }
}

impl IntoIterator for RecordSet {
    type Item = Result<Record, RecordError>;
    type IntoIter = Records;
    fn into_iter(self) -> Records {
        match self.0 {
            SetInner::V2 { payload, cursor } => Records(RecordsInner::V2 { payload, cursor }),
            SetInner::Legacy(b, check) => Records(RecordsInner::Legacy(b.records(check))),
        }
    }
}

impl<'a> IntoIterator for &'a RecordSet {
    type Item = Result<RecordView<'a>, RecordError>;
    type IntoIter = RecordViews<'a>;
    fn into_iter(self) -> RecordViews<'a> {
        self.iter()
    }
}

/// Iterator over the owned records of one batch, yielding errors for
/// malformed records; it ends after the first error. Also reports, as a
/// final error, bytes left over after the declared number of records.
#[derive(Debug, Clone)]
pub struct Records(RecordsInner);

#[derive(Debug, Clone)]
enum RecordsInner {
    V2 { payload: Bytes, cursor: V2Cursor },
    Legacy(legacy::LegacyRecords),
}

impl Records {
    /// Decodes the next record and hands a borrowed view of it to `f`: like
    /// [`next`](Iterator::next) without the owned record's reference-count
    /// increment, for callers that keep only some parts of each record (say
    /// the key and value as `Bytes`). `None` once the records are done, and
    /// after the first error, as with `next`.
    #[inline]
    pub fn next_map<T>(
        &mut self,
        f: impl FnOnce(RecordView<'_>) -> T,
    ) -> Option<Result<T, RecordError>> {
        match &mut self.0 {
            RecordsInner::V2 { payload, cursor } => {
                let payload: &Bytes = payload;
                cursor
                    .next(payload)
                    .map(|r| r.map(|fields| f(RecordView::new(payload, fields))))
            }
            // Legacy records are owned already; rare enough not to matter.
            RecordsInner::Legacy(r) => r.next().map(|r| r.map(|rec| f(rec.view()))),
        }
    }
}

impl Iterator for Records {
    type Item = Result<Record, RecordError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            RecordsInner::V2 { payload, cursor } => cursor
                .next(payload)
                .map(|r| r.map(|f| Record::from_fields(payload, f))),
            RecordsInner::Legacy(r) => r.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            RecordsInner::V2 { cursor, .. } => (0, Some(cursor.left as usize)),
            RecordsInner::Legacy(r) => r.size_hint(),
        }
    }
}

impl FusedIterator for Records {}

/// Iterator over borrowed [`RecordView`]s of a [`RecordSet`].
#[derive(Debug, Clone)]
pub struct RecordViews<'a>(ViewsInner<'a>);

#[derive(Debug, Clone)]
enum ViewsInner<'a> {
    V2 {
        payload: &'a Bytes,
        cursor: V2Cursor,
    },
    Legacy(legacy::LegacyCursor<'a>),
}

impl<'a> Iterator for RecordViews<'a> {
    type Item = Result<RecordView<'a>, RecordError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            ViewsInner::V2 { payload, cursor } => {
                let payload: &'a Bytes = payload;
                cursor
                    .next(payload)
                    .map(|r| r.map(|f| RecordView::new(payload, f)))
            }
            ViewsInner::Legacy(c) => c.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            ViewsInner::V2 { cursor, .. } => (0, Some(cursor.left as usize)),
            ViewsInner::Legacy(c) => (0, Some(c.left())),
        }
    }
}

impl FusedIterator for RecordViews<'_> {}

/// Position in a magic 2 record section.
#[derive(Debug, Clone)]
struct V2Cursor {
    pos: usize,
    left: u32,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
    done: bool,
}

impl V2Cursor {
    #[inline]
    fn next(&mut self, payload: &Bytes) -> Option<Result<Fields, RecordError>> {
        if self.done {
            return None;
        }
        if self.left == 0 {
            self.done = true;
            let rest = payload.len().saturating_sub(self.pos);
            if rest != 0 {
                return Some(Err(RecordError::corrupt(
                    Some(self.base_offset),
                    format!("{rest} bytes left after the declared records"),
                )));
            }
            return None;
        }
        self.left -= 1;
        match self.record(payload) {
            Some(f) => Some(Ok(f)),
            None => {
                self.done = true;
                Some(Err(self.explain(payload).at_base_offset(self.base_offset)))
            }
        }
    }

    /// The fast path: decodes the record at `pos` from a plain slice,
    /// returning `None` on any malformation (explained by [`Self::explain`]).
    #[inline]
    fn record(&mut self, payload: &[u8]) -> Option<Fields> {
        let b = payload;
        let mut p = self.pos;
        let len = fast::varint(b, &mut p)?;
        if len < 0 {
            return None;
        }
        let start = p;
        let end = start.checked_add(len as usize)?;
        // Every field is read from the record's own bytes, so a field that
        // overruns the declared record length fails here too.
        let rec = b.get(start..end)?;
        let mut q = 1; // attributes: unused
        if rec.is_empty() {
            return None;
        }
        let ts_delta = fast::varlong(rec, &mut q)?;
        let offset_delta = fast::varint(rec, &mut q)?;
        let klen = fast::varint(rec, &mut q)?;
        let key = fast::span(rec, &mut q, klen, rec.len())?;
        let vlen = fast::varint(rec, &mut q)?;
        let value = fast::span(rec, &mut q, vlen, rec.len())?;
        let count = fast::varint(rec, &mut q)?;
        if count < 0 || count as usize > (rec.len() - q) / 2 {
            return None;
        }
        let headers_at = q;
        for _ in 0..count {
            let klen = fast::varint(rec, &mut q)?;
            if klen < 0 {
                return None;
            }
            fast::span(rec, &mut q, klen, rec.len())?;
            let vlen = fast::varint(rec, &mut q)?;
            fast::span(rec, &mut q, vlen, rec.len())?;
        }
        if q != rec.len() {
            return None;
        }
        self.pos = end;
        Some(Fields {
            offset: self.base_offset.wrapping_add(offset_delta as i64),
            timestamp: self
                .log_append_time
                .unwrap_or_else(|| self.base_timestamp.wrapping_add(ts_delta)),
            start,
            end,
            key,
            value,
            headers_at: headers_at as u32,
            header_count: count as u32,
        })
    }

    /// The slow path, run only after the fast path failed: re-reads the
    /// record with the checked [`Reader`] to say precisely what is wrong.
    #[cold]
    fn explain(&self, payload: &Bytes) -> RecordError {
        let mut r = Reader::new(payload.clone());
        if let Err(e) = r.skip(self.pos, "record") {
            return e.into();
        }
        match explain_record(&mut r) {
            Err(e) => e,
            Ok(()) => RecordError::corrupt(None, "malformed record"),
        }
    }
}

fn explain_record(r: &mut Reader) -> Result<(), RecordError> {
    let neg = |what, n: i32| DecodeError::new(what, DecodeErrorKind::NegativeLength(n as i64));
    let len = r.varint("record length")?;
    if len < 0 {
        return Err(neg("record length", len).into());
    }
    let len = len as usize;
    if len > r.remaining() {
        return Err(DecodeError::new(
            "record",
            DecodeErrorKind::Truncated {
                needed: len,
                remaining: r.remaining(),
            },
        )
        .into());
    }
    let start = r.position();
    r.skip(1, "record attributes")?;
    r.varlong("timestamp delta")?;
    r.varint("offset delta")?;
    nullable(r, "record key")?;
    nullable(r, "record value")?;
    let count = r.varint("header count")?;
    if count < 0 {
        return Err(neg("header count", count).into());
    }
    r.check_count(count as usize, 2, "header count")?;
    for _ in 0..count {
        let klen = r.varint("header key length")?;
        if klen < 0 {
            return Err(neg("header key length", klen).into());
        }
        r.skip(klen as usize, "header key")?;
        nullable(r, "header value")?;
    }
    let used = r.position() - start;
    if used != len {
        return Err(RecordError::corrupt(
            None,
            format!("record declares {len} bytes but its fields span {used}"),
        ));
    }
    Ok(())
}

/// A varint length followed by that many bytes; -1 means null.
#[inline]
pub(crate) fn nullable(r: &mut Reader, what: &'static str) -> Result<Option<Bytes>, DecodeError> {
    let n = r.varint(what)?;
    if n < 0 {
        if n == -1 {
            return Ok(None);
        }
        return Err(DecodeError::new(
            what,
            DecodeErrorKind::NegativeLength(n as i64),
        ));
    }
    r.bytes(n as usize, what).map(Some)
}

/// Unchecked-error, checked-bounds readers over plain slices for the hot
/// path: every failure is just `None` (the caller explains it on the cold
/// path), which keeps results in registers.
mod fast {
    use super::Span;

    #[inline(always)]
    pub(super) fn uvarint(b: &[u8], p: &mut usize) -> Option<u32> {
        let first = *b.get(*p)?;
        *p += 1;
        if first < 0x80 {
            return Some(first as u32);
        }
        let mut v = (first & 0x7f) as u32;
        for i in 1..5 {
            let byte = *b.get(*p)?;
            *p += 1;
            if i == 4 && byte > 0x0f {
                return None;
            }
            v |= ((byte & 0x7f) as u32) << (7 * i);
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }

    #[inline(always)]
    pub(super) fn varint(b: &[u8], p: &mut usize) -> Option<i32> {
        let u = uvarint(b, p)?;
        Some(((u >> 1) as i32) ^ -((u & 1) as i32))
    }

    #[inline(always)]
    pub(super) fn varlong(b: &[u8], p: &mut usize) -> Option<i64> {
        let first = *b.get(*p)?;
        *p += 1;
        let u = if first < 0x80 {
            first as u64
        } else {
            let mut v = (first & 0x7f) as u64;
            let mut i = 1;
            loop {
                if i == 10 {
                    return None;
                }
                let byte = *b.get(*p)?;
                *p += 1;
                if i == 9 && byte > 0x01 {
                    return None;
                }
                v |= ((byte & 0x7f) as u64) << (7 * i);
                if byte < 0x80 {
                    break v;
                }
                i += 1;
            }
        };
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A field of `len` bytes at `p` (-1: null), which must end by `end`.
    #[inline(always)]
    pub(super) fn span(b: &[u8], p: &mut usize, len: i32, end: usize) -> Option<Span> {
        if len < 0 {
            return (len == -1).then_some(Span::NULL);
        }
        let start = *p;
        let stop = start.checked_add(len as usize)?;
        if stop > end.min(b.len()) || start > u32::MAX as usize {
            return None;
        }
        *p = stop;
        Some(Span {
            start: start as u32,
            len,
        })
    }
}
