//! A stream against scripted brokers (`engine::scripted`), on tokio's
//! paused clock: one source partition `t-0` led by broker 1 of the source,
//! mirrored to `t-0` on broker 1 of the destination.

use std::sync::atomic::{AtomicUsize, Ordering};

use kmirror_protocol::Compression;

use super::*;
use crate::engine::scripted::{self, Brokers, Fetched, Reply, Request};
use crate::selection::TopicSelector;

const SRC: &str = "src:9092";
const DST: &str = "dst:9092";

/// A running stream and the handles a test drives it with.
struct Rig {
    ctx: Arc<StreamContext>,
    stop: watch::Sender<bool>,
    membership: watch::Sender<Option<Membership>>,
    task: tokio::task::JoinHandle<Result<(), MirrorError>>,
    _commands: mpsc::UnboundedSender<Command>,
}

impl Rig {
    /// Stops the stream and waits for it (at most a minute of the paused
    /// clock).
    async fn stop(self) -> Result<(), MirrorError> {
        self.stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the stream stops")
            .expect("the stream task does not panic")
    }
}

fn member() -> Option<Membership> {
    Some(Membership {
        generation: 1,
        member_id: "kmirror-1".into(),
        group_instance_id: None,
    })
}

/// Starts a stream over `source` and `destination` with `t-0` assigned
/// from offset 0, a budget of `budget` bytes, and `configure` applied to
/// the defaults (no slow-path workers, commits once an hour).
async fn start(
    source: &Arc<Brokers>,
    destination: &Arc<Brokers>,
    budget: usize,
    configure: impl FnOnce(&mut MirrorConfig),
) -> Rig {
    start_with(source, destination, &[0], None, budget, configure).await
}

/// [`start`] with `partitions` of `t` assigned, each up to `target` if
/// given (`--once`).
async fn start_with(
    source: &Arc<Brokers>,
    destination: &Arc<Brokers>,
    partitions: &[i32],
    target: Option<i64>,
    budget: usize,
    configure: impl FnOnce(&mut MirrorConfig),
) -> Rig {
    let mut config = MirrorConfig::new(
        source.config(SRC),
        destination.config(DST),
        TopicSelector::new("t", None).expect("a pattern"),
        "g",
    );
    config.slow_path_workers = 0;
    config.commit_interval = Duration::from_secs(3600);
    configure(&mut config);
    let (membership, membership_rx) = watch::channel(member());
    let ctx = Arc::new(StreamContext {
        source: Cluster::connect(config.source.clone())
            .await
            .expect("the scripted source answers"),
        destination: Cluster::connect(config.destination.clone())
            .await
            .expect("the scripted destination answers"),
        config: Arc::new(config),
        metrics: Arc::new(Metrics::default()),
        budget: MemoryBudget::new(budget),
        membership: membership_rx,
    });
    let (commands, rx) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    for partition in partitions {
        commands
            .send(Command::Assign(Assignment {
                topic: Arc::from("t"),
                partition: *partition,
                topic_id: [7; 16],
                start: 0,
                committed: None,
                committed_epoch: -1,
                target,
                route: Route::SamePartition,
                max_batch_bytes: None,
            }))
            .expect("the stream takes commands");
    }
    let task = tokio::spawn(Stream::new(0, ctx.clone()).run(rx, stop_rx));
    Rig {
        ctx,
        stop,
        membership,
        task,
        _commands: commands,
    }
}

/// The source's answers to everything but Fetch (and OffsetCommit, which
/// `commit` answers).
fn source_answers(
    request: &Request,
    fetch: impl Fn(&Request) -> Reply,
    commit: impl Fn(&Request) -> Reply,
) -> Reply {
    match request.api {
        ApiKey::Metadata => {
            scripted::metadata(request.version, &[(1, SRC)], &[("t", &[(0, 1), (1, 1)])])
        }
        ApiKey::Fetch => fetch(request),
        ApiKey::FindCoordinator => scripted::find_coordinator(request, 1, SRC),
        ApiKey::OffsetCommit => commit(request),
        ApiKey::ListOffsets => scripted::list_offsets(request, 0),
        other => panic!("the source got an unexpected {other:?}"),
    }
}

/// The destination's answers, Produce by `produce`.
fn destination_answers(request: &Request, produce: impl Fn(&Request) -> Reply) -> Reply {
    match request.api {
        ApiKey::Metadata => {
            scripted::metadata(request.version, &[(1, DST)], &[("t", &[(0, 1), (1, 1)])])
        }
        ApiKey::InitProducerId => scripted::init_producer_id(request),
        ApiKey::Produce => produce(request),
        other => panic!("the destination got an unexpected {other:?}"),
    }
}

/// A source that has one record at every offset below `end` (one batch of
/// one record per fetch) and long-polls for half a second at the end.
fn records_up_to(end: i64) -> impl Fn(&Request) -> Reply {
    move |request: &Request| {
        let at_end = request
            .decode::<kp::FetchRequest>()
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .all(|p| p.fetch_offset >= end);
        let body = scripted::fetch(request, 0, |_, _, offset| {
            if offset < end {
                Fetched::records(scripted::batch(offset, 1, Compression::None, 10), end)
            } else {
                Fetched::nothing(end)
            }
        });
        if at_end {
            Reply::After(Duration::from_millis(500), body)
        } else {
            Reply::Now(body)
        }
    }
}

fn acknowledge(request: &Request) -> Reply {
    Reply::Now(scripted::produce_ok(request, 0))
}

fn commit_ok(request: &Request) -> Reply {
    scripted::offset_commit(request, 0)
}

/// The fetch offsets of the Fetch requests received, with their arrival.
fn fetches(source: &Brokers) -> Vec<(i64, Instant)> {
    source
        .requests(ApiKey::Fetch)
        .iter()
        .map(|r| {
            let offset = r
                .decode::<kp::FetchRequest>()
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| p.fetch_offset)
                .next()
                .unwrap_or(-1);
            (offset, r.at)
        })
        .collect()
}

/// A source broker that throttles kmirror (KIP-219) answers at once with
/// the throttle time and expects no further request before it has
/// passed: the next fetch waits (it went out at once before), the time is
/// counted (issue 13, item 13).
#[tokio::test(start_paused = true)]
async fn a_throttled_fetch_waits_out_the_throttle_time() {
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = answered.clone();
    let source = Brokers::new(move |r| {
        source_answers(
            r,
            |r| {
                let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
                if first {
                    // Nothing to return, and a quota exceeded.
                    Reply::Now(scripted::fetch(r, 1_000, |_, _, _| Fetched::nothing(0)))
                } else {
                    Reply::After(
                        Duration::from_millis(500),
                        scripted::fetch(r, 0, |_, _, _| Fetched::nothing(0)),
                    )
                }
            },
            commit_ok,
        )
    });
    let destination = Brokers::new(|r| destination_answers(r, acknowledge));
    let rig = start(&source, &destination, 64 << 20, |_| {}).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = rig.ctx.metrics.clone();
    rig.stop().await.expect("a clean stop");
    assert!(
        source
            .requests(ApiKey::Fetch)
            .iter()
            .all(|r| r.broker == SRC)
    );
    let fetches = fetches(&source);
    assert!(fetches.len() >= 2, "{fetches:?}");
    let gap = fetches[1].1.duration_since(fetches[0].1);
    assert!(
        gap >= Duration::from_millis(1_000),
        "the second fetch went out {gap:?} after the throttled answer"
    );
    assert_eq!(
        metrics.snapshot().fetch_throttled,
        Duration::from_millis(1_000)
    );
}

/// The same on the destination: a throttled Produce answer holds the next
/// Produce request to that broker for the throttle time.
#[tokio::test(start_paused = true)]
async fn a_throttled_produce_waits_out_the_throttle_time() {
    let source = Brokers::new(|r| source_answers(r, records_up_to(3), commit_ok));
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = produced.clone();
    let destination = Brokers::new(move |r| {
        destination_answers(r, |r| {
            let throttle = if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                700
            } else {
                0
            };
            Reply::Now(scripted::produce_ok(r, throttle))
        })
    });
    let rig = start(&source, &destination, 64 << 20, |_| {}).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = rig.ctx.metrics.clone();
    rig.stop().await.expect("a clean stop");
    let produces = destination.requests(ApiKey::Produce);
    assert!(produces.len() >= 2, "{} Produce requests", produces.len());
    let gap = produces[1].at.duration_since(produces[0].at);
    assert!(
        gap >= Duration::from_millis(700),
        "the second Produce went out {gap:?} after the throttled answer"
    );
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.produce_throttled, Duration::from_millis(700));
    assert_eq!(snapshot.records, 3);
}

/// An out-of-range fetch position is reset per auto.offset.reset, and
/// the reset is counted for the run's summary (it was only logged).
#[tokio::test(start_paused = true)]
async fn an_out_of_range_reset_is_counted() {
    let source = Brokers::new(|r| match r.api {
        ApiKey::ListOffsets => scripted::list_offsets(r, 5),
        _ => source_answers(
            r,
            |r| {
                let body = scripted::fetch(r, 0, |_, _, offset| {
                    if offset < 5 {
                        Fetched::error(ResponseError::OffsetOutOfRange.code())
                    } else {
                        Fetched::nothing(5)
                    }
                });
                Reply::After(Duration::from_millis(100), body)
            },
            commit_ok,
        ),
    });
    let destination = Brokers::new(|r| destination_answers(r, acknowledge));
    let rig = start(&source, &destination, 64 << 20, |_| {}).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = rig.ctx.metrics.clone();
    rig.stop().await.expect("a clean stop");
    let offsets: Vec<i64> = fetches(&source).iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets.first(), Some(&0));
    assert!(offsets.contains(&5), "{offsets:?}");
    assert_eq!(metrics.snapshot().offset_resets, 1);
}

/// The generations of the OffsetCommit requests received, with the offset
/// of `t-0` in each.
fn commits(source: &Brokers) -> Vec<(i32, i64)> {
    source
        .requests(ApiKey::OffsetCommit)
        .iter()
        .map(|r| {
            let commit: kp::OffsetCommitRequest = r.decode();
            let offset = commit
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| p.committed_offset)
                .next()
                .unwrap_or(-1);
            (commit.generation_id_or_member_epoch, offset)
        })
        .collect()
}

/// The stop comes while kmirror's membership is missing (the group task
/// rejoins after a coordinator move) and comes back 3 s later: the final
/// commit is retried until it can go, as the member (it was given up
/// after five loop turns, about 2.5 s, without a word).
#[tokio::test(start_paused = true)]
async fn the_final_commit_waits_for_the_membership_to_come_back() {
    let source = Brokers::new(|r| {
        source_answers(r, records_up_to(3), |r| {
            let commit: kp::OffsetCommitRequest = r.decode();
            // A group with a member refuses standalone commits.
            let error = if commit.generation_id_or_member_epoch < 0 {
                ResponseError::UnknownMemberId.code()
            } else {
                0
            };
            scripted::offset_commit(r, error)
        })
    });
    let destination = Brokers::new(|r| destination_answers(r, acknowledge));
    let rig = start(&source, &destination, 64 << 20, |_| {}).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.ctx.metrics.snapshot().records, 3);
    rig.membership.send_replace(None);
    let membership = rig.membership.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        membership.send_replace(Some(Membership {
            generation: 2,
            member_id: "kmirror-2".into(),
            group_instance_id: None,
        }));
    });
    rig.stop().await.expect("a clean stop");
    let commits = commits(&source);
    assert_eq!(commits.last(), Some(&(2, 3)), "{commits:?}");
}

/// The membership is gone for good at stop but the group is empty (the
/// coordinator dropped kmirror): a standalone commit (generation -1) is
/// what the coordinator takes.
#[tokio::test(start_paused = true)]
async fn the_final_commit_goes_standalone_without_a_membership() {
    let source = Brokers::new(|r| source_answers(r, records_up_to(3), commit_ok));
    let destination = Brokers::new(|r| destination_answers(r, acknowledge));
    let rig = start(&source, &destination, 64 << 20, |_| {}).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.membership.send_replace(None);
    rig.stop().await.expect("a clean stop");
    assert_eq!(commits(&source), vec![(-1, 3)]);
}

/// The partitions (with their fetch offsets) and `max_bytes` of each Fetch
/// request received.
fn fetched_partitions(source: &Brokers) -> Vec<(Vec<(i32, i64)>, i32)> {
    source
        .requests(ApiKey::Fetch)
        .iter()
        .map(|r| {
            let fetch: kp::FetchRequest = r.decode();
            let partitions = fetch
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| (p.partition, p.fetch_offset))
                .collect();
            (partitions, fetch.max_bytes)
        })
        .collect()
}

/// A response frame above the limit breaks the connection; the same
/// Fetch was sent again and again for ever. Now the fetch asks for at
/// most half the limit, and when even that brings a frame too large for
/// one partition alone, the stream stops with an error naming the
/// partition, the offset, the sizes and the setting to change.
#[tokio::test(start_paused = true)]
async fn a_batch_larger_than_any_response_stops_with_the_fix() {
    let source = Brokers::new(|r| source_answers(r, |_| Reply::Oversized(3 << 20), commit_ok));
    let destination = Brokers::new(|r| destination_answers(r, acknowledge));
    let rig = start(&source, &destination, 64 << 20, |config| {
        config.source.max_response_size = 2 << 20;
    })
    .await;
    let result = tokio::time::timeout(Duration::from_secs(30), rig.task)
        .await
        .expect("the stream stops by itself")
        .expect("no panic");
    let fetches = fetched_partitions(&source);
    assert_eq!(fetches.len(), 2, "{fetches:?}");
    assert!(fetches[0].1 > 1 << 20, "{fetches:?}");
    assert_eq!(fetches[1].1, 1 << 20);
    let error = result.expect_err("an error");
    assert!(
        matches!(
            &error,
            MirrorError::BatchTooLarge { topic, partition: 0, offset: 0, size, max, .. }
                if topic == "t" && *size == 3 << 20 && *max == 2 << 20
        ),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("receive.message.max.bytes"), "{text}");
}

/// With several partitions in the fetch, the one whose batch is too
/// large is found by fetching them one at a time: the others go on being
/// mirrored, and the error names the right one.
#[tokio::test(start_paused = true)]
async fn the_partition_with_the_oversized_batch_is_found() {
    let source = Brokers::new(|r| {
        source_answers(
            r,
            |r| {
                let fetch: kp::FetchRequest = r.decode();
                let has_big = fetch
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .any(|p| p.partition == 1);
                if has_big {
                    return Reply::Oversized(3 << 20);
                }
                Reply::Now(scripted::fetch(r, 0, |_, _, offset| {
                    if offset < 3 {
                        Fetched::records(scripted::batch(offset, 1, Compression::None, 10), 3)
                    } else {
                        Fetched::nothing(3)
                    }
                }))
            },
            commit_ok,
        )
    });
    let destination = Brokers::new(|r| destination_answers(r, acknowledge));
    let rig = start_with(&source, &destination, &[0, 1], None, 64 << 20, |config| {
        config.source.max_response_size = 2 << 20;
    })
    .await;
    let metrics = rig.ctx.metrics.clone();
    let result = tokio::time::timeout(Duration::from_secs(30), rig.task)
        .await
        .expect("the stream stops by itself")
        .expect("no panic");
    let error = result.expect_err("an error");
    assert!(
        matches!(
            &error,
            MirrorError::BatchTooLarge {
                partition: 1,
                offset: 0,
                ..
            }
        ),
        "{error:?}"
    );
    let fetches = fetched_partitions(&source);
    assert_eq!(fetches[0].0.len(), 2, "{fetches:?}");
    assert!(
        fetches[1..]
            .iter()
            .all(|(partitions, _)| partitions.len() == 1),
        "{fetches:?}"
    );
    assert_eq!(fetches.last().map(|f| f.0.clone()), Some(vec![(1, 0)]));
    assert!(metrics.snapshot().records >= 1);
}

/// A source whose `t-0` holds one gzip batch of 1000 records of 1000
/// bytes each at offset 0 (a few KiB compressed, about 1 MB decoded).
fn one_compressed_batch() -> Arc<Brokers> {
    Brokers::new(|r| {
        source_answers(
            r,
            |r| {
                Reply::Now(scripted::fetch(r, 0, |_, _, offset| {
                    if offset == 0 {
                        Fetched::records(scripted::batch(0, 1000, Compression::Gzip, 1000), 1000)
                    } else {
                        Fetched::nothing(1000)
                    }
                }))
            },
            commit_ok,
        )
    })
}

/// Rebuilds `one_compressed_batch` without compression (the slow path),
/// with `workers` slow-path workers and a budget of `budget` bytes, the
/// destination acknowledging after 2 s; returns the budget in use at 1 s
/// (the rebuilt batch awaiting its acknowledgement, nothing fetched) and
/// at the end, and the records mirrored.
async fn rebuild_under_budget(workers: usize, budget: usize) -> (usize, usize, u64) {
    let source = one_compressed_batch();
    let destination = Brokers::new(|r| {
        destination_answers(r, |r| {
            Reply::After(Duration::from_secs(2), scripted::produce_ok(r, 0))
        })
    });
    let rig = start_with(&source, &destination, &[0], Some(1000), budget, |config| {
        config.slow_path_workers = workers;
        config.produce.compression = Some(Compression::None);
        config.produce.batch_size = 8 << 20;
        config.produce.max_request_size = 8 << 20;
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = rig.ctx.budget.used();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = rig.ctx.budget.used();
    let metrics = rig.ctx.metrics.clone();
    rig.stop().await.expect("a clean stop");
    (during, after, metrics.snapshot().records)
}

/// The batches the slow path builds (here about 1 MB decoded from a few
/// KiB of gzip) are charged to buffer.memory until acknowledged; only the
/// fetched response was (issue 13, item 13). On a worker and inline.
#[tokio::test(start_paused = true)]
async fn rebuilt_batches_are_charged_to_the_budget() {
    for workers in [1, 0] {
        let (during, after, records) = rebuild_under_budget(workers, 64 << 20).await;
        assert!(
            during >= 1_000_000,
            "{workers} workers: {during} bytes charged while the rebuilt batch waits"
        );
        assert_eq!(after, 0, "{workers} workers: everything given back");
        assert_eq!(records, 1000);
    }
}

/// A rebuild larger than the whole budget still runs (alone), so the
/// partition is mirrored rather than stuck.
#[tokio::test(start_paused = true)]
async fn a_rebuild_larger_than_the_budget_still_goes() {
    for workers in [1, 0] {
        let (during, after, records) = rebuild_under_budget(workers, 64 << 10).await;
        assert!(during >= 1_000_000, "{workers} workers: {during}");
        assert_eq!(after, 0);
        assert_eq!(records, 1000, "{workers} workers");
    }
}

/// A final commit refused for good (not authorized) is not asked again
/// for the whole retry time: the stream stops with the refusal.
#[tokio::test(start_paused = true)]
async fn a_final_commit_refused_for_good_is_not_retried() {
    let source = Brokers::new(|r| {
        source_answers(r, records_up_to(3), |r| {
            scripted::offset_commit(r, ResponseError::GroupAuthorizationFailed.code())
        })
    });
    let destination = Brokers::new(|r| destination_answers(r, acknowledge));
    let rig = start(&source, &destination, 64 << 20, |_| {}).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped_at = Instant::now();
    let error = rig.stop().await.expect_err("the refusal");
    assert!(
        matches!(
            error,
            MirrorError::Refused {
                error: ResponseError::GroupAuthorizationFailed,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(commits(&source), vec![(1, 3)]);
    assert!(stopped_at.elapsed() < Duration::from_secs(1));
}

/// A commit the coordinator refuses (it moved: NOT_COORDINATOR) is tried
/// again after `retry.backoff.ms`, growing, not at the next 60 s interval:
/// a few failures in a row left minutes uncommitted, all copied again when
/// kmirror was then killed (seen in the chaos campaign).
#[tokio::test(start_paused = true)]
async fn a_refused_commit_is_retried_soon_not_at_the_next_interval() {
    commit_refused_twice_then_taken(ResponseError::NotCoordinator).await;
}

/// KIP-848: a commit whose member epoch a heartbeat replaced meanwhile is
/// answered STALE_MEMBER_EPOCH: tried again (with the epoch then current),
/// not a reason to stop (kafka-protocol calls it not retriable).
#[tokio::test(start_paused = true)]
async fn a_commit_with_a_stale_member_epoch_is_tried_again() {
    commit_refused_twice_then_taken(ResponseError::StaleMemberEpoch).await;
}

/// The first two commits are refused with `error`, then they go: the
/// third lands well before the second 60 s interval.
async fn commit_refused_twice_then_taken(error: ResponseError) {
    let refusals = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = refusals.clone();
    let source = Brokers::new(move |r| {
        source_answers(r, records_up_to(3), |r| {
            let code = if counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                error.code()
            } else {
                0
            };
            scripted::offset_commit(r, code)
        })
    });
    let destination = Brokers::new(|r| destination_answers(r, acknowledge));
    let rig = start(&source, &destination, 64 << 20, |c| {
        c.commit_interval = Duration::from_secs(60);
    })
    .await;
    // The first interval's commit is refused twice, then goes: well
    // before the second interval.
    tokio::time::sleep(Duration::from_secs(65)).await;
    let commits = commits(&source);
    assert_eq!(commits.len(), 3, "{commits:?}");
    assert_eq!(commits.last(), Some(&(1, 3)));
    rig.stop().await.expect("a clean stop");
}
