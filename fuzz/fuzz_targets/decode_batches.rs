//! Arbitrary bytes as a fetched partition's `records`: every magic, every
//! codec, every record and header, with and without CRC checks. The
//! decoder must never panic, and everything it yields must be consistent.
#![no_main]

use bytes::Bytes;
use kafkawire::record::{Batches, DecodeLimits, DecodeOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let opts = DecodeOptions {
        // Mostly off: with CRCs on, almost every mutation stops at the CRC.
        check_crcs: flags & 1 == 1 && flags & 2 == 2,
        limits: DecodeLimits {
            max_batch_size: if flags & 4 != 0 { 1 << 12 } else { 1 << 24 },
            max_decompressed_size: 1 << 20,
            max_records_per_batch: if flags & 8 != 0 { 16 } else { 1 << 20 },
        },
    };
    let buf = Bytes::copy_from_slice(rest);
    let mut batches = Batches::with_options(buf.clone(), opts);
    for batch in &mut batches {
        let Ok(batch) = batch else { break };
        assert!(batch.size_in_bytes() <= rest.len());
        let _ = batch.control_record();
        let Ok(set) = batch.record_set() else {
            continue;
        };
        let views: Vec<_> = set.iter().collect();
        let owned: Vec<_> = set.clone().into_iter().collect();
        assert_eq!(views.len(), owned.len());
        for (v, r) in views.into_iter().zip(owned) {
            let (Ok(v), Ok(r)) = (v, r) else { break };
            assert_eq!(v.to_record(), r);
            assert_eq!(r.key().map(<[u8]>::len), r.key_bytes().map(|b| b.len()));
            assert_eq!(r.value(), r.value_bytes().as_deref());
            let headers = r.headers();
            let mut n = 0;
            for h in headers.iter() {
                let _ = h.key_str();
                assert_eq!(h.value(), h.value_bytes().as_deref());
                n += 1;
            }
            assert_eq!(n, headers.len());
        }
    }
    assert!(batches.position() + batches.remaining() == rest.len());
});
