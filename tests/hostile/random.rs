//! Random mutations of valid Fetch, Metadata and Produce responses
//! (bit flips, byte replacements, interesting integers, truncations,
//! insertions, duplicated spans), seeded so a failure can be replayed.
//!
//! Each mutation replaces one response; the size prefix is fixed up so the
//! frame stays well framed (framing faults are the targeted tests' job).
//! After each one the client must still work: the next valid responses
//! lead to genuine data at the right offsets (consumer), a fresh metadata
//! answer (admin), an acknowledged record (producer).

use crate::broker::{fix_size, Broker, Mutator, Reply, TOPIC};
use crate::common::*;
use kafkawire::producer::{Producer, ProducerRecord};
use kafkawire::protocol::messages::{
    ApiKey, FindCoordinatorRequest, Message, MetadataRequest, Request,
};
use kafkawire::protocol::wire::Reader;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Total mutations, split over the three drivers (60% Fetch, 20% each
/// Metadata and Produce).
fn total() -> usize {
    std::env::var("KAFKAWIRE_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

fn base_seed() -> u64 {
    let s = std::env::var("KAFKAWIRE_MUTATION_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0x6b61_666b_6177_6972);
    eprintln!("hostile mutations: seed {s:#x} (replay with KAFKAWIRE_MUTATION_SEED={s:x})");
    s
}

/// Where a mutation happened, for messages.
struct Ctx<'a> {
    driver: &'a str,
    i: usize,
    seed: u64,
    desc: &'a str,
}

impl fmt::Display for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} mutation #{} (seed {:#x}): {}",
            self.driver, self.i, self.seed, self.desc
        )
    }
}

const INTERESTING_I32: [i32; 8] = [0, -1, -2, 1, i32::MAX, i32::MIN, 0x7fff, 0x10000];

/// Mutates `body` (the frame after its size prefix) in one random way and
/// describes what it did.
pub fn mutate_body(rng: &mut Rng, body: &mut Vec<u8>) -> String {
    let n = body.len();
    match rng.below(7) {
        0 => {
            let flips = 1 + rng.below(3);
            let mut at = Vec::new();
            for _ in 0..flips {
                let i = rng.below(n);
                body[i] ^= 1 << rng.below(8);
                at.push(i);
            }
            format!("bit flips at {at:?} of {n}")
        }
        1 => {
            let i = rng.below(n);
            let v = [0x00, 0xff, 0x7f, 0x80, 0x01, rng.next() as u8][rng.below(6)];
            body[i] = v;
            format!("byte {i} of {n} := {v:#04x}")
        }
        2 => {
            let i = rng.below(n.saturating_sub(3).max(1));
            let v = INTERESTING_I32[rng.below(INTERESTING_I32.len())];
            let end = (i + 4).min(n);
            body[i..end].copy_from_slice(&v.to_be_bytes()[..end - i]);
            format!("i32 at {i} of {n} := {v}")
        }
        3 => {
            let keep = rng.below(n);
            body.truncate(keep);
            format!("truncated to {keep} of {n}")
        }
        4 => {
            let i = rng.below(n + 1);
            let k = 1 + rng.below(8);
            let ins: Vec<u8> = (0..k).map(|_| rng.next() as u8).collect();
            body.splice(i..i, ins.iter().copied());
            format!("inserted {ins:02x?} at {i} of {n}")
        }
        5 => {
            // An overlong or huge varint where a length might be.
            let i = rng.below(n);
            let v: &[u8] = [
                &[0xff, 0xff, 0xff, 0xff, 0x0f][..],
                &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
                &[0xfe, 0xff, 0xff, 0xff, 0x0f],
            ][rng.below(3)];
            let end = (i + v.len()).min(n);
            body[i..end].copy_from_slice(&v[..end - i]);
            format!("varint {v:02x?} at {i} of {n}")
        }
        _ => {
            let i = rng.below(n);
            let len = 1 + rng.below((n - i).min(64));
            let span: Vec<u8> = body[i..i + len].to_vec();
            let at = rng.below(n + 1);
            body.splice(at..at, span);
            format!("duplicated {len} bytes from {i} at {at} of {n}")
        }
    }
}

/// Whether a (mutated) response frame of `api` at `version` names a host
/// other than loopback. Such a mutation is redrawn: the client would try to
/// resolve and connect to it, and these tests only talk to 127.0.0.0/8.
fn names_foreign_host(api: ApiKey, version: i16, frame: &[u8]) -> bool {
    fn decode<R: Request>(frame: &[u8], version: i16) -> Option<R::Response> {
        let mut r = Reader::new(bytes::Bytes::copy_from_slice(frame.get(8..)?));
        if R::response_header_version(version) >= 1 {
            kafkawire::protocol::frame::skip_tagged_fields(&mut r).ok()?;
        }
        <R::Response as Message>::decode(&mut r, version).ok()
    }
    let loopback = |h: &str| {
        h.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
    };
    match api {
        ApiKey::Metadata => decode::<MetadataRequest>(frame, version)
            .is_some_and(|m| m.brokers.iter().any(|b| !loopback(&b.host))),
        ApiKey::FindCoordinator => {
            decode::<FindCoordinatorRequest>(frame, version).is_some_and(|m| {
                !loopback(&m.host) || m.coordinators.iter().any(|c| !loopback(&c.host))
            })
        }
        _ => false,
    }
}

/// A mutator for the next response of `api`; `desc` receives what it did.
fn mutator(api: ApiKey, mut rng: Rng, desc: std::sync::Arc<std::sync::Mutex<String>>) -> Mutator {
    Box::new(move |frame: Vec<u8>, version: i16| {
        for _ in 0..100 {
            let mut body = frame[4..].to_vec();
            let d = mutate_body(&mut rng, &mut body);
            let mut f = Vec::with_capacity(body.len() + 4);
            f.extend_from_slice(&[0; 4]);
            f.extend_from_slice(&body);
            fix_size(&mut f);
            if !names_foreign_host(api, version, &f) {
                *desc.lock().unwrap() = d;
                return Reply {
                    frame: f,
                    close: false,
                };
            }
        }
        *desc.lock().unwrap() = "unchanged (every draw named a foreign host)".into();
        Reply {
            frame,
            close: false,
        }
    })
}

/// Tally of outcomes, printed at the end so a run shows what it covered.
#[derive(Default)]
struct Tally(BTreeMap<String, usize>);

impl Tally {
    fn add(&mut self, what: impl Into<String>) {
        *self.0.entry(what.into()).or_default() += 1;
    }
    fn err(&mut self, e: &kafkawire::Error) {
        let k = match e.kind() {
            kafkawire::ErrorKind::Broker(c) => format!("error {}", c.name()),
            k => format!("error {k:?}"),
        };
        self.add(k);
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.0 {
            writeln!(f, "  {v:6}  {k}")?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_fetch_mutations() {
    let n = total() * 6 / 10;
    let seed = base_seed() ^ 0xF;
    let broker = Broker::start(2).await;
    let o = Originals::fill(&broker, 2, 12);
    let ends: Vec<i64> = (0..2).map(|p| broker.state().log_end(p)).collect();
    let mut c = consumer(&broker);
    c.assign(&[tp(0), tp(1)]).unwrap();
    read_exactly(&mut c, &o, 0, 0, ends[0] as usize, &"before any mutation").await;
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    for i in 0..n {
        let desc = std::sync::Arc::new(std::sync::Mutex::new(String::from("not applied yet")));
        let p = rng.below(2) as i32;
        let from = rng.below(ends[p as usize] as usize) as i64;
        c.seek(&tp(p), from).unwrap();
        broker.mutate(
            ApiKey::Fetch,
            mutator(ApiKey::Fetch, Rng(rng.next()), desc.clone()),
        );
        // Poll until the mutated response was served, and a little after,
        // checking everything the client hands out.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut after = 0;
        let mut delivered = 0;
        while after < 2 {
            let d = desc.lock().unwrap().clone();
            let ctx = Ctx {
                driver: "Fetch",
                i,
                seed,
                desc: &d,
            };
            assert!(
                tokio::time::Instant::now() < deadline,
                "{ctx}: mutated response never served"
            );
            if broker.mutations_pending() == 0 {
                after += 1;
            }
            match c.poll(Duration::from_millis(5)).await {
                Ok(recs) => {
                    for r in &recs {
                        o.check(r, &ctx);
                    }
                    delivered += recs.len();
                }
                Err(e) => {
                    check_error(&e, &ctx);
                    tally.err(&e);
                }
            }
        }
        tally.add(if delivered > 0 {
            "records delivered around the mutation"
        } else {
            "no records delivered"
        });
        // Valid responses again: the client reads genuine data at the
        // right offsets.
        let d = desc.lock().unwrap().clone();
        let ctx = Ctx {
            driver: "Fetch",
            i,
            seed,
            desc: &d,
        };
        let q = rng.below(2) as i32;
        let at = rng.below(ends[q as usize] as usize) as i64;
        let want = 3.min(ends[q as usize] - at) as usize;
        read_exactly(&mut c, &o, q, at, want, &ctx).await;
        if i % 500 == 0 {
            assert_heap_bounded(&ctx.to_string());
        }
    }
    assert!(
        broker.state().unexpected.is_empty(),
        "unexpected requests {:?}",
        broker.state().unexpected
    );
    let peak = assert_heap_bounded("random fetch mutations");
    eprintln!(
        "{n} Fetch mutations (peak live heap of the process {} MiB):\n{tally}",
        peak >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_metadata_mutations() {
    let n = total() * 2 / 10;
    let seed = base_seed() ^ 0x3;
    let broker = Broker::start(3).await;
    let admin = admin(&broker);
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    for i in 0..n {
        let desc = std::sync::Arc::new(std::sync::Mutex::new(String::from("not applied yet")));
        broker.mutate(
            ApiKey::Metadata,
            mutator(ApiKey::Metadata, Rng(rng.next()), desc.clone()),
        );
        let r =
            tokio::time::timeout(Duration::from_secs(30), admin.describe_topics(&[TOPIC])).await;
        let d = desc.lock().unwrap().clone();
        let ctx = Ctx {
            driver: "Metadata",
            i,
            seed,
            desc: &d,
        };
        match r.unwrap_or_else(|_| panic!("{ctx}: describe_topics hung")) {
            Ok(_) => tally.add("accepted"),
            Err(e) => {
                check_error(&e, &ctx);
                tally.err(&e);
            }
        }
        assert_eq!(broker.mutations_pending(), 0, "{ctx}: mutation not served");
        let topics = tokio::time::timeout(Duration::from_secs(30), admin.describe_topics(&[TOPIC]))
            .await
            .unwrap_or_else(|_| panic!("{ctx}: describe_topics hung after the mutation"))
            .unwrap_or_else(|e| {
                panic!("{ctx}: valid metadata not accepted after the mutation: {e}")
            });
        assert_eq!(topics[0].partitions.len(), 3, "{ctx}: {:?}", topics[0]);
    }
    assert_heap_bounded("random metadata mutations");
    eprintln!("{n} Metadata mutations:\n{tally}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_produce_mutations() {
    let n = total() * 2 / 10;
    let seed = base_seed() ^ 0x0;
    let broker = Broker::start(2).await;
    let mut producer = producer(&broker);
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    let mut sent = std::collections::HashSet::new();
    let mut acked = Vec::new();
    for i in 0..n {
        let desc = std::sync::Arc::new(std::sync::Mutex::new(String::from("not applied yet")));
        broker.mutate(
            ApiKey::Produce,
            mutator(ApiKey::Produce, Rng(rng.next()), desc.clone()),
        );
        let key = format!("m{i}");
        let p = rng.below(2) as i32;
        let r = send(&producer, &key, p).await;
        sent.insert(key.clone());
        let d = desc.lock().unwrap().clone();
        let ctx = Ctx {
            driver: "Produce",
            i,
            seed,
            desc: &d,
        };
        match r {
            Some(Ok(())) => {
                tally.add("acknowledged");
                acked.push(key);
            }
            Some(Err(e)) => {
                check_error_or_fatal(&e, &ctx);
                tally.err(&e);
                if e.is_fatal() {
                    tally.add("producer rebuilt after a fatal error");
                    producer = crate::common::producer(&broker);
                }
            }
            None => panic!("{ctx}: delivery hung"),
        }
        assert_eq!(broker.mutations_pending(), 0, "{ctx}: mutation not served");
        // Valid responses again: a record is acknowledged.
        let key = format!("v{i}");
        sent.insert(key.clone());
        match send(&producer, &key, p).await {
            Some(Ok(())) => acked.push(key),
            other => panic!("{ctx}: valid produce failed after the mutation: {other:?}"),
        }
    }
    // What the broker holds: only records the application sent, and every
    // acknowledged one.
    let st = broker.state();
    let mut stored = std::collections::HashSet::new();
    for p in 0..2 {
        for b in &st.logs[p] {
            for batch in kafkawire::record::Batches::new(b.bytes.clone()) {
                for rec in batch.unwrap().records().unwrap() {
                    let rec = rec.unwrap();
                    let k = String::from_utf8(rec.key().unwrap().to_vec()).unwrap();
                    assert!(sent.contains(&k), "broker holds a record never sent: {k}");
                    assert_eq!(rec.value(), Some(k.as_bytes()));
                    stored.insert(k);
                }
            }
        }
    }
    for k in &acked {
        assert!(
            stored.contains(k),
            "acknowledged record {k} is not in the log"
        );
    }
    assert!(
        st.unexpected.is_empty(),
        "unexpected requests {:?}",
        st.unexpected
    );
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    drop(st);
    assert_heap_bounded("random produce mutations");
    eprintln!("{n} Produce mutations:\n{tally}");
}

/// Sends one record whose value is its key; `None` if delivery hung.
async fn send(p: &Producer, key: &str, partition: i32) -> Option<kafkawire::Result<()>> {
    let fut = async {
        let ack = p
            .send(
                ProducerRecord::new(TOPIC)
                    .key(key)
                    .value(key)
                    .partition(partition),
            )
            .await?;
        ack.await.map(|_| ())
    };
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .ok()
}

/// A producer may also end fatally (a mutated error code can say
/// "fenced"); that is a typed outcome too, and the producer says so.
fn check_error_or_fatal(e: &kafkawire::Error, ctx: &dyn fmt::Display) {
    if !e.is_fatal() {
        check_error(e, ctx);
    }
}

/// The APIs around the data path, with a smaller share of the mutations
/// (5%): ApiVersions (the handshake), FindCoordinator with OffsetFetch
/// (`committed`), ListOffsets (`end_offsets`) and InitProducerId (a new
/// producer's first send).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_mutations_of_the_other_apis() {
    use kafkawire::net::conn::ConnectionConfig;
    use kafkawire::net::BrokerConnection;
    let n = total() / 20;
    let seed = base_seed() ^ 0x5;
    let broker = Broker::start(2).await;
    Originals::fill(&broker, 2, 3);
    let end0 = broker.state().log_end(0);
    broker.state().committed.insert(0, 5);
    let c = kafkawire::consumer::Consumer::builder()
        .bootstrap_servers(&broker.addr)
        .group_id("hostile-group")
        .enable_auto_commit(false)
        .set("retry.backoff.ms", "1")
        .set("retry.backoff.max.ms", "5")
        .set("reconnect.backoff.ms", "1")
        .set("reconnect.backoff.max.ms", "5")
        .set("request.timeout.ms", "5000")
        .set("default.api.timeout.ms", "10000")
        .build()
        .unwrap();
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    for i in 0..n {
        let desc = std::sync::Arc::new(std::sync::Mutex::new(String::from("not applied yet")));
        let api = [
            ApiKey::ApiVersions,
            ApiKey::FindCoordinator,
            ApiKey::OffsetFetch,
            ApiKey::ListOffsets,
            ApiKey::InitProducerId,
        ][rng.below(5)];
        broker.mutate(api, mutator(api, Rng(rng.next()), desc.clone()));
        let outcome: kafkawire::Result<()> = tokio::time::timeout(Duration::from_secs(60), async {
            match api {
                ApiKey::ApiVersions => BrokerConnection::connect(
                    &broker.addr,
                    "hostile".into(),
                    &ConnectionConfig::default(),
                    Duration::from_secs(5),
                )
                .await
                .map(|_| ()),
                ApiKey::FindCoordinator | ApiKey::OffsetFetch => {
                    c.committed(&[tp(0)]).await.map(|_| ())
                }
                ApiKey::ListOffsets => c.end_offsets(&[tp(0)]).await.map(|_| ()),
                _ => {
                    let p = crate::common::producer(&broker);
                    let r = send(&p, &format!("i{i}"), 1).await.expect("delivery hung");
                    let _ = p.close(Duration::from_secs(5)).await;
                    r
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{api:?} mutation #{i} (seed {seed:#x}): call hung"));
        let d = desc.lock().unwrap().clone();
        let ctx = Ctx {
            driver: api.name(),
            i,
            seed,
            desc: &d,
        };
        match outcome {
            Ok(()) => tally.add(format!("{} accepted", api.name())),
            Err(e) => {
                check_error_or_fatal(&e, &ctx);
                tally.err(&e);
            }
        }
        // A request of that API may not have been needed (cached
        // coordinator): drop the mutation, then check valid answers work.
        broker.state().mutations.clear();
        let committed = c
            .committed(&[tp(0)])
            .await
            .unwrap_or_else(|e| panic!("{ctx}: committed() after: {e}"));
        assert_eq!(
            committed[&tp(0)].as_ref().map(|o| o.offset),
            Some(5),
            "{ctx}"
        );
        let ends = c
            .end_offsets(&[tp(0)])
            .await
            .unwrap_or_else(|e| panic!("{ctx}: end_offsets() after: {e}"));
        assert_eq!(ends[&tp(0)], end0, "{ctx}");
    }
    let st = broker.state();
    assert!(
        st.unexpected.is_empty(),
        "unexpected requests {:?}",
        st.unexpected
    );
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    drop(st);
    assert_heap_bounded("random mutations of the other APIs");
    eprintln!("{n} mutations of the other APIs:\n{tally}");
}
