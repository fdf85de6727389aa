//! The deterministic cluster simulation (crate documentation): many seeds,
//! exact replay, and one scenario per kind of cluster change.
//!
//! `KMIRROR_SIM_SEEDS` (default 300) sets how many seeds the sweep runs,
//! `KMIRROR_SIM_FROM` the first; `cargo xtask simulate` runs more.

use std::time::Duration;

use kmirror::Assignor;
use kmirror_sim::faults::{Fault, Scheduled};
use kmirror_sim::world::{FaultRates, Side};
use kmirror_sim::{SimOptions, SimReport, simulate};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn assert_passed(report: &SimReport) {
    assert!(report.passed(), "{}", report.explain());
}

#[test]
fn every_seed_keeps_every_invariant() {
    let from = env("KMIRROR_SIM_FROM", 1);
    let count = env("KMIRROR_SIM_SEEDS", 300);
    let started = std::time::Instant::now();
    let options = SimOptions::default();
    let mut failed = Vec::new();
    let mut records = 0;
    let mut faults = 0;
    for seed in from..from + count {
        let report = simulate(seed, &options);
        records += report.records;
        faults += report.faults.len();
        if !report.passed() {
            failed.push(report);
        }
    }
    eprintln!(
        "{count} seeds from {from}: {} failed, {records} records, {faults} faults, {:?}",
        failed.len(),
        started.elapsed()
    );
    if let Some(first) = failed.first() {
        let seeds: Vec<u64> = failed.iter().map(|r| r.seed).collect();
        panic!(
            "{} of {count} seeds failed: {seeds:?}\n\n{}",
            failed.len(),
            first.explain()
        );
    }
}

#[test]
fn a_seed_replays_exactly() {
    let options = SimOptions::default();
    let seed = (1..200)
        .find(|s| simulate(*s, &options).faults.len() >= 3)
        .expect("a seed with faults");
    // Several processes in one group, held JoinGroups and SyncGroups.
    let group = (1..200)
        .find(|s| {
            let r = simulate(*s, &options);
            r.processes >= 2 && r.faults.len() >= 3
        })
        .expect("a seed with several processes and faults");
    let (a, b) = (simulate(group, &options), simulate(group, &options));
    assert_eq!(
        (a.digest, &a.events),
        (b.digest, &b.events),
        "seed {group} did not replay"
    );
    let a = simulate(seed, &options);
    let b = simulate(seed, &options);
    assert_eq!(
        a.digest, b.digest,
        "seed {seed} did not replay: the runs diverged"
    );
    assert_eq!(
        (a.records, a.requests, a.simulated),
        (b.records, b.requests, b.simulated)
    );
    assert_eq!(a.events, b.events);
    let other = simulate(seed + 1, &options);
    assert_ne!(
        a.digest, other.digest,
        "the digest does not depend on what happened"
    );
}

fn at(ms: u64, fault: Fault) -> Scheduled {
    Scheduled {
        at: Duration::from_millis(ms),
        fault,
    }
}

fn scenario(seeds: std::ops::Range<u64>, faults: Vec<Scheduled>) {
    for seed in seeds {
        let report = simulate(seed, &SimOptions::scripted(faults.clone()));
        assert_passed(&report);
        assert_eq!(report.faults.len(), faults.len());
    }
}

/// Item 1: an election leaves the new leader's high-water mark below its
/// log end for a while; a caught-up mirror must not read that as out of
/// range (a reset to earliest would copy everything again: duplicates).
#[test]
fn source_elections_neither_reset_nor_copy_again() {
    let faults = (0..6)
        .map(|i| {
            at(
                2_000 + i * 2_500,
                Fault::Election {
                    side: Side::Source,
                    topic: "topic-0".into(),
                    partition: 0,
                },
            )
        })
        .chain([at(17_000, Fault::PreferredElection { side: Side::Source })])
        .collect();
    scenario(1..9, faults);
}

/// Item 3: partitions added to a source topic are created on the
/// destination and mirrored.
#[test]
fn partitions_added_to_the_source_are_mirrored() {
    scenario(
        1..9,
        vec![
            at(
                5_000,
                Fault::AddPartitions {
                    topic: "topic-0".into(),
                    to: 5,
                },
            ),
            at(
                12_000,
                Fault::AddPartitions {
                    topic: "topic-0".into(),
                    to: 7,
                },
            ),
        ],
    );
}

/// Items 4 and 12: destination brokers lost (kill -9 and graceful), one
/// hung: the leaders are resolved again and nothing stalls.
#[test]
fn destination_brokers_lost_and_hung() {
    scenario(
        1..9,
        vec![
            at(
                3_000,
                Fault::BrokerRestart {
                    side: Side::Destination,
                    broker: 1,
                    down_for: Duration::from_secs(6),
                    graceful: false,
                    failover_after: Duration::from_secs(2),
                },
            ),
            at(
                10_000,
                Fault::BrokerStall {
                    side: Side::Destination,
                    broker: 2,
                    stall_for: Duration::from_secs(8),
                },
            ),
            at(
                15_000,
                Fault::BrokerRestart {
                    side: Side::Destination,
                    broker: 3,
                    down_for: Duration::from_secs(1),
                    graceful: true,
                    failover_after: Duration::ZERO,
                },
            ),
        ],
    );
}

/// Items 11 and 12: a rolling restart of the source with the group
/// coordinator moving: membership errors are retried.
#[test]
fn a_source_rolling_restart_with_the_coordinator_moving() {
    let mut faults: Vec<Scheduled> = (1..=3)
        .map(|broker| {
            at(
                u64::try_from(broker).unwrap_or(1) * 5_000,
                Fault::BrokerRestart {
                    side: Side::Source,
                    broker,
                    down_for: Duration::from_secs(3),
                    graceful: true,
                    failover_after: Duration::ZERO,
                },
            )
        })
        .collect();
    faults.push(at(4_000, Fault::CoordinatorMove));
    faults.sort_by_key(|s| s.at);
    scenario(1..9, faults);
}

/// kill -9 of kmirror: after the restart nothing is lost and the records
/// copied again are only those above the last commit.
#[test]
fn kmirror_killed_and_restarted() {
    scenario(
        1..9,
        vec![
            at(
                6_000,
                Fault::MirrorCrash {
                    process: 0,
                    down_for: Duration::from_secs(2),
                },
            ),
            at(
                14_000,
                Fault::MirrorCrash {
                    process: 0,
                    down_for: Duration::ZERO,
                },
            ),
        ],
    );
}

/// Item 2: unclean elections truncate the source below kmirror's position
/// (and below its committed offset, with kmirror killed in between): the
/// diverging epoch (KIP-320) sends it back to the truncation point, so the
/// records now at those offsets are mirrored too, none skipped.
#[test]
fn unclean_elections_on_the_source_are_followed() {
    let unclean = |ms, partition| {
        at(
            ms,
            Fault::UncleanElection {
                topic: "topic-0".into(),
                partition,
            },
        )
    };
    scenario(
        1..13,
        vec![
            unclean(4_000, 0),
            unclean(8_000, 0),
            at(
                9_000,
                Fault::MirrorCrash {
                    process: 0,
                    down_for: Duration::from_secs(1),
                },
            ),
            unclean(10_500, 0),
            unclean(15_000, 0),
        ],
    );
}

/// The default run with `faults`, these processes (when each starts) and,
/// if given, this assignor; no connection-level faults when `clean`.
fn group_options(
    faults: Vec<Scheduled>,
    processes: &[u64],
    assignor: Option<Assignor>,
    clean: bool,
) -> SimOptions {
    let mut options = SimOptions::scripted(faults);
    options.processes = Some(
        processes
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect(),
    );
    options.assignor = assignor;
    if clean {
        options.rates = FaultRates::default();
    }
    options
}

/// Two processes share the group; each in turn stops gracefully and
/// starts again: its partitions are handed over with a commit, so no
/// record is written twice, whatever the assignor.
#[test]
fn two_processes_hand_partitions_over_gracefully() {
    let faults = vec![
        at(
            7_000,
            Fault::MirrorRestart {
                process: 1,
                down_for: Duration::from_secs(2),
            },
        ),
        at(
            14_000,
            Fault::MirrorRestart {
                process: 0,
                down_for: Duration::from_secs(1),
            },
        ),
    ];
    for (seed, assignor) in (1..10).zip(
        [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ]
        .into_iter()
        .cycle(),
    ) {
        let report = simulate(
            seed,
            &group_options(faults.clone(), &[0, 0], Some(assignor), true),
        );
        assert_passed(&report);
        assert_eq!(report.processes, 2);
        assert_eq!(report.process_starts, 4, "{}", report.explain());
        assert_eq!(report.members_lost, 0, "{}", report.explain());
        assert_eq!(
            report.duplicates,
            0,
            "a graceful handover wrote records twice\n{}",
            report.explain()
        );
    }
}

/// Three processes; one is killed (kill -9) and comes back later, another
/// is killed and stays down past its session timeout before it returns:
/// the coordinator drops it, its partitions move, nothing is lost.
#[test]
fn three_processes_one_crashed_lose_nothing() {
    let faults = vec![
        at(
            6_000,
            Fault::MirrorCrash {
                process: 1,
                down_for: Duration::from_secs(2),
            },
        ),
        at(
            11_000,
            Fault::MirrorCrash {
                process: 2,
                down_for: Duration::from_secs(15),
            },
        ),
    ];
    for seed in 1..9 {
        let report = simulate(
            seed,
            &group_options(faults.clone(), &[0, 0, 0], None, false),
        );
        assert_passed(&report);
        assert_eq!(report.processes, 3);
        assert_eq!(report.process_starts, 5, "{}", report.explain());
        assert!(
            report.members_lost >= 1,
            "the coordinator never dropped the crashed member\n{}",
            report.explain()
        );
    }
}

/// Cooperative-sticky: a second process joins mid-run; the first gives
/// up only what moves (committed), then the group rebalances again to
/// hand it over: no record written twice.
#[test]
fn a_process_joins_a_cooperative_group() {
    for seed in 1..9 {
        let report = simulate(
            seed,
            &group_options(
                Vec::new(),
                &[0, 8_000],
                Some(Assignor::CooperativeSticky),
                true,
            ),
        );
        assert_passed(&report);
        assert!(
            report.rebalances >= 2,
            "the join did not rebalance the group\n{}",
            report.explain()
        );
        assert_eq!(report.members_lost, 0, "{}", report.explain());
        assert_eq!(report.duplicates, 0, "{}", report.explain());
    }
}

/// The offset map: an unclean election at the very end of the workload
/// cuts the source below what kmirror copied and mapped, and nothing is
/// written there since. kmirror commits the cut; the map must say that
/// the copies past it no longer count (a session starting at the cut),
/// so that every position translates to where a consumer reads each
/// current record once (the end checks of `kmirror_sim::offset_map`).
#[test]
fn the_offset_map_drops_copies_an_unclean_election_cut_away() {
    let faults: Vec<Scheduled> = (0..4)
        .map(|partition| {
            at(
                19_990,
                Fault::UncleanElection {
                    topic: "topic-0".into(),
                    partition,
                },
            )
        })
        .collect();
    let mut translated = 0;
    for seed in 1..13 {
        let options = SimOptions {
            offset_map: Some(true),
            ..SimOptions::scripted(faults.clone())
        };
        let report = simulate(seed, &options);
        assert_passed(&report);
        assert!(
            report.offset_map.commits_checked > 0,
            "seed {seed}: no commit was checked against the map"
        );
        translated += report.offset_map.translations;
    }
    assert!(translated > 0, "no position was translated");
}
