//! Criterion: the slow path per codec (none, gzip, snappy, lz4, zstd) on a
//! 1 MiB batch of 1 KiB JSON-ish records, throughput in uncompressed bytes:
//!
//! - `decode`: decompress and read every record;
//! - `decode_encode`: that, then push every record into a reused
//!   `BatchBuilder` with the same codec and build the batch;
//! - `rewrite`: the passthrough rewrite of the same compressed batch, for
//!   comparison;
//!
//! and `slow_path/convert/lz4_to_zstd`: decode an lz4 batch, build a zstd one.
//!
//! `cargo bench -p kmirror-benches --bench slow_path`; the MB/s table is
//! printed by the `slow_path_table` bench.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput};
use kmirror_benches::SlowPathCase;
use kmirror_protocol::Compression;
use kmirror_protocol::record::BatchBuilder;

fn bench_slow_path(c: &mut Criterion) {
    let cases = SlowPathCase::all();
    for case in &cases {
        let mut group = c.benchmark_group(format!("slow_path/{}", case.codec));
        // gzip takes tens of ms per batch: flat sampling keeps it quick.
        group.sampling_mode(SamplingMode::Flat);
        group.throughput(Throughput::Bytes(case.uncompressed_len as u64));
        group.bench_function("decode", |b| b.iter(|| case.decode()));
        let mut builder = BatchBuilder::new(case.codec);
        group.bench_function("decode_encode", |b| {
            b.iter(|| case.reencode(black_box(&mut builder)))
        });
        group.bench_function("rewrite", |b| b.iter(|| case.rewrite()));
        group.finish();
    }

    let lz4 = cases
        .iter()
        .find(|c| c.codec == Compression::Lz4)
        .expect("an lz4 case");
    let mut group = c.benchmark_group("slow_path/convert");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(lz4.uncompressed_len as u64));
    let mut zstd = BatchBuilder::new(Compression::Zstd);
    group.bench_function("lz4_to_zstd", |b| {
        b.iter(|| lz4.reencode(black_box(&mut zstd)))
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_slow_path(&mut c);
    c.final_summary();
}
