//! # kmirror-sim
//!
//! A deterministic simulation of a source and a destination Kafka cluster,
//! for testing kmirror's engine the way FoundationDB and TigerBeetle test:
//! thousands of seeded runs, each reproducible exactly.
//!
//! The real `kmirror` engine and `kmirror-pool` run unchanged on a
//! current-thread tokio runtime with a paused clock; the pool's
//! [`Dialer`](kmirror_pool::Dialer) hands them in-memory streams to
//! simulated brokers ([`network`]) that speak the Kafka wire protocol
//! ([`handlers`]) over partition logs with leader epochs, high-water marks
//! and idempotent producer state ([`log`], [`cluster`]). A seed draws the
//! scenario, the source producer's timing and a fault schedule
//! ([`faults`]): broker crashes and graceful restarts, hung brokers,
//! elections, a moving coordinator, partitions added, kmirror killed and
//! restarted, plus connection cuts before and after a request was
//! applied, late and duplicated answers and throttling.
//!
//! Invariants ([`world`]): every committed source offset is below what the
//! destination holds; each destination partition receives its source
//! partition's records in order, duplicates only after kmirror lost its
//! producer state or restarted; every Produce request passes Apache
//! Kafka's rules checker; nothing panics; and once the faults stop, kmirror
//! catches up and stops cleanly. With the offset map on ([`offset_map`]):
//! every accepted commit is mapped first, and at the end every committed
//! position translates to where a consumer reads each later record.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod faults;
pub mod handlers;
pub mod log;
pub mod network;
pub mod offset_map;
pub mod rng;
pub mod run;
pub mod workload;
pub mod world;

pub use run::{SimOptions, SimReport, simulate};
