//! The `cooperative-sticky` assignor (KIP-429; Java's
//! `CooperativeStickyAssignor`, librdkafka's `cooperative-sticky`).
//!
//! Goals, in order: every partition of a subscribed topic is assigned;
//! counts are balanced (with identical subscriptions they differ by at most
//! one); as few partitions as possible move.
//!
//! Steps of one round:
//! 1. *Who owns what now.* Each member reports its owned partitions and the
//!    generation it got them in. A claim is kept only if the member still
//!    subscribes to the topic and the partition exists. When several
//!    members claim one partition, the highest generation wins and a tie
//!    leaves it unowned. A member that reports a generation older than the
//!    newest in the group is treated as new (its claims are stale: it
//!    missed a rebalance), as Java does.
//! 2. *Balance.* With identical subscriptions, each member gets a quota
//!    (`P / N`, and `P % N` members one more; the extra quota goes to those
//!    owning the most) and keeps owned partitions up to it; the rest are
//!    dealt to members below quota. Otherwise unowned partitions go, most
//!    constrained first, to the least loaded eligible member, and then
//!    single partitions move from the most to the least loaded eligible
//!    member while their counts differ by two or more.
//! 3. *Cooperative adjustment.* A partition that some *other* member of the
//!    round still claims (at the current generation) is withheld from its new owner: the old owner sees
//!    it missing from its assignment, revokes it, and rejoins; the
//!    follow-up round hands it out. So no partition is ever owned by two
//!    members at once.
//!
//! Subscription user data: Java's cooperative-sticky format, a single i32
//! generation. Owned partitions and the generation also travel in the
//! subscription's own fields (consumer protocol v1+/v2+), which is what
//! Java and librdkafka read first, so the three clients interoperate.

use super::{
    empty_assignment, sorted, Assignor, GroupAssignment, MemberSubscription, RebalanceProtocol,
    TopicPartition, NO_GENERATION,
};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// The protocol name.
pub const NAME: &str = "cooperative-sticky";

#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

/// The generation a member's subscription claims: the v2+ field, else
/// Java's 4-byte user data, else unknown.
pub fn claimed_generation(m: &MemberSubscription) -> i32 {
    let s = &m.subscription;
    if s.generation_id >= 0 {
        return s.generation_id;
    }
    match s.user_data.as_deref() {
        Some([a, b, c, d]) => i32::from_be_bytes([*a, *b, *c, *d]),
        _ => NO_GENERATION,
    }
}

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rebalance_protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Cooperative
    }

    fn subscription_user_data(&self, _owned: &[TopicPartition], generation: i32) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(&generation.to_be_bytes()))
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> GroupAssignment {
        let sticky = sticky_assign(partitions_per_topic, members);
        cooperative_adjust(sticky, members)
    }
}

/// The partitions each member may take.
fn eligible_sets(
    partitions_per_topic: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    members
        .iter()
        .map(|m| {
            let topics: BTreeSet<&String> = m.subscription.topics.iter().collect();
            let set = topics
                .into_iter()
                .filter_map(|t| partitions_per_topic.get(t).map(|c| (t, *c)))
                .flat_map(|(t, c)| (0..c.max(0)).map(move |p| (t.clone(), p)))
                .collect();
            (m.member_id.clone(), set)
        })
        .collect()
}

/// Step 1: the valid current owner of each partition.
fn current_owners(
    members: &[MemberSubscription],
    eligible: &BTreeMap<String, BTreeSet<TopicPartition>>,
) -> BTreeMap<TopicPartition, String> {
    let max_generation = members
        .iter()
        .map(claimed_generation)
        .max()
        .unwrap_or(NO_GENERATION);
    // partition -> (best generation, owner or None on a tie)
    let mut best: BTreeMap<TopicPartition, (i32, Option<String>)> = BTreeMap::new();
    for m in members {
        let g = claimed_generation(m);
        if g != NO_GENERATION && g < max_generation {
            continue; // stale claims: treat the member as new
        }
        let Some(ok) = eligible.get(&m.member_id) else {
            continue;
        };
        let claims: BTreeSet<&TopicPartition> = m.subscription.owned_partitions.iter().collect();
        for tp in claims {
            if !ok.contains(tp) {
                continue;
            }
            match best.get_mut(tp) {
                None => {
                    best.insert(tp.clone(), (g, Some(m.member_id.clone())));
                }
                Some(entry) if g > entry.0 => *entry = (g, Some(m.member_id.clone())),
                Some(entry) if g == entry.0 => entry.1 = None,
                Some(_) => {}
            }
        }
    }
    best.into_iter()
        .filter_map(|(tp, (_, owner))| owner.map(|o| (tp, o)))
        .collect()
}

/// Steps 1 and 2: a balanced assignment that keeps as much as it can.
fn sticky_assign(
    partitions_per_topic: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
) -> GroupAssignment {
    let mut out = empty_assignment(members);
    if members.is_empty() {
        return out;
    }
    let eligible = eligible_sets(partitions_per_topic, members);
    let owners = current_owners(members, &eligible);
    let all: BTreeSet<TopicPartition> = eligible.values().flat_map(|s| s.iter().cloned()).collect();

    let mut current: BTreeMap<String, BTreeSet<TopicPartition>> = members
        .iter()
        .map(|m| (m.member_id.clone(), BTreeSet::new()))
        .collect();
    for (tp, owner) in &owners {
        if let Some(s) = current.get_mut(owner) {
            s.insert(tp.clone());
        }
    }

    let first = eligible.values().next();
    let identical = eligible.values().all(|s| Some(s) == first);
    if identical {
        balance_identical(&mut current, &all);
    } else {
        balance_general(&mut current, &all, &eligible);
    }
    for (m, set) in current {
        out.insert(m, set.into_iter().collect());
    }
    out
}

/// Quotas: with identical subscriptions the result is exactly balanced.
fn balance_identical(
    current: &mut BTreeMap<String, BTreeSet<TopicPartition>>,
    all: &BTreeSet<TopicPartition>,
) {
    let n = current.len();
    let (floor, extra) = (all.len() / n, all.len() % n);
    // Members owning the most get the larger quota first (fewer moves).
    let mut order: Vec<String> = current.keys().cloned().collect();
    order.sort_by(|a, b| {
        current[b]
            .len()
            .cmp(&current[a].len())
            .then_with(|| a.cmp(b))
    });
    let quota: BTreeMap<String, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), floor + usize::from(i < extra)))
        .collect();
    for (m, set) in current.iter_mut() {
        let q = quota[m];
        while set.len() > q {
            let last = set.iter().next_back().cloned();
            if let Some(tp) = last {
                set.remove(&tp);
            }
        }
    }
    let taken: BTreeSet<TopicPartition> =
        current.values().flat_map(|s| s.iter().cloned()).collect();
    let mut free = all.difference(&taken).cloned();
    for m in &order {
        let q = quota[m];
        let Some(set) = current.get_mut(m) else {
            continue;
        };
        while set.len() < q {
            match free.next() {
                Some(tp) => {
                    set.insert(tp);
                }
                None => break,
            }
        }
    }
}

/// Greedy fill and pairwise moves for differing subscriptions.
fn balance_general(
    current: &mut BTreeMap<String, BTreeSet<TopicPartition>>,
    all: &BTreeSet<TopicPartition>,
    eligible: &BTreeMap<String, BTreeSet<TopicPartition>>,
) {
    let potential = |tp: &TopicPartition| eligible.values().filter(|s| s.contains(tp)).count();
    let taken: BTreeSet<TopicPartition> =
        current.values().flat_map(|s| s.iter().cloned()).collect();
    let mut free: Vec<TopicPartition> = all.difference(&taken).cloned().collect();
    free.sort_by(|a, b| potential(a).cmp(&potential(b)).then_with(|| a.cmp(b)));
    for tp in free {
        let target = current
            .iter()
            .filter(|(m, _)| eligible[*m].contains(&tp))
            .min_by(|(ma, a), (mb, b)| a.len().cmp(&b.len()).then_with(|| ma.cmp(mb)))
            .map(|(m, _)| m.clone());
        if let Some(m) = target {
            if let Some(s) = current.get_mut(&m) {
                s.insert(tp);
            }
        }
    }
    // Each move lowers the sum of squared counts, so this ends; the bound
    // is a safety net.
    let limit = all.len() * current.len() + 1;
    for _ in 0..limit {
        let mut best: Option<(usize, String, String, TopicPartition)> = None;
        for (from, fs) in current.iter() {
            for tp in fs {
                for (to, ts) in current.iter() {
                    if to == from || !eligible[to].contains(tp) || fs.len() < ts.len() + 2 {
                        continue;
                    }
                    let gap = fs.len() - ts.len();
                    if best.as_ref().is_none_or(|b| gap > b.0) {
                        best = Some((gap, from.clone(), to.clone(), tp.clone()));
                    }
                }
            }
        }
        let Some((_, from, to, tp)) = best else { break };
        if let Some(s) = current.get_mut(&from) {
            s.remove(&tp);
        }
        if let Some(s) = current.get_mut(&to) {
            s.insert(tp);
        }
    }
}

/// Step 3: withhold partitions still claimed by another member this round.
/// Stale claims (older generation) are ignored as in step 1: such a member
/// lost its partitions when it learned it had missed a rebalance.
fn cooperative_adjust(
    mut assignment: GroupAssignment,
    members: &[MemberSubscription],
) -> GroupAssignment {
    let max_generation = members
        .iter()
        .map(claimed_generation)
        .max()
        .unwrap_or(NO_GENERATION);
    let mut claimed_by: BTreeMap<&TopicPartition, BTreeSet<&str>> = BTreeMap::new();
    for m in members {
        let g = claimed_generation(m);
        if g != NO_GENERATION && g < max_generation {
            continue;
        }
        for tp in &m.subscription.owned_partitions {
            claimed_by
                .entry(tp)
                .or_default()
                .insert(m.member_id.as_str());
        }
    }
    for (member, parts) in assignment.iter_mut() {
        parts.retain(|tp| {
            claimed_by
                .get(tp)
                .is_none_or(|owners| owners.iter().all(|o| *o == member.as_str()))
        });
        *parts = sorted(parts.drain(..));
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn spread(a: &GroupAssignment) -> usize {
        let c = counts(a);
        c.iter().max().unwrap() - c.iter().min().unwrap()
    }

    /// Runs rounds like a group would: each member reports what it owns,
    /// and members drop partitions not in their assignment before the next
    /// round (the cooperative revoke), until nothing changes.
    fn converge(
        t: &BTreeMap<String, i32>,
        ids: &[&str],
        mut owned: BTreeMap<String, Vec<TopicPartition>>,
        mut generation: i32,
    ) -> (GroupAssignment, usize) {
        for round in 1..10 {
            let ms: Vec<_> = ids
                .iter()
                .map(|id| {
                    let mut m = member(id, &t.keys().map(String::as_str).collect::<Vec<_>>());
                    m.subscription.owned_partitions = owned.get(*id).cloned().unwrap_or_default();
                    m.subscription.generation_id = generation;
                    m
                })
                .collect();
            let a = CooperativeStickyAssignor.assign(t, &ms);
            no_overlap(&a);
            // Never hand out something another member still owns.
            for (m, ps) in &a {
                for p in ps {
                    for (o, ops) in &owned {
                        assert!(
                            o == m || !ops.contains(p),
                            "round {round}: {p:?} given to {m} while {o} owns it"
                        );
                    }
                }
            }
            generation += 1;
            let before = owned.clone();
            owned = a.clone();
            let done = ids
                .iter()
                .all(|id| before.get(*id).cloned().unwrap_or_default() == a[*id]);
            if done {
                return (a, round);
            }
        }
        panic!("did not converge");
    }

    #[test]
    fn fresh_group_is_balanced_and_complete() {
        let t = topics(&[("a", 6), ("b", 5)]);
        let ms: Vec<_> = ["m1", "m2", "m3"]
            .iter()
            .map(|id| member(id, &["a", "b"]))
            .collect();
        let a = CooperativeStickyAssignor.assign(&t, &ms);
        assert_eq!(no_overlap(&a), all_partitions(&t));
        assert!(spread(&a) <= 1, "{a:?}");
    }

    #[test]
    fn deterministic_regardless_of_member_order() {
        let t = topics(&[("a", 7)]);
        let ms: Vec<_> = vec![
            owning(member("x", &["a"]), &[("a", 0), ("a", 1), ("a", 2)], 3),
            owning(member("y", &["a"]), &[("a", 3)], 3),
            member("z", &["a"]),
        ];
        let first = CooperativeStickyAssignor.assign(&t, &ms);
        let mut rev = ms.clone();
        rev.reverse();
        assert_eq!(first, CooperativeStickyAssignor.assign(&t, &rev));
    }

    #[test]
    fn a_joining_member_takes_only_what_others_give_up_then_gets_it() {
        let t = topics(&[("t", 6)]);
        let owned: BTreeMap<String, Vec<TopicPartition>> = [
            (
                "m1".to_string(),
                (0..3).map(|p| ("t".to_string(), p)).collect(),
            ),
            (
                "m2".to_string(),
                (3..6).map(|p| ("t".to_string(), p)).collect(),
            ),
        ]
        .into();
        // Round 1 with m3 new: m3 gets nothing yet (all six are still owned),
        // m1 and m2 each give one up.
        let ms = vec![
            owning(member("m1", &["t"]), &[("t", 0), ("t", 1), ("t", 2)], 5),
            owning(member("m2", &["t"]), &[("t", 3), ("t", 4), ("t", 5)], 5),
            member("m3", &["t"]),
        ];
        let r1 = CooperativeStickyAssignor.assign(&t, &ms);
        assert!(r1["m3"].is_empty(), "{r1:?}");
        assert_eq!(r1["m1"].len() + r1["m2"].len(), 4);
        let (fin, rounds) = converge(&t, &["m1", "m2", "m3"], owned.clone(), 5);
        assert_eq!(
            rounds, 3,
            "one revoking round, one assigning round, one stable: {fin:?}"
        );
        assert_eq!(counts(&fin), vec![2, 2, 2]);
        // Sticky: m1 and m2 kept two of their original partitions each.
        for m in ["m1", "m2"] {
            assert!(
                fin[m].iter().all(|p| owned[m].contains(p)),
                "{m} moved: {fin:?}"
            );
        }
    }

    #[test]
    fn a_leaving_member_s_partitions_move_without_touching_others() {
        let t = topics(&[("t", 6)]);
        let ms = vec![
            owning(member("m1", &["t"]), &[("t", 0), ("t", 1)], 9),
            owning(member("m2", &["t"]), &[("t", 2), ("t", 3)], 9),
            // m3 (owned 4 and 5) is gone.
        ];
        let a = CooperativeStickyAssignor.assign(&t, &ms);
        assert_eq!(no_overlap(&a), all_partitions(&t));
        assert!(a["m1"].starts_with(&[("t".into(), 0), ("t".into(), 1)]));
        assert!(a["m2"].starts_with(&[("t".into(), 2), ("t".into(), 3)]));
        assert_eq!(counts(&a), vec![3, 3]);
    }

    #[test]
    fn conflicting_claims_resolve_by_generation() {
        let t = topics(&[("t", 2)]);
        // m1 claims t-0 at an old generation (it missed a rebalance); m2
        // owns it now. m2 keeps it; m1 is treated as new; t-0 is withheld
        // from no one that owns it.
        let ms = vec![
            owning(member("m1", &["t"]), &[("t", 0)], 3),
            owning(member("m2", &["t"]), &[("t", 0)], 4),
        ];
        let a = CooperativeStickyAssignor.assign(&t, &ms);
        assert_eq!(a["m2"], vec![("t".into(), 0)]);
        // t-1 goes to m1 (nobody claims it).
        assert_eq!(a["m1"], vec![("t".into(), 1)]);
        // Same-generation double claims: nobody gets it this round.
        let ms = vec![
            owning(member("m1", &["t"]), &[("t", 0)], 4),
            owning(member("m2", &["t"]), &[("t", 0)], 4),
        ];
        let a = CooperativeStickyAssignor.assign(&t, &ms);
        assert!(!a.values().any(|ps| ps.contains(&("t".into(), 0))), "{a:?}");
    }

    #[test]
    fn generation_from_java_user_data_when_the_field_is_absent() {
        let mut m = member("m", &["t"]);
        m.subscription.user_data = CooperativeStickyAssignor.subscription_user_data(&[], 12);
        assert_eq!(claimed_generation(&m), 12);
        m.subscription.generation_id = 13;
        assert_eq!(claimed_generation(&m), 13);
    }

    #[test]
    fn differing_subscriptions_stay_valid_and_balanced() {
        let t = topics(&[("a", 4), ("b", 4), ("c", 2)]);
        let ms = vec![
            member("m1", &["a"]),
            member("m2", &["a", "b"]),
            member("m3", &["a", "b", "c"]),
            member("m4", &["c"]),
        ];
        let a = CooperativeStickyAssignor.assign(&t, &ms);
        assert_eq!(no_overlap(&a), all_partitions(&t));
        for m in &ms {
            assert!(a[&m.member_id]
                .iter()
                .all(|(tp, _)| m.subscription.topics.contains(tp)));
        }
        // 10 partitions over 4 members: m4 can only have c's 2.
        assert_eq!(a["m4"].len(), 2, "{a:?}");
        assert!(
            a["m1"].len() >= 2 && a["m2"].len() >= 2 && a["m3"].len() >= 2,
            "{a:?}"
        );
    }

    #[test]
    fn scale_up_and_down_converge_and_stay_sticky() {
        let t = topics(&[("t", 12), ("u", 5)]);
        let (a, _) = converge(&t, &["a", "b"], BTreeMap::new(), 1);
        assert!(spread(&a) <= 1);
        let (b, _) = converge(&t, &["a", "b", "c", "d"], a.clone(), 10);
        assert!(spread(&b) <= 1);
        for m in ["a", "b"] {
            assert!(
                b[m].iter().all(|p| a[m].contains(p)),
                "{m} lost partitions it could keep"
            );
        }
        let (c, _) = converge(
            &t,
            &["b", "d"],
            b.iter()
                .filter(|(k, _)| *k == "b" || *k == "d")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            20,
        );
        assert!(spread(&c) <= 1);
        assert_eq!(no_overlap(&c), all_partitions(&t));
        for m in ["b", "d"] {
            assert!(
                b[m].iter().all(|p| c[m].contains(p)),
                "{m} lost partitions on scale-down"
            );
        }
    }
}
