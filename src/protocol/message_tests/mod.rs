//! Tests of the generated message codecs (`messages/`).

use super::messages::Message;
use super::wire::Reader;
use bytes::BytesMut;
use std::fmt::Debug;

/// Round-trips `sample(v)` and the default value at every version the codec
/// implements, checks `encoded_len`, and checks that every strict prefix of
/// the sample's encoding fails to decode.
pub(crate) fn check_message<M: Message + PartialEq + Debug + Default>(sample: fn(i16) -> M) {
    let (lo, hi) = M::VERSIONS;
    for version in lo..=hi {
        // Defaults (nulls, empty arrays, schema defaults) encode everywhere.
        let value = M::default();
        let mut buf = BytesMut::new();
        value
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("encode default v{version}: {e}"));
        assert_eq!(
            buf.len(),
            value.encoded_len(version),
            "encoded_len of default at v{version}"
        );
        let back = M::decode(&mut Reader::new(buf.freeze()), version).unwrap();
        assert_eq!(back, value, "default round trip at v{version}");

        let value = sample(version);
        let mut buf = BytesMut::new();
        value
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("encode v{version}: {e}"));
        assert_eq!(
            buf.len(),
            value.encoded_len(version),
            "encoded_len at v{version}"
        );
        let bytes = buf.freeze();
        let mut r = Reader::new(bytes.clone());
        let back = M::decode(&mut r, version).unwrap_or_else(|e| panic!("decode v{version}: {e}"));
        assert_eq!(back, value, "round trip at v{version}");
        assert!(r.is_empty(), "trailing bytes at v{version}");
        for cut in 0..bytes.len() {
            let mut r = Reader::new(bytes.slice(..cut));
            assert!(
                M::decode(&mut r, version).is_err(),
                "prefix of {cut} bytes decoded at v{version}"
            );
        }
    }
}

mod differential;

use super::messages::*;
use super::wire::{DecodeError, DecodeErrorKind};
use bytes::{BufMut, Bytes};

fn decode_err<M: Message + Debug>(bytes: &[u8], version: i16) -> DecodeError {
    let mut r = Reader::new(Bytes::copy_from_slice(bytes));
    match M::decode(&mut r, version) {
        Ok(v) => panic!("decoded hostile bytes into {v:?}"),
        Err(e) => e,
    }
}

fn encode<M: Message>(m: &M, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    m.encode(&mut buf, version).unwrap();
    buf.freeze()
}

#[test]
fn array_count_of_i32_max_is_too_large() {
    // MetadataResponse v0 starts with the brokers array.
    let e = decode_err::<MetadataResponse>(&[0x7f, 0xff, 0xff, 0xff], 0);
    assert_eq!(
        e.kind,
        DecodeErrorKind::TooLarge {
            declared: i32::MAX as u64,
            limit: 0
        }
    );
    assert_eq!(e.what, "MetadataResponse.brokers");
}

#[test]
fn huge_compact_array_count_is_too_large() {
    // v12: throttle_time_ms, then brokers as a compact array of u32::MAX - 1.
    let bytes = [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3];
    let e = decode_err::<MetadataResponse>(&bytes, 12);
    assert_eq!(
        e.kind,
        DecodeErrorKind::TooLarge {
            declared: u32::MAX as u64 - 1,
            limit: 3
        }
    );
}

#[test]
fn counts_are_bounded_by_the_smallest_element_encoding() {
    // Each MetadataResponseBroker takes at least 10 bytes in v0 (node id,
    // empty host, port): 2 declared brokers need 20 bytes, 19 are present.
    let mut bytes = vec![0, 0, 0, 2];
    bytes.extend_from_slice(&[0; 19]);
    let e = decode_err::<MetadataResponse>(&bytes, 0);
    assert_eq!(
        e.kind,
        DecodeErrorKind::TooLarge {
            declared: 2,
            limit: 19
        }
    );
}

#[test]
fn negative_and_null_lengths() {
    let e = decode_err::<MetadataResponse>(&[0xff, 0xff, 0xff, 0xfe], 0);
    assert_eq!(e.kind, DecodeErrorKind::NegativeLength(-2));
    let e = decode_err::<MetadataResponse>(&[0xff, 0xff, 0xff, 0xff], 0);
    assert_eq!(e.kind, DecodeErrorKind::UnexpectedNull);
    // SaslHandshake's mechanism is a non-nullable string.
    let e = decode_err::<SaslHandshakeRequest>(&[0xff, 0xff], 1);
    assert_eq!(e.kind, DecodeErrorKind::UnexpectedNull);
    let e = decode_err::<SaslHandshakeRequest>(&[0xff, 0xfe], 1);
    assert_eq!(e.kind, DecodeErrorKind::NegativeLength(-2));
}

#[test]
fn strings_are_bounded_and_validated() {
    // ApiVersionsRequest v3: client_software_name as a compact string.
    let e = decode_err::<ApiVersionsRequest>(&[0xff, 0xff, 0xff, 0xff, 0x0f], 3);
    assert!(
        matches!(e.kind, DecodeErrorKind::TooLarge { limit: 0x7fff, .. }),
        "{e}"
    );
    let e = decode_err::<SaslHandshakeRequest>(&[0, 2, 0xff, 0xfe], 1);
    assert_eq!(e.kind, DecodeErrorKind::InvalidUtf8);
    let e = decode_err::<SaslHandshakeRequest>(&[0, 9, b'P', b'L'], 1);
    assert_eq!(
        e.kind,
        DecodeErrorKind::Truncated {
            needed: 9,
            remaining: 2
        }
    );
}

#[test]
fn huge_bytes_length_is_truncated_not_allocated() {
    let e = decode_err::<SaslAuthenticateRequest>(&[0x7f, 0xff, 0xff, 0xff, 1], 0);
    assert_eq!(
        e.kind,
        DecodeErrorKind::Truncated {
            needed: i32::MAX as usize,
            remaining: 1
        }
    );
}

#[test]
fn hostile_tagged_field_sections() {
    // ApiVersionsRequest v3: two empty compact strings, then the tag count.
    let e = decode_err::<ApiVersionsRequest>(&[1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f], 3);
    assert!(matches!(e.kind, DecodeErrorKind::TooLarge { .. }), "{e}");
    // One tagged field claiming u32::MAX bytes.
    let e = decode_err::<ApiVersionsRequest>(&[1, 1, 1, 5, 0xff, 0xff, 0xff, 0xff, 0x0f, 0], 3);
    assert!(matches!(e.kind, DecodeErrorKind::Truncated { .. }), "{e}");
    // A known tagged field whose value is shorter than its type.
    // ApiVersionsResponse v3: error, empty api_keys, throttle, then tag 1
    // (FinalizedFeaturesEpoch, an int64) with only 2 bytes.
    let e = decode_err::<ApiVersionsResponse>(&[0, 0, 1, 0, 0, 0, 0, 1, 1, 2, 0, 0], 3);
    assert!(
        matches!(
            e.kind,
            DecodeErrorKind::Truncated {
                needed: 8,
                remaining: 2
            }
        ),
        "{e}"
    );
}

#[test]
fn unknown_tagged_fields_round_trip_byte_for_byte() {
    // ApiVersionsRequest v3 with two unknown tags.
    let bytes: &[u8] = &[2, b'k', 2, b'1', 2, 7, 1, 0xaa, 40, 2, 0xbb, 0xcc];
    let mut r = Reader::new(Bytes::from_static(bytes));
    let req = ApiVersionsRequest::decode(&mut r, 3).unwrap();
    assert_eq!(req.client_software_name, "k");
    assert_eq!(
        req.unknown_tagged_fields,
        vec![
            RawTaggedField {
                tag: 7,
                data: Bytes::from_static(&[0xaa])
            },
            RawTaggedField {
                tag: 40,
                data: Bytes::from_static(&[0xbb, 0xcc])
            },
        ]
    );
    assert_eq!(&encode(&req, 3)[..], bytes);
    assert_eq!(req.encoded_len(3), bytes.len());
}

#[test]
fn tagged_fields_are_written_only_when_not_default() {
    let mut resp = ApiVersionsResponse::default();
    let plain = encode(&resp, 3);
    // error code, empty compact array, throttle time, no tags.
    assert_eq!(&plain[..], &[0, 0, 1, 0, 0, 0, 0, 0]);
    resp.zk_migration_ready = true;
    let tagged = encode(&resp, 3);
    assert_eq!(&tagged[..], &[0, 0, 1, 0, 0, 0, 0, 1, 3, 1, 1]);
}

#[test]
fn unsupported_versions_are_errors() {
    let e = decode_err::<MetadataRequest>(&[0; 16], 14);
    assert_eq!(e.kind, DecodeErrorKind::UnsupportedVersion(14));
    let e = decode_err::<ProduceRequest>(&[0; 16], 2);
    assert_eq!(e.kind, DecodeErrorKind::UnsupportedVersion(2));
    let mut buf = BytesMut::new();
    let e = ProduceRequest::default().encode(&mut buf, -1).unwrap_err();
    assert_eq!(e.kind, EncodeErrorKind::UnsupportedVersion);
    assert_eq!((e.message, e.version), ("ProduceRequest", -1));
    assert!(buf.is_empty());
}

#[test]
fn non_default_fields_missing_from_a_version() {
    let mut buf = BytesMut::from(&b"keep"[..]);
    // Not ignorable: an error naming the field, and nothing appended.
    let req = MetadataRequest {
        include_cluster_authorized_operations: true,
        ..Default::default()
    };
    let e = req.encode(&mut buf, 11).unwrap_err();
    assert_eq!(
        e,
        EncodeError {
            message: "MetadataRequest",
            field: "include_cluster_authorized_operations",
            version: 11,
            kind: EncodeErrorKind::NotInVersion,
        }
    );
    assert_eq!(&buf[..], b"keep");
    assert!(req.encode(&mut buf, 10).is_ok());
    // Nested structs and tagged fields are checked too.
    let mut partition = PartitionData::default();
    partition.current_leader.leader_id = 5;
    let mut topic = FetchableTopicResponse::default();
    topic.partitions.push(partition);
    let resp = FetchResponse {
        responses: vec![topic],
        ..Default::default()
    };
    let e = resp.encode(&mut BytesMut::new(), 11).unwrap_err();
    assert_eq!((e.message, e.field), ("PartitionData", "current_leader"));
    assert!(resp.encode(&mut BytesMut::new(), 12).is_ok());
    // Ignorable: silently dropped (throttle_time_ms does not exist in v0).
    let resp0 = MetadataResponse {
        throttle_time_ms: 100,
        ..Default::default()
    };
    assert_eq!(encode(&resp0, 0).len(), 8);
    // A null in a version that cannot express it.
    let req = MetadataRequest {
        topics: None,
        ..Default::default()
    };
    let e = req.encode(&mut BytesMut::new(), 0).unwrap_err();
    assert_eq!(
        (e.field, e.kind),
        ("topics", EncodeErrorKind::NullNotAllowed)
    );
    assert!(req.encode(&mut BytesMut::new(), 1).is_ok());
}

#[test]
fn overlong_strings_are_encode_errors() {
    let req = SaslHandshakeRequest {
        mechanism: "x".repeat(40_000),
    };
    let mut buf = BytesMut::new();
    let e = req.encode(&mut buf, 1).unwrap_err();
    assert_eq!(
        e.kind,
        EncodeErrorKind::TooLong {
            len: 40_000,
            max: 0x7fff
        }
    );
    assert!(buf.is_empty());
}

#[test]
fn request_header_client_id_is_never_compact() {
    let h = RequestHeader {
        request_api_key: 18,
        request_api_version: 3,
        correlation_id: 7,
        client_id: Some("abc".into()),
        unknown_tagged_fields: Vec::new(),
    };
    let v2 = encode(&h, 2);
    assert_eq!(
        &v2[..],
        &[0, 18, 0, 3, 0, 0, 0, 7, 0, 3, b'a', b'b', b'c', 0]
    );
    let v1 = encode(&h, 1);
    assert_eq!(&v1[..], &v2[..13]);
    let null = RequestHeader {
        client_id: None,
        ..h
    };
    assert_eq!(&encode(&null, 2)[8..], &[0xff, 0xff, 0]);
}

#[test]
fn header_versions_follow_flexibility() {
    assert_eq!(MetadataRequest::request_header_version(8), 1);
    assert_eq!(MetadataRequest::response_header_version(8), 0);
    assert_eq!(MetadataRequest::request_header_version(9), 2);
    assert_eq!(MetadataRequest::response_header_version(9), 1);
    for v in 0..=4 {
        // Always v0 so that clients can parse it before negotiating.
        assert_eq!(ApiVersionsRequest::response_header_version(v), 0);
    }
    assert_eq!(ApiVersionsRequest::request_header_version(3), 2);
    assert_eq!(SaslHandshakeRequest::request_header_version(1), 1);
    assert_eq!(DescribeClusterRequest::response_header_version(0), 1);
    assert_eq!(ProduceRequest::API_KEY, ApiKey::Produce);
    assert_eq!(InitProducerIdRequest::MAX_STABLE_VERSION, 5);
    assert_eq!(MetadataRequest::MAX_STABLE_VERSION, 13);
    assert_eq!(ConsumerGroupDescribeRequest::FLEXIBLE_FROM, Some(0));
    assert_eq!(SaslHandshakeRequest::FLEXIBLE_FROM, None);
}

#[test]
fn api_keys() {
    assert_eq!(ApiKey::from_i16(3), Some(ApiKey::Metadata));
    assert_eq!(ApiKey::Metadata.name(), "Metadata");
    assert_eq!(ApiKey::Metadata.to_string(), "Metadata");
    assert_eq!(i16::from(ApiKey::ConsumerGroupDescribe), 69);
    assert_eq!(ApiKey::try_from(-1), Err(-1));
    assert_eq!(ApiKey::from_i16(i16::MAX), None);
    for k in ApiKey::ALL {
        assert_eq!(ApiKey::from_i16(k.as_i16()), Some(*k));
    }
    let mut seen = std::collections::HashSet::new();
    for (k, lo, hi) in SUPPORTED_APIS {
        assert!(seen.insert(*k), "{k} listed twice");
        assert!(lo <= hi);
    }
    assert_eq!(seen.len(), 37);
    assert!(SUPPORTED_APIS.contains(&(ApiKey::InitProducerId, 0, 5)));
}

#[test]
fn nullable_struct_uses_a_presence_byte() {
    let mut resp = ConsumerGroupHeartbeatResponse::default();
    let none = encode(&resp, 0);
    // throttle, error, null message, null member id, epoch, interval, -1, tags
    assert_eq!(none.len(), 4 + 2 + 1 + 1 + 4 + 4 + 1 + 1);
    assert_eq!(none[none.len() - 2], 0xff);
    resp.assignment = Some(ConsumerGroupHeartbeatResponseAssignment::default());
    let some = encode(&resp, 0);
    assert_eq!(&some[none.len() - 2..], &[1, 1, 0, 0]);
    let back = ConsumerGroupHeartbeatResponse::decode(&mut Reader::new(some), 0).unwrap();
    assert_eq!(back, resp);
}

#[test]
fn uuid_display() {
    let mut b = [0u8; 16];
    b[0] = 0xab;
    b[15] = 0x01;
    assert_eq!(Uuid(b).to_string(), "ab000000-0000-0000-0000-000000000001");
    assert!(Uuid::ZERO.is_zero());
}

/// A tiny deterministic PRNG (xorshift64*), so the test needs no crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Decodes corrupted encodings of every message at every version. Any
/// result is fine; a panic fails the test. What decodes must re-encode.
fn corrupt_and_decode<M: Message + Debug>(sample: fn(i16) -> M, rng: &mut Rng) {
    let (lo, hi) = M::VERSIONS;
    for version in lo..=hi {
        let good = encode(&sample(version), version);
        for _ in 0..30 {
            let mut bad = BytesMut::from(&good[..]);
            for _ in 0..1 + rng.below(3) {
                if bad.is_empty() {
                    break;
                }
                let i = rng.below(bad.len());
                match rng.below(4) {
                    0 => bad[i] = rng.next() as u8,
                    1 => bad[i] = 0xff,
                    2 => bad[i] = 0x7f,
                    _ => {
                        let cut = bad.len() - rng.below(4).min(bad.len());
                        bad.truncate(cut);
                        bad.put_u8(0x80);
                    }
                }
            }
            if let Ok(m) = M::decode(&mut Reader::new(bad.freeze()), version) {
                let mut out = BytesMut::new();
                let _ = m.encode(&mut out, version);
            }
        }
    }
}

#[test]
fn corrupted_input_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    macro_rules! corrupt {
        ($t:ident) => {
            corrupt_and_decode($t::sample, &mut rng);
        };
    }
    for_each_message!(corrupt);
}
