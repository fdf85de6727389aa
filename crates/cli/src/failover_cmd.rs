//! `kmirror offsets translate`, `kmirror offsets sync` and
//! `kmirror cutover`: moving consumer groups from the source cluster to
//! the destination with the offset map the mirror keeps
//! ([`kmirror::translation`], [`kmirror::engine::failover`]).
//!
//! They take the mirror's two files (the source's connection from
//! `--consumer.config`, the destination's from `--producer.config`) and
//! `--source.alias` if the mirror was given one.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use kmirror::Side;
use kmirror::engine::failover::{
    Failover, FailoverError, GroupSync, PartitionPlan, PartitionProblem,
};
use kmirror::translation::{Derivation, TranslateError};

use crate::args::{self, Invocation, LogFormat};
use crate::exit::{CliError, Exit};
use crate::logging;
use crate::settings::MirrorSettings;

/// The first word of a failover command line.
pub fn is_failover_command(first: Option<&OsString>) -> bool {
    first.is_some_and(|w| w == "offsets" || w == "cutover")
}

/// The connection to both clusters, as the mirror has it.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Clusters {
    /// The mirror's consumer .properties file (the source cluster).
    #[arg(long = "consumer.config", value_name = "FILE", required = true)]
    pub consumer_config: PathBuf,
    /// The mirror's producer .properties file (the destination cluster).
    #[arg(long = "producer.config", value_name = "FILE", required = true)]
    pub producer_config: PathBuf,
    /// The mirror's --source.alias.
    #[arg(
        long = "source.alias",
        value_name = "ALIAS",
        default_value = "source",
        value_parser = args::parse_alias
    )]
    pub source_alias: String,
}

/// `kmirror offsets ...`, `kmirror cutover ...`.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "kmirror",
    version,
    about = "Moves consumer groups from the source cluster to the destination, exactly: \
             kmirror records where every source record landed (the offset map, on unless \
             --offset.map false), so a group's source offsets translate to the destination \
             without losing or repeating a record.",
    disable_help_subcommand = true
)]
pub struct FailoverArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: FailoverCommand,
}

/// The failover commands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum FailoverCommand {
    /// Consumer group offsets on the destination.
    #[command(subcommand)]
    Offsets(OffsetsCommand),
    /// Moves a consumer group in one step: checks that it has no active
    /// members on the source, translates its offsets (waiting up to
    /// --wait.ms for kmirror to copy up to them), commits them to the same
    /// group on the destination (which must have no active members
    /// either), and prints them before and after. Exit 0: start the
    /// group's consumers against the destination.
    Cutover {
        /// Both clusters.
        #[command(flatten)]
        clusters: Clusters,
        /// The consumer group.
        #[arg(long = "group", value_name = "GROUP", required = true)]
        group: String,
        /// How long to wait for kmirror to copy up to the group's
        /// offsets, in milliseconds.
        #[arg(long = "wait.ms", value_name = "MS", default_value_t = 60_000)]
        wait_ms: u64,
    },
}

/// `kmirror offsets ...`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum OffsetsCommand {
    /// For each partition a group committed on the source, the exact
    /// destination offset and how it was found. Exit 1 if a partition has
    /// none.
    Translate {
        /// Both clusters.
        #[command(flatten)]
        clusters: Clusters,
        /// The consumer group.
        #[arg(long = "group", value_name = "GROUP", required = true)]
        group: String,
        /// text (a table) or json (one object per partition and line).
        #[arg(long = "format", value_name = "text|json", default_value = "text", value_parser = parse_format)]
        format: Format,
    },
    /// For every source group matching PATTERN: translates its offsets,
    /// records them as MirrorMaker 2 checkpoints (for
    /// RemoteClusterUtils.translateOffsets), and commits them to the same
    /// group on the destination unless it has active members there; never
    /// moves a destination offset back.
    Sync {
        /// Both clusters.
        #[command(flatten)]
        clusters: Clusters,
        /// A regular expression over whole group names.
        #[arg(long = "group", value_name = "PATTERN", required = true)]
        group: String,
        /// Print what would be committed; write nothing.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A table.
    Text,
    /// JSON lines.
    Json,
}

fn parse_format(value: &str) -> Result<Format, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(Format::Text),
        "json" => Ok(Format::Json),
        _ => Err("expected text or json".to_owned()),
    }
}

/// Parses a failover command line (`argv[0]` first).
///
/// # Errors
///
/// A usage error in one paragraph.
pub fn parse<I, T>(argv: I) -> Result<Result<FailoverArgs, String>, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match FailoverArgs::try_parse_from(argv) {
        Ok(a) => Ok(Ok(a)),
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                Ok(Err(e.render().to_string()))
            }
            _ => {
                // clap's first paragraph, on one line.
                let rendered = e.render().to_string();
                let summary: Vec<&str> = rendered
                    .lines()
                    .take_while(|l| !l.trim().is_empty())
                    .map(str::trim)
                    .collect();
                Err(CliError::new(
                    Exit::Usage,
                    format!(
                        "{} (see kmirror offsets --help, kmirror cutover --help)",
                        summary.join(" ").trim_start_matches("error: ")
                    ),
                ))
            }
        },
    }
}

/// Runs a failover command line to its end.
///
/// # Errors
///
/// Whatever stops it, with its exit code.
pub fn main(argv: Vec<OsString>) -> Result<(), CliError> {
    let parsed = match parse(argv)? {
        Ok(p) => p,
        Err(help) => {
            let _ = write!(std::io::stdout().lock(), "{help}");
            return Ok(());
        }
    };
    let rust_log = std::env::var(logging::FILTER_VAR).ok();
    let filter =
        logging::filter(rust_log.as_deref(), false).map_err(|m| CliError::new(Exit::Usage, m))?;
    logging::init(filter, LogFormat::Text, rust_log.is_some());
    let clusters = match &parsed.command {
        FailoverCommand::Cutover { clusters, .. }
        | FailoverCommand::Offsets(
            OffsetsCommand::Translate { clusters, .. } | OffsetsCommand::Sync { clusters, .. },
        ) => clusters.clone(),
    };
    let mirror_args = match args::parse([
        OsString::from("kmirror"),
        "--consumer.config".into(),
        clusters.consumer_config.clone().into_os_string(),
        "--producer.config".into(),
        clusters.producer_config.clone().into_os_string(),
        "--whitelist".into(),
        ".*".into(),
    ])? {
        Invocation::Run(a) => a,
        Invocation::Print(_) => return Err(CliError::new(Exit::Internal, "unexpected help")),
    };
    let settings = MirrorSettings::load(&mirror_args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(Exit::Failure, format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let (_, source, destination) = crate::preflight::check_connected(&settings).await?;
        let failover = Failover::new(
            source,
            destination,
            &clusters.source_alias,
            settings.producer.replication_factor,
        );
        let error = |e: FailoverError| failover_error(&settings, e);
        let mut out = String::new();
        let result = match &parsed.command {
            FailoverCommand::Offsets(OffsetsCommand::Translate { group, format, .. }) => {
                translate(&failover, group, *format, &mut out)
                    .await
                    .map_err(error)
            }
            FailoverCommand::Offsets(OffsetsCommand::Sync { group, dry_run, .. }) => sync(
                &failover,
                group,
                &settings.consumer.group_id,
                *dry_run,
                &mut out,
            )
            .await
            .map_err(error),
            FailoverCommand::Cutover { group, wait_ms, .. } => {
                cutover(&failover, group, Duration::from_millis(*wait_ms), &mut out)
                    .await
                    .map_err(error)
            }
        };
        let _ = write!(std::io::stdout().lock(), "{out}");
        result.and_then(|r| r)
    })
}

/// A failover error as the command line reports it.
fn failover_error(settings: &MirrorSettings, e: FailoverError) -> CliError {
    match e {
        FailoverError::Cluster(e) => crate::run::mirror_error(settings, e),
        e @ FailoverError::NoOffsetMap { .. } => CliError::new(Exit::Config, e.to_string()),
        e => CliError::new(Exit::Failure, e.to_string()),
    }
}

/// A partition's outcome in one line.
fn how(plan: &PartitionPlan) -> String {
    match &plan.translation {
        Ok(t) => t.to_string(),
        Err(e) => e.to_string(),
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn table(plans: &[PartitionPlan], committed: Option<&BTreeMap<(String, i32), i64>>) -> String {
    let mut rows = vec![[
        "TOPIC".to_owned(),
        "PARTITION".to_owned(),
        "SOURCE-OFFSET".to_owned(),
        "TRANSLATED".to_owned(),
        "DESTINATION-BEFORE".to_owned(),
        "DESTINATION-AFTER".to_owned(),
    ]];
    for p in plans {
        let after = match committed {
            Some(c) => opt(c
                .get(&(p.topic.clone(), p.partition))
                .copied()
                .or(p.destination_before)),
            None => "-".to_owned(),
        };
        rows.push([
            p.topic.clone(),
            p.partition.to_string(),
            p.source_offset.to_string(),
            opt(p.translation.as_ref().ok().map(|t| t.destination_offset)),
            opt(p.destination_before),
            after,
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

async fn translate(
    failover: &Failover,
    group: &str,
    format: Format,
    out: &mut String,
) -> Result<Result<(), CliError>, FailoverError> {
    let index = failover.index().await?;
    let plans = failover.plan(&index, group).await?;
    if plans.is_empty() {
        return Err(FailoverError::NothingCommitted {
            group: group.to_owned(),
        });
    }
    match format {
        Format::Json => {
            for p in &plans {
                let (offset, exact, repeated) = match &p.translation {
                    Ok(t) => (t.destination_offset.to_string(), t.is_exact(), t.repeated),
                    Err(_) => ("null".to_owned(), false, 0),
                };
                let detail = match &p.translation {
                    Ok(_) => format!("\"how\":{}", json_string(&how(p))),
                    Err(e) => format!("\"error\":{}", json_string(&e.to_string())),
                };
                let _ = writeln!(
                    out,
                    "{{\"group\":{},\"topic\":{},\"partition\":{},\"source_offset\":{},\"destination_offset\":{offset},\"exact\":{exact},\"repeated\":{repeated},{detail}}}",
                    json_string(group),
                    json_string(&p.topic),
                    p.partition,
                    p.source_offset
                );
            }
        }
        Format::Text => {
            let _ = writeln!(out, "group {group}: {} partition(s)", plans.len());
            out.push_str(&table(&plans, None));
            for p in &plans {
                let _ = writeln!(out, "{}-{}: {}", p.topic, p.partition, how(p));
            }
        }
    }
    let failed = plans.iter().filter(|p| p.translation.is_err()).count();
    Ok(if failed == 0 {
        Ok(())
    } else {
        Err(CliError::new(
            Exit::Failure,
            format!("{failed} partition(s) of group {group} have no exact translation (see above)"),
        ))
    })
}

/// A group pattern: a regular expression over whole group names.
///
/// # Errors
///
/// A usage error if it is not a regular expression.
pub fn group_pattern(pattern: &str) -> Result<regex::Regex, CliError> {
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        CliError::new(
            Exit::Usage,
            format!("--group {pattern}: not a regular expression ({e})"),
        )
    })
}

fn sync_summary(sync: &GroupSync, out: &mut String) {
    let _ = writeln!(out, "group {}:", sync.group);
    out.push_str(&table(&sync.plans, Some(&sync.committed)));
    for p in sync.plans.iter().filter(|p| p.translation.is_err()) {
        let _ = writeln!(
            out,
            "  not translated: {}-{}: {}",
            p.topic,
            p.partition,
            how(p)
        );
    }
    for p in sync.plans.iter().filter(|p| p.behind > 0) {
        let _ = writeln!(
            out,
            "  behind: {}-{}: kmirror has copied and recorded {} source offsets less than the \
             group's; placed where its account ends (the group reads those records again there; \
             the next sync moves it on)",
            p.topic, p.partition, p.behind
        );
    }
    match &sync.skipped {
        Some(why) => {
            let _ = writeln!(out, "  nothing committed: {why}");
        }
        None => {
            let _ = writeln!(
                out,
                "  committed {} partition(s) on the destination",
                sync.committed.len()
            );
        }
    }
}

async fn sync(
    failover: &Failover,
    pattern: &str,
    mirror_group: &str,
    dry_run: bool,
    out: &mut String,
) -> Result<Result<(), CliError>, FailoverError> {
    let matcher = match group_pattern(pattern) {
        Ok(m) => m,
        Err(e) => return Ok(Err(e)),
    };
    let index = failover.index().await?;
    let groups: Vec<String> = failover
        .source_groups()
        .await?
        .into_iter()
        .filter(|g| matcher.is_match(g))
        .collect();
    if groups.iter().any(|g| g == mirror_group) {
        let _ = writeln!(
            out,
            "group {mirror_group}: skipped (the mirror's own group: its offsets are the mirror's \
             position on the source)"
        );
    }
    let groups: Vec<String> = groups.into_iter().filter(|g| g != mirror_group).collect();
    if groups.is_empty() {
        let _ = writeln!(out, "no consumer group on the source matches {pattern}");
        return Ok(Ok(()));
    }
    for group in &groups {
        match failover.sync_group(&index, group, false, dry_run).await {
            Ok(sync) => sync_summary(&sync, out),
            Err(FailoverError::NothingCommitted { .. }) => {
                let _ = writeln!(
                    out,
                    "group {group}: no committed offsets for topics on the source"
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(()))
}

async fn cutover(
    failover: &Failover,
    group: &str,
    wait: Duration,
    out: &mut String,
) -> Result<Result<(), CliError>, FailoverError> {
    let source = failover.describe(Side::Source, group).await?;
    if !source.members.is_empty() {
        return Err(FailoverError::ActiveGroup {
            group: group.to_owned(),
            side: Side::Source,
            members: source.members,
            hint: "stop the group's consumers on the source first (their offsets must not move \
                   while they are translated)",
        });
    }
    let destination = failover.describe(Side::Destination, group).await?;
    if !destination.members.is_empty() {
        return Err(FailoverError::ActiveGroup {
            group: group.to_owned(),
            side: Side::Destination,
            members: destination.members,
            hint: "stop the consumers already reading the destination with this group; the \
                   cutover sets the group's offsets there",
        });
    }
    let deadline = Instant::now() + wait;
    loop {
        let index = failover.index().await?;
        let plans = failover.plan(&index, group).await?;
        let waiting = plans.iter().any(|p| {
            matches!(
                p.translation,
                Err(PartitionProblem::Map(TranslateError::NotCopiedYet { .. }))
            )
        });
        if waiting && Instant::now() < deadline {
            tracing::info!(%group, "waiting for kmirror to copy up to the group's offsets");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let sync = failover.sync_group(&index, group, true, false).await?;
        if let Some(why) = sync.skipped {
            return Err(FailoverError::ActiveGroup {
                group: group.to_owned(),
                side: Side::Destination,
                members: vec![why],
                hint: "stop them and run the cutover again",
            });
        }
        let _ = writeln!(
            out,
            "cutover of group {group}: no active members on the source (state {})",
            source.state
        );
        out.push_str(&table(&sync.plans, Some(&sync.committed)));
        for p in &sync.plans {
            if let Ok(t) = &p.translation {
                if !t.is_exact() {
                    let _ = writeln!(out, "warning: {}-{}: {t}", p.topic, p.partition);
                } else if let Derivation::Copied { .. } = t.how {
                    tracing::debug!(topic = %p.topic, partition = p.partition, "{t}");
                }
            }
        }
        let _ = writeln!(
            out,
            "committed {} partition(s) of group {group} on the destination ({} already there or further); \
             start its consumers against the destination",
            sync.committed.len(),
            sync.plans.len() - sync.committed.len()
        );
        return Ok(Ok(()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(argv: &[&str]) -> FailoverArgs {
        parse(argv.iter().copied()).unwrap().unwrap()
    }

    fn usage(argv: &[&str]) -> String {
        match parse(argv.iter().copied()) {
            Err(e) => {
                assert_eq!(e.exit(), Exit::Usage);
                e.message().to_owned()
            }
            Ok(other) => panic!("{argv:?} parsed: {other:?}"),
        }
    }

    const FILES: [&str; 4] = [
        "--consumer.config",
        "c.properties",
        "--producer.config",
        "p.properties",
    ];

    #[test]
    fn the_commands_and_their_defaults() {
        let mut argv = vec!["kmirror", "offsets", "translate", "--group", "app"];
        argv.extend(FILES);
        let FailoverCommand::Offsets(OffsetsCommand::Translate {
            clusters,
            group,
            format,
        }) = parsed(&argv).command
        else {
            panic!("not translate");
        };
        assert_eq!((group.as_str(), format), ("app", Format::Text));
        assert_eq!(clusters.source_alias, "source");
        assert_eq!(clusters.consumer_config, PathBuf::from("c.properties"));

        let mut argv = vec![
            "kmirror",
            "cutover",
            "--group",
            "app",
            "--source.alias",
            "hdi-east",
        ];
        argv.extend(FILES);
        let FailoverCommand::Cutover {
            clusters, wait_ms, ..
        } = parsed(&argv).command
        else {
            panic!("not cutover");
        };
        assert_eq!(
            (clusters.source_alias.as_str(), wait_ms),
            ("hdi-east", 60_000)
        );

        let mut argv = vec![
            "kmirror",
            "offsets",
            "sync",
            "--group",
            "app-.*",
            "--dry-run",
        ];
        argv.extend(FILES);
        assert!(matches!(
            parsed(&argv).command,
            FailoverCommand::Offsets(OffsetsCommand::Sync { dry_run: true, .. })
        ));
    }

    #[test]
    fn mistakes_are_usage_errors_that_name_them() {
        let mut argv = vec!["kmirror", "cutover"];
        argv.extend(FILES);
        assert!(usage(&argv).contains("--group"), "{}", usage(&argv));
        let mut argv = vec![
            "kmirror",
            "offsets",
            "translate",
            "--group",
            "g",
            "--format",
            "xml",
        ];
        argv.extend(FILES);
        assert!(usage(&argv).contains("text or json"), "{}", usage(&argv));
        let mut argv = vec![
            "kmirror",
            "cutover",
            "--group",
            "g",
            "--source.alias",
            "a b",
        ];
        argv.extend(FILES);
        assert!(usage(&argv).contains("letters, digits"), "{}", usage(&argv));
        assert!(usage(&["kmirror", "offsets", "move"]).contains("move"));
    }

    #[test]
    fn help_is_printed_not_an_error() {
        let help = parse(["kmirror", "cutover", "--help"])
            .unwrap()
            .unwrap_err();
        assert!(help.contains("--wait.ms"), "{help}");
        assert!(is_failover_command(Some(&OsString::from("offsets"))));
        assert!(is_failover_command(Some(&OsString::from("cutover"))));
        assert!(!is_failover_command(Some(&OsString::from(
            "--consumer.config"
        ))));
        assert!(!is_failover_command(None));
    }

    #[test]
    fn group_patterns_match_whole_names() {
        let p = group_pattern("app-.*").unwrap();
        assert!(p.is_match("app-1"));
        assert!(!p.is_match("my-app-1"));
        assert_eq!(group_pattern("(").unwrap_err().exit(), Exit::Usage);
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
