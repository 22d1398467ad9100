//! Targeted malformed responses: each names one fault, checks the error
//! the client reports (kind and what the message names), and then checks
//! that valid responses work again.

use crate::broker::{fix_size, Broker, Mutator, Reply};
use crate::common::*;
use bytes::Bytes;
use kafkawire::consumer::Consumer;
use kafkawire::net::conn::ConnectionConfig;
use kafkawire::net::BrokerConnection;
use kafkawire::producer::ProducerRecord;
use kafkawire::protocol::messages::{ApiKey, MetadataRequest};
use kafkawire::record::{BatchBuilder, BatchOptions, Compression};
use kafkawire::{Error, ErrorKind};
use std::time::Duration;

// ---- hostile record batches in Fetch responses ------------------------------

/// A magic 2 batch with the given attributes, record count and records
/// payload, and a correct CRC-32C: only the named field is hostile.
fn raw_batch(attributes: i16, count: i32, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(61 + payload.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset (set by the broker)
    b.extend_from_slice(&((49 + payload.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&(count.max(1) - 1).to_be_bytes()); // last offset delta
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(payload);
    set_crc(&mut b);
    b
}

fn set_crc(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// One record: key "k", value "v", with the given raw varint fields.
fn record(len: &[u8], key_len: &[u8], header_count: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8, 0, 0]; // attributes, timestamp delta, offset delta
    body.extend_from_slice(key_len);
    body.push(b'k');
    body.extend_from_slice(&[2, b'v']);
    body.extend_from_slice(header_count);
    let mut r = len.to_vec();
    r.extend(body);
    r
}

/// Zig-zag varint of a valid record body length (8 bytes).
const LEN8: &[u8] = &[16];

/// A consumer that has read the `n` valid records at the start of
/// partition 0 of `broker`, whose log then continues with `hostile`.
async fn consumer_before(
    broker: &Broker,
    hostile: Vec<u8>,
    records: i64,
) -> (Consumer, Originals, i64) {
    let o = Originals::fill(broker, 1, 3);
    let end = broker.state().log_end(0);
    broker.append_raw(0, Bytes::from(hostile), records);
    let mut c = consumer(broker);
    c.assign(&[tp(0)]).unwrap();
    read_exactly(&mut c, &o, 0, 0, end as usize, &"valid prefix").await;
    (c, o, end)
}

/// Polls until the consumer reports an error for the hostile batch;
/// checks that no record past the valid prefix was delivered.
async fn hostile_error(c: &mut Consumer, end: i64) -> Error {
    for _ in 0..100 {
        match c.poll(Duration::from_millis(100)).await {
            Ok(recs) => {
                assert!(recs.is_empty(), "hostile batch delivered records: {recs:?}");
            }
            Err(e) => {
                let pos = c.position(&tp(0)).await.unwrap();
                assert_eq!(pos, end, "position moved past the hostile batch: {e}");
                return e;
            }
        }
    }
    panic!("no error reported for the hostile batch");
}

/// The full check for one hostile batch: a Protocol error whose message
/// contains every `names`, no record delivered, and after the broker serves
/// valid data again the consumer reads it.
async fn rejects_batch(hostile: Vec<u8>, records: i64, names: &[&str]) -> Error {
    let broker = Broker::start(1).await;
    let (mut c, o, end) = consumer_before(&broker, hostile, records).await;
    let e = hostile_error(&mut c, end).await;
    assert_eq!(e.kind(), &ErrorKind::Protocol, "{e:?}");
    assert_eq!(e.partition(), Some(0), "{e:?}");
    let msg = e.to_string();
    for n in names {
        assert!(msg.contains(n), "error does not name `{n}`: {msg}");
    }
    // The broker drops the hostile batch and serves valid data again.
    broker.state().logs[0].pop();
    read_exactly(&mut c, &o, 0, 0, end as usize, &"after the hostile batch").await;
    assert_heap_bounded(&msg);
    e
}

#[tokio::test]
async fn bad_crc_is_reported_and_never_delivered() {
    let mut b = BatchBuilder::new(BatchOptions::default());
    assert!(b.append(
        1,
        Some(&b"k"[..]),
        Some(&b"v"[..]),
        kafkawire::record::NO_HEADERS
    ));
    let mut bytes = b.finish().unwrap().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40; // inside the value: covered by the CRC
    rejects_batch(
        bytes,
        1,
        &[
            "checksum mismatch",
            "corrupt record data at or after offset",
        ],
    )
    .await;
}

#[tokio::test]
async fn huge_and_negative_record_counts_are_rejected() {
    let rec = record(LEN8, &[2], &[0]);
    rejects_batch(
        raw_batch(0, i32::MAX, &rec),
        1,
        &["invalid record count 2147483647"],
    )
    .await;
    rejects_batch(raw_batch(0, -1, &rec), 1, &["invalid record count -1"]).await;
}

#[tokio::test]
async fn negative_and_huge_lengths_inside_records_are_rejected() {
    // Key length -2 (zig-zag 3): only -1 means null.
    rejects_batch(
        raw_batch(0, 1, &record(LEN8, &[3], &[0])),
        1,
        &["negative length -2 for record key"],
    )
    .await;
    // Key length 2^30: far more than the record holds.
    let key = &[0x80, 0x80, 0x80, 0x80, 0x08];
    rejects_batch(
        raw_batch(0, 1, &record(LEN8, key, &[0])),
        1,
        &["record key", "needed 1073741824 bytes"],
    )
    .await;
    // Header count i32::MAX (zig-zag).
    let count = &[0xfe, 0xff, 0xff, 0xff, 0x0f];
    rejects_batch(
        raw_batch(0, 1, &record(LEN8, &[2], count)),
        1,
        &["header count declares 2147483647"],
    )
    .await;
    // Record length i32::MAX.
    let len = &[0xfe, 0xff, 0xff, 0xff, 0x0f];
    rejects_batch(
        raw_batch(0, 1, &record(len, &[2], &[0])),
        1,
        &["truncated record", "needed 2147483647 bytes"],
    )
    .await;
}

#[tokio::test]
async fn overlong_varints_are_rejected() {
    // A record length as a 6-byte varint (at most 5 are valid).
    let len = &[0x90, 0x80, 0x80, 0x80, 0x80, 0x00];
    rejects_batch(
        raw_batch(0, 1, &record(len, &[2], &[0])),
        1,
        &["varint overflow in record length"],
    )
    .await;
}

#[tokio::test]
async fn a_response_without_any_complete_batch_is_an_error_not_a_silent_stall() {
    // The batch claims 1 MiB but the response holds 61 bytes of it: no
    // complete batch, so the consumer can never make progress (Java
    // reports this as "no complete records were found").
    let mut cut = raw_batch(0, 1, &[]);
    cut[8..12].copy_from_slice(&(1i32 << 20).to_be_bytes());
    rejects_batch(cut, 1, &["no complete batch"]).await;
}

#[tokio::test]
async fn a_response_with_only_batches_before_the_fetch_offset_is_an_error() {
    // A valid batch, but numbered below the fetch offset (the base offset
    // is outside the CRC): skipping it forever would stall the consumer.
    let broker = Broker::start(1).await;
    let (mut c, o, end) = consumer_before(&broker, Vec::new(), 0).await;
    broker.state().logs[0].pop();
    let mut stale = broker.state().logs[0][0].clone();
    stale.base_offset = end;
    stale.next_offset = end + 1;
    broker.state().logs[0].push(stale);
    let e = hostile_error(&mut c, end).await;
    assert_eq!(e.kind(), &ErrorKind::Protocol, "{e:?}");
    assert!(
        e.to_string()
            .contains("no complete batch at or after offset"),
        "{e}"
    );
    broker.state().logs[0].pop();
    read_exactly(&mut c, &o, 0, 0, end as usize, &"after the stale batch").await;
}

#[tokio::test]
async fn hostile_batch_lengths_are_rejected() {
    let rec = record(LEN8, &[2], &[0]);
    let mut neg = raw_batch(0, 1, &rec);
    neg[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    rejects_batch(neg, 1, &["invalid batch length -5"]).await;
}

/// 300 MiB of zeros as one zstd frame of RLE blocks (~10 KB).
fn zstd_bomb() -> Vec<u8> {
    let mut v = 0xFD2F_B528u32.to_le_bytes().to_vec();
    v.push(0x00);
    v.push(7 << 3);
    let blocks = (300 << 20) / (128 << 10);
    for i in 0..blocks {
        let last = (i + 1 == blocks) as u32;
        let h = last | (1 << 1) | ((128 << 10) << 3);
        v.extend_from_slice(&h.to_le_bytes()[..3]);
        v.push(0);
    }
    v
}

/// 300 MiB of zeros as one LZ4 frame of independent 64 KiB blocks.
fn lz4_bomb() -> Vec<u8> {
    let mut v = 0x184D_2204u32.to_le_bytes().to_vec();
    let (flg, bd) = (0x60u8, 0x40u8);
    let hc = (twox_hash::XxHash32::oneshot(0, &[flg, bd]) >> 8) as u8;
    v.extend([flg, bd, hc]);
    let block = lz4_flex::block::compress(&[0u8; 65536]);
    for _ in 0..(300 << 20) / 65536 {
        v.extend_from_slice(&(block.len() as u32).to_le_bytes());
        v.extend_from_slice(&block);
    }
    v.extend([0; 4]);
    v
}

/// 300 MiB of zeros as concatenated gzip members of 4 MiB.
fn gzip_bomb() -> Vec<u8> {
    let mut member = bytes::BytesMut::new();
    kafkawire::record::compression::compress(
        Compression::Gzip,
        Some(9),
        &vec![0u8; 4 << 20],
        &mut member,
    )
    .unwrap();
    member.repeat(75)
}

#[tokio::test]
async fn decompression_bombs_are_cut_at_the_bound() {
    let limit = "268435456 bytes";
    // Raw snappy declaring 1 GiB up front: refused before allocating.
    let mut snappy = vec![0x80, 0x80, 0x80, 0x80, 0x04];
    snappy.extend([0; 64]);
    let bombs = [
        (Compression::Zstd, zstd_bomb()),
        (Compression::Lz4, lz4_bomb()),
        (Compression::Gzip, gzip_bomb()),
        (Compression::Snappy, snappy),
    ];
    for (codec, payload) in bombs {
        let before = crate::live_heap();
        let e = rejects_batch(
            raw_batch(codec.id() as i16, 1, &payload),
            1,
            &[codec.name(), limit],
        )
        .await;
        eprintln!("{codec} bomb of {} bytes: {e}", payload.len());
        // Nothing of the bomb stays allocated once the error is reported.
        let after = crate::live_heap();
        assert!(
            after < before + (64 << 20),
            "{codec}: {} MiB still live",
            (after - before) >> 20
        );
    }
    let peak = assert_heap_bounded("decompression bombs");
    eprintln!("peak live heap of this process so far: {} MiB", peak >> 20);
}

#[tokio::test]
async fn the_decompressed_size_bound_is_configurable() {
    // A genuine zstd batch: one record whose 200,000-byte value compresses
    // to a few dozen bytes.
    let broker = Broker::start(1).await;
    let o = Originals::fill(&broker, 1, 3);
    let end = broker.state().log_end(0);
    let value = vec![7u8; 200_000];
    let mut b = BatchBuilder::new(BatchOptions {
        compression: Compression::Zstd,
        ..BatchOptions::default()
    });
    assert!(b.append(1, None, Some(&value[..]), kafkawire::record::NO_HEADERS));
    broker.append_raw(0, b.finish().unwrap(), 1);

    // Bounded below the batch: an error for the partition that names the
    // setting, and nothing delivered.
    let mut c = consumer_builder(&broker)
        .set("fetch.max.decompressed.bytes", "65536")
        .build()
        .unwrap();
    c.assign(&[tp(0)]).unwrap();
    read_exactly(&mut c, &o, 0, 0, end as usize, &"valid prefix").await;
    let e = hostile_error(&mut c, end).await;
    let msg = e.to_string();
    for n in ["fetch.max.decompressed.bytes", "65536 bytes", "zstd"] {
        assert!(msg.contains(n), "error does not name `{n}`: {msg}");
    }

    // Raised above it: the record arrives whole.
    let mut c = consumer_builder(&broker)
        .set("fetch.max.decompressed.bytes", "262144")
        .build()
        .unwrap();
    c.assign(&[tp(0)]).unwrap();
    c.seek(&tp(0), end).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let rec = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the record never arrived"
        );
        if let Some(r) = c
            .poll(Duration::from_millis(100))
            .await
            .unwrap()
            .into_iter()
            .next()
        {
            break r;
        }
    };
    assert_eq!((rec.offset, rec.value.as_deref()), (end, Some(&value[..])));
}

// ---- wire-level faults in encoded responses ---------------------------------

/// Replaces `len` bytes at `at` of the frame with `with` and fixes the size.
fn splice(at: usize, len: usize, with: &'static [u8]) -> Mutator {
    Box::new(move |mut f: Vec<u8>, _| {
        f.splice(at..at + len, with.iter().copied());
        fix_size(&mut f);
        Reply {
            frame: f,
            close: false,
        }
    })
}

/// Replaces the first occurrence of `find` in the frame with `with`.
fn replace(find: &'static [u8], with: &'static [u8]) -> Mutator {
    Box::new(move |mut f: Vec<u8>, _| {
        let at = f
            .windows(find.len())
            .position(|w| w == find)
            .expect("pattern in the response");
        f.splice(at..at + find.len(), with.iter().copied());
        fix_size(&mut f);
        Reply {
            frame: f,
            close: false,
        }
    })
}

async fn connection(broker: &Broker) -> BrokerConnection {
    BrokerConnection::connect(
        &broker.addr,
        "hostile".into(),
        &ConnectionConfig::default(),
        Duration::from_secs(5),
    )
    .await
    .expect("connect")
}

fn all_topics() -> MetadataRequest {
    MetadataRequest {
        topics: None,
        ..Default::default()
    }
}

/// Sends Metadata with `m` applied to the response: the error must be a
/// Protocol error naming the API, the broker and every `names`; the next
/// (valid) response on the same connection decodes; and an Admin client
/// that meets the same fault recovers by itself.
async fn metadata_fault(m: impl Fn() -> Mutator, names: &[&str]) {
    let broker = Broker::start(2).await;
    let conn = connection(&broker).await;
    let v = conn.version_of::<MetadataRequest>().unwrap();
    assert_eq!(v, 13, "the offsets below assume Metadata v13");
    broker.mutate(ApiKey::Metadata, m());
    let e = conn.send(&all_topics()).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Protocol, "{e:?}");
    assert!(e.is_retriable(), "{e:?}");
    let msg = e.to_string();
    for n in ["Metadata", "hostile"].iter().chain(names) {
        assert!(msg.contains(n), "error does not name `{n}`: {msg}");
    }
    let ok = conn
        .send(&all_topics())
        .await
        .expect("valid response after the fault");
    assert_eq!(ok.topics[0].partitions.len(), 2);
    let admin = admin(&broker);
    admin
        .describe_topics(&[crate::broker::TOPIC])
        .await
        .expect("bootstrap");
    broker.mutate(ApiKey::Metadata, m());
    let t = admin
        .describe_topics(&[crate::broker::TOPIC])
        .await
        .expect("admin recovers");
    assert_eq!(t[0].partitions.len(), 2);
    assert_eq!(broker.mutations_pending(), 0);
    assert_heap_bounded(&msg);
}

// Metadata v13 frame: size(4) correlation(4) header tags(1) throttle(4),
// then the brokers compact array count at 13 (1 broker: 0x02), node id,
// host as a compact string (9 bytes: 0x0a).

#[tokio::test]
async fn huge_array_count_is_rejected_without_allocating() {
    metadata_fault(
        || splice(13, 1, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        &["brokers"],
    )
    .await;
}

#[tokio::test]
async fn null_for_a_non_nullable_array_is_rejected() {
    metadata_fault(|| splice(13, 1, &[0x00]), &["null", "brokers"]).await;
}

#[tokio::test]
async fn huge_string_length_is_rejected() {
    metadata_fault(
        || replace(b"\x0a127.0.0.1", b"\xff\xff\xff\x7f127.0.0.1"),
        &["host"],
    )
    .await;
}

#[tokio::test]
async fn overlong_varint_is_rejected() {
    metadata_fault(
        || splice(13, 1, &[0x82, 0x80, 0x80, 0x80, 0x80, 0x00]),
        &["varint", "brokers"],
    )
    .await;
}

#[tokio::test]
async fn truncated_body_is_rejected() {
    metadata_fault(
        || {
            Box::new(|mut f: Vec<u8>, _| {
                f.truncate(f.len() / 2);
                fix_size(&mut f);
                Reply {
                    frame: f,
                    close: false,
                }
            })
        },
        &["truncated"],
    )
    .await;
}

#[tokio::test]
async fn huge_frame_size_prefix_closes_the_connection_and_the_client_recovers() {
    let broker = Broker::start(1).await;
    let conn = connection(&broker).await;
    broker.mutate(
        ApiKey::Metadata,
        Box::new(|mut f: Vec<u8>, _| {
            f[..4].copy_from_slice(&i32::MAX.to_be_bytes());
            Reply {
                frame: f,
                close: false,
            }
        }),
    );
    let e = conn.send(&all_topics()).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Protocol, "{e:?}");
    assert!(e.to_string().contains("exceeds the limit"), "{e}");
    assert!(conn.is_closed());
    // Negative size prefix.
    let conn = connection(&broker).await;
    broker.mutate(
        ApiKey::Metadata,
        Box::new(|mut f: Vec<u8>, _| {
            f[..4].copy_from_slice(&(-7i32).to_be_bytes());
            Reply {
                frame: f,
                close: false,
            }
        }),
    );
    let e = conn.send(&all_topics()).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Protocol, "{e:?}");
    assert!(e.to_string().contains("negative length -7"), "{e}");
    assert_heap_bounded("huge frame");
}

/// A producer meets `m` on its first Produce response and still delivers
/// the record exactly once (the resend carries the same sequence, which the
/// broker recognises as a duplicate).
async fn produce_fault(m: Mutator, request_timeout: Duration) {
    let broker = Broker::start(1).await;
    let p = kafkawire::producer::Producer::builder()
        .bootstrap_servers(&broker.addr)
        .linger(Duration::ZERO)
        .retry_backoff(Duration::from_millis(1))
        .request_timeout(request_timeout)
        .build()
        .unwrap();
    broker.mutate(ApiKey::Produce, m);
    let ack = p
        .send(
            ProducerRecord::new(crate::broker::TOPIC)
                .key("k")
                .value("v")
                .partition(0),
        )
        .await
        .unwrap();
    let meta = tokio::time::timeout(Duration::from_secs(60), ack)
        .await
        .expect("delivery hung")
        .expect("delivered");
    assert_eq!(meta.offset(), 0);
    assert_eq!(broker.mutations_pending(), 0);
    let st = broker.state();
    assert_eq!(st.log_end(0), 1, "the record must be written once");
    let produces = st
        .requests
        .iter()
        .filter(|(k, _)| *k == ApiKey::Produce.as_i16())
        .count();
    assert!(produces >= 2, "the fault did not cause a resend");
}

#[tokio::test]
async fn produce_response_with_huge_size_prefix() {
    produce_fault(
        Box::new(|mut f: Vec<u8>, _| {
            f[..4].copy_from_slice(&0x7fff_fff0i32.to_be_bytes());
            Reply {
                frame: f,
                close: false,
            }
        }),
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn produce_response_truncated_then_closed() {
    produce_fault(
        Box::new(|mut f: Vec<u8>, _| {
            f.truncate(f.len() - 3);
            Reply {
                frame: f,
                close: true,
            }
        }),
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn produce_response_truncated_and_silent_times_out() {
    produce_fault(
        Box::new(|mut f: Vec<u8>, _| {
            f.truncate(f.len() - 3);
            Reply {
                frame: f,
                close: false,
            }
        }),
        Duration::from_millis(500),
    )
    .await;
}

#[tokio::test]
async fn produce_response_with_huge_array_count() {
    // Produce v13: size(4) correlation(4) tags(1), responses count at 9.
    produce_fault(
        splice(9, 1, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn fetch_response_with_huge_records_length() {
    // The records bytes length of the one partition is replaced by 2^31.
    let broker = Broker::start(1).await;
    let o = Originals::fill(&broker, 1, 2);
    let end = broker.state().log_end(0);
    let first: Vec<u8> = broker.state().logs[0][0].bytes.to_vec();
    let mut c = consumer(&broker);
    c.assign(&[tp(0)]).unwrap();
    broker.mutate(
        ApiKey::Fetch,
        Box::new(move |mut f: Vec<u8>, _| {
            let at = f
                .windows(first.len())
                .position(|w| w == &first[..])
                .expect("batch in the response");
            // The compact length ends right before the records; walk back
            // over its continuation bytes.
            let mut start = at - 1;
            while start > 0 && f[start - 1] & 0x80 != 0 {
                start -= 1;
            }
            f.splice(start..at, [0x80, 0x80, 0x80, 0x80, 0x08]);
            fix_size(&mut f);
            Reply {
                frame: f,
                close: false,
            }
        }),
    );
    read_exactly(
        &mut c,
        &o,
        0,
        0,
        end as usize,
        &"after a huge records length",
    )
    .await;
    assert_eq!(broker.mutations_pending(), 0);
}
