//! Helpers shared by the record codec tests.

use bytes::{BufMut, Bytes, BytesMut};
use kafkawire::record::{
    Batch, BatchBuilder, BatchHeader, BatchOptions, Batches, Compression, DecodeOptions, Record,
    RecordError,
};

/// A record as the tests describe it (owned, easy to compare).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub ts: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Rec {
    pub fn kv(ts: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Rec {
        Rec {
            ts,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: vec![],
        }
    }

    pub fn from_record(r: &Record) -> Rec {
        Rec {
            ts: r.timestamp,
            key: r.key().map(|b| b.to_vec()),
            value: r.value().map(|b| b.to_vec()),
            headers: r
                .headers()
                .iter()
                .map(|h| {
                    (
                        h.key_str().unwrap().to_owned(),
                        h.value().map(|v| v.to_vec()),
                    )
                })
                .collect(),
        }
    }
}

pub fn opts(codec: Compression) -> BatchOptions {
    BatchOptions {
        compression: codec,
        size_limit: usize::MAX,
        ..BatchOptions::default()
    }
}

/// Appends every record (all must fit) and seals the batch.
pub fn build(opts: BatchOptions, recs: &[Rec]) -> Bytes {
    let mut b = BatchBuilder::new(opts);
    for r in recs {
        let appended = b.append(
            r.ts,
            r.key.as_deref(),
            r.value.as_deref(),
            r.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
        );
        assert!(appended, "record did not fit");
    }
    b.finish().unwrap()
}

/// Decodes every batch and record, panicking on any error or truncation.
pub fn decode(buf: Bytes) -> Vec<(BatchHeader, Vec<Record>)> {
    decode_with(buf, DecodeOptions::default()).unwrap()
}

pub fn decode_with(
    buf: Bytes,
    opts: DecodeOptions,
) -> Result<Vec<(BatchHeader, Vec<Record>)>, RecordError> {
    let mut it = Batches::with_options(buf, opts);
    let mut out = vec![];
    for b in &mut it {
        let b: Batch = b?;
        let recs = b.records()?.collect::<Result<Vec<_>, _>>()?;
        out.push((*b.header(), recs));
    }
    assert!(!it.truncated_tail(), "unexpected truncated tail");
    Ok(out)
}

/// Decodes and flattens to owned records.
pub fn decode_recs(buf: Bytes) -> Vec<Rec> {
    decode(buf)
        .iter()
        .flat_map(|(_, rs)| rs.iter().map(Rec::from_record))
        .collect()
}

/// Recomputes the CRC-32C of a magic 2 batch after a test patched it.
pub fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c_of(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// CRC-32C computed bit by bit, independent of the crate's implementation.
pub fn crc32c_of(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A legacy (magic 0/1) message, built field by field from the format
/// description: offset, size, crc, magic, attributes, [timestamp], key,
/// value.
pub fn legacy_message(
    magic: i8,
    offset: i64,
    attributes: i8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_i8(magic);
    body.put_i8(attributes);
    if magic == 1 {
        body.put_i64(timestamp);
    }
    for field in [key, value] {
        match field {
            Some(b) => {
                body.put_i32(b.len() as i32);
                body.put_slice(b);
            }
            None => body.put_i32(-1),
        }
    }
    let crc = crc32fast::hash(&body);
    let mut out = BytesMut::new();
    out.put_i64(offset);
    out.put_i32(4 + body.len() as i32);
    out.put_u32(crc);
    out.put_slice(&body);
    out.to_vec()
}

/// A simple deterministic pseudo-random generator for test data.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Compressible text-like bytes.
    pub fn text(&mut self, n: usize) -> Vec<u8> {
        const WORDS: [&[u8]; 8] = [
            b"kafka ",
            b"record ",
            b"batch ",
            b"offset ",
            b"{\"id\":",
            b"42,",
            b"value",
            b"\n",
        ];
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(WORDS[(self.next() % 8) as usize]);
        }
        v.truncate(n);
        v
    }
}
