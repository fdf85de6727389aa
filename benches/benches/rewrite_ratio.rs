//! The acceptance check of the passthrough rewrite: a 1 MiB batch must be
//! rewritten within 2x of the time CRC-32C alone takes over the same bytes.
//!
//! Times the four operations of the `rewrite` bench with the wall clock
//! (interleaved rounds, medians) and prints, per batch size, a table of
//! operation, ns/iter, GB/s and the ratio to CRC-32C (the median of the
//! per-round ratios).
//!
//! `cargo bench -p kmirror-benches --bench rewrite_ratio`

use std::hint::black_box;

use kmirror_benches::{RewriteCase, bench_mode, skip_table, table_timing, time_interleaved};

/// The acceptance target: rewrite time over CRC-32C time, 1 MiB batch.
const TARGET_RATIO: f64 = 2.0;

/// Row names, in the order of the operations timed below.
const OPS: [&str; 5] = [
    "crc32c",
    "rewrite_for_produce",
    "memcpy",
    "passthrough_path",
    "rewrite_verified",
];

fn main() {
    if skip_table("rewrite_ratio") {
        return;
    }
    let (rounds, round) = table_timing();
    if !bench_mode() {
        println!("quick pass without --bench: not a measurement (run it with cargo bench)");
    }
    println!(
        "rewrite vs crc32c vs memcpy ({rounds} interleaved rounds of {round:?} per operation; \
         medians)"
    );
    println!(
        "{:<6} {:>8} {:<20} {:>12} {:>8} {:>16}",
        "batch", "bytes", "operation", "ns/iter", "GB/s", "ratio vs crc32c"
    );
    println!("(GB/s = bytes / ns; ratio = median over rounds of op time / crc32c time that round)");
    for case in RewriteCase::all() {
        let batch_bytes = case.batch.len();
        let covered = case.crc_covered().len();
        let mut dst = vec![0u8; covered];
        let samples = time_interleaved(
            rounds,
            round,
            &mut [
                &mut || {
                    black_box(case.crc32c());
                },
                &mut || {
                    black_box(case.rewrite());
                },
                &mut || case.memcpy(&mut dst),
                &mut || {
                    black_box(case.passthrough());
                },
                &mut || {
                    black_box(case.rewrite_verified());
                },
            ],
        );
        let bytes = [covered, batch_bytes, covered, batch_bytes, batch_bytes];
        for (op, name) in OPS.iter().enumerate() {
            let ns = samples.median(op);
            println!(
                "{:<6} {:>8} {:<20} {:>12.0} {:>8.2} {:>16.2}",
                case.label,
                bytes[op],
                name,
                ns,
                bytes[op] as f64 / ns,
                samples.median_ratio(op, 0)
            );
        }
        if case.label == "1MiB" {
            let ratio = samples.median_ratio(1, 0);
            let status = if !bench_mode() {
                "not judged in a quick pass"
            } else if ratio <= TARGET_RATIO {
                "PASS"
            } else {
                "FAIL"
            };
            println!(
                "acceptance: rewrite_for_produce(1 MiB) / crc32c(1 MiB) = {ratio:.2} \
                 (target <= {TARGET_RATIO:.1}): {status}"
            );
        }
    }
}
