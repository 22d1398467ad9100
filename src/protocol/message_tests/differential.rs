//! Differential tests against the `kafka-protocol` crate (a dev-dependency
//! only), an independent implementation generated from an older set of the
//! same Kafka schemas.
//!
//! Two directions:
//! * ours → theirs: our encoding of a fully populated sample decodes with
//!   kafka-protocol, consuming every byte; their re-encoding of what they
//!   decoded is byte-identical (so they read every field with the value we
//!   wrote), and decodes with ours back to the sample.
//! * theirs → ours: values built field by field with kafka-protocol's API,
//!   encoded by kafka-protocol, decode with ours to the same field values.

use crate::protocol::messages::{self as ours, Message, Uuid};
use crate::protocol::wire::Reader;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages as theirs;
use kafka_protocol::protocol::{Decodable, Encodable, Message as TheirMessage, StrBytes};
use std::fmt::Debug;

/// The versions both codecs implement.
fn common_versions<O: Message, T: TheirMessage>() -> (i16, i16) {
    let lo = O::VERSIONS.0.max(T::VERSIONS.min);
    let hi = O::VERSIONS.1.min(T::VERSIONS.max);
    assert!(lo <= hi, "no common versions");
    (lo, hi)
}

fn ours_through_theirs<O, T>(sample: fn(i16) -> O)
where
    O: Message + PartialEq + Debug + Default,
    T: Encodable + Decodable + TheirMessage + Debug + Default,
{
    let (lo, hi) = common_versions::<O, T>();
    for v in lo..=hi {
        // Both sides agree on every field's default (including nulls).
        let theirs_default = T::default();
        let ours_default: O = theirs_to_ours(&theirs_default, v);
        assert_eq!(ours_default, O::default(), "defaults differ at v{v}");
        let mut buf = BytesMut::new();
        theirs_default.encode(&mut buf, v).unwrap();
        assert_eq!(
            &buf[..],
            &encode_ours(&O::default(), v)[..],
            "default encodings differ at v{v}"
        );

        let value = sample(v);
        let mut buf = BytesMut::new();
        value.encode(&mut buf, v).unwrap();
        let ours_bytes = buf.freeze();

        let mut input = ours_bytes.clone();
        let decoded = T::decode(&mut input, v)
            .unwrap_or_else(|e| panic!("kafka-protocol cannot decode our v{v}: {e:#}"));
        assert!(
            input.is_empty(),
            "kafka-protocol left {} bytes at v{v}",
            input.len()
        );

        let mut again = BytesMut::new();
        decoded.encode(&mut again, v).unwrap();
        assert_eq!(again.len(), decoded.compute_size(v).unwrap());
        assert_eq!(
            &again[..],
            &ours_bytes[..],
            "kafka-protocol re-encodes our v{v} differently; it decoded {decoded:#?}"
        );

        let back = O::decode(&mut Reader::new(again.freeze()), v).unwrap();
        assert_eq!(back, value, "v{v}");
    }
}

fn encode_ours<O: Message>(value: &O, v: i16) -> Bytes {
    let mut buf = BytesMut::new();
    value.encode(&mut buf, v).unwrap();
    buf.freeze()
}

/// Encodes with kafka-protocol and decodes with ours.
fn theirs_to_ours<T: Encodable, O: Message>(value: &T, v: i16) -> O {
    let mut buf = BytesMut::new();
    value.encode(&mut buf, v).unwrap();
    let mut r = Reader::new(buf.freeze());
    let out = O::decode(&mut r, v).unwrap_or_else(|e| panic!("decode v{v}: {e}"));
    assert!(r.is_empty(), "trailing bytes at v{v}");
    out
}

macro_rules! ours_through_theirs {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            #[allow(non_snake_case)]
            fn $name() {
                ours_through_theirs::<ours::$name, theirs::$name>(ours::$name::sample);
            }
        )*
    };
}

mod ours_to_theirs {
    use super::*;

    // The messages named in the brief first, then every other generated
    // message whose schema kafka-protocol also has.
    ours_through_theirs!(
        ApiVersionsRequest,
        ApiVersionsResponse,
        MetadataRequest,
        MetadataResponse,
        ProduceRequest,
        ProduceResponse,
        FetchRequest,
        FetchResponse,
        FindCoordinatorRequest,
        FindCoordinatorResponse,
        InitProducerIdRequest,
        InitProducerIdResponse,
        JoinGroupRequest,
        JoinGroupResponse,
        CreateTopicsRequest,
        CreateTopicsResponse,
        ListOffsetsRequest,
        ListOffsetsResponse,
        OffsetCommitRequest,
        OffsetCommitResponse,
        OffsetFetchRequest,
        OffsetFetchResponse,
        HeartbeatRequest,
        HeartbeatResponse,
        LeaveGroupRequest,
        LeaveGroupResponse,
        SyncGroupRequest,
        SyncGroupResponse,
        DescribeGroupsRequest,
        DescribeGroupsResponse,
        ListGroupsRequest,
        ListGroupsResponse,
        SaslHandshakeRequest,
        SaslHandshakeResponse,
        DeleteTopicsRequest,
        DeleteTopicsResponse,
        DeleteRecordsRequest,
        DeleteRecordsResponse,
        OffsetForLeaderEpochRequest,
        OffsetForLeaderEpochResponse,
        AddPartitionsToTxnRequest,
        AddPartitionsToTxnResponse,
        AddOffsetsToTxnRequest,
        AddOffsetsToTxnResponse,
        EndTxnRequest,
        EndTxnResponse,
        TxnOffsetCommitRequest,
        TxnOffsetCommitResponse,
        DescribeConfigsRequest,
        DescribeConfigsResponse,
        AlterConfigsRequest,
        AlterConfigsResponse,
        SaslAuthenticateRequest,
        SaslAuthenticateResponse,
        CreatePartitionsRequest,
        CreatePartitionsResponse,
        DeleteGroupsRequest,
        DeleteGroupsResponse,
        IncrementalAlterConfigsRequest,
        IncrementalAlterConfigsResponse,
        OffsetDeleteRequest,
        OffsetDeleteResponse,
        DescribeClusterRequest,
        DescribeClusterResponse,
        DescribeProducersRequest,
        DescribeProducersResponse,
        DescribeTransactionsRequest,
        DescribeTransactionsResponse,
        ListTransactionsRequest,
        ListTransactionsResponse,
        ConsumerGroupHeartbeatRequest,
        ConsumerGroupHeartbeatResponse,
        ConsumerGroupDescribeRequest,
        ConsumerGroupDescribeResponse,
        RequestHeader,
        ResponseHeader,
        ConsumerProtocolSubscription,
        ConsumerProtocolAssignment,
    );
}

fn s(v: &'static str) -> StrBytes {
    StrBytes::from_static_str(v)
}

#[test]
fn api_versions_response_from_theirs() {
    use theirs::api_versions_response::{ApiVersion, FinalizedFeatureKey, SupportedFeatureKey};
    let value = theirs::ApiVersionsResponse::default()
        .with_error_code(35)
        .with_api_keys(vec![
            ApiVersion::default()
                .with_api_key(3)
                .with_min_version(0)
                .with_max_version(13),
            ApiVersion::default()
                .with_api_key(18)
                .with_min_version(0)
                .with_max_version(4),
        ])
        .with_throttle_time_ms(250)
        .with_supported_features(vec![SupportedFeatureKey::default()
            .with_name(s("metadata.version"))
            .with_min_version(1)
            .with_max_version(27)])
        .with_finalized_features_epoch(42)
        .with_finalized_features(vec![FinalizedFeatureKey::default()
            .with_name(s("metadata.version"))
            .with_max_version_level(27)
            .with_min_version_level(27)])
        .with_unknown_tagged_field(77, Bytes::from_static(b"\x01\x02"));
    for v in 0..=4 {
        let got: ours::ApiVersionsResponse = theirs_to_ours(&value, v);
        assert_eq!(got.error_code, 35);
        let keys: Vec<(i16, i16, i16)> = got
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        assert_eq!(keys, vec![(3, 0, 13), (18, 0, 4)]);
        if v >= 1 {
            assert_eq!(got.throttle_time_ms, 250);
        }
        if v >= 3 {
            assert_eq!(got.supported_features.len(), 1);
            assert_eq!(got.supported_features[0].name, "metadata.version");
            assert_eq!(got.supported_features[0].max_version, 27);
            assert_eq!(got.finalized_features_epoch, 42);
            assert_eq!(got.finalized_features[0].min_version_level, 27);
            assert_eq!(got.unknown_tagged_fields.len(), 1);
            assert_eq!(got.unknown_tagged_fields[0].tag, 77);
            assert_eq!(&got.unknown_tagged_fields[0].data[..], b"\x01\x02");
        } else {
            assert!(got.supported_features.is_empty());
            assert_eq!(got.finalized_features_epoch, -1, "schema default");
        }
    }
}

#[test]
fn metadata_response_from_theirs() {
    use kafka_protocol::messages::{BrokerId, TopicName};
    use theirs::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    let topic_id = [9u8; 16];
    // kafka-protocol refuses to encode any non-default field outside its
    // versions, so each version gets only the fields it has.
    let build = |v: i16| {
        let mut broker = MetadataResponseBroker::default()
            .with_node_id(BrokerId(3))
            .with_host(s("broker-3.example"))
            .with_port(9093);
        let mut partition = MetadataResponsePartition::default()
            .with_partition_index(2)
            .with_leader_id(BrokerId(3))
            .with_replica_nodes(vec![BrokerId(3), BrokerId(4)])
            .with_isr_nodes(vec![BrokerId(3)]);
        let mut topic = MetadataResponseTopic::default().with_name(Some(TopicName(s("orders"))));
        let mut resp = theirs::MetadataResponse::default();
        if v >= 1 {
            broker = broker.with_rack(Some(s("rack-a")));
            resp = resp.with_controller_id(BrokerId(3));
        }
        if v >= 2 {
            resp = resp.with_cluster_id(Some(s("cluster-xyz")));
        }
        if v >= 3 {
            resp = resp.with_throttle_time_ms(7);
        }
        if v >= 5 {
            partition = partition.with_offline_replicas(vec![BrokerId(4)]);
        }
        if v >= 7 {
            partition = partition.with_leader_epoch(11);
        }
        if v >= 8 {
            topic = topic.with_topic_authorized_operations(0x0f);
        }
        if v >= 10 {
            topic = topic.with_topic_id(uuid::Uuid::from_bytes(topic_id));
        }
        resp.with_brokers(vec![broker])
            .with_topics(vec![topic.with_partitions(vec![partition])])
    };
    for v in 1..=13 {
        let got: ours::MetadataResponse = theirs_to_ours(&build(v), v);
        let b = &got.brokers[0];
        assert_eq!(
            (b.node_id, b.host.as_str(), b.port),
            (3, "broker-3.example", 9093)
        );
        assert_eq!(b.rack.as_deref(), Some("rack-a"));
        assert_eq!(got.controller_id, 3);
        let t = &got.topics[0];
        assert_eq!(t.name.as_deref(), Some("orders"));
        let p = &t.partitions[0];
        assert_eq!((p.partition_index, p.leader_id), (2, 3));
        assert_eq!(p.replica_nodes, vec![3, 4]);
        assert_eq!(p.isr_nodes, vec![3]);
        if v >= 2 {
            assert_eq!(got.cluster_id.as_deref(), Some("cluster-xyz"));
        }
        if v >= 3 {
            assert_eq!(got.throttle_time_ms, 7);
        }
        if v >= 5 {
            assert_eq!(p.offline_replicas, vec![4]);
        }
        if v >= 7 {
            assert_eq!(p.leader_epoch, 11);
        } else {
            assert_eq!(p.leader_epoch, -1, "schema default");
        }
        if v >= 8 {
            assert_eq!(t.topic_authorized_operations, 0x0f);
        }
        if v >= 10 {
            assert_eq!(t.topic_id, Uuid(topic_id));
        }
    }
}

#[test]
fn fetch_response_records_from_theirs_are_zero_copy() {
    use kafka_protocol::messages::{BrokerId, TopicName};
    use theirs::fetch_response::{FetchableTopicResponse, LeaderIdAndEpoch, PartitionData};
    let records = Bytes::from_static(b"pretend-this-is-a-record-batch");
    let build = |v: i16| {
        let mut p = PartitionData::default()
            .with_partition_index(0)
            .with_high_watermark(1000)
            .with_last_stable_offset(990)
            .with_records(Some(records.clone()));
        let mut t = FetchableTopicResponse::default();
        let mut resp = theirs::FetchResponse::default().with_throttle_time_ms(1);
        if v >= 5 {
            p = p.with_log_start_offset(5);
        }
        if v >= 7 {
            resp = resp.with_session_id(99);
        }
        if v >= 12 {
            p = p.with_current_leader(
                LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(2))
                    .with_leader_epoch(8),
            );
        }
        if v >= 13 {
            t = t.with_topic_id(uuid::Uuid::from_bytes([1; 16]));
        } else {
            t = t.with_topic(TopicName(s("t")));
        }
        resp.with_responses(vec![t.with_partitions(vec![p])])
    };
    for v in 4..=17 {
        let mut buf = BytesMut::new();
        build(v).encode(&mut buf, v).unwrap();
        let frame = buf.freeze();
        let got = ours::FetchResponse::decode(&mut Reader::new(frame.clone()), v).unwrap();
        let p = &got.responses[0].partitions[0];
        assert_eq!(p.high_watermark, 1000);
        assert_eq!(p.last_stable_offset, 990);
        let rec = p.records.as_ref().unwrap();
        assert_eq!(rec, &records);
        // The records are a view into the frame, not a copy.
        let frame_range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        assert!(
            frame_range.contains(&(rec.as_ptr() as usize)),
            "records copied at v{v}"
        );
        if v >= 5 {
            assert_eq!(p.log_start_offset, 5);
        }
        if v >= 7 {
            assert_eq!(got.session_id, 99);
        }
        if v >= 12 {
            assert_eq!(
                (p.current_leader.leader_id, p.current_leader.leader_epoch),
                (2, 8)
            );
        }
        if v >= 13 {
            assert_eq!(got.responses[0].topic_id, Uuid([1; 16]));
        } else {
            assert_eq!(got.responses[0].topic, "t");
        }
    }
}

#[test]
fn produce_request_from_theirs() {
    use kafka_protocol::messages::{TopicName, TransactionalId};
    use theirs::produce_request::{PartitionProduceData, TopicProduceData};
    let build = |v: i16| {
        let mut t =
            TopicProduceData::default().with_partition_data(vec![PartitionProduceData::default()
                .with_index(4)
                .with_records(Some(Bytes::from_static(b"batch")))]);
        if v >= 13 {
            t = t.with_topic_id(uuid::Uuid::from_bytes([5; 16]));
        } else {
            t = t.with_name(TopicName(s("orders")));
        }
        theirs::ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(s("tx-1"))))
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![t])
    };
    for v in 3..=13 {
        let got: ours::ProduceRequest = theirs_to_ours(&build(v), v);
        assert_eq!(got.transactional_id.as_deref(), Some("tx-1"));
        assert_eq!((got.acks, got.timeout_ms), (-1, 30_000));
        let t = &got.topic_data[0];
        if v >= 13 {
            assert_eq!(t.topic_id, Uuid([5; 16]));
        } else {
            assert_eq!(t.name, "orders");
        }
        assert_eq!(t.partition_data[0].index, 4);
        assert_eq!(t.partition_data[0].records.as_deref(), Some(&b"batch"[..]));
    }
}

#[test]
fn find_coordinator_and_init_producer_id_from_theirs() {
    for v in 0..=6 {
        let mut req = theirs::FindCoordinatorRequest::default();
        if v <= 3 {
            req = req.with_key(s("group-a"));
        } else {
            req = req.with_coordinator_keys(vec![s("g1"), s("g2")]);
        }
        if v >= 1 {
            req = req.with_key_type(1);
        }
        let got: ours::FindCoordinatorRequest = theirs_to_ours(&req, v);
        if v <= 3 {
            assert_eq!(got.key, "group-a");
        } else {
            assert_eq!(
                got.coordinator_keys,
                vec!["g1".to_string(), "g2".to_string()]
            );
        }
        if v >= 1 {
            assert_eq!(got.key_type, 1);
        }
    }
    let resp = theirs::InitProducerIdResponse::default()
        .with_throttle_time_ms(3)
        .with_producer_id(kafka_protocol::messages::ProducerId(123_456_789_012))
        .with_producer_epoch(4);
    for v in 0..=5 {
        let got: ours::InitProducerIdResponse = theirs_to_ours(&resp, v);
        assert_eq!(
            (got.producer_id, got.producer_epoch, got.throttle_time_ms),
            (123_456_789_012, 4, 3)
        );
    }
}

#[test]
fn join_group_and_create_topics_from_theirs() {
    use kafka_protocol::messages::{GroupId, TopicName};
    use theirs::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use theirs::join_group_request::JoinGroupRequestProtocol;
    for v in 0..=9 {
        let mut join = theirs::JoinGroupRequest::default()
            .with_group_id(GroupId(s("grp")))
            .with_session_timeout_ms(10_000)
            .with_member_id(s("m-1"))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"\x00\x03meta"))]);
        if v >= 1 {
            join = join.with_rebalance_timeout_ms(20_000);
        }
        if v >= 5 {
            join = join.with_group_instance_id(Some(s("static-1")));
        }
        if v >= 8 {
            join = join.with_reason(Some(s("because")));
        }
        let got: ours::JoinGroupRequest = theirs_to_ours(&join, v);
        assert_eq!(
            (got.group_id.as_str(), got.member_id.as_str()),
            ("grp", "m-1")
        );
        assert_eq!(got.protocols[0].name, "range");
        assert_eq!(&got.protocols[0].metadata[..], b"\x00\x03meta");
        assert_eq!(got.rebalance_timeout_ms, if v >= 1 { 20_000 } else { -1 });
        if v >= 5 {
            assert_eq!(got.group_instance_id.as_deref(), Some("static-1"));
        }
        if v >= 8 {
            assert_eq!(got.reason.as_deref(), Some("because"));
        }
    }
    let create = theirs::CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s("new-topic")))
            .with_num_partitions(6)
            .with_replication_factor(3)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("cleanup.policy"))
                .with_value(Some(s("compact")))])])
        .with_timeout_ms(5000)
        .with_validate_only(true);
    for v in 2..=7 {
        let got: ours::CreateTopicsRequest = theirs_to_ours(&create, v);
        let t = &got.topics[0];
        assert_eq!(
            (t.name.as_str(), t.num_partitions, t.replication_factor),
            ("new-topic", 6, 3)
        );
        assert_eq!(t.configs[0].value.as_deref(), Some("compact"));
        assert!(got.validate_only);
    }
}
