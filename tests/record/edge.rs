//! Hostile and broken input: every failure is a typed error, never a panic
//! or an unbounded allocation.

use bytes::{BufMut, Bytes, BytesMut};
use kafkawire::protocol::wire::DecodeErrorKind;
use kafkawire::record::compression::{compress, decompress};
use kafkawire::record::*;

use crate::common::*;

fn zz(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Appends a zig-zag varint.
fn var(out: &mut Vec<u8>, v: i64) {
    let mut u = zz(v);
    while u >= 0x80 {
        out.push(u as u8 | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// A magic 2 batch with the given attributes, count and raw record section,
/// with a correct length and CRC.
fn raw_batch(attributes: i16, count: i32, section: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i64(100); // base offset
    b.put_i32((49 + section.len()) as i32);
    b.put_i32(-1);
    b.put_i8(2);
    b.put_u32(0);
    b.put_i16(attributes);
    b.put_i32(count.max(1) - 1);
    b.put_i64(1000);
    b.put_i64(1000);
    b.put_i64(-1);
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(count);
    b.put_slice(section);
    let mut v = b.to_vec();
    fix_crc(&mut v);
    v
}

/// One well-formed record with fields given separately.
fn record(ts_delta: i64, off_delta: i64, key: i64, value: i64, headers: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8];
    var(&mut body, ts_delta);
    var(&mut body, off_delta);
    var(&mut body, key);
    if key > 0 {
        body.extend(std::iter::repeat_n(b'k', key as usize));
    }
    var(&mut body, value);
    if value > 0 {
        body.extend(std::iter::repeat_n(b'v', value as usize));
    }
    body.extend_from_slice(headers);
    let mut out = vec![];
    var(&mut out, body.len() as i64);
    out.extend(body);
    out
}

fn records_err(batch: Vec<u8>) -> RecordError {
    records_err_with(batch, DecodeOptions::default())
}

fn records_err_with(batch: Vec<u8>, opts: DecodeOptions) -> RecordError {
    let b = match Batches::with_options(Bytes::from(batch), opts)
        .next()
        .unwrap()
    {
        Ok(b) => b,
        Err(e) => return e,
    };
    match b.records() {
        Err(e) => e,
        Ok(it) => it
            .into_iter()
            .find_map(Result::err)
            .expect("expected a record error"),
    }
}

fn batch_err(batch: Vec<u8>) -> RecordError {
    let mut it = Batches::new(Bytes::from(batch));
    let e = it.next().unwrap().unwrap_err();
    assert!(it.next().is_none(), "iteration stops after an error");
    e
}

#[test]
fn hand_built_batch_decodes() {
    let section = [
        record(0, 0, 1, 2, &[0]),
        record(5, 1, -1, -1, &[4, 2, b'h', 2, b'x', 2, b'i', 1]),
    ]
    .concat();
    let d = decode(Bytes::from(raw_batch(0, 2, &section)));
    let rs = &d[0].1;
    assert_eq!(rs[0].offset, 100);
    assert_eq!(rs[0].key(), Some(&b"k"[..]));
    assert_eq!(rs[0].key_bytes().as_deref(), Some(&b"k"[..]));
    assert_eq!(rs[1].timestamp, 1005);
    assert_eq!(rs[1].value(), None);
    assert_eq!(rs[1].value_bytes(), None);
    let hs: Vec<Header> = rs[1].headers().iter().collect();
    assert_eq!(hs.len(), 2);
    assert_eq!((hs[0].key(), hs[0].value()), (&b"h"[..], Some(&b"x"[..])));
    assert_eq!((hs[1].key(), hs[1].value()), (&b"i"[..], None));
}

#[test]
fn truncation_at_every_byte_ends_cleanly() {
    let mut g = Lcg(3);
    let a = build(
        opts(Compression::None),
        &[Rec {
            ts: 1,
            key: Some(b"k".to_vec()),
            value: Some(g.bytes(50)),
            headers: vec![("h".into(), None)],
        }],
    );
    let b = build(
        opts(Compression::Gzip),
        &[Rec::kv(2, None, Some(&g.text(300))), Rec::kv(3, None, None)],
    );
    let whole = [a.to_vec(), b.to_vec()].concat();
    for cut in 0..=whole.len() {
        let mut it = Batches::new(Bytes::copy_from_slice(&whole[..cut]));
        let mut n = 0;
        for batch in &mut it {
            let batch = batch.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            assert!(batch.records().unwrap().all(|r| r.is_ok()));
            n += 1;
        }
        let expect = if cut >= whole.len() {
            2
        } else if cut >= a.len() {
            1
        } else {
            0
        };
        assert_eq!(n, expect, "cut {cut}");
        let boundary = [0, a.len(), whole.len()].contains(&cut);
        assert_eq!(it.truncated_tail(), !boundary, "cut {cut}");
        let consumed = if n == 2 {
            whole.len()
        } else if n == 1 {
            a.len()
        } else {
            0
        };
        assert_eq!(it.remaining(), cut - consumed);
        assert_eq!(it.position(), consumed);
    }
}

#[test]
fn record_section_cut_at_every_byte_is_an_error() {
    let section = [
        record(0, 0, 3, 10, &[2, 2, b'h', 4, b'x', b'y']),
        record(1, 1, 300, 2, &[0]),
    ]
    .concat();
    for cut in 0..section.len() {
        let e = records_err(raw_batch(0, 2, &section[..cut]));
        // Short sections are caught either by the count bound or by a
        // truncated field; both name the batch.
        assert_eq!(e.base_offset(), Some(100), "cut {cut}: {e}");
    }
}

#[test]
fn bad_crc_is_typed_and_switchable() {
    let mut b = build(
        opts(Compression::None),
        &[Rec::kv(1, None, Some(b"payload"))],
    )
    .to_vec();
    b[0..8].copy_from_slice(&55i64.to_be_bytes());
    let last = b.len() - 3;
    b[last] ^= 0x40;
    match batch_err(b.clone()) {
        RecordError::CrcMismatch {
            base_offset,
            stored,
            computed,
        } => {
            assert_eq!(base_offset, 55);
            assert_ne!(stored, computed);
        }
        e => panic!("{e}"),
    }
    let o = DecodeOptions {
        check_crcs: false,
        ..DecodeOptions::default()
    };
    let d = decode_with(Bytes::from(b), o).unwrap();
    assert_eq!(d[0].1.len(), 1);
}

#[test]
fn invalid_batch_lengths() {
    let good = build(opts(Compression::None), &[Rec::kv(1, None, None)]).to_vec();
    for len in [-1i32, i32::MIN, 0, 48] {
        let mut b = good.clone();
        b[8..12].copy_from_slice(&len.to_be_bytes());
        assert!(
            matches!(batch_err(b), RecordError::InvalidBatchLength { base_offset: 0, length, .. } if length == len as i64),
            "{len}"
        );
    }
    // Larger than the configured maximum: rejected, not treated as truncated.
    let o = DecodeOptions {
        limits: DecodeLimits {
            max_batch_size: 64,
            ..DecodeLimits::default()
        },
        ..Default::default()
    };
    let e = Batches::with_options(Bytes::from(good.clone()), o)
        .next()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(e, RecordError::InvalidBatchLength { max: 52, .. }),
        "{e}"
    );
    // Huge declared length with few bytes present is a truncated tail
    // (within the limit) - the broker may cut anywhere.
    let mut b = good;
    b[8..12].copy_from_slice(&(100_000i32).to_be_bytes());
    let mut it = Batches::new(Bytes::from(b));
    assert!(it.next().is_none());
    assert!(it.truncated_tail());
}

#[test]
fn unknown_magic_and_codec() {
    let mut b = build(opts(Compression::None), &[Rec::kv(1, None, None)]).to_vec();
    b[16] = 3;
    assert!(matches!(
        batch_err(b.clone()),
        RecordError::UnsupportedMagic { magic: 3, .. }
    ));
    b[16] = 0xff;
    assert!(matches!(
        batch_err(b),
        RecordError::UnsupportedMagic { magic: -1, .. }
    ));
    for id in 5..=7 {
        let e = batch_err(raw_batch(id, 0, &[]));
        assert!(
            matches!(e, RecordError::UnknownCompression { id: i, base_offset: Some(100) } if i as i16 == id),
            "{e}"
        );
    }
}

#[test]
fn absurd_record_counts() {
    for count in [-1, i32::MIN, i32::MAX, 1 << 24 | 1] {
        let e = batch_err(raw_batch(0, count, &record(0, 0, 1, 1, &[0])));
        assert!(
            matches!(
                e,
                RecordError::InvalidRecordCount {
                    base_offset: 100,
                    ..
                }
            ),
            "{count}: {e}"
        );
    }
    // More records than the bytes could hold (7 bytes minimum each).
    let e = batch_err(raw_batch(0, 3, &record(0, 0, 1, 1, &[0])));
    assert!(
        matches!(e, RecordError::InvalidRecordCount { limit: 1, .. }),
        "{e}"
    );
    // For compressed batches the bound applies to the decompressed size.
    let mut section = BytesMut::new();
    compress(
        Compression::Lz4,
        None,
        &record(0, 0, -1, -1, &[0]),
        &mut section,
    )
    .unwrap();
    let e = records_err(raw_batch(3, 1000, &section));
    assert!(
        matches!(
            e,
            RecordError::InvalidRecordCount {
                base_offset: 100,
                limit: 1,
                ..
            }
        ),
        "{e}"
    );
    // A configured limit below the count.
    let o = DecodeOptions {
        limits: DecodeLimits {
            max_records_per_batch: 1,
            ..DecodeLimits::default()
        },
        ..DecodeOptions::default()
    };
    let two = [record(0, 0, 1, 1, &[0]), record(0, 1, 1, 1, &[0])].concat();
    assert!(decode_with(Bytes::from(raw_batch(0, 2, &two)), o).is_err());
}

#[test]
fn malformed_records() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative record length", {
            let mut v = vec![];
            var(&mut v, -5);
            v.extend([0; 10]);
            v
        }),
        ("record length past the end", {
            let mut v = vec![];
            var(&mut v, 500);
            v.extend([0; 10]);
            v
        }),
        (
            "overlong record length varint",
            [vec![0xff; 6], vec![0; 10]].concat(),
        ),
        ("overlong timestamp varlong", {
            let mut v = vec![20, 0];
            v.extend([0xff; 11]);
            v.extend([0; 7]);
            v
        }),
        ("key length -2", record(0, 0, -2, 1, &[0])),
        ("value length -7", record(0, 0, 1, -7, &[0])),
        ("value length huge", {
            let mut v = vec![];
            var(&mut v, 20);
            v.extend([0, 0, 0, 2, b'k']);
            var(&mut v, i32::MAX as i64);
            v.extend([0; 14]);
            v
        }),
        ("negative header count", record(0, 0, 1, 1, &[3])),
        (
            "header count larger than bytes",
            record(0, 0, 1, 1, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
        ),
        ("negative header key length", record(0, 0, 1, 1, &[2, 3, 0])),
        (
            "header value length -2",
            record(0, 0, 1, 1, &[2, 2, b'h', 3]),
        ),
        (
            "header value past the record",
            record(0, 0, 1, 1, &[2, 2, b'h', 40]),
        ),
        ("record length larger than its fields", {
            let mut r = record(0, 0, 1, 1, &[0]);
            r[0] += 2;
            r.extend([0, 0]);
            r.extend(record(0, 1, 1, 1, &[0]));
            r
        }),
        (
            "bytes after the declared records",
            [record(0, 0, 1, 1, &[0]), vec![0, 0, 0, 0, 0, 0, 0, 0]].concat(),
        ),
    ];
    for (name, section) in cases {
        let count = if name.starts_with("record length larger") {
            2
        } else {
            1
        };
        let e = records_err(raw_batch(0, count, &section));
        assert_eq!(e.base_offset(), Some(100), "{name}: {e}");
        let _ = e.to_string();
    }
}

#[test]
fn overlong_varint_is_reported_as_such() {
    let e = records_err(raw_batch(0, 1, &[vec![0xff; 6], vec![0; 10]].concat()));
    match e {
        RecordError::Decode {
            base_offset: Some(100),
            source,
        } => {
            assert_eq!(source.kind, DecodeErrorKind::VarintOverflow)
        }
        e => panic!("{e}"),
    }
}

#[test]
fn errors_display_what_and_where() {
    let e = batch_err(raw_batch(6, 0, &[]));
    let s = e.to_string();
    assert!(s.contains("compression") && s.contains("100"), "{s}");
    let err: &dyn std::error::Error = &e;
    let _ = err.source();
}

#[test]
fn partial_trailing_batch_is_not_an_error() {
    let a = build(
        opts(Compression::Snappy),
        &[Rec::kv(1, None, Some(&[1; 100]))],
    );
    let b = build(
        opts(Compression::None),
        &[Rec::kv(1, None, Some(&[2; 100]))],
    );
    let cut = 30;
    let buf = Bytes::from([a.to_vec(), b[..cut].to_vec()].concat());
    let mut it = Batches::new(buf);
    let first = it.next().unwrap().unwrap();
    assert_eq!(first.records().unwrap().count(), 1);
    assert!(it.next().is_none());
    assert!(it.truncated_tail());
    assert_eq!(it.remaining(), cut);
    assert!(it.next().is_none(), "fused");
    // Fewer bytes than the length prefix.
    let mut it = Batches::new(Bytes::from_static(&[0, 0, 0]));
    assert!(it.next().is_none());
    assert!(it.truncated_tail());
    // Empty input: finished, not truncated.
    let mut it = Batches::new(Bytes::new());
    assert!(it.next().is_none());
    assert!(!it.truncated_tail());
}

// ---- decompression bombs -------------------------------------------------

const LIMIT: usize = 8 << 20;
const GIB: usize = 1 << 30;

fn assert_bounded(codec: Compression, payload: &[u8]) {
    match decompress(codec, payload, LIMIT) {
        Err(RecordError::DecompressedTooLarge {
            codec: c, limit, ..
        }) => {
            assert_eq!((c, limit), (codec, LIMIT))
        }
        Err(e) => panic!("{codec}: unexpected error {e}"),
        Ok(b) => panic!("{codec}: bomb decompressed to {} bytes", b.len()),
    }
    // The same payload inside a batch names the batch.
    let o = DecodeOptions {
        limits: DecodeLimits {
            max_decompressed_size: LIMIT,
            ..DecodeLimits::default()
        },
        ..DecodeOptions::default()
    };
    let e = records_err_with(raw_batch(codec.id() as i16, 1, payload), o);
    assert!(
        matches!(
            e,
            RecordError::DecompressedTooLarge {
                base_offset: Some(100),
                ..
            }
        ),
        "{codec}: {e}"
    );
}

/// 1 GiB of zeros as 64 concatenated gzip members of 16 MiB each.
fn gzip_bomb() -> Vec<u8> {
    let mut member = BytesMut::new();
    compress(
        Compression::Gzip,
        Some(9),
        &vec![0u8; 16 << 20],
        &mut member,
    )
    .unwrap();
    let mut v = Vec::with_capacity(member.len() * 64);
    for _ in 0..GIB / (16 << 20) {
        v.extend_from_slice(&member);
    }
    v
}

/// 1 GiB of zeros as one zstd frame of 8192 RLE blocks (4 bytes each).
fn zstd_bomb() -> Vec<u8> {
    let mut v = 0xFD2F_B528u32.to_le_bytes().to_vec();
    v.push(0x00); // no content size, not single segment, no checksum
    v.push(7 << 3); // window 2^17
    let blocks = GIB / (128 << 10);
    for i in 0..blocks {
        let last = (i + 1 == blocks) as u32;
        let h = last | (1 << 1) | ((128 << 10) << 3);
        v.extend_from_slice(&h.to_le_bytes()[..3]);
        v.push(0);
    }
    v
}

/// 1 GiB of zeros as one LZ4 frame of 16384 compressed 64 KiB blocks.
fn lz4_bomb() -> Vec<u8> {
    let mut v = 0x184D_2204u32.to_le_bytes().to_vec();
    let (flg, bd) = (0x60u8, 0x40u8);
    let hc = (twox_hash::XxHash32::oneshot(0, &[flg, bd]) >> 8) as u8;
    v.extend([flg, bd, hc]);
    let block = lz4_flex::block::compress(&[0u8; 65536]);
    for _ in 0..GIB / 65536 {
        v.extend_from_slice(&(block.len() as u32).to_le_bytes());
        v.extend_from_slice(&block);
    }
    v.extend([0; 4]);
    v
}

#[test]
fn decompression_bombs_are_bounded() {
    assert_bounded(Compression::Gzip, &gzip_bomb());
    assert_bounded(Compression::Zstd, &zstd_bomb());
    assert_bounded(Compression::Lz4, &lz4_bomb());
    // Raw snappy states its size up front: 1 GiB is refused before any
    // allocation.
    let mut raw = vec![0x80, 0x80, 0x80, 0x80, 0x04];
    raw.extend([0; 64]);
    assert_bounded(Compression::Snappy, &raw);
    // Xerial snappy: many blocks, bounded as they accumulate.
    let block = snap::raw::Encoder::new()
        .compress_vec(&[0u8; 1 << 20])
        .unwrap();
    let mut x = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    for _ in 0..16 {
        x.extend_from_slice(&(block.len() as u32).to_be_bytes());
        x.extend_from_slice(&block);
    }
    assert_bounded(Compression::Snappy, &x);
}

#[test]
fn zstd_bomb_is_stopped_by_the_default_limit() {
    let e = records_err(raw_batch(4, 1, &zstd_bomb()));
    assert!(
        matches!(e, RecordError::DecompressedTooLarge { limit, .. } if limit == DecodeLimits::default().max_decompressed_size)
    );
}

#[test]
fn output_exactly_at_the_limit_is_accepted() {
    let data = Lcg(9).text(100_000);
    for codec in Compression::ALL {
        let mut c = BytesMut::new();
        compress(codec, None, &data, &mut c).unwrap();
        assert_eq!(decompress(codec, &c, data.len()).unwrap(), data, "{codec}");
        assert!(
            matches!(
                decompress(codec, &c, data.len() - 1),
                Err(RecordError::DecompressedTooLarge { .. })
            ),
            "{codec}"
        );
    }
}

#[test]
fn corrupt_compressed_payloads_are_errors() {
    let data = Lcg(1).text(50_000);
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut c = BytesMut::new();
        compress(codec, None, &data, &mut c).unwrap();
        for cut in [0, 1, 5, c.len() / 2, c.len() - 1] {
            assert!(
                decompress(codec, &c[..cut], 1 << 20).is_err(),
                "{codec} cut {cut}"
            );
        }
        let mut g = Lcg(codec.id() as u64);
        for _ in 0..200 {
            let mut m = c.to_vec();
            let i = g.next() as usize % m.len();
            m[i] ^= 1 << (g.next() % 8);
            // Either an error or some bounded output; never a panic.
            if let Ok(out) = decompress(codec, &m, 1 << 20) {
                assert!(out.len() <= 1 << 20);
            }
        }
    }
}

#[test]
fn random_mutations_of_batches_never_panic() {
    let mut g = Lcg(11);
    let mut seeds = vec![];
    for codec in Compression::ALL {
        let recs: Vec<Rec> = (0..5)
            .map(|i| Rec {
                ts: i,
                key: Some(g.bytes(5)),
                value: Some(g.text(60)),
                headers: vec![("h".into(), Some(g.bytes(3)))],
            })
            .collect();
        seeds.push(build(opts(codec), &recs).to_vec());
    }
    seeds.push(legacy_message(1, 5, 0, 9, Some(b"k"), Some(b"v")));
    let o = DecodeOptions {
        check_crcs: false,
        limits: DecodeLimits {
            max_decompressed_size: 1 << 20,
            ..DecodeLimits::default()
        },
    };
    for seed in &seeds {
        for _ in 0..2000 {
            let mut m = seed.clone();
            for _ in 0..1 + g.next() % 3 {
                let i = g.next() as usize % m.len();
                m[i] = g.next() as u8;
            }
            if g.next().is_multiple_of(4) {
                m.truncate(g.next() as usize % m.len());
            }
            for b in Batches::with_options(Bytes::from(m), o) {
                let Ok(b) = b else { break };
                let _ = b.control_record();
                if let Ok(rs) = b.records() {
                    for r in rs {
                        let Ok(r) = r else { break };
                        for h in r.headers().iter() {
                            let _ = h.value_bytes();
                            let _ = h.key_str();
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn mixed_magic_buffer() {
    let v2 = build(
        opts(Compression::None),
        &[Rec::kv(7, Some(b"new"), Some(b"format"))],
    );
    let mut buf = legacy_message(0, 0, 0, 0, Some(b"a"), Some(b"b"));
    buf.extend(legacy_message(1, 1, 0, 123, None, Some(b"c")));
    let mut v2 = v2.to_vec();
    v2[0..8].copy_from_slice(&2i64.to_be_bytes());
    buf.extend(v2);
    let d = decode(Bytes::from(buf));
    assert_eq!(
        d.iter().map(|(h, _)| h.magic).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let offsets: Vec<i64> = d
        .iter()
        .flat_map(|(_, r)| r.iter().map(|r| r.offset))
        .collect();
    assert_eq!(offsets, [0, 1, 2]);
    assert_eq!(d[0].1[0].timestamp, -1);
    assert_eq!(d[1].1[0].timestamp, 123);
}

#[test]
fn put_varint_helper_matches_crate_encoding() {
    // Sanity check of this file's own varint writer against the crate's.
    use kafkawire::protocol::wire::BufMutExt;
    for v in [0i64, 1, -1, 63, -64, 300, -300, i32::MAX as i64] {
        let mut a = vec![];
        var(&mut a, v);
        let mut b = BytesMut::new();
        b.put_varint(v as i32);
        assert_eq!(a, b.to_vec());
    }
}

#[test]
fn impossible_size_claims_are_refused_before_allocating() {
    // Raw snappy whose preamble claims 4 MiB from a dozen bytes: within the
    // limit, but no snappy stream expands that much.
    let mut raw = vec![0x80, 0x80, 0x80, 0x02];
    raw.extend([0; 10]);
    assert!(matches!(
        decompress(Compression::Snappy, &raw, 64 << 20),
        Err(RecordError::Decompression {
            codec: Compression::Snappy,
            ..
        })
    ));
    // gzip whose trailer claims 4 GiB: the claim only sizes a first guess
    // (capped by what deflate could produce) and then fails verification.
    let mut c = BytesMut::new();
    compress(Compression::Gzip, None, b"hello hello hello", &mut c).unwrap();
    let n = c.len();
    c[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decompress(Compression::Gzip, &c, 64 << 20),
        Err(RecordError::Decompression {
            codec: Compression::Gzip,
            ..
        })
    ));
    // Bytes after the last gzip member that do not start another member are
    // ignored, like java.util.zip.GZIPInputStream.
    let mut c = BytesMut::new();
    compress(Compression::Gzip, None, b"payload", &mut c).unwrap();
    c.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        &decompress(Compression::Gzip, &c, 1024).unwrap()[..],
        b"payload"
    );
    // ... but a second member that is broken is an error.
    c.truncate(c.len() - 3);
    c.extend_from_slice(&[0x1f, 0x8b, 8, 0]);
    assert!(decompress(Compression::Gzip, &c, 1024).is_err());
}
