//! A transactional producer that opens a transaction and then waits to be
//! killed: the "producer crashed mid-transaction" of the reliability suite
//! (`tests/reliability.rs`), which SIGKILLs this process so that nothing —
//! no EndTxn, no clean close — follows the records it sent.
//!
//! Usage: `txn_crash_child BOOTSTRAP TOPIC PARTITIONS TRANSACTIONAL_ID TIMEOUT_MS COUNT TAG`.
//! Sends COUNT records `TAG-<i>` (header `txn` = TAG) to partition
//! `i % PARTITIONS` in one transaction, prints one line
//! `SENT <partition> <offset> <value>` per acknowledged record, then
//! `OPEN`, and sleeps (at most ten minutes).

use kafkawire::producer::{Producer, ProducerRecord};
use std::io::Write;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 7 {
        eprintln!("usage: txn_crash_child BOOTSTRAP TOPIC PARTITIONS TRANSACTIONAL_ID TIMEOUT_MS COUNT TAG");
        std::process::exit(2);
    }
    let num = |i: usize| -> u64 {
        args[i]
            .parse()
            .unwrap_or_else(|_| panic!("argument {} is not a number", i + 1))
    };
    let (partitions, timeout_ms, count) = (num(2) as i32, num(4), num(5));
    let p = Producer::builder()
        .bootstrap_servers(&args[0])
        .client_id("txn-crash-child")
        .transactional_id(args[3].clone())
        .transaction_timeout(Duration::from_millis(timeout_ms))
        .build()
        .expect("producer");
    p.init_transactions().await.expect("init_transactions");
    p.begin_transaction().expect("begin_transaction");
    let mut acks = Vec::new();
    for i in 0..count {
        let v = format!("{}-{i}", args[6]);
        let r = ProducerRecord::new(&args[1])
            .partition(i as i32 % partitions)
            .value(&v)
            .header("txn", Some(&args[6]));
        acks.push((v.clone(), p.send(r).await.expect("send")));
    }
    let mut out = std::io::stdout().lock();
    for (v, f) in acks {
        let m = f.await.expect("delivery");
        writeln!(out, "SENT {} {} {v}", m.partition(), m.offset()).unwrap();
    }
    writeln!(out, "OPEN").unwrap();
    out.flush().unwrap();
    drop(out);
    tokio::time::sleep(Duration::from_secs(600)).await;
    eprintln!("txn_crash_child: not killed within 10 minutes; exiting");
    std::process::exit(1);
}
