//! Writes the committed seed corpus of the fuzz targets (fuzz/corpus/*)
//! from valid batches and payloads. Run after changing the formats:
//!
//! `cargo test --test record -- --ignored write_fuzz_seeds`

use std::io::Write;
use std::path::Path;

use bytes::BytesMut;
use kafkawire::record::compression::compress;
use kafkawire::record::*;

use crate::common::*;

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

fn compressed(codec: Compression, data: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    compress(codec, None, data, &mut out).unwrap();
    out.to_vec()
}

#[test]
#[ignore = "writes files; run by hand to refresh the fuzz seeds"]
fn write_fuzz_seeds() {
    let mut g = Lcg(42);
    let recs: Vec<Rec> = (0..6)
        .map(|i| Rec {
            ts: 1_700_000_000_000 + i,
            key: (i % 2 == 0).then(|| g.bytes(4)),
            value: (i != 3).then(|| g.text(40)),
            headers: (0..i % 3)
                .map(|h| (format!("h{h}"), (h == 0).then(|| g.bytes(2))))
                .collect(),
        })
        .collect();

    // decode_batches: a flags byte (0: CRC checks off), then records bytes.
    let mut all = vec![];
    for codec in Compression::ALL {
        let o = BatchOptions {
            producer_id: 9,
            producer_epoch: 1,
            base_sequence: 0,
            ..opts(codec)
        };
        let b = build(o, &recs);
        write(
            "decode_batches",
            &format!("v2_{codec}"),
            &[&[0u8][..], &b].concat(),
        );
        all.extend_from_slice(&b);
    }
    write(
        "decode_batches",
        "v2_all_codecs",
        &[&[0u8][..], &all].concat(),
    );
    write(
        "decode_batches",
        "v2_crc_on",
        &[&[3u8][..], &all[..all.len() / 2]].concat(),
    );
    let ctl = BatchBuilder::control_batch(ControlKind::Commit, 9, 1, 4, 1);
    write(
        "decode_batches",
        "control_commit",
        &[&[0u8][..], &ctl].concat(),
    );
    let inner1: Vec<u8> = (0..3)
        .flat_map(|i| legacy_message(1, i, 0, 100 + i, Some(b"k"), Some(b"v")))
        .collect();
    let inner0: Vec<u8> = (0..3)
        .flat_map(|i| legacy_message(0, 10 + i, 0, 0, None, Some(b"v0")))
        .collect();
    let mut legacy = legacy_message(0, 1, 0, 0, Some(b"key"), Some(b"value"));
    legacy.extend(legacy_message(1, 2, 0x08, 5, None, Some(b"v")));
    for (codec, id) in [
        (Compression::Gzip, 1i8),
        (Compression::Snappy, 2),
        (Compression::Lz4, 3),
    ] {
        legacy.extend(legacy_message(
            1,
            5,
            id,
            0,
            None,
            Some(&compressed(codec, &inner1)),
        ));
        legacy.extend(legacy_message(
            0,
            12,
            id,
            0,
            None,
            Some(&compressed(codec, &inner0)),
        ));
    }
    write(
        "decode_batches",
        "legacy_mixed",
        &[&[0u8][..], &legacy].concat(),
    );

    // build_roundtrip: flags, then records as (ts, key, value, headers).
    write(
        "build_roundtrip",
        "plain",
        b"\x00\x05\x03abc\x04defg\x01h1\x00\x02xy",
    );
    write(
        "build_roundtrip",
        "gzip_nulls",
        b"\x01\x00\xff\xff\x00\x01\x01a\x02bc\x00",
    );
    write(
        "build_roundtrip",
        "zstd_txn",
        b"\x1c\x07\x01k\x20kafkakafkakafkakafkakafkakafka..\x02h1\x00\x01h2\xff",
    );
    write(
        "build_roundtrip",
        "lz4_rewrite",
        b"\x23\x10\x02ab\x02cd\x00\x11\x02ef\x02gh\x00",
    );

    // decompressors: valid payloads in every framing we accept.
    let text = g.text(3000);
    let bin = g.bytes(500);
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let t = format!("decompress_{codec}");
        write(&t, "text", &compressed(codec, &text));
        write(&t, "binary", &compressed(codec, &bin));
        write(&t, "empty", &compressed(codec, b""));
    }
    write(
        "decompress_snappy",
        "raw",
        &snap::raw::Encoder::new().compress_vec(&text).unwrap(),
    );
    let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(
        lz4_flex::frame::FrameInfo::new()
            .block_mode(lz4_flex::frame::BlockMode::Linked)
            .block_checksums(true)
            .content_checksum(true)
            .content_size(Some(text.len() as u64)),
        Vec::new(),
    );
    e.write_all(&text).unwrap();
    write("decompress_lz4", "linked_checksummed", &e.finish().unwrap());
    write(
        "decompress_gzip",
        "two_members",
        &[
            compressed(Compression::Gzip, b"abc"),
            compressed(Compression::Gzip, &bin),
        ]
        .concat(),
    );
}

/// Appends the seed `[api key, version, header tail, body]` of `resp` for
/// the `decode_responses` target.
fn response_seed<R: kafkawire::protocol::messages::Request>(
    name: &str,
    version: i16,
    resp: &R::Response,
) {
    use kafkawire::protocol::messages::Message;
    let mut body = BytesMut::new();
    if R::response_header_version(version) >= 1 {
        body.extend_from_slice(&[0]); // no tagged fields in the header
    }
    resp.encode(&mut body, version).unwrap();
    let key = R::API_KEY as i16;
    let seed = [&[key as u8, version as u8][..], &body].concat();
    write(
        "decode_responses",
        &format!("{key:02}_{name}_v{version}"),
        &seed,
    );
}

/// Default (empty) responses of every API at its lowest, first flexible and
/// highest version.
macro_rules! default_response_seeds {
    ($($req:ty),* $(,)?) => {
        $({
            use kafkawire::protocol::messages::{Message, Request};
            type R = <$req as Request>::Response;
            let (lo, hi) = <R as Message>::VERSIONS;
            let mut vs = vec![lo, hi];
            vs.extend(<R as Message>::FLEXIBLE_FROM);
            vs.sort();
            vs.dedup();
            for v in vs {
                response_seed::<$req>("default", v, &R::default());
            }
        })*
    };
}

#[test]
#[ignore = "writes files; run by hand to refresh the fuzz seeds"]
fn write_response_fuzz_seeds() {
    use kafkawire::protocol::messages::*;
    default_response_seeds!(
        ProduceRequest,
        FetchRequest,
        ListOffsetsRequest,
        MetadataRequest,
        OffsetCommitRequest,
        OffsetFetchRequest,
        FindCoordinatorRequest,
        JoinGroupRequest,
        HeartbeatRequest,
        LeaveGroupRequest,
        SyncGroupRequest,
        DescribeGroupsRequest,
        ListGroupsRequest,
        SaslHandshakeRequest,
        ApiVersionsRequest,
        CreateTopicsRequest,
        DeleteTopicsRequest,
        DeleteRecordsRequest,
        InitProducerIdRequest,
        OffsetForLeaderEpochRequest,
        AddPartitionsToTxnRequest,
        AddOffsetsToTxnRequest,
        EndTxnRequest,
        TxnOffsetCommitRequest,
        DescribeConfigsRequest,
        AlterConfigsRequest,
        CreatePartitionsRequest,
        DeleteGroupsRequest,
        SaslAuthenticateRequest,
        IncrementalAlterConfigsRequest,
        OffsetDeleteRequest,
        DescribeClusterRequest,
        DescribeProducersRequest,
        DescribeTransactionsRequest,
        ListTransactionsRequest,
        ConsumerGroupHeartbeatRequest,
        ConsumerGroupDescribeRequest,
    );

    // A Fetch response carrying a real transactional batch sequence (the
    // Java client's zstd golden vector: data, COMMIT, data, ABORT).
    let records = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/vectors/java-zstd-txn.bin"),
    )
    .unwrap();
    let fetch = FetchResponse {
        responses: vec![FetchableTopicResponse {
            topic: "orders".into(),
            topic_id: Uuid::from_bytes([7; 16]),
            partitions: vec![PartitionData {
                partition_index: 0,
                high_watermark: 8,
                last_stable_offset: 8,
                aborted_transactions: Some(vec![AbortedTransaction {
                    producer_id: 15,
                    first_offset: 4,
                    ..Default::default()
                }]),
                records: Some(records.into()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    for v in [4, 12, 17] {
        response_seed::<FetchRequest>("records", v, &fetch);
    }

    let metadata = MetadataResponse {
        brokers: vec![MetadataResponseBroker {
            node_id: 1,
            host: "127.0.0.1".into(),
            port: 9092,
            ..Default::default()
        }],
        cluster_id: Some("cluster".into()),
        controller_id: 1,
        topics: vec![MetadataResponseTopic {
            name: Some("orders".into()),
            topic_id: Uuid::from_bytes([7; 16]),
            partitions: vec![MetadataResponsePartition {
                partition_index: 0,
                leader_id: 1,
                leader_epoch: 3,
                replica_nodes: vec![1],
                isr_nodes: vec![1],
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    for v in [1, 9, 12] {
        response_seed::<MetadataRequest>("one_topic", v, &metadata);
    }

    let versions = ApiVersionsResponse {
        api_keys: [(0, 3, 11), (1, 4, 17), (3, 0, 12), (18, 0, 4)]
            .map(|(api_key, min_version, max_version)| ApiVersion {
                api_key,
                min_version,
                max_version,
                ..Default::default()
            })
            .to_vec(),
        ..Default::default()
    };
    for v in [0, 3] {
        response_seed::<ApiVersionsRequest>("four_apis", v, &versions);
    }
}
