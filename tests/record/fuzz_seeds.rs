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
