//! The producer against one real broker (run for Kafka 4.x and 3.x).

mod support;

use kafkawire::admin::NewTopic;
use kafkawire::producer::{Acks, Compression, DeliveryFuture, Producer, ProducerRecord};
use kafkawire::ErrorKind;
use protocol_tests::interop;
use protocol_tests::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

async fn topic(partitions: i32) -> String {
    protocol_tests::create_topic("producer", partitions).await
}

fn producer() -> kafkawire::producer::ProducerBuilder {
    Producer::builder()
        .bootstrap_servers(&bootstrap())
        .client_id("producer-tests")
}

/// Every acknowledged record is read back exactly once, at the offset its
/// future reported, in per-partition send order; keys, values, null fields,
/// headers and timestamps survive.
#[tokio::test]
async fn acknowledged_records_are_read_back_once_in_send_order() {
    let topic = topic(3).await;
    let p = producer()
        .linger(Duration::from_millis(10))
        .build()
        .unwrap();
    let n = 30_000usize;
    let mut futures: Vec<(usize, DeliveryFuture)> = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("k{}", i % 97);
        let value = format!("v{i}");
        let mut r = ProducerRecord::new(&topic)
            .value(&value)
            .timestamp(1_700_000_000_000 + i as i64);
        match i % 4 {
            0 => r = r.key(&key),
            1 => r = r.partition((i % 3) as i32),
            2 => {} // keyless: sticky
            _ => {
                r = r
                    .key(&key)
                    .header("h", Some("x"))
                    .header("null", None::<&[u8]>)
            }
        }
        futures.push((i, p.send(r).await.expect("enqueue")));
    }
    let mut sent: HashMap<(i32, i64), usize> = HashMap::new();
    for (i, f) in futures {
        let m = f.await.unwrap_or_else(|e| panic!("record {i} failed: {e}"));
        assert_eq!(m.topic(), topic);
        assert_eq!(m.timestamp(), 1_700_000_000_000 + i as i64);
        assert!(
            sent.insert((m.partition(), m.offset()), i).is_none(),
            "two records at one offset"
        );
    }
    p.close(Duration::from_secs(30)).await.unwrap();

    let reader = support::cluster();
    let all = support::read_all(&reader, &topic, Duration::from_secs(60)).await;
    let mut seen = 0;
    for (partition, records) in &all {
        let mut last = None;
        for r in records {
            let i = *sent
                .get(&(*partition, r.offset))
                .unwrap_or_else(|| panic!("unacknowledged record at {partition}/{}", r.offset));
            assert_eq!(r.value.as_deref(), Some(format!("v{i}").as_bytes()));
            assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
            match i % 4 {
                0 => assert_eq!(r.key.as_deref(), Some(format!("k{}", i % 97).as_bytes())),
                1 | 2 => assert_eq!(r.key, None),
                _ => {
                    assert_eq!(r.headers.len(), 2);
                    assert_eq!(
                        r.headers[0],
                        ("h".to_string(), Some(bytes::Bytes::from_static(b"x")))
                    );
                    assert_eq!(r.headers[1], ("null".to_string(), None));
                }
            }
            if i % 4 == 1 {
                assert_eq!(*partition, (i % 3) as i32, "explicit partition honoured");
            }
            assert!(
                last < Some(i),
                "partition {partition}: record {i} after {last:?}: send order broken"
            );
            last = Some(i);
            seen += 1;
        }
    }
    assert_eq!(seen, n, "every acknowledged record read back once");
}

/// Keyed records land on the partition the Java client's default
/// partitioner chooses for the key, and where librdkafka's `murmur2_random`
/// puts them.
#[tokio::test]
async fn keyed_records_land_where_java_and_librdkafka_put_them() {
    let partitions = 7;
    let topic = topic(partitions).await;
    let keys: Vec<String> = (0..200)
        .map(|i| format!("user-{i}-{}", "x".repeat(i % 13)))
        .chain(["été".to_string(), "order-42".to_string()])
        .collect();
    let p = producer().build().unwrap();
    let mut got = HashMap::new();
    let mut fs = Vec::new();
    for k in &keys {
        fs.push((
            k.clone(),
            p.send(ProducerRecord::new(&topic).key(k).value("v"))
                .await
                .unwrap(),
        ));
    }
    for (k, f) in fs {
        got.insert(k, f.await.unwrap().partition());
    }
    p.close(Duration::from_secs(10)).await.unwrap();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let java = interop::java_partitions(&key_refs, partitions);
    let rdkafka = interop::rdkafka_partitions(&key_refs, &topic);
    for (who, theirs) in [("Java client", java), ("librdkafka", rdkafka)] {
        assert_eq!(theirs.len(), keys.len(), "{who} answered for every key");
        for (k, part) in theirs {
            assert_eq!(got.get(&k).copied(), Some(part), "{who}: key {k:?}");
        }
    }
    // And the broker really has ours there.
    let all = support::read_all(&support::cluster(), &topic, Duration::from_secs(30)).await;
    for (partition, records) in all {
        for r in records {
            let Some(k) = r.key else { continue };
            let k = String::from_utf8(k.to_vec()).unwrap();
            if let Some(want) = got.get(&k) {
                assert_eq!(*want, partition, "key {k:?}");
            }
        }
    }
}

/// Records produced with every codec (one topic, batches of all codecs
/// interleaved in each partition) are read correctly by the Java client
/// and by librdkafka: keys, values and null values (tombstones), and
/// headers: none beyond the codec's, a null-valued one, a repeated key
/// (order kept).
#[tokio::test]
async fn every_compression_is_read_by_java_and_librdkafka() {
    let topic = topic(2).await;
    let per_codec = 300;
    let mut want = Vec::new();
    for codec in Compression::ALL {
        let p = producer().compression(codec).build().unwrap();
        let mut fs = Vec::new();
        for i in 0..per_codec {
            let key = format!("{codec}-{i}");
            let value = (i % 10 != 9)
                .then(|| format!("{codec} value {i} {}", "lorem ipsum ".repeat(i % 7)));
            let mut r = ProducerRecord::new(&topic)
                .key(&key)
                .header("codec", Some(codec.name()));
            if let Some(v) = &value {
                r = r.value(v);
            }
            let headers = extra_headers(i);
            for (k, v) in &headers {
                r = r.header(k, v.as_deref());
            }
            fs.push(p.send(r).await.unwrap());
            want.push((key, value, headers));
        }
        for f in fs {
            f.await.unwrap_or_else(|e| panic!("{codec}: {e}"));
        }
        p.close(Duration::from_secs(10)).await.unwrap();
    }
    want.sort();
    for peer in interop::Peer::all() {
        let records = interop::consume(peer, &topic, "read_uncommitted", want.len());
        let mut got: Vec<_> = records
            .iter()
            .map(|r| {
                let k = r.key.clone().expect("key");
                let codec = k.split('-').next().unwrap().to_string();
                assert_eq!(
                    r.headers.first(),
                    Some(&("codec".to_string(), Some(codec))),
                    "{}",
                    peer.name()
                );
                (k, r.value.clone(), r.headers[1..].to_vec())
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            want,
            "{} read every record of every codec",
            peer.name()
        );
    }
}

/// Headers after the codec header of record `i`: none, a null-valued one,
/// or a key given twice.
fn extra_headers(i: usize) -> Vec<(String, Option<String>)> {
    match i % 3 {
        0 => vec![],
        1 => vec![("null".to_string(), None)],
        _ => vec![
            ("dup".to_string(), Some(format!("a{i}"))),
            ("dup".to_string(), Some(format!("b{i}"))),
        ],
    }
}

/// Each codec produces batches the broker accepts and that read back intact.
#[tokio::test]
async fn every_compression_round_trips() {
    for codec in Compression::ALL {
        let topic = topic(2).await;
        let p = producer()
            .compression(codec)
            .linger(Duration::from_millis(20))
            .build()
            .unwrap();
        let mut fs = Vec::new();
        for i in 0..5_000 {
            let v = format!("{codec}-value-{i}-{}", "abc".repeat(i % 20));
            fs.push(
                p.send(ProducerRecord::new(&topic).key(&i.to_string()).value(&v))
                    .await
                    .unwrap(),
            );
        }
        for f in fs {
            f.await.unwrap_or_else(|e| panic!("{codec}: {e}"));
        }
        p.close(Duration::from_secs(10)).await.unwrap();
        let all = support::read_all(&support::cluster(), &topic, Duration::from_secs(30)).await;
        let mut values: Vec<String> = all
            .values()
            .flatten()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        values.sort();
        let mut want: Vec<String> = (0..5_000)
            .map(|i| format!("{codec}-value-{i}-{}", "abc".repeat(i % 20)))
            .collect();
        want.sort();
        assert_eq!(values, want, "{codec}");
    }
}

#[tokio::test]
async fn acks_zero_and_one_without_idempotence() {
    let topic = topic(1).await;
    for acks in [Acks::None, Acks::Leader] {
        let p = producer()
            .enable_idempotence(false)
            .acks(acks)
            .build()
            .unwrap();
        let mut fs = Vec::new();
        for i in 0..1000 {
            fs.push(
                p.send(ProducerRecord::new(&topic).value(&format!("{acks:?}-{i}")))
                    .await
                    .unwrap(),
            );
        }
        for f in fs {
            let m = f.await.unwrap();
            if acks == Acks::None {
                assert_eq!(m.offset(), -1);
            } else {
                assert!(m.offset() >= 0);
            }
        }
        p.close(Duration::from_secs(10)).await.unwrap();
    }
    let all = support::read_all(&support::cluster(), &topic, Duration::from_secs(30)).await;
    assert_eq!(all[&0].len(), 2000);
}

/// A record larger than max.request.size, an unknown topic, a bad
/// partition and a closed producer each fail alone with a clear error.
#[tokio::test]
async fn bad_records_fail_alone_with_clear_errors() {
    let topic = topic(2).await;
    let p = producer()
        .max_request_size(10_000)
        .max_block(Duration::from_secs(2))
        .build()
        .unwrap();
    let ok1 = p
        .send(ProducerRecord::new(&topic).value("before"))
        .await
        .unwrap();

    let big = vec![7u8; 20_000];
    let e = p
        .send(ProducerRecord::new(&topic).value(&big))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::TooLarge, "{e}");
    assert!(e.to_string().contains("max.request.size"), "{e}");

    let t0 = Instant::now();
    let e = p
        .send(ProducerRecord::new(&unique("missing")).value("x"))
        .await
        .unwrap_err();
    assert!(t0.elapsed() >= Duration::from_secs(2), "waits max.block.ms");
    assert!(
        e.to_string().contains("max.block.ms") || e.to_string().contains("UNKNOWN_TOPIC"),
        "{e}"
    );

    let e = p
        .send(ProducerRecord::new(&topic).partition(5).value("x"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("partition 5"), "{e}");

    let ok2 = p
        .send(ProducerRecord::new(&topic).value("after"))
        .await
        .unwrap();
    ok1.await.unwrap();
    ok2.await.unwrap();
    p.close(Duration::from_secs(10)).await.unwrap();
    let e = p
        .send(ProducerRecord::new(&topic).value("closed"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Closed, "{e}");
    let all = support::read_all(&support::cluster(), &topic, Duration::from_secs(30)).await;
    assert_eq!(all.values().map(Vec::len).sum::<usize>(), 2);
}

/// With buffer.memory used up by lingering batches, send waits max.block.ms
/// and then fails clearly; earlier records are unaffected.
#[tokio::test]
async fn full_buffer_memory_blocks_then_fails() {
    let topic = topic(3).await;
    let p = producer()
        .batch_size(64 * 1024)
        .buffer_memory(128 * 1024)
        .linger(Duration::from_secs(600))
        .delivery_timeout(Duration::from_secs(700))
        .max_block(Duration::from_millis(800))
        .build()
        .unwrap();
    let a = p
        .send(ProducerRecord::new(&topic).partition(0).value("a"))
        .await
        .unwrap();
    let b = p
        .send(ProducerRecord::new(&topic).partition(1).value("b"))
        .await
        .unwrap();
    let t0 = Instant::now();
    let e = p
        .send(ProducerRecord::new(&topic).partition(2).value("c"))
        .await
        .unwrap_err();
    assert!(t0.elapsed() >= Duration::from_millis(800));
    assert_eq!(e.kind(), &ErrorKind::BufferExhausted, "{e}");
    assert!(e.to_string().contains("buffer.memory"), "{e}");
    p.flush().await;
    a.await.unwrap();
    b.await.unwrap();
    // Memory is back: the third partition works now.
    let c = p
        .send(ProducerRecord::new(&topic).partition(2).value("c"))
        .await
        .unwrap();
    p.flush().await;
    c.await.unwrap();
}

/// Fire-and-forget plus flush delivers everything; prints a rough rate.
#[tokio::test]
async fn fire_and_forget_then_flush_delivers_everything() {
    let topic = topic(6).await;
    let p = producer().linger(Duration::from_millis(5)).build().unwrap();
    let n = 200_000;
    let value = [b'x'; 100];
    let t0 = Instant::now();
    for i in 0..n {
        let k = (i as u32).to_be_bytes();
        p.send_and_forget(ProducerRecord::new(&topic).key(&k).value(&value))
            .await
            .unwrap();
    }
    p.flush().await;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "fire-and-forget: {n} records of 100 bytes in {secs:.2}s = {:.0} records/s",
        n as f64 / secs
    );
    let all = support::read_all(&support::cluster(), &topic, Duration::from_secs(60)).await;
    assert_eq!(all.values().map(Vec::len).sum::<usize>(), n);
}

/// Batches larger than the topic's max.message.bytes (batch.size is larger
/// and linger holds many records in one batch) are split and re-sent, as
/// the Java client does: every record is acknowledged once, in send order,
/// and reads back intact; one record larger than the limit by itself fails
/// alone with MESSAGE_TOO_LARGE while the records around it succeed. With
/// idempotence the split pieces keep the batch's sequences, and the gap the
/// failed record leaves is repaired by the epoch bump.
#[tokio::test]
async fn too_large_batches_are_split_and_delivered_in_order() {
    for (idempotent, codec) in [
        (true, Compression::None),
        (true, Compression::Lz4),
        (false, Compression::None),
    ] {
        let name = unique("split");
        admin()
            .create_topics(&[NewTopic::new(&name, 1, 1).config("max.message.bytes", "2000")])
            .await
            .expect("create topic")
            .into_result()
            .expect("topic created");
        admin()
            .wait_for_topics(&[&name], Duration::from_secs(30))
            .await
            .expect("topic visible");
        let p = producer()
            .enable_idempotence(idempotent)
            .compression(codec)
            .batch_size(64 * 1024)
            .linger(Duration::from_millis(500))
            .build()
            .unwrap();
        let n = 400usize;
        let too_big = 250usize;
        // Values that do not compress much: the batches stay too large.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            let len = if i == too_big { 3000 } else { 100 };
            let mut v = format!("v{i}-");
            while v.len() < len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push_str(&format!("{x:016x}"));
            }
            values.push(v);
        }
        let mut fs = Vec::with_capacity(n);
        for (i, v) in values.iter().enumerate() {
            fs.push(
                p.send(ProducerRecord::new(&name).key(&i.to_string()).value(v))
                    .await
                    .unwrap(),
            );
        }
        let mut offsets = Vec::new();
        for (i, f) in fs.into_iter().enumerate() {
            let r = tokio::time::timeout(Duration::from_secs(120), f)
                .await
                .expect("delivery within 120 s");
            if i == too_big {
                let e = r.expect_err("a record over max.message.bytes fails");
                assert_eq!(
                    e.code(),
                    Some(kafkawire::ErrorCode::MESSAGE_TOO_LARGE),
                    "{e}"
                );
                assert!(e.to_string().contains("max.message.bytes"), "{e}");
            } else {
                let m = r.unwrap_or_else(|e| {
                    panic!("{codec} idempotent={idempotent}: record {i} failed: {e}")
                });
                offsets.push((m.offset(), i));
            }
        }
        p.close(Duration::from_secs(30)).await.unwrap();
        let mut sorted = offsets.clone();
        sorted.sort();
        assert_eq!(
            sorted, offsets,
            "{codec} idempotent={idempotent}: offsets follow send order"
        );
        let all = support::read_all(&support::cluster(), &name, Duration::from_secs(60)).await;
        let got: Vec<(i64, String)> = all[&0]
            .iter()
            .map(|r| {
                (
                    r.offset,
                    String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap(),
                )
            })
            .collect();
        let want: Vec<(i64, String)> = offsets
            .iter()
            .map(|(o, i)| (*o, values[*i].clone()))
            .collect();
        assert_eq!(
            got.len(),
            n - 1,
            "{codec} idempotent={idempotent}: every record once, nothing else"
        );
        assert!(
            got == want,
            "{codec} idempotent={idempotent}: log differs from the acknowledged records"
        );
    }
}

/// KIP-360 on a real broker: DeleteRecords past the idempotent producer's
/// last write (the way its state used to be lost) does not disturb it. On
/// Kafka 3.x/4.x the broker keeps the producer's state (a probe saw the next
/// in-sequence batch accepted and a gapped one refused with
/// OUT_OF_ORDER_SEQUENCE_NUMBER, never UNKNOWN_PRODUCER_ID), so records
/// sent afterwards are acknowledged once, in order, and nothing is lost.
#[tokio::test]
async fn idempotent_producer_continues_after_delete_records_past_its_writes() {
    let topic = topic(1).await;
    let p = producer().linger(Duration::from_millis(5)).build().unwrap();
    let mut offsets = Vec::new();
    for round in 0..3 {
        let mut fs = Vec::new();
        for i in 0..200 {
            fs.push(
                p.send(ProducerRecord::new(&topic).value(&format!("{round}-{i}")))
                    .await
                    .unwrap(),
            );
        }
        for f in fs {
            offsets.push(
                f.await
                    .unwrap_or_else(|e| panic!("round {round}: {e}"))
                    .offset(),
            );
        }
        if round < 2 {
            let low = admin()
                .delete_records(&topic, 0, -1)
                .await
                .expect("delete records");
            assert_eq!(
                low,
                offsets.last().unwrap() + 1,
                "everything written so far deleted"
            );
        }
    }
    p.close(Duration::from_secs(10)).await.unwrap();
    assert!(
        offsets.windows(2).all(|w| w[0] + 1 == w[1]),
        "contiguous offsets in send order"
    );
    // Read from the log start (the reader helper starts at 0).
    let mut c = kafkawire::consumer::Consumer::builder()
        .bootstrap_servers(&bootstrap())
        .build()
        .unwrap();
    let tp = kafkawire::consumer::TopicPartition::new(&topic, 0);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek_to_beginning(std::slice::from_ref(&tp)).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 200 && Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(500)).await.unwrap() {
            got.push((
                r.offset,
                String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap(),
            ));
        }
    }
    let want: Vec<(i64, String)> = (0..200)
        .map(|i| (offsets[400 + i], format!("2-{i}")))
        .collect();
    assert_eq!(got, want);
}

/// Creates a one-partition topic with `max.message.bytes` = `max_message`.
async fn topic_with_max_message(prefix: &str, max_message: usize) -> String {
    let name = unique(prefix);
    admin()
        .create_topics(&[
            NewTopic::new(&name, 1, 1).config("max.message.bytes", &max_message.to_string())
        ])
        .await
        .expect("create topic")
        .into_result()
        .expect("topic created");
    admin()
        .wait_for_topics(&[&name], Duration::from_secs(30))
        .await
        .expect("topic visible");
    name
}

/// Sends `values` to partition 0 of `topic` (all enqueued before any is
/// awaited, so several batches are in flight) and returns each record's
/// acknowledged offset, in send order.
async fn send_all_acked(p: &Producer, topic: &str, values: &[String]) -> Vec<i64> {
    let mut fs = Vec::with_capacity(values.len());
    for v in values {
        fs.push(
            p.send(ProducerRecord::new(topic).partition(0).value(v))
                .await
                .expect("enqueue"),
        );
    }
    let mut offsets = Vec::with_capacity(fs.len());
    for (i, f) in fs.into_iter().enumerate() {
        let m = tokio::time::timeout(Duration::from_secs(120), f)
            .await
            .unwrap_or_else(|_| panic!("{}: no outcome within 120 s", values[i]))
            .unwrap_or_else(|e| panic!("{} failed: {e}", values[i]));
        offsets.push(m.offset());
    }
    offsets
}

/// Issue #8: sequence numbers wrap from `i32::MAX` to 0 on a real broker.
/// An idempotent producer whose sequences start at `i32::MAX - 20` (the
/// `test-hooks` feature; the broker accepts any first sequence from a
/// producer id it has no state for: Kafka's ProducerAppendInfo.checkSequence)
/// writes 300 records in small batches, five in flight, across the wrap.
/// Every record is acknowledged once at contiguous offsets in send order,
/// the log holds exactly them in order, all under the one producer id and
/// epoch (an OUT_OF_ORDER_SEQUENCE_NUMBER would have bumped the epoch and
/// restarted sequences at 0), with the sequences the producer numbered:
/// `MAX-20 ..= MAX`, then `0 ..= 278`.
#[tokio::test]
async fn sequences_wrap_past_i32_max_on_the_broker() {
    use kafkawire::producer::test_hooks::TestHooks;
    let topic = topic(1).await;
    let start = i32::MAX - 20;
    let p = producer()
        .batch_size(400)
        .linger(Duration::from_millis(20))
        .max_in_flight_requests_per_connection(5)
        .test_hooks(TestHooks {
            first_sequence: start,
            first_epoch: None,
        })
        .build()
        .unwrap();
    let n = 300usize;
    let values: Vec<String> = (0..n)
        .map(|i| format!("wrap-{i:04}-{}", "x".repeat(20)))
        .collect();
    let offsets = send_all_acked(&p, &topic, &values).await;
    p.close(Duration::from_secs(30)).await.unwrap();
    assert!(
        offsets.windows(2).all(|w| w[0] + 1 == w[1]),
        "acknowledged offsets not contiguous: {offsets:?}"
    );

    let all = support::read_all(&support::cluster(), &topic, Duration::from_secs(60)).await;
    let log = &all[&0];
    let got: Vec<(i64, String)> = log
        .iter()
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap(),
            )
        })
        .collect();
    let want: Vec<(i64, String)> = offsets
        .iter()
        .copied()
        .zip(values.iter().cloned())
        .collect();
    assert!(
        got == want,
        "the log is not exactly the acknowledged records in order"
    );
    let producer_ids: std::collections::BTreeSet<(i64, i16)> =
        log.iter().map(|r| r.producer).collect();
    assert_eq!(
        producer_ids.len(),
        1,
        "one producer id and epoch throughout: {producer_ids:?}"
    );
    let (id, epoch) = log[0].producer;
    assert!(
        id >= 0 && epoch >= 0,
        "idempotent batches: {:?}",
        log[0].producer
    );
    let seqs: Vec<i32> = log.iter().map(|r| r.sequence).collect();
    let want_seqs: Vec<i32> = (0..n as i64)
        .map(|i| support::record_sequence(start, i))
        .collect();
    assert_eq!(seqs, want_seqs, "sequences in the log");
    assert_eq!(
        (seqs[20], seqs[21]),
        (i32::MAX, 0),
        "the wrap is inside the run"
    );
    let batches = log
        .iter()
        .map(|r| r.batch_offset)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert!(batches >= 10, "several batches: {batches}");
    println!(
        "sequence wrap: {n} records in {batches} batches, producer {id} epoch {epoch}, sequences {start}..=MAX then 0..={}",
        seqs[n - 1]
    );
}

/// Issue #8: an exhausted epoch of an idempotent producer yields a new
/// producer id, against a real broker. The producer starts at epoch
/// `i16::MAX - 1` (the `test-hooks` feature), writes 100 records, then one
/// record larger than the topic's `max.message.bytes`: the broker refuses
/// it (MESSAGE_TOO_LARGE) and its sequence becomes a gap, so the next batch
/// gets OUT_OF_ORDER_SEQUENCE_NUMBER and needs an epoch bump, which the
/// exhausted epoch cannot take: the producer asks InitProducerId for a new
/// id and rewrites the waiting batches under it, epoch 0, from sequence 0.
/// Every other record is acknowledged once, in order, and the log shows
/// the first 100 under (old id, MAX - 1) and the rest under (new id, 0).
#[tokio::test]
async fn an_exhausted_idempotent_epoch_gets_a_new_producer_id() {
    use kafkawire::producer::test_hooks::TestHooks;
    let topic = topic_with_max_message("exhaust", 2000).await;
    let last_epoch = i16::MAX - 1;
    let p = producer()
        .batch_size(1000)
        .linger(Duration::from_millis(10))
        .test_hooks(TestHooks {
            first_sequence: 0,
            first_epoch: Some(last_epoch),
        })
        .build()
        .unwrap();
    let before: Vec<String> = (0..100).map(|i| format!("before-{i:03}")).collect();
    let after: Vec<String> = (0..100).map(|i| format!("after-{i:03}")).collect();
    let mut offsets = send_all_acked(&p, &topic, &before).await;

    let big = "b".repeat(3000);
    let f = p
        .send(ProducerRecord::new(&topic).partition(0).value(&big))
        .await
        .expect("enqueue");
    let e = tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("an outcome within 60 s")
        .expect_err("a record over max.message.bytes fails");
    assert_eq!(
        e.code(),
        Some(kafkawire::ErrorCode::MESSAGE_TOO_LARGE),
        "{e}"
    );

    offsets.extend(send_all_acked(&p, &topic, &after).await);
    p.close(Duration::from_secs(30)).await.unwrap();
    assert!(
        offsets.windows(2).all(|w| w[0] + 1 == w[1]),
        "acknowledged offsets not contiguous: {offsets:?}"
    );

    let all = support::read_all(&support::cluster(), &topic, Duration::from_secs(60)).await;
    let log = &all[&0];
    let got: Vec<(i64, String)> = log
        .iter()
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap(),
            )
        })
        .collect();
    let want: Vec<(i64, String)> = offsets
        .iter()
        .copied()
        .zip(before.iter().chain(&after).cloned())
        .collect();
    assert!(
        got == want,
        "the log is not exactly the acknowledged records in order: {got:?}"
    );
    let (old_id, old_epoch) = log[0].producer;
    assert_eq!(
        old_epoch, last_epoch,
        "the first records carry the hooked epoch"
    );
    let (new_id, new_epoch) = log[100].producer;
    assert_ne!(
        new_id, old_id,
        "a new producer id after the exhausted epoch"
    );
    assert_eq!(new_epoch, 0, "the new producer id starts at epoch 0");
    for (i, r) in log.iter().enumerate() {
        let (want_producer, want_seq) = if i < 100 {
            ((old_id, old_epoch), i as i32)
        } else {
            ((new_id, 0), i as i32 - 100)
        };
        assert_eq!(
            (r.producer, r.sequence),
            (want_producer, want_seq),
            "record {i} at offset {}",
            r.offset
        );
    }
    println!("epoch exhaustion: producer {old_id} epoch {old_epoch} -> producer {new_id} epoch {new_epoch}");
}
