//! TEMPORARY interface stub; replaced by the real assignors.
use std::collections::{BTreeMap, BTreeSet};

/// A partition assignor, by its name in the consumer protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Assignor {
    /// `range`.
    Range,
    /// `roundrobin`.
    RoundRobin,
    /// `cooperative-sticky`.
    CooperativeSticky,
}

impl Assignor {
    /// The protocol name.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }
    /// From a name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "range" => Some(Self::Range),
            "roundrobin" => Some(Self::RoundRobin),
            "cooperative-sticky" => Some(Self::CooperativeSticky),
            _ => None,
        }
    }
    /// Cooperative.
    pub fn is_cooperative(self) -> bool {
        self == Self::CooperativeSticky
    }
}

/// One member's subscription as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberSubscription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub topics: BTreeSet<String>,
    pub owned: BTreeSet<(String, i32)>,
    pub generation: i32,
}

/// The assignment.
pub(crate) fn assign(
    _assignor: Assignor,
    members: &[MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeSet<(String, i32)>> {
    let mut out: BTreeMap<String, BTreeSet<(String, i32)>> = members
        .iter()
        .map(|m| (m.member_id.clone(), BTreeSet::new()))
        .collect();
    let mut i = 0;
    for (t, n) in partitions {
        for p in 0..*n {
            let subs: Vec<_> = members.iter().filter(|m| m.topics.contains(t)).collect();
            if subs.is_empty() {
                continue;
            }
            let Some(m) = subs.get(i % subs.len()) else {
                continue;
            };
            i += 1;
            out.entry(m.member_id.clone())
                .or_default()
                .insert((t.clone(), p));
        }
    }
    out
}
