//! Splitting a batch the broker rejected as too large (sans-IO).
//!
//! A broker refuses a whole batch with MESSAGE_TOO_LARGE when it exceeds the
//! topic's `max.message.bytes` (the producer's `batch.size` can be larger).
//! Like the Java client, the producer then splits the batch and sends the
//! records again in smaller batches, in their original order. The producer
//! does not know the topic's limit, so each split halves the batch by
//! record bytes (two pieces); a piece that is still too large is split again, until a
//! single record remains (which then fails alone).
//!
//! The pieces keep the records' timestamps, keys, values and headers and the
//! original codec; producer id, epoch and sequence are stamped by the
//! sender (the pieces take contiguous sequences from the original's base
//! sequence, so the batches behind it keep theirs).

use crate::record::{BatchBuilder, BatchOptions, Batches, RecordError};
use bytes::{Bytes, BytesMut};

/// One piece of a split batch.
#[derive(Debug)]
pub(crate) struct Piece {
    /// Offset delta, within the split batch, of the piece's first record.
    pub first: i32,
    /// Records in the piece.
    pub count: i32,
    /// The sealed piece (producer state not set).
    pub bytes: BytesMut,
}

/// Splits the sealed batch `payload` (at least two records) into two
/// pieces of about half its record bytes each, in record order.
pub(crate) fn split(payload: &Bytes) -> Result<Vec<Piece>, RecordError> {
    let batch = match Batches::new(payload.clone()).next() {
        Some(b) => b?,
        None => return Err(RecordError::corrupt(None, "no batch to split")),
    };
    let compression = batch.compression();
    let mut records = Vec::new();
    for r in batch.records()? {
        records.push(r?);
    }
    if records.len() < 2 {
        return Err(RecordError::corrupt(
            Some(0),
            "a batch of one record cannot be split",
        ));
    }
    // Record bytes (uncompressed) decide where the halves end.
    let sizes: Vec<usize> = records
        .iter()
        .map(|r| {
            let h: usize = r
                .headers()
                .iter()
                .map(|h| h.key().len() + h.value().map_or(0, <[u8]>::len) + 8)
                .sum();
            r.key().map_or(0, <[u8]>::len) + r.value().map_or(0, <[u8]>::len) + h + 16
        })
        .collect();
    let total: usize = sizes.iter().sum();
    let half = total.div_ceil(2);
    // No size limit in the builder: `filled` decides where pieces end.
    let opts = BatchOptions {
        compression,
        size_limit: usize::MAX,
        ..BatchOptions::default()
    };
    let mut pieces = Vec::new();
    let mut builder = BatchBuilder::new(opts);
    let (mut first, mut filled) = (0i32, 0usize);
    for (r, size) in records.iter().zip(&sizes) {
        // The first piece ends before the record that would take it past
        // half the bytes; the second takes the rest. Since total > half,
        // the last record never joins a piece holding all the others: there
        // are always two pieces, each with fewer records than the batch.
        if pieces.is_empty() && !builder.is_empty() && filled + size > half {
            let done = std::mem::replace(&mut builder, BatchBuilder::new(opts));
            let count = done.record_count() as i32;
            pieces.push(Piece {
                first,
                count,
                bytes: done.finish_mut()?,
            });
            first += count;
            filled = 0;
        }
        let mut headers = Vec::with_capacity(r.headers().len());
        for h in r.headers().iter() {
            let key = h
                .key_str()
                .map_err(|_| RecordError::corrupt(Some(r.offset), "header key is not UTF-8"))?;
            headers.push((key, h.value()));
        }
        if !builder.append(r.timestamp, r.key(), r.value(), headers.iter().copied()) {
            return Err(RecordError::corrupt(
                Some(r.offset),
                "record could not be re-encoded",
            ));
        }
        filled += size;
    }
    let count = builder.record_count() as i32;
    pieces.push(Piece {
        first,
        count,
        bytes: builder.finish_mut()?,
    });
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Compression, NO_HEADERS};

    fn batch(n: usize, value_len: usize, compression: Compression) -> Bytes {
        let mut b = BatchBuilder::new(BatchOptions {
            compression,
            size_limit: usize::MAX,
            ..BatchOptions::default()
        });
        for i in 0..n {
            let v = vec![b'a' + (i % 26) as u8; value_len];
            let key = format!("k{i}");
            let hv = i.to_string();
            assert!(b.append(
                1000 + i as i64,
                Some(key.as_bytes()),
                Some(&v),
                [("h", Some(hv.as_bytes()))]
            ));
        }
        b.finish().unwrap()
    }

    fn read(pieces: &[Piece]) -> Vec<(i64, String, usize, String)> {
        let mut out = Vec::new();
        for p in pieces {
            let b = Batches::new(p.bytes.clone().freeze())
                .next()
                .unwrap()
                .unwrap();
            assert_eq!(b.record_count(), p.count);
            for r in b.records().unwrap() {
                let r = r.unwrap();
                let h = r.headers().iter().next().unwrap();
                out.push((
                    r.timestamp,
                    String::from_utf8(r.key().unwrap().to_vec()).unwrap(),
                    r.value().unwrap().len(),
                    String::from_utf8(h.value().unwrap().to_vec()).unwrap(),
                ));
            }
        }
        out
    }

    #[test]
    fn halves_keep_every_record_in_order() {
        for compression in [Compression::None, Compression::Gzip] {
            let original = batch(9, 100, compression);
            let pieces = split(&original).unwrap();
            assert_eq!(pieces.len(), 2);
            assert_eq!(pieces[0].first, 0);
            assert_eq!(pieces[1].first, pieces[0].count);
            assert_eq!(pieces[0].count + pieces[1].count, 9);
            let got = read(&pieces);
            let want: Vec<_> = (0..9)
                .map(|i| (1000 + i as i64, format!("k{i}"), 100, i.to_string()))
                .collect();
            assert_eq!(got, want);
            let b = Batches::new(pieces[1].bytes.clone().freeze())
                .next()
                .unwrap()
                .unwrap();
            assert_eq!(b.compression(), compression);
        }
    }

    #[test]
    fn two_records_make_two_pieces_whatever_their_sizes() {
        for sizes in [[10, 5000], [5000, 10]] {
            let mut b = BatchBuilder::new(BatchOptions {
                size_limit: usize::MAX,
                ..BatchOptions::default()
            });
            for (ts, size) in sizes.iter().enumerate() {
                assert!(b.append(ts as i64 + 1, None, Some(&vec![0u8; *size][..]), NO_HEADERS));
            }
            let pieces = split(&b.finish().unwrap()).unwrap();
            let shape: Vec<_> = pieces.iter().map(|p| (p.first, p.count)).collect();
            assert_eq!(shape, vec![(0, 1), (1, 1)], "record sizes {sizes:?}");
        }
    }

    #[test]
    fn repeated_halving_ends_with_single_records() {
        let mut pending = vec![batch(16, 50, Compression::None)];
        let mut singles = 0;
        for _ in 0..100 {
            let Some(b) = pending.pop() else { break };
            let n = Batches::new(b.clone())
                .next()
                .unwrap()
                .unwrap()
                .record_count();
            if n == 1 {
                singles += 1;
                continue;
            }
            let pieces = split(&b).unwrap();
            assert!(pieces.len() >= 2 && pieces.iter().all(|p| p.count < n));
            pending.extend(pieces.into_iter().map(|p| p.bytes.freeze()));
        }
        assert_eq!(singles, 16);
        assert!(split(&batch(1, 10, Compression::None)).is_err());
    }
}
