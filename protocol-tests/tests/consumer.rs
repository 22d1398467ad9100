//! The consumer's fetching half against one real broker (run for Kafka 4.x
//! and 3.x): manual assignment, positions, offset lookups and commits, and
//! read_committed over data written by the Java client's (transactional)
//! producer.
//!
//! Data comes from the interop Java peer (`protocol-tests/interop/java-peer`,
//! overridable with `KAFKAWIRE_JAVA_PEER`). Waits are bounded by generous
//! timeouts; nothing asserts on how fast anything happens.

#![allow(clippy::cloned_ref_to_slice_refs)]

use kafkawire::consumer::{
    Consumer, ConsumerRecord, IsolationLevel, OffsetAndMetadata, OffsetReset, TopicPartition,
};
use kafkawire::{ErrorCode, ErrorKind};
use protocol_tests::*;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

fn java_peer() -> String {
    std::env::var("KAFKAWIRE_JAVA_PEER")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/interop/java-peer").to_string())
}

fn peer_command(mode: &str, args: &[&str]) -> Command {
    let mut c = Command::new(java_peer());
    let b = bootstrap();
    c.arg(mode).arg("--bootstrap").arg(b).args(args);
    c
}

/// Runs the Java peer to completion, returning its stdout lines.
async fn peer(mode: &str, args: &[&str]) -> Vec<String> {
    let mut c = peer_command(mode, args);
    let what = format!("java-peer {mode} {args:?}");
    tokio::task::spawn_blocking(move || {
        let out = c
            .output()
            .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    })
    .await
    .unwrap()
}

/// The string values of `"key":[...]` in a one-line JSON summary.
fn json_list(line: &str, key: &str) -> Vec<String> {
    let start = line
        .find(&format!("\"{key}\":["))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()
        + 4;
    let end = start + line[start..].find(']').unwrap();
    line[start..end]
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_matches('"').to_string())
        .collect()
}

async fn topic(prefix: &str, partitions: i32) -> String {
    protocol_tests::create_topic(prefix, partitions).await
}

fn consumer(reset: OffsetReset, isolation: IsolationLevel, group: Option<&str>) -> Consumer {
    let mut b = Consumer::builder()
        .bootstrap_servers(&bootstrap())
        .client_id("consumer-tests")
        .auto_offset_reset(reset)
        .isolation_level(isolation)
        .enable_auto_commit(false)
        .set("fetch.max.wait.ms", "200");
    if let Some(g) = group {
        b = b.group_id(g);
    }
    b.build().expect("consumer")
}

fn value(r: &ConsumerRecord) -> String {
    String::from_utf8(r.value.as_ref().expect("value").to_vec()).unwrap()
}

/// Polls until `n` records arrived (panics after `WAIT`).
async fn take(c: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "got {} of {n} records before the timeout",
            out.len()
        );
        out.extend(c.poll(Duration::from_millis(500)).await.expect("poll"));
    }
    out
}

/// Polls for `d` and returns whatever arrived.
async fn drain_for(c: &mut Consumer, d: Duration) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + d;
    let mut out = Vec::new();
    while Instant::now() < deadline {
        out.extend(c.poll(Duration::from_millis(200)).await.expect("poll"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_and_consume_everything_once_in_order() {
    let t = topic("consume-all", 3).await;
    let lines = peer(
        "produce",
        &[
            "--topic",
            &t,
            "--count",
            "600",
            "--key-prefix",
            "k",
            "--headers",
        ],
    )
    .await;
    assert_eq!(lines.len(), 600);
    let mut c = consumer(OffsetReset::Earliest, IsolationLevel::ReadUncommitted, None);
    let tps: Vec<_> = (0..3).map(|p| TopicPartition::new(&t, p)).collect();
    c.assign(&tps).unwrap();
    let got = take(&mut c, 600).await;
    assert_eq!(got.len(), 600, "no duplicates");
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut values = HashSet::new();
    for r in &got {
        let n = next.entry(r.partition).or_insert(0);
        assert_eq!(
            r.offset, *n,
            "partition {} in order without gaps",
            r.partition
        );
        *n += 1;
        let v = value(r);
        let i: usize = v.trim_start_matches("java-").parse().unwrap();
        assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
        let h: Vec<_> = r.headers().iter().collect();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].key(), format!("h{i}").as_bytes());
        assert!(values.insert(v));
    }
    assert_eq!(values.len(), 600);
    for tp in &tps {
        assert_eq!(c.position(tp).await.unwrap(), next[&tp.partition()]);
    }
    // Nothing more arrives.
    assert!(drain_for(&mut c, Duration::from_secs(1)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_seek_pause_resume_and_position() {
    use std::future::poll_fn;
    let t = topic("seek", 1).await;
    peer("produce", &["--topic", &t, "--count", "100"]).await;
    let tp = TopicPartition::new(&t, 0);
    let mut c = consumer(OffsetReset::Earliest, IsolationLevel::ReadUncommitted, None);
    c.assign(&[tp.clone()]).unwrap();
    assert_eq!(c.position(&tp).await.unwrap(), 0);

    // The Stream implementation yields records in order.
    let mut c = Box::pin(c);
    for want in 0..10 {
        let r = tokio::time::timeout(
            WAIT,
            poll_fn(|cx| futures_core::Stream::poll_next(c.as_mut(), cx)),
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
        assert_eq!(r.offset, want);
    }
    let mut c = *std::pin::Pin::into_inner(c);
    assert_eq!(c.position(&tp).await.unwrap(), 10);

    // Seek forward and back: data fetched before a seek never shows after it.
    c.seek(&tp, 50).unwrap();
    assert_eq!(c.position(&tp).await.unwrap(), 50);
    assert_eq!(take(&mut c, 1).await[0].offset, 50);
    c.seek(&tp, 7).unwrap();
    let r = take(&mut c, 1).await;
    assert_eq!(r[0].offset, 7);

    // Paused: nothing returned, position kept; resumed: continues in order.
    c.seek(&tp, 30).unwrap();
    c.pause(&[tp.clone()]).unwrap();
    assert_eq!(c.paused(), vec![tp.clone()]);
    let pos = c.position(&tp).await.unwrap();
    assert_eq!(pos, 30);
    assert!(drain_for(&mut c, Duration::from_secs(1)).await.is_empty());
    assert_eq!(c.position(&tp).await.unwrap(), pos);
    c.resume(&[tp.clone()]).unwrap();
    let r = take(&mut c, 1).await;
    assert_eq!(r[0].offset, pos);

    c.seek_to_end(&[tp.clone()]).unwrap();
    assert_eq!(c.position(&tp).await.unwrap(), 100);
    c.seek_to_beginning(&[tp.clone()]).unwrap();
    assert_eq!(c.position(&tp).await.unwrap(), 0);
    let all = take(&mut c, 100).await;
    assert_eq!(
        all.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );
    assert_eq!(c.current_lag(&tp), Some(0));

    // Unassigned partitions are refused by name.
    let e = c.seek(&TopicPartition::new(&t, 9), 0).unwrap_err();
    assert_eq!(*e.kind(), ErrorKind::IllegalState);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_earliest_latest_and_by_timestamp() {
    let t = topic("list-offsets", 1).await;
    let tp = TopicPartition::new(&t, 0);
    peer("produce", &["--topic", &t, "--count", "10"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let between = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(50)).await;
    peer("produce", &["--topic", &t, "--count", "10"]).await;
    let c = consumer(OffsetReset::Latest, IsolationLevel::ReadUncommitted, None);
    assert_eq!(c.beginning_offsets(&[tp.clone()]).await.unwrap()[&tp], 0);
    assert_eq!(c.end_offsets(&[tp.clone()]).await.unwrap()[&tp], 20);
    let found =
        c.offsets_for_times(&[(tp.clone(), between)]).await.unwrap()[&tp].expect("an offset");
    assert_eq!(found.offset, 10);
    assert!(found.timestamp >= between);
    let none = c
        .offsets_for_times(&[(tp.clone(), between + 3_600_000)])
        .await
        .unwrap();
    assert_eq!(none[&tp], None);
    assert_eq!(
        c.offsets_for_times(&[(tp.clone(), 0)]).await.unwrap()[&tp]
            .unwrap()
            .offset,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_offset_reset_earliest_latest_and_none() {
    let t = topic("reset", 1).await;
    let tp = TopicPartition::new(&t, 0);
    peer(
        "produce",
        &["--topic", &t, "--count", "5", "--value-prefix", "old-"],
    )
    .await;

    let mut early = consumer(OffsetReset::Earliest, IsolationLevel::ReadUncommitted, None);
    early.assign(&[tp.clone()]).unwrap();
    assert_eq!(take(&mut early, 1).await[0].offset, 0);

    let mut late = consumer(OffsetReset::Latest, IsolationLevel::ReadUncommitted, None);
    late.assign(&[tp.clone()]).unwrap();
    assert_eq!(late.position(&tp).await.unwrap(), 5);
    peer(
        "produce",
        &["--topic", &t, "--count", "3", "--value-prefix", "new-"],
    )
    .await;
    let got = take(&mut late, 3).await;
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [5, 6, 7]);
    assert!(got.iter().all(|r| value(r).starts_with("new-")));

    // none: no position -> a typed error; a seek fixes it; out of range
    // -> OFFSET_OUT_OF_RANGE, and the partition waits for another seek.
    let mut none = consumer(OffsetReset::None, IsolationLevel::ReadUncommitted, None);
    none.assign(&[tp.clone()]).unwrap();
    let e = none.poll(WAIT).await.unwrap_err();
    assert_eq!(*e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(e.partition(), Some(0));
    none.seek(&tp, 2).unwrap();
    assert_eq!(take(&mut none, 1).await[0].offset, 2);
    none.seek(&tp, 1000).unwrap();
    let e = none.poll(WAIT).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::OFFSET_OUT_OF_RANGE), "{e}");
    none.seek(&tp, 6).unwrap();
    assert_eq!(take(&mut none, 1).await[0].offset, 6);

    // With a policy, an out-of-range position is reset.
    early.seek(&tp, 1000).unwrap();
    let r = take(&mut early, 1).await;
    assert_eq!(r[0].offset, 0, "reset to earliest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_committed_round_trip() {
    let t = topic("commit", 2).await;
    let tp0 = TopicPartition::new(&t, 0);
    let tp1 = TopicPartition::new(&t, 1);
    peer(
        "produce",
        &["--topic", &t, "--count", "20", "--partition", "0"],
    )
    .await;
    let group = unique("group");

    let mut c = consumer(
        OffsetReset::Earliest,
        IsolationLevel::ReadUncommitted,
        Some(&group),
    );
    c.assign(&[tp0.clone(), tp1.clone()]).unwrap();
    let none = c.committed(&[tp0.clone(), tp1.clone()]).await.unwrap();
    assert_eq!(none[&tp0], None);
    assert_eq!(none[&tp1], None);
    let got = take(&mut c, 10).await;
    let last = got[9].offset;
    c.seek(&tp0, last + 1).unwrap();
    c.commit_offsets_sync(vec![(
        tp0.clone(),
        OffsetAndMetadata {
            offset: last + 1,
            leader_epoch: got[9].leader_epoch,
            metadata: String::new(),
        },
    )])
    .await
    .unwrap();
    let committed = c.committed(&[tp0.clone()]).await.unwrap()[&tp0]
        .clone()
        .unwrap();
    assert_eq!(committed.offset, last + 1);
    assert_eq!(committed.leader_epoch, got[9].leader_epoch);

    // A new consumer of the group starts at the committed offset.
    let mut d = consumer(
        OffsetReset::Latest,
        IsolationLevel::ReadUncommitted,
        Some(&group),
    );
    d.assign(&[tp0.clone()]).unwrap();
    assert_eq!(d.position(&tp0).await.unwrap(), last + 1);
    assert_eq!(take(&mut d, 1).await[0].offset, last + 1);

    // Explicit offsets with metadata, asynchronously; then the positions.
    let pending = d.commit_offsets_async(vec![(
        tp0.clone(),
        OffsetAndMetadata {
            offset: 15,
            leader_epoch: None,
            metadata: "m".into(),
        },
    )]);
    pending.await.unwrap();
    let got = d.committed(&[tp0.clone()]).await.unwrap()[&tp0]
        .clone()
        .unwrap();
    assert_eq!((got.offset, got.metadata.as_str()), (15, "m"));
    d.commit_sync().await.unwrap();
    let pos = d.position(&tp0).await.unwrap();
    assert!(pos > last + 1);
    assert_eq!(
        d.committed(&[tp0.clone()]).await.unwrap()[&tp0]
            .clone()
            .unwrap()
            .offset,
        pos
    );
    assert_eq!(d.group_metadata().unwrap().generation_id, -1);

    // No group: commits are refused.
    let mut e = consumer(OffsetReset::Earliest, IsolationLevel::ReadUncommitted, None);
    e.assign(&[tp0.clone()]).unwrap();
    assert_eq!(
        *e.commit_sync().await.unwrap_err().kind(),
        ErrorKind::IllegalState
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_hides_aborted_transactions_across_compressions() {
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    let mut topics = Vec::new();
    for c in codecs {
        topics.push(topic(&format!("rc-{c}"), 1).await);
    }
    // Per codec: a transactional producer (every 2nd transaction aborted)
    // and a plain producer writing the same partition at the same time.
    let mut runs = Vec::new();
    for (c, t) in codecs.iter().zip(&topics) {
        let txn_id = unique("txn");
        let (t1, t2, c1, c2) = (t.clone(), t.clone(), c.to_string(), c.to_string());
        runs.push(tokio::spawn(async move {
            peer(
                "txn-produce",
                &[
                    "--topic",
                    &t1,
                    "--transactional-id",
                    &txn_id,
                    "--transactions",
                    "6",
                    "--per-transaction",
                    "7",
                    "--abort-every",
                    "2",
                    "--partition",
                    "0",
                    "--compression",
                    &c1,
                    "--value-prefix",
                    &format!("txn-{c1}-"),
                ],
            )
            .await
        }));
        runs.push(tokio::spawn(async move {
            peer(
                "produce",
                &[
                    "--topic",
                    &t2,
                    "--count",
                    "30",
                    "--partition",
                    "0",
                    "--compression",
                    &c2,
                    "--value-prefix",
                    &format!("plain-{c2}-"),
                ],
            )
            .await
        }));
    }
    let mut outputs = Vec::new();
    for r in runs {
        outputs.push(r.await.unwrap());
    }
    for (i, (c, t)) in codecs.iter().zip(&topics).enumerate() {
        let summary = outputs[2 * i].last().unwrap().clone();
        let committed = json_list(&summary, "committed");
        let aborted = json_list(&summary, "aborted");
        assert_eq!((committed.len(), aborted.len()), (21, 21), "{summary}");
        let plain: Vec<String> = (0..30).map(|n| format!("plain-{c}-{n}")).collect();
        let tp = TopicPartition::new(t, 0);

        let mut rc = consumer(OffsetReset::Earliest, IsolationLevel::ReadCommitted, None);
        rc.assign(&[tp.clone()]).unwrap();
        let got = take(&mut rc, committed.len() + plain.len()).await;
        let values: Vec<String> = got.iter().map(value).collect();
        let seen: HashSet<&String> = values.iter().collect();
        assert_eq!(seen.len(), values.len(), "{c}: no duplicates");
        for v in committed.iter().chain(&plain) {
            assert!(seen.contains(v), "{c}: committed/plain record {v} missing");
        }
        for v in &aborted {
            assert!(!seen.contains(v), "{c}: aborted record {v} shown");
        }
        // Each producer's records in its own order; offsets increasing.
        let txn_order: Vec<&String> = values.iter().filter(|v| v.starts_with("txn-")).collect();
        assert_eq!(txn_order, committed.iter().collect::<Vec<_>>(), "{c}");
        assert!(got.windows(2).all(|w| w[0].offset < w[1].offset));
        // The position ends past the last marker: at the log end.
        let end = rc.end_offsets(&[tp.clone()]).await.unwrap()[&tp];
        let deadline = Instant::now() + WAIT;
        let pos = loop {
            let _ = rc.poll(Duration::from_millis(100)).await.unwrap();
            let p = rc.position(&tp).await.unwrap();
            if p == end || Instant::now() > deadline {
                break p;
            }
        };
        assert_eq!(pos, end);
        assert!(got.iter().all(|r| r.offset < end));

        // read_uncommitted shows everything but the markers.
        let mut ru = consumer(OffsetReset::Earliest, IsolationLevel::ReadUncommitted, None);
        ru.assign(&[tp.clone()]).unwrap();
        let all = take(&mut ru, committed.len() + aborted.len() + plain.len()).await;
        let all_values: HashSet<String> = all.iter().map(value).collect();
        assert_eq!(all_values.len(), 72, "{c}");
        assert!(aborted.iter().all(|v| all_values.contains(v)));
        assert!(
            drain_for(&mut ru, Duration::from_millis(500))
                .await
                .is_empty(),
            "{c}: no control records shown"
        );
    }
}

/// Reads the peer's stdout lines into a channel as they come.
fn spawn_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

async fn next_line(rx: &std::sync::mpsc::Receiver<String>, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match rx.try_recv() {
            Ok(l) => return l,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                panic!("peer exited while waiting for {what}")
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_waits_at_the_lso_while_a_transaction_is_open() {
    let t = topic("lso", 1).await;
    let tp = TopicPartition::new(&t, 0);
    peer(
        "produce",
        &[
            "--topic",
            &t,
            "--count",
            "4",
            "--partition",
            "0",
            "--value-prefix",
            "before-",
        ],
    )
    .await;
    let txn_id = unique("txn-open");
    // Transaction 0 commits, transaction 1 aborts; each stays open 10 s.
    let mut child = peer_command(
        "txn-produce",
        &[
            "--topic",
            &t,
            "--transactional-id",
            &txn_id,
            "--transactions",
            "2",
            "--per-transaction",
            "3",
            "--abort-every",
            "2",
            "--partition",
            "0",
            "--hold-open-ms",
            "10000",
            "--value-prefix",
            "txn-",
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("java peer");
    let lines = spawn_lines(&mut child);

    let mut rc = consumer(OffsetReset::Earliest, IsolationLevel::ReadCommitted, None);
    rc.assign(&[tp.clone()]).unwrap();
    let first = take(&mut rc, 4).await;
    assert!(first.iter().all(|r| value(r).starts_with("before-")));

    assert_eq!(
        next_line(&lines, "transaction 0 open").await,
        "{\"open\":0}"
    );
    // Plain records after the open transaction's records are past the LSO too.
    peer(
        "produce",
        &[
            "--topic",
            &t,
            "--count",
            "5",
            "--partition",
            "0",
            "--value-prefix",
            "after-",
        ],
    )
    .await;
    let mut ru = consumer(OffsetReset::Earliest, IsolationLevel::ReadUncommitted, None);
    ru.assign(&[tp.clone()]).unwrap();
    let dirty = take(&mut ru, 12).await;
    assert!(
        dirty.iter().any(|r| value(r).starts_with("txn-0-")),
        "the open transaction's data is in the log"
    );
    let held = drain_for(&mut rc, Duration::from_secs(2)).await;
    let still_open = matches!(lines.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty));
    if still_open {
        assert!(
            held.is_empty(),
            "read_committed returned {:?} while the transaction was open",
            held.iter().map(value).collect::<Vec<_>>()
        );
        assert_eq!(rc.position(&tp).await.unwrap(), 4, "held at the LSO");
    }
    // After the commit: the transaction's records, then the plain ones.
    let mut after = held;
    let need = 8 - after.len();
    after.extend(take(&mut rc, need).await);
    let values: Vec<String> = after.iter().map(value).collect();
    assert_eq!(
        values,
        ["txn-0-0", "txn-0-1", "txn-0-2", "after-0", "after-1", "after-2", "after-3", "after-4"]
    );

    // Transaction 1 opens and is aborted: nothing of it is ever shown, and
    // the position moves past its records and marker once it ends.
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let summary = next_line(&lines, "summary").await;
    let summary = if summary.starts_with("{\"open\"") {
        next_line(&lines, "summary").await
    } else {
        summary
    };
    assert_eq!(
        json_list(&summary, "aborted"),
        ["txn-1-0", "txn-1-1", "txn-1-2"]
    );
    let end = rc.end_offsets(&[tp.clone()]).await.unwrap()[&tp];
    let deadline = Instant::now() + WAIT;
    loop {
        let got = rc.poll(Duration::from_millis(200)).await.unwrap();
        assert!(
            got.is_empty(),
            "aborted records shown: {:?}",
            got.iter().map(value).collect::<Vec<_>>()
        );
        if rc.position(&tp).await.unwrap() == end {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "position never reached the end {end}"
        );
    }
}
