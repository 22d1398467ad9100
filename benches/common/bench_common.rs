//! What every Rust client of the peer benchmark shares (included with
//! `#[path]` by kafkawire-bench and rdkafka-bench, so the C peer needs no
//! dependency on the kafkawire crate): the command line, the payloads, the
//! checksum and the one JSON line of results. `benches/README.md` states the
//! contract; the Go and Java clients implement the same one.

use std::collections::HashMap;
use std::time::Duration;

/// Distinct payloads cycled through; more than one 64 KiB batch holds, so a
/// compressed batch never sees the same payload twice.
pub const POOL: usize = 1024;

/// Latency workload pacing, the same in every client: a record is sent as
/// soon as it is due, and the pacing thread sleeps only when the next record
/// is at least this far away (microseconds). Sleeping for every record cost
/// the Rust and Java clients more CPU than producing it; records leave in
/// groups at most this far apart, far below the milliseconds measured.
pub const PACE_SLEEP_MIN_US: u64 = 100;
/// Bit set in the index of records written by transactions that the
/// pre-fill aborts: a read_committed reader must never see one.
pub const ABORTED_BIT: u64 = 1 << 62;

/// The workload a client process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Full-rate produce of `count` records.
    Produce,
    /// Transactional produce, committing every `txn_every` records (and
    /// aborting every `abort_every`-th transaction, when set).
    Txn,
    /// Produce at `rate` records/s, recording send-to-ack latency.
    Latency,
    /// Read `count` records of `partitions` partitions from the earliest offset.
    Consume,
    /// Harness helpers (kafkawire's client only): create the topic with
    /// `partitions` partitions, or delete it.
    CreateTopic,
    DeleteTopic,
}

/// The parsed command line (`--name value` pairs).
#[derive(Debug, Clone)]
pub struct Args {
    pub bootstrap: String,
    pub workload: Workload,
    pub topic: String,
    pub partitions: i32,
    pub count: u64,
    pub size: usize,
    pub compression: String,
    pub txn_every: u64,
    pub abort_every: u64,
    pub rate: u64,
    /// Latency workload: the first `lat_skip` records are sent but their
    /// latency is not recorded (the producer's start-up: connections,
    /// metadata, producer id), so the percentiles describe the steady state.
    pub lat_skip: u64,
    pub read_committed: bool,
    pub transactional_id: String,
    /// Stop consuming after this long without a new record.
    pub idle: Duration,
}

impl Args {
    /// Parses `std::env::args`; exits with a usage message on bad input.
    pub fn parse() -> Args {
        let mut m: HashMap<String, String> = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(k) = it.next() {
            let Some(name) = k.strip_prefix("--") else {
                usage(&format!("unexpected argument `{k}`"))
            };
            let Some(v) = it.next() else {
                usage(&format!("--{name} needs a value"))
            };
            m.insert(name.to_string(), v);
        }
        let get = |k: &str, d: &str| m.get(k).cloned().unwrap_or_else(|| d.to_string());
        let num = |k: &str, d: &str| -> u64 {
            get(k, d)
                .parse()
                .unwrap_or_else(|_| usage(&format!("--{k} expects a non-negative integer")))
        };
        let workload = match get("workload", "").as_str() {
            "produce" => Workload::Produce,
            "txn" => Workload::Txn,
            "latency" => Workload::Latency,
            "consume" => Workload::Consume,
            "create-topic" => Workload::CreateTopic,
            "delete-topic" => Workload::DeleteTopic,
            w => usage(&format!(
                "--workload `{w}`: expected produce, txn, latency or consume"
            )),
        };
        let a = Args {
            bootstrap: get("bootstrap", "127.0.0.1:9092"),
            workload,
            topic: get("topic", ""),
            partitions: num("partitions", "1") as i32,
            count: num("count", "0"),
            size: num("size", "100") as usize,
            compression: get("compression", "none"),
            txn_every: num("txn-every", "1000").max(1),
            abort_every: num("abort-every", "0"),
            rate: num("rate", "0"),
            lat_skip: num("lat-skip", "0"),
            read_committed: get("isolation", "read_uncommitted") == "read_committed",
            transactional_id: get("transactional-id", "bench-txn"),
            idle: Duration::from_millis(num("idle-ms", "15000")),
        };
        if a.topic.is_empty() {
            usage("--topic is required");
        }
        if a.size < 16 {
            usage("--size must be at least 16 (index and tail)");
        }
        if a.workload == Workload::Latency && a.rate == 0 {
            usage("--rate is required for the latency workload");
        }
        a
    }
}

fn usage(why: &str) -> ! {
    eprintln!("{why}\nusage: --workload produce|txn|latency|consume --topic T --count N [--size B] [--partitions P] [--compression none|lz4|zstd] [--txn-every N] [--abort-every K] [--rate R] [--lat-skip N] [--isolation read_committed] [--bootstrap H:P]");
    std::process::exit(2)
}

/// `POOL` payloads of `size` bytes: letters from a 64-bit LCG (5 bits of
/// entropy per byte, so compressible like text). Record `i` sends
/// `pool[i % POOL]` with its first 8 bytes replaced by `i` big-endian.
pub fn payload_pool(size: usize) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..POOL)
        .map(|_| {
            (0..size)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    0x41 + (x >> 59) as u8
                })
                .collect()
        })
        .collect()
}

/// One record's contribution to the checksum: its index mixed with the
/// last 8 bytes of its value (so content, not only the index, is checked).
pub fn record_sum(value: &[u8]) -> (u64, u64) {
    let idx = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
    let tail = u64::from_be_bytes(value[value.len() - 8..].try_into().expect("8 bytes"));
    (idx, idx.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ tail)
}

/// What a consumer checks as it reads: count, duplicates, records from
/// aborted transactions ("foreign"), out-of-range indices, checksum.
pub struct ReadCheck {
    seen: Vec<u64>,
    pub records: u64,
    pub bytes: u64,
    pub dups: u64,
    pub aborted: u64,
    pub bad: u64,
    pub checksum: u64,
}

impl ReadCheck {
    pub fn new(count: u64) -> ReadCheck {
        ReadCheck {
            seen: vec![0; count.div_ceil(64) as usize],
            records: 0,
            bytes: 0,
            dups: 0,
            aborted: 0,
            bad: 0,
            checksum: 0,
        }
    }

    /// Accounts one record value (`None` for a null value).
    pub fn add(&mut self, value: Option<&[u8]>) {
        self.records += 1;
        let Some(v) = value.filter(|v| v.len() >= 16) else {
            self.bad += 1;
            return;
        };
        self.bytes += v.len() as u64;
        let (idx, sum) = record_sum(v);
        if idx & ABORTED_BIT != 0 {
            self.aborted += 1;
            return;
        }
        let Some(word) = self.seen.get_mut((idx / 64) as usize) else {
            self.bad += 1;
            return;
        };
        let bit = 1u64 << (idx % 64);
        if *word & bit != 0 {
            self.dups += 1;
            return;
        }
        *word |= bit;
        self.checksum = self.checksum.wrapping_add(sum);
    }

    /// Records that count toward the expected total (unique, committed).
    pub fn unique(&self) -> u64 {
        self.records - self.dups - self.aborted - self.bad
    }
}

/// Nearest-rank percentile of sorted microsecond samples, in milliseconds.
pub fn pct_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return -1.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

/// The one JSON line a client prints (fields in `benches/README.md`).
#[derive(Default)]
pub struct Report {
    pub records: u64,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub checksum: u64,
    pub errors: u64,
    pub latency_us: Vec<u32>,
    /// Latency workload: from the first send to the first acknowledgement,
    /// the producer's start-up as an application sees it.
    pub first_ack_ms: Option<f64>,
    pub commit_us: Vec<u32>,
    pub read: Option<ReadCheck>,
}

impl Report {
    pub fn print(mut self, client: &str, a: &Args) {
        let w = match a.workload {
            Workload::Produce => "produce",
            Workload::Txn => "txn",
            Workload::Latency => "latency",
            Workload::Consume => "consume",
            Workload::CreateTopic => "create-topic",
            Workload::DeleteTopic => "delete-topic",
        };
        let mut s = format!(
            "{{\"client\":\"{client}\",\"workload\":\"{w}\",\"records\":{},\"bytes\":{},\"elapsed_s\":{:.6},\"checksum\":\"{}\",\"errors\":{}",
            self.records, self.bytes, self.elapsed_s, self.checksum, self.errors
        );
        for (name, v) in [
            ("lat", &mut self.latency_us),
            ("commit", &mut self.commit_us),
        ] {
            if !v.is_empty() {
                v.sort_unstable();
                let mean_ms = v.iter().map(|&us| us as f64).sum::<f64>() / v.len() as f64 / 1000.0;
                let over_10ms = v.iter().filter(|&&us| us > 10_000).count();
                s += &format!(
                    ",\"{name}_n\":{},\"{name}_p50_ms\":{:.3},\"{name}_p99_ms\":{:.3},\"{name}_p999_ms\":{:.3},\"{name}_mean_ms\":{:.3},\"{name}_over10ms_n\":{}",
                    v.len(),
                    pct_ms(v, 50.0),
                    pct_ms(v, 99.0),
                    pct_ms(v, 99.9),
                    mean_ms,
                    over_10ms
                );
            }
        }
        if let Some(ms) = self.first_ack_ms {
            s += &format!(",\"first_ack_ms\":{ms:.3}");
        }
        if let Some(r) = &self.read {
            s += &format!(
                ",\"unique\":{},\"dups\":{},\"aborted_seen\":{},\"bad\":{}",
                r.unique(),
                r.dups,
                r.aborted,
                r.bad
            );
        }
        println!("{s}}}");
    }
}
