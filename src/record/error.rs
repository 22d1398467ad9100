//! The error type of the record codec.

use std::fmt;

use crate::protocol::wire::DecodeError;

use super::compression::Compression;

/// Why a record batch (or legacy message set) could not be encoded or decoded.
///
/// Every variant is caused by the bytes (or by a configured limit), never by
/// a bug. Variants that concern one batch carry the batch's base offset when
/// it was known at the point of failure (`None` when the failure happened
/// before the base offset could be read, or in a free-standing codec call);
/// the consumer adds topic and partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// A primitive read failed: truncated field, bad varint, negative or
    /// oversized length.
    Decode {
        /// Base offset of the batch being read, if known.
        base_offset: Option<i64>,
        /// What went wrong at the primitive level.
        source: DecodeError,
    },
    /// The stored checksum does not match the bytes (CRC-32C for magic 2,
    /// CRC-32/IEEE for magic 0 and 1).
    CrcMismatch {
        /// Base offset of the corrupt batch (for legacy messages: the
        /// message's offset).
        base_offset: i64,
        /// Checksum stored in the batch.
        stored: u32,
        /// Checksum computed over the bytes.
        computed: u32,
    },
    /// The magic byte names a format this codec does not know (not 0, 1 or 2).
    UnsupportedMagic {
        /// Base offset of the batch.
        base_offset: i64,
        /// The magic byte found.
        magic: i8,
    },
    /// The compression bits of the attributes name an unknown codec.
    UnknownCompression {
        /// Base offset of the batch.
        base_offset: Option<i64>,
        /// The codec id found (attributes bits 0-2).
        id: u8,
    },
    /// The batch's declared length is negative, smaller than its fixed
    /// header, or larger than the configured maximum batch size.
    InvalidBatchLength {
        /// Base offset of the batch.
        base_offset: i64,
        /// Declared length (bytes after the length field).
        length: i64,
        /// The smallest valid length for this magic.
        min: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The declared record count is negative, larger than the configured
    /// maximum, or more than the record bytes could possibly hold.
    InvalidRecordCount {
        /// Base offset of the batch.
        base_offset: i64,
        /// Declared count.
        count: i64,
        /// The largest acceptable count for this batch.
        limit: u64,
    },
    /// Decompressing a batch would produce more than the configured maximum.
    /// Decompression stops at the limit; no larger buffer is allocated.
    DecompressedTooLarge {
        /// Base offset of the batch, if known.
        base_offset: Option<i64>,
        /// The codec.
        codec: Compression,
        /// The configured maximum decompressed size in bytes.
        limit: usize,
    },
    /// The compressed payload is not valid for its codec.
    Decompression {
        /// Base offset of the batch, if known.
        base_offset: Option<i64>,
        /// The codec.
        codec: Compression,
        /// What the decompressor reported.
        message: String,
    },
    /// Compressing a batch failed (only possible for absurd sizes).
    Compression {
        /// The codec.
        codec: Compression,
        /// What the compressor reported.
        message: String,
    },
    /// The batch or one of its records is structurally invalid.
    Corrupt {
        /// Base offset of the batch, if known.
        base_offset: Option<i64>,
        /// What was wrong, in words.
        reason: String,
    },
}

impl RecordError {
    /// The base offset of the batch the error concerns, if known.
    pub fn base_offset(&self) -> Option<i64> {
        match self {
            RecordError::Decode { base_offset, .. }
            | RecordError::UnknownCompression { base_offset, .. }
            | RecordError::DecompressedTooLarge { base_offset, .. }
            | RecordError::Decompression { base_offset, .. }
            | RecordError::Corrupt { base_offset, .. } => *base_offset,
            RecordError::CrcMismatch { base_offset, .. }
            | RecordError::UnsupportedMagic { base_offset, .. }
            | RecordError::InvalidBatchLength { base_offset, .. }
            | RecordError::InvalidRecordCount { base_offset, .. } => Some(*base_offset),
            RecordError::Compression { .. } => None,
        }
    }

    /// Fills in the batch base offset where the error does not know it yet.
    /// An offset that is already set is kept.
    pub fn at_base_offset(mut self, offset: i64) -> Self {
        match &mut self {
            RecordError::Decode { base_offset, .. }
            | RecordError::UnknownCompression { base_offset, .. }
            | RecordError::DecompressedTooLarge { base_offset, .. }
            | RecordError::Decompression { base_offset, .. }
            | RecordError::Corrupt { base_offset, .. }
                if base_offset.is_none() =>
            {
                *base_offset = Some(offset);
            }
            _ => {}
        }
        self
    }

    pub(crate) fn corrupt(base_offset: Option<i64>, reason: impl Into<String>) -> Self {
        RecordError::Corrupt {
            base_offset,
            reason: reason.into(),
        }
    }

    pub(crate) fn decompression(codec: Compression, message: impl fmt::Display) -> Self {
        RecordError::Decompression {
            base_offset: None,
            codec,
            message: message.to_string(),
        }
    }
}

impl From<DecodeError> for RecordError {
    fn from(source: DecodeError) -> Self {
        RecordError::Decode {
            base_offset: None,
            source,
        }
    }
}

struct At(Option<i64>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(o) => write!(f, " (batch at base offset {o})"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Decode {
                base_offset,
                source,
            } => {
                write!(f, "{source}{}", At(*base_offset))
            }
            RecordError::CrcMismatch {
                base_offset,
                stored,
                computed,
            } => write!(
                f,
                "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}{}",
                At(Some(*base_offset))
            ),
            RecordError::UnsupportedMagic { base_offset, magic } => {
                write!(
                    f,
                    "unsupported record format magic {magic}{}",
                    At(Some(*base_offset))
                )
            }
            RecordError::UnknownCompression { base_offset, id } => {
                write!(f, "unknown compression codec id {id}{}", At(*base_offset))
            }
            RecordError::InvalidBatchLength {
                base_offset,
                length,
                min,
                max,
            } => write!(
                f,
                "invalid batch length {length} (must be between {min} and {max}){}",
                At(Some(*base_offset))
            ),
            RecordError::InvalidRecordCount {
                base_offset,
                count,
                limit,
            } => write!(
                f,
                "invalid record count {count} (at most {limit} possible){}",
                At(Some(*base_offset))
            ),
            RecordError::DecompressedTooLarge {
                base_offset,
                codec,
                limit,
            } => write!(
                f,
                "{codec} payload decompresses to more than the limit of {limit} bytes{}",
                At(*base_offset)
            ),
            RecordError::Decompression {
                base_offset,
                codec,
                message,
            } => {
                write!(f, "invalid {codec} payload: {message}{}", At(*base_offset))
            }
            RecordError::Compression { codec, message } => {
                write!(f, "{codec} compression failed: {message}")
            }
            RecordError::Corrupt {
                base_offset,
                reason,
            } => {
                write!(f, "corrupt record batch: {reason}{}", At(*base_offset))
            }
        }
    }
}

impl std::error::Error for RecordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecordError::Decode { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Attaches a base offset to the error of a `Result`.
pub(crate) trait AtOffset<T> {
    fn at(self, base_offset: i64) -> Result<T, RecordError>;
}

impl<T, E: Into<RecordError>> AtOffset<T> for Result<T, E> {
    #[inline]
    fn at(self, base_offset: i64) -> Result<T, RecordError> {
        self.map_err(|e| e.into().at_base_offset(base_offset))
    }
}
