//! Property tests: random batches round-trip under every codec, and agree
//! with an independent implementation (the `kafka-protocol` crate) in both
//! directions.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records as kp;
use kafkawire::record::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use crate::common::*;

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

fn payload(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..max),
        // Compressible: runs of few symbols.
        vec(prop_oneof![Just(b'a'), Just(b'b'), Just(0u8)], 0..max),
    ]
}

/// Records whose header keys are unique within a record (the other
/// implementation stores headers in a map).
fn rec() -> impl Strategy<Value = Rec> {
    (
        -10_000i64..10_000_000,
        option::of(payload(40)),
        option::of(payload(400)),
        vec(("[a-z]{0,6}", option::of(payload(16))), 0..4),
    )
        .prop_map(|(ts, key, value, hs)| Rec {
            ts: 1_700_000_000_000 + ts,
            key,
            value,
            headers: hs
                .into_iter()
                .enumerate()
                .map(|(i, (k, v))| (format!("{i}{k}"), v))
                .collect(),
        })
}

#[derive(Debug, Clone)]
struct Producer {
    id: i64,
    epoch: i16,
    seq: i32,
    transactional: bool,
}

fn producer() -> impl Strategy<Value = Producer> {
    prop_oneof![
        Just(Producer {
            id: -1,
            epoch: -1,
            seq: -1,
            transactional: false
        }),
        (
            0i64..i64::MAX,
            0i16..i16::MAX,
            0i32..1_000_000,
            any::<bool>()
        )
            .prop_map(|(id, epoch, seq, transactional)| Producer {
                id,
                epoch,
                seq,
                transactional
            }),
    ]
}

fn batch_opts(c: Compression, p: &Producer) -> BatchOptions {
    BatchOptions {
        producer_id: p.id,
        producer_epoch: p.epoch,
        base_sequence: p.seq,
        transactional: p.transactional,
        ..opts(c)
    }
}

fn kp_compression(c: Compression) -> kp::Compression {
    match c {
        Compression::None => kp::Compression::None,
        Compression::Gzip => kp::Compression::Gzip,
        Compression::Snappy => kp::Compression::Snappy,
        Compression::Lz4 => kp::Compression::Lz4,
        Compression::Zstd => kp::Compression::Zstd,
    }
}

fn kp_rec(r: &kp::Record) -> Rec {
    Rec {
        ts: r.timestamp,
        key: r.key.as_ref().map(|b| b.to_vec()),
        value: r.value.as_ref().map(|b| b.to_vec()),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_ref().map(|b| b.to_vec())))
            .collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_batches_round_trip(c in codec(), p in producer(), recs in vec(rec(), 1..60)) {
        let batch = build(batch_opts(c, &p), &recs);
        let d = decode(batch);
        prop_assert_eq!(d.len(), 1);
        let h = &d[0].0;
        prop_assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (p.id, p.epoch, p.seq));
        prop_assert_eq!(h.is_transactional(), p.transactional);
        let got: Vec<Rec> = d[0].1.iter().map(Rec::from_record).collect();
        prop_assert_eq!(got, recs);
    }

    /// Our encoder → kafka-protocol's decoder.
    #[test]
    fn our_encoding_decodes_with_kafka_protocol(c in codec(), p in producer(), recs in vec(rec(), 1..60)) {
        let mut batch = build(batch_opts(c, &p), &recs);
        let sets = kp::RecordBatchDecoder::decode_all(&mut batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(sets.len(), 1);
        prop_assert_eq!(sets[0].compression, kp_compression(c));
        let theirs = &sets[0].records;
        prop_assert_eq!(theirs.iter().map(kp_rec).collect::<Vec<_>>(), recs.clone());
        for (i, r) in theirs.iter().enumerate() {
            prop_assert_eq!(r.offset, i as i64);
            prop_assert_eq!(r.producer_id, p.id);
            prop_assert_eq!(r.producer_epoch, p.epoch);
            prop_assert_eq!(r.transactional, p.transactional);
            prop_assert!(!r.control);
            if p.seq >= 0 {
                prop_assert_eq!(r.sequence, p.seq + i as i32);
            }
        }
    }

    /// kafka-protocol's encoder → our decoder.
    #[test]
    fn kafka_protocol_encoding_decodes_with_ours(
        c in codec(),
        p in producer(),
        base in 0i64..1 << 40,
        recs in vec(rec(), 1..60),
    ) {
        let theirs: Vec<kp::Record> = recs
            .iter()
            .enumerate()
            .map(|(i, r)| kp::Record {
                transactional: p.transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 5,
                producer_id: p.id,
                producer_epoch: p.epoch,
                timestamp_type: kp::TimestampType::Creation,
                offset: base + i as i64,
                // Their encoder keeps records in one batch while offset minus
                // sequence is constant, so sequences advance even without a
                // producer id; the batch's base sequence is then -1.
                sequence: p.seq.wrapping_add(i as i32),
                timestamp: r.ts,
                key: r.key.clone().map(Bytes::from),
                value: r.value.clone().map(Bytes::from),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone().map(Bytes::from)))
                    .collect::<IndexMap<_, _>>(),
            })
            .collect();
        let mut buf = BytesMut::new();
        kp::RecordBatchEncoder::encode(&mut buf, &theirs, &kp::RecordEncodeOptions { version: 2, compression: kp_compression(c) })
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let d = decode(buf.freeze());
        prop_assert_eq!(d.len(), 1);
        let (h, rs) = &d[0];
        prop_assert_eq!(h.compression(), c);
        prop_assert_eq!(h.base_offset, base);
        prop_assert_eq!(h.partition_leader_epoch, 5);
        prop_assert_eq!((h.producer_id, h.producer_epoch), (p.id, p.epoch));
        prop_assert_eq!(h.base_sequence, p.seq);
        prop_assert_eq!(h.is_transactional(), p.transactional);
        prop_assert_eq!(rs.iter().map(|r| r.offset).collect::<Vec<_>>(), (0..recs.len() as i64).map(|i| base + i).collect::<Vec<_>>());
        prop_assert_eq!(rs.iter().map(Rec::from_record).collect::<Vec<_>>(), recs);
    }
}
