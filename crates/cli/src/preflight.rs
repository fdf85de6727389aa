//! The preflight: connect to both clusters and say what kmirror sees there.
//!
//! Before mirroring, `kmirror` connects to the source and the destination
//! ([`Cluster::connect`], which bootstraps and fetches metadata), counts the
//! brokers, lists the source topics the selector picks and which of them
//! already exist on the destination, and reports. Connection failures become
//! [`CliError`]s with exit code 4 (or 3 when the file's settings are the
//! problem), naming the cluster, its file and what to check.

use std::path::Path;

use kmirror_pool::cluster::ClusterMetadata;
use kmirror_pool::{Cluster, PoolError};

use crate::exit::{CliError, Exit};
use crate::settings::MirrorSettings;

/// The most topic names listed on one line.
const MAX_LISTED: usize = 10;

/// What the preflight found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// The source cluster.
    pub source: ClusterSummary,
    /// The destination cluster.
    pub destination: ClusterSummary,
    /// The selector's patterns, for the report (`testtopic`, or
    /// `orders.* excluding orders-tmp`).
    pub pattern: String,
    /// The source topics the selector picks, with their partition counts,
    /// by name.
    pub selected: Vec<(String, usize)>,
    /// The selected topics that already exist on the destination, with
    /// their partition counts.
    pub at_destination: Vec<(String, usize)>,
}

/// One cluster as the preflight saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSummary {
    /// The configuration file it came from.
    pub file: String,
    /// The bootstrap addresses used.
    pub bootstrap: Vec<String>,
    /// The number of brokers in its metadata.
    pub brokers: usize,
    /// The number of topics in its metadata, internal ones included.
    pub topics: usize,
}

/// Connects to both clusters (at the same time) and summarises them.
///
/// # Errors
///
/// The first failure, without waiting for the other cluster:
/// [`Exit::Connect`] for an unreachable cluster, TLS, authentication or
/// protocol failures, [`Exit::Config`] for settings the connection layer
/// refuses.
pub async fn check(settings: &MirrorSettings) -> Result<Preflight, CliError> {
    check_connected(settings).await.map(|(report, _, _)| report)
}

/// [`check`], keeping the connected source and destination clusters for the
/// mirror.
///
/// # Errors
///
/// As [`check`].
pub async fn check_connected(
    settings: &MirrorSettings,
) -> Result<(Preflight, Cluster, Cluster), CliError> {
    let (
        (source, source_meta, source_cluster),
        (destination, destination_meta, destination_cluster),
    ) = tokio::try_join!(
        connect(&settings.source, &settings.consumer_file, "source"),
        connect(
            &settings.destination,
            &settings.producer_file,
            "destination"
        ),
    )?;
    let selected: Vec<(String, usize)> = source_meta
        .topics
        .values()
        .filter(|t| !t.is_internal && settings.selector.selects(&t.name))
        .map(|t| (t.name.clone(), t.partitions.len()))
        .collect();
    let at_destination = selected
        .iter()
        .filter_map(|(name, _)| destination_meta.topics.get(name))
        .map(|t| (t.name.clone(), t.partitions.len()))
        .collect();
    let pattern = match settings.selector.exclude() {
        Some(exclude) => format!("{} excluding {exclude}", settings.selector.include()),
        None => settings.selector.include().to_string(),
    };
    let report = Preflight {
        source,
        destination,
        pattern,
        selected,
        at_destination,
    };
    Ok((report, source_cluster, destination_cluster))
}

impl Preflight {
    /// The report: one line per cluster.
    pub fn lines(&self) -> [String; 2] {
        let source = format!(
            "source ({}): {} at {}; {} to mirror (pattern {}){}",
            self.source.file,
            count(self.source.brokers, "broker", "brokers"),
            self.source.bootstrap.join(","),
            count(self.selected.len(), "topic", "topics"),
            self.pattern,
            if self.selected.is_empty() {
                format!(
                    ": none of its {} matches; the pattern must match whole topic names",
                    count(self.source.topics, "topic", "topics")
                )
            } else {
                format!(": {}", listing(&self.selected))
            },
        );
        let destination = format!(
            "destination ({}): {} at {}; {} of the {} to mirror already there{}",
            self.destination.file,
            count(self.destination.brokers, "broker", "brokers"),
            self.destination.bootstrap.join(","),
            self.at_destination.len(),
            count(self.selected.len(), "topic", "topics"),
            if self.at_destination.is_empty() {
                String::new()
            } else {
                format!(": {}", listing(&self.at_destination))
            },
        );
        [source, destination]
    }
}

/// `1 broker`, `3 brokers`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `a (8 partitions), b (1 partition)`, at most [`MAX_LISTED`] names.
fn listing(topics: &[(String, usize)]) -> String {
    let mut parts: Vec<String> = topics
        .iter()
        .take(MAX_LISTED)
        .map(|(name, partitions)| {
            format!("{name} ({})", count(*partitions, "partition", "partitions"))
        })
        .collect();
    if topics.len() > MAX_LISTED {
        parts.push(format!("and {} more", topics.len() - MAX_LISTED));
    }
    parts.join(", ")
}

/// Connects to one cluster and reads its metadata.
async fn connect(
    config: &kmirror_pool::ClientConfig,
    file: &Path,
    role: &str,
) -> Result<(ClusterSummary, std::sync::Arc<ClusterMetadata>, Cluster), CliError> {
    let file_name = file.display().to_string();
    let error = |e: PoolError| connect_error(role, &file_name, e);
    let cluster = Cluster::connect(config.clone()).await.map_err(error)?;
    let metadata = cluster.metadata().await.map_err(error)?;
    tracing::debug!(
        role,
        brokers = metadata.brokers.len(),
        topics = metadata.topics.len(),
        "connected"
    );
    let summary = ClusterSummary {
        file: file_name.clone(),
        bootstrap: cluster.bootstrap_servers().to_vec(),
        brokers: metadata.brokers.len(),
        topics: metadata.topics.len(),
    };
    Ok((summary, metadata, cluster))
}

/// The error for a failed connection to the `role` cluster configured in
/// `file`.
pub fn connect_error(role: &str, file: &str, e: PoolError) -> CliError {
    let what = format!("cannot connect to the {role} cluster ({file})");
    match e {
        PoolError::Config(c) => CliError::new(Exit::Config, format!("{file}: {c}")),
        PoolError::Auth { .. } => CliError::new(
            Exit::Connect,
            format!(
                "{what}: {e}; check sasl.mechanism and the user name and password \
                 (sasl.username and sasl.password, or sasl.jaas.config) in {file}"
            ),
        ),
        PoolError::Tls { ref reason, .. } if !reason.contains("; ") => CliError::new(
            Exit::Connect,
            format!("{what}: {e}; check security.protocol and the ssl.* settings in {file}"),
        ),
        PoolError::ZooKeeper { .. } => CliError::new(
            Exit::Connect,
            format!(
                "{what}: {e}; check zookeeper.connect in {file}, or set bootstrap.servers to \
                 some of the cluster's brokers instead"
            ),
        ),
        PoolError::Unreachable { .. } | PoolError::Tls { .. } => {
            CliError::new(Exit::Connect, format!("{what}: {e}"))
        }
        other => CliError::new(
            Exit::Connect,
            format!(
                "{what}: {other}; check that {file} points at a Kafka cluster that is running \
                 and reachable from this host"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kmirror_pool::ConfigError;

    use super::*;

    fn summary(file: &str, brokers: usize, topics: usize) -> ClusterSummary {
        ClusterSummary {
            file: file.to_owned(),
            bootstrap: vec!["127.0.0.1:9092".to_owned()],
            brokers,
            topics,
        }
    }

    #[test]
    fn report_lines_name_the_topics() {
        let p = Preflight {
            source: summary("consumer.properties", 1, 3),
            destination: summary("producer.properties", 2, 1),
            pattern: "testtopic".to_owned(),
            selected: vec![("testtopic".to_owned(), 8)],
            at_destination: vec![],
        };
        let [source, destination] = p.lines();
        assert_eq!(
            source,
            "source (consumer.properties): 1 broker at 127.0.0.1:9092; 1 topic to mirror \
             (pattern testtopic): testtopic (8 partitions)"
        );
        assert_eq!(
            destination,
            "destination (producer.properties): 2 brokers at 127.0.0.1:9092; 0 of the 1 topic \
             to mirror already there"
        );
    }

    #[test]
    fn report_without_a_match_and_with_many() {
        let none = Preflight {
            source: summary("c", 1, 2),
            destination: summary("p", 1, 0),
            pattern: "nope".to_owned(),
            selected: vec![],
            at_destination: vec![],
        };
        assert!(none.lines()[0].ends_with(
            "0 topics to mirror (pattern nope): none of its 2 topics matches; the pattern must \
             match whole topic names"
        ));
        let many: Vec<(String, usize)> = (0..12).map(|i| (format!("t{i:02}"), 1)).collect();
        let listed = listing(&many);
        assert!(listed.starts_with("t00 (1 partition), t01 (1 partition)"));
        assert!(
            listed.ends_with("t09 (1 partition), and 2 more"),
            "{listed}"
        );
    }

    #[test]
    fn connection_errors_have_their_exit_codes_and_fixes() {
        let e = connect_error(
            "source",
            "c.properties",
            PoolError::Unreachable {
                servers: "127.0.0.1:1".into(),
                timeout: Duration::from_secs(1),
                last_error: "connection refused".into(),
            },
        );
        assert_eq!(e.exit(), Exit::Connect);
        assert!(
            e.message()
                .starts_with("cannot connect to the source cluster (c.properties): cannot reach"),
            "{e}"
        );
        let e = connect_error(
            "destination",
            "p.properties",
            PoolError::Auth {
                broker: "b:9093".into(),
                mechanism: "SCRAM-SHA-512".into(),
                reason: "bad password".into(),
            },
        );
        assert_eq!(e.exit(), Exit::Connect);
        assert!(e.message().contains("sasl.password"), "{e}");
        assert!(e.message().contains("in p.properties"), "{e}");
        let e = connect_error(
            "source",
            "c.properties",
            PoolError::Config(ConfigError::Missing {
                what: "x".into(),
                hint: "y".into(),
            }),
        );
        assert_eq!(e.exit(), Exit::Config);
        assert_eq!(e.message(), "c.properties: missing x; y");
        let e = connect_error(
            "source",
            "c.properties",
            PoolError::ZooKeeper {
                connect: "zk:2181".into(),
                reason: "no broker registered".into(),
            },
        );
        assert!(
            e.message()
                .contains("check zookeeper.connect in c.properties")
        );
        let e = connect_error(
            "source",
            "c.properties",
            PoolError::Tls {
                broker: "b:9093".into(),
                reason: "handshake failed".into(),
            },
        );
        assert!(
            e.message()
                .ends_with("check security.protocol and the ssl.* settings in c.properties")
        );
    }
}
