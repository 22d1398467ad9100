//! Client-side partition assignors for the classic group protocol, and the
//! consumer protocol's subscription/assignment bytes they travel in.
//!
//! In the classic protocol the broker only relays bytes: every member sends
//! a [`Subscription`] (topics, owned partitions, generation, opaque user
//! data) for each assignor it supports, the broker picks one assignor name
//! all members support, and the elected leader runs that assignor over all
//! members' subscriptions and hands each member its [`Assignment`] through
//! SyncGroup. The names and byte formats here are Java's, so kafkawire,
//! Java and librdkafka members can share one group:
//!
//! | name                 | rebalance protocol   | module        |
//! |----------------------|----------------------|---------------|
//! | `range`              | eager                | [`range`]     |
//! | `roundrobin`         | eager                | [`roundrobin`]|
//! | `cooperative-sticky` | cooperative (KIP-429)| [`sticky`]    |
//!
//! Assignors are sans-IO: `assign` is a pure function of the topic
//! partition counts and the members' subscriptions, and deterministic (maps
//! are ordered), so every test can replay a rebalance exactly.

pub mod range;
pub mod roundrobin;
pub mod sticky;

use crate::error::{Error, Result};
use crate::protocol::messages::consumer_protocol::{
    ConsumerProtocolAssignment, ConsumerProtocolAssignmentTopicPartition,
    ConsumerProtocolSubscription, ConsumerProtocolSubscriptionTopicPartition,
};
use crate::protocol::messages::Message;
use crate::protocol::wire::Reader;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// A topic partition, as `(topic, partition)`.
pub type TopicPartition = (String, i32);

/// The generation a subscription claims when it has none (Java's
/// `DEFAULT_GENERATION`).
pub const NO_GENERATION: i32 = -1;

/// The consumer protocol version kafkawire writes (Java 3.x+ writes 3:
/// owned partitions, generation and rack id).
pub const CONSUMER_PROTOCOL_VERSION: i16 = 3;

/// How a group moves partitions between members when it rebalances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceProtocol {
    /// Every member gives up every partition before rejoining (stop the
    /// world), then receives a fresh assignment.
    Eager,
    /// KIP-429: members keep their partitions across the JoinGroup; the
    /// assignor never hands a partition to a new owner in the same round in
    /// which the old owner still holds it. The old owner revokes it after
    /// SyncGroup and rejoins, and a follow-up rebalance assigns it.
    Cooperative,
}

/// What one member sent in JoinGroup for the chosen assignor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Topics the member wants to consume.
    pub topics: Vec<String>,
    /// Opaque data for the assignor.
    pub user_data: Option<Bytes>,
    /// Partitions the member owns right now (cooperative protocol, v1+).
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation in which the member got `owned_partitions` (v2+);
    /// [`NO_GENERATION`] when unknown.
    pub generation_id: i32,
    /// `client.rack` (v3+).
    pub rack_id: Option<String>,
}

/// A member as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    pub subscription: Subscription,
}

impl MemberSubscription {
    /// Java's member order for the range and round-robin assignors: static
    /// members first, by `group.instance.id` (so a static member that
    /// rejoins under a new member id keeps its place), then dynamic members
    /// by member id.
    pub fn java_order(a: &MemberSubscription, b: &MemberSubscription) -> std::cmp::Ordering {
        match (&a.group_instance_id, &b.group_instance_id) {
            (Some(x), Some(y)) => x.cmp(y).then_with(|| a.member_id.cmp(&b.member_id)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.member_id.cmp(&b.member_id),
        }
    }
}

/// What the leader hands one member through SyncGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    pub partitions: Vec<TopicPartition>,
    pub user_data: Option<Bytes>,
}

/// The result of an assignment round: member id → its partitions (sorted).
pub type GroupAssignment = BTreeMap<String, Vec<TopicPartition>>;

/// A client-side partition assignor.
pub trait Assignor: Send + Sync + fmt::Debug {
    /// The protocol name sent in JoinGroup; members of other clients must
    /// use the same name for the same algorithm.
    fn name(&self) -> &'static str;

    /// The rebalance protocol this assignor is written for.
    fn rebalance_protocol(&self) -> RebalanceProtocol;

    /// The `user_data` this member puts in its subscription, given what it
    /// owns and the generation it got it in.
    fn subscription_user_data(&self, _owned: &[TopicPartition], _generation: i32) -> Option<Bytes> {
        None
    }

    /// Assigns the partitions of the subscribed topics among `members`.
    /// `partitions_per_topic` holds the partition count of every topic some
    /// member subscribed to and that exists; other topics are ignored.
    /// Every member id of `members` has an entry in the result.
    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> GroupAssignment;
}

/// The built-in assignor with Java's protocol name `name`.
pub fn by_name(name: &str) -> Option<Arc<dyn Assignor>> {
    match name {
        range::NAME => Some(Arc::new(range::RangeAssignor)),
        roundrobin::NAME => Some(Arc::new(roundrobin::RoundRobinAssignor)),
        sticky::NAME => Some(Arc::new(sticky::CooperativeStickyAssignor)),
        _ => None,
    }
}

/// The rebalance protocol a member with these assignors follows: as in Java,
/// cooperative only when every configured assignor supports it (so the
/// default `[range, cooperative-sticky]` rebalances eagerly).
pub fn common_protocol(assignors: &[Arc<dyn Assignor>]) -> RebalanceProtocol {
    if !assignors.is_empty()
        && assignors
            .iter()
            .all(|a| a.rebalance_protocol() == RebalanceProtocol::Cooperative)
    {
        RebalanceProtocol::Cooperative
    } else {
        RebalanceProtocol::Eager
    }
}

/// Empty entries for every member, so each gets an answer even if it gets no
/// partition.
pub(crate) fn empty_assignment(members: &[MemberSubscription]) -> GroupAssignment {
    members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect()
}

/// Groups partitions by topic, in order, for the wire.
fn by_topic(parts: &[TopicPartition]) -> BTreeMap<&str, Vec<i32>> {
    let mut m: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        m.entry(t.as_str()).or_default().push(*p);
    }
    for v in m.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    m
}

/// Flattens and sorts a set of partitions.
pub(crate) fn sorted(parts: impl IntoIterator<Item = TopicPartition>) -> Vec<TopicPartition> {
    let set: BTreeSet<TopicPartition> = parts.into_iter().collect();
    set.into_iter().collect()
}

/// Encodes a subscription as JoinGroup protocol metadata: an i16 version and
/// the ConsumerProtocolSubscription at that version.
pub fn encode_subscription(s: &Subscription) -> Result<Bytes> {
    let data = ConsumerProtocolSubscription {
        topics: s.topics.clone(),
        user_data: s.user_data.clone(),
        owned_partitions: by_topic(&s.owned_partitions)
            .into_iter()
            .map(|(t, ps)| ConsumerProtocolSubscriptionTopicPartition {
                topic: t.to_string(),
                partitions: ps,
            })
            .collect(),
        generation_id: s.generation_id,
        rack_id: s.rack_id.clone(),
    };
    let v = CONSUMER_PROTOCOL_VERSION;
    let mut buf = BytesMut::with_capacity(2 + data.encoded_len(v));
    buf.put_i16(v);
    data.encode(&mut buf, v).map_err(|e| {
        Error::illegal_state(format!("could not encode the consumer subscription: {e}"))
    })?;
    Ok(buf.freeze())
}

/// Reads the i16 version prefix of consumer protocol bytes. As in Java, a
/// version newer than ours is read as our newest (later versions only
/// append fields), and a negative one is an error.
fn protocol_version(r: &mut Reader, what: &str) -> Result<i16> {
    let v = r
        .i16("consumer protocol version")
        .map_err(|e| Error::protocol(format!("{what}: {e}")))?;
    if v < 0 {
        return Err(Error::protocol(format!(
            "{what}: unsupported consumer protocol version {v}"
        )));
    }
    Ok(v.min(CONSUMER_PROTOCOL_VERSION))
}

/// Decodes JoinGroup protocol metadata written by any client.
pub fn decode_subscription(bytes: Bytes) -> Result<Subscription> {
    let what = "consumer protocol subscription";
    let mut r = Reader::new(bytes);
    let v = protocol_version(&mut r, what)?;
    let d = ConsumerProtocolSubscription::decode(&mut r, v)
        .map_err(|e| Error::protocol(format!("{what}: {e}")))?;
    Ok(Subscription {
        topics: d.topics,
        user_data: d.user_data,
        owned_partitions: d
            .owned_partitions
            .into_iter()
            .flat_map(|tp| {
                let t = tp.topic;
                tp.partitions.into_iter().map(move |p| (t.clone(), p))
            })
            .collect(),
        generation_id: if v >= 2 {
            d.generation_id
        } else {
            NO_GENERATION
        },
        rack_id: d.rack_id,
    })
}

/// Encodes an assignment for SyncGroup.
pub fn encode_assignment(a: &Assignment) -> Result<Bytes> {
    let data = ConsumerProtocolAssignment {
        assigned_partitions: by_topic(&a.partitions)
            .into_iter()
            .map(|(t, ps)| ConsumerProtocolAssignmentTopicPartition {
                topic: t.to_string(),
                partitions: ps,
            })
            .collect(),
        user_data: a.user_data.clone(),
    };
    let v = CONSUMER_PROTOCOL_VERSION;
    let mut buf = BytesMut::with_capacity(2 + data.encoded_len(v));
    buf.put_i16(v);
    data.encode(&mut buf, v).map_err(|e| {
        Error::illegal_state(format!("could not encode the consumer assignment: {e}"))
    })?;
    Ok(buf.freeze())
}

/// Decodes a SyncGroup assignment written by any client's leader. Empty
/// bytes mean "no partitions" (a leader may send nothing to a member whose
/// subscription matched no topic).
pub fn decode_assignment(bytes: Bytes) -> Result<Assignment> {
    if bytes.is_empty() {
        return Ok(Assignment::default());
    }
    let what = "consumer protocol assignment";
    let mut r = Reader::new(bytes);
    let v = protocol_version(&mut r, what)?;
    let d = ConsumerProtocolAssignment::decode(&mut r, v)
        .map_err(|e| Error::protocol(format!("{what}: {e}")))?;
    Ok(Assignment {
        partitions: sorted(d.assigned_partitions.into_iter().flat_map(|tp| {
            let t = tp.topic;
            tp.partitions.into_iter().map(move |p| (t.clone(), p))
        })),
        user_data: d.user_data,
    })
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    pub fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.to_string(),
            group_instance_id: None,
            subscription: Subscription {
                topics: topics.iter().map(|t| t.to_string()).collect(),
                generation_id: NO_GENERATION,
                ..Default::default()
            },
        }
    }

    pub fn owning(
        mut m: MemberSubscription,
        owned: &[(&str, i32)],
        generation: i32,
    ) -> MemberSubscription {
        m.subscription.owned_partitions = owned.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        m.subscription.generation_id = generation;
        m
    }

    pub fn topics(t: &[(&str, i32)]) -> BTreeMap<String, i32> {
        t.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    /// Checks that no partition is assigned twice, and returns all assigned.
    pub fn no_overlap(a: &GroupAssignment) -> BTreeSet<TopicPartition> {
        let mut seen = BTreeSet::new();
        for (m, ps) in a {
            for p in ps {
                assert!(
                    seen.insert(p.clone()),
                    "{p:?} assigned twice (again to {m}): {a:?}"
                );
            }
        }
        seen
    }

    pub fn all_partitions(t: &BTreeMap<String, i32>) -> BTreeSet<TopicPartition> {
        t.iter()
            .flat_map(|(n, c)| (0..*c).map(move |p| (n.clone(), p)))
            .collect()
    }

    pub fn counts(a: &GroupAssignment) -> Vec<usize> {
        a.values().map(Vec::len).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_round_trips_and_reads_newer_versions() {
        let s = Subscription {
            topics: vec!["a".into(), "b".into()],
            user_data: Some(Bytes::from_static(&[0, 0, 0, 7])),
            owned_partitions: vec![("a".into(), 1), ("a".into(), 0), ("b".into(), 3)],
            generation_id: 7,
            rack_id: Some("r1".into()),
        };
        let bytes = encode_subscription(&s).unwrap();
        assert_eq!(&bytes[..2], &[0, 3]);
        let back = decode_subscription(bytes.clone()).unwrap();
        assert_eq!(back.topics, s.topics);
        assert_eq!(
            back.owned_partitions,
            vec![("a".into(), 0), ("a".into(), 1), ("b".into(), 3)]
        );
        assert_eq!(back.generation_id, 7);
        assert_eq!(back.rack_id.as_deref(), Some("r1"));
        // A future version with appended fields decodes as our newest.
        let mut newer = BytesMut::from(&bytes[..]);
        newer[1] = 9;
        newer.put_slice(b"future fields");
        assert_eq!(decode_subscription(newer.freeze()).unwrap(), back);
    }

    #[test]
    fn version_zero_subscription_has_no_generation() {
        // i16 version 0, topics ["t"], user data null.
        let raw = Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff]);
        let s = decode_subscription(raw).unwrap();
        assert_eq!(s.topics, vec!["t".to_string()]);
        assert_eq!(s.generation_id, NO_GENERATION);
        assert!(s.owned_partitions.is_empty());
    }

    #[test]
    fn hostile_bytes_are_errors_not_panics() {
        for raw in [
            &[][..],
            &[0][..],
            &[0xff, 0xff][..],
            &[0, 3, 0x7f, 0xff, 0xff, 0xff][..],
            &[0, 0, 0, 0, 0, 9, 0][..],
        ] {
            assert!(
                decode_subscription(Bytes::copy_from_slice(raw)).is_err(),
                "{raw:?}"
            );
        }
        assert!(decode_assignment(Bytes::from_static(&[0, 1, 0x7f, 0, 0, 0])).is_err());
        assert_eq!(
            decode_assignment(Bytes::new()).unwrap(),
            Assignment::default()
        );
    }

    #[test]
    fn assignment_round_trips() {
        let a = Assignment {
            partitions: vec![("x".into(), 2), ("x".into(), 0), ("y".into(), 1)],
            user_data: None,
        };
        let back = decode_assignment(encode_assignment(&a).unwrap()).unwrap();
        assert_eq!(
            back.partitions,
            vec![("x".into(), 0), ("x".into(), 2), ("y".into(), 1)]
        );
    }

    #[test]
    fn names_and_protocols() {
        let r = by_name("range").unwrap();
        let c = by_name("cooperative-sticky").unwrap();
        assert_eq!(by_name("roundrobin").unwrap().name(), "roundrobin");
        assert!(by_name("sticky").is_none());
        assert_eq!(
            common_protocol(&[r.clone(), c.clone()]),
            RebalanceProtocol::Eager
        );
        assert_eq!(common_protocol(&[c]), RebalanceProtocol::Cooperative);
    }
}
