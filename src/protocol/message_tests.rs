//! Tests of the generated message codecs (`messages/`).

use super::messages::Message;
use super::wire::Reader;
use bytes::BytesMut;
use std::fmt::Debug;

/// Round-trips `sample(v)` at every version the codec implements, checks
/// `encoded_len`, and checks that every strict prefix of the encoding fails
/// to decode.
pub(crate) fn check_message<M: Message + PartialEq + Debug>(sample: fn(i16) -> M) {
    let (lo, hi) = M::VERSIONS;
    for version in lo..=hi {
        let value = sample(version);
        let mut buf = BytesMut::new();
        value.encode(&mut buf, version).unwrap_or_else(|e| panic!("encode v{version}: {e}"));
        assert_eq!(buf.len(), value.encoded_len(version), "encoded_len at v{version}");
        let bytes = buf.freeze();
        let mut r = Reader::new(bytes.clone());
        let back = M::decode(&mut r, version).unwrap_or_else(|e| panic!("decode v{version}: {e}"));
        assert_eq!(back, value, "round trip at v{version}");
        assert!(r.is_empty(), "trailing bytes at v{version}");
        for cut in 0..bytes.len() {
            let mut r = Reader::new(bytes.slice(..cut));
            assert!(M::decode(&mut r, version).is_err(), "prefix of {cut} bytes decoded at v{version}");
        }
    }
}
