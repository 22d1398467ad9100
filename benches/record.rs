//! Record batch encode/decode throughput, kafkawire against the
//! `kafka-protocol` crate as the baseline, for ~64 KiB batches of 100-byte
//! and 1 KiB records, uncompressed and per codec.
//!
//! Throughput is reported in bytes of uncompressed batch; records/s follow
//! from the record count printed per group (see benches/README.md and
//! benches/table.py).

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use indexmap::IndexMap;
use kafka_protocol::records as kp;
use kafkawire::record::{BatchBuilder, BatchOptions, Batches, Compression, NO_HEADERS};

const BATCH_BYTES: usize = 64 * 1024;

struct Input {
    keys: Vec<[u8; 8]>,
    values: Vec<Vec<u8>>,
    theirs: Vec<kp::Record>,
    uncompressed_len: usize,
}

/// JSON-like values: compressible about as well as typical event data.
fn value(i: usize, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 64);
    let mut n = i as u64;
    while v.len() < len {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let field = format!(
            "{{\"user\":{},\"event\":\"click\",\"ts\":{},\"v\":{}}}",
            n % 100_000,
            1_700_000_000_000u64 + (n >> 40),
            n >> 50
        );
        v.extend_from_slice(field.as_bytes());
    }
    v.truncate(len);
    v
}

fn input(value_len: usize) -> Input {
    // Enough records to fill ~64 KiB uncompressed.
    let per_record = value_len + 8 + 12;
    let n = BATCH_BYTES / per_record;
    let keys: Vec<[u8; 8]> = (0..n).map(|i| (i as u64).to_be_bytes()).collect();
    let values: Vec<Vec<u8>> = (0..n).map(|i| value(i, value_len)).collect();
    let theirs = (0..n)
        .map(|i| kp::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 1000,
            producer_epoch: 1,
            timestamp_type: kp::TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::copy_from_slice(&keys[i])),
            value: Some(Bytes::from(values[i].clone())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut inp = Input {
        keys,
        values,
        theirs,
        uncompressed_len: 0,
    };
    inp.uncompressed_len = ours_encode(&inp, Compression::None).len();
    inp
}

fn ours_encode(inp: &Input, c: Compression) -> Bytes {
    let mut b = BatchBuilder::new(BatchOptions {
        producer_id: 1000,
        producer_epoch: 1,
        base_sequence: 0,
        compression: c,
        // A batch.size that holds the whole ~64 KiB batch.
        size_limit: BATCH_BYTES + 4096,
        ..BatchOptions::default()
    });
    for (i, (k, v)) in inp.keys.iter().zip(&inp.values).enumerate() {
        b.append(1_700_000_000_000 + i as i64, Some(k), Some(v), NO_HEADERS);
    }
    b.finish().unwrap()
}

fn theirs_encode(inp: &Input, c: Compression) -> Bytes {
    let mut buf = BytesMut::with_capacity(inp.uncompressed_len);
    kp::RecordBatchEncoder::encode(
        &mut buf,
        &inp.theirs,
        &kp::RecordEncodeOptions {
            version: 2,
            compression: kp_codec(c),
        },
    )
    .unwrap();
    buf.freeze()
}

/// Decodes every record and reads key and value as borrowed slices.
fn ours_decode(batch: &Bytes) -> usize {
    let mut n = 0;
    for b in Batches::new(batch.clone()) {
        for r in &b.unwrap().record_set().unwrap() {
            let r = r.unwrap();
            n += r.key().map_or(0, <[u8]>::len)
                + r.value().map_or(0, <[u8]>::len)
                + r.offset as usize;
        }
    }
    n
}

/// Decodes every record and takes key and value as owned `Bytes` (what
/// the baseline always produces, and what the consumer hands out).
fn ours_decode_owned(batch: &Bytes) -> usize {
    let mut n = 0;
    for b in Batches::new(batch.clone()) {
        for r in &b.unwrap().record_set().unwrap() {
            let r = r.unwrap();
            n += r.key_bytes().map_or(0, |k| k.len())
                + r.value_bytes().map_or(0, |v| v.len())
                + r.offset as usize;
        }
    }
    n
}

fn theirs_decode(batch: &Bytes) -> usize {
    let mut buf = batch.clone();
    let sets = kp::RecordBatchDecoder::decode_all(&mut buf).unwrap();
    let mut n = 0;
    for s in sets {
        for r in s.records {
            n += r.key.map_or(0, |k| k.len()) + r.value.map_or(0, |v| v.len()) + r.offset as usize;
        }
    }
    n
}

fn kp_codec(c: Compression) -> kp::Compression {
    match c {
        Compression::None => kp::Compression::None,
        Compression::Gzip => kp::Compression::Gzip,
        Compression::Snappy => kp::Compression::Snappy,
        Compression::Lz4 => kp::Compression::Lz4,
        Compression::Zstd => kp::Compression::Zstd,
    }
}

fn benches(c: &mut Criterion) {
    for value_len in [100usize, 1024] {
        let inp = input(value_len);
        let size = if value_len == 100 { "100B" } else { "1KiB" };
        eprintln!(
            "records per batch ({size}): {}, uncompressed batch bytes: {}",
            inp.keys.len(),
            inp.uncompressed_len
        );
        for codec in Compression::ALL {
            // Same input bytes for both decoders: the baseline's encoding
            // (the C codecs for lz4/zstd, as the Java client would write).
            let encoded = theirs_encode(&inp, codec);
            assert_eq!(ours_decode(&encoded), theirs_decode(&encoded));
            assert_eq!(ours_decode_owned(&encoded), theirs_decode(&encoded));
            assert_eq!(
                ours_decode(&ours_encode(&inp, codec)),
                theirs_decode(&encoded)
            );

            let mut g = c.benchmark_group(format!("encode/{codec}/{size}"));
            g.throughput(Throughput::Bytes(inp.uncompressed_len as u64));
            g.bench_function(BenchmarkId::from_parameter("kafkawire"), |b| {
                b.iter(|| ours_encode(black_box(&inp), codec))
            });
            g.bench_function(BenchmarkId::from_parameter("kafka-protocol"), |b| {
                b.iter(|| theirs_encode(black_box(&inp), codec))
            });
            g.finish();

            let mut g = c.benchmark_group(format!("decode/{codec}/{size}"));
            g.throughput(Throughput::Bytes(inp.uncompressed_len as u64));
            g.bench_function(BenchmarkId::from_parameter("kafkawire"), |b| {
                b.iter(|| ours_decode(black_box(&encoded)))
            });
            g.bench_function(BenchmarkId::from_parameter("kafkawire-owned"), |b| {
                b.iter(|| ours_decode_owned(black_box(&encoded)))
            });
            g.bench_function(BenchmarkId::from_parameter("kafka-protocol"), |b| {
                b.iter(|| theirs_decode(black_box(&encoded)))
            });
            g.finish();
        }
    }
}

criterion_group! {
    name = record;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}

/// Interleaved A/B ratios, robust to the load swings of a shared machine:
/// each round times ours and the baseline back to back (alternating which
/// goes first) and the table reports the median of the per-round ratios.
/// Run with `KAFKAWIRE_AB=1 cargo bench --bench record` (or
/// `KAFKAWIRE_AB=none,lz4` for some codecs only).
fn ab_table() {
    use std::time::Instant;
    // `KAFKAWIRE_AB=none,zstd` limits the table to those codecs.
    let only = std::env::var("KAFKAWIRE_AB").unwrap_or_default();
    let only = if only == "1" { String::new() } else { only };
    const ROUNDS: usize = 41;
    fn per_iter(f: &mut dyn FnMut() -> usize, iters: u32) -> f64 {
        let t = Instant::now();
        for _ in 0..iters {
            black_box(f());
        }
        t.elapsed().as_secs_f64() / iters as f64
    }
    fn ab(ours: &mut dyn FnMut() -> usize, theirs: &mut dyn FnMut() -> usize) -> (f64, f64, f64) {
        // Size each half of a round to about 10 ms.
        let probe = per_iter(ours, 3).max(per_iter(theirs, 3)).max(1e-7);
        let iters = ((0.01 / probe) as u32).clamp(1, 10_000);
        let (mut ratios, mut ts_ours, mut ts_theirs) = (vec![], vec![], vec![]);
        for round in 0..ROUNDS {
            let (a, b) = if round % 2 == 0 {
                let a = per_iter(ours, iters);
                (a, per_iter(theirs, iters))
            } else {
                let b = per_iter(theirs, iters);
                (per_iter(ours, iters), b)
            };
            ratios.push(b / a);
            ts_ours.push(a);
            ts_theirs.push(b);
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        (med(&mut ratios), med(&mut ts_ours), med(&mut ts_theirs))
    }
    println!("| op | codec | record size | records/batch | kafkawire | kafka-protocol | ratio (median of {ROUNDS} interleaved rounds) |");
    println!("|---|---|---|---|---|---|---|");
    for value_len in [100usize, 1024] {
        let inp = input(value_len);
        let size = if value_len == 100 { "100 B" } else { "1 KiB" };
        let n = inp.keys.len() as f64;
        let bytes = inp.uncompressed_len as f64;
        let rate = |t: f64| {
            format!(
                "{:.0} MiB/s, {:.2} M rec/s",
                bytes / t / (1 << 20) as f64,
                n / t / 1e6
            )
        };
        for codec in Compression::ALL {
            if !only.is_empty() && !only.split(',').any(|c| c == codec.to_string()) {
                continue;
            }
            let encoded = theirs_encode(&inp, codec);
            let rows: [(&str, (f64, f64, f64)); 3] = [
                (
                    "encode",
                    ab(&mut || ours_encode(&inp, codec).len(), &mut || {
                        theirs_encode(&inp, codec).len()
                    }),
                ),
                (
                    "decode",
                    ab(&mut || ours_decode(&encoded), &mut || {
                        theirs_decode(&encoded)
                    }),
                ),
                (
                    "decode, owned `Bytes`",
                    ab(&mut || ours_decode_owned(&encoded), &mut || {
                        theirs_decode(&encoded)
                    }),
                ),
            ];
            for (op, (ratio, a, b)) in rows {
                println!(
                    "| {op} | {codec} | {size} | {n} | {} | {} | **{ratio:.2}x** |",
                    rate(a),
                    rate(b)
                );
            }
        }
    }
    // The floor of any uncompressed encoder that copies records into the
    // batch: copying the key and value bytes plus the CRC-32C of the batch
    // (with the fastest CRC-32C available here, ours).
    println!();
    println!("| uncompressed encode floor (copy key+value bytes, CRC-32C of the batch) | per batch | rate |");
    println!("|---|---|---|");
    for value_len in [100usize, 1024] {
        let inp = input(value_len);
        let floor = || {
            let mut v = Vec::with_capacity(inp.uncompressed_len);
            for (k, val) in inp.keys.iter().zip(&inp.values) {
                v.extend_from_slice(k);
                v.extend_from_slice(val);
            }
            v.resize(inp.uncompressed_len, 0);
            kafkawire::record::crc32c(&v) as usize
        };
        let mut f = floor;
        let (_, t, _) = ab(&mut f, &mut || 0);
        println!(
            "| {} records of {value_len} B | {:.1} us | {:.0} MiB/s |",
            inp.keys.len(),
            t * 1e6,
            inp.uncompressed_len as f64 / t / (1 << 20) as f64
        );
    }
    // The two parts of that floor on one ~64 KiB batch: CRC-32C (the
    // `crc32c` crate, which the baseline uses, and ours) and a plain copy.
    println!();
    println!("| one 64 KiB buffer | per buffer | rate |");
    println!("|---|---|---|");
    let data = value(7, BATCH_BYTES);
    let mut dst = vec![0u8; BATCH_BYTES];
    let rows: [(&str, &mut dyn FnMut() -> usize); 3] = [
        ("CRC-32C, `crc32c` crate (the baseline's)", &mut || {
            crc32c::crc32c(black_box(&data)) as usize
        }),
        ("CRC-32C, kafkawire (`record::crc32c`)", &mut || {
            kafkawire::record::crc32c(black_box(&data)) as usize
        }),
        ("memcpy", &mut || {
            dst.copy_from_slice(black_box(&data));
            black_box(&dst)[BATCH_BYTES / 2] as usize
        }),
    ];
    for (what, f) in rows {
        let (_, t, _) = ab(f, &mut || 0);
        println!(
            "| {what} | {:.2} us | {:.1} GB/s |",
            t * 1e6,
            BATCH_BYTES as f64 / t / 1e9
        );
    }
}

fn main() {
    if std::env::var_os("KAFKAWIRE_AB").is_some() {
        ab_table();
        return;
    }
    record();
    Criterion::default().configure_from_args().final_summary();
}
