//! Legacy message sets (magic 0 and 1), built by hand from the format
//! description, decode into the same record view as magic 2.

use bytes::{Bytes, BytesMut};
use kafkawire::record::compression::compress;
use kafkawire::record::*;

use crate::common::*;

const GZIP: i8 = 1;
const SNAPPY: i8 = 2;
const LZ4: i8 = 3;
const LOG_APPEND: i8 = 0x08;

fn compressed(codec: Compression, data: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    compress(codec, None, data, &mut out).unwrap();
    out.to_vec()
}

/// An LZ4 frame whose header checksum is computed the way Kafka's early
/// writer did: over the magic number and the descriptor.
fn lz4_broken_hc(data: &[u8]) -> Vec<u8> {
    let mut f = compressed(Compression::Lz4, data);
    let correct = f[6];
    let broken = (twox_hash::XxHash32::oneshot(0, &f[..6]) >> 8) as u8;
    assert_ne!(
        correct, broken,
        "test vector must differ from the correct checksum"
    );
    f[6] = broken;
    f
}

/// Three inner messages with offsets `first..first+3` and distinct
/// timestamps.
fn inner_set(magic: i8, first: i64) -> Vec<u8> {
    [
        legacy_message(magic, first, 0, 1000, Some(b"k0"), Some(b"v0")),
        legacy_message(magic, first + 1, 0, 1001, None, Some(b"v1")),
        legacy_message(magic, first + 2, 0, 1002, Some(b"k2"), None),
    ]
    .concat()
}

fn expected(offsets: [i64; 3], timestamps: [i64; 3]) -> Vec<(i64, Rec)> {
    vec![
        (offsets[0], Rec::kv(timestamps[0], Some(b"k0"), Some(b"v0"))),
        (offsets[1], Rec::kv(timestamps[1], None, Some(b"v1"))),
        (offsets[2], Rec::kv(timestamps[2], Some(b"k2"), None)),
    ]
}

fn decoded(buf: Vec<u8>) -> (BatchHeader, Vec<(i64, Rec)>) {
    crate::roundtrip::assert_views_match(Bytes::from(buf.clone()));
    let d = decode(Bytes::from(buf));
    assert_eq!(d.len(), 1);
    let (h, rs) = &d[0];
    (
        *h,
        rs.iter().map(|r| (r.offset, Rec::from_record(r))).collect(),
    )
}

#[test]
fn magic0_plain_messages() {
    let buf = [
        legacy_message(0, 10, 0, 0, Some(b"key"), Some(b"value")),
        legacy_message(0, 11, 0, 0, None, None),
    ]
    .concat();
    let d = decode(Bytes::from(buf));
    assert_eq!(d.len(), 2, "each legacy message is its own batch");
    let (h, rs) = &d[0];
    assert_eq!(
        (h.magic, h.base_offset, h.record_count, h.last_offset_delta),
        (0, 10, 1, 0)
    );
    assert_eq!(
        (
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            h.partition_leader_epoch
        ),
        (-1, -1, -1, -1)
    );
    assert_eq!(h.compression(), Compression::None);
    assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    assert_eq!(
        Rec::from_record(&rs[0]),
        Rec::kv(-1, Some(b"key"), Some(b"value"))
    );
    assert_eq!(Rec::from_record(&d[1].1[0]), Rec::kv(-1, None, None));
    assert_eq!(d[1].1[0].offset, 11);
}

#[test]
fn magic1_plain_message_with_timestamp() {
    let (h, rs) = decoded(legacy_message(
        1,
        7,
        0,
        1_600_000_000_000,
        Some(b"k"),
        Some(b"v"),
    ));
    assert_eq!(
        (h.magic, h.base_offset, h.max_timestamp),
        (1, 7, 1_600_000_000_000)
    );
    assert_eq!(
        rs,
        vec![(7, Rec::kv(1_600_000_000_000, Some(b"k"), Some(b"v")))]
    );
    let (h, rs) = decoded(legacy_message(1, 7, LOG_APPEND, 99, None, Some(b"v")));
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(rs[0].1.ts, 99);
}

#[test]
fn magic1_gzip_wrapper_has_relative_inner_offsets() {
    // Inner offsets 0..2; the wrapper carries the absolute offset of the
    // last inner message (52), so the records are 50, 51, 52.
    let value = compressed(Compression::Gzip, &inner_set(1, 0));
    let (h, rs) = decoded(legacy_message(1, 52, GZIP, 1002, None, Some(&value)));
    assert_eq!(
        (h.base_offset, h.last_offset(), h.record_count),
        (50, 52, 3)
    );
    assert_eq!(h.compression(), Compression::Gzip);
    assert_eq!(rs, expected([50, 51, 52], [1000, 1001, 1002]));
}

#[test]
fn magic1_wrapper_with_log_append_time_overrides_inner_timestamps() {
    let value = compressed(Compression::Gzip, &inner_set(1, 0));
    let (h, rs) = decoded(legacy_message(
        1,
        2,
        GZIP | LOG_APPEND,
        5555,
        None,
        Some(&value),
    ));
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(rs, expected([0, 1, 2], [5555; 3]));
}

#[test]
fn magic0_gzip_wrapper_has_absolute_inner_offsets() {
    let value = compressed(Compression::Gzip, &inner_set(0, 20));
    let (h, rs) = decoded(legacy_message(0, 22, GZIP, 0, None, Some(&value)));
    assert_eq!(
        (h.base_offset, h.last_offset(), h.record_count),
        (20, 22, 3)
    );
    assert_eq!(rs, expected([20, 21, 22], [-1; 3]));
}

#[test]
fn legacy_snappy_xerial_wrapper() {
    let value = compressed(Compression::Snappy, &inner_set(1, 0));
    assert!(value.starts_with(b"\x82SNAPPY\x00"));
    let (_, rs) = decoded(legacy_message(1, 2, SNAPPY, 0, None, Some(&value)));
    assert_eq!(rs, expected([0, 1, 2], [1000, 1001, 1002]));
    // Raw snappy in a legacy wrapper too.
    let raw = snap::raw::Encoder::new()
        .compress_vec(&inner_set(1, 0))
        .unwrap();
    let (_, rs) = decoded(legacy_message(1, 2, SNAPPY, 0, None, Some(&raw)));
    assert_eq!(rs.len(), 3);
}

#[test]
fn legacy_lz4_accepts_kafkas_old_header_checksum() {
    for magic in [0i8, 1] {
        let value = lz4_broken_hc(&inner_set(magic, 0));
        let (_, rs) = decoded(legacy_message(magic, 2, LZ4, 0, None, Some(&value)));
        assert_eq!(rs.len(), 3, "magic {magic}");
        // Correct checksums are accepted as well.
        let value = compressed(Compression::Lz4, &inner_set(magic, 0));
        let (_, rs) = decoded(legacy_message(magic, 2, LZ4, 0, None, Some(&value)));
        assert_eq!(rs.len(), 3, "magic {magic}");
    }
    // Magic 0 ignores the byte entirely (as the Java client); magic 1 only
    // accepts the two known computations.
    let mut garbage = compressed(Compression::Lz4, &inner_set(0, 0));
    garbage[6] = garbage[6].wrapping_add(1);
    let broken_too = (twox_hash::XxHash32::oneshot(0, &garbage[..6]) >> 8) as u8;
    if garbage[6] == broken_too {
        garbage[6] = garbage[6].wrapping_add(1);
    }
    assert_eq!(
        decoded(legacy_message(0, 2, LZ4, 0, None, Some(&garbage)))
            .1
            .len(),
        3
    );
    let mut garbage1 = compressed(Compression::Lz4, &inner_set(1, 0));
    garbage1[6] = garbage[6];
    let err = decode_with(
        Bytes::from(legacy_message(1, 2, LZ4, 0, None, Some(&garbage1))),
        DecodeOptions::default(),
    );
    assert!(matches!(
        err,
        Err(RecordError::Decompression {
            codec: Compression::Lz4,
            base_offset: Some(2),
            ..
        })
    ));
}

#[test]
fn magic2_rejects_the_old_lz4_header_checksum() {
    let recs = [Rec::kv(1, None, Some(b"x"))];
    let plain = build(opts(Compression::None), &recs);
    let section = lz4_broken_hc(&plain[61..]);
    let mut batch = plain[..61].to_vec();
    batch[22] = 3;
    batch.extend_from_slice(&section);
    let len = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    fix_crc(&mut batch);
    let b = Batches::new(Bytes::from(batch)).next().unwrap().unwrap();
    assert!(matches!(
        b.records(),
        Err(RecordError::Decompression {
            codec: Compression::Lz4,
            ..
        })
    ));
}

#[test]
fn legacy_crc_is_checked_per_message() {
    let mut outer = legacy_message(1, 3, 0, 0, Some(b"k"), Some(b"v"));
    let n = outer.len();
    outer[n - 1] ^= 1;
    let e = decode_with(Bytes::from(outer.clone()), DecodeOptions::default()).unwrap_err();
    assert!(
        matches!(e, RecordError::CrcMismatch { base_offset: 3, .. }),
        "{e}"
    );
    let relaxed = DecodeOptions {
        check_crcs: false,
        ..DecodeOptions::default()
    };
    assert!(decode_with(Bytes::from(outer), relaxed).is_ok());

    let mut inner = inner_set(1, 0);
    let n = inner.len();
    inner[n - 5] ^= 1; // corrupt the key of the last inner message
    let value = compressed(Compression::Gzip, &inner);
    let buf = legacy_message(1, 2, GZIP, 0, None, Some(&value));
    let b = Batches::new(Bytes::from(buf.clone()))
        .next()
        .unwrap()
        .unwrap();
    let results: Vec<_> = b.records().unwrap().collect();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[1].is_ok());
    assert!(matches!(results[2], Err(RecordError::CrcMismatch { .. })));
    assert!(decode_with(Bytes::from(buf), relaxed).is_ok());
}

#[test]
fn invalid_legacy_wrappers() {
    let check = |buf: Vec<u8>, what: &str| {
        let e = decode_with(Bytes::from(buf), DecodeOptions::default()).unwrap_err();
        assert!(e.base_offset().is_some(), "{what}: {e}");
    };
    // Nested compression.
    let inner_wrapper = legacy_message(
        1,
        0,
        GZIP,
        0,
        None,
        Some(&compressed(Compression::Gzip, &inner_set(1, 0))),
    );
    check(
        legacy_message(
            1,
            0,
            GZIP,
            0,
            None,
            Some(&compressed(Compression::Gzip, &inner_wrapper)),
        ),
        "nested",
    );
    // Inner magic differs from the wrapper's.
    check(
        legacy_message(
            1,
            2,
            GZIP,
            0,
            None,
            Some(&compressed(Compression::Gzip, &inner_set(0, 0))),
        ),
        "magic",
    );
    // Null value in a compressed wrapper.
    check(legacy_message(1, 2, GZIP, 0, None, None), "null value");
    // No inner messages.
    check(
        legacy_message(
            1,
            2,
            GZIP,
            0,
            None,
            Some(&compressed(Compression::Gzip, b"")),
        ),
        "empty",
    );
    // Garbage after the last inner message.
    let mut inner = inner_set(1, 0);
    inner.extend([0, 0, 0]);
    check(
        legacy_message(
            1,
            2,
            GZIP,
            0,
            None,
            Some(&compressed(Compression::Gzip, &inner)),
        ),
        "trailing",
    );
    // Unknown codec.
    check(legacy_message(1, 2, 5, 0, None, Some(b"x")), "codec");
    // Key length pointing past the message.
    let mut m = legacy_message(1, 2, 0, 0, Some(b"abc"), None);
    m[12 + 4 + 2 + 8 + 3] = 200;
    let crc = crc32fast::hash(&m[16..]);
    m[12..16].copy_from_slice(&crc.to_be_bytes());
    check(m, "key length");
    // Message size below the minimum for its magic.
    let mut m = legacy_message(1, 2, 0, 0, None, None);
    m[8..12].copy_from_slice(&10i32.to_be_bytes());
    check(m, "size");
}

#[test]
fn legacy_wrapper_respects_decompression_limit() {
    let big: Vec<u8> = (0..1000)
        .flat_map(|i| legacy_message(1, i, 0, 0, None, Some(&[0u8; 1000])))
        .collect();
    let value = compressed(Compression::Gzip, &big);
    let buf = legacy_message(1, 999, GZIP, 0, None, Some(&value));
    let o = DecodeOptions {
        limits: DecodeLimits {
            max_decompressed_size: 100_000,
            ..DecodeLimits::default()
        },
        ..DecodeOptions::default()
    };
    let e = decode_with(Bytes::from(buf.clone()), o).unwrap_err();
    assert!(
        matches!(
            e,
            RecordError::DecompressedTooLarge {
                base_offset: Some(999),
                ..
            }
        ),
        "{e}"
    );
    let o = DecodeOptions {
        limits: DecodeLimits {
            max_records_per_batch: 10,
            ..DecodeLimits::default()
        },
        ..DecodeOptions::default()
    };
    let e = decode_with(Bytes::from(buf.clone()), o).unwrap_err();
    assert!(matches!(e, RecordError::InvalidRecordCount { .. }), "{e}");
    assert_eq!(decode(Bytes::from(buf))[0].1.len(), 1000);
}
