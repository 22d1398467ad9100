//! Record batches (magic 2) and legacy message sets (magic 0/1).
//!
//! # Batch layout (magic 2)
//!
//! ```text
//! offset  size  field
//!      0     8  base offset
//!      8     4  batch length (bytes after this field)
//!     12     4  partition leader epoch
//!     16     1  magic (2)
//!     17     4  CRC-32C of everything from attributes to the end
//!     21     2  attributes: bits 0-2 compression, 3 timestamp type,
//!               4 transactional, 5 control, 6 delete horizon
//!     23     4  last offset delta
//!     27     8  base timestamp
//!     35     8  max timestamp
//!     43     8  producer id
//!     51     2  producer epoch
//!     55     4  base sequence
//!     57     4  record count
//!     61     -  records, compressed as a whole if the codec is not none
//! ```
//!
//! Each record is a varint length followed by: attributes (i8, unused),
//! timestamp delta (varlong), offset delta (varint), key and value
//! (varint length, -1 for null, then bytes), and a varint header count
//! followed by headers (varint key length and UTF-8 key, varint value length
//! with -1 for null, then bytes). Varints are zig-zag encoded.
//!
//! Legacy formats are described in the `legacy` module; they decode into
//! the same [`Record`] view.
//!
//! # Decoding contract: lazy and zero-copy
//!
//! [`Batches`] walks the `records` bytes of a fetched partition (a
//! [`Bytes`](bytes::Bytes) slice of the response) and yields one [`Batch`]
//! per batch, decoding only its 61-byte header (and verifying its CRC unless
//! disabled). Records are decoded only when iterated: [`Batch::record_set`]
//! decompresses a compressed batch once, into a single buffer, and the
//! [`RecordSet`] is then iterated by reference for borrowed [`RecordView`]s
//! (no reference counting per record) or by value for owned [`Record`]s
//! (one reference-count increment per record). Keys, values and header
//! values are slices of the fetched buffer or of that decompressed buffer,
//! borrowed (`key()`, `value()`) or as zero-copy `Bytes` (`key_bytes()`,
//! `value_bytes()`); nothing is copied.
//!
//! A trailing partial batch (a broker cuts the last batch at the fetch size
//! limit) ends iteration without an error and is reported by
//! [`Batches::truncated_tail`]. Every length, count and size read from the
//! wire is checked against the bytes present and against [`DecodeLimits`]
//! before it is used; malformed input yields a [`RecordError`] (carrying the
//! batch base offset where known), never a panic.
//!
//! # Encoding
//!
//! [`BatchBuilder`] writes records directly into the batch buffer and seals
//! it with [`BatchBuilder::finish`]. [`set_producer_state`] re-stamps a
//! sealed batch with a new producer id, epoch and base sequence.

#![warn(missing_docs)]

mod batch;
mod checksum;
pub mod compression;
mod control;
mod decode;
mod error;
mod legacy;

pub use batch::{
    set_producer_state, set_transactional_producer_state, with_producer_state, BatchBuilder,
    BatchOptions, TimestampType, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, NO_HEADERS,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, NO_TIMESTAMP,
};
/// CRC-32C as used by magic 2 batches (same result as the `crc32c` crate,
/// faster on CPUs with AVX-512 VPCLMULQDQ). Public for the benchmarks.
#[doc(hidden)]
pub use checksum::crc32c;
pub use compression::Compression;
pub use control::{ControlKind, ControlRecord};
pub use decode::{
    Batch, BatchHeader, Batches, DecodeLimits, DecodeOptions, Header, HeaderIter, Headers, Record,
    RecordSet, RecordView, RecordViews, Records,
};
pub use error::RecordError;
