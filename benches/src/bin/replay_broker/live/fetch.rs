//! The live source's answer to a Fetch (BENCH-ONLY), as Apache Kafka gives
//! it: when the partitions asked for hold at least `fetch.min.bytes` (at
//! least 1 byte) from their fetch offsets, or one of them is in error, the
//! answer goes at once; otherwise the request is parked (this connection's
//! thread waits, as Kafka holds a connection's next request until the
//! response is out) and answered as soon as an append brings enough bytes,
//! or at `fetch.max.wait.ms` with whatever is there. Whole batches from the
//! one holding the fetch offset, up to `max.partition.fetch.bytes` per
//! partition and `fetch.max.bytes` per response, the first batch of the
//! response even when larger (KIP-74). Versions 12 to 16 (flexible), no
//! fetch sessions (session id 0: every request is a full fetch).

use std::io::IoSlice;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages as kp;

use super::Live;
use super::log::State;
use crate::{Result, TOPIC_ID, Topic, put_uvarint, write_all_vectored};

/// Kafka's OFFSET_OUT_OF_RANGE and UNKNOWN_TOPIC_OR_PARTITION.
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// One Fetch request and when it came.
pub(crate) struct FetchCall<'a> {
    pub(crate) request: &'a kp::FetchRequest,
    pub(crate) version: i16,
    pub(crate) correlation_id: i32,
    /// When the request was read whole.
    pub(crate) arrived: Instant,
    /// When this connection's previous Fetch response was written.
    pub(crate) previous: Option<Instant>,
}

/// How a Fetch was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// At once, without waiting.
    Immediate,
    /// Parked, then answered when an append brought enough bytes.
    Woken,
    /// Parked until `fetch.max.wait.ms` ran out.
    TimedOut,
}

/// One partition of the answer.
struct PartitionAnswer {
    index: i32,
    error: i16,
    high_watermark: i64,
    log_start: i64,
    /// The log's partition (for the serve times).
    partition: usize,
    /// `(entry index, batch)` in offset order.
    batches: Vec<(usize, Bytes)>,
}

/// The answer as the log stands.
struct Answer {
    topics: Vec<Vec<PartitionAnswer>>,
    bytes: usize,
    error: bool,
}

/// Answers one Fetch (waiting as Kafka does); returns when the response
/// was written.
pub(crate) fn fetch(
    stream: &mut TcpStream,
    call: &FetchCall<'_>,
    topic: &Topic,
    live: &Live,
) -> Result<Instant> {
    let min_bytes = usize::try_from(call.request.min_bytes.max(1))?;
    let max_wait = Duration::from_millis(u64::try_from(call.request.max_wait_ms.max(0))?);
    let deadline = call.arrived + max_wait;
    let mut state = live.log.lock();
    let mut parked = false;
    let (answer, outcome) = loop {
        let answer = read(&mut state, call, topic)?;
        let now = Instant::now();
        let outcome = if !parked {
            Outcome::Immediate
        } else if answer.bytes >= min_bytes {
            Outcome::Woken
        } else {
            Outcome::TimedOut
        };
        if answer.bytes >= min_bytes || answer.error || now >= deadline {
            break (answer, outcome);
        }
        parked = true;
        state = live.log.wait(state, deadline - now);
    };
    drop(state);
    write(stream, call, &answer)?;
    let written = Instant::now();
    let served: Vec<(usize, usize)> = answer
        .topics
        .iter()
        .flatten()
        .flat_map(|p| p.batches.iter().map(|(i, _)| (p.partition, *i)))
        .collect();
    live.log.mark_served(&served, written);
    live.note_fetch(call, outcome, written);
    Ok(written)
}

/// What the log holds for the request now (and notes which partitions
/// were asked for).
fn read(state: &mut State, call: &FetchCall<'_>, topic: &Topic) -> Result<Answer> {
    let request = call.request;
    let max_bytes = usize::try_from(request.max_bytes.max(0))?;
    let mut total = 0usize;
    let mut error = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let ours = if call.version >= 13 {
            t.topic_id == uuid::Uuid::from_bytes(TOPIC_ID)
        } else {
            *t.topic.0 == *topic.name
        };
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let known = usize::try_from(p.partition)
                .ok()
                .filter(|i| ours && *i < state.partitions.len());
            let Some(i) = known else {
                error = true;
                partitions.push(PartitionAnswer {
                    index: p.partition,
                    error: UNKNOWN_TOPIC_OR_PARTITION,
                    high_watermark: -1,
                    log_start: -1,
                    partition: 0,
                    batches: Vec::new(),
                });
                continue;
            };
            if let Some(f) = state.fetched.get_mut(i) {
                *f = true;
            }
            let log = &state.partitions[i];
            let mut answer = PartitionAnswer {
                index: p.partition,
                error: 0,
                high_watermark: log.high_watermark,
                log_start: log.log_start,
                partition: i,
                batches: Vec::new(),
            };
            if p.fetch_offset < log.log_start || p.fetch_offset > log.high_watermark {
                answer.error = OFFSET_OUT_OF_RANGE;
                error = true;
            } else {
                let limit = usize::try_from(p.partition_max_bytes.max(0))?;
                let mut bytes = 0usize;
                let first = log.first_at(p.fetch_offset);
                for (n, e) in log.entries.iter().enumerate().skip(first) {
                    let len = e.bytes.len();
                    let fits = bytes + len <= limit && total + len <= max_bytes;
                    if !(fits || total == 0) {
                        break;
                    }
                    bytes += len;
                    total += len;
                    answer.batches.push((n, e.bytes.clone()));
                }
            }
            partitions.push(answer);
        }
        topics.push(partitions);
    }
    Ok(Answer {
        topics,
        bytes: total,
        error,
    })
}

/// A piece of the response: a range of the encoded fields, or a batch.
enum Piece<'a> {
    Meta(usize, usize),
    Batch(&'a Bytes),
}

/// Encodes the response (v12 to v16) and writes it with vectored writes,
/// the batches straight from the log's buffers.
fn write(stream: &mut TcpStream, call: &FetchCall<'_>, answer: &Answer) -> Result<()> {
    let mut meta: Vec<u8> = Vec::with_capacity(512);
    let mut pieces: Vec<Piece<'_>> = Vec::new();
    let mut mark = 0usize;
    let flush = |meta: &Vec<u8>, mark: &mut usize, pieces: &mut Vec<Piece<'_>>| {
        if meta.len() > *mark {
            pieces.push(Piece::Meta(*mark, meta.len()));
            *mark = meta.len();
        }
    };
    meta.extend_from_slice(&[0, 0, 0, 0]); // size, patched below
    meta.extend_from_slice(&call.correlation_id.to_be_bytes());
    put_uvarint(&mut meta, 0); // header tagged fields
    meta.extend_from_slice(&0i32.to_be_bytes()); // throttle_time_ms
    meta.extend_from_slice(&0i16.to_be_bytes()); // error_code
    meta.extend_from_slice(&0i32.to_be_bytes()); // session_id
    put_uvarint(&mut meta, call.request.topics.len() as u64 + 1);
    for (t, partitions) in call.request.topics.iter().zip(&answer.topics) {
        if call.version >= 13 {
            meta.extend_from_slice(t.topic_id.as_bytes());
        } else {
            put_uvarint(&mut meta, t.topic.0.len() as u64 + 1);
            meta.extend_from_slice(t.topic.0.as_bytes());
        }
        put_uvarint(&mut meta, partitions.len() as u64 + 1);
        for p in partitions {
            meta.extend_from_slice(&p.index.to_be_bytes());
            meta.extend_from_slice(&p.error.to_be_bytes());
            meta.extend_from_slice(&p.high_watermark.to_be_bytes());
            meta.extend_from_slice(&p.high_watermark.to_be_bytes()); // last_stable_offset
            meta.extend_from_slice(&p.log_start.to_be_bytes());
            put_uvarint(&mut meta, 1); // aborted_transactions: empty
            meta.extend_from_slice(&(-1i32).to_be_bytes()); // preferred_read_replica
            let len: usize = p.batches.iter().map(|(_, b)| b.len()).sum();
            put_uvarint(&mut meta, len as u64 + 1);
            flush(&meta, &mut mark, &mut pieces);
            pieces.extend(p.batches.iter().map(|(_, b)| Piece::Batch(b)));
            put_uvarint(&mut meta, 0); // partition tagged fields
        }
        put_uvarint(&mut meta, 0); // topic tagged fields
    }
    put_uvarint(&mut meta, 0); // response tagged fields
    flush(&meta, &mut mark, &mut pieces);
    let size = meta.len() - 4 + answer.bytes;
    meta[0..4].copy_from_slice(&i32::try_from(size)?.to_be_bytes());
    let mut slices: Vec<IoSlice<'_>> = pieces
        .iter()
        .map(|piece| match piece {
            Piece::Meta(from, to) => IoSlice::new(&meta[*from..*to]),
            Piece::Batch(b) => IoSlice::new(b),
        })
        .collect();
    write_all_vectored(stream, &mut slices)
}
