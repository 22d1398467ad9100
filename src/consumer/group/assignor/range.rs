//! The `range` assignor (Java's `RangeAssignor`, eager).
//!
//! Topic by topic: the members subscribed to the topic, in Java's member
//! order, each take a contiguous range of its partitions; the first
//! `partitions % members` members take one extra. Co-partitioned topics
//! therefore land on the same member, and with many topics the first
//! members get more partitions than the last.

use super::{empty_assignment, Assignor, GroupAssignment, MemberSubscription, RebalanceProtocol};
use std::collections::BTreeMap;

/// The protocol name.
pub const NAME: &str = "range";

#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rebalance_protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> GroupAssignment {
        let mut out = empty_assignment(members);
        let mut ordered: Vec<&MemberSubscription> = members.iter().collect();
        ordered.sort_by(|a, b| MemberSubscription::java_order(a, b));
        for (topic, &count) in partitions_per_topic {
            let subscribers: Vec<&str> = ordered
                .iter()
                .filter(|m| m.subscription.topics.iter().any(|t| t == topic))
                .map(|m| m.member_id.as_str())
                .collect();
            if subscribers.is_empty() || count <= 0 {
                continue;
            }
            let n = subscribers.len() as i32;
            let (per, extra) = (count / n, count % n);
            for (i, member) in subscribers.iter().enumerate() {
                let i = i as i32;
                let start = per * i + i.min(extra);
                let len = per + i32::from(i < extra);
                if let Some(v) = out.get_mut(*member) {
                    v.extend((start..start + len).map(|p| (topic.clone(), p)));
                }
            }
        }
        for v in out.values_mut() {
            v.sort();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn contiguous_ranges_with_extras_first() {
        let t = topics(&[("t", 7)]);
        let ms = vec![
            member("c", &["t"]),
            member("a", &["t"]),
            member("b", &["t"]),
        ];
        let a = RangeAssignor.assign(&t, &ms);
        let ps = |m: &str| a[m].iter().map(|(_, p)| *p).collect::<Vec<_>>();
        assert_eq!(ps("a"), vec![0, 1, 2]);
        assert_eq!(ps("b"), vec![3, 4]);
        assert_eq!(ps("c"), vec![5, 6]);
        assert_eq!(no_overlap(&a), all_partitions(&t));
    }

    #[test]
    fn only_subscribers_get_a_topic_and_everyone_gets_an_entry() {
        let t = topics(&[("x", 2), ("y", 4)]);
        let ms = vec![
            member("a", &["x", "y"]),
            member("b", &["y"]),
            member("idle", &["nonexistent"]),
        ];
        let a = RangeAssignor.assign(&t, &ms);
        assert_eq!(
            a["a"],
            vec![
                ("x".into(), 0),
                ("x".into(), 1),
                ("y".into(), 0),
                ("y".into(), 1)
            ]
        );
        assert_eq!(a["b"], vec![("y".into(), 2), ("y".into(), 3)]);
        assert!(a["idle"].is_empty());
        assert_eq!(no_overlap(&a), all_partitions(&t));
    }

    #[test]
    fn static_members_keep_their_place_under_a_new_member_id() {
        let t = topics(&[("t", 6)]);
        let mut a1 = member("zzz-1", &["t"]);
        a1.group_instance_id = Some("i-a".into());
        let mut b1 = member("aaa-1", &["t"]);
        b1.group_instance_id = Some("i-b".into());
        let first = RangeAssignor.assign(&t, &[a1.clone(), b1.clone()]);
        // i-a restarts and gets a member id that now sorts first.
        a1.member_id = "000-2".into();
        let second = RangeAssignor.assign(&t, &[a1, b1]);
        assert_eq!(first["zzz-1"], second["000-2"]);
        assert_eq!(first["aaa-1"], second["aaa-1"]);
    }
}
