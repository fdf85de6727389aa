//! Developer tooling for kmirror, run as `cargo xtask <command>`.
//!
//! Commands:
//!
//! - `brokers`: install the nisshi test broker and the Python client venv.
//! - `record-proxy`: a TCP proxy that records every Kafka frame it forwards.
//! - `fixtures`: capture golden protocol fixtures from librdkafka and nisshi.
//! - `fuzz`: run the cargo-fuzz targets of `fuzz/` and summarize.
//! - `dist`: build a fully static musl release binary of `kmirror`.
//! - `demo`: the HDInsight MirrorMaker guide's scenario, end to end on
//!   Apache Kafka 3.9 (ZooKeeper mode) with Kafka's tools, with `kmirror`
//!   and with Apache Kafka's own MirrorMaker 1, side by side.
//! - `bench`: an end-to-end benchmark of `kmirror --once` between two local
//!   nisshi brokers, next to librdkafka producing and consuming alone.
//! - `replay`: the mirror-only ceiling, kmirror between two bench-only
//!   replay brokers, next to a plain TCP relay.
//! - `latency`: kmirror's added latency at a steady rate between bench-only
//!   replay brokers that answer fetches as Kafka does (or, `--nisshi`, the
//!   end-to-end latency on two nisshi brokers).
//!
//! Dependencies are std only on purpose: this crate must build fast on a
//! busy machine and never pull in what the product crates do not need. Its
//! one dependency, `kmirror-test-cluster` (Apache Kafka clusters on loopback
//! for the demo and the benchmarks), is std only itself.

mod bench;
mod brokers;
mod chaos;
mod compat;
mod demo;
mod dist;
mod fixtures;
mod fuzz;
mod harness;
mod json;
mod kafka_dist;
mod latency;
mod latency_nisshi;
mod paths;
mod record_proxy;
mod replay;
mod replay_process;
mod simulate;
mod timing;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Errors from xtask commands are human-readable messages.
pub(crate) type Result<T, E = String> = std::result::Result<T, E>;

const USAGE: &str = "\
Usage: cargo xtask <command> [options]

Commands:
  brokers [--nisshi]
      Install Apache Kafka 4.4.0 (KRaft), 3.9.2 (ZooKeeper mode, ZooKeeper,
      MirrorMaker 1), 2.1.1 (the oldest that runs on Java 17) and
      MirrorMaker 2 (connect-mirror 4.3.1) from Maven Central (mvn
      dependency:copy-dependencies) into
      ${KMIRROR_TOOLS:-$HOME/.cache/kmirror/tools}/kafka-VERSION, write the
      launcher kafka-tool there (`kafka-tool VERSION TOOL [ARGS]`), and
      create the Python venv ${KMIRROR_VENV:-$HOME/.cache/kmirror/venv} with
      pinned confluent-kafka and kafka-python. Needs Java 17 and Maven.
      --nisshi also installs the nisshi 0.8.1 stand-in broker (cargo
      +nightly install, about 13 minutes), which only `fixtures` and
      `latency --nisshi` use. Skips whatever is already in place.

  record-proxy --listen ADDR --upstream ADDR --out DIR
      Forward TCP connections from ADDR to the upstream broker byte for byte
      and write every Kafka request and response frame (without its 4-byte
      size prefix) to DIR as
      {seq:04}-{api}-v{version}-c{conn}-{request|response}.bin.
      Runs until killed.

  fixtures [--out DIR] [--timeout SECS]
      Start nisshi behind an in-process recording proxy, run
      xtask/python/golden_exchange.py (librdkafka via confluent-kafka) through
      it and copy the interesting frames plus MANIFEST.md to DIR (default
      crates/protocol/tests/fixtures/golden). Runs `brokers` first if needed.
      --timeout bounds the Python exchange (default 180 seconds).

  fuzz [--seconds N] [--target NAME]
      Run every fuzz target of fuzz/ (or only NAME) for N seconds each
      (default 60), one after the other, from a scratch copy of its seed
      corpus, and print target, seconds, runs and result. Fails naming the
      saved input if any target crashed. Installs cargo-fuzz if missing;
      needs the nightly toolchain. See fuzz/README.md.

  dist
      Build a fully static x86_64-unknown-linux-musl release binary of
      kmirror (cargo build --profile dist --locked --target
      x86_64-unknown-linux-musl -p kmirror-cli --bin kmirror), copy it to
      target/dist/kmirror and verify it with `file` and `ldd`; print its size
      and `kmirror --version`. Adds the rustup target if missing; needs
      musl-gcc (Debian's musl-tools), which it installs with apt-get when
      running as root or with passwordless sudo. See docs/dist.md.

  demo [--debug]
      The HDInsight MirrorMaker guide's scenario on real Apache Kafka, with
      Kafka's own tools, once with kmirror and once with Apache Kafka 3.9's
      own MirrorMaker 1, side by side. Installs Apache Kafka if missing (as
      `brokers` does), builds kmirror (cargo build --release -p kmirror-cli
      --bin kmirror; --debug for a debug build), then for each mirror starts
      fresh source and destination clusters (Apache Kafka 3.9.2, ZooKeeper
      mode, one broker and one ZooKeeper each), runs `kafka-topics --create
      --topic testtopic --partitions 8` on the source, writes the guide's
      consumer.properties (the source's zookeeper.connect, chroot included,
      and group.id=mirrorgroup, nothing else) and producer.properties
      (bootstrap.servers of the destination, compression.type=none), starts
      the mirror with `--consumer.config consumer.properties
      --producer.config producer.properties --whitelist testtopic
      --num.streams 4` (MirrorMaker 1 as kafka.tools.MirrorMaker; if it
      refuses the guide's file, its error is shown and it runs again with
      bootstrap.servers added), waits until kafka-consumer-groups shows it in
      group mirrorgroup, types 10 lines into kafka-console-producer, times
      their arrival on the destination, stops the mirror with SIGINT (as
      Ctrl+C does), reads the destination with kafka-console-consumer
      --from-beginning and describes the group with kafka-consumer-groups.
      Prints both results side by side: the guide's files accepted as they
      are, records per partition on the destination, time to the last
      record, exit status on SIGINT, committed offsets and lag. Fails if
      kmirror does not accept the guide's files, deliver every line once on
      its source partition, exit 0 or leave lag 0. 30-50 s after the build.
      Files and logs stay in target/xtask/demo.

  bench [--records N] [--size BYTES] [--codec CODEC] [--partitions P]
        [--streams S] [--keys K] [--matrix | --cells C:S:P:N,...] [--nisshi]
        [--builds glibc,musl,dist,dist-musl-malloc] [--peers]
      End-to-end benchmark of kmirror on this machine. Runs `brokers` if
      Apache Kafka or the venv is missing, builds kmirror (release), then for
      each cell starts fresh source and destination Apache Kafka 4.4.0
      brokers (KRaft, one broker each, G1 and a 1 GiB heap; their start is
      not measured; --nisshi: nisshi brokers with memory storage, installing
      nisshi first if needed), creates the topic with P partitions (default
      8), fills the source with N records (default 200000) of BYTES-byte
      values (default 1024; slices of a pseudo-word text) with K distinct keys
      (default 1000; 0 for null keys) using librdkafka (acks=all, linger.ms=50,
      batch.size=1000000, compression CODEC: none, lz4 (default), zstd, gzip
      or snappy), and measures: the fill's wall time; a librdkafka consumer
      reading everything back; `kmirror --once --num.streams S` (default 4)
      to the destination under GNU time (wall, CPU seconds, peak RSS) with
      both brokers' CPU seconds from /proc. Checks that the destination's end
      offsets add up to the source's. --matrix runs codecs none, lz4, zstd x
      sizes 100, 1024, 10240 x partitions 1, 8, 64 (27 cells), each with
      N x BYTES value bytes (default 204.8 MB). Prints a row per cell (with
      kmirror's rate over the consumer's and the load average) and writes
      target/xtask/bench/results.md. --builds runs each named kmirror build
      in every cell, each to a fresh destination broker (the builds as in
      `replay`). --cells runs the listed cells (codec:size:partitions:records
      each). --peers also mirrors each cell with Apache Kafka 3.9.2's
      MirrorMaker 1 (the guide's settings, and tuned) and MirrorMaker 2
      (connect-mirror 4.3.1, dedicated mode, identity replication policy),
      each to a fresh destination broker, timed until the destination holds
      every record; writes target/xtask/bench/peers.md (the table and
      kmirror's ratios) and peers.svg (throughput and CPU per GB by mirror
      and cell). Needs /usr/bin/time. See docs/performance.md.

  replay [--gb GB] [--partitions P] [--streams S] [--codec CODEC]
         [--batch-kib KIB] [--check-crcs true|false]
         [--builds glibc,musl,dist,dist-musl-malloc] [--runs N]
         [--compression CODEC]
      The mirror-only ceiling: kmirror's own cost without broker cost.
      Builds kmirror and the BENCH-ONLY replay_broker (kmirror-benches,
      release), starts a replay source whose topic (P partitions, default 8)
      holds about GB GB (default 2) of copies of one in-memory batch of 1 KiB
      records (KIB KiB of records, default 1023; codec lz4 (default) or
      none, zstd, gzip, snappy) served from memory for every Fetch, and a
      replay destination that acknowledges every Produce at once; runs
      `kmirror --once --num.streams S` (default 1) between them under GNU
      time (with check.crcs as given, default true), checks the
      destination received every batch, then sends the
      same bytes through a plain TCP relay (read/write loop, under GNU time)
      over S connections. Prints GB/s, CPU-s/GB and peak RSS of kmirror, the
      replay brokers' CPU and the relay's GB/s and CPU-s/GB; writes
      target/xtask/replay/results.md. --builds measures several kmirror
      builds in turn on the same replay (fresh brokers for each run): glibc
      (cargo build --release, the default), musl (the release profile for
      x86_64-unknown-linux-musl: musl's libc and allocator), dist (what
      `cargo xtask dist` ships: musl, fat LTO, jemalloc), dist-musl-malloc
      (the same with musl's allocator); --runs N repeats the round N times,
      interleaved. --compression CODEC sets kmirror's
      compression.type: with another codec than the source's every batch
      takes the slow path (decoded, re-encoded; only the record count is
      checked then). See docs/performance.md.

  latency [--rate N] [--seconds S] [--partitions P] [--codec CODEC]
          [--streams S] [--batch-records R] [--runs N] [--fetch-max-wait-ms MS]
          [--nisshi]
      kmirror's own added latency at a steady produce rate. Builds kmirror
      and the BENCH-ONLY replay_broker (release), starts `replay_broker
      live`, one process serving both clusters: its source appends batches
      of R 1 KiB records (default: one batch per partition every 5 ms)
      round-robin over P partitions (default 8), N records/s in all (default
      30000, about half of what librdkafka produced into nisshi), codec lz4
      (default) or none, zstd, gzip, snappy, for S seconds (default 10), and
      answers Fetch as Apache Kafka does (a parked fetch returns as soon as
      fetch.min.bytes are there); its destination acknowledges every Produce
      at once and times each batch from its append on the source to the
      Produce carrying it. Runs kmirror (continuous, --num.streams S,
      default 1; default consumer and producer settings, or
      fetch.max.wait.ms=MS) between them under GNU time, stops it with
      SIGINT once every batch arrived, checks every batch arrived unchanged,
      and prints per run (--runs, default 1) the rate, the batch size, the
      p50/p99/p99.9/max latency (ms; the first second left out), how the
      fetches were answered, kmirror's CPU seconds and peak RSS; writes
      target/xtask/latency/results.md.
      --nisshi: the end-to-end latency instead, on two fresh nisshi brokers
      (runs `brokers` if needed): xtask/python/latency_probe.py produces N
      records/s of 1 KiB (librdkafka, lz4, linger.ms=5, 8 partitions) for S
      seconds while kmirror mirrors, and matches records on both sides by
      their LogAppendTime. See docs/performance.md.

  compat [--pairs SRC:DST,...] [--cases CASE,...]
      The version matrix: kmirror between Apache Kafka 2.1.1, 3.9.2
      (ZooKeeper mode) and 4.4.0 (KRaft), every ordered pair including
      same-version pairs (a second cluster). Builds kmirror (release) and the
      api_versions example (the versions kmirror negotiates with each broker),
      fills one source topic per case with librdkafka
      (xtask/python/compat.py): codecs none, gzip, snappy, lz4, zstd; compact
      (cleanup.policy=compact, waits for the cleaner's offset gaps); tx
      (committed and aborted transactions, read_committed); v1-none,
      v1-snappy, v0-none, v0-lz4 (message.format.version 0.10.2 / 0.9.0, 2.1
      sources only). Each case is one `kmirror --once` run, then both sides
      are read back with librdkafka and compared record by record, with the
      group's committed offsets. Prints the table and writes
      docs/compatibility.md (target/xtask/compat/compatibility.md for a
      subset: --pairs 2.1:4.4,4.4:2.1 and/or --cases zstd,tx). Fails if any
      case fails. About 10 minutes for the full matrix.

  chaos [--trials N] [--seed S] [--rate R] [--num.streams N]
      Fault campaign on real Apache Kafka (issue 13). Builds kmirror
      (release), starts two three-broker Apache Kafka 4.4.0 KRaft clusters
      (replication factor 3, min.insync.replicas=2) behind TCP proxies of its
      own, a librdkafka producer (xtask/python/chaos.py; acks=all,
      idempotent, R records/s, default 300, keyed, per-key sequence numbers)
      into chaos-0 (6 partitions), and kmirror --whitelist 'chaos-.*'
      through the proxies. Each of N trials (default 5) applies one fault
      from a seeded shuffle (seed printed; --seed replays): kill -9 or
      graceful restart of a source or destination broker leading a busy
      partition, a leader election, a rolling restart, a connection cut or
      stall in a proxy, kill -9 of kmirror, partitions added to the source
      topic, a new topic; then measures the time until the destination
      catches up, with a deadline (a stall: recorded, kmirror restarted).
      An exited kmirror is recorded and restarted. At the end, stops the
      producer and kmirror (SIGINT), reads both clusters and prints per
      trial records, lost, reordered, duplicates, time to recover; writes
      target/xtask/chaos/results.md and per-trial kmirror logs there.
      Fails if anything was lost or reordered.

  simulate [--seed N | --from N --seeds COUNT] [--soak] [--log LEVEL]
      The deterministic cluster simulation (tests/sim; issue 13) in a
      release build: the real engine against simulated Apache Kafka brokers
      with seeded faults, every invariant checked (default: seeds 1..=1000,
      about 10 s). --seed replays one seed exactly and prints its scenario,
      fault schedule, events and violations (with --log debug, kmirror's
      log); --soak runs 2-minute workloads with up to 30 faults. Fails if a
      seed fails, listing each with its replay command.

  help
      Print this message.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let Some((command, rest)) = args.split_first() else {
        print!("{USAGE}");
        return Err("missing command".to_owned());
    };
    match command.as_str() {
        "brokers" => match rest {
            [] => brokers::run(false),
            [flag] if flag == "--nisshi" => brokers::run(true),
            _ => Err(format!(
                "brokers takes no options but --nisshi, got {rest:?}"
            )),
        },
        "record-proxy" => {
            let mut opts = Options::parse(rest, &["--listen", "--upstream", "--out"])?;
            let listen: SocketAddr = parse_addr("--listen", &opts.required("--listen")?)?;
            let upstream: SocketAddr = parse_addr("--upstream", &opts.required("--upstream")?)?;
            let out = PathBuf::from(opts.required("--out")?);
            record_proxy::run_forever(listen, upstream, &out)
        }
        "fixtures" => {
            let mut opts = Options::parse(rest, &["--out", "--timeout"])?;
            let out = opts
                .take("--out")
                .map(PathBuf::from)
                .unwrap_or_else(|| paths::workspace_root().join(fixtures::DEFAULT_OUT));
            let timeout = match opts.take("--timeout") {
                Some(secs) => secs
                    .parse::<u64>()
                    .map_err(|_| format!("--timeout expects whole seconds, got {secs:?}"))?,
                None => fixtures::DEFAULT_TIMEOUT_SECS,
            };
            fixtures::run(&out, std::time::Duration::from_secs(timeout))
        }
        "fuzz" => fuzz::run(rest),
        "dist" => {
            no_options(rest)?;
            dist::run()
        }
        "demo" => demo::run(demo::parse_options(rest)?),
        "bench" => bench::run(&bench::parse_options(rest)?),
        "compat" => compat::run(&compat::parse_options(rest)?),
        "chaos" => chaos::run(&chaos::parse_options(rest)?),
        "simulate" => simulate::run(rest),
        "replay" => replay::run(&replay::parse_options(rest)?),
        "latency" => latency::run(&latency::parse_options(rest)?),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            print!("{USAGE}");
            Err(format!("unknown command {other:?}"))
        }
    }
}

fn parse_addr(flag: &str, value: &str) -> Result<SocketAddr> {
    value
        .parse()
        .map_err(|_| format!("{flag} expects HOST:PORT with a numeric IP, got {value:?}"))
}

fn no_options(rest: &[String]) -> Result<()> {
    match rest.first() {
        None => Ok(()),
        Some(arg) => Err(format!(
            "unexpected argument {arg:?} (see `cargo xtask help`)"
        )),
    }
}

/// `--flag value` and `--flag=value` options, each given at most once.
struct Options {
    values: Vec<(String, String)>,
}

impl Options {
    fn parse(args: &[String], known: &[&str]) -> Result<Self> {
        let mut values: Vec<(String, String)> = Vec::new();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let (flag, value) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), value.to_owned())
                }
                _ => {
                    let value = iter
                        .next()
                        .ok_or_else(|| format!("{arg} expects a value (see `cargo xtask help`)"))?;
                    (arg.clone(), value.clone())
                }
            };
            if !known.contains(&flag.as_str()) {
                return Err(format!("unknown option {flag:?} (see `cargo xtask help`)"));
            }
            if values.iter().any(|(f, _)| *f == flag) {
                return Err(format!("{flag} given twice"));
            }
            values.push((flag, value));
        }
        Ok(Self { values })
    }

    fn take(&mut self, flag: &str) -> Option<String> {
        let index = self.values.iter().position(|(f, _)| f == flag)?;
        Some(self.values.swap_remove(index).1)
    }

    fn required(&mut self, flag: &str) -> Result<String> {
        self.take(flag)
            .ok_or_else(|| format!("missing required option {flag} (see `cargo xtask help`)"))
    }
}
