//! Codec interoperability: payloads written by other encoders and in the
//! framings other Kafka clients use.

use std::io::Write;

use bytes::BytesMut;
use kafkawire::record::compression::{compress, decompress};
use kafkawire::record::*;

use crate::common::*;

const MAX: usize = 64 << 20;

fn sizes() -> Vec<usize> {
    vec![0, 1, 100, 65_535, 65_536, 65_537, 300_000]
}

#[test]
fn every_codec_round_trips_every_size() {
    let mut g = Lcg(5);
    for n in sizes() {
        for data in [g.text(n), g.bytes(n)] {
            for codec in Compression::ALL {
                let mut c = BytesMut::new();
                compress(codec, None, &data, &mut c).unwrap();
                assert_eq!(decompress(codec, &c, MAX).unwrap(), data, "{codec} {n}");
            }
        }
    }
}

#[test]
fn gzip_levels() {
    let data = Lcg(2).text(100_000);
    let mut sizes = vec![];
    for level in [Some(0), Some(1), Some(9), None, Some(42)] {
        let mut c = BytesMut::new();
        compress(Compression::Gzip, level, &data, &mut c).unwrap();
        assert_eq!(decompress(Compression::Gzip, &c, MAX).unwrap(), data);
        sizes.push(c.len());
    }
    assert!(sizes[0] > sizes[1] && sizes[1] >= sizes[2], "{sizes:?}");
}

#[test]
fn snappy_xerial_framed_input() {
    // As snappy-java's SnappyOutputStream writes it: magic, version 1,
    // compatible version 1, then big-endian length-prefixed raw blocks.
    let data = Lcg(4).text(100_000);
    let mut x = b"\x82SNAPPY\x00".to_vec();
    x.extend(1i32.to_be_bytes());
    x.extend(1i32.to_be_bytes());
    for block in data.chunks(32 * 1024) {
        let c = snap::raw::Encoder::new().compress_vec(block).unwrap();
        x.extend((c.len() as i32).to_be_bytes());
        x.extend(c);
    }
    assert_eq!(decompress(Compression::Snappy, &x, MAX).unwrap(), data);
    // Header only: empty content.
    assert_eq!(
        decompress(Compression::Snappy, &x[..16], MAX)
            .unwrap()
            .len(),
        0
    );
    // A negative or overlong block length is an error.
    let mut bad = x[..16].to_vec();
    bad.extend((-1i32).to_be_bytes());
    assert!(decompress(Compression::Snappy, &bad, MAX).is_err());
    let mut bad = x[..16].to_vec();
    bad.extend(1000i32.to_be_bytes());
    bad.extend([0; 10]);
    assert!(decompress(Compression::Snappy, &bad, MAX).is_err());
    let mut bad = x[..16].to_vec();
    bad.extend([0, 0]);
    assert!(decompress(Compression::Snappy, &bad, MAX).is_err());
}

#[test]
fn snappy_raw_input() {
    let data = Lcg(8).text(70_000);
    let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
    assert_eq!(decompress(Compression::Snappy, &raw, MAX).unwrap(), data);
}

#[test]
fn snappy_batch_in_raw_form_decodes() {
    // librdkafka writes raw snappy into batches.
    let recs: Vec<Rec> = (0..30)
        .map(|i| Rec::kv(i, None, Some(&[i as u8; 64])))
        .collect();
    let plain = build(opts(Compression::None), &recs);
    let raw = snap::raw::Encoder::new()
        .compress_vec(&plain[61..])
        .unwrap();
    let mut batch = plain[..61].to_vec();
    batch[22] = 2;
    batch.extend(raw);
    let len = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    fix_crc(&mut batch);
    assert_eq!(decode_recs(bytes::Bytes::from(batch)), recs);
}

fn lz4_frame(data: &[u8], info: lz4_flex::frame::FrameInfo) -> Vec<u8> {
    let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn lz4_frames_from_another_encoder() {
    use lz4_flex::frame::{BlockMode, BlockSize, FrameInfo};
    let data = Lcg(6).text(1_500_000);
    for mode in [BlockMode::Independent, BlockMode::Linked] {
        for size in [
            BlockSize::Max64KB,
            BlockSize::Max256KB,
            BlockSize::Max1MB,
            BlockSize::Max4MB,
        ] {
            for (block_ck, content_ck, content_size) in [
                (false, false, false),
                (true, false, false),
                (false, true, false),
                (true, true, true),
            ] {
                let info = FrameInfo::new()
                    .block_mode(mode)
                    .block_size(size)
                    .block_checksums(block_ck)
                    .content_checksum(content_ck)
                    .content_size(content_size.then_some(data.len() as u64));
                let f = lz4_frame(&data, info);
                let got = decompress(Compression::Lz4, &f, MAX)
                    .unwrap_or_else(|e| panic!("{mode:?} {size:?} {block_ck} {content_ck}: {e}"));
                assert!(got == data, "{mode:?} {size:?}");
            }
        }
    }
}

#[test]
fn lz4_checksums_are_verified() {
    use lz4_flex::frame::FrameInfo;
    let data = Lcg(6).text(10_000);
    let f = lz4_frame(&data, FrameInfo::new().content_checksum(true));
    let mut bad = f.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert!(
        decompress(Compression::Lz4, &bad, MAX).is_err(),
        "content checksum"
    );
    let f = lz4_frame(&data, FrameInfo::new().block_checksums(true));
    let mut bad = f.clone();
    let n = bad.len();
    bad[n - 5] ^= 1; // last byte of the last block's checksum
    assert!(
        decompress(Compression::Lz4, &bad, MAX).is_err(),
        "block checksum"
    );
    // A declared content size that does not match (HC recomputed so that
    // only the size is wrong).
    let mut f = lz4_frame(
        &data,
        FrameInfo::new().content_size(Some(data.len() as u64)),
    );
    f[6..14].copy_from_slice(&(data.len() as u64 + 1).to_le_bytes());
    f[14] = (twox_hash::XxHash32::oneshot(0, &f[4..14]) >> 8) as u8;
    assert!(matches!(
        decompress(Compression::Lz4, &f, MAX),
        Err(RecordError::Decompression { ref message, .. }) if message.contains("declares")
    ));
}

#[test]
fn lz4_multiple_and_skippable_frames() {
    let a = Lcg(1).text(5000);
    let b = Lcg(2).text(7000);
    let mut f = BytesMut::new();
    compress(Compression::Lz4, None, &a, &mut f).unwrap();
    f.extend_from_slice(&0x184D_2A53u32.to_le_bytes());
    f.extend_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(b"xyz");
    compress(Compression::Lz4, None, &b, &mut f).unwrap();
    assert_eq!(
        decompress(Compression::Lz4, &f, MAX).unwrap(),
        [a, b].concat()
    );
    // A frame that needs a dictionary cannot be decoded.
    let mut d = BytesMut::new();
    compress(Compression::Lz4, None, b"abc", &mut d).unwrap();
    d[4] |= 1;
    assert!(decompress(Compression::Lz4, &d, MAX).is_err());
}

#[test]
fn gzip_multi_member_and_header_fields() {
    let a = Lcg(1).text(5000);
    let b = Lcg(2).text(7000);
    let mut out = vec![];
    for (part, name) in [(&a, Some("file.txt")), (&b, None)] {
        let mut builder = flate2::GzBuilder::new();
        if let Some(n) = name {
            builder = builder.filename(n).comment("kafka").extra(vec![1, 2, 3]);
        }
        let mut e = builder.write(Vec::new(), flate2::Compression::fast());
        e.write_all(part).unwrap();
        out.extend(e.finish().unwrap());
    }
    assert_eq!(
        decompress(Compression::Gzip, &out, MAX).unwrap(),
        [a, b].concat()
    );
    // A corrupted trailer CRC is an error.
    let n = out.len();
    out[n - 6] ^= 1;
    assert!(decompress(Compression::Gzip, &out, MAX).is_err());
}

#[test]
fn zstd_multiple_and_skippable_frames() {
    let a = Lcg(1).text(5000);
    let b = Lcg(2).bytes(7000);
    let mut f = BytesMut::new();
    compress(Compression::Zstd, None, &a, &mut f).unwrap();
    f.extend_from_slice(&0x184D_2A5Eu32.to_le_bytes());
    f.extend_from_slice(&2u32.to_le_bytes());
    f.extend_from_slice(b"zz");
    compress(Compression::Zstd, None, &b, &mut f).unwrap();
    assert_eq!(
        decompress(Compression::Zstd, &f, MAX).unwrap(),
        [a, b].concat()
    );
    assert!(decompress(Compression::Zstd, b"", MAX).is_err());
    assert!(decompress(Compression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd], MAX).is_err());
}

#[test]
fn zstd_checksum_mismatch_is_an_error() {
    // Our encoder writes no content checksum (the batch CRC covers the
    // bytes), so take a frame that has one, as the zstd CLI writes them.
    let data = Lcg(3).text(20_000);
    let opts = rusty_zstd::CompressOptions {
        level: 3,
        checksum: true,
    };
    let mut f = rusty_zstd::compress_with(&data, opts).unwrap();
    assert_ne!(f[4] & 0x04, 0, "the frame must carry a checksum");
    assert_eq!(decompress(Compression::Zstd, &f, MAX).unwrap(), data);
    let n = f.len();
    f[n - 1] ^= 1;
    assert!(decompress(Compression::Zstd, &f, MAX).is_err());
}

#[test]
fn zstd_frames_agree_with_libzstd_both_ways() {
    // libzstd is what the Java client (zstd-jni) and librdkafka write and
    // read; every level family (negative fast, fast, lazy, optimal) and
    // sizes around the 128 KiB block.
    let mut g = Lcg(5);
    let inputs = [
        Vec::new(),
        g.text(1),
        g.text(100),
        g.text(131_072),
        g.text(300_000),
        g.bytes(70_000),
        [g.text(50_000), g.bytes(50_000), vec![0; 100_000]].concat(),
    ];
    for data in &inputs {
        for level in [-5, 1, 3, 9, 19] {
            let theirs = zstd::bulk::compress(data, level).unwrap();
            assert_eq!(
                decompress(Compression::Zstd, &theirs, MAX).unwrap(),
                data[..],
                "libzstd level {level}, {} bytes",
                data.len()
            );
            let mut ours = BytesMut::new();
            compress(Compression::Zstd, Some(level), data, &mut ours).unwrap();
            assert_eq!(
                zstd::bulk::decompress(&ours, data.len()).unwrap(),
                data[..],
                "ours at level {level}, {} bytes",
                data.len()
            );
        }
    }
}

#[test]
fn mutated_zstd_frames_decode_as_libzstd_decodes_them_or_fail() {
    // Differential: damaged frames (bit flips, random bytes, cuts, inserted
    // and removed bytes) never panic, stay within the limit, and whenever
    // both decoders accept one they produce the same bytes.
    let mut g = Lcg(6);
    let mut seeds = Vec::new();
    for level in [-5, 1, 3, 19] {
        for data in [g.text(3000), g.text(40_000), g.bytes(500)] {
            seeds.push(zstd::bulk::compress(&data, level).unwrap());
            let mut ours = BytesMut::new();
            compress(Compression::Zstd, Some(level), &data, &mut ours).unwrap();
            seeds.push(ours.to_vec());
        }
    }
    const LIMIT: usize = 1 << 20;
    let (mut tried, mut both_ok) = (0, 0);
    for i in 0..4000u64 {
        let mut f = seeds[(g.next() % seeds.len() as u64) as usize].clone();
        for _ in 0..1 + g.next() % 4 {
            if f.is_empty() {
                break;
            }
            let at = (g.next() % f.len() as u64) as usize;
            match g.next() % 5 {
                0 => f[at] ^= 1 << (g.next() % 8),
                1 => f[at] = g.next() as u8,
                2 => f.truncate(at),
                3 => f.insert(at, g.next() as u8),
                _ => {
                    f.remove(at);
                }
            }
        }
        let ours = decompress(Compression::Zstd, &f, LIMIT);
        if let Ok(out) = &ours {
            assert!(out.len() <= LIMIT);
        }
        if let (Ok(out), Ok(theirs)) = (&ours, zstd::bulk::decompress(&f, LIMIT)) {
            assert_eq!(
                out[..],
                theirs[..],
                "mutation {i}: both decoded, differently"
            );
            both_ok += 1;
        }
        tried += 1;
    }
    // Some mutations (e.g. in literals of a checksum-less frame) must still
    // decode, or the comparison above never ran.
    assert!(
        both_ok > 20,
        "only {both_ok} of {tried} mutated frames decoded in both"
    );
}

#[test]
fn zstd_honours_the_level() {
    let data = Lcg(4).text(200_000);
    let size = |level| {
        let mut f = BytesMut::new();
        compress(Compression::Zstd, Some(level), &data, &mut f).unwrap();
        assert_eq!(
            decompress(Compression::Zstd, &f, MAX).unwrap(),
            data,
            "level {level}"
        );
        f.len()
    };
    // Higher levels search harder: level 19 must beat the fastest level.
    let (fast, strong) = (size(-5), size(19));
    assert!(
        strong < fast,
        "level 19 gave {strong} bytes, level -5 {fast}"
    );
    // Out-of-range levels are clamped, not an error.
    size(100);
}

#[test]
fn codec_ids_and_names() {
    for c in Compression::ALL {
        assert_eq!(Compression::from_id(c.id()), Some(c));
        assert_eq!(c.to_string(), c.name());
    }
    assert_eq!(Compression::from_id(5), None);
    assert_eq!(Compression::default(), Compression::None);
}
