//! The exactly-once proof against three brokers: copier instances in one
//! consumer group run a consume-transform-produce loop (read_committed
//! `subscribe`, `group_metadata`, `send_offsets_to_transaction`, one stable
//! `transactional.id` each) from an input topic to an output topic while
//! instances are killed mid-transaction (their task dropped, no close) and
//! restarted with the same transactional id, instances stall mid-transaction
//! past `max.poll.interval.ms` (so the group moves their partitions while
//! they still hold an open transaction: KIP-447 fencing of zombie members
//! by generation, and of pending offsets by `require_stable`), and brokers
//! are killed and restarted. The output, read back by kafkawire's and librdkafka's
//! read_committed consumers, must hold every input record exactly once,
//! with no aborted or partly visible transaction and the input order kept
//! per partition (`protocol_tests::checker`).
//!
//! Scale and shape by environment (defaults are the CI run):
//!
//! | variable | default | what |
//! |---|---|---|
//! | `KAFKAWIRE_COPIER_RECORDS` | 100000 | input records |
//! | `KAFKAWIRE_COPIER_INSTANCES` | 3 | copier instances in the group |
//! | `KAFKAWIRE_COPIER_PER_TXN` | 500 | records per transaction (at most) |
//! | `KAFKAWIRE_COPIER_ABORT_EVERY` | 0 | abort every Nth transaction of an instance (0: never) |
//! | `KAFKAWIRE_COPIER_KILLS` | 6 | instance kills |
//! | `KAFKAWIRE_COPIER_BOUNCES` | 1 | broker kill + restart |
//! | `KAFKAWIRE_COPIER_BOUNCE_MODE` | coordinator | `coordinator`: SIGKILL the transaction coordinator of an instance; `rolling`: every broker in turn (1, 2, 3, 1, ...), alternately SIGKILL and SIGTERM |
//! | `KAFKAWIRE_COPIER_STALLS` | 2 | instance stalls past `max.poll.interval.ms` mid-transaction |
//! | `KAFKAWIRE_COPIER_GROUP_PROTOCOL` | classic | `classic` or `consumer` (KIP-848) |
//!
//! The test `copier_aborting_every_third_transaction` runs the
//! reliability shape (750 per transaction, every third aborted) at a
//! tenth of the records, and `copier_rolling_bounces_aborting_every_third`
//! runs it through rolling broker bounces (every broker once, so the
//! transaction coordinators too, alternately hard and clean) while
//! instances are killed: `KAFKAWIRE_COPIER_ROLLING_RECORDS` (default
//! 20000) and `KAFKAWIRE_COPIER_ROLLING_BOUNCES` (default 3) scale it.
//! An aborted batch is rewound (each partition sought back to the batch's
//! first offset, which is the group's committed offset). After every
//! deliberate abort the rewind is checked directly: each rewound
//! partition's position must equal the group's committed offset (or the
//! log start, 0, before anything was committed); a mismatch fails the test
//! naming the instance, partition, expected and actual offsets. The check
//! is skipped (and counted) when the group rebalanced during the
//! transaction, as the partition may have moved and come back meanwhile.
//! A wrong rewind would also show as lost or duplicated records in the
//! checker. No timing assertions: only generous time bounds.

use kafkawire::admin::NewTopic;
use kafkawire::cluster::CoordinatorType;
use kafkawire::consumer::{
    Consumer, IsolationLevel, OffsetReset, RebalanceContext, RebalanceListener, TopicPartition,
};
use kafkawire::producer::{Producer, ProducerRecord};
use protocol_tests::checker::{self, Ledger, Send};
use protocol_tests::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 6;
/// The header carrying the name of the transaction that wrote a record.
const TXN_HEADER: &str = "txn";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
        Err(_) => default,
    }
}

#[derive(Debug, Clone)]
struct Plan {
    records: usize,
    instances: usize,
    per_txn: usize,
    abort_every: u64,
    kills: usize,
    bounces: usize,
    stalls: usize,
    group_protocol: String,
    /// `coordinator` or `rolling` (see the module table).
    bounce_mode: String,
}

impl Plan {
    fn from_env(records: usize, per_txn: usize, abort_every: u64) -> Plan {
        Plan {
            records: env_or("KAFKAWIRE_COPIER_RECORDS", records),
            instances: env_or("KAFKAWIRE_COPIER_INSTANCES", 3),
            per_txn: env_or("KAFKAWIRE_COPIER_PER_TXN", per_txn),
            abort_every: env_or("KAFKAWIRE_COPIER_ABORT_EVERY", abort_every),
            kills: env_or("KAFKAWIRE_COPIER_KILLS", 6),
            bounces: env_or("KAFKAWIRE_COPIER_BOUNCES", 1),
            stalls: env_or("KAFKAWIRE_COPIER_STALLS", 2),
            group_protocol: env_or("KAFKAWIRE_COPIER_GROUP_PROTOCOL", "classic".to_string()),
            bounce_mode: env_or("KAFKAWIRE_COPIER_BOUNCE_MODE", "coordinator".to_string()),
        }
    }
}

/// State shared by the driver and the copier instances.
struct Shared {
    plan: Plan,
    input: String,
    output: String,
    group: String,
    /// Prefix of the transactional ids (`{prefix}-{instance}`).
    txn_prefix: String,
    ledger: Mutex<Ledger>,
    /// Errors the instances met (expected ones too: fencing, rebalances).
    errors: Mutex<Vec<String>>,
    stop: AtomicBool,
    committed_txns: AtomicU64,
    aborted_txns: AtomicU64,
    discarded_batches: AtomicU64,
    /// Per instance: stall at the next transaction, before sending the
    /// offsets (`STALL_BEFORE_OFFSETS`) or before committing
    /// (`STALL_BEFORE_COMMIT`); 0: no stall.
    stall: Vec<AtomicU8>,
    stalls_done: AtomicU64,
    /// Partitions whose position was checked against the group's committed
    /// offset after a deliberate abort and rewind.
    rewinds_checked: AtomicU64,
    /// Deliberate aborts whose rewind was not checked (rebalance during the
    /// transaction, or the committed offsets could not be fetched).
    rewinds_unchecked: AtomicU64,
    /// Rewinds that left a position other than the committed offset.
    rewind_mismatches: Mutex<Vec<String>>,
}

const STALL_BEFORE_OFFSETS: u8 = 1;
const STALL_BEFORE_COMMIT: u8 = 2;
/// `max.poll.interval.ms` of the copiers; a stall lasts longer.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(8);
const STALL: Duration = Duration::from_secs(14);

impl Shared {
    fn error(&self, e: String) {
        eprintln!("copier: {e}");
        self.errors.lock().unwrap().push(e);
    }
}

/// How an instance's run ended.
#[derive(Debug)]
enum Exit {
    /// Stopped when asked, after closing cleanly.
    Stopped,
    /// Gave up after an error; restarted by the driver.
    Failed(String),
}

/// Flags any revocation or loss of partitions (the batch being gathered
/// may then hold records that are no longer ours to copy).
struct Rebalanced(Arc<AtomicBool>);

impl RebalanceListener for Rebalanced {
    fn on_partitions_revoked(&mut self, _: &[TopicPartition], _: &mut RebalanceContext) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn txn_producer(id: &str) -> Producer {
    Producer::builder()
        .bootstrap_servers(&bootstrap())
        .client_id("copier")
        .transactional_id(id)
        .linger(Duration::from_millis(5))
        .max_block(Duration::from_secs(60))
        .request_timeout(Duration::from_secs(10))
        .delivery_timeout(Duration::from_secs(60))
        .build()
        .expect("copier producer")
}

fn copier_consumer(sh: &Shared, instance: usize) -> Consumer {
    let b = Consumer::builder()
        .bootstrap_servers(&bootstrap())
        .client_id(format!("copier-{instance}"))
        .group_id(&sh.group)
        .isolation_level(IsolationLevel::ReadCommitted)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .set("max.poll.records", &sh.plan.per_txn.min(1000).to_string())
        .set("fetch.max.wait.ms", "100")
        .max_poll_interval(MAX_POLL_INTERVAL);
    let b = match sh.plan.group_protocol.as_str() {
        "consumer" => b.set("group.protocol", "consumer"),
        "classic" => b
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500"),
        other => panic!("KAFKAWIRE_COPIER_GROUP_PROTOCOL={other}: expected classic or consumer"),
    };
    b.build().expect("copier consumer")
}

/// One life of copier instance `instance`: init (fencing its previous
/// life), subscribe, then gather a batch, copy it in a transaction with
/// the consumed offsets, commit (or abort every Nth and rewind), repeat.
/// Dropping the future at any await is a crash.
async fn copier(sh: Arc<Shared>, instance: usize, life: u32) -> Exit {
    let tid = format!("{}-{instance}", sh.txn_prefix);
    let p = txn_producer(&tid);
    if let Err(e) = p.init_transactions().await {
        return Exit::Failed(format!("copier {instance}.{life} init: {e}"));
    }
    let mut c = copier_consumer(&sh, instance);
    let rebalanced = Arc::new(AtomicBool::new(false));
    c.subscribe_with_listener(&[sh.input.as_str()], Rebalanced(rebalanced.clone()))
        .unwrap();
    let mut n: u64 = 0;
    while !sh.stop.load(Ordering::SeqCst) {
        // Gather up to per_txn records before starting the transaction.
        rebalanced.store(false, Ordering::SeqCst);
        let mut batch = Vec::new();
        while batch.len() < sh.plan.per_txn {
            let wait = if batch.is_empty() {
                Duration::from_millis(300)
            } else {
                Duration::from_millis(20)
            };
            match c.poll(wait).await {
                Ok(recs) if recs.is_empty() => break,
                Ok(recs) => batch.extend(recs),
                Err(e) => return Exit::Failed(format!("copier {instance}.{life} poll: {e}")),
            }
        }
        // First offset per partition: where to rewind to if the batch is
        // not committed.
        let mut first: BTreeMap<i32, i64> = BTreeMap::new();
        for r in &batch {
            first.entry(r.partition).or_insert(r.offset);
        }
        let rewind = |c: &mut Consumer| -> Result<(), String> {
            let assigned = c.assignment();
            for (p, o) in &first {
                let tp = TopicPartition::new(&sh.input, *p);
                if assigned.contains(&tp) {
                    c.seek(&tp, *o).map_err(|e| format!("seek {tp}: {e}"))?;
                }
            }
            Ok(())
        };
        if rebalanced.load(Ordering::SeqCst) {
            // Some records may be of partitions revoked meanwhile (their
            // next owner copies them) or fetched twice: start over.
            sh.discarded_batches.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = rewind(&mut c) {
                return Exit::Failed(format!("copier {instance}.{life} rewind: {e}"));
            }
            continue;
        }
        if batch.is_empty() {
            continue;
        }
        n += 1;
        let tag = format!("c{instance}.l{life}.t{n}");
        if let Err(e) = p.begin_transaction() {
            return Exit::Failed(format!("copier {instance}.{life} begin: {e}"));
        }
        {
            let mut l = sh.ledger.lock().unwrap();
            l.begin(&tag);
            for r in &batch {
                let v =
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
                l.send(
                    Send::new(v, r.partition)
                        .txn(&tag)
                        .order(format!("in-{}", r.partition), r.offset as u64),
                );
            }
        }
        let mut failed = None;
        for r in &batch {
            let rec = ProducerRecord::new(&sh.output)
                .partition(r.partition)
                .value(r.value.as_deref().unwrap_or_default())
                .header(TXN_HEADER, Some(tag.as_str()));
            let rec = match &r.key {
                Some(k) => rec.key(k.as_ref()),
                None => rec,
            };
            if let Err(e) = p.send_and_forget(rec).await {
                failed = Some(e);
                break;
            }
        }
        // A stall: the member leaves the group (poll timeout), others take
        // its partitions, then it carries on with its transaction.
        let (tag, sh_ref) = (&tag, &*sh);
        let stall_here = |when: u8| async move {
            let sh = sh_ref;
            if sh.stall[instance]
                .compare_exchange(when, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                sh.stalls_done.fetch_add(1, Ordering::SeqCst);
                eprintln!("instance {instance}.{life} stalls in {tag} for {STALL:?}");
                tokio::time::sleep(STALL).await;
                eprintln!("instance {instance}.{life} resumes {tag}");
            }
        };
        if failed.is_none() {
            stall_here(STALL_BEFORE_OFFSETS).await;
            let mine: Vec<_> = c
                .positions()
                .into_iter()
                .filter(|(tp, _)| first.contains_key(&tp.partition()))
                .collect();
            let group = match c.group_metadata() {
                Ok(g) => g,
                Err(e) => {
                    return Exit::Failed(format!("copier {instance}.{life} group_metadata: {e}"))
                }
            };
            if let Err(e) = p.send_offsets_to_transaction(mine, &group).await {
                failed = Some(e);
            }
        }
        let deliberate_abort = sh.plan.abort_every > 0 && n % sh.plan.abort_every == 0;
        // Only a deliberate abort of a transaction that met no error has a
        // rewind target known to be the committed offset.
        let check_the_rewind = deliberate_abort && failed.is_none();
        let outcome = match failed {
            Some(e) if !e.is_abortable() => {
                return Exit::Failed(format!("copier {instance}.{life} {tag}: {e}"))
            }
            Some(e) => Err(e),
            None if deliberate_abort => Err(kafkawire::Error::illegal_state("deliberate abort")),
            None => {
                stall_here(STALL_BEFORE_COMMIT).await;
                p.commit_transaction().await
            }
        };
        match outcome {
            Ok(()) => {
                sh.ledger.lock().unwrap().committed(&tag);
                sh.committed_txns.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.is_abortable() || deliberate_abort => {
                if !deliberate_abort {
                    sh.error(format!(
                        "copier {instance}.{life} {tag}: aborting after {e}"
                    ));
                }
                if let Err(e) = p.abort_transaction().await {
                    return Exit::Failed(format!("copier {instance}.{life} {tag} abort: {e}"));
                }
                sh.ledger.lock().unwrap().aborted(&tag);
                sh.aborted_txns.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = rewind(&mut c) {
                    return Exit::Failed(format!("copier {instance}.{life} rewind: {e}"));
                }
                if check_the_rewind {
                    let moved = rebalanced.load(Ordering::SeqCst);
                    check_rewind(&sh, &c, instance, life, &tag, &first, moved).await;
                }
            }
            // Fenced, or a commit of unknown outcome: start a new life,
            // which resumes from the group's committed offsets.
            Err(e) => return Exit::Failed(format!("copier {instance}.{life} {tag} commit: {e}")),
        }
    }
    if let Err(e) = c.close().await {
        sh.error(format!("copier {instance}.{life} consumer close: {e}"));
    }
    if let Err(e) = p.close(Duration::from_secs(30)).await {
        sh.error(format!("copier {instance}.{life} producer close: {e}"));
    }
    Exit::Stopped
}

/// After a deliberate abort and rewind of instance `instance`: each
/// rewound partition still assigned must be positioned at the group's
/// committed offset (0, the log start, when nothing is committed yet),
/// which is where the batch began (`first`). A mismatch is recorded naming
/// instance, partition, expected and actual offsets; the test fails on any.
/// Not checked when the group rebalanced during the transaction (`moved`).
async fn check_rewind(
    sh: &Shared,
    c: &Consumer,
    instance: usize,
    life: u32,
    tag: &str,
    first: &BTreeMap<i32, i64>,
    moved: bool,
) {
    if moved {
        sh.rewinds_unchecked.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let assigned = c.assignment();
    let tps: Vec<TopicPartition> = first
        .keys()
        .map(|p| TopicPartition::new(&sh.input, *p))
        .filter(|tp| assigned.contains(tp))
        .collect();
    let committed = match c.committed(&tps).await {
        Ok(m) => m,
        Err(e) => {
            sh.error(format!(
                "copier {instance}.{life} {tag}: committed offsets for the rewind check: {e}"
            ));
            sh.rewinds_unchecked.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let positions: BTreeMap<TopicPartition, i64> = c
        .positions()
        .into_iter()
        .map(|(tp, o)| (tp, o.offset))
        .collect();
    for tp in &tps {
        let expected = committed
            .get(tp)
            .and_then(|o| o.as_ref())
            .map_or(0, |o| o.offset);
        let actual = positions.get(tp).copied();
        sh.rewinds_checked.fetch_add(1, Ordering::Relaxed);
        if actual != Some(expected) {
            let m = format!(
                "instance {instance} (life {life}, {tag}) partition {}: position after the rewind {actual:?}, \
                 expected the group's committed offset {expected} (the batch began at {})",
                tp.partition(),
                first[&tp.partition()]
            );
            eprintln!("copier: REWIND MISMATCH {m}");
            sh.rewind_mismatches.lock().unwrap().push(m);
        }
    }
}

async fn create_topic(name: &str) {
    let admin = admin();
    admin
        .create_topics(&[NewTopic::new(name, PARTITIONS, 3).config("min.insync.replicas", "2")])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    admin
        .wait_for_topics(&[name], Duration::from_secs(60))
        .await
        .unwrap();
}

/// Produces the input (idempotent, acks=all): `in-{i}` to partition
/// `i % 6`, keyed. Every acknowledged value is required in the output.
/// Returns the end offset per partition.
async fn produce_input(sh: Arc<Shared>) -> BTreeMap<i32, i64> {
    let p = Producer::builder()
        .bootstrap_servers(&bootstrap())
        .client_id("copier-input")
        .linger(Duration::from_millis(5))
        .delivery_timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut pending = Vec::with_capacity(sh.plan.records);
    for i in 0..sh.plan.records {
        let v = format!("in-{i:07}");
        let k = format!("k{i}");
        let part = (i % PARTITIONS as usize) as i32;
        let f = p
            .send(
                ProducerRecord::new(&sh.input)
                    .partition(part)
                    .key(&k)
                    .value(&v),
            )
            .await
            .expect("input send");
        pending.push((v, f));
    }
    let mut ends = BTreeMap::new();
    for (v, f) in pending {
        let m = f
            .await
            .unwrap_or_else(|e| panic!("input record {v} not acknowledged: {e}"));
        let e = ends.entry(m.partition()).or_insert(0);
        *e = (*e).max(m.offset() + 1);
        sh.ledger.lock().unwrap().require(v);
    }
    p.close(Duration::from_secs(30)).await.unwrap();
    ends
}

/// Sum over partitions of the group's committed input offsets (stable
/// commits only: read_uncommitted does not wait for open transactions).
async fn committed_total(monitor: &Consumer, parts: &[TopicPartition]) -> Option<i64> {
    let m = monitor.committed(parts).await.ok()?;
    Some(
        m.values()
            .map(|o| o.as_ref().map(|o| o.offset).unwrap_or(0))
            .sum(),
    )
}

async fn run_copier(plan: Plan) {
    let started = Instant::now();
    let sh = Arc::new(Shared {
        input: unique("copier-in"),
        output: unique("copier-out"),
        group: unique("copier-group"),
        txn_prefix: unique("copier-txn"),
        plan: plan.clone(),
        ledger: Mutex::new(Ledger::new()),
        errors: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        committed_txns: AtomicU64::new(0),
        aborted_txns: AtomicU64::new(0),
        discarded_batches: AtomicU64::new(0),
        stall: (0..plan.instances).map(|_| AtomicU8::new(0)).collect(),
        stalls_done: AtomicU64::new(0),
        rewinds_checked: AtomicU64::new(0),
        rewinds_unchecked: AtomicU64::new(0),
        rewind_mismatches: Mutex::new(Vec::new()),
    });
    eprintln!("copier plan: {plan:?}");
    create_topic(&sh.input).await;
    create_topic(&sh.output).await;
    // Generous: the copy rate on a loaded 2-core machine is the unknown.
    let deadline = Instant::now() + Duration::from_secs(300 + plan.records as u64 / 100);

    let input_task = tokio::spawn(produce_input(sh.clone()));
    let mut lives = vec![0u32; plan.instances];
    let mut tasks: Vec<tokio::task::JoinHandle<Exit>> = (0..plan.instances)
        .map(|i| tokio::spawn(copier(sh.clone(), i, 0)))
        .collect();

    let monitor = Consumer::builder()
        .bootstrap_servers(&bootstrap())
        .client_id("copier-monitor")
        .group_id(&sh.group)
        .build()
        .unwrap();
    let parts: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(&sh.input, p))
        .collect();
    let total = plan.records as i64;
    let mut ends: Option<BTreeMap<i32, i64>> = None;
    let mut input_task = Some(input_task);
    let mut kills_done = 0usize;
    let mut bounces_done = 0usize;
    let mut stalls_asked = 0usize;
    let mut stall_target: Option<(usize, Instant)> = None;
    let mut bouncing: Option<tokio::task::JoinHandle<()>> = None;
    // Rolling mode: the node the roll starts at (0-based; the first
    // bounce's transaction coordinator, so it goes down mid-copy), and
    // how many bounces began before the copy was done.
    let mut roll_start: Option<usize> = None;
    let mut bounces_mid_copy = 0usize;
    let mut last_progress = 0i64;
    let mut failures = 0usize;
    let mut last_report = Instant::now();
    loop {
        assert!(
            Instant::now() < deadline,
            "copier did not finish in time: {last_progress} of {total} input offsets committed; errors: {:?}",
            sh.errors.lock().unwrap().iter().rev().take(10).collect::<Vec<_>>()
        );
        if input_task.as_ref().is_some_and(|t| t.is_finished()) {
            ends = Some(input_task.take().unwrap().await.expect("input producer"));
            eprintln!("input produced after {:?}", started.elapsed());
        }
        let progress = committed_total(&monitor, &parts)
            .await
            .unwrap_or(last_progress);
        if progress != last_progress {
            last_progress = progress;
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "{:?}: {progress}/{total} input offsets committed",
                started.elapsed()
            );
        }
        if let Some(e) = &ends {
            // Stalls are not waited for: one asked of an instance that
            // gets no more records never happens (the summary counts them).
            let faults_done = kills_done == plan.kills && bounces_done == plan.bounces;
            if progress >= e.values().sum::<i64>() && faults_done {
                break;
            }
        }
        // Restart instances that gave up.
        for i in 0..plan.instances {
            if tasks[i].is_finished() {
                let exit = (&mut tasks[i]).await;
                let why = match exit {
                    Ok(Exit::Failed(e)) => e,
                    Ok(Exit::Stopped) => "stopped early".into(),
                    Err(e) => format!("panicked: {e}"),
                };
                failures += 1;
                assert!(failures < 200, "copier instances keep failing; last: {why}");
                sh.error(format!(
                    "instance {i} life {} ended ({why}); restarting",
                    lives[i]
                ));
                lives[i] += 1;
                tasks[i] = tokio::spawn(copier(sh.clone(), i, lives[i]));
            }
        }
        // Kills, spread over the copy: the instance's future is dropped
        // wherever it is (mid-transaction most of the time) and started
        // again with the same transactional id after a short pause.
        // (After the copy finished, the faults still happen, to idle
        // instances: the fraction is capped below 1.)
        let frac = if ends
            .as_ref()
            .is_some_and(|e| progress >= e.values().sum::<i64>())
        {
            1.0
        } else {
            progress as f64 / total as f64
        };
        if kills_done < plan.kills && frac >= (kills_done as f64 + 0.5) / (plan.kills as f64 + 1.0)
        {
            // Not an instance asked to stall lately: the stall would be lost.
            let mut i = kills_done % plan.instances;
            if let Some((s, at)) = stall_target {
                if s == i && at.elapsed() < STALL + Duration::from_secs(20) && plan.instances > 1 {
                    i = (i + 1) % plan.instances;
                }
            }
            tasks[i].abort();
            let _ = (&mut tasks[i]).await;
            eprintln!(
                "killed instance {i} life {} at {progress}/{total}",
                lives[i]
            );
            kills_done += 1;
            tokio::time::sleep(Duration::from_millis(200 * (kills_done as u64 % 5))).await;
            lives[i] += 1;
            tasks[i] = tokio::spawn(copier(sh.clone(), i, lives[i]));
        }
        // Stalls: the next transaction of an instance stops for longer
        // than max.poll.interval.ms, alternately before its offsets are
        // sent and before its commit.
        let stalls_done = sh.stalls_done.load(Ordering::SeqCst) as usize;
        if stalls_asked < plan.stalls
            && stalls_done == stalls_asked
            && frac >= (stalls_asked as f64 + 0.7) / (plan.stalls as f64 + 1.0)
        {
            let i = (stalls_asked + 1) % plan.instances;
            let when = if stalls_asked % 2 == 0 {
                STALL_BEFORE_OFFSETS
            } else {
                STALL_BEFORE_COMMIT
            };
            sh.stall[i].store(when, Ordering::SeqCst);
            stall_target = Some((i, Instant::now()));
            eprintln!("asked instance {i} to stall ({when}) at {progress}/{total}");
            stalls_asked += 1;
        }
        // Broker bounces, in the background: kill -9 a broker, keep
        // copying, start it again.
        if bouncing.as_ref().is_some_and(|t| t.is_finished()) {
            bouncing.take().unwrap().await.expect("broker bounce");
            bounces_done += 1;
        }
        // Rolling bounces go back to back from a tenth of the copy on (a
        // bounce takes longer than a tenth of a copy); the others spread.
        let due = if plan.bounce_mode == "rolling" {
            0.1
        } else {
            (bounces_done as f64 + 1.0) / (plan.bounces as f64 + 1.5)
        };
        if bouncing.is_none() && bounces_done < plan.bounces && frac >= due {
            // The transaction coordinator of one of the instances.
            let tid = format!("{}-{}", sh.txn_prefix, bounces_done % plan.instances);
            let cluster = admin().cluster().clone();
            cluster.invalidate_coordinator(CoordinatorType::Transaction, &tid);
            let coordinator = cluster
                .coordinator(
                    CoordinatorType::Transaction,
                    &tid,
                    Instant::now() + Duration::from_secs(30),
                )
                .await
                .map(|(node, _)| node.to_string());
            // Rolling: every broker in turn, alternately SIGKILL and
            // SIGTERM. Bounces run one at a time (the 3-node KRaft quorum
            // survives one node down), and `start` waits until the node
            // answers again.
            let (node, signal) = match plan.bounce_mode.as_str() {
                "coordinator" => (
                    coordinator
                        .clone()
                        .unwrap_or_else(|_| (bounces_done % 3 + 1).to_string()),
                    "kill",
                ),
                "rolling" => (
                    ((*roll_start.get_or_insert_with(|| {
                        coordinator
                            .as_ref()
                            .ok()
                            .and_then(|n| n.parse::<usize>().ok())
                            .map_or(0, |n| n.saturating_sub(1))
                    }) + bounces_done)
                        % 3
                        + 1)
                    .to_string(),
                    if bounces_done % 2 == 0 {
                        "kill"
                    } else {
                        "stop"
                    },
                ),
                other => {
                    panic!("KAFKAWIRE_COPIER_BOUNCE_MODE={other}: expected coordinator or rolling")
                }
            };
            let coordinator = coordinator.unwrap_or_else(|e| format!("unknown ({e})"));
            eprintln!(
                "{signal} broker {node} (transaction coordinator of {tid}: {coordinator}) at {progress}/{total}"
            );
            if frac < 1.0 {
                bounces_mid_copy += 1;
            }
            let rolling = plan.bounce_mode == "rolling";
            bouncing = Some(tokio::spawn(async move {
                kafka_local_async(&[signal, &node]).await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                kafka_local_async(&["start", &node]).await;
                eprintln!("broker {node} back at {:?}", started.elapsed());
                if rolling {
                    // Let it rejoin the ISRs before the next node goes.
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let copy_time = started.elapsed();
    for s in &sh.stall {
        s.store(0, Ordering::SeqCst);
    }
    sh.stop.store(true, Ordering::SeqCst);
    for (i, t) in tasks.into_iter().enumerate() {
        match tokio::time::timeout(Duration::from_secs(90), t).await {
            Ok(Ok(Exit::Stopped)) => {}
            Ok(Ok(Exit::Failed(e))) => sh.error(format!("instance {i} failed while stopping: {e}")),
            Ok(Err(e)) => panic!("instance {i} panicked: {e}"),
            Err(_) => panic!("instance {i} did not stop within 90 s"),
        }
    }
    // An instance that gave up just before the end may have left a
    // transaction open (holding back the LSO): fence every transactional
    // id once more, which aborts it.
    for i in 0..plan.instances {
        let p = txn_producer(&format!("{}-{i}", sh.txn_prefix));
        p.init_transactions()
            .await
            .unwrap_or_else(|e| panic!("fencing instance {i} at the end: {e}"));
        p.close(Duration::from_secs(30)).await.unwrap();
    }
    assert_eq!(kills_done, plan.kills, "not every kill happened");
    assert_eq!(
        bounces_done, plan.bounces,
        "not every broker bounce happened"
    );

    let ledger = sh.ledger.lock().unwrap().clone();
    let (committed, aborted, unknown) = ledger.txn_counts();
    eprintln!(
        "copied {total} records in {copy_time:?}: {committed} transactions committed, {aborted} aborted, \
         {unknown} of unknown outcome (killed), {} batches discarded after rebalances, {} instance kills, \
         {} broker bounces ({} begun mid-copy), {} of {} stalls, {} errors met",
        sh.discarded_batches.load(Ordering::Relaxed),
        kills_done,
        bounces_done,
        bounces_mid_copy,
        sh.stalls_done.load(Ordering::SeqCst),
        plan.stalls,
        sh.errors.lock().unwrap().len()
    );
    assert!(committed > 0);
    let checked = sh.rewinds_checked.load(Ordering::Relaxed);
    eprintln!(
        "rewind after abort: {checked} partition positions checked against the committed offset, \
         {} deliberate aborts not checked (rebalance during the transaction)",
        sh.rewinds_unchecked.load(Ordering::Relaxed)
    );
    let mismatches = sh.rewind_mismatches.lock().unwrap().clone();
    assert!(
        mismatches.is_empty(),
        "{} rewinds did not land on the committed offset: {mismatches:#?}",
        mismatches.len()
    );
    if plan.abort_every > 0 {
        assert!(aborted > 0, "no transaction was aborted");
        assert!(
            checked > 0,
            "no rewind after a deliberate abort was checked"
        );
    }

    let read_started = Instant::now();
    let kw = checker::read_kafkawire(&sh.output, Some(TXN_HEADER), Duration::from_secs(300)).await;
    let output = sh.output.clone();
    let rd = tokio::task::spawn_blocking(move || {
        checker::read_rdkafka(&output, Some(TXN_HEADER), 6_000)
    })
    .await
    .unwrap();
    eprintln!("read back in {:?}", read_started.elapsed());
    let reports = [checker::check(&ledger, &kw), checker::check(&ledger, &rd)];
    for r in &reports {
        eprintln!("{r}");
    }
    for r in &reports {
        r.assert_clean();
        assert_eq!(r.visible, plan.records, "[{}] visible records", r.reader);
    }
    eprintln!("copier total wall time {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copier_copies_exactly_once_through_kills_and_broker_bounces() {
    run_copier(Plan::from_env(100_000, 500, 0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copier_aborting_every_third_transaction() {
    let mut plan = Plan::from_env(10_000, 750, 3);
    plan.records = env_or("KAFKAWIRE_COPIER_ABORT_RECORDS", 10_000);
    plan.per_txn = 750;
    plan.abort_every = 3;
    plan.bounces = 0;
    plan.kills = plan.kills.min(2);
    run_copier(plan).await;
}

/// The reliability issue's rolling-restart shape: 750 records per
/// transaction, every third transaction aborted, every broker bounced in
/// turn (alternately SIGKILL and SIGTERM, so every transaction
/// coordinator goes once), back to back, while instances are killed and
/// restarted with the same transactional id (4 kills and 1 stall unless
/// `KAFKAWIRE_COPIER_KILLS` / `_STALLS` say otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copier_rolling_bounces_aborting_every_third() {
    let mut plan = Plan::from_env(20_000, 750, 3);
    plan.records = env_or("KAFKAWIRE_COPIER_ROLLING_RECORDS", 20_000);
    plan.per_txn = 750;
    plan.abort_every = 3;
    plan.bounces = env_or("KAFKAWIRE_COPIER_ROLLING_BOUNCES", 3);
    plan.bounce_mode = "rolling".into();
    plan.kills = env_or("KAFKAWIRE_COPIER_KILLS", 4);
    plan.stalls = env_or("KAFKAWIRE_COPIER_STALLS", 1);
    run_copier(plan).await;
}
