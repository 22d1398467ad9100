//! The magic 2 batch header layout and the batch encoder.

use bytes::{Bytes, BytesMut};

use super::checksum::{self, DeferredPrefixCrc, CHUNK};
use super::compression::{self, Compression};
use super::control::ControlKind;
use super::error::RecordError;
use crate::protocol::wire::{varint_len, varlong_len};

/// Bytes before the batch length field's payload: base offset (8) and the
/// length itself (4). The length counts everything after it.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the magic 2 batch header, from base offset to records count.
pub const BATCH_HEADER_LEN: usize = 61;
/// The record batch format written by this crate.
pub const MAGIC_V2: i8 = 2;

/// Value meaning "no producer id" (non-idempotent producer).
pub const NO_PRODUCER_ID: i64 = -1;
/// Value meaning "no producer epoch".
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// Value meaning "no sequence number".
pub const NO_SEQUENCE: i32 = -1;
/// Value meaning "no partition leader epoch".
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// Value meaning "no timestamp".
pub const NO_TIMESTAMP: i64 = -1;

// Field positions inside a magic 2 batch.
pub(crate) const BASE_OFFSET_AT: usize = 0;
pub(crate) const LENGTH_AT: usize = 8;
pub(crate) const LEADER_EPOCH_AT: usize = 12;
pub(crate) const MAGIC_AT: usize = 16;
pub(crate) const CRC_AT: usize = 17;
pub(crate) const ATTRIBUTES_AT: usize = 21;
pub(crate) const LAST_OFFSET_DELTA_AT: usize = 23;
pub(crate) const BASE_TIMESTAMP_AT: usize = 27;
pub(crate) const MAX_TIMESTAMP_AT: usize = 35;
pub(crate) const PRODUCER_ID_AT: usize = 43;
pub(crate) const PRODUCER_EPOCH_AT: usize = 51;
pub(crate) const BASE_SEQUENCE_AT: usize = 53;
pub(crate) const RECORDS_COUNT_AT: usize = 57;

// Attribute bits.
pub(crate) const COMPRESSION_MASK: i16 = 0x07;
pub(crate) const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
pub(crate) const TRANSACTIONAL_BIT: i16 = 1 << 4;
pub(crate) const CONTROL_BIT: i16 = 1 << 5;
pub(crate) const DELETE_HORIZON_BIT: i16 = 1 << 6;

/// The meaning of record timestamps (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Set by the producer when the record was created.
    #[default]
    CreateTime,
    /// Set by the broker when the batch was appended to the log; every
    /// record of the batch then carries the batch's max timestamp.
    LogAppendTime,
}

/// Parameters of a batch under construction.
///
/// Invariant expected by brokers: `base_sequence`, `producer_id` and
/// `producer_epoch` are either all "none" (-1) or all set; `transactional`
/// requires a producer id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchOptions {
    /// Producer id, or [`NO_PRODUCER_ID`].
    pub producer_id: i64,
    /// Producer epoch, or [`NO_PRODUCER_EPOCH`].
    pub producer_epoch: i16,
    /// Sequence number of the first record, or [`NO_SEQUENCE`].
    pub base_sequence: i32,
    /// Whether the batch belongs to a transaction (attributes bit 4).
    pub transactional: bool,
    /// Codec applied by [`BatchBuilder::finish`].
    pub compression: Compression,
    /// Codec level; see [`compression::compress`].
    pub compression_level: Option<i32>,
    /// Meaning of the timestamps.
    pub timestamp_type: TimestampType,
    /// Target size of the finished batch in bytes (the producer's
    /// `batch.size`). Appends that would make the (estimated) batch larger
    /// are refused, except the first.
    pub size_limit: usize,
    /// Expected ratio of compressed to uncompressed record bytes, used to
    /// estimate the finished size of a compressed batch (1.0 = assume no
    /// gain, the safe default). Ignored without compression.
    pub estimated_compression_ratio: f32,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            compression: Compression::None,
            compression_level: None,
            timestamp_type: TimestampType::CreateTime,
            size_limit: 16 * 1024,
            estimated_compression_ratio: 1.0,
        }
    }
}

/// An empty header list for [`BatchBuilder::append`].
pub const NO_HEADERS: [(&str, Option<&[u8]>); 0] = [];

/// Builds one magic 2 record batch, writing each record straight into the
/// batch buffer.
///
/// Invariants: the buffer always holds a 61-byte header placeholder
/// followed by the records appended so far, uncompressed and fully encoded
/// (lengths and varints computed in place, no per-record allocation); the
/// record count never exceeds `i32::MAX` and the uncompressed batch never
/// exceeds `i32::MAX` bytes. Offsets are assigned 0, 1, 2... relative to a
/// base offset of 0 (the broker assigns real offsets); the partition leader
/// epoch is written as -1. Header fields that depend on the records (counts,
/// timestamps, length, CRC) are filled in by [`finish`](Self::finish).
#[derive(Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    opts: BatchOptions,
    control: bool,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    /// CRC-32C of the records written so far, absorbed chunk by chunk
    /// while they are in cache (uncompressed batches only).
    crc: DeferredPrefixCrc,
}

/// Appends an unsigned LEB128 varint. `push` on a vector whose capacity
/// was reserved up front compiles to a store and an increment, much cheaper
/// than a `memcpy` call per tiny field.
#[inline(always)]
fn put_uvar(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

#[inline(always)]
fn put_varint(buf: &mut Vec<u8>, v: i32) {
    put_uvar(buf, ((v << 1) ^ (v >> 31)) as u32 as u64);
}

#[inline(always)]
fn put_varlong(buf: &mut Vec<u8>, v: i64) {
    put_uvar(buf, ((v << 1) ^ (v >> 63)) as u64);
}

#[inline]
fn len_i32(n: usize) -> Option<i32> {
    i32::try_from(n).ok()
}

impl BatchBuilder {
    /// Starts an empty batch.
    pub fn new(opts: BatchOptions) -> Self {
        // Room for a full batch (a compressed one may hold more
        // uncompressed bytes than the limit), capped for huge limits.
        let cap = opts
            .size_limit
            .saturating_add(opts.size_limit / 8)
            .clamp(BATCH_HEADER_LEN + 64, 1 << 20);
        Self::with_buffer(opts, Vec::with_capacity(cap))
    }

    /// Starts an empty batch in a caller-supplied buffer (cleared first),
    /// so that a producer can recycle allocations.
    pub fn with_buffer(opts: BatchOptions, mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.resize(BATCH_HEADER_LEN, 0);
        BatchBuilder {
            buf,
            opts,
            control: false,
            count: 0,
            base_timestamp: 0,
            max_timestamp: NO_TIMESTAMP,
            crc: DeferredPrefixCrc::default(),
        }
    }

    /// The options the batch was started with.
    pub fn options(&self) -> &BatchOptions {
        &self.opts
    }

    /// Sets the producer id, producer epoch and base sequence that
    /// [`finish`](Self::finish) writes, and marks the batch transactional if
    /// asked: for a producer that learns them only when the batch leaves
    /// its queue, so that the batch is sealed (and checksummed) once rather
    /// than sealed and then re-stamped with [`set_producer_state`].
    pub fn set_producer_state(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
        transactional: bool,
    ) {
        self.opts.producer_id = producer_id;
        self.opts.producer_epoch = producer_epoch;
        self.opts.base_sequence = base_sequence;
        self.opts.transactional |= transactional;
    }

    /// Number of records appended.
    pub fn record_count(&self) -> usize {
        self.count as usize
    }

    /// Whether no record has been appended yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size in bytes of the batch with its records uncompressed. Exact: for
    /// an uncompressed batch this is what [`finish`](Self::finish) returns.
    pub fn uncompressed_size(&self) -> usize {
        self.buf.len()
    }

    /// Estimated size in bytes of the finished batch: exact without
    /// compression, otherwise the header plus the record bytes scaled by
    /// [`BatchOptions::estimated_compression_ratio`].
    pub fn estimated_size(&self) -> usize {
        self.estimate_with(self.buf.len() - BATCH_HEADER_LEN)
    }

    fn estimate_with(&self, records_len: usize) -> usize {
        if self.opts.compression == Compression::None {
            BATCH_HEADER_LEN + records_len
        } else {
            let ratio = self.opts.estimated_compression_ratio;
            let ratio = if ratio.is_finite() && ratio > 0.0 {
                ratio as f64
            } else {
                1.0
            };
            BATCH_HEADER_LEN + (records_len as f64 * ratio).ceil() as usize
        }
    }

    /// Appends one record with the given create timestamp (milliseconds),
    /// key, value and headers (each a UTF-8 key and an optional value;
    /// duplicate keys are allowed, order is kept).
    ///
    /// Returns `false`, leaving the batch unchanged, when the record does
    /// not fit: the estimated batch size would exceed
    /// [`BatchOptions::size_limit`], the record count would overflow `i32`,
    /// or the batch would exceed `i32::MAX` bytes. The first record of a
    /// batch is accepted whatever its size, unless it cannot be represented
    /// at all (a field or the whole record over `i32::MAX` bytes): so
    /// `false` from an empty builder means the record can never be sent.
    pub fn append<H, K, V>(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) -> bool
    where
        H: IntoIterator<Item = (K, Option<V>)> + Clone,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let offset_delta = self.count;
        if offset_delta == i32::MAX {
            return false;
        }
        let base_ts = if self.count == 0 {
            timestamp
        } else {
            self.base_timestamp
        };
        let ts_delta = timestamp.wrapping_sub(base_ts);

        // Pass 1: size of the record body, to write its length prefix first.
        let Some(key_len) = key.map_or(Some(-1), |k| len_i32(k.len())) else {
            return false;
        };
        let Some(value_len) = value.map_or(Some(-1), |v| len_i32(v.len())) else {
            return false;
        };
        let mut body: u64 = 1
            + varlong_len(ts_delta) as u64
            + varint_len(offset_delta) as u64
            + varint_len(key_len) as u64
            + key.map_or(0, |k| k.len() as u64)
            + varint_len(value_len) as u64
            + value.map_or(0, |v| v.len() as u64);
        let mut header_count: u64 = 0;
        for (hk, hv) in headers.clone() {
            let hk = hk.as_ref().len() as u64;
            let hv = hv.as_ref().map(|v| v.as_ref().len() as u64);
            if hk > i32::MAX as u64 || hv.is_some_and(|v| v > i32::MAX as u64) {
                return false;
            }
            body += varint_len(hk as i32) as u64 + hk;
            body += match hv {
                Some(v) => varint_len(v as i32) as u64 + v,
                None => 1,
            };
            header_count += 1;
        }
        if header_count > i32::MAX as u64 {
            return false;
        }
        body += varint_len(header_count as i32) as u64;
        if body > i32::MAX as u64 {
            return false;
        }
        let total = varint_len(body as i32) + body as usize;
        let new_len = self.buf.len() as u64 + total as u64;
        if new_len > i32::MAX as u64 {
            return false;
        }
        if self.count > 0
            && self.estimate_with(new_len as usize - BATCH_HEADER_LEN) > self.opts.size_limit
        {
            return false;
        }

        // Pass 2: write.
        let buf = &mut self.buf;
        buf.reserve(total);
        let start = buf.len();
        put_varint(buf, body as i32);
        buf.push(0); // record attributes: unused
        put_varlong(buf, ts_delta);
        put_varint(buf, offset_delta);
        put_varint(buf, key_len);
        if let Some(k) = key {
            buf.extend_from_slice(k);
        }
        put_varint(buf, value_len);
        if let Some(val) = value {
            buf.extend_from_slice(val);
        }
        put_varint(buf, header_count as i32);
        for (hk, hv) in headers {
            let hk = hk.as_ref().as_bytes();
            put_varint(buf, hk.len() as i32);
            buf.extend_from_slice(hk);
            match hv {
                Some(hv) => {
                    let hv = hv.as_ref();
                    put_varint(buf, hv.len() as i32);
                    buf.extend_from_slice(hv);
                }
                None => buf.push(1), // zig-zag -1
            }
        }
        // A header iterator that yields different items on its second pass
        // would break the length prefix; refuse rather than emit garbage.
        if buf.len() - start != total {
            buf.truncate(start);
            return false;
        }

        if self.count == 0 {
            self.base_timestamp = timestamp;
            self.max_timestamp = timestamp;
        } else if timestamp > self.max_timestamp {
            self.max_timestamp = timestamp;
        }
        self.count += 1;
        if self.opts.compression == Compression::None
            && self
                .buf
                .len()
                .saturating_sub(BATCH_HEADER_LEN + self.crc.absorbed())
                >= CHUNK
        {
            self.crc.absorb(&self.buf[BATCH_HEADER_LEN..]);
        }
        true
    }

    /// Seals the batch: fills in the header, compresses the records if
    /// configured, and computes the CRC-32C. The result is one complete
    /// batch, ready to be placed in a produce request.
    ///
    /// Fails only if compression fails or the compressed batch would exceed
    /// `i32::MAX` bytes.
    pub fn finish(self) -> Result<Bytes, RecordError> {
        self.seal().map(Bytes::from)
    }

    /// Like [`finish`](Self::finish), but returns the mutable buffer (for
    /// example to patch it later with [`set_producer_state`]).
    pub fn finish_mut(self) -> Result<BytesMut, RecordError> {
        // A fresh, unshared buffer: the conversion does not copy.
        self.seal().map(|v| {
            Bytes::from(v)
                .try_into_mut()
                .unwrap_or_else(|b| BytesMut::from(&b[..]))
        })
    }

    fn seal(self) -> Result<Vec<u8>, RecordError> {
        let BatchBuilder {
            mut buf,
            opts,
            control,
            count,
            base_timestamp,
            max_timestamp,
            crc,
        } = self;
        let mut attributes = opts.compression.id() as i16;
        if opts.timestamp_type == TimestampType::LogAppendTime {
            attributes |= TIMESTAMP_TYPE_BIT;
        }
        if opts.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        if control {
            attributes |= CONTROL_BIT;
        }
        let (base_ts, max_ts) = if count == 0 {
            (NO_TIMESTAMP, NO_TIMESTAMP)
        } else {
            (base_timestamp, max_timestamp)
        };
        {
            let h = &mut buf[..BATCH_HEADER_LEN];
            put(h, BASE_OFFSET_AT, &0i64.to_be_bytes());
            put(h, LEADER_EPOCH_AT, &NO_PARTITION_LEADER_EPOCH.to_be_bytes());
            put(h, MAGIC_AT, &[MAGIC_V2 as u8]);
            put(h, ATTRIBUTES_AT, &attributes.to_be_bytes());
            put(h, LAST_OFFSET_DELTA_AT, &(count - 1).max(0).to_be_bytes());
            put(h, BASE_TIMESTAMP_AT, &base_ts.to_be_bytes());
            put(h, MAX_TIMESTAMP_AT, &max_ts.to_be_bytes());
            put(h, PRODUCER_ID_AT, &opts.producer_id.to_be_bytes());
            put(h, PRODUCER_EPOCH_AT, &opts.producer_epoch.to_be_bytes());
            put(h, BASE_SEQUENCE_AT, &opts.base_sequence.to_be_bytes());
            put(h, RECORDS_COUNT_AT, &count.to_be_bytes());
        }
        if opts.compression != Compression::None {
            let records = &buf[BATCH_HEADER_LEN..];
            let mut out = BytesMut::with_capacity(BATCH_HEADER_LEN + records.len() / 2 + 64);
            out.extend_from_slice(&buf[..BATCH_HEADER_LEN]);
            compression::compress(opts.compression, opts.compression_level, records, &mut out)?;
            buf = Vec::from(out);
        }
        let length = buf.len() - LOG_OVERHEAD;
        let Some(length) = len_i32(length) else {
            return Err(RecordError::Compression {
                codec: opts.compression,
                message: format!("batch of {} bytes exceeds the format's maximum", buf.len()),
            });
        };
        put(&mut buf, LENGTH_AT, &length.to_be_bytes());
        let crc = if opts.compression == Compression::None {
            // The records were absorbed as they were appended; only the
            // header (and the records' tail) remain.
            let (header, records) = buf.split_at(BATCH_HEADER_LEN);
            crc.finish(&header[ATTRIBUTES_AT..], records)
        } else {
            checksum::crc32c(&buf[ATTRIBUTES_AT..])
        };
        put(&mut buf, CRC_AT, &crc.to_be_bytes());
        Ok(buf)
    }

    /// Builds a control batch holding one transaction marker, as a
    /// transaction coordinator would have the leader write it: transactional
    /// and control bits set, no sequence, one record whose key is
    /// (version 0, type) and whose value is (version 0, coordinator epoch).
    ///
    /// Only [`ControlKind::Commit`] and [`ControlKind::Abort`] are markers;
    /// for other kinds the value is written the same way.
    pub fn control_batch(
        kind: ControlKind,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        timestamp: i64,
    ) -> Bytes {
        let opts = BatchOptions {
            producer_id,
            producer_epoch,
            base_sequence: NO_SEQUENCE,
            transactional: true,
            ..BatchOptions::default()
        };
        let mut b = BatchBuilder::new(opts);
        b.control = true;
        let mut key = [0u8; 4];
        key[2..].copy_from_slice(&kind.type_id().to_be_bytes());
        let mut value = [0u8; 6];
        value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
        let appended = b.append(timestamp, Some(&key), Some(&value), NO_HEADERS);
        debug_assert!(appended, "a tiny first record always fits");
        b.finish().unwrap_or_default()
    }
}

#[inline]
fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at.saturating_add(bytes.len())) {
        dst.copy_from_slice(bytes);
    }
}

/// Rewrites the producer id, producer epoch and base sequence of one sealed
/// magic 2 batch in place and recomputes its CRC-32C.
///
/// This is what an idempotent producer does when it must re-sequence a batch
/// it already built (after a producer epoch bump, for example); records and
/// compression are untouched. `batch` must be exactly one complete batch
/// (its length field must match the slice); anything else is rejected
/// without modifying it.
pub fn set_producer_state(
    batch: &mut [u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<(), RecordError> {
    check_sealed(batch)?;
    put(batch, PRODUCER_ID_AT, &producer_id.to_be_bytes());
    put(batch, PRODUCER_EPOCH_AT, &producer_epoch.to_be_bytes());
    put(batch, BASE_SEQUENCE_AT, &base_sequence.to_be_bytes());
    let crc = checksum::crc32c(batch.get(ATTRIBUTES_AT..).unwrap_or_default());
    put(batch, CRC_AT, &crc.to_be_bytes());
    Ok(())
}

/// As [`set_producer_state`], and marks the batch transactional (the
/// attributes' transactional bit), for a transactional producer whose
/// batches were built without knowing it. The CRC covers both changes.
pub fn set_transactional_producer_state(
    batch: &mut [u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<(), RecordError> {
    check_sealed(batch)?;
    let attributes = i16_at(batch, ATTRIBUTES_AT).unwrap_or_default() | TRANSACTIONAL_BIT;
    put(batch, ATTRIBUTES_AT, &attributes.to_be_bytes());
    set_producer_state(batch, producer_id, producer_epoch, base_sequence)
}

/// Reads a big-endian integer at a fixed position, `None` if out of range.
macro_rules! be_at {
    ($name:ident, $ty:ty) => {
        #[inline]
        pub(crate) fn $name(b: &[u8], at: usize) -> Option<$ty> {
            const N: usize = std::mem::size_of::<$ty>();
            let s = b.get(at..at.checked_add(N)?)?;
            let mut a = [0u8; N];
            a.copy_from_slice(s);
            Some(<$ty>::from_be_bytes(a))
        }
    };
}
be_at!(i64_at, i64);
be_at!(i32_at, i32);
be_at!(i16_at, i16);
be_at!(u32_at, u32);

/// [`set_producer_state`] for a frozen batch: reuses the allocation when
/// `batch` is its only handle, copies it otherwise.
pub fn with_producer_state(
    batch: Bytes,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<Bytes, RecordError> {
    let mut m = batch
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    set_producer_state(&mut m, producer_id, producer_epoch, base_sequence)?;
    Ok(m.freeze())
}

fn check_sealed(batch: &[u8]) -> Result<(), RecordError> {
    if batch.len() < BATCH_HEADER_LEN {
        return Err(RecordError::corrupt(
            None,
            format!("{} bytes is shorter than a batch header", batch.len()),
        ));
    }
    let base_offset = i64_at(batch, BASE_OFFSET_AT).unwrap_or_default();
    let length = i32_at(batch, LENGTH_AT).unwrap_or_default();
    let magic = batch.get(MAGIC_AT).copied().unwrap_or_default() as i8;
    if magic != MAGIC_V2 {
        return Err(RecordError::UnsupportedMagic { base_offset, magic });
    }
    if length as i64 + LOG_OVERHEAD as i64 != batch.len() as i64 {
        return Err(RecordError::corrupt(
            Some(base_offset),
            format!(
                "batch length field {length} does not match the {} bytes given",
                batch.len()
            ),
        ));
    }
    Ok(())
}
