//! The snappy decompressor on arbitrary input (must stay within the output
//! bound and never panic), and a compress/decompress round trip of the
//! input as plain data.
#![no_main]

use bytes::BytesMut;
use kafkawire::record::compression::{compress, decompress, Compression};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = decompress(Compression::Snappy, data, LIMIT) {
        assert!(out.len() <= LIMIT);
    }
    let mut c = BytesMut::new();
    compress(Compression::Snappy, None, data, &mut c).unwrap();
    let back = decompress(Compression::Snappy, &c, data.len()).unwrap();
    assert_eq!(&back[..], data);
});
