//! An exactly-once checker, independent of the client under test.
//!
//! The producing side writes down what it did in a [`Ledger`]: every send of
//! a unique value (its partition, the transaction it belonged to, its place
//! in an ordered stream), whether the send was acknowledged or failed, and
//! how each transaction ended as the application saw it. The final state of
//! the topic, read back by a read_committed consumer, goes into an
//! [`Observed`] (one per reader: kafkawire's and librdkafka's). [`check`]
//! compares the two and returns a [`Report`]:
//!
//! * **lost** — a value that must be visible is not: an acknowledged
//!   non-transactional send, a send of a transaction whose commit was
//!   reported OK, or a value [`required`](Ledger::require) outright (the
//!   copier's input records);
//! * **duplicates** — a value visible more than once;
//! * **aborted visible** — a record of a transaction that was aborted;
//! * **partial transactions** — a transaction of which some but not all
//!   sends are visible (whatever its reported outcome), or a committed one
//!   not wholly visible (with tags: its own copies, not another attempt's);
//! * **order violations** — within one partition, two records of the same
//!   ordered stream appear in the opposite order of their order keys;
//! * **misplaced** — a value visible in another partition than it was sent to;
//! * **phantoms** — a visible value (or value/transaction pair) never sent.
//!
//! Transactions are named by the producing side (any string unique to one
//! transaction, e.g. `copier-2/life-3/txn-17`). When one value may be sent in
//! several transactions (a copier re-copies after an abort or a crash), the
//! producer should stamp each record with its transaction's name (a header)
//! and the reader should pass it to [`Observed::push`]: the checker then
//! knows which send a visible record came from. Without a tag, a record is
//! attributed to the value's only send, or, if there are several, to a
//! committed one, else to the latest.
//!
//! The checker knows nothing about Kafka clients: tests build the inputs
//! from whatever they produced and read ([`Observed::from_peer`] converts
//! the records printed by an interop peer).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// How one send ended, as the producer reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// No answer recorded (yet): the outcome is unknown.
    Pending,
    /// Acknowledged at this offset.
    Acked { offset: i64 },
    /// Reported failed. The record may still have been written (a failed
    /// non-transactional send is not proof of absence).
    Failed,
}

/// How a transaction ended, as the application saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOutcome {
    /// No outcome recorded: begun and never finished (a crash), or a commit
    /// whose result is unknown. All or nothing of it may be visible.
    Unknown,
    /// `commit_transaction` reported success: all of it must be visible.
    Committed,
    /// Aborted (by `abort_transaction`, or known to be aborted by the
    /// broker): none of it may be visible.
    Aborted,
}

/// One send of a value, as given to [`Ledger::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub value: String,
    pub partition: i32,
    pub txn: Option<String>,
    /// (stream, key): records of one stream in one partition must appear
    /// in increasing key order.
    pub order: Option<(String, u64)>,
    pub ack: Ack,
}

impl Send {
    /// A send of `value` to `partition`, outside any transaction, unordered.
    pub fn new(value: impl Into<String>, partition: i32) -> Send {
        Send {
            value: value.into(),
            partition,
            txn: None,
            order: None,
            ack: Ack::Pending,
        }
    }

    /// Part of transaction `txn`.
    pub fn txn(mut self, txn: impl Into<String>) -> Send {
        self.txn = Some(txn.into());
        self
    }

    /// The `key`-th record of ordered stream `stream`.
    pub fn order(mut self, stream: impl Into<String>, key: u64) -> Send {
        self.order = Some((stream.into(), key));
        self
    }
}

/// Everything the producing side did. Cheap to fill from many tasks behind
/// a mutex; [`check`] reads it at the end.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    sends: Vec<Send>,
    /// value -> indexes into `sends`.
    by_value: HashMap<String, Vec<usize>>,
    txns: BTreeMap<String, TxnOutcome>,
    required: Vec<String>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Records a send. Returns its index (for [`acked`](Self::acked_send)
    /// when one value is sent more than once).
    pub fn send(&mut self, s: Send) -> usize {
        if let Some(t) = &s.txn {
            self.txns.entry(t.clone()).or_insert(TxnOutcome::Unknown);
        }
        let i = self.sends.len();
        self.by_value.entry(s.value.clone()).or_default().push(i);
        self.sends.push(s);
        i
    }

    /// The latest send of `value` was acknowledged at `offset`.
    pub fn acked(&mut self, value: &str, offset: i64) {
        if let Some(&i) = self.by_value.get(value).and_then(|v| v.last()) {
            self.sends[i].ack = Ack::Acked { offset };
        }
    }

    /// Send number `index` (from [`send`](Self::send)) was acknowledged.
    pub fn acked_send(&mut self, index: usize, offset: i64) {
        self.sends[index].ack = Ack::Acked { offset };
    }

    /// The latest send of `value` was reported failed.
    pub fn failed(&mut self, value: &str) {
        if let Some(&i) = self.by_value.get(value).and_then(|v| v.last()) {
            self.sends[i].ack = Ack::Failed;
        }
    }

    /// Declares a transaction (so one with no sends is known too).
    pub fn begin(&mut self, txn: &str) {
        self.txns
            .entry(txn.to_string())
            .or_insert(TxnOutcome::Unknown);
    }

    /// `commit_transaction` of `txn` reported success.
    pub fn committed(&mut self, txn: &str) {
        self.txns.insert(txn.to_string(), TxnOutcome::Committed);
    }

    /// `txn` was aborted.
    pub fn aborted(&mut self, txn: &str) {
        self.txns.insert(txn.to_string(), TxnOutcome::Aborted);
    }

    /// `value` must be visible exactly once, whatever happened to its sends
    /// (e.g. every input record of an exactly-once copier).
    pub fn require(&mut self, value: impl Into<String>) {
        self.required.push(value.into());
    }

    /// The recorded outcome of `txn`.
    pub fn outcome(&self, txn: &str) -> Option<TxnOutcome> {
        self.txns.get(txn).copied()
    }

    pub fn sends(&self) -> &[Send] {
        &self.sends
    }

    /// Number of transactions per outcome: (committed, aborted, unknown).
    pub fn txn_counts(&self) -> (usize, usize, usize) {
        let n = |o| self.txns.values().filter(|x| **x == o).count();
        (
            n(TxnOutcome::Committed),
            n(TxnOutcome::Aborted),
            n(TxnOutcome::Unknown),
        )
    }
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
    /// The transaction tag carried by the record, if the producer set one.
    pub txn: Option<String>,
}

/// What one reader saw, in the order it saw it per partition.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Who read it (for messages): "kafkawire", "librdkafka", ...
    pub reader: String,
    pub records: Vec<Seen>,
}

impl Observed {
    pub fn new(reader: impl Into<String>) -> Observed {
        Observed {
            reader: reader.into(),
            records: Vec::new(),
        }
    }

    pub fn push(
        &mut self,
        partition: i32,
        offset: i64,
        value: impl Into<String>,
        txn: Option<String>,
    ) {
        self.records.push(Seen {
            partition,
            offset,
            value: value.into(),
            txn,
        });
    }

    /// From the records an interop peer printed; the transaction tag is
    /// the value of header `txn_header` when given.
    pub fn from_peer(
        reader: &str,
        records: &[crate::interop::PeerRecord],
        txn_header: Option<&str>,
    ) -> Observed {
        let mut o = Observed::new(reader);
        for r in records {
            let txn = txn_header.and_then(|h| {
                r.headers
                    .iter()
                    .find(|(k, _)| k == h)
                    .and_then(|(_, v)| v.clone())
            });
            o.push(
                r.partition,
                r.offset,
                r.value.clone().unwrap_or_default(),
                txn,
            );
        }
        o
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// The verdict. Each list holds every violation found (tests print the
/// first few); `visible` and `expected` are for the summary.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub reader: String,
    /// Records read back.
    pub visible: usize,
    /// Distinct values that had to be visible.
    pub expected: usize,
    pub lost: Vec<String>,
    /// (value, times visible).
    pub duplicates: Vec<(String, usize)>,
    /// (value, transaction).
    pub aborted_visible: Vec<(String, String)>,
    /// (transaction, outcome, sends visible, sends in it).
    pub partial_txns: Vec<(String, TxnOutcome, usize, usize)>,
    /// Human-readable: partition, stream, the two offsets and keys.
    pub order_violations: Vec<String>,
    /// (value, sent to, seen in).
    pub misplaced: Vec<(String, i32, i32)>,
    /// Values (with tag) visible but never sent.
    pub phantoms: Vec<String>,
}

impl Report {
    /// True when no violation of any kind was found.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicates.is_empty()
            && self.aborted_visible.is_empty()
            && self.partial_txns.is_empty()
            && self.order_violations.is_empty()
            && self.misplaced.is_empty()
            && self.phantoms.is_empty()
    }

    /// Panics with the summary and examples unless clean.
    #[track_caller]
    pub fn assert_clean(&self) {
        assert!(self.is_clean(), "exactly-once violated:\n{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "[{}] {} records visible, {} values expected: {} lost, {} duplicated, {} aborted visible, \
             {} transactions partly visible, {} order violations, {} misplaced, {} phantoms",
            self.reader,
            self.visible,
            self.expected,
            self.lost.len(),
            self.duplicates.len(),
            self.aborted_visible.len(),
            self.partial_txns.len(),
            self.order_violations.len(),
            self.misplaced.len(),
            self.phantoms.len()
        )?;
        fn some<T: fmt::Debug>(f: &mut fmt::Formatter<'_>, what: &str, v: &[T]) -> fmt::Result {
            if !v.is_empty() {
                writeln!(
                    f,
                    "  {what} (first {} of {}): {:?}",
                    v.len().min(10),
                    v.len(),
                    &v[..v.len().min(10)]
                )?;
            }
            Ok(())
        }
        some(f, "lost", &self.lost)?;
        some(f, "duplicates", &self.duplicates)?;
        some(f, "aborted visible", &self.aborted_visible)?;
        some(f, "partial transactions", &self.partial_txns)?;
        some(f, "order violations", &self.order_violations)?;
        some(f, "misplaced", &self.misplaced)?;
        some(f, "phantoms", &self.phantoms)
    }
}

/// Compares what was produced with what one reader saw.
pub fn check(ledger: &Ledger, observed: &Observed) -> Report {
    let mut r = Report {
        reader: observed.reader.clone(),
        visible: observed.records.len(),
        ..Default::default()
    };

    // Attribute each visible record to one send.
    let mut visible_sends: HashMap<usize, usize> = HashMap::new();
    let mut by_value: HashMap<&str, usize> = HashMap::new();
    let mut attributed: Vec<Option<usize>> = Vec::with_capacity(observed.records.len());
    for seen in &observed.records {
        *by_value.entry(seen.value.as_str()).or_default() += 1;
        let send = attribute(ledger, seen);
        match send {
            Some(i) => *visible_sends.entry(i).or_default() += 1,
            None => r.phantoms.push(match &seen.txn {
                Some(t) => format!("{} (txn {t})", seen.value),
                None => seen.value.clone(),
            }),
        }
        attributed.push(send);
    }

    // Lost: values that must be visible.
    let mut must: Vec<&str> = ledger.required.iter().map(String::as_str).collect();
    for s in &ledger.sends {
        let needed = match &s.txn {
            Some(t) => ledger.txns.get(t) == Some(&TxnOutcome::Committed),
            None => matches!(s.ack, Ack::Acked { .. }),
        };
        if needed {
            must.push(&s.value);
        }
    }
    must.sort_unstable();
    must.dedup();
    r.expected = must.len();
    r.lost = must
        .iter()
        .filter(|v| !by_value.contains_key(**v))
        .map(|v| v.to_string())
        .collect();

    // Duplicates.
    let mut dups: Vec<(String, usize)> = by_value
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(v, n)| (v.to_string(), *n))
        .collect();
    dups.sort();
    r.duplicates = dups;

    // Aborted visible, misplaced.
    for (seen, send) in observed.records.iter().zip(&attributed) {
        let Some(i) = *send else { continue };
        let s = &ledger.sends[i];
        if let Some(t) = &s.txn {
            if ledger.txns.get(t) == Some(&TxnOutcome::Aborted) {
                r.aborted_visible.push((s.value.clone(), t.clone()));
            }
        }
        if s.partition != seen.partition {
            r.misplaced
                .push((s.value.clone(), s.partition, seen.partition));
        }
    }

    // Transactions: all or nothing of each.
    let mut per_txn: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (i, s) in ledger.sends.iter().enumerate() {
        if let Some(t) = &s.txn {
            let e = per_txn.entry(t.as_str()).or_default();
            e.1 += 1;
            if visible_sends.contains_key(&i) {
                e.0 += 1;
            }
        }
    }
    for (t, (vis, total)) in per_txn {
        let committed = ledger.txns[t] == TxnOutcome::Committed;
        if vis != total && (vis != 0 || committed) {
            r.partial_txns
                .push((t.to_string(), ledger.txns[t], vis, total));
        }
    }

    // Order within each partition, per stream, in offset order.
    let mut by_part: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
    for (seen, send) in observed.records.iter().zip(&attributed) {
        if let Some(i) = *send {
            by_part
                .entry(seen.partition)
                .or_default()
                .push((seen.offset, i));
        }
    }
    for (p, mut recs) in by_part {
        recs.sort_by_key(|(o, _)| *o);
        let mut last: HashMap<&str, (i64, u64)> = HashMap::new();
        for (offset, i) in recs {
            let Some((stream, key)) = &ledger.sends[i].order else {
                continue;
            };
            if let Some((prev_off, prev_key)) = last.get(stream.as_str()) {
                if *key <= *prev_key {
                    r.order_violations.push(format!(
                        "partition {p}, stream {stream}: key {key} at offset {offset} after key {prev_key} at offset {prev_off}"
                    ));
                }
            }
            last.insert(stream, (offset, *key));
        }
    }
    r
}

/// Reads every partition of `topic` from the beginning with kafkawire's
/// read_committed consumer until each position reaches the partition's
/// end offset (the LSO, so run this when no transaction is open any more).
/// The transaction tag is the value of header `txn_header` when given.
/// Panics after `timeout`.
pub async fn read_kafkawire(
    topic: &str,
    txn_header: Option<&str>,
    timeout: std::time::Duration,
) -> Observed {
    use kafkawire::consumer::{Consumer, IsolationLevel, OffsetReset, TopicPartition};
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + timeout;
    let admin = crate::admin();
    let snap = admin
        .cluster()
        .metadata_for(&[topic.to_string()], deadline)
        .await
        .unwrap_or_else(|e| panic!("metadata for {topic}: {e}"));
    let parts: Vec<TopicPartition> = snap
        .topic(topic)
        .unwrap_or_else(|| panic!("topic {topic} not found"))
        .partitions
        .iter()
        .map(|p| TopicPartition::new(topic, p.partition))
        .collect();
    let mut c = Consumer::builder()
        .bootstrap_servers(&crate::bootstrap())
        .client_id("checker")
        .isolation_level(IsolationLevel::ReadCommitted)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .set("fetch.max.wait.ms", "200")
        .build()
        .expect("checker consumer");
    c.assign(&parts).unwrap();
    let end = c
        .end_offsets(&parts)
        .await
        .unwrap_or_else(|e| panic!("end offsets of {topic}: {e}"));
    let mut o = Observed::new("kafkawire");
    loop {
        let mut behind = Vec::new();
        for tp in &parts {
            let pos = c
                .position_within(tp, Duration::from_secs(30))
                .await
                .unwrap_or_else(|e| panic!("position {tp}: {e}"));
            if pos < end[tp] {
                behind.push((tp.partition(), pos, end[tp]));
            }
        }
        if behind.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kafkawire read of {topic} timed out; (partition, position, end): {behind:?}"
        );
        for r in c
            .poll(Duration::from_millis(500))
            .await
            .unwrap_or_else(|e| panic!("poll {topic}: {e}"))
        {
            let txn = txn_header.and_then(|h| {
                r.headers()
                    .last(h)
                    .flatten()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            });
            let value =
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            o.push(r.partition, r.offset, value, txn);
        }
    }
    o
}

/// Reads all of `topic` with a librdkafka read_committed consumer (the
/// rdkafka interop peer) until it has been idle for `idle_ms`.
pub fn read_rdkafka(topic: &str, txn_header: Option<&str>, idle_ms: u64) -> Observed {
    let records = crate::interop::consume_until_idle(
        crate::interop::Peer::Rdkafka,
        topic,
        "read_committed",
        idle_ms,
    );
    Observed::from_peer("librdkafka", &records, txn_header)
}

/// The send a visible record came from: by (value, transaction tag) when it
/// carries a tag, else the value's only send, else a committed one, else
/// the latest.
fn attribute(ledger: &Ledger, seen: &Seen) -> Option<usize> {
    let sends = ledger.by_value.get(&seen.value)?;
    if let Some(tag) = &seen.txn {
        return sends
            .iter()
            .rev()
            .copied()
            .find(|&i| ledger.sends[i].txn.as_deref() == Some(tag.as_str()));
    }
    if sends.len() == 1 {
        return Some(sends[0]);
    }
    let committed = sends.iter().rev().copied().find(|&i| {
        ledger.sends[i]
            .txn
            .as_ref()
            .is_some_and(|t| ledger.txns.get(t) == Some(&TxnOutcome::Committed))
    });
    committed.or(sends.last().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two committed transactions of 3 on partition 0 and 1, one aborted,
    /// one plain acknowledged send; everything correct.
    fn ledger() -> Ledger {
        let mut l = Ledger::new();
        for (t, vals) in [
            ("t1", ["a", "b", "c"]),
            ("t2", ["d", "e", "f"]),
            ("t3", ["g", "h", "i"]),
        ] {
            l.begin(t);
            for v in vals {
                let key = (v.as_bytes()[0] - b'a') as u64;
                l.send(Send::new(v, 0).txn(t).order("s", key));
            }
        }
        l.committed("t1");
        l.committed("t2");
        l.aborted("t3");
        l.send(Send::new("plain", 1).order("p", 0));
        l.acked("plain", 0);
        l
    }

    fn clean_read() -> Observed {
        let mut o = Observed::new("test");
        for (off, v) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            // Offsets leave room for the control markers.
            o.push(0, off as i64 + if off >= 3 { 1 } else { 0 }, *v, None);
        }
        o.push(1, 0, "plain", None);
        o
    }

    #[test]
    fn a_correct_read_is_clean() {
        let r = check(&ledger(), &clean_read());
        assert!(r.is_clean(), "{r}");
        assert_eq!((r.visible, r.expected), (7, 7));
        r.assert_clean();
    }

    #[test]
    fn a_lost_committed_or_acked_record_is_reported() {
        let mut o = clean_read();
        o.records.retain(|s| s.value != "e" && s.value != "plain");
        let r = check(&ledger(), &o);
        assert_eq!(r.lost, vec!["e".to_string(), "plain".to_string()]);
        // Losing one record of a transaction also makes it partial.
        assert_eq!(
            r.partial_txns,
            vec![("t2".to_string(), TxnOutcome::Committed, 2, 3)]
        );
        assert!(!r.is_clean());
    }

    #[test]
    fn a_required_value_must_be_visible_even_without_a_send() {
        let mut l = ledger();
        l.require("input-7");
        let r = check(&l, &clean_read());
        assert_eq!(r.lost, vec!["input-7".to_string()]);
    }

    #[test]
    fn a_pending_or_failed_plain_send_need_not_be_visible() {
        let mut l = ledger();
        l.send(Send::new("maybe", 1));
        l.send(Send::new("failed", 1));
        l.failed("failed");
        let r = check(&l, &clean_read());
        r.assert_clean();
        // ... but may be (once).
        let mut o = clean_read();
        o.push(1, 1, "failed", None);
        check(&l, &o).assert_clean();
    }

    #[test]
    fn a_duplicate_is_reported() {
        let mut o = clean_read();
        o.push(0, 10, "b", None);
        let r = check(&ledger(), &o);
        assert_eq!(r.duplicates, vec![("b".to_string(), 2)]);
        // It is also out of order (key 1 after key 5).
        assert_eq!(r.order_violations.len(), 1, "{r}");
        assert!(r.lost.is_empty() && r.partial_txns.is_empty());
    }

    #[test]
    fn an_aborted_record_visible_is_reported() {
        let mut o = clean_read();
        for (i, v) in ["g", "h", "i"].iter().enumerate() {
            o.push(0, 20 + i as i64, *v, None);
        }
        let r = check(&ledger(), &o);
        assert_eq!(r.aborted_visible.len(), 3);
        assert_eq!(r.aborted_visible[0], ("g".to_string(), "t3".to_string()));
        assert!(
            r.partial_txns.is_empty(),
            "all of t3 is visible, so it is not partial"
        );
    }

    #[test]
    fn a_transaction_of_unknown_outcome_must_be_all_or_nothing() {
        let mut l = ledger();
        l.begin("t4");
        l.send(Send::new("x", 2).txn("t4"));
        l.send(Send::new("y", 2).txn("t4"));
        // Nothing of it: fine.
        check(&l, &clean_read()).assert_clean();
        // All of it: fine.
        let mut all = clean_read();
        all.push(2, 0, "x", None);
        all.push(2, 1, "y", None);
        check(&l, &all).assert_clean();
        // Half of it: partial.
        let mut half = clean_read();
        half.push(2, 0, "x", None);
        let r = check(&l, &half);
        assert_eq!(
            r.partial_txns,
            vec![("t4".to_string(), TxnOutcome::Unknown, 1, 2)]
        );
    }

    #[test]
    fn out_of_order_records_in_a_partition_are_reported() {
        let mut o = clean_read();
        // Swap the offsets of b and c.
        o.records[1].offset = 2;
        o.records[2].offset = 1;
        let r = check(&ledger(), &o);
        assert_eq!(r.order_violations.len(), 1, "{r}");
        assert!(
            r.order_violations[0].contains("key 1 at offset 2 after key 2"),
            "{r}"
        );
        // Different streams are not compared.
        let mut l = Ledger::new();
        l.send(Send::new("s1", 0).order("one", 5));
        l.send(Send::new("s2", 0).order("two", 1));
        l.acked("s1", 0);
        l.acked("s2", 1);
        let mut o = Observed::new("test");
        o.push(0, 0, "s1", None);
        o.push(0, 1, "s2", None);
        check(&l, &o).assert_clean();
    }

    #[test]
    fn misplaced_and_phantom_records_are_reported() {
        let mut o = clean_read();
        o.records[6].partition = 3;
        o.push(1, 5, "never-sent", None);
        let r = check(&ledger(), &o);
        assert_eq!(r.misplaced, vec![("plain".to_string(), 1, 3)]);
        assert_eq!(r.phantoms, vec!["never-sent".to_string()]);
    }

    #[test]
    fn tags_tell_which_transaction_a_resent_value_came_from() {
        // A copier sends "v" in t1 (aborted), then again in t2 (committed).
        let mut l = Ledger::new();
        l.require("v");
        l.send(Send::new("v", 0).txn("t1").order("in-0", 0));
        l.aborted("t1");
        l.send(Send::new("v", 0).txn("t2").order("in-0", 0));
        l.committed("t2");
        let mut good = Observed::new("test");
        good.push(0, 2, "v", Some("t2".into()));
        check(&l, &good).assert_clean();
        // The aborted attempt's copy showing is caught by its tag.
        let mut bad = Observed::new("test");
        bad.push(0, 0, "v", Some("t1".into()));
        let r = check(&l, &bad);
        assert_eq!(r.aborted_visible, vec![("v".to_string(), "t1".to_string())]);
        assert_eq!(
            r.partial_txns,
            vec![("t2".to_string(), TxnOutcome::Committed, 0, 1)]
        );
        // Both copies: a duplicate.
        let mut both = bad.clone();
        both.push(0, 2, "v", Some("t2".into()));
        assert_eq!(check(&l, &both).duplicates, vec![("v".to_string(), 2)]);
        // A tag never used in a send is a phantom.
        let mut ghost = Observed::new("test");
        ghost.push(0, 0, "v", Some("t9".into()));
        assert_eq!(check(&l, &ghost).phantoms, vec!["v (txn t9)".to_string()]);
    }

    #[test]
    fn the_report_names_each_violation() {
        let mut o = clean_read();
        o.records.remove(0);
        let r = check(&ledger(), &o);
        let text = r.to_string();
        assert!(text.contains("1 lost") && text.contains("\"a\""), "{text}");
        let panic = std::panic::catch_unwind(|| r.assert_clean()).unwrap_err();
        let msg = panic.downcast_ref::<String>().unwrap();
        assert!(msg.contains("exactly-once violated"), "{msg}");
    }
}
