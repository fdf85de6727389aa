//! Partition assignors of the consumer protocol: what the group's leader
//! computes from every member's subscription, with Apache Kafka's
//! semantics, because kmirror shares groups with Java consumers and, when it
//! leads, assigns for them too.
//!
//! Pure functions: no I/O, no clock, no randomness; the same input always
//! gives the same output, whatever the order of the members. This module
//! must never decode bytes (the group member hands it decoded
//! subscriptions) nor panic on any input.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet};

/// A partition assignor, by its name in the consumer protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Assignor {
    /// Java's `RangeAssignor`: per topic, consecutive ranges of partitions.
    Range,
    /// Java's `RoundRobinAssignor`: all partitions dealt out in turn.
    RoundRobin,
    /// Java's `CooperativeStickyAssignor`: balanced, sticky, and only
    /// hands a partition over once its owner has revoked it.
    CooperativeSticky,
}

impl Assignor {
    /// The protocol name members announce: "range", "roundrobin",
    /// "cooperative-sticky".
    pub fn name(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::RoundRobin => "roundrobin",
            Self::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// From a protocol name or a Java class name as
    /// `partition.assignment.strategy` lists it
    /// (`org.apache.kafka.clients.consumer.RangeAssignor`,
    /// `...RoundRobinAssignor`, `...CooperativeStickyAssignor`, or the class
    /// name without its package), surrounding whitespace ignored; matching
    /// is case-sensitive, as Java's is. `None` for others, among them
    /// `sticky` (`StickyAssignor`): it is sticky with the EAGER protocol,
    /// where every member drops all its partitions at each rebalance, which
    /// kmirror does not implement.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim();
        let class = name
            .strip_prefix("org.apache.kafka.clients.consumer.")
            .unwrap_or(name);
        match class {
            "range" | "RangeAssignor" => Some(Self::Range),
            "roundrobin" | "RoundRobinAssignor" => Some(Self::RoundRobin),
            "cooperative-sticky" | "CooperativeStickyAssignor" => Some(Self::CooperativeSticky),
            _ => None,
        }
    }

    /// Whether members keep their partitions through a rebalance (the
    /// COOPERATIVE protocol).
    pub fn is_cooperative(self) -> bool {
        matches!(self, Self::CooperativeSticky)
    }
}

/// One member's subscription as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberSubscription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its `group.instance.id` (static membership), if any.
    pub group_instance_id: Option<String>,
    /// The topics it subscribes to.
    pub topics: BTreeSet<String>,
    /// The partitions it owns (`OwnedPartitions`, v1+ subscriptions).
    pub owned: BTreeSet<(String, i32)>,
    /// The generation in which it got `owned`: `GenerationId` of a v2+
    /// subscription; for v0/v1, Java's cooperative-sticky assignor reads it
    /// from the user data (an INT32); -1 when unknown.
    pub generation: i32,
}

/// The assignment `assignor` computes: every member id of `members` is a
/// key (possibly with an empty set). `partitions` gives each topic's
/// partition count; topics a member subscribes to that are missing from it
/// are skipped.
///
/// Member ids are unique in a group; should one repeat, its first entry in
/// `members` counts. A count of zero or less is a topic without partitions.
///
/// - [`Assignor::Range`], as Java's `RangeAssignor` (without its
///   rack-aware step): per topic, its subscribers in Java's order (static
///   members first, by `group.instance.id`, then the others by member id;
///   strings compared as Java does, by UTF-16 code units) get `n / m`
///   consecutive partitions each and the first `n % m` one more.
/// - [`Assignor::RoundRobin`], as Java's `RoundRobinAssignor`: every
///   partition of every subscribed topic, sorted by topic then partition,
///   dealt to the members in Java's order in a circle that skips a member
///   not subscribed to the partition's topic.
/// - [`Assignor::CooperativeSticky`]: see [`cooperative_sticky`] for the
///   properties it guarantees.
///
/// Rack-aware placement (Java's, when members announce `client.rack` and
/// replicas sit on several racks) is not done: racks change where a
/// partition goes, never whether the assignment is valid.
pub(crate) fn assign(
    assignor: Assignor,
    members: &[MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeSet<(String, i32)>> {
    let members = unique_members(members);
    match assignor {
        Assignor::Range => range(&members, partitions),
        Assignor::RoundRobin => round_robin(&members, partitions),
        Assignor::CooperativeSticky => cooperative_sticky(&members, partitions),
    }
}

/// The members by member id, the first entry of a repeated id only.
fn unique_members(members: &[MemberSubscription]) -> Vec<&MemberSubscription> {
    let mut unique: BTreeMap<&str, &MemberSubscription> = BTreeMap::new();
    for m in members {
        unique.entry(m.member_id.as_str()).or_insert(m);
    }
    unique.into_values().collect()
}

/// Java's `String.compareTo`: lexicographic over UTF-16 code units. It
/// differs from Rust's byte order only when a character above U+FFFF meets
/// one in U+E000..=U+FFFF.
fn java_str_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Java's order of members (`AbstractPartitionAssignor.MemberInfo`): static
/// members first, by `group.instance.id`, then dynamic ones by member id.
/// Ties (two members with one instance id, which a coordinator never lets
/// happen) fall back to the member id, where Java keeps its hash order.
fn java_member_order(a: &MemberSubscription, b: &MemberSubscription) -> Ordering {
    let by_instance = match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => java_str_cmp(x, y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_instance.then_with(|| java_str_cmp(&a.member_id, &b.member_id))
}

/// Every member id, each with an empty set.
fn empty_assignment(members: &[&MemberSubscription]) -> BTreeMap<String, BTreeSet<(String, i32)>> {
    members
        .iter()
        .map(|m| (m.member_id.clone(), BTreeSet::new()))
        .collect()
}

fn range(
    members: &[&MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeSet<(String, i32)>> {
    let mut out = empty_assignment(members);
    for (topic, &count) in partitions {
        let mut subscribers: Vec<&MemberSubscription> = members
            .iter()
            .copied()
            .filter(|m| m.topics.contains(topic))
            .collect();
        if count <= 0 || subscribers.is_empty() {
            continue;
        }
        subscribers.sort_by(|a, b| java_member_order(a, b));
        let n = count as usize;
        let (each, extra) = (n / subscribers.len(), n % subscribers.len());
        let mut next = 0;
        for (i, member) in subscribers.iter().enumerate() {
            let take = each + usize::from(i < extra);
            if let Some(set) = out.get_mut(&member.member_id) {
                set.extend((next..next + take).map(|p| (topic.clone(), p as i32)));
            }
            next += take;
        }
    }
    out
}

fn round_robin(
    members: &[&MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeSet<(String, i32)>> {
    let mut out = empty_assignment(members);
    let mut ring: Vec<&MemberSubscription> = members.to_vec();
    ring.sort_by(|a, b| java_member_order(a, b));
    let subscribed: BTreeSet<&String> = members.iter().flat_map(|m| &m.topics).collect();
    let mut topics: Vec<(&String, i32)> = subscribed
        .into_iter()
        .filter_map(|t| partitions.get(t).map(|&n| (t, n)))
        .collect();
    topics.sort_by(|a, b| java_str_cmp(a.0, b.0));
    // Java's CircularIterator: the position carries over from one partition
    // (and one topic) to the next.
    let mut at = 0usize;
    for (topic, count) in topics {
        for p in 0..count.max(0) {
            // At most one full turn: someone subscribes to `topic`.
            let next = (0..ring.len())
                .map(|step| (at + step) % ring.len())
                .find(|&i| ring.get(i).is_some_and(|m| m.topics.contains(topic)));
            let Some(i) = next else { break };
            if let Some(set) = ring.get(i).and_then(|m| out.get_mut(&m.member_id)) {
                set.insert((topic.clone(), p));
            }
            at = i + 1;
        }
    }
    out
}

/// A partition as the sticky planner tracks it: an index into
/// [`StickyPlan::topics`] and the partition number.
type Partition = (usize, i32);

/// What the cooperative-sticky planner decided, before and after the
/// cooperative rule.
#[derive(Debug)]
struct StickyPlan<'a> {
    /// The members, by member id.
    members: Vec<&'a MemberSubscription>,
    /// The topics at least one member subscribes to that have partitions,
    /// by name, with their partition counts.
    topics: Vec<(&'a str, i32)>,
    /// Per member, the balanced assignment the group converges to (the
    /// tests check it; the member only needs `now`).
    #[cfg_attr(not(test), allow(dead_code))]
    target: Vec<BTreeSet<Partition>>,
    /// Per member, the part of `target` handed out this round: `target`
    /// without the partitions another member must revoke first.
    now: Vec<BTreeSet<Partition>>,
}

/// Cooperative-sticky, with these properties (Java's
/// `CooperativeStickyAssignor`'s; the placement itself is our own, not
/// Java's):
///
/// 1. Ownership. A member's claim on a partition (in `owned`) counts if
///    the partition exists and no other claimant has an equal or higher
///    generation. Two claimants of the same highest generation (a bug on
///    their side) both lose it; a lower generation loses to a higher one;
///    a claim nobody contests stands whatever its generation (Java's rule
///    since 3.5, KAFKA-14639; Java up to 3.4 dropped every claim of a
///    generation below the group's highest).
/// 2. Target. Every partition of every topic in `partitions` that some
///    member subscribes to goes to exactly one of its subscribers, and the
///    target is balanced as Java's `isBalanced` defines it: no partition
///    could move to another subscriber of its topic holding at least two
///    fewer partitions. When all members subscribe to the same topics,
///    member counts differ by at most one.
/// 3. Stickiness. A member keeps the partitions it owns (property 1) of
///    topics it still subscribes to, unless it holds more than balance
///    allows; then it gives up first what it did not own, then its owned
///    partitions from the highest partition number down. When all members
///    subscribe to the same topics, as few owned partitions move as any
///    balanced assignment allows, and a member that gives up partitions
///    keeps its lowest partition numbers and gains none.
/// 4. The cooperative rule. A partition of the target goes to its member
///    this round only if no other member claims it or its member owns it
///    (property 1); otherwise it is left out, its claimants revoke it, and
///    the follow-up rebalance (which Java's members request as soon as they
///    revoke) hands it over. So no partition is assigned to one member
///    while another member that claims it keeps running it, unless that
///    one's claim lost to a higher generation.
/// 5. Convergence. When all members subscribe to the same topics, the round
///    after one that left partitions out (every member now owning what it
///    got, in the new generation) assigns the full, balanced target and
///    leaves nothing out. With different subscriptions a move can take
///    another round or two (random groups in the tests settle within four
///    rounds).
fn cooperative_sticky(
    members: &[&MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeSet<(String, i32)>> {
    let plan = sticky_plan(members, partitions);
    plan.members
        .iter()
        .zip(&plan.now)
        .map(|(m, now)| {
            let set = now
                .iter()
                .filter_map(|&(t, p)| plan.topics.get(t).map(|(name, _)| ((*name).to_owned(), p)))
                .collect();
            (m.member_id.clone(), set)
        })
        .collect()
}

/// Plans cooperative-sticky for `members` (unique, by member id): the
/// balanced target and the part of it this round hands out.
fn sticky_plan<'a>(
    members: &[&'a MemberSubscription],
    partitions: &'a BTreeMap<String, i32>,
) -> StickyPlan<'a> {
    let members = members.to_vec();
    let topics: Vec<(&str, i32)> = partitions
        .iter()
        .filter(|&(t, &n)| n > 0 && members.iter().any(|m| m.topics.contains(t)))
        .map(|(t, &n)| (t.as_str(), n))
        .collect();
    let topic_index: BTreeMap<&str, usize> = topics
        .iter()
        .enumerate()
        .map(|(i, (t, _))| (*t, i))
        .collect();
    let subscribers: Vec<Vec<usize>> = topics
        .iter()
        .map(|(t, _)| {
            (0..members.len())
                .filter(|&i| members.get(i).is_some_and(|m| m.topics.contains(*t)))
                .collect()
        })
        .collect();
    let subscribes = |m: usize, t: usize| subscribers.get(t).is_some_and(|s| s.contains(&m));

    // Every claim on an existing partition of a subscribed topic, and who
    // owns each claimed partition (property 1).
    let mut claims: BTreeMap<Partition, Vec<usize>> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        for (topic, p) in &m.owned {
            let Some(&t) = topic_index.get(topic.as_str()) else {
                continue;
            };
            if topics.get(t).is_some_and(|&(_, n)| (0..n).contains(p)) {
                claims.entry((t, *p)).or_default().push(i);
            }
        }
    }
    let generation = |i: usize| members.get(i).map_or(i32::MIN, |m| m.generation);
    let owner: BTreeMap<Partition, usize> = claims
        .iter()
        .filter_map(|(&tp, claimants)| {
            let top = claimants.iter().map(|&i| generation(i)).max()?;
            let mut best = claimants.iter().filter(|&&i| generation(i) == top);
            match (best.next(), best.next()) {
                (Some(&i), None) => Some((tp, i)),
                _ => None,
            }
        })
        .collect();

    // Keep what each member owns of the topics it still subscribes to.
    let mut target: Vec<BTreeSet<Partition>> = vec![BTreeSet::new(); members.len()];
    for (&tp, &i) in &owner {
        if subscribes(i, tp.0)
            && let Some(set) = target.get_mut(i)
        {
            set.insert(tp);
        }
    }
    let kept = target.clone();

    // When every member subscribes to every topic (Java's "constrained"
    // case), the balanced shares are known up front: the members owning the
    // most keep the larger ones, each its lowest partition numbers. This
    // gives what `balance` would reach, without a move per partition.
    if subscribers.iter().all(|s| s.len() == members.len()) && !members.is_empty() {
        let total: usize = topics.iter().map(|&(_, n)| n as usize).sum();
        let (share, larger) = (total / members.len(), total % members.len());
        let mut by_owned: Vec<usize> = (0..members.len()).collect();
        by_owned.sort_by_key(|&i| (Reverse(target.get(i).map_or(0, BTreeSet::len)), i));
        for (rank, i) in by_owned.into_iter().enumerate() {
            let cap = share + usize::from(rank < larger);
            if let Some(set) = target.get_mut(i)
                && set.len() > cap
            {
                let mut lowest_first: Vec<Partition> = set.iter().copied().collect();
                lowest_first.sort_by_key(|&(t, p)| (p, t));
                *set = lowest_first.into_iter().take(cap).collect();
            }
        }
    }

    // Hand out the rest, topics with the fewest subscribers first (as Java
    // does), each partition to the subscriber holding the fewest.
    let held: BTreeSet<Partition> = target.iter().flatten().copied().collect();
    let mut order: Vec<usize> = (0..topics.len()).collect();
    order.sort_by_key(|&t| (subscribers.get(t).map_or(0, Vec::len), t));
    for t in order {
        let (Some(&(_, n)), Some(subs)) = (topics.get(t), subscribers.get(t)) else {
            continue;
        };
        for p in 0..n {
            if held.contains(&(t, p)) {
                continue;
            }
            let lightest = subs
                .iter()
                .copied()
                .min_by_key(|&i| (target.get(i).map_or(0, BTreeSet::len), i));
            if let Some(set) = lightest.and_then(|i| target.get_mut(i)) {
                set.insert((t, p));
            }
        }
    }

    balance(&mut target, &kept, &subscribers);

    // The cooperative rule (property 4).
    let now = target
        .iter()
        .enumerate()
        .map(|(i, set)| {
            set.iter()
                .copied()
                .filter(|tp| !claims.contains_key(tp) || owner.get(tp) == Some(&i))
                .collect()
        })
        .collect();
    StickyPlan {
        members,
        topics,
        target,
        now,
    }
}

/// Moves partitions from the member holding the most to a subscriber of
/// the partition's topic holding at least two fewer, until no such move
/// exists (Java's `isBalanced`). Every move lowers the sum of squared
/// counts, so this ends.
fn balance(
    target: &mut [BTreeSet<Partition>],
    kept: &[BTreeSet<Partition>],
    subscribers: &[Vec<usize>],
) {
    // Owned partitions in the order their member gives them up.
    let owned_last_first: Vec<Vec<Partition>> = kept
        .iter()
        .map(|owned| {
            let mut order: Vec<Partition> = owned.iter().copied().collect();
            order.sort_by_key(|&(t, p)| Reverse((p, t)));
            order
        })
        .collect();
    while let Some((tp, from, to)) = next_move(target, kept, &owned_last_first, subscribers) {
        if let Some(set) = target.get_mut(from) {
            set.remove(&tp);
        }
        if let Some(set) = target.get_mut(to) {
            set.insert(tp);
        }
    }
}

/// The next move of [`balance`]: from the heaviest member that can give
/// something up, to the lightest subscriber of the partition's topic
/// holding at least two fewer (ties go to the lower index). A member gives
/// up what it did not own first, then its owned partitions from the highest
/// partition number down.
fn next_move(
    target: &[BTreeSet<Partition>],
    kept: &[BTreeSet<Partition>],
    owned_last_first: &[Vec<Partition>],
    subscribers: &[Vec<usize>],
) -> Option<(Partition, usize, usize)> {
    let count = |i: usize| target.get(i).map_or(0, BTreeSet::len);
    let mut sources: Vec<usize> = (0..target.len()).collect();
    sources.sort_by_key(|&i| (Reverse(count(i)), i));
    let lightest = sources.last().map_or(0, |&i| count(i));
    for from in sources {
        let have = count(from);
        if have < lightest + 2 {
            break;
        }
        let held = target.get(from)?;
        let owned = |tp: &Partition| kept.get(from).is_some_and(|k| k.contains(tp));
        let mut receiver: BTreeMap<usize, Option<usize>> = BTreeMap::new();
        let mut receiver_of = |t: usize| {
            *receiver.entry(t).or_insert_with(|| {
                subscribers
                    .get(t)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|&i| count(i) + 2 <= have)
                    .min_by_key(|&i| (count(i), i))
            })
        };
        for &tp in held.iter().filter(|tp| !owned(tp)) {
            if let Some(to) = receiver_of(tp.0) {
                return Some((tp, from, to));
            }
        }
        let still_held = owned_last_first
            .get(from)
            .into_iter()
            .flatten()
            .filter(|tp| held.contains(tp));
        for &tp in still_held {
            if let Some(to) = receiver_of(tp.0) {
                return Some((tp, from, to));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An assignment by member id.
    type Layout = BTreeMap<String, BTreeSet<(String, i32)>>;

    // --- helpers ---

    fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.to_owned(),
            group_instance_id: None,
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            owned: BTreeSet::new(),
            generation: -1,
        }
    }

    fn static_member(id: &str, instance: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            group_instance_id: Some(instance.to_owned()),
            ..member(id, topics)
        }
    }

    fn owning(
        mut m: MemberSubscription,
        generation: i32,
        owned: &[(&str, i32)],
    ) -> MemberSubscription {
        m.generation = generation;
        m.owned = owned.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect();
        m
    }

    fn counts(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
        topics.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
    }

    /// `"t0:0,t0:1"` as a set; `""` or `"-"` is empty.
    fn set(list: &str) -> BTreeSet<(String, i32)> {
        list.split(',')
            .filter(|s| !s.is_empty() && *s != "-")
            .map(|s| {
                let (t, p) = s.rsplit_once(':').unwrap();
                (t.to_owned(), p.parse().unwrap())
            })
            .collect()
    }

    fn layout(pairs: &[(&str, &str)]) -> Layout {
        pairs
            .iter()
            .map(|(m, l)| ((*m).to_owned(), set(l)))
            .collect()
    }

    // --- names ---

    #[test]
    fn names_round_trip_and_java_class_names_are_understood() {
        for a in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            assert_eq!(Assignor::from_name(a.name()), Some(a));
        }
        let java = [
            (
                "org.apache.kafka.clients.consumer.RangeAssignor",
                Assignor::Range,
            ),
            (
                "org.apache.kafka.clients.consumer.RoundRobinAssignor",
                Assignor::RoundRobin,
            ),
            (
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
                Assignor::CooperativeSticky,
            ),
            ("RangeAssignor", Assignor::Range),
            ("RoundRobinAssignor", Assignor::RoundRobin),
            ("CooperativeStickyAssignor", Assignor::CooperativeSticky),
            (" range ", Assignor::Range),
            (
                "\torg.apache.kafka.clients.consumer.RangeAssignor\n",
                Assignor::Range,
            ),
        ];
        for (name, a) in java {
            assert_eq!(Assignor::from_name(name), Some(a), "{name:?}");
        }
        for name in [
            "sticky",
            "StickyAssignor",
            "org.apache.kafka.clients.consumer.StickyAssignor",
            "Range",
            "round-robin",
            "org.apache.kafka.clients.consumer.internals.RangeAssignor",
            "com.example.RangeAssignor",
            "",
        ] {
            assert_eq!(Assignor::from_name(name), None, "{name:?}");
        }
        assert!(Assignor::CooperativeSticky.is_cooperative());
        assert!(!Assignor::Range.is_cooperative());
        assert!(!Assignor::RoundRobin.is_cooperative());
    }

    // --- range and roundrobin: Java's layouts ---

    #[test]
    fn range_matches_javas_javadoc_example() {
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let got = assign(Assignor::Range, &members, &counts(&[("t0", 3), ("t1", 3)]));
        let want = layout(&[("C0", "t0:0,t0:1,t1:0,t1:1"), ("C1", "t0:2,t1:2")]);
        assert_eq!(got, want);
    }

    #[test]
    fn roundrobin_matches_javas_javadoc_examples() {
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let got = assign(
            Assignor::RoundRobin,
            &members,
            &counts(&[("t0", 3), ("t1", 3)]),
        );
        let want = layout(&[("C0", "t0:0,t0:2,t1:1"), ("C1", "t0:1,t1:0,t1:2")]);
        assert_eq!(got, want);

        // Different subscriptions: a member is skipped for topics it lacks.
        let members = [
            member("C0", &["t0"]),
            member("C1", &["t0", "t1"]),
            member("C2", &["t0", "t1", "t2"]),
        ];
        let got = assign(
            Assignor::RoundRobin,
            &members,
            &counts(&[("t0", 1), ("t1", 2), ("t2", 3)]),
        );
        let want = layout(&[
            ("C0", "t0:0"),
            ("C1", "t1:0"),
            ("C2", "t1:1,t2:0,t2:1,t2:2"),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn static_members_come_first_in_instance_id_order() {
        // Java's javadoc: member ids change at a rolling bounce, instance
        // ids do not, so I0 keeps the first range whatever its member id.
        let members = [
            static_member("C3", "I0", &["t0", "t1"]),
            static_member("C2", "I1", &["t0", "t1"]),
        ];
        let got = assign(Assignor::Range, &members, &counts(&[("t0", 3), ("t1", 3)]));
        assert_eq!(
            got,
            layout(&[("C3", "t0:0,t0:1,t1:0,t1:1"), ("C2", "t0:2,t1:2")])
        );

        // A static member sorts before every dynamic one.
        let members = [
            member("a", &["t"]),
            static_member("z", "zz", &["t"]),
            member("b", &["t"]),
        ];
        let got = assign(Assignor::RoundRobin, &members, &counts(&[("t", 4)]));
        assert_eq!(got, layout(&[("z", "t:0,t:3"), ("a", "t:1"), ("b", "t:2")]));
    }

    #[test]
    fn member_ids_are_compared_as_java_compares_strings() {
        // U+10000 is a surrogate pair in UTF-16 (0xD800 0xDC00), below
        // U+FF61 there, above it in UTF-8: Java puts it first.
        let low = "m-\u{10000}";
        let high = "m-\u{ff61}";
        assert!(low > high, "Rust orders by UTF-8");
        assert_eq!(java_str_cmp(low, high), Ordering::Less);
        let members = [member(high, &["t"]), member(low, &["t"])];
        let got = assign(Assignor::Range, &members, &counts(&[("t", 3)]));
        assert_eq!(got, layout(&[(low, "t:0,t:1"), (high, "t:2")]));
    }

    #[test]
    fn missing_and_empty_topics_are_skipped_and_every_member_is_a_key() {
        let members = [
            member("a", &["gone", "t"]),
            member("b", &[]),
            member("c", &["empty"]),
        ];
        let partitions = counts(&[("t", 2), ("empty", 0), ("unsubscribed", 5)]);
        for assignor in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            let got = assign(assignor, &members, &partitions);
            assert_eq!(
                got,
                layout(&[("a", "t:0,t:1"), ("b", ""), ("c", "")]),
                "{assignor:?}"
            );
        }
        for assignor in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            assert!(assign(assignor, &[], &partitions).is_empty());
        }
    }

    /// Cases from Apache Kafka 3.9.2's `RangeAssignor` and
    /// `RoundRobinAssignor` (`assign(partitionsPerTopic, subscriptions)`) on
    /// random groups, printed by a throwaway Java program: static members,
    /// member ids whose Java order differs from Rust's, topics missing from
    /// the metadata or without partitions, members subscribed to nothing.
    /// 3000 such cases agreed; these five are a sample (case 31 fails if
    /// member ids are compared by bytes).
    const JAVA_LAYOUTS: &str = r"
case 31
topic b 1
topic t-1 6
topic t0 1
member c1 - a,b
member m-\u{ff61} - t0,t-1
member m-\u{10000} - b,t0,t-1,x.y
member c10 i1 a,t0,t-1
range c1 b:0
range c10 t-1:0,t-1:1,t0:0
range m-\u{10000} t-1:2,t-1:3
range m-\u{ff61} t-1:4,t-1:5
roundrobin c1 b:0
roundrobin c10 t-1:2,t-1:5
roundrobin m-\u{10000} t-1:0,t-1:3,t0:0
roundrobin m-\u{ff61} t-1:1,t-1:4
end
case 1
topic a 6
topic b 5
topic t-1 3
topic t0 6
topic x.y 0
member c10 - a,x.y
member z i2 t-1
member C3 - a,x.y
range C3 a:0,a:1,a:2
range c10 a:3,a:4,a:5
range z t-1:0,t-1:1,t-1:2
roundrobin C3 a:0,a:2,a:4
roundrobin c10 a:1,a:3,a:5
roundrobin z t-1:0,t-1:1,t-1:2
end
case 18
topic a 5
topic b 3
topic t-1 7
topic x.y 3
member C3 i2 -
range C3 -
roundrobin C3 -
end
case 68
topic b 4
topic t-1 2
topic t0 1
member c1 \u{ff61} t0,x.y
member c2 \u{10000} b
member c10 - -
member C3 - b,t0
member a - a,b,t0,x.y
member m-\u{10000} - a,t0
range C3 b:2
range a b:3
range c1 t0:0
range c10 -
range c2 b:0,b:1
range m-\u{10000} -
roundrobin C3 b:1
roundrobin a b:2
roundrobin c1 t0:0
roundrobin c10 -
roundrobin c2 b:0,b:3
roundrobin m-\u{10000} -
end
case 4
topic a 4
topic b 5
topic t-1 0
topic t0 1
member a - a,t0
member c10 \u{ff61} a,b
member c1 - x.y
member m-\u{ff61} - a,t-1,x.y
member C3 i2 t-1,x.y
member m-\u{10000} i0 b,x.y
range C3 -
range a a:2,t0:0
range c1 -
range c10 a:0,a:1,b:3,b:4
range m-\u{10000} b:0,b:1,b:2
range m-\u{ff61} a:3
roundrobin C3 -
roundrobin a a:1,t0:0
roundrobin c1 -
roundrobin c10 a:0,a:3,b:1,b:3
roundrobin m-\u{10000} b:0,b:2,b:4
roundrobin m-\u{ff61} a:2
end
";

    /// One case of [`JAVA_LAYOUTS`]: the partition counts, the members, and
    /// Java's layout per assignor.
    type JavaCase = (
        BTreeMap<String, i32>,
        Vec<MemberSubscription>,
        Vec<(Assignor, Layout)>,
    );

    /// Parses [`JAVA_LAYOUTS`].
    fn java_cases(text: &str) -> Vec<JavaCase> {
        fn unescape(s: &str) -> String {
            let mut out = String::new();
            let mut rest = s;
            while let Some(at) = rest.find("\\u{") {
                out.push_str(&rest[..at]);
                let end = rest[at..].find('}').unwrap() + at;
                let cp = u32::from_str_radix(&rest[at + 3..end], 16).unwrap();
                out.push(char::from_u32(cp).unwrap());
                rest = &rest[end + 1..];
            }
            out.push_str(rest);
            out
        }
        let mut cases = Vec::new();
        let (mut topics, mut members, mut want) = (BTreeMap::new(), Vec::new(), Vec::new());
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let words: Vec<&str> = line.split(' ').collect();
            match words[0] {
                "case" => {}
                "topic" => {
                    topics.insert(words[1].to_owned(), words[2].parse().unwrap());
                }
                "member" => {
                    let topics: Vec<&str> = words[3].split(',').filter(|t| *t != "-").collect();
                    let mut m = member(&unescape(words[1]), &topics);
                    if words[2] != "-" {
                        m.group_instance_id = Some(unescape(words[2]));
                    }
                    members.push(m);
                }
                "end" => cases.push((
                    std::mem::take(&mut topics),
                    std::mem::take(&mut members),
                    std::mem::take(&mut want),
                )),
                name => {
                    let assignor = Assignor::from_name(name).unwrap();
                    if want.last().is_none_or(|(a, _)| *a != assignor) {
                        want.push((assignor, BTreeMap::new()));
                    }
                    if let Some((_, layout)) = want.last_mut() {
                        layout.insert(unescape(words[1]), set(words[2]));
                    }
                }
            }
        }
        cases
    }

    #[test]
    fn range_and_roundrobin_match_java_on_random_groups() {
        let cases = java_cases(JAVA_LAYOUTS);
        assert!(!cases.is_empty());
        for (i, (partitions, members, want)) in cases.iter().enumerate() {
            for (assignor, layout) in want {
                assert_eq!(
                    &assign(*assignor, members, partitions),
                    layout,
                    "case {i} {assignor:?}"
                );
            }
        }
    }

    // --- cooperative-sticky: worked cases ---

    fn sticky(members: &[MemberSubscription], partitions: &BTreeMap<String, i32>) -> Layout {
        assign(Assignor::CooperativeSticky, members, partitions)
    }

    /// The target (before the cooperative rule) by member id.
    fn sticky_target(members: &[MemberSubscription], partitions: &BTreeMap<String, i32>) -> Layout {
        let plan = sticky_plan(&unique_members(members), partitions);
        plan.members
            .iter()
            .zip(&plan.target)
            .map(|(m, set)| {
                let set = set
                    .iter()
                    .map(|&(t, p)| (plan.topics[t].0.to_owned(), p))
                    .collect();
                (m.member_id.clone(), set)
            })
            .collect()
    }

    #[test]
    fn a_fresh_group_gets_a_balanced_complete_assignment() {
        let members = [
            member("a", &["t0", "t1"]),
            member("b", &["t0", "t1"]),
            member("c", &["t0", "t1"]),
        ];
        let got = sticky(&members, &counts(&[("t0", 3), ("t1", 3)]));
        assert!(got.values().all(|s| s.len() == 2), "{got:?}");
        let all: BTreeSet<_> = got.values().flatten().collect();
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn a_joining_member_gets_partitions_only_after_their_owners_revoke_them() {
        let partitions = counts(&[("t0", 3), ("t1", 3)]);
        let round1 = [
            owning(
                member("a", &["t0", "t1"]),
                1,
                &[("t0", 0), ("t0", 1), ("t0", 2)],
            ),
            owning(
                member("b", &["t0", "t1"]),
                1,
                &[("t1", 0), ("t1", 1), ("t1", 2)],
            ),
            member("c", &["t0", "t1"]),
        ];
        let got = sticky(&round1, &partitions);
        // a and b keep their lowest partitions; what moves to c is left out.
        assert_eq!(
            got,
            layout(&[("a", "t0:0,t0:1"), ("b", "t1:0,t1:1"), ("c", "")])
        );
        assert_eq!(sticky_target(&round1, &partitions)["c"], set("t0:2,t1:2"));

        // They revoke, rejoin owning what they got, and c gets the rest.
        let round2 = [
            owning(member("a", &["t0", "t1"]), 2, &[("t0", 0), ("t0", 1)]),
            owning(member("b", &["t0", "t1"]), 2, &[("t1", 0), ("t1", 1)]),
            owning(member("c", &["t0", "t1"]), 2, &[]),
        ];
        let got = sticky(&round2, &partitions);
        assert_eq!(
            got,
            layout(&[("a", "t0:0,t0:1"), ("b", "t1:0,t1:1"), ("c", "t0:2,t1:2")])
        );
    }

    #[test]
    fn a_leaving_members_partitions_move_at_once() {
        // b left: nobody claims its partitions any more.
        let members = [owning(member("a", &["t"]), 4, &[("t", 0), ("t", 1)])];
        let got = sticky(&members, &counts(&[("t", 4)]));
        assert_eq!(got, layout(&[("a", "t:0,t:1,t:2,t:3")]));
    }

    #[test]
    fn a_partition_claimed_twice_in_one_generation_is_withheld_from_everyone() {
        let members = [
            owning(member("a", &["t"]), 3, &[("t", 0)]),
            owning(member("b", &["t"]), 3, &[("t", 0), ("t", 1)]),
        ];
        let partitions = counts(&[("t", 2)]);
        assert_eq!(
            sticky(&members, &partitions),
            layout(&[("a", ""), ("b", "t:1")])
        );
        // It is in the target: the next round hands it out.
        let target = sticky_target(&members, &partitions);
        assert!(target.values().any(|s| s.contains(&("t".to_owned(), 0))));
    }

    #[test]
    fn the_higher_generation_claim_wins() {
        let members = [
            owning(member("a", &["t"]), 4, &[("t", 0)]),
            owning(member("b", &["t"]), 3, &[("t", 0), ("t", 1)]),
        ];
        let got = sticky(&members, &counts(&[("t", 2)]));
        assert_eq!(got, layout(&[("a", "t:0"), ("b", "t:1")]));
    }

    #[test]
    fn an_uncontested_claim_from_an_older_generation_is_kept_as_java_does_since_3_5() {
        // a missed a generation (say it was late to rejoin): nobody else
        // claims its partitions, so it keeps them (KAFKA-14639).
        let members = [
            owning(member("a", &["t"]), 2, &[("t", 0), ("t", 1)]),
            owning(member("b", &["t"]), 5, &[("t", 2), ("t", 3)]),
        ];
        let got = sticky(&members, &counts(&[("t", 4)]));
        assert_eq!(got, layout(&[("a", "t:0,t:1"), ("b", "t:2,t:3")]));
    }

    #[test]
    fn a_partition_of_a_topic_its_owner_dropped_moves_only_after_it_is_revoked() {
        let partitions = counts(&[("t", 1), ("u", 1)]);
        let members = [
            owning(member("a", &["t"]), 1, &[("t", 0), ("u", 0)]),
            owning(member("b", &["u"]), 1, &[]),
        ];
        assert_eq!(
            sticky(&members, &partitions),
            layout(&[("a", "t:0"), ("b", "")])
        );
        assert_eq!(sticky_target(&members, &partitions)["b"], set("u:0"));
        let members = [
            owning(member("a", &["t"]), 2, &[("t", 0)]),
            owning(member("b", &["u"]), 2, &[]),
        ];
        assert_eq!(
            sticky(&members, &partitions),
            layout(&[("a", "t:0"), ("b", "u:0")])
        );
    }

    #[test]
    fn claims_on_partitions_that_do_not_exist_are_ignored() {
        let members = [
            owning(member("a", &["t"]), 1, &[("t", 7), ("t", -1), ("gone", 0)]),
            member("b", &["t"]),
        ];
        let got = sticky(&members, &counts(&[("t", 2)]));
        assert_eq!(got.values().map(BTreeSet::len).collect::<Vec<_>>(), [1, 1]);
    }

    #[test]
    fn different_subscriptions_are_balanced_as_far_as_they_allow() {
        // a can only take t0; b takes everything of t1.
        let members = [member("a", &["t0"]), member("b", &["t0", "t1"])];
        let got = sticky(&members, &counts(&[("t0", 2), ("t1", 4)]));
        assert_eq!(
            got,
            layout(&[("a", "t0:0,t0:1"), ("b", "t1:0,t1:1,t1:2,t1:3")])
        );
    }

    #[test]
    fn repeated_member_ids_count_once_and_member_order_does_not_matter() {
        let a = owning(member("a", &["t"]), 1, &[("t", 0)]);
        let b = member("b", &["t"]);
        let partitions = counts(&[("t", 5)]);
        for assignor in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            let one = assign(assignor, &[a.clone(), b.clone()], &partitions);
            let two = assign(
                assignor,
                &[b.clone(), a.clone(), member("a", &[])],
                &partitions,
            );
            assert_eq!(one, two, "{assignor:?}");
        }
    }

    // --- properties over random groups ---

    /// xorshift64: a fixed-seed stream, so a failure replays.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        fn chance(&mut self, one_in: usize) -> bool {
            self.below(one_in) == 0
        }
    }

    const TOPICS: [&str; 5] = ["a", "b", "c", "d", "gone"];

    /// A random group: topics with 0..=12 partitions ("gone" is never in
    /// the metadata), 1..=7 members (some static), the same or random
    /// subscriptions, and owned partitions that are absent, a previous
    /// clean assignment in one or two generations, or garbage.
    fn random_group(
        rng: &mut Rng,
        same_topics: bool,
    ) -> (Vec<MemberSubscription>, BTreeMap<String, i32>) {
        let mut partitions = BTreeMap::new();
        for t in &TOPICS[..4] {
            if !rng.chance(4) {
                partitions.insert((*t).to_owned(), rng.below(13) as i32);
            }
        }
        let pick_topics = |rng: &mut Rng| -> BTreeSet<String> {
            TOPICS
                .iter()
                .filter(|_| rng.chance(2))
                .map(|t| (*t).to_owned())
                .collect()
        };
        let shared = pick_topics(rng);
        let n = 1 + rng.below(7);
        let mut members: Vec<MemberSubscription> = (0..n)
            .map(|i| MemberSubscription {
                member_id: format!("m{}", rng.below(1000) * 10 + i),
                group_instance_id: rng.chance(3).then(|| format!("i{i}")),
                topics: if same_topics {
                    shared.clone()
                } else {
                    pick_topics(rng)
                },
                owned: BTreeSet::new(),
                generation: -1,
            })
            .collect();
        let all: Vec<(String, i32)> = partitions
            .iter()
            .flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p)))
            .collect();
        match rng.below(3) {
            0 => {}
            1 => {
                // A previous assignment: each partition owned by at most one
                // member; some members one generation behind.
                let generation = 5;
                for m in &mut members {
                    m.generation = generation - i32::from(rng.chance(4));
                }
                for tp in &all {
                    if !rng.chance(3) {
                        let owner = rng.below(n);
                        members[owner].owned.insert(tp.clone());
                    }
                }
            }
            _ => {
                for m in &mut members {
                    m.generation = rng.below(4) as i32 - 1;
                    for _ in 0..rng.below(8) {
                        let topic = TOPICS[rng.below(TOPICS.len())].to_owned();
                        m.owned.insert((topic, rng.below(15) as i32 - 1));
                    }
                }
            }
        }
        (members, partitions)
    }

    /// Every partition the group subscribes to.
    fn subscribed_partitions(
        members: &[MemberSubscription],
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeSet<(String, i32)> {
        partitions
            .iter()
            .filter(|(t, _)| members.iter().any(|m| m.topics.contains(*t)))
            .flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p)))
            .collect()
    }

    /// Every member is a key, each partition goes to at most one member
    /// and only to a subscriber; returns the partitions given out.
    fn check_well_formed(
        members: &[MemberSubscription],
        partitions: &BTreeMap<String, i32>,
        got: &Layout,
    ) -> BTreeSet<(String, i32)> {
        let ids: BTreeSet<&String> = members.iter().map(|m| &m.member_id).collect();
        assert_eq!(got.keys().collect::<BTreeSet<_>>(), ids);
        let mut seen = BTreeSet::new();
        for (id, set) in got {
            let m = members.iter().find(|m| &m.member_id == id).unwrap();
            for tp in set {
                assert!(m.topics.contains(&tp.0), "{id} got {tp:?} unsubscribed");
                assert!(
                    (0..partitions[&tp.0]).contains(&tp.1),
                    "{tp:?} does not exist"
                );
                assert!(seen.insert(tp.clone()), "{tp:?} assigned twice");
            }
        }
        seen
    }

    fn spread(got: &Layout) -> usize {
        let sizes = got.values().map(BTreeSet::len);
        sizes.clone().max().unwrap_or(0) - sizes.min().unwrap_or(0)
    }

    #[test]
    fn range_and_roundrobin_assign_every_partition_exactly_once_and_balance() {
        let mut rng = Rng(0x5eed_0001);
        for case in 0..3000 {
            let same = rng.chance(2);
            let (members, partitions) = random_group(&mut rng, same);
            let wanted = subscribed_partitions(&members, &partitions);
            let range = assign(Assignor::Range, &members, &partitions);
            assert_eq!(
                check_well_formed(&members, &partitions, &range),
                wanted,
                "case {case}"
            );
            // Per topic, its subscribers' shares differ by at most one.
            for topic in partitions.keys() {
                let shares = members
                    .iter()
                    .filter(|m| m.topics.contains(topic))
                    .map(|m| {
                        range[&m.member_id]
                            .iter()
                            .filter(|tp| &tp.0 == topic)
                            .count()
                    });
                let (lo, hi) = (shares.clone().min(), shares.max());
                assert!(
                    hi.unwrap_or(0) - lo.unwrap_or(0) <= 1,
                    "case {case} {topic}"
                );
            }
            let rr = assign(Assignor::RoundRobin, &members, &partitions);
            assert_eq!(
                check_well_formed(&members, &partitions, &rr),
                wanted,
                "case {case}"
            );
            if same {
                assert!(spread(&rr) <= 1, "case {case}: {rr:?}");
            }
        }
    }

    /// Property 1 of [`cooperative_sticky`], written out independently:
    /// who owns each partition.
    fn owners(
        members: &[MemberSubscription],
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<(String, i32), String> {
        let mut out = BTreeMap::new();
        for tp in subscribed_partitions(members, partitions) {
            let claimants: Vec<&MemberSubscription> =
                members.iter().filter(|m| m.owned.contains(&tp)).collect();
            let Some(top) = claimants.iter().map(|m| m.generation).max() else {
                continue;
            };
            let best: Vec<_> = claimants.iter().filter(|m| m.generation == top).collect();
            if let [only] = best[..] {
                out.insert(tp, only.member_id.clone());
            }
        }
        out
    }

    /// Checks properties 1 to 4 of [`cooperative_sticky`] on one round.
    fn check_cooperative_round(
        case: usize,
        members: &[MemberSubscription],
        partitions: &BTreeMap<String, i32>,
    ) -> Layout {
        let same = members.windows(2).all(|w| w[0].topics == w[1].topics);
        let got = sticky(members, partitions);
        let target = sticky_target(members, partitions);
        let wanted = subscribed_partitions(members, partitions);
        check_well_formed(members, partitions, &got);
        assert_eq!(
            check_well_formed(members, partitions, &target),
            wanted,
            "case {case}: the target is complete"
        );
        let size = |id: &str| target[id].len();
        // Property 2: Java's isBalanced.
        for m in members {
            for (other, set) in &target {
                for tp in set.iter().filter(|tp| m.topics.contains(&tp.0)) {
                    assert!(
                        size(other) <= size(&m.member_id) + 1,
                        "case {case}: {tp:?} could move from {other} to {}",
                        m.member_id
                    );
                }
            }
        }
        if same {
            assert!(spread(&target) <= 1, "case {case}: {target:?}");
        }
        // Property 3: stickiness.
        let owners = owners(members, partitions);
        let valid_owned = |m: &MemberSubscription| -> BTreeSet<(String, i32)> {
            owners
                .iter()
                .filter(|(tp, o)| **o == m.member_id && m.topics.contains(&tp.0))
                .map(|(tp, _)| tp.clone())
                .collect()
        };
        let mut moved = 0;
        let mut owned_counts = Vec::new();
        for m in members {
            let owned = valid_owned(m);
            let mine = &target[&m.member_id];
            let lost: Vec<_> = owned.difference(mine).collect();
            owned_counts.push(owned.len());
            moved += lost.len();
            if !lost.is_empty() && same {
                assert!(
                    mine.is_subset(&owned),
                    "case {case}: {} lost and gained",
                    m.member_id
                );
                // It kept its lowest partition numbers.
                let key = |tp: &(String, i32)| (tp.1, tp.0.clone());
                let kept_max = mine.iter().map(key).max();
                let lost_min = lost.iter().map(|tp| key(tp)).min();
                assert!(
                    kept_max < lost_min,
                    "case {case}: {} kept the wrong ones",
                    m.member_id
                );
            }
        }
        if same && !members.is_empty() && !members[0].topics.is_empty() {
            // The fewest moves any balanced assignment needs: the members
            // owning the most keep the larger shares.
            let (n, total) = (members.len(), wanted.len());
            owned_counts.sort_unstable_by(|a, b| b.cmp(a));
            let least: usize = owned_counts
                .iter()
                .enumerate()
                .map(|(i, &o)| o.saturating_sub(total / n + usize::from(i < total % n)))
                .sum();
            assert_eq!(moved, least, "case {case}: owned partitions moved");
        }
        // Property 4: the cooperative rule.
        for (id, set) in &got {
            assert!(set.is_subset(&target[id]), "case {case}");
            for tp in &target[id] {
                let others_claim = members
                    .iter()
                    .any(|m| &m.member_id != id && m.owned.contains(tp));
                let owns = owners.get(tp) == Some(id);
                let contested = others_claim
                    || members
                        .iter()
                        .any(|m| &m.member_id == id && m.owned.contains(tp));
                let handed = !contested || owns;
                assert_eq!(set.contains(tp), handed, "case {case}: {tp:?} for {id}");
            }
        }
        // What Java's leader checks before it sends a COOPERATIVE
        // assignment (`ConsumerCoordinator.validateCooperativeAssignment`):
        // nothing added to one member is revoked from another.
        let mut added = BTreeSet::new();
        let mut revoked = BTreeSet::new();
        for m in members {
            let mine = &got[&m.member_id];
            added.extend(mine.difference(&m.owned).cloned());
            revoked.extend(m.owned.difference(mine).cloned());
        }
        assert!(
            added.is_disjoint(&revoked),
            "case {case}: Java's leader would throw"
        );
        got
    }

    /// The next round as Java's members play it: each revokes what it was
    /// not given and rejoins owning what it got, in the new generation.
    fn next_round(
        members: &[MemberSubscription],
        got: &Layout,
        generation: i32,
    ) -> Vec<MemberSubscription> {
        members
            .iter()
            .map(|m| MemberSubscription {
                owned: got[&m.member_id].clone(),
                generation,
                ..m.clone()
            })
            .collect()
    }

    #[test]
    fn cooperative_sticky_properties_hold_on_random_groups() {
        let mut rng = Rng(0x5eed_0002);
        let mut rounds_needed = [0usize; 8];
        for case in 0..3000 {
            let same = rng.chance(2);
            let (mut members, partitions) = random_group(&mut rng, same);
            let mut rounds = 0;
            loop {
                let got = check_cooperative_round(case, &members, &partitions);
                rounds += 1;
                let complete = got.values().map(BTreeSet::len).sum::<usize>()
                    == subscribed_partitions(&members, &partitions).len();
                let unchanged = members.iter().all(|m| got[&m.member_id] == m.owned);
                if complete && unchanged {
                    break;
                }
                assert!(rounds < 6, "case {case}: no convergence");
                members = next_round(&members, &got, 10 + rounds as i32);
            }
            // Property 5: with the same subscriptions, the round after one
            // that left partitions out completes the assignment.
            if same {
                assert!(rounds <= 3, "case {case}: {rounds} rounds");
            }
            rounds_needed[rounds] += 1;
        }
        eprintln!("rounds until stable: {rounds_needed:?}");
    }
}
