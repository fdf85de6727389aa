//! Criterion: the passthrough rewrite of a 16 KiB and a 1 MiB batch (1 KiB
//! records, codec none) against CRC-32C alone over the bytes the CRC covers,
//! a memcpy of those bytes, and the whole Fetch-to-Produce passthrough path.
//!
//! `cargo bench -p kmirror-benches --bench rewrite`; the ratio table is
//! printed by the `rewrite_ratio` bench.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use kmirror_benches::RewriteCase;

fn bench_rewrite(c: &mut Criterion) {
    for case in RewriteCase::all() {
        let batch_bytes = case.batch.len() as u64;
        let covered_bytes = case.crc_covered().len() as u64;
        let mut group = c.benchmark_group(format!("rewrite/{}", case.label));

        group.throughput(Throughput::Bytes(batch_bytes));
        group.bench_function("rewrite_for_produce", |b| b.iter(|| case.rewrite()));

        group.throughput(Throughput::Bytes(covered_bytes));
        group.bench_function("crc32c", |b| b.iter(|| case.crc32c()));

        let mut dst = vec![0u8; case.crc_covered().len()];
        group.bench_function("memcpy", |b| {
            b.iter(|| {
                case.memcpy(&mut dst);
                black_box(dst.as_ptr())
            })
        });

        group.throughput(Throughput::Bytes(batch_bytes));
        group.bench_function("passthrough_path", |b| b.iter(|| case.passthrough()));
        group.finish();
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_rewrite(&mut c);
    c.final_summary();
}
