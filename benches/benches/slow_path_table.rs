//! The slow path's throughput per codec as a table, timed with the wall
//! clock (interleaved rounds, medians), in MB/s of uncompressed records
//! (1 MB = 10^6 bytes) for a 1 MiB batch of 1 KiB JSON-ish records:
//!
//! - `decode`: decompress and read every record;
//! - `encode`: push already decoded records into a reused `BatchBuilder`
//!   with the same codec and build (compression included);
//! - `decode+encode`: the whole slow path;
//! - `rewrite`: the passthrough rewrite of the same compressed batch.
//!
//! A last row converts lz4 to zstd (decode lz4, encode zstd).
//!
//! `cargo bench -p kmirror-benches --bench slow_path_table`

use std::hint::black_box;

use kmirror_benches::{SlowPathCase, bench_mode, skip_table, table_timing, time_interleaved};
use kmirror_protocol::Compression;
use kmirror_protocol::record::BatchBuilder;

fn mb_per_s(bytes: usize, ns: f64) -> f64 {
    bytes as f64 * 1000.0 / ns
}

fn main() {
    if skip_table("slow_path_table") {
        return;
    }
    let (rounds, round) = table_timing();
    if !bench_mode() {
        println!("quick pass without --bench: not a measurement (run it with cargo bench)");
    }
    let cases = SlowPathCase::all();
    let uncompressed = cases.first().map_or(0, |c| c.uncompressed_len);
    println!(
        "slow path, 1 MiB batch ({uncompressed} bytes uncompressed, 1 KiB records), MB/s of \
         uncompressed bytes ({rounds} interleaved rounds of {round:?} per operation; medians)"
    );
    println!(
        "{:<10} {:>9} {:>6} {:>8} {:>8} {:>14} {:>8}",
        "codec", "bytes", "ratio", "decode", "encode", "decode+encode", "rewrite"
    );
    for case in &cases {
        let records = case.decoded();
        let mut builder = BatchBuilder::new(case.codec);
        let mut builder2 = BatchBuilder::new(case.codec);
        let samples = time_interleaved(
            rounds,
            round,
            &mut [
                &mut || {
                    black_box(case.decode());
                },
                &mut || {
                    black_box(case.encode(&records, &mut builder));
                },
                &mut || {
                    black_box(case.reencode(&mut builder2));
                },
                &mut || {
                    black_box(case.rewrite());
                },
            ],
        );
        let n = case.uncompressed_len;
        println!(
            "{:<10} {:>9} {:>6.2} {:>8.0} {:>8.0} {:>14.0} {:>8.0}",
            case.codec.name(),
            case.batch.len(),
            case.compression_ratio(),
            mb_per_s(n, samples.median(0)),
            mb_per_s(n, samples.median(1)),
            mb_per_s(n, samples.median(2)),
            mb_per_s(n, samples.median(3)),
        );
    }
    if let Some(lz4) = cases.iter().find(|c| c.codec == Compression::Lz4) {
        let mut zstd = BatchBuilder::new(Compression::Zstd);
        let samples = time_interleaved(
            rounds,
            round,
            &mut [&mut || {
                black_box(lz4.reencode(&mut zstd));
            }],
        );
        println!(
            "{:<10} {:>9} {:>6} {:>8} {:>8} {:>14.0} {:>8}",
            "lz4->zstd",
            lz4.batch.len(),
            "",
            "",
            "",
            mb_per_s(lz4.uncompressed_len, samples.median(0)),
            ""
        );
    }
}
