//! Runs the cluster simulation from the command line (`cargo xtask
//! simulate` builds and runs this in release):
//!
//! ```text
//! kmirror-sim [--seed N | --from N --seeds COUNT] [--soak] [--map on|off] [--log LEVEL]
//! ```
//!
//! `--map` keeps the offset map in every seed (`on`) or in none (`off`)
//! instead of the seed's choice.
//!
//! `--seed N` replays one seed and prints its report; a sweep prints only
//! failing seeds, then a summary. Exits 1 if any seed failed.

use std::process::ExitCode;
use std::time::Instant;

use kmirror_sim::offset_map::MapCounts;
use kmirror_sim::{SimOptions, simulate};

struct Args {
    seed: Option<u64>,
    from: u64,
    seeds: u64,
    soak: bool,
    map: Option<bool>,
    log: Option<tracing::Level>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        seed: None,
        from: 1,
        seeds: 1000,
        soak: false,
        map: None,
        log: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |what: &str| it.next().ok_or_else(|| format!("{arg} needs {what}"));
        match arg.as_str() {
            "--seed" => {
                args.seed = Some(
                    value("a seed")?
                        .parse()
                        .map_err(|e| format!("--seed: {e}"))?,
                )
            }
            "--from" => {
                args.from = value("a seed")?
                    .parse()
                    .map_err(|e| format!("--from: {e}"))?
            }
            "--seeds" => {
                args.seeds = value("a count")?
                    .parse()
                    .map_err(|e| format!("--seeds: {e}"))?
            }
            "--soak" => args.soak = true,
            "--map" => {
                args.map = Some(match value("on or off")?.as_str() {
                    "on" => true,
                    "off" => false,
                    other => return Err(format!("--map takes on or off, not {other}")),
                })
            }
            "--log" => {
                args.log = Some(
                    value("a level")?
                        .parse()
                        .map_err(|_| "--log takes error, warn, info, debug or trace".to_owned())?,
                )
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: kmirror-sim [--seed N | --from N --seeds COUNT] [--soak] [--map on|off] [--log LEVEL]"
                ));
            }
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(level) = args.log {
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .init();
    }
    let mut options = if args.soak {
        SimOptions::soak()
    } else {
        SimOptions::default()
    };
    options.offset_map = args.map;
    if let Some(seed) = args.seed {
        let started = Instant::now();
        let report = simulate(seed, &options);
        println!("{}", report.explain());
        println!(
            "digest {:016x}, wall {:?}",
            report.digest,
            started.elapsed()
        );
        return if report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let started = Instant::now();
    let (mut failed, mut records, mut faults, mut duplicates, mut gaps) =
        (0u64, 0i64, 0usize, 0u64, 0u64);
    let mut simulated = std::time::Duration::ZERO;
    let mut own_gaps = 0u64;
    let (mut multi, mut rebalances, mut lost, mut unknown) = (0u64, 0u64, 0u64, 0u64);
    let (mut held_late, mut held_late_seeds) = (0u64, 0u64);
    let mut map = MapCounts::default();
    for seed in args.from..args.from + args.seeds {
        let report = simulate(seed, &options);
        records += report.records;
        faults += report.faults.len();
        duplicates += report.duplicates;
        gaps += report.sequence_gaps;
        own_gaps += report.sequence_gaps_same_leader;
        simulated += report.simulated;
        multi += u64::from(report.processes > 1);
        rebalances += report.rebalances;
        lost += report.members_lost;
        unknown += report.handed_over_unknown;
        held_late += report.held_past_timeout;
        held_late_seeds += u64::from(report.held_past_timeout > 0);
        map.add(&report.offset_map);
        if !report.passed() {
            failed += 1;
            println!(
                "FAIL seed {seed}: {} (replay: cargo xtask simulate --seed {seed})",
                report.violations.first().cloned().unwrap_or_default()
            );
        }
    }
    println!(
        "{} seeds from {}{}: {failed} failed; {records} records, {faults} faults, {duplicates} duplicates \
         (after crashes, lost members or new producers; {unknown} of batches given up with an unknown outcome), \
         {multi} seeds with several processes, {rebalances} rebalances, {lost} members lost, \
         {held_late} group requests held past request.timeout.ms (in {held_late_seeds} seeds), \
         {gaps} sequence holes refused and retried after leader changes, \
         {own_gaps} with no leader change; {:.0} s simulated in {:.1} s",
        args.seeds,
        args.from,
        if args.soak { " (soak)" } else { "" },
        simulated.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    println!("{map}");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
