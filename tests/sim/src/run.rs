//! One simulated run: a seed decides the clusters, the topics, kmirror's
//! settings, the workload and the faults; the real engine runs against
//! simulated brokers on a current-thread runtime whose clock only moves
//! when every task waits, so a seed replays exactly.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kmirror::translation::offset_map_topic;
use kmirror::{Assignor, Mirror, MirrorConfig, TopicSelector};
use kmirror_pool::{ClientConfig, Dialer};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::faults::{Fault, Scheduled, schedule};
use crate::network::{Shared, SimNetwork, lock};
use crate::offset_map::{MapCounts, MapState};
use crate::rng::SimRng;
use crate::workload;
use crate::world::{FaultRates, Side, World};

/// What a run may do.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// How long the source producer writes (and faults strike), simulated.
    pub workload: Duration,
    /// The most faults drawn for the window.
    pub max_faults: usize,
    /// Connection-level faults.
    pub rates: FaultRates,
    /// How long kmirror may take to catch up once the faults stop before
    /// the run counts as stalled, simulated.
    pub catch_up: Duration,
    /// These faults instead of the seed's (a scenario test).
    pub faults: Option<Vec<Scheduled>>,
    /// These kmirror processes instead of the seed's: when each starts
    /// (the first should start at zero).
    pub processes: Option<Vec<Duration>>,
    /// This assignor instead of the seed's.
    pub assignor: Option<Assignor>,
    /// Keep the offset map (`Some(true)`), or not, instead of the seed's
    /// choice (on in three seeds of four).
    pub offset_map: Option<bool>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            workload: Duration::from_secs(20),
            max_faults: 6,
            rates: FaultRates {
                cut_before: 2,
                cut_after: 3,
                delay: 3,
                duplicate: 1,
                throttle: 5,
            },
            catch_up: Duration::from_secs(180),
            faults: None,
            processes: None,
            assignor: None,
            offset_map: None,
        }
    }
}

impl SimOptions {
    /// The default run with exactly `faults`, in time order.
    pub fn scripted(faults: Vec<Scheduled>) -> Self {
        Self {
            faults: Some(faults),
            ..Self::default()
        }
    }

    /// Longer runs with more faults (`cargo xtask simulate --soak`).
    pub fn soak() -> Self {
        Self {
            workload: Duration::from_secs(120),
            max_faults: 30,
            ..Self::default()
        }
    }
}

/// What one run found.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// The scenario the seed chose (topics, settings).
    pub scenario: String,
    /// The faults, in order.
    pub faults: Vec<Scheduled>,
    /// What happened, in order.
    pub events: Vec<String>,
    /// Broken invariants (empty: the run passed).
    pub violations: Vec<String>,
    /// Records the source producer wrote.
    pub records: i64,
    /// Records written to the destination more than once.
    pub duplicates: u64,
    /// Produce requests applied whose answer was lost.
    pub unknown_outcomes: u64,
    /// Requests the simulated brokers served.
    pub requests: u64,
    /// Produce requests the destination refused for a hole in a sequence
    /// after a leader change.
    pub sequence_gaps: u64,
    /// ... with no leader change (see `World::sequence_gaps_same_leader`).
    pub sequence_gaps_same_leader: u64,
    /// kmirror processes in the group.
    pub processes: usize,
    /// Times a kmirror process started (first starts and restarts).
    pub process_starts: u64,
    /// Group members lost (expired, dropped for not rejoining, fenced).
    pub members_lost: u64,
    /// Rebalances the coordinator completed.
    pub rebalances: u64,
    /// JoinGroups and SyncGroups held past the client's request timeout.
    pub held_past_timeout: u64,
    /// Duplicates of a batch given up with an unknown outcome (written
    /// again by the partition's next producer).
    pub handed_over_unknown: u64,
    /// Simulated time the run took.
    pub simulated: Duration,
    /// A digest of every request in order: equal for two runs of a seed.
    pub digest: u64,
    /// What the offset map checks counted (zero when the map is off).
    pub offset_map: MapCounts,
}

impl SimReport {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The report of a failing seed: scenario, schedule, what happened,
    /// what broke, and how to replay it.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "seed {}: {}", self.seed, self.scenario);
        let _ = writeln!(out, "fault schedule:");
        for s in &self.faults {
            let _ = writeln!(out, "  at {:>6} ms  {}", s.at.as_millis(), s.fault);
        }
        let _ = writeln!(out, "events:");
        for e in &self.events {
            let _ = writeln!(out, "  {e}");
        }
        let _ = writeln!(
            out,
            "processes {} ({} starts), members lost {}, rebalances {}, group requests held past request.timeout.ms {}, records {}, duplicates {} ({} of batches given up with an unknown outcome), unknown outcomes {}, sequence holes refused {} (with no leader change {}), requests {}, simulated {:?}",
            self.processes,
            self.process_starts,
            self.members_lost,
            self.rebalances,
            self.held_past_timeout,
            self.records,
            self.duplicates,
            self.handed_over_unknown,
            self.unknown_outcomes,
            self.sequence_gaps,
            self.sequence_gaps_same_leader,
            self.requests,
            self.simulated
        );
        if self.offset_map.runs > 0 {
            let _ = writeln!(out, "{}", self.offset_map);
        }
        for v in &self.violations {
            let _ = writeln!(out, "VIOLATION: {v}");
        }
        let _ = writeln!(
            out,
            "replay: cargo xtask simulate --seed {} --log debug",
            self.seed
        );
        out
    }
}

/// Runs seed `seed` (see the module documentation).
pub fn simulate(seed: u64, options: &SimOptions) -> SimReport {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            return SimReport {
                seed,
                scenario: String::new(),
                faults: Vec::new(),
                events: Vec::new(),
                violations: vec![format!("cannot build a runtime: {e}")],
                records: 0,
                duplicates: 0,
                unknown_outcomes: 0,
                requests: 0,
                sequence_gaps: 0,
                sequence_gaps_same_leader: 0,
                processes: 0,
                process_starts: 0,
                members_lost: 0,
                rebalances: 0,
                handed_over_unknown: 0,
                held_past_timeout: 0,
                simulated: Duration::ZERO,
                digest: 0,
                offset_map: MapCounts::default(),
            };
        }
    };
    runtime.block_on(run(seed, options))
}

/// The seed's choices.
struct Scenario {
    topics: Vec<(String, i32)>,
    precreate: bool,
    streams: usize,
    commit_interval: Duration,
    request_timeout: Duration,
    produce_every: (u64, u64),
    /// When each kmirror process of the group starts.
    processes: Vec<Duration>,
    assignor: Assignor,
    /// The offset map topic kmirror keeps, if it keeps one.
    offset_map: Option<String>,
}

/// Mixed into the seed for the offset map choice, drawn apart so that
/// every other draw of a seed is what it was before the map existed.
const MAP_SALT: u64 = 0x6f66_6673_6574_6d61;

/// Mixed into the seed for the positions the end check translates.
const POSITIONS_SALT: u64 = 0x706f_7369_7469_6f6e;

impl Scenario {
    fn draw(rng: &mut SimRng, options: &SimOptions) -> Self {
        let topics = (0..rng.between(1, 2))
            .map(|i| {
                (
                    format!("topic-{i}"),
                    i32::try_from(rng.between(1, 4)).unwrap_or(1),
                )
            })
            .collect();
        let precreate = rng.chance(300);
        let streams = usize::try_from(rng.between(1, 2)).unwrap_or(1);
        let commit_interval = Duration::from_millis(rng.between(300, 3_000));
        let request_timeout = Duration::from_millis(rng.between(2_000, 10_000));
        let produce_every = (rng.between(2, 10), rng.between(20, 60));
        // Half the seeds run one process; the others two or three, the
        // later ones starting within the workload (a process joining).
        let count = match rng.below(4) {
            0 | 1 => 1,
            2 => 2,
            _ => 3,
        };
        let window = u64::try_from(options.workload.as_millis()).unwrap_or(20_000);
        let drawn: Vec<Duration> = (0..count)
            .map(|i| {
                if i == 0 || rng.chance(300) {
                    Duration::ZERO
                } else {
                    Duration::from_millis(rng.below(window))
                }
            })
            .collect();
        let assignor = match rng.below(3) {
            0 => Assignor::Range,
            1 => Assignor::RoundRobin,
            _ => Assignor::CooperativeSticky,
        };
        Self {
            topics,
            precreate,
            streams,
            commit_interval,
            request_timeout,
            produce_every,
            processes: options.processes.clone().unwrap_or(drawn),
            assignor: options.assignor.unwrap_or(assignor),
            offset_map: None,
        }
    }

    fn describe(&self) -> String {
        format!(
            "topics {:?}, destination topics {}, {} stream(s), commit every {:?}, request.timeout.ms {:?}, {} process(es) starting at {:?}, assignor {}, offset map {}",
            self.topics,
            if self.precreate {
                "created beforehand"
            } else {
                "created by kmirror"
            },
            self.streams,
            self.commit_interval,
            self.request_timeout,
            self.processes.len(),
            self.processes,
            self.assignor.name(),
            self.offset_map.as_deref().unwrap_or("off")
        )
    }
}

fn client(world: &Shared, side: Side, instance: u64, timeout: Duration) -> ClientConfig {
    let bootstrap = lock(world).cluster(side).bootstrap();
    ClientConfig {
        bootstrap_servers: bootstrap,
        request_timeout: timeout,
        metadata_max_age: Duration::from_secs(5),
        dialer: Dialer::custom(Arc::new(SimNetwork::new(world.clone(), instance, timeout))),
        ..ClientConfig::default()
    }
}

fn mirror_config(
    world: &Shared,
    scenario: &Scenario,
    instance: u64,
) -> Result<MirrorConfig, String> {
    let selector = TopicSelector::new(".*", None).map_err(|e| e.to_string())?;
    let mut config = MirrorConfig::new(
        client(world, Side::Source, instance, scenario.request_timeout),
        client(world, Side::Destination, instance, scenario.request_timeout),
        selector,
        GROUP,
    );
    config.streams = scenario.streams;
    config.commit_interval = scenario.commit_interval;
    config.topic_refresh_interval = Duration::from_secs(2);
    config.drain_timeout = Duration::from_secs(15);
    config.slow_path_workers = 1;
    config.offset_map_topic = scenario.offset_map.clone();
    let membership = &mut config.fetch.membership;
    membership.assignors = vec![scenario.assignor];
    membership.session_timeout = Duration::from_secs(10);
    membership.heartbeat_interval = Duration::from_secs(1);
    membership.max_poll_interval = Duration::from_secs(60);
    Ok(config)
}

/// The group every kmirror process joins.
const GROUP: &str = "sim-mirror";

/// What the fault schedule or the run tells a kmirror process.
#[derive(Debug, Clone, Copy)]
enum Control {
    /// kill -9, started again after the delay.
    Crash(Duration),
    /// A graceful stop, started again after the delay.
    Restart(Duration),
    /// The final graceful stop.
    Stop,
}

async fn run(seed: u64, options: &SimOptions) -> SimReport {
    let started = Instant::now();
    let mut rng = SimRng::new(seed);
    let mut scenario = Scenario::draw(&mut rng, options);
    // The offset map is on by default (`--offset.map true`): three seeds
    // in four keep it; the others run as `--offset.map false` (or a
    // destination refusing to create the topic) does.
    let map_on = options
        .offset_map
        .unwrap_or_else(|| SimRng::new(seed ^ MAP_SALT).below(4) != 0);
    scenario.offset_map = map_on.then(|| offset_map_topic("source"));
    let scenario = Arc::new(scenario);
    let world: Shared = Arc::new(Mutex::new(World::new(3, options.rates, &mut rng)));
    lock(&world).map = scenario.offset_map.clone().map(MapState::new);
    let fault_count = usize::try_from(rng.below(options.max_faults as u64 + 1)).unwrap_or(0);
    let drawn = schedule(
        &mut rng,
        fault_count,
        options.workload,
        3,
        &scenario.topics,
        scenario.processes.len(),
    );
    let faults = options.faults.clone().unwrap_or(drawn);
    {
        let mut w = lock(&world);
        for (topic, partitions) in &scenario.topics {
            w.source.create_topic(topic, *partitions, BTreeMap::new());
            if scenario.precreate {
                w.destination
                    .create_topic(topic, *partitions, BTreeMap::new());
            }
        }
    }
    // Records before kmirror starts.
    let mut produced = 0i64;
    let mut producer_rng = rng.fork(10);
    for _ in 0..20 {
        produced += produce_one(&world, &mut producer_rng, 0);
    }

    let mut controls = Vec::new();
    let mut processes = Vec::new();
    for (index, start) in scenario.processes.iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel::<Control>();
        controls.push(tx);
        processes.push(tokio::spawn(process(
            world.clone(),
            scenario.clone(),
            index,
            started + *start,
            rx,
            started,
        )));
    }
    let fault_task = tokio::spawn(apply_faults(
        world.clone(),
        faults.clone(),
        controls.clone(),
        started,
    ));
    let workload_end = started + options.workload;
    let (min_gap, max_gap) = scenario.produce_every;
    let producer_world = world.clone();
    let producer = tokio::spawn(async move {
        let mut produced = 0i64;
        while Instant::now() < workload_end {
            tokio::time::sleep(Duration::from_millis(
                producer_rng.between(min_gap, max_gap),
            ))
            .await;
            let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(0);
            produced += produce_one(&producer_world, &mut producer_rng, ms);
        }
        produced
    });

    // Wait for the end of the workload and of the faults, for every
    // process to run, then for kmirror to catch up.
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if processes.iter().any(|p| p.is_finished()) {
            // A process ended on its own: its violation is noted.
            break;
        }
        let all_running = lock(&world).running.len() == scenario.processes.len();
        if Instant::now() >= workload_end
            && fault_task.is_finished()
            && all_running
            && caught_up(&world)
        {
            break;
        }
        if Instant::now() >= workload_end + options.catch_up {
            let behind = behind(&world);
            lock(&world).violation(format!(
                "stalled: {:?} after the faults stopped, kmirror has not caught up: {behind}",
                options.catch_up
            ));
            break;
        }
    }
    fault_task.abort();
    {
        let mut w = lock(&world);
        let ms = started.elapsed().as_millis();
        w.event(
            ms,
            "the run ends: every kmirror process is stopped".to_owned(),
        );
    }
    for tx in &controls {
        let _ = tx.send(Control::Stop);
    }
    for (index, p) in processes.into_iter().enumerate() {
        match p.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => lock(&world).violation(format!("kmirror process {index}: {e}")),
            Err(e) => lock(&world).violation(format!("kmirror process {index} panicked: {e}")),
        }
    }
    produced += producer.await.unwrap_or(0);
    let mut w = lock(&world);
    w.drain_group_notes();
    if w.violations.is_empty() {
        check_final(&mut w, &scenario);
    }
    if w.violations.is_empty() {
        check_offset_map(&mut w, seed);
    }
    SimReport {
        seed,
        scenario: scenario.describe(),
        faults,
        events: w.events.clone(),
        violations: w.violations.clone(),
        records: produced,
        duplicates: w.duplicates(),
        unknown_outcomes: w.unknown_outcomes,
        requests: w.requests,
        sequence_gaps: w.sequence_gaps,
        sequence_gaps_same_leader: w.sequence_gaps_same_leader,
        processes: scenario.processes.len(),
        process_starts: w.process_starts,
        members_lost: w.members_lost(),
        rebalances: w.source.groups.values().map(|g| g.rebalances).sum(),
        handed_over_unknown: w.handed_over_unknown(),
        held_past_timeout: w.held_past_timeout,
        simulated: started.elapsed(),
        digest: w.digest(),
        offset_map: w.map.as_ref().map(|m| m.counts.clone()).unwrap_or_default(),
    }
}

/// Notes an event at the current simulated time.
fn note(world: &Shared, started: Instant, what: String) {
    let mut w = lock(world);
    let ms = started.elapsed().as_millis();
    w.event(ms, what);
}

/// Waits `down` while a process is down; true if told to stop for good
/// meanwhile (crashes and restarts of a process that is down are ignored).
async fn stay_down(
    world: &Shared,
    started: Instant,
    index: usize,
    until: Instant,
    control: &mut mpsc::UnboundedReceiver<Control>,
) -> bool {
    loop {
        tokio::select! {
            biased;
            c = control.recv() => match c {
                None | Some(Control::Stop) => return true,
                Some(_) => note(world, started, format!("kmirror process {index} is not running: the fault does nothing")),
            },
            () = tokio::time::sleep_until(until) => return false,
        }
    }
}

/// One kmirror process of the group: started at `start`, run as an
/// operator would (each start with its own instance id, so that a kill
/// cuts only its connections), crashed, restarted and stopped as told.
/// An error is a broken invariant.
async fn process(
    world: Shared,
    scenario: Arc<Scenario>,
    index: usize,
    start: Instant,
    mut control: mpsc::UnboundedReceiver<Control>,
    started: Instant,
) -> Result<(), String> {
    if stay_down(&world, started, index, start, &mut control).await {
        return Ok(());
    }
    'start: loop {
        let instance = {
            let mut w = lock(&world);
            w.instances += 1;
            w.process_starts += 1;
            let instance = w.instances;
            let ms = started.elapsed().as_millis();
            w.event(
                ms,
                format!("kmirror process {index} starts (instance {instance})"),
            );
            instance
        };
        let config = mirror_config(&world, &scenario, instance)
            .map_err(|e| format!("bad configuration: {e}"))?;
        let mut task = tokio::spawn(async move {
            let mirror = Mirror::connect(config).await?;
            let stop = mirror.stop_handle();
            Ok::<_, kmirror::MirrorError>((mirror, stop))
        });
        let connected = tokio::select! {
            biased;
            done = &mut task => done,
            c = control.recv() => {
                task.abort();
                let down = match c {
                    None | Some(Control::Stop) => return Ok(()),
                    Some(Control::Crash(d)) => {
                        kill(&world, index, instance, started);
                        d
                    }
                    Some(Control::Restart(d)) => {
                        note(&world, started, format!("kmirror process {index} (instance {instance}) stopped before it connected"));
                        d
                    }
                };
                if stay_down(&world, started, index, Instant::now() + down, &mut control).await {
                    return Ok(());
                }
                continue 'start;
            }
        };
        let (mirror, stop) = match connected {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => return Err(format!("could not start: {e}")),
            Err(e) => return Err(format!("panicked while starting: {e}")),
        };
        let mut running = tokio::spawn(mirror.run());
        lock(&world).running.insert(index);
        let command = tokio::select! {
            biased;
            done = &mut running => {
                lock(&world).running.remove(&index);
                return Err(match done {
                    Ok(Ok(_)) => "returned while running continuously".to_owned(),
                    Ok(Err(e)) => format!("stopped with an error: {e}"),
                    Err(e) => format!("panicked: {e}"),
                });
            }
            c = control.recv() => c.unwrap_or(Control::Stop),
        };
        lock(&world).running.remove(&index);
        let down = match command {
            Control::Crash(down) => {
                running.abort();
                kill(&world, index, instance, started);
                down
            }
            Control::Restart(_) | Control::Stop => {
                stop.stop();
                let stopped = tokio::time::timeout(Duration::from_secs(60), running).await;
                match stopped {
                    Ok(Ok(Ok(_))) => {}
                    Ok(Ok(Err(e))) => {
                        return Err(format!("the graceful stop ended with an error: {e}"));
                    }
                    Ok(Err(e)) => return Err(format!("panicked while stopping: {e}")),
                    Err(_) => return Err("did not stop within 60 s of being asked".to_owned()),
                }
                note(
                    &world,
                    started,
                    format!("kmirror process {index} (instance {instance}) stopped gracefully"),
                );
                match command {
                    Control::Restart(down) => down,
                    _ => return Ok(()),
                }
            }
        };
        if stay_down(&world, started, index, Instant::now() + down, &mut control).await {
            return Ok(());
        }
    }
}

fn produce_one(world: &Shared, rng: &mut SimRng, now_ms: i64) -> i64 {
    let mut w = lock(world);
    let topics: Vec<(String, i32)> = w
        .source
        .topics
        .iter()
        .map(|(n, t)| (n.clone(), t.partitions.len() as i32))
        .collect();
    let Some((topic, n)) = rng.pick(&topics).cloned() else {
        return 0;
    };
    let partition = i32::try_from(rng.below(u64::try_from(n).unwrap_or(1))).unwrap_or(0);
    workload::produce(&mut w.source, rng, &topic, partition, now_ms)
}

fn kill(world: &Shared, index: usize, instance: u64, started: Instant) {
    let mut w = lock(world);
    w.killed.insert(instance);
    w.mirror_restarts += 1;
    let ms = started.elapsed().as_millis();
    w.event(
        ms,
        format!("kmirror process {index} (instance {instance}) killed"),
    );
}

/// Whether every source record is on the destination and every source
/// partition's committed offset is its log end.
fn caught_up(world: &Shared) -> bool {
    behind(world).is_empty()
}

/// The source partitions not yet mirrored and committed to their end.
fn behind(world: &Shared) -> String {
    let w = lock(world);
    let committed = w
        .source
        .groups
        .get(GROUP)
        .map(|g| g.offsets.clone())
        .unwrap_or_default();
    let mut out = String::new();
    for (name, topic) in &w.source.topics {
        for (i, p) in topic.partitions.iter().enumerate() {
            let key = (name.clone(), i as i32);
            let end = p.log.log_end();
            let seen = w.seen.get(&key).map_or(0, |s| s.prefix);
            let commit = committed.get(&key).copied().unwrap_or(-1);
            if seen < end || commit < end {
                let _ = write!(
                    out,
                    "{name}-{i} (end {end}, on the destination {seen}, committed {commit}) "
                );
            }
        }
    }
    out
}

/// The end checks (every record arrived and was committed is checked
/// while waiting for the catch-up): duplicates only where a kmirror
/// process lost its producer state (killed, or more producer ids than one
/// per stream and start) or a group member lost its partitions without a
/// commit (expired, dropped or fenced by the coordinator). A graceful
/// handover commits before it gives a partition up: no duplicates. A
/// source topic grown while kmirror was down may be placed by key on a
/// destination that kept its count (by design), so partition counts are
/// not compared.
fn check_final(w: &mut World, scenario: &Scenario) {
    let expected_ids = scenario.streams as u64 * w.process_starts;
    // A record written again by another producer, whose first write's
    // answer never reached its writer, was given up with an unknown
    // outcome (a drain or revocation that timed out): at-least-once, not
    // a broken handover.
    let duplicates = w.duplicates().saturating_sub(w.handed_over_unknown());
    let lost = w.members_lost();
    if duplicates > 0 && w.mirror_restarts == 0 && lost == 0 && w.producer_ids <= expected_ids {
        w.violation(format!(
            "{duplicates} records were written twice although no kmirror process crashed, no group member was lost, the processes kept their producer ids ({} handed out for {} start(s)) and knew the outcome of the first write",
            w.producer_ids, w.process_starts
        ));
    }
}

/// The offset map's end checks, once everything is copied and committed:
/// the map topic as kmirror must create it (one partition,
/// `cleanup.policy=delete`, a retention), and every translation exact
/// ([`MapState::check_translations`]).
fn check_offset_map(w: &mut World, seed: u64) {
    let Some(mut map) = w.map.take() else {
        return;
    };
    let mut violations = match w.destination.topics.get(&map.topic) {
        None => vec![format!(
            "{}: kmirror never created the offset map topic",
            map.topic
        )],
        Some(t) => {
            let mut v = Vec::new();
            if t.partitions.len() != 1 {
                v.push(format!(
                    "{}: created with {} partitions, not 1",
                    map.topic,
                    t.partitions.len()
                ));
            }
            let config = |k: &str| t.configs.get(k).map(String::as_str);
            if config("cleanup.policy") != Some("delete") || config("retention.ms").is_none() {
                v.push(format!(
                    "{}: created with configs {:?}, not cleanup.policy=delete and a retention.ms",
                    map.topic, t.configs
                ));
            }
            v
        }
    };
    let mut rng = SimRng::new(seed ^ POSITIONS_SALT);
    let committed = w
        .source
        .groups
        .get(GROUP)
        .map(|g| g.offsets.clone())
        .unwrap_or_default();
    let lost = w.members_lost() > 0;
    violations.extend(map.check_translations(
        &w.source,
        &w.destination,
        &w.seen,
        &committed,
        lost,
        &mut rng,
    ));
    for v in violations {
        w.violation(v);
    }
    w.map = Some(map);
}

async fn apply_faults(
    world: Shared,
    faults: Vec<Scheduled>,
    controls: Vec<mpsc::UnboundedSender<Control>>,
    started: Instant,
) {
    for s in faults {
        tokio::time::sleep_until(started + s.at).await;
        let now = Instant::now();
        let ms = started.elapsed().as_millis();
        lock(&world).event(ms, s.fault.to_string());
        match s.fault {
            Fault::BrokerRestart {
                side,
                broker,
                down_for,
                graceful,
                failover_after,
            } => {
                {
                    let mut w = lock(&world);
                    let c = w.cluster(side);
                    if graceful {
                        c.broker_down(broker, now);
                    } else {
                        // Down at once, leaders elected later.
                        if let Some(b) = c.brokers.get_mut(&broker) {
                            b.up = false;
                            b.incarnation += 1;
                        }
                    }
                }
                let world = world.clone();
                tokio::spawn(async move {
                    if !graceful {
                        tokio::time::sleep(failover_after.min(down_for)).await;
                        let mut w = lock(&world);
                        let still_down =
                            w.cluster(side).brokers.get(&broker).is_some_and(|b| !b.up);
                        if still_down {
                            w.cluster(side).broker_down(broker, Instant::now());
                        }
                    }
                    tokio::time::sleep(down_for.saturating_sub(failover_after)).await;
                    let mut w = lock(&world);
                    w.cluster(side).broker_up(broker, Instant::now());
                    let ms = started.elapsed().as_millis();
                    w.event(ms, format!("{side:?} broker {broker} is back"));
                });
            }
            Fault::BrokerStall {
                side,
                broker,
                stall_for,
            } => {
                if let Some(b) = lock(&world).cluster(side).brokers.get_mut(&broker) {
                    b.stalled_until = Some(now + stall_for);
                }
            }
            Fault::Election {
                side,
                topic,
                partition,
            } => {
                let mut w = lock(&world);
                let c = w.cluster(side);
                if let Some(to) = c.other_replica(&topic, partition) {
                    c.elect(&topic, partition, to, now);
                }
            }
            Fault::PreferredElection { side } => lock(&world).cluster(side).preferred_election(now),
            Fault::CoordinatorMove => lock(&world).source.move_coordinator(),
            Fault::AddPartitions { topic, to } => {
                lock(&world).source.add_partitions(&topic, to);
            }
            Fault::UncleanElection { topic, partition } => {
                let mut w = lock(&world);
                if let Some(cut) = w.source.unclean_election(&topic, partition, now) {
                    w.on_source_truncated(&topic, partition, cut);
                    w.event(ms, format!("source {topic}-{partition} truncated at {cut}"));
                }
            }
            Fault::MirrorCrash { process, down_for } => {
                if let Some(c) = controls.get(process) {
                    let _ = c.send(Control::Crash(down_for));
                }
            }
            Fault::MirrorRestart { process, down_for } => {
                if let Some(c) = controls.get(process) {
                    let _ = c.send(Control::Restart(down_for));
                }
            }
        }
    }
}
