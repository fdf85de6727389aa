//! The seeded fault schedule: the changes real clusters go through while a
//! mirror runs (issue 13's list), at random times within the fault window.

use std::fmt;
use std::time::Duration;

use crate::rng::SimRng;
use crate::world::Side;

/// One change to the clusters or to kmirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A broker stops and starts again after `down_for`. Graceful: its
    /// leaders move first (controlled shutdown). Not graceful (kill -9):
    /// its partitions keep a dead leader until the controller notices,
    /// `failover_after` later.
    BrokerRestart {
        /// Which cluster.
        side: Side,
        /// Which broker.
        broker: i32,
        /// How long it stays down.
        down_for: Duration,
        /// Controlled shutdown or not.
        graceful: bool,
        /// Delay before the controller elects new leaders (crash only).
        failover_after: Duration,
    },
    /// A broker answers nothing for a while (GC pause, hung disk).
    BrokerStall {
        /// Which cluster.
        side: Side,
        /// Which broker.
        broker: i32,
        /// How long.
        stall_for: Duration,
    },
    /// One partition's leadership moves to another replica.
    Election {
        /// Which cluster.
        side: Side,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// Every partition moves back to its preferred leader.
    PreferredElection {
        /// Which cluster.
        side: Side,
    },
    /// The source group coordinator moves to another broker.
    CoordinatorMove,
    /// Partitions added to a source topic.
    AddPartitions {
        /// Topic.
        topic: String,
        /// How many partitions it gets in all.
        to: i32,
    },
    /// An unclean election on the source: a replica missing the last
    /// records becomes leader, the log is truncated.
    UncleanElection {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// A kmirror process is killed (kill -9) and started again after
    /// `down_for`.
    MirrorCrash {
        /// Which process (an index into the scenario's processes).
        process: usize,
        /// How long it stays dead.
        down_for: Duration,
    },
    /// A kmirror process is stopped gracefully (it commits, gives its
    /// partitions up and leaves the group: a handover) and started again
    /// after `down_for`.
    MirrorRestart {
        /// Which process.
        process: usize,
        /// How long it stays stopped.
        down_for: Duration,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::BrokerRestart {
                side,
                broker,
                down_for,
                graceful,
                failover_after,
            } => write!(
                f,
                "{} restart of {side:?} broker {broker}, down {down_for:?}{}",
                if *graceful { "graceful" } else { "kill -9 and" },
                if *graceful {
                    String::new()
                } else {
                    format!(", leaders fail over after {failover_after:?}")
                }
            ),
            Fault::BrokerStall {
                side,
                broker,
                stall_for,
            } => {
                write!(f, "{side:?} broker {broker} stalls for {stall_for:?}")
            }
            Fault::Election {
                side,
                topic,
                partition,
            } => {
                write!(f, "leader election for {side:?} {topic}-{partition}")
            }
            Fault::PreferredElection { side } => {
                write!(f, "preferred leader election on the {side:?}")
            }
            Fault::CoordinatorMove => write!(f, "the source group coordinator moves"),
            Fault::AddPartitions { topic, to } => {
                write!(f, "source topic {topic} grows to {to} partitions")
            }
            Fault::UncleanElection { topic, partition } => {
                write!(
                    f,
                    "unclean leader election for source {topic}-{partition} (records lost)"
                )
            }
            Fault::MirrorCrash { process, down_for } => {
                write!(
                    f,
                    "kmirror process {process} killed (kill -9), restarted after {down_for:?}"
                )
            }
            Fault::MirrorRestart { process, down_for } => {
                write!(
                    f,
                    "kmirror process {process} stopped gracefully, restarted after {down_for:?}"
                )
            }
        }
    }
}

/// A fault at a time since the start.
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// When.
    pub at: Duration,
    /// What.
    pub fault: Fault,
}

/// Draws `count` faults within `window` for `topics` (name, partitions)
/// on clusters of `brokers` brokers, with `processes` kmirror processes.
pub fn schedule(
    rng: &mut SimRng,
    count: usize,
    window: Duration,
    brokers: i32,
    topics: &[(String, i32)],
    processes: usize,
) -> Vec<Scheduled> {
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(60_000).max(1);
    let mut partitions: Vec<(String, i32)> = topics.to_vec();
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let at = Duration::from_millis(rng.below(window_ms));
        let side = if rng.chance(500) {
            Side::Source
        } else {
            Side::Destination
        };
        let broker =
            i32::try_from(rng.between(1, u64::try_from(brokers).unwrap_or(1))).unwrap_or(1);
        let fault = match rng.below(106) {
            0..=29 => Fault::BrokerRestart {
                side,
                broker,
                down_for: Duration::from_millis(rng.between(200, 8_000)),
                graceful: rng.chance(500),
                failover_after: Duration::from_millis(rng.between(100, 3_000)),
            },
            30..=39 => Fault::BrokerStall {
                side,
                broker,
                stall_for: Duration::from_millis(rng.between(100, 12_000)),
            },
            40..=64 => {
                let Some((topic, n)) = rng.pick(&partitions).cloned() else {
                    continue;
                };
                let partition =
                    i32::try_from(rng.below(u64::try_from(n).unwrap_or(1))).unwrap_or(0);
                Fault::Election {
                    side,
                    topic,
                    partition,
                }
            }
            65..=72 => Fault::PreferredElection { side },
            73..=79 => Fault::CoordinatorMove,
            80..=87 => {
                let Some(i) = usize::try_from(rng.below(partitions.len() as u64)).ok() else {
                    continue;
                };
                let Some((topic, n)) = partitions.get_mut(i) else {
                    continue;
                };
                *n += i32::try_from(rng.between(1, 2)).unwrap_or(1);
                Fault::AddPartitions {
                    topic: topic.clone(),
                    to: *n,
                }
            }
            88..=93 => {
                let Some((topic, n)) = rng.pick(&partitions).cloned() else {
                    continue;
                };
                let partition =
                    i32::try_from(rng.below(u64::try_from(n).unwrap_or(1))).unwrap_or(0);
                Fault::UncleanElection { topic, partition }
            }
            94..=99 => Fault::MirrorCrash {
                process: usize::try_from(rng.below(processes.max(1) as u64)).unwrap_or(0),
                down_for: Duration::from_millis(rng.between(0, 3_000)),
            },
            _ => Fault::MirrorRestart {
                process: usize::try_from(rng.below(processes.max(1) as u64)).unwrap_or(0),
                down_for: Duration::from_millis(rng.between(0, 5_000)),
            },
        };
        out.push(Scheduled { at, fault });
    }
    out.sort_by_key(|s| s.at);
    out
}
