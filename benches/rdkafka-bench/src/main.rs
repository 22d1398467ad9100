//! The librdkafka peer (through the `rdkafka` crate) of the client
//! benchmark: the same command line and JSON line as kafkawire's client
//! (`benches/README.md`). Producing uses `ThreadedProducer` (librdkafka's
//! own threads poll delivery reports); consuming uses `BaseConsumer`.

#[path = "../../common/bench_common.rs"]
mod common;

use common::{Args, ReadCheck, Report, Workload, ABORTED_BIT, POOL};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Counts delivery reports; in the latency workload the opaque is the send
/// time in microseconds since `t0` (with [`UNRECORDED`] set for the records
/// of the start-up that `--lat-skip` leaves out) and the latency is recorded.
struct Ctx {
    t0: Instant,
    acked: AtomicU64,
    errors: AtomicU64,
    latency_us: Mutex<Vec<u32>>,
    record_latency: bool,
    /// Microseconds from `t0` to the first acknowledgement (0: none yet).
    first_ack_us: AtomicU64,
}

/// Opaque flag: acknowledged, but its latency is not recorded.
const UNRECORDED: usize = 1 << 63;

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = usize;
    fn delivery(&self, r: &DeliveryResult<'_>, sent_us: usize) {
        match r {
            Ok(_) => {
                if self.record_latency {
                    let now = self.t0.elapsed().as_micros() as usize;
                    let _ = self.first_ack_us.compare_exchange(
                        0,
                        now.max(1) as u64,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    if sent_us & UNRECORDED == 0 {
                        self.latency_us
                            .lock()
                            .unwrap()
                            .push(now.saturating_sub(sent_us) as u32);
                    }
                }
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                if self.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("rdk-client: delivery failed: {e}");
                }
            }
        }
    }
}

fn main() {
    let a = Args::parse();
    let r = match a.workload {
        Workload::Produce | Workload::Latency => produce(&a),
        Workload::Txn => txn(&a),
        Workload::Consume => consume(&a),
        Workload::CreateTopic | Workload::DeleteTopic => {
            Err("topic admin is kafkawire's client's job".into())
        }
    };
    match r {
        Ok(rep) => rep.print("librdkafka", &a),
        Err(e) => {
            eprintln!("rdk-client: {e}");
            std::process::exit(1)
        }
    }
}

/// The benchmark's producer settings (the same for every client).
fn producer(a: &Args, txn: bool, record_latency: bool) -> Res<ThreadedProducer<Ctx>> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &a.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("max.in.flight.requests.per.connection", "5")
        .set("linger.ms", "5")
        .set("batch.size", (64 * 1024).to_string())
        // buffer.memory: librdkafka bounds its queue in KiB.
        .set("queue.buffering.max.kbytes", (64 * 1024).to_string())
        .set("queue.buffering.max.messages", "10000000")
        .set("compression.type", &a.compression)
        // Java's default partitioner for null keys: sticky, not random.
        .set("sticky.partitioning.linger.ms", "5");
    if txn {
        c.set("transactional.id", &a.transactional_id);
    }
    let ctx = Ctx {
        t0: Instant::now(),
        acked: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        latency_us: Mutex::new(Vec::with_capacity(if record_latency {
            a.count as usize
        } else {
            0
        })),
        record_latency,
        first_ack_us: AtomicU64::new(0),
    };
    Ok(c.create_with_context(ctx)?)
}

/// Enqueues one record, waiting while the local queue is full.
fn send(p: &ThreadedProducer<Ctx>, topic: &str, value: &[u8], opaque: usize) -> Res<()> {
    let mut rec = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, opaque).payload(value);
    loop {
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

fn fill(pool: &mut [Vec<u8>], i: u64) -> (usize, u64) {
    let slot = (i % POOL as u64) as usize;
    pool[slot][..8].copy_from_slice(&i.to_be_bytes());
    (slot, common::record_sum(&pool[slot]).1)
}

fn produce(a: &Args) -> Res<Report> {
    let lat = a.workload == Workload::Latency;
    let p = producer(a, false, lat)?;
    let mut pool = common::payload_pool(a.size);
    let mut rep = Report::default();
    let t0 = Instant::now();
    let t0_ctx = p.context().t0;
    for i in 0..a.count {
        if lat {
            // Fixed offered rate: record i is due at i / rate seconds.
            let due = t0 + Duration::from_secs_f64(i as f64 / a.rate as f64);
            let now = Instant::now();
            if due > now + Duration::from_micros(common::PACE_SLEEP_MIN_US) {
                std::thread::sleep(due - now);
            }
        }
        let (slot, sum) = fill(&mut pool, i);
        rep.checksum = rep.checksum.wrapping_add(sum);
        let skip = if i < a.lat_skip { UNRECORDED } else { 0 };
        send(
            &p,
            &a.topic,
            &pool[slot],
            t0_ctx.elapsed().as_micros() as usize | skip,
        )?;
    }
    p.flush(Duration::from_secs(120))?;
    rep.elapsed_s = t0.elapsed().as_secs_f64();
    let ctx = p.context();
    rep.errors = ctx.errors.load(Ordering::Relaxed) + a.count - ctx.acked.load(Ordering::Relaxed);
    rep.latency_us = std::mem::take(&mut *ctx.latency_us.lock().unwrap());
    if lat {
        // From the first send (`t0`), like the other clients; the context's
        // clock started at the producer's creation, just before.
        let first = ctx.first_ack_us.load(Ordering::Relaxed);
        let created_to_t0 = t0.duration_since(t0_ctx).as_micros() as u64;
        rep.first_ack_ms = (first > 0).then(|| first.saturating_sub(created_to_t0) as f64 / 1000.0);
    }
    rep.records = a.count;
    rep.bytes = a.count * a.size as u64;
    Ok(rep)
}

fn txn(a: &Args) -> Res<Report> {
    let p = producer(a, true, false)?;
    let t = Duration::from_secs(60);
    p.init_transactions(t)?;
    let mut pool = common::payload_pool(a.size);
    let mut rep = Report::default();
    let t0 = Instant::now();
    let (mut i, mut aborted_idx, mut n_txn) = (0u64, 0u64, 0u64);
    while i < a.count {
        n_txn += 1;
        let abort = a.abort_every > 0 && n_txn % a.abort_every == 0;
        p.begin_transaction()?;
        let end = (i + a.txn_every).min(a.count);
        for _ in i..end {
            let idx = if abort {
                aborted_idx += 1;
                ABORTED_BIT | aborted_idx
            } else {
                i += 1;
                i - 1
            };
            let (slot, sum) = fill(&mut pool, idx);
            if !abort {
                rep.checksum = rep.checksum.wrapping_add(sum);
            }
            send(&p, &a.topic, &pool[slot], 0)?;
        }
        let c0 = Instant::now();
        if abort {
            p.abort_transaction(t)?;
        } else {
            p.commit_transaction(t)?;
            rep.commit_us.push(c0.elapsed().as_micros() as u32);
        }
    }
    rep.elapsed_s = t0.elapsed().as_secs_f64();
    rep.errors = p.context().errors.load(Ordering::Relaxed);
    rep.records = a.count;
    rep.bytes = a.count * a.size as u64;
    Ok(rep)
}

fn consume(a: &Args) -> Res<Report> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        .set("group.id", "bench-unused")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "isolation.level",
            if a.read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..a.partitions {
        tpl.add_partition_offset(&a.topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let mut check = ReadCheck::new(a.count);
    let t0 = Instant::now();
    let mut last = Instant::now();
    while check.unique() < a.count && last.elapsed() < a.idle {
        match c.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                last = Instant::now();
                check.add(m.payload());
            }
            Some(Err(e)) => eprintln!("rdk-client: consume error: {e}"),
            None => {}
        }
    }
    let elapsed_s = t0.elapsed().as_secs_f64();
    Ok(Report {
        records: check.records,
        bytes: check.bytes,
        elapsed_s,
        checksum: check.checksum,
        read: Some(check),
        ..Report::default()
    })
}
