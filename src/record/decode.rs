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

    /// Iterates the records. For a compressed magic 2 batch this
    /// decompresses the record section once, into one buffer bounded by
    /// [`DecodeLimits::max_decompressed_size`]; keys, values and headers are
    /// slices of that buffer (or of the fetched buffer when uncompressed).
    /// Each call decompresses again: call it once per batch.
    pub fn records(&self) -> Result<Records, RecordError> {
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
                let log_append =
                    (h.timestamp_type() == TimestampType::LogAppendTime).then_some(h.max_timestamp);
                Ok(Records(RecordsInner::V2(V2Records {
                    r: Reader::new(payload),
                    left: h.record_count.max(0) as u32,
                    base_offset: h.base_offset,
                    base_timestamp: h.base_timestamp,
                    log_append_time: log_append,
                    done: false,
                })))
            }
            Body::Legacy(b) => Ok(Records(RecordsInner::Legacy(b.records(&self.opts)))),
        }
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
            rec.key.as_deref(),
            rec.value.as_deref(),
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
        let computed = crc32c::crc32c(b.get(ATTRIBUTES_AT..).unwrap_or_default());
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

/// One record, with its key, value and headers as zero-copy slices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset in the partition.
    pub offset: i64,
    /// Timestamp in milliseconds: the create time, or the batch's log append
    /// time when the batch's timestamp type says so (-1 for magic 0).
    pub timestamp: i64,
    /// Key; `None` for a null key.
    pub key: Option<Bytes>,
    /// Value; `None` for a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Headers (always empty for magic 0/1).
    pub headers: Headers,
}

/// The headers of one record, validated when the record was decoded and
/// iterated lazily.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    raw: Bytes,
    count: u32,
}

impl Headers {
    /// Number of headers.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Iterates the headers in wire order (duplicates kept).
    pub fn iter(&self) -> HeaderIter {
        HeaderIter {
            r: Reader::new(self.raw.clone()),
            left: self.count,
        }
    }

    /// The value of the last header with this key: `Some(None)` if that
    /// header's value is null, `None` if no header has the key.
    pub fn last(&self, key: &str) -> Option<Option<Bytes>> {
        self.iter()
            .filter(|h| h.key == key.as_bytes())
            .last()
            .map(|h| h.value)
    }
}

impl IntoIterator for &Headers {
    type Item = Header;
    type IntoIter = HeaderIter;
    fn into_iter(self) -> HeaderIter {
        self.iter()
    }
}

/// One record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Key bytes: UTF-8 by contract, not validated here (see
    /// [`key_str`](Self::key_str)).
    pub key: Bytes,
    /// Value; `None` for null.
    pub value: Option<Bytes>,
}

impl Header {
    /// The key as a string, if it is valid UTF-8.
    pub fn key_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.key)
    }
}

/// Iterator over [`Headers`]. Infallible: the headers were validated when
/// their record was decoded.
#[derive(Debug, Clone)]
pub struct HeaderIter {
    r: Reader,
    left: u32,
}

impl Iterator for HeaderIter {
    type Item = Header;
    fn next(&mut self) -> Option<Header> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let h = (|| -> Result<Header, DecodeError> {
            let klen = self.r.varint("header key length")?;
            let key = self.r.bytes(klen.max(0) as usize, "header key")?;
            let value = nullable(&mut self.r, "header value")?;
            Ok(Header { key, value })
        })();
        match h {
            Ok(h) => Some(h),
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize))
    }
}

/// Iterator over the records of one batch, yielding errors for malformed
/// records; it ends after the first error. Also reports, as a final error,
/// bytes left over after the declared number of records.
#[derive(Debug, Clone)]
pub struct Records(RecordsInner);

#[derive(Debug, Clone)]
enum RecordsInner {
    V2(V2Records),
    Legacy(legacy::LegacyRecords),
}

impl Iterator for Records {
    type Item = Result<Record, RecordError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            RecordsInner::V2(r) => r.next(),
            RecordsInner::Legacy(r) => r.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            RecordsInner::V2(r) => (0, Some(r.left as usize)),
            RecordsInner::Legacy(r) => r.size_hint(),
        }
    }
}

impl FusedIterator for Records {}

#[derive(Debug, Clone)]
struct V2Records {
    r: Reader,
    left: u32,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
    done: bool,
}

impl V2Records {
    #[inline]
    fn next(&mut self) -> Option<Result<Record, RecordError>> {
        if self.done {
            return None;
        }
        if self.left == 0 {
            self.done = true;
            if !self.r.is_empty() {
                return Some(Err(RecordError::corrupt(
                    Some(self.base_offset),
                    format!(
                        "{} bytes left after the declared records",
                        self.r.remaining()
                    ),
                )));
            }
            return None;
        }
        self.left -= 1;
        match self.record() {
            Ok(r) => Some(Ok(r)),
            Err(e) => {
                self.done = true;
                Some(Err(e.at_base_offset(self.base_offset)))
            }
        }
    }

    #[inline]
    fn record(&mut self) -> Result<Record, RecordError> {
        let r = &mut self.r;
        let len = r.varint("record length")?;
        if len < 0 {
            return Err(DecodeError::new(
                "record length",
                DecodeErrorKind::NegativeLength(len as i64),
            )
            .into());
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
        let ts_delta = r.varlong("timestamp delta")?;
        let offset_delta = r.varint("offset delta")?;
        let key = nullable(r, "record key")?;
        let value = nullable(r, "record value")?;
        let count = r.varint("header count")?;
        if count < 0 {
            return Err(DecodeError::new(
                "header count",
                DecodeErrorKind::NegativeLength(count as i64),
            )
            .into());
        }
        let headers = if count == 0 {
            Headers::default()
        } else {
            r.check_count(count as usize, 2, "header count")?;
            let hstart = r.position();
            for _ in 0..count {
                let klen = r.varint("header key length")?;
                if klen < 0 {
                    return Err(DecodeError::new(
                        "header key length",
                        DecodeErrorKind::NegativeLength(klen as i64),
                    )
                    .into());
                }
                r.skip(klen as usize, "header key")?;
                let vlen = r.varint("header value length")?;
                if vlen < -1 {
                    return Err(DecodeError::new(
                        "header value length",
                        DecodeErrorKind::NegativeLength(vlen as i64),
                    )
                    .into());
                }
                if vlen > 0 {
                    r.skip(vlen as usize, "header value")?;
                }
            }
            Headers {
                raw: r.consumed_since(hstart),
                count: count as u32,
            }
        };
        let used = r.position() - start;
        if used != len {
            return Err(RecordError::corrupt(
                None,
                format!("record declares {len} bytes but its fields span {used}"),
            ));
        }
        Ok(Record {
            offset: self.base_offset.wrapping_add(offset_delta as i64),
            timestamp: self
                .log_append_time
                .unwrap_or_else(|| self.base_timestamp.wrapping_add(ts_delta)),
            key,
            value,
            headers,
        })
    }
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
