//! From the command line and the two `.properties` files to typed
//! [`MirrorSettings`].
//!
//! This module owns the meaning of the engine's keys in the consumer and
//! producer files ([`CONSUMER_KEYS`], [`PRODUCER_KEYS`]: the keys kmirror
//! honours beyond the connection keys that
//! [`ClientConfig`] reads), their defaults, their
//! checks, and the refusal of MirrorMaker flags that load Java code. Every
//! mistake is a [`SettingsError`] naming the file, key, value and what is
//! allowed. It never opens a socket and never logs itself: what the user
//! should know about accepted settings comes back as [`Notice`]s for the
//! binary to log (the connection layer logs unknown keys on its own).
//!
//! # Consumer keys (`--consumer.config`, the source)
//!
//! | key | default | allowed |
//! | --- | ------- | ------- |
//! | `group.id` | (required) | the consumer group whose offsets kmirror commits on the source |
//! | `auto.offset.reset` | `earliest` | `earliest`, `latest`, `none` (and the old consumer's `smallest`, `largest`). **MirrorMaker 1 used `latest`**: kmirror follows MirrorMaker 2 and copies what is already there |
//! | `isolation.level` | `read_committed` | `read_committed`, `read_uncommitted` |
//! | `fetch.max.bytes` | 52428800 | 0..=2147483647 |
//! | `max.partition.fetch.bytes` | 1048576 | 0..=2147483647 |
//! | `fetch.max.wait.ms` | 500 | 0..=2147483647 |
//! | `fetch.min.bytes` | 1 | 0..=2147483647 |
//! | `check.crcs` | `true` | `true`, `false` |
//!
//! # Producer keys (`--producer.config`, the destination)
//!
//! | key | default | allowed |
//! | --- | ------- | ------- |
//! | `acks` | `all` | `all` (or `-1`), `1` (without idempotence, with a warning); `0` is refused |
//! | `compression.type` | keep each batch's codec | `none`, `gzip`, `snappy`, `lz4`, `zstd`; `producer` or no line keeps each batch's codec (passthrough) |
//! | `compression.gzip.level` | 6 | 1..=9, or -1 |
//! | `compression.lz4.level` | 9 | 1..=17 |
//! | `compression.zstd.level` | 3 | -131072..=22 |
//! | `batch.size` | 16384 | 0..=2147483647 |
//! | `linger.ms` | 5 | 0..=2147483647; ignored with a warning (kmirror sends each fetched batch at once) |
//! | `buffer.memory` | 67108864 (64 MiB) | 1048576..=9223372036854775807 |
//! | `delivery.timeout.ms` | retry for ever | at least `linger.ms` + `request.timeout.ms` |
//! | `max.in.flight.requests.per.connection` | 5 | 1..=5 |
//! | `enable.idempotence` | `true` | `true`; `false` is ignored with a warning (`acks=1` mirrors without idempotence) |
//! | `retries` | 2147483647 (for ever) | 0..=2147483647: resends of a batch that failed retriably; out of retries kmirror stops (exit 1), never skips the batch |
//! | `max.request.size` | 1048576 | 1..=2147483647 |
//! | `replication.factor` | the destination's default (CreateTopics v4+), else 3 capped at the broker count | 1..=32767, or -1 for the destination's default |
//!
//! Values are trimmed; names of choices are case-insensitive.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kmirror::selection::{PatternFlag, SelectionError, TopicPattern, TopicSelector};
use kmirror::{Assignor, GroupConfig, GroupProtocol};
use kmirror_pool::config::{ClientConfig, ConfigError, Properties};
use kmirror_protocol::Compression;

use crate::args::Args;
use crate::exit::{CliError, Exit};

/// The consumer keys kmirror honours besides the connection keys (see the
/// [module documentation](self)).
pub const CONSUMER_KEYS: &[&str] = &[
    "group.id",
    "auto.offset.reset",
    "isolation.level",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.max.wait.ms",
    "fetch.min.bytes",
    "check.crcs",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "group.instance.id",
    "group.protocol",
    "group.remote.assignor",
];

/// The producer keys kmirror honours besides the connection keys (see the
/// [module documentation](self)).
pub const PRODUCER_KEYS: &[&str] = &[
    "acks",
    "compression.type",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "batch.size",
    "linger.ms",
    "buffer.memory",
    "delivery.timeout.ms",
    "max.in.flight.requests.per.connection",
    "enable.idempotence",
    "retries",
    "max.request.size",
    "replication.factor",
];

/// Everything a mirror run needs, checked.
#[derive(Debug, Clone)]
pub struct MirrorSettings {
    /// How to reach the source cluster (`--consumer.config`).
    pub source: ClientConfig,
    /// How to reach the destination cluster (`--producer.config`).
    pub destination: ClientConfig,
    /// Which source topics are mirrored (`--whitelist`, `--blacklist`).
    pub selector: TopicSelector,
    /// The engine's consumer settings.
    pub consumer: ConsumerSettings,
    /// The engine's producer settings.
    pub producer: ProducerSettings,
    /// The settings from command-line flags.
    pub run: RunSettings,
    /// The consumer file's path, as given.
    pub consumer_file: PathBuf,
    /// The producer file's path, as given.
    pub producer_file: PathBuf,
    /// What the user should be told about the accepted settings, in order.
    pub notices: Vec<Notice>,
}

/// Where a partition without a committed offset starts
/// (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AutoOffsetReset {
    /// At the log start offset (the default, as in MirrorMaker 2).
    #[default]
    Earliest,
    /// At the high-water mark (MirrorMaker 1's default).
    Latest,
    /// Nowhere: kmirror stops with an error.
    None,
}

/// Which records a fetch returns (`isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IsolationLevel {
    /// Only committed transactional records, up to the last stable offset
    /// (the default).
    #[default]
    ReadCommitted,
    /// Everything up to the high-water mark, aborted transactions included.
    ReadUncommitted,
}

impl IsolationLevel {
    /// The value of the Fetch request's `isolation_level` field.
    pub fn wire_value(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// How many replicas acknowledge a write (`acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Acks {
    /// All in-sync replicas (`all`, `-1`; the default).
    #[default]
    All,
    /// The leader only (`1`): kmirror then mirrors without idempotence.
    /// (`0`, no acknowledgement, is refused: kmirror commits only what the
    /// destination acknowledged.)
    Leader,
}

impl Acks {
    /// The value of the Produce request's `acks` field.
    pub fn wire_value(self) -> i16 {
        match self {
            Acks::All => -1,
            Acks::Leader => 1,
        }
    }
}

/// The engine's consumer settings (`--consumer.config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// The group whose offsets kmirror commits on the source (`group.id`).
    pub group_id: String,
    /// Where partitions without a committed offset start.
    pub auto_offset_reset: AutoOffsetReset,
    /// Which records fetches return.
    pub isolation_level: IsolationLevel,
    /// Most bytes per Fetch response (`fetch.max.bytes`), at most
    /// `i32::MAX`.
    pub fetch_max_bytes: u32,
    /// Most bytes per partition in a Fetch response
    /// (`max.partition.fetch.bytes`), at most `i32::MAX`.
    pub max_partition_fetch_bytes: u32,
    /// Longest wait of a Fetch for `fetch_min_bytes` (`fetch.max.wait.ms`).
    pub fetch_max_wait: Duration,
    /// Fewest bytes a Fetch waits for (`fetch.min.bytes`), at most
    /// `i32::MAX`.
    pub fetch_min_bytes: u32,
    /// Whether record batch CRCs are checked on the slow path
    /// (`check.crcs`).
    pub check_crcs: bool,
    /// The membership in the group: assignors, timeouts, static
    /// membership, protocol.
    pub membership: GroupConfig,
}

/// The compression levels for the codecs that have them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompressionLevels {
    /// `compression.gzip.level`; `None` for the codec's default.
    pub gzip: Option<i32>,
    /// `compression.lz4.level`; `None` for the codec's default.
    pub lz4: Option<i32>,
    /// `compression.zstd.level`; `None` for the codec's default.
    pub zstd: Option<i32>,
}

impl CompressionLevels {
    /// The level to compress `codec` with (`None`: the codec's default, or a
    /// codec without levels).
    pub fn for_codec(&self, codec: Compression) -> Option<i32> {
        match codec {
            Compression::Gzip => self.gzip,
            Compression::Lz4 => self.lz4,
            Compression::Zstd => self.zstd,
            Compression::None | Compression::Snappy => None,
        }
    }
}

/// The engine's producer settings (`--producer.config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSettings {
    /// How many replicas acknowledge a write.
    pub acks: Acks,
    /// The destination's codec; `None` keeps each batch's codec, so that
    /// batches pass through unchanged (`compression.type` absent or
    /// `producer`).
    pub compression: Option<Compression>,
    /// Compression levels.
    pub compression_levels: CompressionLevels,
    /// Target size of a batch built on the slow path (`batch.size`), at
    /// most `i32::MAX`.
    pub batch_size: u32,
    /// How long the slow path waits to fill a batch (`linger.ms`).
    pub linger: Duration,
    /// Bytes fetched but not yet acknowledged by the destination
    /// (`buffer.memory`); fetching pauses when they reach it.
    pub buffer_memory: u64,
    /// How long a record may take to be acknowledged, retries included
    /// (`delivery.timeout.ms`); `None`: retry for ever (MirrorMaker 1 set
    /// it to the maximum too).
    pub delivery_timeout: Option<Duration>,
    /// Produce requests in flight per destination broker, 1..=5
    /// (`max.in.flight.requests.per.connection`).
    pub max_in_flight: u8,
    /// How often a failed send is retried within the delivery timeout
    /// (`retries`), at most `i32::MAX` (which means for ever).
    pub retries: u32,
    /// Largest Produce request (`max.request.size`), 1..=`i32::MAX`.
    pub max_request_size: u32,
    /// The replication factor of destination topics kmirror creates
    /// (`replication.factor`, as MirrorMaker 2 names it); `None`: the
    /// destination's default.
    pub replication_factor: Option<i16>,
}

/// The settings from command-line flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSettings {
    /// Parallel fetch/produce pipelines (`--num.streams`, 1..=1024).
    pub num_streams: u16,
    /// How often offsets are committed (`--offset.commit.interval.ms`).
    pub offset_commit_interval: Duration,
    /// Whether a send that fails for good stops the mirror
    /// (`--abort.on.send.failure`).
    pub abort_on_send_failure: bool,
    /// Stop at the high-water marks seen at start (`--once`).
    pub once: bool,
    /// Topics placed by key even with equal partition counts
    /// (`--partition-by-key`).
    pub partition_by_key: Option<TopicPattern>,
    /// Slow-path worker threads per stream (`--slow-path-threads`);
    /// `None`: the number of CPUs.
    pub slow_path_threads: Option<u16>,
    /// Where `/metrics`, `/health` and `/ready` are served
    /// (`--metrics.listen`); `None`: nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Whether `/metrics` has per-partition series
    /// (`--metrics.partitions`).
    pub metrics_partitions: bool,
    /// How long a partition may have records to move and nothing
    /// acknowledged before `/ready` says no (`--ready.stall.ms`).
    pub ready_stall: Duration,
    /// Whether the offset map is kept (`--offset.map`).
    pub offset_map: bool,
    /// The source cluster's alias (`--source.alias`).
    pub source_alias: String,
    /// Groups whose offsets are synced while mirroring
    /// (`--sync.group.offsets`), and how often.
    pub sync_group_offsets: Option<(String, Duration)>,
}

/// How loud a [`Notice`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeLevel {
    /// Worth knowing.
    Info,
    /// Probably not what the user meant.
    Warn,
}

/// Something the user should know about accepted settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// How loud.
    pub level: NoticeLevel,
    /// What to say, one paragraph.
    pub text: String,
}

impl Notice {
    fn info(text: impl Into<String>) -> Self {
        Self {
            level: NoticeLevel::Info,
            text: text.into(),
        }
    }

    fn warn(text: impl Into<String>) -> Self {
        Self {
            level: NoticeLevel::Warn,
            text: text.into(),
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why the settings were refused.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum SettingsError {
    /// A command-line mistake: a missing `--whitelist`, a refused
    /// MirrorMaker flag.
    Usage(String),
    /// A configuration file cannot be read or has a bad value.
    Config {
        /// The file's path.
        file: String,
        /// What is wrong.
        error: ConfigError,
    },
    /// `--whitelist` or `--blacklist` is not a usable pattern.
    Selection(SelectionError),
}

impl SettingsError {
    /// The exit code: [`Exit::Usage`] for command-line mistakes,
    /// [`Exit::Config`] for files and patterns.
    pub fn exit(&self) -> Exit {
        match self {
            SettingsError::Usage(_) => Exit::Usage,
            SettingsError::Config { .. } | SettingsError::Selection(_) => Exit::Config,
        }
    }

    fn invalid(file: &str, key: &str, value: &str, allowed: impl Into<String>) -> Self {
        SettingsError::Config {
            file: file.to_owned(),
            error: ConfigError::InvalidValue {
                key: key.to_owned(),
                value: value.to_owned(),
                allowed: allowed.into(),
            },
        }
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::Usage(message) => f.write_str(message),
            // These name the file themselves.
            SettingsError::Config {
                error: error @ (ConfigError::Read { .. } | ConfigError::Syntax { .. }),
                ..
            } => write!(f, "{error}"),
            SettingsError::Config { file, error } => write!(f, "{file}: {error}"),
            SettingsError::Selection(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for SettingsError {}

impl From<SettingsError> for CliError {
    fn from(e: SettingsError) -> Self {
        CliError::new(e.exit(), e.to_string())
    }
}

/// The settings that come from flags alone.
struct FlagSettings {
    selector: TopicSelector,
    run: RunSettings,
    notices: Vec<Notice>,
}

impl MirrorSettings {
    /// Checks the flags, reads both files and checks them.
    ///
    /// # Errors
    ///
    /// In this order: a refused flag or a missing `--whitelist`
    /// ([`SettingsError::Usage`]); a bad pattern
    /// ([`SettingsError::Selection`]); an unreadable or bad consumer file,
    /// then producer file ([`SettingsError::Config`]).
    pub fn load(args: &Args) -> Result<Self, SettingsError> {
        let flags = FlagSettings::from_args(args)?;
        let consumer = read(
            &args.consumer_config,
            "consumer config",
            "--consumer.config",
        )?;
        let producer = read(
            &args.producer_config,
            "producer config",
            "--producer.config",
        )?;
        Self::assemble(args, flags, &consumer, &producer)
    }

    /// Like [`MirrorSettings::load`] with the files' contents given.
    ///
    /// # Errors
    ///
    /// As [`MirrorSettings::load`], except that nothing is read.
    pub fn from_properties(
        args: &Args,
        consumer: &Properties,
        producer: &Properties,
    ) -> Result<Self, SettingsError> {
        let flags = FlagSettings::from_args(args)?;
        Self::assemble(args, flags, consumer, producer)
    }

    fn assemble(
        args: &Args,
        flags: FlagSettings,
        consumer_props: &Properties,
        producer_props: &Properties,
    ) -> Result<Self, SettingsError> {
        let FlagSettings {
            selector,
            run,
            mut notices,
        } = flags;
        let source = client_config(consumer_props, CONSUMER_KEYS)?;
        let consumer = read_consumer(consumer_props, &source, &mut notices)?;
        let destination = client_config(producer_props, PRODUCER_KEYS)?;
        let producer = read_producer(producer_props, &destination, &mut notices)?;
        Ok(Self {
            source,
            destination,
            selector,
            consumer,
            producer,
            run,
            consumer_file: args.consumer_config.clone(),
            producer_file: args.producer_config.clone(),
            notices,
        })
    }
}

impl FlagSettings {
    fn from_args(args: &Args) -> Result<Self, SettingsError> {
        refuse_java_flags(args)?;
        let mut notices = Vec::new();
        if args.new_consumer {
            notices.push(Notice::info(
                "--new.consumer is ignored: kmirror always reads with the Kafka protocol's \
                 consumer API (the flag was a no-op in later MirrorMaker versions)",
            ));
        }
        let Some(include) = args.whitelist.as_deref() else {
            return Err(SettingsError::Usage(
                "pass --whitelist (or --include) with the topics to mirror, e.g. --whitelist \
                 testtopic, or --whitelist 'orders.*,payments' (a regular expression matched \
                 against whole topic names, ',' separating alternatives)"
                    .to_owned(),
            ));
        };
        let selector = TopicSelector::new(include, args.blacklist.as_deref())
            .map_err(SettingsError::Selection)?;
        let partition_by_key = match args.partition_by_key.as_deref() {
            Some(raw) => TopicPattern::parse(PatternFlag::PartitionByKey, raw)
                .map_err(SettingsError::Selection)?,
            None => None,
        };
        Ok(Self {
            selector,
            run: RunSettings {
                num_streams: args.num_streams,
                offset_commit_interval: Duration::from_millis(args.offset_commit_interval_ms),
                abort_on_send_failure: args.abort_on_send_failure,
                once: args.once,
                slow_path_threads: args.slow_path_threads,
                partition_by_key,
                metrics_listen: args.metrics_listen,
                metrics_partitions: args.metrics_partitions,
                ready_stall: Duration::from_millis(args.ready_stall_ms),
                offset_map: args.offset_map,
                source_alias: args.source_alias.clone(),
                sync_group_offsets: args.sync_group_offsets.clone().map(|p| {
                    (
                        p,
                        Duration::from_millis(args.sync_group_offsets_interval_ms),
                    )
                }),
            },
            notices,
        })
    }
}

/// Refuses MirrorMaker flags that load Java classes.
fn refuse_java_flags(args: &Args) -> Result<(), SettingsError> {
    let handler = [
        ("--message.handler", args.message_handler.is_some()),
        (
            "--message.handler.args",
            args.message_handler_args.is_some(),
        ),
    ];
    if let Some((flag, _)) = handler.iter().find(|(_, given)| *given) {
        return Err(SettingsError::Usage(format!(
            "{flag} is not supported by kmirror: MirrorMaker's message handlers run Java code; \
             kmirror copies records unchanged (topic, partition, key, value, headers, \
             timestamp); remove --message.handler and --message.handler.args from the command \
             line"
        )));
    }
    let listener = [
        (
            "--consumer.rebalance.listener",
            args.consumer_rebalance_listener.is_some(),
        ),
        ("--rebalance.listener", args.rebalance_listener.is_some()),
        (
            "--rebalance.listener.args",
            args.rebalance_listener_args.is_some(),
        ),
    ];
    if let Some((flag, _)) = listener.iter().find(|(_, given)| *given) {
        return Err(SettingsError::Usage(format!(
            "{flag} is not supported by kmirror: MirrorMaker's rebalance listeners run Java \
             code; kmirror assigns partitions itself and commits a source offset only after the \
             destination has acknowledged the records below it; remove the rebalance listener \
             flags from the command line"
        )));
    }
    Ok(())
}

/// Reads a file named on the command line.
fn read(path: &Path, what: &str, flag: &str) -> Result<Properties, SettingsError> {
    Properties::load_for(path, what, flag).map_err(|error| SettingsError::Config {
        file: path.display().to_string(),
        error,
    })
}

/// The connection settings of one file.
fn client_config(props: &Properties, keys: &[&str]) -> Result<ClientConfig, SettingsError> {
    ClientConfig::from_properties(props, keys)
        .map(|parsed| parsed.config)
        .map_err(|error| SettingsError::Config {
            file: props.source_name().to_owned(),
            error,
        })
}

/// The largest value of a Java `int` setting.
const INT_MAX: i64 = i32::MAX as i64;

/// Reads the engine's keys of one file, naming it in errors.
struct Reader<'a> {
    props: &'a Properties,
    file: &'a str,
}

impl<'a> Reader<'a> {
    fn new(props: &'a Properties) -> Self {
        Self {
            props,
            file: props.source_name(),
        }
    }

    /// The trimmed value of `key`, if set.
    fn value(&self, key: &str) -> Option<&'a str> {
        self.props.get(key).map(str::trim)
    }

    fn invalid(&self, key: &str, value: &str, allowed: impl Into<String>) -> SettingsError {
        SettingsError::invalid(self.file, key, value, allowed)
    }

    /// A whole number in `min..=max`, or `default` if `key` is absent.
    fn int(&self, key: &str, default: i64, min: i64, max: i64) -> Result<i64, SettingsError> {
        self.int_with(
            key,
            default,
            min,
            max,
            &format!("a whole number from {min} to {max}"),
        )
    }

    fn int_with(
        &self,
        key: &str,
        default: i64,
        min: i64,
        max: i64,
        allowed: &str,
    ) -> Result<i64, SettingsError> {
        let Some(value) = self.value(key) else {
            return Ok(default);
        };
        match value.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(
                key,
                value,
                format!("{allowed} (remove the line for the default, {default})"),
            )),
        }
    }

    /// An `int` count of bytes, `min..=i32::MAX`.
    fn bytes(&self, key: &str, default: u32, min: u32) -> Result<u32, SettingsError> {
        let n = self.int(key, i64::from(default), i64::from(min), INT_MAX)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Milliseconds, `0..=i32::MAX`.
    fn millis(&self, key: &str, default: u32) -> Result<Duration, SettingsError> {
        let n = self.int_with(
            key,
            i64::from(default),
            0,
            INT_MAX,
            &format!("a whole number of milliseconds from 0 to {INT_MAX}"),
        )?;
        Ok(Duration::from_millis(n.unsigned_abs()))
    }

    /// `true` or `false` (any case).
    fn bool(&self, key: &str, default: bool) -> Result<bool, SettingsError> {
        let Some(value) = self.value(key) else {
            return Ok(default);
        };
        match value.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(self.invalid(
                key,
                value,
                format!("true or false (remove the line for the default, {default})"),
            )),
        }
    }

    /// One of `choices` (any case), or `default` if `key` is absent.
    fn choice<T: Copy>(
        &self,
        key: &str,
        default: T,
        choices: &[(&str, T)],
        allowed: &str,
    ) -> Result<T, SettingsError> {
        let Some(value) = self.value(key) else {
            return Ok(default);
        };
        let lower = value.to_ascii_lowercase();
        choices
            .iter()
            .find(|(name, _)| *name == lower)
            .map(|(_, v)| *v)
            .ok_or_else(|| self.invalid(key, value, allowed))
    }
}

/// The consumer keys.
fn read_consumer(
    props: &Properties,
    source: &ClientConfig,
    notices: &mut Vec<Notice>,
) -> Result<ConsumerSettings, SettingsError> {
    let r = Reader::new(props);
    let file = r.file;
    let group_id = match r.value("group.id").filter(|g| !g.is_empty()) {
        Some(group) => group.to_owned(),
        None => {
            return Err(SettingsError::Config {
                file: file.to_owned(),
                error: ConfigError::Missing {
                    what: "group.id".to_owned(),
                    hint: format!(
                        "add group.id=... to {file}, the consumer group whose offsets kmirror \
                         commits (the HDInsight guide uses group.id=mirrorgroup)"
                    ),
                },
            });
        }
    };
    let auto_offset_reset = r.choice(
        "auto.offset.reset",
        AutoOffsetReset::Earliest,
        &[
            ("earliest", AutoOffsetReset::Earliest),
            ("latest", AutoOffsetReset::Latest),
            ("none", AutoOffsetReset::None),
            ("smallest", AutoOffsetReset::Earliest),
            ("largest", AutoOffsetReset::Latest),
        ],
        "earliest (start partitions without a committed offset at the oldest record; the \
         default), latest (at the end, as MirrorMaker 1 did by default) or none (stop with an \
         error)",
    )?;
    match r
        .value("auto.offset.reset")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => notices.push(Notice::info(format!(
            "{file}: auto.offset.reset is not set, so partitions without an offset committed for \
             group {group_id} start at the earliest offset and existing records are copied \
             (MirrorMaker 2's default; MirrorMaker 1 started at the latest offset: set \
             auto.offset.reset=latest for that)"
        ))),
        Some(old @ ("smallest" | "largest")) => notices.push(Notice::info(format!(
            "{file}: auto.offset.reset={old} is the old consumer's name; read as {}",
            if old == "smallest" {
                "earliest"
            } else {
                "latest"
            }
        ))),
        Some(_) => {}
    }
    if source.bootstrap_servers.is_empty() && source.zookeeper_connect.is_some() {
        notices.push(Notice::info(format!(
            "{file}: kmirror finds the source brokers through zookeeper.connect, but commits the \
             offsets of group {group_id} to the Kafka cluster (as MirrorMaker's new consumer \
             did); offsets the old consumer kept in ZooKeeper are not read"
        )));
    }
    let isolation_level = r.choice(
        "isolation.level",
        IsolationLevel::ReadCommitted,
        &[
            ("read_committed", IsolationLevel::ReadCommitted),
            ("read_uncommitted", IsolationLevel::ReadUncommitted),
        ],
        "read_committed (copy only committed transactional records; the default) or \
         read_uncommitted",
    )?;
    let membership = read_membership(&r, notices)?;
    Ok(ConsumerSettings {
        group_id,
        auto_offset_reset,
        isolation_level,
        membership,
        fetch_max_bytes: r.bytes("fetch.max.bytes", 52_428_800, 0)?,
        max_partition_fetch_bytes: r.bytes("max.partition.fetch.bytes", 1_048_576, 0)?,
        fetch_max_wait: r.millis("fetch.max.wait.ms", 500)?,
        fetch_min_bytes: r.bytes("fetch.min.bytes", 1, 0)?,
        check_crcs: r.bool("check.crcs", true)?,
    })
}

/// The group membership keys, with the Java consumer's defaults and checks.
fn read_membership(
    r: &Reader<'_>,
    notices: &mut Vec<Notice>,
) -> Result<GroupConfig, SettingsError> {
    let file = r.file;
    let defaults = GroupConfig::default();
    let ms = |key: &str, default: Duration| -> Result<Duration, SettingsError> {
        let default = i64::try_from(default.as_millis()).unwrap_or(INT_MAX);
        let n = r.int_with(
            key,
            default,
            1,
            INT_MAX,
            &format!("a whole number of milliseconds from 1 to {INT_MAX}"),
        )?;
        Ok(Duration::from_millis(n.unsigned_abs()))
    };
    let assignors = match r.value("partition.assignment.strategy") {
        None => defaults.assignors.clone(),
        Some(list) => {
            let mut assignors = Vec::new();
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                match Assignor::from_name(name) {
                    Some(a) if !assignors.contains(&a) => assignors.push(a),
                    Some(_) => {}
                    None => {
                        return Err(r.invalid(
                            "partition.assignment.strategy",
                            list,
                            format!(
                                "a comma-separated list of range, roundrobin and cooperative-sticky \
                                 (or their Java class names, org.apache.kafka.clients.consumer.RangeAssignor, \
                                 ...RoundRobinAssignor, ...CooperativeStickyAssignor); {name} is not one \
                                 of them (the eager StickyAssignor and custom Java classes cannot run in \
                                 kmirror: use cooperative-sticky)"
                            ),
                        ));
                    }
                }
            }
            if assignors.is_empty() {
                return Err(r.invalid(
                    "partition.assignment.strategy",
                    list,
                    "at least one of range, roundrobin, cooperative-sticky",
                ));
            }
            if assignors.iter().any(|a| a.is_cooperative())
                && assignors.iter().any(|a| !a.is_cooperative())
            {
                notices.push(Notice::info(format!(
                    "{file}: partition.assignment.strategy lists eager and cooperative assignors: \
                     the group uses the first one every member lists, and moves to \
                     cooperative-sticky once every member offers it first"
                )));
            }
            assignors
        }
    };
    let session_timeout = ms("session.timeout.ms", defaults.session_timeout)?;
    let heartbeat_interval = ms("heartbeat.interval.ms", defaults.heartbeat_interval)?;
    if heartbeat_interval >= session_timeout {
        return Err(r.invalid(
            "heartbeat.interval.ms",
            r.value("heartbeat.interval.ms").unwrap_or("3000"),
            format!(
                "less than session.timeout.ms ({} ms); a third of it is usual",
                session_timeout.as_millis()
            ),
        ));
    }
    let max_poll_interval = ms("max.poll.interval.ms", defaults.max_poll_interval)?;
    let group_instance_id = match r.value("group.instance.id").filter(|v| !v.is_empty()) {
        None => None,
        Some(id) => {
            let legal = id.len() <= 249
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !legal {
                return Err(r.invalid(
                    "group.instance.id",
                    id,
                    "at most 249 characters of a-z, A-Z, 0-9, '.', '_' and '-', unique to each \
                     process of the group",
                ));
            }
            Some(id.to_owned())
        }
    };
    let protocol = r.choice(
        "group.protocol",
        GroupProtocol::Classic,
        &[
            ("classic", GroupProtocol::Classic),
            ("consumer", GroupProtocol::Consumer),
        ],
        "classic (JoinGroup/SyncGroup, the leader assigns; the default) or consumer (KIP-848, \
         the broker assigns; Apache Kafka 4.0 or newer, else classic is used)",
    )?;
    let remote_assignor = r
        .value("group.remote.assignor")
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    if protocol == GroupProtocol::Consumer {
        for key in [
            "partition.assignment.strategy",
            "session.timeout.ms",
            "heartbeat.interval.ms",
        ] {
            if r.value(key).is_some() {
                notices.push(Notice::warn(format!(
                    "{file}: {key} does not apply with group.protocol=consumer (the broker's \
                     group.consumer.* settings decide); used only if the source broker lacks \
                     KIP-848 and kmirror falls back to the classic protocol"
                )));
            }
        }
    } else if remote_assignor.is_some() {
        notices.push(Notice::warn(format!(
            "{file}: group.remote.assignor applies only with group.protocol=consumer; ignored"
        )));
    }
    Ok(GroupConfig {
        assignors,
        session_timeout,
        heartbeat_interval,
        max_poll_interval,
        group_instance_id,
        protocol,
        remote_assignor,
    })
}

/// The default `buffer.memory`: 64 MiB.
const DEFAULT_BUFFER_MEMORY: i64 = 64 * 1024 * 1024;

/// The smallest `buffer.memory`: 1 MiB.
const MIN_BUFFER_MEMORY: i64 = 1024 * 1024;

/// The producer keys.
fn read_producer(
    props: &Properties,
    destination: &ClientConfig,
    notices: &mut Vec<Notice>,
) -> Result<ProducerSettings, SettingsError> {
    let r = Reader::new(props);
    let file = r.file;

    let acks = match r.value("acks") {
        Some("0") => {
            return Err(r.invalid("acks", "0", kmirror::engine::config::ACKS_ZERO_REFUSED));
        }
        _ => r.choice(
            "acks",
            Acks::All,
            &[("all", Acks::All), ("-1", Acks::All), ("1", Acks::Leader)],
            "all (or -1: every in-sync replica has the records; the default) or 1 (the leader \
             only, without idempotence); 0 is refused, as kmirror commits only what the \
             destination acknowledged",
        )?,
    };
    if acks == Acks::Leader {
        notices.push(Notice::warn(format!(
            "{file}: acks=1: kmirror mirrors without idempotence (batches carry no producer id \
             or sequence): the partition leader alone acknowledges, so what it acknowledged is \
             lost if it fails before its followers copy it, a retry after a lost answer writes \
             records twice, and with max.in.flight.requests.per.connection above 1 a retry can \
             land behind later records; remove the line for acks=all"
        )));
    }

    let compression = match r.value("compression.type") {
        None | Some("") => None,
        Some(v) if v.eq_ignore_ascii_case("producer") => None,
        Some(v) => Some(v.parse::<Compression>().map_err(|_| {
            r.invalid(
                "compression.type",
                v,
                "none, gzip, snappy, lz4 or zstd (the destination gets that codec), or producer \
                 (or no line) to keep each batch's codec so that batches pass through unchanged",
            )
        })?),
    };
    if let Some(codec) = compression {
        notices.push(Notice::info(format!(
            "{file}: compression.type={codec}: the destination gets {codec}; fetched batches in \
             another codec are recompressed instead of passed through unchanged (remove \
             compression.type to keep each batch's codec)"
        )));
    }
    let compression_levels = CompressionLevels {
        gzip: level(
            &r,
            "compression.gzip.level",
            Compression::Gzip,
            "a whole number from 1 to 9, or -1 for the default (6)",
        )?,
        lz4: level(
            &r,
            "compression.lz4.level",
            Compression::Lz4,
            "a whole number from 1 to 17 (default 9)",
        )?,
        zstd: level(
            &r,
            "compression.zstd.level",
            Compression::Zstd,
            "a whole number from -131072 to 22 (default 3)",
        )?,
    };

    match r.value("enable.idempotence").map(str::to_ascii_lowercase) {
        None => {}
        Some(v) if v == "true" => {}
        Some(v) if v == "false" => notices.push(Notice::warn(format!(
            "{file}: enable.idempotence=false is ignored: with acks=all kmirror's producer is \
             idempotent, which lets it keep up to 5 requests in flight per partition without \
             reordering or duplicating records on retry; remove the line (acks=1 mirrors \
             without idempotence)"
        ))),
        Some(_) => {
            let value = r.value("enable.idempotence").unwrap_or_default();
            return Err(r.invalid(
                "enable.idempotence",
                value,
                "true (kmirror's producer is always idempotent; remove the line)",
            ));
        }
    }

    let linger = r.millis("linger.ms", 5)?;
    if r.value("linger.ms").is_some() {
        notices.push(Notice::warn(format!(
            "{file}: linger.ms is ignored: kmirror sends each fetched batch as soon as it is \
             fetched (passed through, or rebuilt on the slow path from one fetched batch), so \
             there are no single records to wait for and group; the source producer's batches \
             are kept. It still counts in delivery.timeout.ms's lower bound, as in Java's \
             producer; remove the line"
        )));
    }
    let delivery_timeout = match r.value("delivery.timeout.ms") {
        None => None,
        Some(value) => {
            let floor = linger.saturating_add(destination.request_timeout);
            let floor_ms = floor.as_millis();
            let allowed = format!(
                "a whole number of milliseconds from linger.ms + request.timeout.ms ({} + {} = \
                 {floor_ms}) to {INT_MAX}, as Java's producer requires; remove the line to retry \
                 for ever, as MirrorMaker 1 did",
                linger.as_millis(),
                destination.request_timeout.as_millis(),
            );
            match value.parse::<i64>() {
                Ok(ms)
                    if (0..=INT_MAX).contains(&ms) && u128::from(ms.unsigned_abs()) >= floor_ms =>
                {
                    Some(Duration::from_millis(ms.unsigned_abs()))
                }
                _ => return Err(r.invalid("delivery.timeout.ms", value, allowed)),
            }
        }
    };
    let max_in_flight = r.int_with(
        "max.in.flight.requests.per.connection",
        5,
        1,
        5,
        "a whole number from 1 to 5: kmirror's producer is idempotent, and Kafka keeps the \
         order of at most 5 requests in flight per partition",
    )?;

    Ok(ProducerSettings {
        acks,
        compression,
        compression_levels,
        batch_size: r.bytes("batch.size", 16_384, 0)?,
        linger,
        buffer_memory: r
            .int_with(
                "buffer.memory",
                DEFAULT_BUFFER_MEMORY,
                MIN_BUFFER_MEMORY,
                i64::MAX,
                &format!(
                    "a number of bytes from {MIN_BUFFER_MEMORY} (1 MiB) to {}: fetched records \
                     wait in it until the destination acknowledges them",
                    i64::MAX
                ),
            )?
            .unsigned_abs(),
        delivery_timeout,
        max_in_flight: u8::try_from(max_in_flight).unwrap_or(5),
        retries: u32::try_from(r.int("retries", INT_MAX, 0, INT_MAX)?).unwrap_or(u32::MAX),
        max_request_size: r.bytes("max.request.size", 1_048_576, 1)?,
        replication_factor: match r.int_with(
            "replication.factor",
            -1,
            -1,
            i64::from(i16::MAX),
            "a whole number from 1 to 32767, or -1 for the destination's default \
             (default.replication.factor): the replication factor of topics kmirror creates",
        )? {
            n if n > 0 => i16::try_from(n).ok(),
            _ => None,
        },
    })
}

/// A compression level for `codec`, checked by the protocol crate's codec.
fn level(
    r: &Reader<'_>,
    key: &str,
    codec: Compression,
    allowed: &str,
) -> Result<Option<i32>, SettingsError> {
    let Some(value) = r.value(key) else {
        return Ok(None);
    };
    let allowed = || format!("{allowed}; remove the line for the default");
    let level = value
        .parse::<i32>()
        .map_err(|_| r.invalid(key, value, allowed()))?;
    kmirror_protocol::compression::validate_level(codec, Some(level))
        .map_err(|_| r.invalid(key, value, allowed()))?;
    Ok(Some(level))
}

#[cfg(test)]
mod tests;
