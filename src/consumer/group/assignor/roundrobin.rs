//! The `roundrobin` assignor (Java's `RoundRobinAssignor`, eager).
//!
//! All partitions of all subscribed topics, ordered by topic then
//! partition, are dealt one at a time to the members in Java's member
//! order, skipping a member that is not subscribed to the partition's
//! topic. With identical subscriptions counts differ by at most one.

use super::{empty_assignment, Assignor, GroupAssignment, MemberSubscription, RebalanceProtocol};
use std::collections::BTreeMap;

/// The protocol name.
pub const NAME: &str = "roundrobin";

#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
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
        if ordered.is_empty() {
            return out;
        }
        // Only topics someone subscribes to.
        let mut next = 0usize;
        for (topic, &count) in partitions_per_topic {
            if !ordered
                .iter()
                .any(|m| m.subscription.topics.iter().any(|t| t == topic))
            {
                continue;
            }
            for p in 0..count.max(0) {
                // Advance the circular cursor to the next subscriber; one
                // exists, so this ends within one lap.
                for _ in 0..ordered.len() {
                    let m = ordered[next % ordered.len()];
                    next = (next + 1) % ordered.len();
                    if m.subscription.topics.iter().any(|t| t == topic) {
                        if let Some(v) = out.get_mut(&m.member_id) {
                            v.push((topic.clone(), p));
                        }
                        break;
                    }
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
    fn deals_partitions_across_topics() {
        let t = topics(&[("t0", 3), ("t1", 3)]);
        let ms = vec![member("b", &["t0", "t1"]), member("a", &["t0", "t1"])];
        let a = RoundRobinAssignor.assign(&t, &ms);
        assert_eq!(
            a["a"],
            vec![("t0".into(), 0), ("t0".into(), 2), ("t1".into(), 1)]
        );
        assert_eq!(
            a["b"],
            vec![("t0".into(), 1), ("t1".into(), 0), ("t1".into(), 2)]
        );
        assert_eq!(no_overlap(&a), all_partitions(&t));
    }

    #[test]
    fn skips_members_not_subscribed() {
        let t = topics(&[("t0", 1), ("t1", 2), ("t2", 3)]);
        let ms = vec![
            member("c0", &["t0"]),
            member("c1", &["t0", "t1"]),
            member("c2", &["t0", "t1", "t2"]),
        ];
        let a = RoundRobinAssignor.assign(&t, &ms);
        assert_eq!(no_overlap(&a), all_partitions(&t));
        for (m, ps) in &a {
            let subs = &ms
                .iter()
                .find(|x| &x.member_id == m)
                .unwrap()
                .subscription
                .topics;
            assert!(
                ps.iter().all(|(t, _)| subs.contains(t)),
                "{m} got an unsubscribed topic: {ps:?}"
            );
        }
        assert_eq!(a["c0"], vec![("t0".into(), 0)]);
        assert_eq!(a["c2"].len(), 4);
    }

    #[test]
    fn balanced_and_deterministic() {
        let t = topics(&[("t", 10), ("u", 5)]);
        let ms: Vec<_> = (0..4)
            .map(|i| member(&format!("m{i}"), &["t", "u"]))
            .collect();
        let a = RoundRobinAssignor.assign(&t, &ms);
        let c = counts(&a);
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
            "{c:?}"
        );
        let mut rev = ms.clone();
        rev.reverse();
        assert_eq!(RoundRobinAssignor.assign(&t, &rev), a);
    }
}
