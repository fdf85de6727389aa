//! The command line: MirrorMaker 1's flags, spelled as MirrorMaker spelled
//! them, parsed with clap.
//!
//! This module owns the flags, their defaults and ranges, the `--help` text
//! and the rewording of clap's errors into one paragraph that names the
//! mistake and the fix (exit code 2). It never reads files: the meaning of
//! the two `.properties` files is [`settings`](crate::settings)'.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, Parser};

use crate::exit::{CliError, Exit};

/// The exit codes as `--help` shows them.
const EXIT_CODES: &str = "\
Exit codes:
  0   success: --once caught up and committed, or a clean stop (Ctrl+C, SIGTERM);
      also --help and --version
  1   runtime failure, e.g. a batch the destination refused for good with
      --abort.on.send.failure true, or one still failing after `retries` resends
      (after committing what was acknowledged)
  2   usage error: a bad, missing, unknown or unsupported flag
  3   configuration error: unreadable file, bad value, bad topic pattern,
      a group shared with members of another kind, group.instance.id in use
  4   cannot connect: unreachable cluster, TLS or authentication failure
  70  internal error (a bug in kmirror; please report it)
  130 a second Ctrl+C or SIGTERM during the graceful stop: exits at once; what was
      committed stays committed, records after it are mirrored again on the next start";

/// MirrorMaker flags kmirror does not take, as `--help` shows them.
const NOT_SUPPORTED: &str = "\
MirrorMaker 1 flags that kmirror refuses (they load Java code):
  --message.handler, --message.handler.args, --consumer.rebalance.listener
  (or --rebalance.listener), --rebalance.listener.args.
--new.consumer is accepted and ignored.";

/// The example from the HDInsight guide.
const EXAMPLE: &str = "\
Example (the HDInsight MirrorMaker guide's command, with only the command name changed):
  kmirror --consumer.config consumer.properties --producer.config producer.properties \\
      --whitelist testtopic --num.streams 4

Moving consumer groups to the destination (exact offsets, from the offset map the mirror keeps):
  kmirror offsets translate|sync ...   kmirror cutover ...   (see kmirror cutover --help)";

/// The keys read from the two files, for `--help`.
const KEYS: &str = "\
Keys read from --consumer.config (the source cluster):
  bootstrap.servers or zookeeper.connect, group.id (required),
  auto.offset.reset (earliest, the default, | latest | none; MirrorMaker 1 used latest),
  isolation.level (read_committed, the default, | read_uncommitted), fetch.max.bytes,
  max.partition.fetch.bytes, fetch.max.wait.ms, fetch.min.bytes, check.crcs,
  the group's: partition.assignment.strategy (range,cooperative-sticky by default |
  roundrobin), session.timeout.ms, heartbeat.interval.ms, max.poll.interval.ms,
  group.instance.id (static membership), group.protocol (classic | consumer, KIP-848),
  group.remote.assignor,
  and the connection keys (client.id, security.protocol, ssl.*, sasl.*, timeouts).
Keys read from --producer.config (the destination cluster):
  bootstrap.servers, acks (all, the default, | 1, without idempotence; 0 is refused),
  compression.type (none | gzip |
  snappy | lz4 | zstd; leave it out to keep each batch's codec), compression.gzip.level,
  compression.lz4.level, compression.zstd.level, batch.size (slow-path batches),
  buffer.memory (default 64 MiB), delivery.timeout.ms (default: retry for ever),
  max.in.flight.requests.per.connection (at most 5), enable.idempotence (on with acks=all),
  retries (resends of a failed batch, default for ever; out of retries kmirror stops,
  never skips), max.request.size, replication.factor (of topics kmirror creates; default
  the destination's), and the connection keys. linger.ms is accepted and ignored (with a
  warning when set): kmirror sends each fetched batch at once.
Environment: RUST_LOG=kmirror=debug,kmirror_pool=trace sets the log levels per module
  (overrides -v).";

/// `kmirror`'s command line. Field docs are the `--help` texts.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "kmirror",
    version,
    about = "Copies Kafka topics from a source cluster to a destination cluster: a drop-in \
             for Apache Kafka's MirrorMaker 1, with the same flags and .properties files.",
    after_help = format!("{EXAMPLE}\n\n{NOT_SUPPORTED}\n\n{EXIT_CODES}"),
    after_long_help = format!("{EXAMPLE}\n\n{KEYS}\n\n{NOT_SUPPORTED}\n\n{EXIT_CODES}"),
    disable_help_subcommand = true
)]
pub struct Args {
    /// The consumer's .properties file: how to reach the source cluster
    /// (bootstrap.servers or zookeeper.connect) and the group.id whose
    /// offsets kmirror commits there.
    #[arg(long = "consumer.config", value_name = "FILE", required = true)]
    pub consumer_config: PathBuf,

    /// The producer's .properties file: how to reach the destination
    /// cluster (bootstrap.servers) and how to write to it.
    #[arg(long = "producer.config", value_name = "FILE", required = true)]
    pub producer_config: PathBuf,

    /// The topics to mirror: a regular expression matched against whole
    /// topic names, ',' separating alternatives (e.g. testtopic, or
    /// 'orders.*,payments'). Internal topics (__*) are never mirrored.
    #[arg(long = "whitelist", visible_alias = "include", value_name = "PATTERN")]
    pub whitelist: Option<String>,

    /// Topics not to mirror even if --whitelist selects them; same syntax.
    #[arg(long = "blacklist", visible_alias = "exclude", value_name = "PATTERN")]
    pub blacklist: Option<String>,

    /// Parallel fetch/produce pipelines (MirrorMaker's consumer threads).
    #[arg(
        long = "num.streams",
        value_name = "N",
        default_value_t = 1,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub num_streams: u16,

    /// How often the source offsets of records the destination has
    /// acknowledged are committed to group.id, in milliseconds (also on
    /// stop).
    #[arg(
        long = "offset.commit.interval.ms",
        value_name = "MS",
        default_value_t = 60_000,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(u64).range(1..=2_147_483_647)
    )]
    pub offset_commit_interval_ms: u64,

    /// true: a send the destination refuses for good stops kmirror with
    /// exit code 1, after committing what was acknowledged; false: log,
    /// count and skip it. The bare flag means true.
    #[arg(
        long = "abort.on.send.failure",
        value_name = "true|false",
        num_args = 0..=1,
        default_value = "true",
        default_missing_value = "true",
        require_equals = false,
        action = ArgAction::Set,
        value_parser = parse_bool
    )]
    pub abort_on_send_failure: bool,

    /// Topics (a pattern like --whitelist's) whose records are placed by
    /// key with Java's partitioner even when source and destination have
    /// the same partition count (otherwise partition p goes to p and
    /// batches pass through).
    #[arg(long = "partition-by-key", value_name = "PATTERN")]
    pub partition_by_key: Option<String>,

    /// Slow-path rebuilds (decode, re-batch, compress) each stream runs at
    /// once on worker threads; 0 rebuilds inline. Default: the number of
    /// CPUs.
    #[arg(
        long = "slow-path-threads",
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(0..=256)
    )]
    pub slow_path_threads: Option<u16>,

    /// Migration mode: mirror up to the high-water marks seen at start,
    /// commit, and exit 0.
    #[arg(long = "once")]
    pub once: bool,

    /// Log at DEBUG level instead of INFO (RUST_LOG, if set, takes
    /// precedence, e.g. RUST_LOG=kmirror=debug,kmirror_pool=trace).
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// The log lines' format on stderr: text, or json (one object per
    /// line: time, level, target, message, fields).
    #[arg(
        long = "log.format",
        value_name = "text|json",
        default_value = "text",
        value_parser = parse_log_format
    )]
    pub log_format: LogFormat,

    /// Serve Prometheus metrics on http://ADDR/metrics, and /health and
    /// /ready for systemd and load balancers (e.g. 0.0.0.0:9464). Off by
    /// default.
    #[arg(long = "metrics.listen", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// false: leave out the per-partition series (lag, offsets) of
    /// /metrics, for sources with many thousands of partitions; totals
    /// and per-topic series stay.
    #[arg(
        long = "metrics.partitions",
        value_name = "true|false",
        default_value = "true",
        action = ArgAction::Set,
        value_parser = parse_bool
    )]
    pub metrics_partitions: bool,

    /// /ready answers 503 once a partition with records to move has had
    /// nothing acknowledged by the destination for this long, in
    /// milliseconds.
    #[arg(
        long = "ready.stall.ms",
        value_name = "MS",
        default_value_t = 60_000,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(u64).range(1..=86_400_000)
    )]
    pub ready_stall_ms: u64,

    /// Keep the offset map on the destination: where every source record
    /// landed, written before each commit, so that consumer groups can
    /// move to the destination without losing or repeating a record
    /// (`kmirror offsets translate|sync`, `kmirror cutover`). false: no
    /// map.
    #[arg(
        long = "offset.map",
        value_name = "true|false",
        default_value = "true",
        action = ArgAction::Set,
        value_parser = parse_bool
    )]
    pub offset_map: bool,

    /// The source cluster's name in the translation topics' names
    /// (kmirror-offset-map.ALIAS.internal, and MirrorMaker 2's
    /// ALIAS.checkpoints.internal); give each mirror into one destination
    /// its own.
    #[arg(
        long = "source.alias",
        value_name = "ALIAS",
        default_value = "source",
        value_parser = parse_alias
    )]
    pub source_alias: String,

    /// While mirroring, translate the source offsets of the consumer
    /// groups matching PATTERN (a regular expression over whole group
    /// names) every --sync.group.offsets.interval.ms: record them as
    /// MirrorMaker 2 checkpoints, and commit them to the same groups on
    /// the destination while those have no members there (never moving
    /// an offset back), as MirrorMaker 2's sync.group.offsets.enabled does
    /// but exactly.
    #[arg(long = "sync.group.offsets", value_name = "PATTERN")]
    pub sync_group_offsets: Option<String>,

    /// How often --sync.group.offsets runs, in milliseconds.
    #[arg(
        long = "sync.group.offsets.interval.ms",
        value_name = "MS",
        default_value_t = 60_000,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(u64).range(1_000..=86_400_000)
    )]
    pub sync_group_offsets_interval_ms: u64,

    /// MirrorMaker's switch to the Java consumer: accepted and ignored
    /// (kmirror always speaks the Kafka protocol itself).
    #[arg(long = "new.consumer", hide = true)]
    pub new_consumer: bool,

    /// MirrorMaker's message handler class: refused.
    #[arg(long = "message.handler", value_name = "CLASS", hide = true)]
    pub message_handler: Option<String>,

    /// MirrorMaker's message handler arguments: refused.
    #[arg(
        long = "message.handler.args",
        value_name = "ARGS",
        hide = true,
        allow_hyphen_values = true
    )]
    pub message_handler_args: Option<String>,

    /// MirrorMaker's rebalance listener class: refused.
    #[arg(
        long = "consumer.rebalance.listener",
        value_name = "CLASS",
        hide = true
    )]
    pub consumer_rebalance_listener: Option<String>,

    /// The same, as some MirrorMaker documentation spells it: refused.
    #[arg(long = "rebalance.listener", value_name = "CLASS", hide = true)]
    pub rebalance_listener: Option<String>,

    /// MirrorMaker's rebalance listener arguments: refused.
    #[arg(
        long = "rebalance.listener.args",
        value_name = "ARGS",
        hide = true,
        allow_hyphen_values = true
    )]
    pub rebalance_listener_args: Option<String>,
}

/// The log lines' format (`--log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `text` or `json`, in any case.
fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected text or json".to_owned()),
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Mirror with these arguments.
    Run(Box<Args>),
    /// Print this text on stdout and exit 0 (`--help`, `--version`).
    Print(String),
}

/// The flags `--help` shows, for "did you mean" suggestions.
const KNOWN_FLAGS: &[&str] = &[
    "--consumer.config",
    "--producer.config",
    "--whitelist",
    "--include",
    "--blacklist",
    "--exclude",
    "--num.streams",
    "--offset.commit.interval.ms",
    "--abort.on.send.failure",
    "--partition-by-key",
    "--slow-path-threads",
    "--once",
    "--verbose",
    "--log.format",
    "--metrics.listen",
    "--metrics.partitions",
    "--ready.stall.ms",
    "--offset.map",
    "--source.alias",
    "--sync.group.offsets",
    "--sync.group.offsets.interval.ms",
    "--help",
    "--version",
];

/// Parses the command line (`argv[0]` first, as `std::env::args_os`
/// gives it).
///
/// # Errors
///
/// A usage error ([`Exit::Usage`]) in one paragraph for anything clap
/// refuses: an unknown flag (with the nearest known flag if there is one), a
/// missing `--consumer.config`/`--producer.config`, a bad value, a flag
/// given twice.
pub fn parse<I, T>(argv: I) -> Result<Invocation, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Args::try_parse_from(argv) {
        Ok(args) => Ok(Invocation::Run(Box::new(args))),
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                Ok(Invocation::Print(e.render().to_string()))
            }
            _ => Err(usage_error(&e)),
        },
    }
}

/// A source alias: the characters Kafka allows in a topic name (it
/// becomes part of two).
pub fn parse_alias(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty()
        || value.len() > 200
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(
            "expected 1 to 200 of the characters a topic name may have: letters, digits, '.', '_', '-'"
                .to_owned(),
        );
    }
    Ok(value.to_owned())
}

/// `true` or `false`, in any case.
fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// The tail every usage error ends with.
const HELP_HINT: &str = "run 'kmirror --help' for the flags";

/// Rewords a clap error as one paragraph with the fix.
fn usage_error(e: &clap::Error) -> CliError {
    let message = match e.kind() {
        ErrorKind::MissingRequiredArgument => missing_flags(e),
        ErrorKind::UnknownArgument => unknown_argument(e),
        _ => format!("{}; {HELP_HINT}", clap_summary(e)),
    };
    CliError::new(Exit::Usage, message)
}

/// clap's own message: its first line (without `error: `) and its tips,
/// joined into one sentence.
fn clap_summary(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let mut lines = rendered.lines().map(str::trim);
    let first = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("error:")
        .trim();
    let mut parts = vec![first.to_owned()];
    for tip in lines.filter_map(|l| l.strip_prefix("tip:")) {
        // The tip about `--` makes no sense for kmirror, which takes no
        // positional arguments.
        if !tip.contains("as a value") {
            parts.push(tip.trim().to_owned());
        }
    }
    parts.join("; ")
}

/// The message for missing `--consumer.config`/`--producer.config`.
fn missing_flags(e: &clap::Error) -> String {
    let missing: Vec<String> = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::Strings(args)) => args.clone(),
        Some(ContextValue::String(arg)) => vec![arg.clone()],
        _ => Vec::new(),
    };
    let mut fixes = Vec::new();
    for arg in &missing {
        if arg.starts_with("--consumer.config") {
            fixes.push(
                "--consumer.config FILE, the consumer .properties file for the source cluster \
                 (group.id, and bootstrap.servers or zookeeper.connect)",
            );
        } else if arg.starts_with("--producer.config") {
            fixes.push(
                "--producer.config FILE, the producer .properties file for the destination \
                 cluster (bootstrap.servers)",
            );
        }
    }
    if fixes.len() != missing.len() || fixes.is_empty() {
        return format!("{}; {HELP_HINT}", clap_summary(e));
    }
    format!(
        "missing {}; pass {}; e.g. kmirror --consumer.config consumer.properties \
         --producer.config producer.properties --whitelist testtopic",
        missing
            .iter()
            .map(|a| a.split_whitespace().next().unwrap_or(a))
            .collect::<Vec<_>>()
            .join(" and "),
        fixes.join(", and ")
    )
}

/// The message for an unknown flag or a stray word.
fn unknown_argument(e: &clap::Error) -> String {
    let summary = clap_summary(e);
    let typed = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.clone(),
        _ => String::new(),
    };
    if typed.starts_with('-') {
        let name = typed.split('=').next().unwrap_or(&typed);
        match nearest_flag(name) {
            Some(flag) => format!(
                "{summary}; did you mean {flag}? (MirrorMaker's flags are spelled with dots); \
                 {HELP_HINT}"
            ),
            None => format!(
                "{summary}; kmirror takes MirrorMaker 1's flags (--consumer.config, \
                 --producer.config, --whitelist, --blacklist, --num.streams, \
                 --offset.commit.interval.ms, --abort.on.send.failure), its own \
                 (--once, --partition-by-key, --slow-path-threads, --log.format, \
                 --metrics.listen, --metrics.partitions, --ready.stall.ms) and -v; {HELP_HINT}"
            ),
        }
    } else {
        format!(
            "{summary}; kmirror takes no positional arguments: each value follows its flag, e.g. \
             --whitelist testtopic (quote patterns with spaces or shell characters); {HELP_HINT}"
        )
    }
}

/// The known flag nearest to `typed`: the same once `-`/`_` are read as
/// `.` and case is ignored, or within two edits of it.
fn nearest_flag(typed: &str) -> Option<&'static str> {
    let normalize = |s: &str| -> Vec<char> {
        s.trim_start_matches('-')
            .chars()
            .map(|c| match c {
                '-' | '_' => '.',
                c => c.to_ascii_lowercase(),
            })
            .collect()
    };
    let wanted = normalize(typed);
    if wanted.is_empty() || wanted.len() > 64 {
        return None;
    }
    KNOWN_FLAGS
        .iter()
        .map(|flag| (edit_distance(&wanted, &normalize(flag)), *flag))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, flag)| flag)
}

/// Levenshtein distance.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev
                .get(j)
                .map_or(usize::MAX, |d| d + usize::from(ca != cb));
            let deletion = prev.get(j + 1).map_or(usize::MAX, |d| d + 1);
            let insertion = cur.get(j).map_or(usize::MAX, |d| d + 1);
            cur.push(substitution.min(deletion).min(insertion));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE: &[&str] = &[
        "kmirror",
        "--consumer.config",
        "consumer.properties",
        "--producer.config",
        "producer.properties",
        "--whitelist",
        "testtopic",
        "--num.streams",
        "4",
    ];

    fn run(argv: &[&str]) -> Args {
        match parse(argv) {
            Ok(Invocation::Run(args)) => *args,
            other => panic!("{argv:?}: {other:?}"),
        }
    }

    fn usage(argv: &[&str]) -> String {
        match parse(argv) {
            Err(e) => {
                assert_eq!(e.exit(), Exit::Usage, "{e}");
                assert!(!e.message().contains('\n'), "{e}");
                e.message().to_owned()
            }
            other => panic!("{argv:?}: {other:?}"),
        }
    }

    fn with(extra: &[&'static str]) -> Vec<&'static str> {
        let mut argv = GUIDE.to_vec();
        argv.extend_from_slice(extra);
        argv
    }

    #[test]
    fn the_guides_command_line() {
        let args = run(GUIDE);
        assert_eq!(args.consumer_config, PathBuf::from("consumer.properties"));
        assert_eq!(args.producer_config, PathBuf::from("producer.properties"));
        assert_eq!(args.whitelist.as_deref(), Some("testtopic"));
        assert_eq!(args.blacklist, None);
        assert_eq!(args.num_streams, 4);
        assert_eq!(args.offset_commit_interval_ms, 60_000);
        assert!(args.abort_on_send_failure);
        assert!(!args.once);
        assert!(!args.verbose);
        assert!(!args.new_consumer);
        assert_eq!(args.message_handler, None);
    }

    #[test]
    fn defaults() {
        let args = run(&[
            "kmirror",
            "--consumer.config",
            "c",
            "--producer.config",
            "p",
        ]);
        assert_eq!(args.num_streams, 1);
        assert_eq!(args.offset_commit_interval_ms, 60_000);
        assert!(args.abort_on_send_failure);
        assert_eq!(args.whitelist, None);
    }

    #[test]
    fn aliases_and_equals_signs() {
        let args = run(&[
            "kmirror",
            "--consumer.config=c",
            "--producer.config=p",
            "--include",
            "a,b",
            "--exclude=b",
            "--offset.commit.interval.ms",
            "1000",
            "--once",
            "-v",
        ]);
        assert_eq!(args.whitelist.as_deref(), Some("a,b"));
        assert_eq!(args.blacklist.as_deref(), Some("b"));
        assert_eq!(args.offset_commit_interval_ms, 1000);
        assert!(args.once);
        assert!(args.verbose);
    }

    #[test]
    fn abort_on_send_failure_takes_true_false_or_nothing() {
        for (extra, expected) in [
            (&["--abort.on.send.failure", "false"][..], false),
            (&["--abort.on.send.failure=FALSE"][..], false),
            (&["--abort.on.send.failure", "true"][..], true),
            (&["--abort.on.send.failure"][..], true),
            (&["--abort.on.send.failure", "--once"][..], true),
        ] {
            assert_eq!(
                run(&with(extra)).abort_on_send_failure,
                expected,
                "{extra:?}"
            );
        }
        let msg = usage(&with(&["--abort.on.send.failure", "yes"]));
        assert!(msg.contains("'yes'"), "{msg}");
        assert!(msg.contains("expected true or false"), "{msg}");
    }

    #[test]
    fn num_streams_range() {
        let guide_with_streams = |n: &'static str| {
            let mut argv = GUIDE.to_vec();
            argv.truncate(7);
            argv.extend(["--num.streams", n]);
            argv
        };
        assert_eq!(run(&guide_with_streams("1024")).num_streams, 1024);
        for bad in ["0", "1025", "-1", "four"] {
            let argv = guide_with_streams(bad);
            let msg = usage(&argv);
            assert!(
                msg.starts_with(&format!("invalid value '{bad}' for '--num.streams <N>': ")),
                "{msg}"
            );
            assert!(msg.ends_with(HELP_HINT), "{msg}");
        }
    }

    #[test]
    fn offset_commit_interval_range() {
        let msg = usage(&with(&["--offset.commit.interval.ms", "0"]));
        assert!(msg.contains("--offset.commit.interval.ms"), "{msg}");
        assert!(msg.contains("1..=2147483647"), "{msg}");
    }

    #[test]
    fn refused_flags_are_accepted_by_the_parser() {
        let args = run(&with(&[
            "--message.handler",
            "com.example.Handler",
            "--message.handler.args",
            "-x",
            "--consumer.rebalance.listener",
            "L",
            "--rebalance.listener",
            "L",
            "--rebalance.listener.args",
            "a",
            "--new.consumer",
        ]));
        assert_eq!(args.message_handler.as_deref(), Some("com.example.Handler"));
        assert_eq!(args.message_handler_args.as_deref(), Some("-x"));
        assert!(args.new_consumer);
    }

    #[test]
    fn missing_files_name_both_flags_and_the_fix() {
        let msg = usage(&["kmirror", "--whitelist", "testtopic"]);
        assert!(
            msg.starts_with("missing --consumer.config and --producer.config; pass "),
            "{msg}"
        );
        assert!(msg.contains("group.id"), "{msg}");
        let msg = usage(&["kmirror", "--consumer.config", "c"]);
        assert!(msg.starts_with("missing --producer.config; pass --producer.config FILE"));
    }

    #[test]
    fn unknown_flags_suggest_the_dotted_spelling() {
        let msg = usage(&with(&["--num-streams", "4"]));
        assert!(
            msg.starts_with(
                "unexpected argument '--num-streams' found; did you mean --num.streams?"
            ),
            "{msg}"
        );
        let msg = usage(&[
            "kmirror",
            "--consumer-config",
            "c",
            "--producer.config",
            "p",
        ]);
        assert!(msg.contains("did you mean --consumer.config?"), "{msg}");
        let msg = usage(&with(&["--whitelst=x"]));
        assert!(msg.contains("did you mean --whitelist?"), "{msg}");
        let msg = usage(&with(&["--frobnicate"]));
        assert!(
            msg.starts_with("unexpected argument '--frobnicate' found; kmirror takes MirrorMaker"),
            "{msg}"
        );
        for own in [
            "--partition-by-key",
            "--slow-path-threads",
            "--metrics.listen",
        ] {
            assert!(msg.contains(own), "{own} in {msg}");
        }
        let msg = usage(&with(&["--slow-path-thread", "2"]));
        assert!(msg.contains("did you mean --slow-path-threads?"), "{msg}");
        let msg = usage(&with(&["--metrics-listen", "0.0.0.0:9464"]));
        assert!(msg.contains("did you mean --metrics.listen?"), "{msg}");
        assert!(!msg.contains("-- --frobnicate"), "{msg}");
    }

    #[test]
    fn stray_words_are_explained() {
        let msg = usage(&with(&["othertopic"]));
        assert!(msg.contains("'othertopic'"), "{msg}");
        assert!(msg.contains("no positional arguments"), "{msg}");
    }

    #[test]
    fn a_flag_given_twice_or_without_value() {
        let msg = usage(&with(&["--whitelist", "again"]));
        assert!(msg.contains("--whitelist"), "{msg}");
        assert!(msg.contains("cannot be used multiple times"), "{msg}");
        let msg = usage(&["kmirror", "--producer.config", "p", "--consumer.config"]);
        assert!(
            msg.contains("a value is required for '--consumer.config"),
            "{msg}"
        );
    }

    #[test]
    fn help_and_version_are_printed_not_errors() {
        let Ok(Invocation::Print(help)) = parse(["kmirror", "--help"]) else {
            panic!("--help")
        };
        for needle in [
            "--consumer.config <FILE>",
            "--whitelist <PATTERN>",
            "[alias: --include]",
            "--num.streams <N>",
            "--once",
            "Exit codes:",
            "70  internal error",
            "130 a second Ctrl+C",
            "replication.factor",
            "--metrics.listen <ADDR>",
            "--log.format <text|json>",
            "auto.offset.reset",
            "--message.handler",
        ] {
            assert!(help.contains(needle), "{needle} in:\n{help}");
        }
        assert!(!help.contains("--message.handler <CLASS>"), "{help}");
        let Ok(Invocation::Print(short)) = parse(["kmirror", "-h"]) else {
            panic!("-h")
        };
        assert!(short.contains("Exit codes:"), "{short}");
        let Ok(Invocation::Print(version)) = parse(["kmirror", "--version"]) else {
            panic!("--version")
        };
        assert_eq!(
            version.trim(),
            format!("kmirror {}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn operations_flags() {
        let args = run(&with(&[
            "--metrics.listen",
            "127.0.0.1:9464",
            "--metrics.partitions",
            "false",
            "--ready.stall.ms",
            "5000",
            "--log.format",
            "JSON",
        ]));
        assert_eq!(args.metrics_listen, Some(([127, 0, 0, 1], 9464).into()));
        assert!(!args.metrics_partitions);
        assert_eq!(args.ready_stall_ms, 5000);
        assert_eq!(args.log_format, LogFormat::Json);
        let defaults = run(GUIDE);
        assert_eq!(defaults.metrics_listen, None);
        assert!(defaults.metrics_partitions);
        assert_eq!(defaults.log_format, LogFormat::Text);
        let msg = usage(&with(&["--metrics.listen", "9464"]));
        assert!(msg.contains("'9464'"), "{msg}");
        let msg = usage(&with(&["--log.format", "xml"]));
        assert!(msg.contains("expected text or json"), "{msg}");
    }

    #[test]
    fn nearest_flags() {
        assert_eq!(nearest_flag("--consumer_config"), Some("--consumer.config"));
        assert_eq!(nearest_flag("--Consumer.Config"), Some("--consumer.config"));
        assert_eq!(nearest_flag("--numstreams"), Some("--num.streams"));
        assert_eq!(nearest_flag("--topic"), None);
        assert_eq!(nearest_flag("--"), None);
        assert_eq!(nearest_flag(&"-x".repeat(100)), None);
    }

    #[test]
    fn the_command_definition_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
