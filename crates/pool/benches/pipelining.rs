//! Pipelined vs sequential requests on one connection to a real Apache
//! Kafka broker (KRaft, the newest pinned version, benchmark JVM options):
//! `cargo bench -p kmirror-pool --bench pipelining`.
//!
//! Prints requests per second for each mode and their ratio, measured in the
//! same run (never a wall-clock threshold).

use std::sync::Arc;
use std::time::Instant;

use kmirror_pool::protocol::messages::metadata::metadata_request;
use kmirror_pool::{ClientConfig, Cluster, Properties};
use kmirror_test_support::{ClusterOptions, KafkaCluster};
use tokio::task::JoinSet;

const REQUESTS: usize = 5_000;
const IN_FLIGHT: usize = 200;

fn main() {
    let kafka = KafkaCluster::start(
        ClusterOptions::kraft()
            .performance()
            .name("pipelining-bench"),
    );
    let addr = kafka.bootstrap();
    let props = Properties::parse(&format!("bootstrap.servers={addr}\n")).unwrap();
    let config: ClientConfig = ClientConfig::from_properties(&props, &[]).unwrap().config;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cluster = Cluster::connect(config).await.unwrap();
        let conn = cluster.connection(&addr).await.unwrap();
        let request = Arc::new(metadata_request(Some(&["bench-probe"])));

        // Warm up.
        for _ in 0..200 {
            conn.send(&*request).await.unwrap();
        }

        let started = Instant::now();
        for _ in 0..REQUESTS {
            conn.send(&*request).await.unwrap();
        }
        let sequential = started.elapsed();

        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for i in 0..REQUESTS {
            if tasks.len() >= IN_FLIGHT {
                tasks.join_next().await.unwrap().unwrap();
            }
            let conn = Arc::clone(&conn);
            let request = Arc::clone(&request);
            tasks.spawn(async move {
                conn.send(&*request)
                    .await
                    .unwrap_or_else(|e| panic!("request {i}: {e}"));
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let pipelined = started.elapsed();

        let rate = |d: std::time::Duration| REQUESTS as f64 / d.as_secs_f64();
        println!(
            "pipelining: {REQUESTS} Metadata requests on one connection to Apache Kafka {}",
            kafka.version()
        );
        println!(
            "  sequential (1 in flight):    {:>9.0} req/s",
            rate(sequential)
        );
        println!(
            "  pipelined ({IN_FLIGHT} in flight): {:>9.0} req/s",
            rate(pipelined)
        );
        println!(
            "  ratio pipelined/sequential:  {:>9.2}x",
            rate(pipelined) / rate(sequential)
        );
    });
}
