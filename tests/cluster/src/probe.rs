//! A minimal Metadata v4 client (std only), for the harness's own needs:
//! is every broker registered, who leads a partition, who is in its ISR.
//!
//! Version 4 because every pinned broker speaks it (Kafka 2.1 up to v7,
//! Kafka 4.x from v0 or v4 on). Every length is checked against the bytes
//! that remain.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition index.
    pub partition: i32,
    /// The leader's node id, -1 when there is none.
    pub leader: i32,
    /// The replicas' node ids, preferred first.
    pub replicas: Vec<i32>,
    /// The in-sync replicas' node ids.
    pub isr: Vec<i32>,
    /// The partition's error code (0: none).
    pub error: i16,
}

/// What one Metadata request showed.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// `(node id, host, port)` of every registered (and, under KRaft,
    /// unfenced) broker.
    pub brokers: Vec<(i32, String, i32)>,
    /// The controller's node id.
    pub controller: i32,
    /// `(topic, error code, partitions)` of the topics asked for.
    pub topics: Vec<(String, i16, Vec<PartitionInfo>)>,
}

/// Sends Metadata v4 for `topics` (all topics when empty) to `addr` and
/// decodes the answer; `None` if the broker cannot be reached or answers
/// something undecodable.
pub fn metadata(addr: SocketAddr, topics: &[&str]) -> Option<ClusterView> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut body = Vec::new();
    body.extend_from_slice(&3i16.to_be_bytes()); // api key: Metadata
    body.extend_from_slice(&4i16.to_be_bytes()); // api version
    body.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    let client = b"kmirror-test-cluster";
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    if topics.is_empty() {
        body.extend_from_slice(&(-1i32).to_be_bytes());
    } else {
        body.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for topic in topics {
            body.extend_from_slice(&(topic.len() as i16).to_be_bytes());
            body.extend_from_slice(topic.as_bytes());
        }
    }
    body.push(0); // allow_auto_topic_creation: false
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame).ok()?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let size = usize::try_from(i32::from_be_bytes(size)).ok()?;
    if size > 64 << 20 {
        return None;
    }
    let mut response = vec![0u8; size];
    stream.read_exact(&mut response).ok()?;
    decode(&response)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn i8(&mut self) -> Option<i8> {
        self.take(1).map(|b| i8::from_be_bytes([b[0]]))
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        let bytes = self.take(usize::try_from(len).ok()?)?;
        Some(Some(String::from_utf8_lossy(bytes).into_owned()))
    }
    /// An array count, bounded by the bytes left (each element takes at
    /// least `min_size` bytes).
    fn count(&mut self, min_size: usize) -> Option<usize> {
        let n = self.i32()?;
        let n = usize::try_from(n.max(0)).ok()?;
        (n.saturating_mul(min_size) <= self.0.len()).then_some(n)
    }
    fn i32_array(&mut self) -> Option<Vec<i32>> {
        let n = self.count(4)?;
        (0..n).map(|_| self.i32()).collect()
    }
}

fn decode(response: &[u8]) -> Option<ClusterView> {
    let mut r = Reader(response);
    let _correlation = r.i32()?;
    let _throttle = r.i32()?;
    let mut view = ClusterView::default();
    for _ in 0..r.count(12)? {
        let id = r.i32()?;
        let host = r.string()?.unwrap_or_default();
        let port = r.i32()?;
        let _rack = r.string()?;
        view.brokers.push((id, host, port));
    }
    let _cluster_id = r.string()?;
    view.controller = r.i32()?;
    for _ in 0..r.count(9)? {
        let error = r.i16()?;
        let name = r.string()?.unwrap_or_default();
        let _internal = r.i8()?;
        let mut partitions = Vec::new();
        for _ in 0..r.count(18)? {
            let error = r.i16()?;
            let partition = r.i32()?;
            let leader = r.i32()?;
            let replicas = r.i32_array()?;
            let isr = r.i32_array()?;
            partitions.push(PartitionInfo {
                partition,
                leader,
                replicas,
                isr,
                error,
            });
        }
        partitions.sort_by_key(|p| p.partition);
        view.topics.push((name, error, partitions));
    }
    Some(view)
}
