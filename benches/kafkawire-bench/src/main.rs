//! kafkawire's client of the peer benchmark: one workload per process, one
//! JSON line of results on stdout (contract in `benches/README.md`).
//! Throughput uses `send_and_forget` + `flush`; latency uses `send`'s
//! delivery futures.

#[path = "../../common/bench_common.rs"]
mod common;

use common::{Args, ReadCheck, Report, Workload, ABORTED_BIT, POOL};
use futures_util::stream::{FuturesUnordered, StreamExt};
use kafkawire::admin::{Admin, NewTopic};
use kafkawire::consumer::{Consumer, IsolationLevel, OffsetReset, TopicPartition};
use kafkawire::producer::{Compression, Producer, ProducerRecord};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let r = match a.workload {
        Workload::Produce => produce(&a).await,
        Workload::Txn => txn(&a).await,
        Workload::Latency => latency(&a).await,
        Workload::Consume => consume(&a).await,
        Workload::CreateTopic | Workload::DeleteTopic => topic_admin(&a).await,
    };
    match r {
        Ok(rep) => rep.print("kafkawire", &a),
        Err(e) => {
            eprintln!("kw-client: {e}");
            std::process::exit(1)
        }
    }
}

/// The benchmark's producer settings (the same for every client).
fn producer(a: &Args, txn: bool) -> Res<Producer> {
    let compression = match a.compression.as_str() {
        "none" => Compression::None,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        c => return Err(format!("unknown compression {c}").into()),
    };
    let mut b = Producer::builder()
        .bootstrap_servers(&a.bootstrap)
        .enable_idempotence(true)
        .max_in_flight_requests_per_connection(5)
        .linger(Duration::from_millis(5))
        .batch_size(64 * 1024)
        .buffer_memory(64 * 1024 * 1024)
        .compression(compression);
    if let Ok(v) = std::env::var("KW_EXPERIMENT_LINGER_US") {
        b = b.linger(Duration::from_micros(v.parse().unwrap()));
    }
    if txn {
        b = b.transactional_id(a.transactional_id.clone());
    }
    Ok(b.build()?)
}

/// Writes index `i` into the payload buffer it uses and returns the
/// checksum contribution.
fn fill(pool: &mut [Vec<u8>], i: u64) -> (usize, u64) {
    let slot = (i % POOL as u64) as usize;
    pool[slot][..8].copy_from_slice(&i.to_be_bytes());
    (slot, common::record_sum(&pool[slot]).1)
}

async fn produce(a: &Args) -> Res<Report> {
    let p = producer(a, false)?;
    let mut pool = common::payload_pool(a.size);
    let mut rep = Report::default();
    let t0 = Instant::now();
    for i in 0..a.count {
        let (slot, sum) = fill(&mut pool, i);
        rep.checksum = rep.checksum.wrapping_add(sum);
        p.send_and_forget(ProducerRecord::new(&a.topic).value(&pool[slot]))
            .await?;
    }
    p.flush().await;
    rep.elapsed_s = t0.elapsed().as_secs_f64();
    p.close(Duration::from_secs(30)).await?;
    rep.records = a.count;
    rep.bytes = a.count * a.size as u64;
    Ok(rep)
}

async fn txn(a: &Args) -> Res<Report> {
    let p = producer(a, true)?;
    p.init_transactions()
        .await
        .map_err(|e| format!("init_transactions: {e}"))?;
    let mut pool = common::payload_pool(a.size);
    let mut rep = Report::default();
    let t0 = Instant::now();
    let (mut i, mut aborted_idx, mut n_txn) = (0u64, 0u64, 0u64);
    while i < a.count {
        n_txn += 1;
        let abort = a.abort_every > 0 && n_txn % a.abort_every == 0;
        p.begin_transaction()
            .map_err(|e| format!("transaction {n_txn}: begin: {e}"))?;
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
            p.send_and_forget(ProducerRecord::new(&a.topic).value(&pool[slot]))
                .await
                .map_err(|e| format!("transaction {n_txn}: send: {e}"))?;
        }
        let c0 = Instant::now();
        if abort {
            p.abort_transaction()
                .await
                .map_err(|e| format!("transaction {n_txn}: abort: {e}"))?;
        } else {
            p.commit_transaction()
                .await
                .map_err(|e| format!("transaction {n_txn}: commit: {e}"))?;
            rep.commit_us.push(c0.elapsed().as_micros() as u32);
        }
    }
    rep.elapsed_s = t0.elapsed().as_secs_f64();
    p.close(Duration::from_secs(30))
        .await
        .map_err(|e| format!("close after {n_txn} transactions: {e}"))?;
    rep.records = a.count;
    rep.bytes = a.count * a.size as u64;
    Ok(rep)
}

async fn latency(a: &Args) -> Res<Report> {
    let p = producer(a, false)?;
    let t0 = Instant::now();
    // The offered load is paced on a thread of its own with
    // `std::thread::sleep`, as the other clients pace theirs: tokio's timer
    // would release the records in 1 ms bursts. Each delivery future goes
    // to this task, which awaits them.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pacer = {
        let (p, handle) = (p.clone(), tokio::runtime::Handle::current());
        let (topic, count, rate, size) = (a.topic.clone(), a.count, a.rate, a.size);
        tokio::task::spawn_blocking(move || -> Result<u64, kafkawire::error::Error> {
            let mut pool = common::payload_pool(size);
            let mut checksum = 0u64;
            // Handed over once per wake-up, not per record: waking the
            // runtime's thread for each record cost 5x the CPU of sending it.
            let mut sent_now = Vec::new();
            for i in 0..count {
                let due = t0 + Duration::from_secs_f64(i as f64 / rate as f64);
                let now = Instant::now();
                if due > now + Duration::from_micros(common::PACE_SLEEP_MIN_US) {
                    if !sent_now.is_empty() && tx.send(std::mem::take(&mut sent_now)).is_err() {
                        break;
                    }
                    std::thread::sleep(due - now);
                }
                let (slot, sum) = fill(&mut pool, i);
                checksum = checksum.wrapping_add(sum);
                let sent = Instant::now();
                let ack =
                    handle.block_on(p.send(ProducerRecord::new(&topic).value(&pool[slot])))?;
                sent_now.push((i, sent, ack));
            }
            let _ = tx.send(sent_now);
            Ok(checksum)
        })
    };
    let mut rep = Report {
        latency_us: Vec::with_capacity(a.count.saturating_sub(a.lat_skip) as usize),
        ..Report::default()
    };
    let mut acks = FuturesUnordered::new();
    let mut first_ack = None;
    let mut open = true;
    while open || !acks.is_empty() {
        tokio::select! {
            biased;
            Some(r) = acks.next() => {
                let (i, latency): (u64, Duration) = r?;
                first_ack.get_or_insert_with(|| t0.elapsed());
                if i >= a.lat_skip {
                    rep.latency_us.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                }
            }
            sent = rx.recv(), if open => match sent {
                Some(batch) => {
                    for (i, sent, ack) in batch {
                        acks.push(async move { ack.await.map(|_| (i, sent.elapsed())) });
                    }
                }
                None => open = false,
            },
        }
    }
    rep.checksum = pacer.await??;
    rep.elapsed_s = t0.elapsed().as_secs_f64();
    rep.first_ack_ms = first_ack.map(|d| d.as_secs_f64() * 1000.0);
    p.close(Duration::from_secs(30)).await?;
    rep.records = a.count;
    rep.bytes = a.count * a.size as u64;
    Ok(rep)
}

async fn consume(a: &Args) -> Res<Report> {
    let mut c = Consumer::builder()
        .bootstrap_servers(&a.bootstrap)
        .auto_offset_reset(OffsetReset::Earliest)
        .isolation_level(if a.read_committed {
            IsolationLevel::ReadCommitted
        } else {
            IsolationLevel::ReadUncommitted
        })
        .build()?;
    let tps: Vec<TopicPartition> = (0..a.partitions)
        .map(|p| TopicPartition::new(&a.topic, p))
        .collect();
    c.assign(&tps)?;
    c.seek_to_beginning(&tps)?;
    let mut check = ReadCheck::new(a.count);
    let t0 = Instant::now();
    let mut last = Instant::now();
    while check.unique() < a.count && last.elapsed() < a.idle {
        let batch = c.poll(Duration::from_millis(500)).await?;
        if !batch.is_empty() {
            last = Instant::now();
        }
        for r in &batch {
            check.add(r.value.as_deref());
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

/// Creates (or deletes) the run's topic; the harness's own helper.
async fn topic_admin(a: &Args) -> Res<Report> {
    let admin = Admin::builder().bootstrap_servers(&a.bootstrap).build()?;
    if a.workload == Workload::CreateTopic {
        admin
            .create_topics(&[NewTopic::new(&a.topic, a.partitions, 1)])
            .await?
            .into_result()?;
    } else {
        admin.delete_topics(&[&a.topic]).await?.into_result()?;
    }
    Ok(Report::default())
}
