//! Builds a batch from fuzzer-chosen records and options, then decodes it:
//! what comes out must be exactly what went in.
#![no_main]

use bytes::Bytes;
use kafkawire::record::{set_producer_state, BatchBuilder, BatchOptions, Batches, Compression};
use libfuzzer_sys::fuzz_target;

struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self
            .0
            .split_first()
            .map(|(b, r)| (*b, r))
            .unwrap_or((0, &[]));
        self.0 = rest;
        b
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn opt(&mut self) -> Option<&'a [u8]> {
        let l = self.byte();
        if l == 255 {
            None
        } else {
            Some(self.take(l as usize))
        }
    }
}

type Rec<'a> = (
    i64,
    Option<&'a [u8]>,
    Option<&'a [u8]>,
    Vec<(String, Option<&'a [u8]>)>,
);

fuzz_target!(|data: &[u8]| {
    let mut i = In(data);
    let flags = i.byte();
    let codec = Compression::ALL[(flags % 5) as usize];
    let opts = BatchOptions {
        producer_id: if flags & 8 != 0 { 77 } else { -1 },
        producer_epoch: if flags & 8 != 0 { 3 } else { -1 },
        base_sequence: if flags & 8 != 0 { 10 } else { -1 },
        transactional: flags & 16 != 0,
        compression: codec,
        size_limit: 1 << 16,
        ..BatchOptions::default()
    };
    let mut b = BatchBuilder::new(opts);
    let mut recs: Vec<Rec> = vec![];
    while !i.0.is_empty() && recs.len() < 500 {
        let ts = i64::from(i.byte() as i8) * 1000 + 1_700_000_000_000;
        let key = i.opt();
        let value = i.opt();
        let nh = i.byte() % 4;
        let headers: Vec<(String, Option<&[u8]>)> = (0..nh)
            .map(|_| (String::from_utf8_lossy(i.take(3)).into_owned(), i.opt()))
            .collect();
        let hs = headers.iter().map(|(k, v)| (k.as_str(), *v));
        if !b.append(ts, key, value, hs) {
            break;
        }
        recs.push((ts, key, value, headers));
    }
    let mut batch = b.finish_mut().unwrap();
    if flags & 32 != 0 {
        set_producer_state(&mut batch, 5, 6, 7).unwrap();
    }
    let mut it = Batches::new(Bytes::from(batch.to_vec()));
    let decoded = it.next().unwrap().unwrap();
    assert!(it.next().is_none() && !it.truncated_tail());
    assert_eq!(decoded.record_count() as usize, recs.len());
    let got: Vec<_> = decoded.records().unwrap().map(Result::unwrap).collect();
    assert_eq!(got.len(), recs.len());
    for (r, (ts, k, v, hs)) in got.iter().zip(&recs) {
        assert_eq!(r.timestamp, *ts);
        assert_eq!(r.key(), *k);
        assert_eq!(r.value(), *v);
        let h: Vec<(String, Option<&[u8]>)> = r
            .headers()
            .iter()
            .map(|h| (h.key_str().unwrap().to_owned(), h.value()))
            .collect();
        assert_eq!(&h, hs);
    }
});
