//! The simulated network: kmirror's pool dials a broker address and gets
//! one end of an in-memory stream; a task serves the other end as that
//! broker would, one request at a time in order (as Kafka's network
//! threads do per connection), with the connection-level faults of the
//! run's [`FaultRates`](crate::world::FaultRates).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Encodable, decode_request_header_from_buffer};
use kmirror_pool::dialer::{DialFuture, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

use crate::handlers::{Handled, handle, poll_held};
use crate::world::{Side, World};

/// The world, shared by every connection task (one thread: never
/// contended, never held across an await).
pub type Shared = Arc<Mutex<World>>;

/// Locks the world (a panic elsewhere has already failed the run).
pub fn lock(world: &Shared) -> std::sync::MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|p| p.into_inner())
}

/// Largest request frame a simulated broker reads.
const MAX_REQUEST: usize = 100 << 20;

/// How long a simulated broker takes to answer, at least.
const LATENCY: Duration = Duration::from_millis(1);

/// How often a held JoinGroup or SyncGroup is looked at again.
const HELD_POLL: Duration = Duration::from_millis(50);

/// The simulated network (see the module documentation).
#[derive(Debug, Clone)]
pub struct SimNetwork {
    world: Shared,
    /// Which kmirror process dials (a killed one loses every connection).
    instance: u64,
    /// kmirror's `request.timeout.ms`, which bounds the injected delays.
    request_timeout: Duration,
}

impl SimNetwork {
    /// A network to the clusters of `world`.
    pub fn new(world: Shared, instance: u64, request_timeout: Duration) -> Self {
        Self {
            world,
            instance,
            request_timeout,
        }
    }
}

impl Transport for SimNetwork {
    fn dial<'a>(&'a self, addr: &'a str) -> DialFuture<'a> {
        Box::pin(async move {
            tokio::time::sleep(LATENCY).await;
            if lock(&self.world).killed.contains(&self.instance) {
                return Err(std::io::Error::other("this kmirror process was killed"));
            }
            let found = {
                let w = lock(&self.world);
                [Side::Source, Side::Destination]
                    .into_iter()
                    .find_map(|side| {
                        let c = match side {
                            Side::Source => &w.source,
                            Side::Destination => &w.destination,
                        };
                        c.broker_at(addr).map(|b| (side, b.id, b.up, b.incarnation))
                    })
            };
            let Some((side, broker, up, incarnation)) = found else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{addr} is no simulated broker"),
                ));
            };
            if !up {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connection refused (simulated broker down)",
                ));
            }
            let (client, server) = tokio::io::duplex(1 << 20);
            let world = self.world.clone();
            let timeout = self.request_timeout;
            let link = Link {
                side,
                broker,
                incarnation,
                instance: self.instance,
                request_timeout: timeout,
            };
            tokio::spawn(async move {
                serve(world, link, server, timeout).await;
            });
            Ok(client)
        })
    }
}

/// One connection's ends: which broker (and which run of it) and which
/// kmirror process.
#[derive(Debug, Clone, Copy)]
struct Link {
    side: Side,
    broker: i32,
    incarnation: u64,
    instance: u64,
    /// The client's `request.timeout.ms`.
    request_timeout: Duration,
}

/// Whether the broker still runs the incarnation the connection was made
/// to, and the kmirror process that made it still lives.
fn alive(world: &Shared, link: Link) -> bool {
    let mut w = lock(world);
    if w.killed.contains(&link.instance) {
        return false;
    }
    w.cluster(link.side)
        .brokers
        .get(&link.broker)
        .is_some_and(|b| b.up && b.incarnation == link.incarnation)
}

fn stalled_until(world: &Shared, side: Side, broker: i32) -> Option<Instant> {
    let mut w = lock(world);
    w.cluster(side)
        .brokers
        .get(&broker)
        .and_then(|b| b.stalled_until)
}

/// What happens to one request on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Normal,
    CutBefore,
    CutAfter,
    Delay(Duration),
    Duplicate,
}

async fn serve(world: Shared, link: Link, mut io: DuplexStream, timeout: Duration) {
    let Link { side, broker, .. } = link;
    loop {
        let mut size = [0u8; 4];
        // A dead broker's connections die: poll the read against the
        // broker's liveness.
        let read = tokio::select! {
            biased;
            r = io.read_exact(&mut size) => r,
            () = wait_dead(&world, link) => return,
        };
        if read.is_err() {
            return;
        }
        let len = i32::from_be_bytes(size);
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        if len > MAX_REQUEST {
            return;
        }
        let mut frame = vec![0u8; len];
        if io.read_exact(&mut frame).await.is_err() {
            return;
        }
        let frame = Bytes::from(frame);
        let fate = {
            let mut w = lock(&world);
            let rates = w.rates;
            let rng = &mut w.rng;
            if rng.chance(rates.cut_before) {
                Fate::CutBefore
            } else if rng.chance(rates.cut_after) {
                Fate::CutAfter
            } else if rng.chance(rates.delay) {
                let ms = u64::try_from(timeout.as_millis()).unwrap_or(30_000);
                Fate::Delay(Duration::from_millis(rng.below(2 * ms)))
            } else if rng.chance(rates.duplicate) {
                Fate::Duplicate
            } else {
                Fate::Normal
            }
        };
        if fate == Fate::CutBefore {
            return;
        }
        tokio::time::sleep(LATENCY).await;
        while let Some(until) = stalled_until(&world, side, broker) {
            if Instant::now() >= until {
                break;
            }
            tokio::time::sleep_until(until).await;
        }
        if !alive(&world, link) {
            return;
        }
        let produce = is_produce(&frame);
        let (response, request) = answer(&world, link, frame.clone()).await;
        let Some(response) = response else {
            if produce {
                lock(&world).undelivered.insert(request);
            }
            return;
        };
        match fate {
            Fate::CutAfter => {
                if produce {
                    let mut w = lock(&world);
                    w.unknown_outcomes += 1;
                    w.undelivered.insert(request);
                }
                return;
            }
            Fate::Delay(d) => {
                if produce && d >= timeout {
                    lock(&world).undelivered.insert(request);
                }
                tokio::time::sleep(d).await;
            }
            _ => {}
        }
        if !alive(&world, link) || io.write_all(&response).await.is_err() {
            if produce {
                lock(&world).undelivered.insert(request);
            }
            return;
        }
        if fate == Fate::Duplicate && io.write_all(&response).await.is_err() {
            return;
        }
    }
}

fn is_produce(frame: &Bytes) -> bool {
    frame.get(0..2) == Some(&[0, 0])
}

async fn wait_dead(world: &Shared, link: Link) {
    while alive(world, link) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Decodes, handles (waiting for data up to a Fetch's `max_wait_ms`) and
/// encodes one request; `None` if the connection must close. With the
/// request's number (0 if it was not served).
async fn answer(world: &Shared, link: Link, frame: Bytes) -> (Option<Bytes>, u64) {
    let mut number = 0;
    let response = answer_numbered(world, link, frame, &mut number).await;
    (response, number)
}

async fn answer_numbered(
    world: &Shared,
    link: Link,
    frame: Bytes,
    number: &mut u64,
) -> Option<Bytes> {
    let Link { side, broker, .. } = link;
    let mut body = frame.clone();
    let header = match decode_request_header_from_buffer(&mut body) {
        Ok(h) => h,
        Err(e) => {
            lock(world).violation(format!(
                "{side:?} broker {broker}: undecodable request header: {e}"
            ));
            return None;
        }
    };
    let Ok(api) = ApiKey::try_from(header.request_api_key) else {
        lock(world).violation(format!("unknown API key {}", header.request_api_key));
        return None;
    };
    let version = header.request_api_version;
    let request = match RequestKind::decode(api, &mut body, version) {
        Ok(r) => r,
        Err(e) => {
            lock(world).violation(format!(
                "{side:?} broker {broker}: undecodable {api:?} v{version}: {e}"
            ));
            return None;
        }
    };
    if body.has_remaining() {
        lock(world).violation(format!(
            "{api:?} v{version}: {} bytes left after the request",
            body.remaining()
        ));
    }
    let max_wait = match &request {
        RequestKind::Fetch(f) => Duration::from_millis(u64::try_from(f.max_wait_ms).unwrap_or(0)),
        _ => Duration::ZERO,
    };
    {
        let mut w = lock(world);
        w.requests += 1;
        w.current_request = w.requests;
        *number = w.requests;
        let elapsed = u64::try_from(w.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        w.record(&elapsed.to_be_bytes());
        w.record(&[side as u8]);
        w.record(&broker.to_be_bytes());
        // The offset map's records carry random session ids and wall
        // clock timestamps: recorded without them.
        let normalized = match (&request, w.map.as_mut()) {
            (RequestKind::Produce(r), Some(map)) if side == Side::Destination => map.digest_form(r),
            _ => None,
        };
        w.record(normalized.as_deref().unwrap_or(&frame));
        if api == ApiKey::Produce && side == Side::Destination {
            let violations = w.checker.check(frame.clone());
            for v in violations {
                // A hole in a partition's sequence is refused by the
                // broker (OUT_OF_ORDER_SEQUENCE_NUMBER) and retried: it
                // happens when a partition's leader moves while batches
                // are in flight to the old one (Java's producer does the
                // same), which is counted. With the same leader as at the
                // last write it is kmirror's own doing, counted apart.
                // Every other rule is a violation.
                let gap = matches!(
                    v.rule,
                    kmirror_protocol::conformance::Rule::SequenceGap { .. }
                );
                let same_leader = w
                    .destination
                    .partition(&v.topic, v.partition)
                    .map(|p| p.leader_epoch)
                    == w.appended_in_epoch
                        .get(&(v.topic.clone(), v.partition))
                        .copied();
                if gap && !same_leader {
                    w.sequence_gaps += 1;
                } else if gap {
                    // Recovered by a resend (the invariants above hold),
                    // but a round trip kmirror should not need: counted
                    // apart, so that a regression shows in the sweep.
                    w.sequence_gaps_same_leader += 1;
                } else {
                    w.violation(format!("Produce broke Apache Kafka's rules: {v:?}"));
                }
            }
        }
    }
    let deadline = Instant::now() + max_wait;
    let handled: Handled = loop {
        let handled = {
            let mut w = lock(world);
            match handle(
                &mut w,
                side,
                broker,
                version,
                request.clone(),
                Instant::now(),
                link.instance,
            ) {
                Ok(h) => h,
                Err(e) => {
                    w.violation(e);
                    return None;
                }
            }
        };
        if !handled.may_wait || Instant::now() >= deadline {
            break handled;
        }
        tokio::time::sleep(Duration::from_millis(20).min(deadline - Instant::now())).await;
        if !alive(world, link) {
            return None;
        }
    };
    let mut response = handled.response;
    if let Some(held) = &handled.held {
        // The coordinator holds a JoinGroup until the join completes and a
        // follower's SyncGroup until the leader's: asked again every
        // HELD_POLL of simulated time (deterministic: the clock is paused).
        let since = Instant::now();
        response = loop {
            let polled = {
                let mut w = lock(world);
                let polled = poll_held(&mut w, side, broker, held, Instant::now());
                w.drain_group_notes();
                polled
            };
            if let Some(r) = polled {
                break r;
            }
            tokio::time::sleep(HELD_POLL).await;
            while let Some(until) = stalled_until(world, side, broker) {
                if Instant::now() >= until {
                    break;
                }
                tokio::time::sleep_until(until).await;
            }
            if !alive(world, link) {
                return None;
            }
        };
        if since.elapsed() >= link.request_timeout {
            // The client gave up on it first: its answer is dropped, and
            // what it sends next on the connection waited behind it.
            lock(world).held_past_timeout += 1;
        }
    }
    {
        let mut w = lock(world);
        let throttle = handled.throttleable && {
            let per_mille = w.rates.throttle;
            w.rng.chance(per_mille)
        };
        if throttle {
            let ms = i32::try_from(w.rng.between(10, 500)).unwrap_or(100);
            match &mut response {
                kafka_protocol::messages::ResponseKind::Fetch(f) => f.throttle_time_ms = ms,
                kafka_protocol::messages::ResponseKind::Produce(p) => p.throttle_time_ms = ms,
                _ => {}
            }
        }
    }
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    let header_version = api.response_header_version(version);
    let ok = ResponseHeader::default()
        .with_correlation_id(header.correlation_id)
        .encode(&mut buf, header_version)
        .and_then(|()| response.encode(&mut buf, version));
    if let Err(e) = ok {
        lock(world).violation(format!(
            "the simulation cannot encode {api:?} v{version}: {e}"
        ));
        return None;
    }
    let len = i32::try_from(buf.len() - 4).unwrap_or(i32::MAX);
    if let Some(prefix) = buf.get_mut(0..4) {
        prefix.copy_from_slice(&len.to_be_bytes());
    }
    Some(buf.freeze())
}
