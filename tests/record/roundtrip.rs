//! Encode → decode round trips over many batch shapes and every codec.

use bytes::Bytes;
use kafkawire::record::*;

use crate::common::*;

fn shapes() -> Vec<(&'static str, Vec<Rec>)> {
    let mut g = Lcg(7);
    let mut v = vec![];
    v.push((
        "single null key and value",
        vec![Rec::kv(1_700_000_000_000, None, None)],
    ));
    v.push((
        "empty key and value",
        vec![Rec::kv(5, Some(b""), Some(b""))],
    ));
    v.push(("null key, value", vec![Rec::kv(5, None, Some(b"v"))]));
    v.push((
        "headers with duplicates, null and empty values",
        vec![Rec {
            ts: 10,
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: vec![
                ("a".into(), Some(b"1".to_vec())),
                ("a".into(), Some(b"2".to_vec())),
                ("nul".into(), None),
                ("".into(), Some(vec![])),
                ("ünïcode".into(), Some(g.bytes(300))),
            ],
        }],
    ));
    v.push((
        "timestamps out of order and negative",
        vec![
            Rec::kv(1000, None, Some(b"a")),
            Rec::kv(-5, None, Some(b"b")),
            Rec::kv(i64::MAX / 2, None, Some(b"c")),
        ],
    ));
    v.push((
        "many small records",
        (0..2000)
            .map(|i| {
                Rec::kv(
                    1_000 + i,
                    Some(format!("k{i}").as_bytes()),
                    Some(&g.text(20)),
                )
            })
            .collect(),
    ));
    v.push((
        "large records (varint lengths of 3-4 bytes)",
        vec![
            Rec::kv(1, Some(&g.bytes(200_000)), Some(&g.text(1 << 20))),
            Rec::kv(2, None, Some(&g.bytes(70_000))),
        ],
    ));
    v.push((
        "mixed",
        (0..300)
            .map(|i| Rec {
                ts: 1_700_000_000_000 + (i % 7) * 13,
                key: (i % 3 != 0).then(|| g.bytes((i % 50) as usize)),
                value: (i % 5 != 0).then(|| g.text((i * 37 % 900) as usize)),
                headers: (0..(i % 4))
                    .map(|h| {
                        (
                            format!("h{h}"),
                            (h % 2 == 0).then(|| g.bytes(h as usize * 3)),
                        )
                    })
                    .collect(),
            })
            .collect(),
    ));
    v
}

#[test]
fn every_shape_round_trips_under_every_codec() {
    for (name, recs) in shapes() {
        for codec in Compression::ALL {
            let batch = build(opts(codec), &recs);
            let decoded = decode(batch.clone());
            assert_eq!(decoded.len(), 1, "{name}/{codec}");
            let (h, rs) = &decoded[0];
            assert_eq!(h.compression(), codec, "{name}");
            assert_eq!(h.record_count as usize, recs.len(), "{name}/{codec}");
            assert_eq!(h.magic, 2);
            assert_eq!(h.base_offset, 0);
            assert_eq!(h.partition_leader_epoch, -1);
            assert_eq!(h.last_offset_delta as usize, recs.len() - 1);
            assert_eq!(h.base_timestamp, recs[0].ts);
            assert_eq!(h.max_timestamp, recs.iter().map(|r| r.ts).max().unwrap());
            assert_eq!(h.batch_length as usize + 12, batch.len());
            let got: Vec<Rec> = rs.iter().map(Rec::from_record).collect();
            assert_eq!(got, recs, "{name}/{codec}");
            for (i, r) in rs.iter().enumerate() {
                assert_eq!(r.offset, i as i64);
            }
        }
    }
}

#[test]
fn header_fields_are_written_as_configured() {
    let o = BatchOptions {
        producer_id: 123_456_789_012,
        producer_epoch: 7,
        base_sequence: 4242,
        transactional: true,
        timestamp_type: TimestampType::CreateTime,
        ..opts(Compression::Lz4)
    };
    let batch = build(
        o,
        &[Rec::kv(9, None, Some(b"x")), Rec::kv(11, None, Some(b"y"))],
    );
    let b = Batches::new(batch).next().unwrap().unwrap();
    assert_eq!(b.producer_id(), 123_456_789_012);
    assert_eq!(b.producer_epoch(), 7);
    assert_eq!(b.base_sequence(), 4242);
    assert!(b.is_transactional());
    assert!(!b.is_control());
    assert!(!b.header().has_delete_horizon());
    assert_eq!(b.compression(), Compression::Lz4);
    assert_eq!(b.timestamp_type(), TimestampType::CreateTime);
    assert_eq!(b.last_offset(), 1);
    assert_eq!(b.next_offset(), 2);
    assert_eq!(b.control_record().unwrap(), None);
}

#[test]
fn log_append_time_gives_every_record_the_max_timestamp() {
    let o = BatchOptions {
        timestamp_type: TimestampType::LogAppendTime,
        ..opts(Compression::None)
    };
    let batch = build(
        o,
        &[
            Rec::kv(100, None, Some(b"a")),
            Rec::kv(300, None, Some(b"b")),
            Rec::kv(200, None, None),
        ],
    );
    let d = decode(batch);
    assert_eq!(d[0].0.timestamp_type(), TimestampType::LogAppendTime);
    assert!(d[0].1.iter().all(|r| r.timestamp == 300));
}

#[test]
fn empty_batch_encodes_and_decodes() {
    for codec in Compression::ALL {
        let batch = BatchBuilder::new(opts(codec)).finish().unwrap();
        let d = decode(batch);
        assert_eq!(d[0].0.record_count, 0);
        assert_eq!(d[0].0.base_timestamp, -1);
        assert!(d[0].1.is_empty());
    }
}

#[test]
fn base_offset_and_leader_epoch_are_outside_the_crc() {
    // A broker rewrites both without recomputing the CRC; decoding must
    // honour the new base offset.
    let mut batch = build(
        opts(Compression::Snappy),
        &[Rec::kv(1, None, Some(b"a")), Rec::kv(2, None, Some(b"b"))],
    )
    .to_vec();
    batch[0..8].copy_from_slice(&1_000_000i64.to_be_bytes());
    batch[12..16].copy_from_slice(&17i32.to_be_bytes());
    let d = decode(Bytes::from(batch));
    assert_eq!(d[0].0.partition_leader_epoch, 17);
    assert_eq!(
        d[0].1.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![1_000_000, 1_000_001]
    );
}

#[test]
fn several_batches_in_one_buffer() {
    let mut all = Vec::new();
    let mut expect = vec![];
    for (i, codec) in Compression::ALL.into_iter().enumerate() {
        let recs: Vec<Rec> = (0..10)
            .map(|j| Rec::kv(j, Some(&[i as u8]), Some(&[j as u8; 40])))
            .collect();
        let mut b = build(opts(codec), &recs).to_vec();
        b[0..8].copy_from_slice(&(i as i64 * 10).to_be_bytes());
        all.extend_from_slice(&b);
        expect.extend(recs);
    }
    let buf = Bytes::from(all);
    let d = decode(buf.clone());
    assert_eq!(d.len(), 5);
    let offsets: Vec<i64> = d
        .iter()
        .flat_map(|(_, r)| r.iter().map(|r| r.offset))
        .collect();
    assert_eq!(offsets, (0..50).collect::<Vec<_>>());
    assert_eq!(decode_recs(buf), expect);
}

#[test]
fn uncompressed_values_are_slices_of_the_fetched_buffer() {
    let batch = build(
        opts(Compression::None),
        &[Rec::kv(1, Some(b"key"), Some(b"value"))],
    );
    let range = batch.as_ptr() as usize..batch.as_ptr() as usize + batch.len();
    let b = Batches::new(batch.clone()).next().unwrap().unwrap();
    let r = b.records().unwrap().next().unwrap().unwrap();
    assert!(range.contains(&(r.value_bytes().unwrap().as_ptr() as usize)));
    assert!(range.contains(&(r.key_bytes().unwrap().as_ptr() as usize)));
    assert!(range.contains(&(b.raw().as_ptr() as usize)));
}

#[test]
fn compressed_values_share_one_decompressed_buffer() {
    let recs: Vec<Rec> = (0..50)
        .map(|i| Rec::kv(i, None, Some(&[i as u8; 100])))
        .collect();
    let batch = build(opts(Compression::Zstd), &recs);
    let b = Batches::new(batch).next().unwrap().unwrap();
    let rs: Vec<Record> = b.records().unwrap().map(Result::unwrap).collect();
    let first = rs[0].value().unwrap().as_ptr() as usize;
    let last = rs[49].value().unwrap().as_ptr() as usize;
    // Consecutive values of one contiguous buffer: 100 bytes + record framing.
    assert!(
        last > first && last - first < 50 * 120,
        "values are not in one buffer"
    );
}

#[test]
fn next_map_sees_what_next_sees() {
    for (name, recs) in shapes() {
        for codec in Compression::ALL {
            let batch = build(opts(codec), &recs);
            let b = Batches::new(batch).next().unwrap().unwrap();
            let owned: Vec<(i64, Rec)> = b
                .records()
                .unwrap()
                .map(|r| r.unwrap())
                .map(|r| (r.offset, Rec::from_record(&r)))
                .collect();
            let mut records = b.records().unwrap();
            let mut mapped = vec![];
            while let Some(r) = records.next_map(|v| (v.offset, Rec::from_record(&v.to_record()))) {
                mapped.push(r.unwrap());
            }
            assert_eq!(mapped, owned, "{name}/{codec}");
            assert_eq!(owned.len(), recs.len(), "{name}/{codec}");
        }
    }
    assert!(Headers::EMPTY.is_empty());
    assert_eq!(Headers::EMPTY.iter().count(), 0);
}

#[test]
fn next_map_stops_after_the_first_error() {
    let recs: Vec<Rec> = (0..3).map(|i| Rec::kv(i, None, Some(b"abc"))).collect();
    let batch = build(opts(Compression::None), &recs);
    // Cut the last record's value short by one byte (batch length and CRC
    // left alone; CRC checking off) so that only the third record is bad.
    let mut bytes = batch.to_vec();
    bytes.pop();
    let len = i32::from_be_bytes(bytes[8..12].try_into().unwrap()) - 1;
    bytes[8..12].copy_from_slice(&len.to_be_bytes());
    let opts = DecodeOptions {
        check_crcs: false,
        ..DecodeOptions::default()
    };
    let b = Batches::with_options(Bytes::from(bytes), opts)
        .next()
        .unwrap()
        .unwrap();
    let mut records = b.records().unwrap();
    let mut results = vec![];
    while let Some(r) = records.next_map(|v| v.offset) {
        results.push(r);
    }
    assert_eq!(results.len(), 3, "{results:?}");
    assert_eq!(results[0].as_ref().ok(), Some(&0));
    assert_eq!(results[1].as_ref().ok(), Some(&1));
    assert!(results[2].is_err(), "{results:?}");
}

#[test]
fn headers_api() {
    let r = Rec {
        ts: 0,
        key: None,
        value: None,
        headers: vec![
            ("a".into(), Some(b"1".to_vec())),
            ("b".into(), None),
            ("a".into(), Some(b"3".to_vec())),
        ],
    };
    let b = Batches::new(build(opts(Compression::None), &[r]))
        .next()
        .unwrap()
        .unwrap();
    let rec = b.records().unwrap().next().unwrap().unwrap();
    assert_eq!(rec.headers().len(), 3);
    assert_eq!(rec.headers().last("a"), Some(Some(&b"3"[..])));
    assert_eq!(rec.headers().last("b"), Some(None));
    assert_eq!(rec.headers().last("zzz"), None);
    let keys: Vec<String> = rec
        .headers()
        .into_iter()
        .map(|h| h.key_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["a", "b", "a"]);
}

#[test]
fn size_limit_seals_the_batch_but_first_record_always_fits() {
    let o = BatchOptions {
        size_limit: 1000,
        ..BatchOptions::default()
    };
    let mut b = BatchBuilder::new(o);
    assert!(
        b.append(0, None, Some(&[0u8; 5000]), NO_HEADERS),
        "first record is always accepted"
    );
    assert!(
        !b.append(0, None, Some(&[0u8; 1]), NO_HEADERS),
        "nothing fits after an oversized first record"
    );
    assert_eq!(b.record_count(), 1);

    let mut b = BatchBuilder::new(o);
    let mut n = 0;
    while b.append(0, None, Some(&[7u8; 90]), NO_HEADERS) {
        n += 1;
        assert_eq!(b.estimated_size(), b.uncompressed_size());
        assert!(b.estimated_size() <= 1000);
    }
    assert!(n > 5);
    let size = b.estimated_size();
    let batch = b.finish().unwrap();
    assert_eq!(batch.len(), size, "uncompressed size estimate is exact");
    assert_eq!(decode(batch)[0].1.len(), n);
}

#[test]
fn compression_ratio_estimate_lets_more_records_in() {
    let base = BatchOptions {
        size_limit: 4096,
        compression: Compression::Gzip,
        ..BatchOptions::default()
    };
    let count = |ratio: f32| {
        let mut b = BatchBuilder::new(BatchOptions {
            estimated_compression_ratio: ratio,
            ..base
        });
        let mut n = 0;
        while b.append(0, None, Some(&[1u8; 100]), NO_HEADERS) {
            n += 1;
        }
        (n, b.finish().unwrap().len())
    };
    let (n1, len1) = count(1.0);
    let (n4, _) = count(0.25);
    assert!(n4 > 3 * n1, "{n4} vs {n1}");
    assert!(len1 <= 4096);
}

#[test]
fn rejected_append_leaves_the_batch_unchanged() {
    let mut b = BatchBuilder::new(BatchOptions {
        size_limit: 200,
        ..BatchOptions::default()
    });
    assert!(b.append(1, Some(b"k"), Some(b"v"), NO_HEADERS));
    let before = b.uncompressed_size();
    assert!(!b.append(2, None, Some(&[0u8; 500]), [("h", Some(b"x".as_slice()))]));
    assert_eq!(b.uncompressed_size(), before);
    let d = decode(b.finish().unwrap());
    assert_eq!(d[0].1.len(), 1);
    assert_eq!(d[0].0.max_timestamp, 1);
}

#[test]
fn reused_buffer_builds_the_same_batch() {
    let recs = [Rec::kv(3, Some(b"a"), Some(b"b"))];
    let first = build(opts(Compression::None), &recs);
    let mut b = BatchBuilder::with_buffer(opts(Compression::None), b"garbage".to_vec());
    assert!(b.append(3, Some(b"a"), Some(b"b"), NO_HEADERS));
    assert_eq!(b.finish().unwrap(), first);
}

#[test]
fn producer_state_rewrite_restamps_and_recomputes_crc() {
    for codec in Compression::ALL {
        let o = BatchOptions {
            producer_id: 1,
            producer_epoch: 1,
            base_sequence: 0,
            ..opts(codec)
        };
        let recs: Vec<Rec> = (0..20)
            .map(|i| Rec::kv(i, None, Some(&[i as u8; 30])))
            .collect();
        let batch = build(o, &recs);
        let mut m = batch.to_vec();
        set_producer_state(&mut m, 99, 3, 500).unwrap();
        assert_eq!(
            crc32c_of(&m[21..]),
            u32::from_be_bytes(m[17..21].try_into().unwrap())
        );
        let b = Batches::new(Bytes::from(m)).next().unwrap().unwrap();
        assert_eq!(
            (b.producer_id(), b.producer_epoch(), b.base_sequence()),
            (99, 3, 500)
        );
        let got: Vec<Rec> = b
            .records()
            .unwrap()
            .map(|r| Rec::from_record(&r.unwrap()))
            .collect();
        assert_eq!(got, recs);

        // The Bytes variant: shared handle copies, unique handle reuses.
        let other = batch.clone();
        let re = with_producer_state(batch, 5, 6, 7).unwrap();
        assert_ne!(re, other);
        let b = Batches::new(re).next().unwrap().unwrap();
        assert_eq!(
            (b.producer_id(), b.producer_epoch(), b.base_sequence()),
            (5, 6, 7)
        );
    }
}

#[test]
fn producer_state_rewrite_rejects_non_batches() {
    let batch = build(opts(Compression::None), &[Rec::kv(1, None, None)]);
    let mut short = batch[..40].to_vec();
    assert!(set_producer_state(&mut short, 1, 1, 1).is_err());
    let mut two = [batch.to_vec(), batch.to_vec()].concat();
    let before = two.clone();
    assert!(set_producer_state(&mut two, 1, 1, 1).is_err());
    assert_eq!(two, before, "rejected input is not modified");
    let mut legacy = crate::common::legacy_message(1, 0, 0, 0, None, Some(&[0; 60]));
    assert!(matches!(
        set_producer_state(&mut legacy, 1, 1, 1),
        Err(RecordError::UnsupportedMagic { magic: 1, .. })
    ));
}

#[test]
fn control_batches_parse_to_markers() {
    for (kind, epoch) in [(ControlKind::Commit, 12), (ControlKind::Abort, 0)] {
        let batch = BatchBuilder::control_batch(kind, 777, 4, epoch, 1234);
        let b = Batches::new(batch).next().unwrap().unwrap();
        assert!(b.is_control());
        assert!(b.is_transactional());
        assert_eq!(b.base_sequence(), -1);
        let c = b.control_record().unwrap().unwrap();
        assert_eq!(
            c,
            ControlRecord {
                kind,
                version: 0,
                coordinator_epoch: epoch,
                producer_id: 777,
                producer_epoch: 4
            }
        );
    }
}

#[test]
fn control_record_parsing_edge_cases() {
    // Unknown type: not a marker, value ignored.
    let c = ControlRecord::parse(Some(&[0, 0, 0, 5]), None, 1, 2).unwrap();
    assert_eq!(c.kind, ControlKind::Other(5));
    assert!(!c.kind.is_marker());
    // Newer marker versions may carry extra bytes.
    let c = ControlRecord::parse(
        Some(&[0, 0, 0, 1]),
        Some(&[0, 1, 0, 0, 0, 9, 0xff, 0xff]),
        1,
        2,
    )
    .unwrap();
    assert_eq!(
        (c.kind, c.version, c.coordinator_epoch),
        (ControlKind::Commit, 1, 9)
    );
    // Errors, not panics.
    assert!(ControlRecord::parse(None, Some(&[0; 6]), 1, 2).is_err());
    assert!(ControlRecord::parse(Some(&[0, 0, 0]), Some(&[0; 6]), 1, 2).is_err());
    assert!(ControlRecord::parse(Some(&[0, 0, 0, 0]), Some(&[0; 5]), 1, 2).is_err());
    assert!(ControlRecord::parse(Some(&[0, 0, 0, 0]), None, 1, 2).is_err());
    assert!(ControlRecord::parse(Some(&[0xff, 0xff, 0, 0]), Some(&[0; 6]), 1, 2).is_err());
}

#[test]
fn control_batch_without_records_is_an_error() {
    let mut b = build(opts(Compression::None), &[]).to_vec();
    b[22] |= 0x30; // transactional + control
    fix_crc(&mut b);
    let batch = Batches::new(Bytes::from(b)).next().unwrap().unwrap();
    assert!(batch.control_record().is_err());
}

/// Borrowed views and owned records of the same set agree field by field.
pub fn assert_views_match(buf: Bytes) {
    for b in Batches::new(buf) {
        let b = b.unwrap();
        let set = b.record_set().unwrap();
        assert_eq!(set.declared_len(), b.record_count() as usize);
        let views: Vec<RecordView> = set.iter().map(Result::unwrap).collect();
        let owned: Vec<Record> = set.clone().into_iter().map(Result::unwrap).collect();
        assert_eq!(views.len(), owned.len());
        for (v, o) in views.iter().zip(&owned) {
            assert_eq!((v.offset, v.timestamp), (o.offset, o.timestamp));
            assert_eq!((v.key(), v.value()), (o.key(), o.value()));
            assert_eq!(
                (v.key_bytes(), v.value_bytes()),
                (o.key_bytes(), o.value_bytes())
            );
            let vh: Vec<_> = v
                .headers()
                .iter()
                .map(|h| (h.key(), h.value(), h.value_bytes()))
                .collect();
            let oh: Vec<_> = o
                .headers()
                .iter()
                .map(|h| (h.key(), h.value(), h.value_bytes()))
                .collect();
            assert_eq!(vh, oh);
            assert_eq!(&v.to_record(), o);
            let ov = o.view();
            assert_eq!(
                (ov.key(), ov.value(), ov.headers().len()),
                (o.key(), o.value(), o.headers().len())
            );
        }
    }
}

#[test]
fn borrowed_views_match_owned_records() {
    for (_, recs) in shapes() {
        for codec in Compression::ALL {
            assert_views_match(build(opts(codec), &recs));
        }
    }
}

/// Uncompressed batches checksum their records in 8 KiB chunks as they are
/// appended and join the header in at the end: every size around and past
/// the chunk boundaries (and past the 1 MiB the chunks cover) must give the
/// CRC-32C of the whole, with records straddling chunk boundaries.
#[test]
fn large_uncompressed_batches_carry_the_crc_of_the_whole() {
    let mut lcg = 17u64;
    let mut next = move || {
        lcg = lcg
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lcg >> 33
    };
    for target in [
        8 * 1024 - 80,
        8 * 1024 + 5,
        3 * 8 * 1024 + 1000,
        300_000,
        1_200_000,
    ] {
        let mut recs = vec![];
        let mut size = 0;
        while size < target {
            let len = (next() % 3000) as usize;
            let value: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            size += len + 8;
            recs.push(Rec {
                ts: 1_000 + recs.len() as i64,
                key: Some(b"k".to_vec()),
                value: Some(value),
                headers: vec![("h".into(), Some(vec![1, 2, 3]))],
            });
        }
        let batch = build(opts(Compression::None), &recs);
        let stored = u32::from_be_bytes(batch[17..21].try_into().unwrap());
        assert_eq!(stored, crc32c::crc32c(&batch[21..]), "target {target}");
        assert_eq!(decode_recs(batch), recs, "target {target}");
    }
    // One record larger than the whole chunked range, alone in its batch.
    let huge = Rec::kv(5, None, Some(&vec![7u8; 1 << 21]));
    let batch = build(opts(Compression::None), std::slice::from_ref(&huge));
    assert_eq!(
        u32::from_be_bytes(batch[17..21].try_into().unwrap()),
        crc32c::crc32c(&batch[21..])
    );
    assert_eq!(decode_recs(batch), [huge]);
}

/// A recycled buffer starts a fresh checksum.
#[test]
fn reused_large_buffer_builds_the_same_batch() {
    let value = vec![9u8; 40_000];
    let first = build(opts(Compression::None), &[Rec::kv(1, None, Some(&value))]);
    let mut b = BatchBuilder::with_buffer(opts(Compression::None), first.to_vec());
    assert!(b.append(1, None, Some(&value), NO_HEADERS));
    assert_eq!(b.finish().unwrap(), first);
}

/// Stamping the builder before sealing gives the same bytes as stamping
/// the sealed batch, for every codec, transactional or not.
#[test]
fn builder_stamp_equals_stamping_the_sealed_batch() {
    let recs: Vec<Rec> = (0..400)
        .map(|i| Rec::kv(i, Some(b"key"), Some(&[i as u8; 100])))
        .collect();
    for codec in Compression::ALL {
        for transactional in [false, true] {
            let mut stamped_after = build(opts(codec), &recs).to_vec();
            if transactional {
                set_transactional_producer_state(&mut stamped_after, 4242, 7, 1_000).unwrap();
            } else {
                set_producer_state(&mut stamped_after, 4242, 7, 1_000).unwrap();
            }
            let mut b = BatchBuilder::new(opts(codec));
            for r in &recs {
                assert!(b.append(r.ts, r.key.as_deref(), r.value.as_deref(), NO_HEADERS));
            }
            b.set_producer_state(4242, 7, 1_000, transactional);
            let stamped_before = b.finish().unwrap();
            assert_eq!(
                &stamped_before[..],
                &stamped_after[..],
                "{codec} transactional {transactional}"
            );
        }
    }
}
