//! The idempotent producer at the end of its epochs: when a bump would pass
//! the last epoch, it asks for a new producer id (Kafka answers
//! InitProducerId with a fresh id at epoch 0) and carries on with it at
//! sequence 0, losing and reordering nothing.

use crate::broker::{Broker, TOPIC};
use crate::common::*;
use kafkawire::producer::ProducerRecord;
use kafkawire::record::Batches;
use std::time::Duration;

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

/// (producer id, epoch, base sequence, values) of every stored batch.
fn stored(broker: &Broker) -> Vec<(i64, i16, i32, Vec<String>)> {
    let st = broker.state();
    st.logs[0]
        .iter()
        .map(|s| {
            let b = Batches::new(s.bytes.clone()).next().unwrap().unwrap();
            let values = b
                .records()
                .unwrap()
                .map(|r| String::from_utf8(r.unwrap().value().unwrap().to_vec()).unwrap())
                .collect();
            (s.producer_id, s.producer_epoch, s.base_sequence, values)
        })
        .collect()
}

async fn send_all(p: &kafkawire::producer::Producer, values: &[String]) -> Vec<i64> {
    let mut acks = Vec::new();
    for v in values {
        acks.push(
            p.send(ProducerRecord::new(TOPIC).value(v).partition(0))
                .await
                .unwrap(),
        );
    }
    let mut offsets = Vec::new();
    for a in acks {
        let m = tokio::time::timeout(Duration::from_secs(60), a)
            .await
            .expect("delivery hung")
            .expect("delivered");
        offsets.push(m.offset());
    }
    offsets
}

#[tokio::test]
async fn epoch_exhaustion_gets_a_new_producer_id() {
    let broker = Broker::start(1).await;
    // The producer starts two epochs before the end; a second id follows.
    broker
        .state()
        .producer_ids
        .extend([(7, i16::MAX - 2), (8, 0)]);
    let p = producer(&broker);
    let vals = |r: std::ops::Range<usize>| r.map(|i| format!("r{i}")).collect::<Vec<_>>();

    assert_eq!(send_all(&p, &vals(0..3)).await, vec![0, 1, 2]);
    // A gap at the head (OUT_OF_ORDER_SEQUENCE_NUMBER): the producer bumps
    // its epoch locally (KIP-360) and resends from sequence 0.
    broker
        .state()
        .produce_errors
        .push_back(OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(send_all(&p, &vals(3..6)).await, vec![3, 4, 5]);
    // Again: the epoch is exhausted now, so a new producer id is fetched.
    broker
        .state()
        .produce_errors
        .push_back(OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(send_all(&p, &vals(6..9)).await, vec![6, 7, 8]);
    assert_eq!(send_all(&p, &vals(9..12)).await, vec![9, 10, 11]);

    let log = stored(&broker);
    let values: Vec<String> = log.iter().flat_map(|b| b.3.clone()).collect();
    assert_eq!(
        values,
        vals(0..12),
        "records lost, duplicated or reordered: {log:?}"
    );
    let max = i16::MAX;
    // Every batch continues the sequence of its producer id and epoch.
    let mut expect: std::collections::HashMap<(i64, i16), i32> = Default::default();
    for (pid, epoch, seq, v) in &log {
        let next = expect.entry((*pid, *epoch)).or_insert(0);
        assert_eq!(
            seq, next,
            "batch {v:?} of {pid}/{epoch} out of sequence: {log:?}"
        );
        *next += v.len() as i32;
    }
    let epochs: Vec<(i64, i16)> = log.iter().map(|b| (b.0, b.1)).collect();
    assert_eq!(epochs.first(), Some(&(7, max - 2)), "{log:?}");
    assert!(epochs.contains(&(7, max - 1)), "no local bump: {log:?}");
    assert_eq!(epochs.last(), Some(&(8, 0)), "no new producer id: {log:?}");
    assert!(epochs.iter().all(|e| e.1 >= 0), "{log:?}");
    let inits = broker
        .state()
        .requests
        .iter()
        .filter(|(k, _)| *k == 22)
        .count();
    assert_eq!(
        inits, 2,
        "InitProducerId must be sent once at start and once at exhaustion"
    );
}
