//! Golden vectors: record batches written by the Java client and by
//! librdkafka, captured from real Kafka into `protocol-tests/vectors/`
//! (see `regenerate.sh` there). Each vector must decode to exactly what
//! its producer was told to write, as the manifest lists it: every batch
//! header field read from the raw bytes, every record, every control marker.

use bytes::Bytes;
use kafkawire::record::{Batches, Compression, ControlKind};
use serde_json::Value;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/vectors")
}

fn manifest() -> Value {
    let path = dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("manifest is JSON")
}

fn codec(name: &str) -> Compression {
    Compression::ALL
        .into_iter()
        .find(|c| c.name() == name)
        .unwrap_or_else(|| panic!("unknown codec {name}"))
}

fn opt_str(v: &Value) -> Option<&str> {
    v.as_str()
}

fn utf8(b: Option<&[u8]>) -> Option<&str> {
    b.map(|b| std::str::from_utf8(b).expect("utf-8"))
}

/// Checks one vector; returns how many records and markers it held.
fn check(v: &Value) -> usize {
    let file = v["file"].as_str().expect("file");
    let raw = Bytes::from(std::fs::read(dir().join(file)).expect("vector file"));
    let batches_want = v["batches"].as_array().expect("batches");
    let records_want = v["records"].as_array().expect("records");
    let vector_codec = codec(v["compression"].as_str().unwrap());
    let mut want = records_want.iter();
    let mut batches = Batches::new(raw);
    let mut n_batches = 0;
    let mut seen = 0;
    let mut coordinator_epoch = None;
    for (i, batch) in batches.by_ref().enumerate() {
        let batch = batch.unwrap_or_else(|e| panic!("{file}: batch {i}: {e}"));
        let b = batches_want
            .get(i)
            .unwrap_or_else(|| panic!("{file}: more batches than the manifest"));
        let at = format!("{file} batch {i}");
        assert_eq!(batch.magic(), 2, "{at}");
        assert_eq!(
            batch.base_offset(),
            b["base_offset"].as_i64().unwrap(),
            "{at}"
        );
        assert_eq!(
            batch.last_offset(),
            b["last_offset"].as_i64().unwrap(),
            "{at}"
        );
        assert_eq!(
            batch.compression(),
            codec(b["compression"].as_str().unwrap()),
            "{at}"
        );
        assert_eq!(
            batch.is_transactional(),
            b["transactional"].as_bool().unwrap(),
            "{at}"
        );
        assert_eq!(batch.is_control(), b["control"].as_bool().unwrap(), "{at}");
        assert_eq!(
            batch.producer_id(),
            b["producer_id"].as_i64().unwrap(),
            "{at}"
        );
        assert_eq!(
            batch.producer_epoch() as i64,
            b["producer_epoch"].as_i64().unwrap(),
            "{at}"
        );
        assert_eq!(
            batch.base_sequence() as i64,
            b["base_sequence"].as_i64().unwrap(),
            "{at}"
        );
        // Data batches carry the codec the producer was asked for; markers
        // are written uncompressed by the broker.
        let codec_want = if batch.is_control() {
            Compression::None
        } else {
            vector_codec
        };
        assert_eq!(batch.compression(), codec_want, "{at}");
        assert_eq!(
            batch.is_transactional(),
            v["transactional"].as_bool().unwrap(),
            "{at}"
        );
        if let Some(prefix) = b["payload_prefix"].as_str() {
            let payload: String = batch.raw()[61..]
                .iter()
                .take(8)
                .map(|x| format!("{x:02x}"))
                .collect();
            assert_eq!(payload, prefix, "{at}: compressed payload");
        }
        n_batches += 1;
        if batch.is_control() {
            let r = want
                .next()
                .unwrap_or_else(|| panic!("{at}: marker not in the manifest"));
            let kind = match r["control"].as_str() {
                Some("COMMIT") => ControlKind::Commit,
                Some("ABORT") => ControlKind::Abort,
                other => {
                    panic!("{at}: manifest expects record {r}, found a control batch ({other:?})")
                }
            };
            let c = batch
                .control_record()
                .unwrap_or_else(|e| panic!("{at}: {e}"))
                .expect("control record");
            assert_eq!(c.kind, kind, "{at}");
            assert_eq!(batch.base_offset(), r["offset"].as_i64().unwrap(), "{at}");
            assert_eq!(batch.record_count(), 1, "{at}");
            assert_eq!(
                (c.producer_id, c.producer_epoch),
                (batch.producer_id(), batch.producer_epoch()),
                "{at}"
            );
            // The manifest does not carry the coordinator epoch (the capture
            // tool does not ask the broker for it). A coordinator writes its
            // own epoch, >= 0, and one capture has one coordinator that
            // never fails over: every marker of a file has the same one.
            assert!(c.coordinator_epoch >= 0, "{at}: {c:?}");
            let first = *coordinator_epoch.get_or_insert(c.coordinator_epoch);
            assert_eq!(c.coordinator_epoch, first, "{at}: coordinator epoch");
            seen += 1;
            continue;
        }
        for rec in batch.records().unwrap_or_else(|e| panic!("{at}: {e}")) {
            let rec = rec.unwrap_or_else(|e| panic!("{at}: {e}"));
            let r = want
                .next()
                .unwrap_or_else(|| panic!("{at}: record {} not in the manifest", rec.offset));
            let at = format!("{file} offset {}", rec.offset);
            assert!(
                r.get("control").is_none(),
                "{at}: manifest expects a {} marker",
                r["control"]
            );
            assert_eq!(rec.offset, r["offset"].as_i64().unwrap(), "{at}");
            assert_eq!(rec.timestamp, r["timestamp"].as_i64().unwrap(), "{at}");
            assert_eq!(utf8(rec.key()), opt_str(&r["key"]), "{at}: key");
            assert_eq!(utf8(rec.value()), opt_str(&r["value"]), "{at}: value");
            let headers: Vec<(&str, Option<&str>)> = rec
                .headers()
                .iter()
                .map(|h| (h.key_str().expect("utf-8 key"), utf8(h.value())))
                .collect();
            let headers_want: Vec<(&str, Option<&str>)> = r["headers"]
                .as_array()
                .expect("headers")
                .iter()
                .map(|h| (h[0].as_str().unwrap(), h[1].as_str()))
                .collect();
            assert_eq!(headers, headers_want, "{at}: headers");
            seen += 1;
        }
    }
    assert!(!batches.truncated_tail(), "{file}: trailing partial batch");
    assert_eq!(n_batches, batches_want.len(), "{file}: batch count");
    assert!(
        want.next().is_none(),
        "{file}: records in the manifest that did not decode"
    );
    seen
}

#[test]
fn java_and_librdkafka_batches_decode_exactly() {
    let m = manifest();
    let vectors = m["vectors"].as_array().expect("vectors");
    let mut covered = std::collections::BTreeSet::new();
    for v in vectors {
        let n = check(v);
        assert!(n > 0, "{}: empty vector", v["file"]);
        let producer = v["producer"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        covered.insert((
            producer,
            v["compression"].as_str().unwrap().to_string(),
            v["transactional"].as_bool().unwrap(),
        ));
    }
    // Every codec from both clients, plain and transactional.
    for producer in ["Apache", "librdkafka"] {
        for c in Compression::ALL {
            for txn in [false, true] {
                assert!(
                    covered.contains(&(producer.to_string(), c.name().to_string(), txn)),
                    "no {producer} {c} txn={txn} vector"
                );
            }
        }
    }
}

/// librdkafka writes raw snappy blocks, the Java client xerial framing;
/// both must decode (checked above); this pins down that the vectors really
/// hold both forms.
#[test]
fn vectors_hold_both_snappy_framings() {
    let m = manifest();
    let framings: std::collections::BTreeSet<&str> = m["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["compression"] == "snappy")
        .filter_map(|v| v["framing"].as_str())
        .collect();
    assert!(framings.contains("xerial-framed snappy"), "{framings:?}");
    assert!(
        framings.contains("raw snappy block (no xerial framing)"),
        "{framings:?}"
    );
}
