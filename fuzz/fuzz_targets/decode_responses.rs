//! Arbitrary bytes as a response frame for one of the generated response
//! decoders: `[api key (u8), version (i8), body...]`, where body is the
//! frame after the correlation id (response header tail included), decoded
//! as the client does (`net::broker::decode_response`). Versions outside a
//! codec's range are allowed and must be refused with an error.
//!
//! Decoding must never panic nor allocate without bound (libFuzzer's
//! -rss_limit_mb and -malloc_limit_mb catch the latter). Whatever decodes
//! must re-encode to exactly `encoded_len` bytes and decode back equal.
#![no_main]

use bytes::{Bytes, BytesMut};
use kafkawire::net::broker::decode_response;
use kafkawire::protocol::messages::*;
use kafkawire::protocol::wire::Reader;
use libfuzzer_sys::fuzz_target;

fn check<R: Request>(version: i16, body: Bytes)
where
    R::Response: PartialEq + std::fmt::Debug,
{
    let Ok(resp) = decode_response::<R>(body, version) else {
        return;
    };
    let mut buf = BytesMut::new();
    if resp.encode(&mut buf, version).is_err() {
        // Values a broker may send but we may not (e.g. a null in a field
        // whose schema says non-null at this version): decoding is what
        // matters here.
        return;
    }
    assert_eq!(buf.len(), resp.encoded_len(version), "encoded_len");
    let again = <R::Response as Message>::decode(&mut Reader::new(buf.freeze()), version)
        .expect("a re-encoded response decodes");
    assert_eq!(again, resp);
}

/// Dispatches on the API key to the request type whose response it is.
macro_rules! dispatch {
    ($key:expr, $version:expr, $body:expr; $($req:ty),* $(,)?) => {
        $(
            if $key == <$req as Request>::API_KEY as i16 {
                return check::<$req>($version, $body);
            }
        )*
    };
}

fuzz_target!(|data: &[u8]| {
    let [key, version, body @ ..] = data else {
        return;
    };
    let (key, version) = (*key as i16, *version as i8 as i16);
    let body = Bytes::copy_from_slice(body);
    dispatch!(key, version, body;
        ProduceRequest, FetchRequest, ListOffsetsRequest, MetadataRequest,
        OffsetCommitRequest, OffsetFetchRequest, FindCoordinatorRequest,
        JoinGroupRequest, HeartbeatRequest, LeaveGroupRequest, SyncGroupRequest,
        DescribeGroupsRequest, ListGroupsRequest, SaslHandshakeRequest,
        ApiVersionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
        DeleteRecordsRequest, InitProducerIdRequest, OffsetForLeaderEpochRequest,
        AddPartitionsToTxnRequest, AddOffsetsToTxnRequest, EndTxnRequest,
        TxnOffsetCommitRequest, DescribeConfigsRequest, AlterConfigsRequest,
        CreatePartitionsRequest, DeleteGroupsRequest, SaslAuthenticateRequest,
        IncrementalAlterConfigsRequest, OffsetDeleteRequest, DescribeClusterRequest,
        DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest,
        ConsumerGroupHeartbeatRequest, ConsumerGroupDescribeRequest,
    );
});
