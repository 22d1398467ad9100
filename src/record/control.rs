//! Control records: the transaction markers (COMMIT / ABORT) a transaction
//! coordinator has partition leaders write at the end of a transaction.
//!
//! A control batch has the control attribute bit set and holds one record.
//! Its key is `version: i16, type: i16` (0 = ABORT, 1 = COMMIT; other types
//! are used by KRaft metadata logs and must be skipped by consumers). A
//! marker's value is `version: i16, coordinator_epoch: i32` (later versions
//! may append fields, which are ignored).

use super::error::RecordError;

/// The type of a control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlKind {
    /// The producer's transaction was aborted: its records up to this marker
    /// must be dropped by `read_committed` consumers.
    Abort,
    /// The producer's transaction was committed.
    Commit,
    /// Any other control record type (not a transaction marker); consumers
    /// skip it.
    Other(i16),
}

impl ControlKind {
    /// The type id stored in the control record key.
    pub fn type_id(self) -> i16 {
        match self {
            ControlKind::Abort => 0,
            ControlKind::Commit => 1,
            ControlKind::Other(t) => t,
        }
    }

    /// The kind for a type id.
    pub fn from_type_id(t: i16) -> Self {
        match t {
            0 => ControlKind::Abort,
            1 => ControlKind::Commit,
            t => ControlKind::Other(t),
        }
    }

    /// Whether this is a transaction marker (COMMIT or ABORT).
    pub fn is_marker(self) -> bool {
        matches!(self, ControlKind::Abort | ControlKind::Commit)
    }
}

/// A parsed control record together with the producer of its batch.
///
/// For [`ControlKind::Other`], `version` is the key's version and
/// `coordinator_epoch` is -1: the value is not interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRecord {
    /// What the marker says.
    pub kind: ControlKind,
    /// Version of the marker value (of the key for non-markers).
    pub version: i16,
    /// Epoch of the transaction coordinator that wrote the marker.
    pub coordinator_epoch: i32,
    /// Producer id of the batch (the transaction's producer).
    pub producer_id: i64,
    /// Producer epoch of the batch.
    pub producer_epoch: i16,
}

impl ControlRecord {
    /// Parses a control record from its key and value. `producer_id` and
    /// `producer_epoch` come from the batch header.
    pub fn parse(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<ControlRecord, RecordError> {
        let key = key.ok_or_else(|| RecordError::corrupt(None, "control record without a key"))?;
        let Some(([kv0, kv1, t0, t1], _)) = key.split_first_chunk::<4>().map(|(a, b)| (*a, b))
        else {
            return Err(RecordError::corrupt(
                None,
                format!("control record key of {} bytes, need 4", key.len()),
            ));
        };
        let key_version = i16::from_be_bytes([kv0, kv1]);
        if key_version < 0 {
            return Err(RecordError::corrupt(
                None,
                format!("negative control record key version {key_version}"),
            ));
        }
        let kind = ControlKind::from_type_id(i16::from_be_bytes([t0, t1]));
        if !kind.is_marker() {
            return Ok(ControlRecord {
                kind,
                version: key_version,
                coordinator_epoch: -1,
                producer_id,
                producer_epoch,
            });
        }
        let value = value
            .ok_or_else(|| RecordError::corrupt(None, "transaction marker without a value"))?;
        let Some(([v0, v1, e0, e1, e2, e3], _)) =
            value.split_first_chunk::<6>().map(|(a, b)| (*a, b))
        else {
            return Err(RecordError::corrupt(
                None,
                format!("transaction marker value of {} bytes, need 6", value.len()),
            ));
        };
        let version = i16::from_be_bytes([v0, v1]);
        if version < 0 {
            return Err(RecordError::corrupt(
                None,
                format!("negative transaction marker version {version}"),
            ));
        }
        Ok(ControlRecord {
            kind,
            version,
            coordinator_epoch: i32::from_be_bytes([e0, e1, e2, e3]),
            producer_id,
            producer_epoch,
        })
    }
}
