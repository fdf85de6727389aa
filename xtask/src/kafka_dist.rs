//! Apache Kafka from Maven Central: the pinned distributions the tests,
//! the demo and the benchmarks run, and the `kafka-tool` launcher.
//!
//! Each distribution is a directory `<tools>/kafka-<version>/` holding
//! `lib/*.jar` (resolved by a generated `pom.xml` and `mvn
//! dependency:copy-dependencies`), `config/` (a quiet logging configuration:
//! the published POMs carry no logging binding, so each adds one that runs
//! on Java 17) and `INSTALLED` (the pom it was resolved from; an install is
//! skipped when it matches). `<tools>/kafka-tool VERSION TOOL [ARGS...]`
//! runs one of Kafka's command-line tools, the broker, ZooKeeper or a
//! MirrorMaker with the right classpath and main class.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::Result;
use crate::paths;

/// A Maven artifact `group:artifact:version` and what to exclude from its
/// dependencies.
struct Artifact {
    group: &'static str,
    artifact: &'static str,
    version: &'static str,
    exclusions: &'static [(&'static str, &'static str)],
}

/// How a distribution logs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Logging {
    /// reload4j (log4j 1.2 API): Kafka 2.x and 3.x.
    Reload4j,
    /// log4j 2: Kafka 4.x.
    Log4j2,
}

/// One pinned distribution.
struct Distribution {
    /// The directory name under the tools root and the launcher's VERSION.
    name: &'static str,
    /// What it is for (printed by `cargo xtask brokers`).
    role: &'static str,
    artifacts: &'static [Artifact],
    logging: Logging,
}

const fn artifact(group: &'static str, artifact: &'static str, version: &'static str) -> Artifact {
    Artifact {
        group,
        artifact,
        version,
        exclusions: &[],
    }
}

/// log4j 1.2.17 and its slf4j binding fail on Java 17 (`NoSuchFieldError:
/// tlm` in `MDCFriend`); reload4j replaces them.
const OLD_LOG4J: &[(&str, &str)] = &[("log4j", "log4j"), ("org.slf4j", "slf4j-log4j12")];

/// Kafka 2.1's ZooKeeper 3.4.13 client fails on Java 17
/// (`UnresolvedAddressException`, ZOOKEEPER-3779); ZooKeeper 3.5.9's client
/// (Kafka 2.8's) speaks to the same servers and runs.
const OLD_LOG4J_AND_ZOOKEEPER: &[(&str, &str)] = &[
    ("log4j", "log4j"),
    ("org.slf4j", "slf4j-log4j12"),
    ("org.apache.zookeeper", "zookeeper"),
];

/// The pinned distributions: the newest 4.x that resolves (KRaft, the
/// default test cluster), 3.9.2 (the last line with ZooKeeper mode and
/// MirrorMaker 1), 2.1.1 (the oldest that runs on Java 17; HDInsight runs
/// 2.1 to 3.2), and MirrorMaker 2 from `connect-mirror` 4.3.1 (4.4.0 is not
/// published on Maven Central).
const DISTRIBUTIONS: &[Distribution] = &[
    Distribution {
        name: "kafka-4.4.0",
        role: "newest 4.x: KRaft broker+controller, tools",
        artifacts: &[
            artifact("org.apache.kafka", "kafka_2.13", "4.4.0"),
            artifact("org.apache.kafka", "kafka-tools", "4.4.0"),
            artifact("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3"),
            artifact("org.apache.logging.log4j", "log4j-core", "2.24.3"),
        ],
        logging: Logging::Log4j2,
    },
    Distribution {
        name: "kafka-3.9.2",
        role: "ZooKeeper mode, ZooKeeper server, MirrorMaker 1",
        artifacts: &[
            artifact("org.apache.kafka", "kafka_2.13", "3.9.2"),
            artifact("org.apache.kafka", "kafka-tools", "3.9.2"),
            Artifact {
                group: "org.slf4j",
                artifact: "slf4j-reload4j",
                version: "1.7.36",
                exclusions: &[],
            },
        ],
        logging: Logging::Reload4j,
    },
    Distribution {
        name: "kafka-2.1.1",
        role: "oldest that runs on Java 17 (ZooKeeper mode)",
        artifacts: &[
            Artifact {
                group: "org.apache.kafka",
                artifact: "kafka_2.12",
                version: "2.1.1",
                exclusions: OLD_LOG4J_AND_ZOOKEEPER,
            },
            Artifact {
                group: "org.apache.zookeeper",
                artifact: "zookeeper",
                version: "3.5.9",
                exclusions: OLD_LOG4J,
            },
            artifact("org.slf4j", "slf4j-reload4j", "1.7.36"),
        ],
        logging: Logging::Reload4j,
    },
    Distribution {
        name: MM2_DIR,
        role: "MirrorMaker 2 (connect-mirror, dedicated mode)",
        artifacts: &[
            artifact("org.apache.kafka", "connect-mirror", MM2_VERSION),
            artifact("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3"),
            artifact("org.apache.logging.log4j", "log4j-core", "2.24.3"),
        ],
        logging: Logging::Log4j2,
    },
];

/// The maven-dependency-plugin, pinned so a fresh machine resolves the same.
const DEPENDENCY_PLUGIN: &str = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1";

fn pom(dist: &Distribution) -> String {
    let mut deps = String::new();
    for a in dist.artifacts {
        deps.push_str(&format!(
            "    <dependency><groupId>{}</groupId><artifactId>{}</artifactId><version>{}</version>",
            a.group, a.artifact, a.version
        ));
        if !a.exclusions.is_empty() {
            deps.push_str("<exclusions>");
            for (group, artifact) in a.exclusions {
                deps.push_str(&format!(
                    "<exclusion><groupId>{group}</groupId><artifactId>{artifact}</artifactId></exclusion>"
                ));
            }
            deps.push_str("</exclusions>");
        }
        deps.push_str("</dependency>\n");
    }
    format!(
        "<!-- Generated by `cargo xtask brokers`: the classpath of {name} ({role}). -->\n\
         <project xmlns=\"http://maven.apache.org/POM/4.0.0\">\n  <modelVersion>4.0.0</modelVersion>\n  \
         <groupId>kmirror.tools</groupId><artifactId>{name}</artifactId><version>1</version><packaging>pom</packaging>\n  \
         <dependencies>\n{deps}  </dependencies>\n</project>\n",
        name = dist.name,
        role = dist.role,
    )
}

const LOG4J_PROPERTIES: &str = "\
# Written by `cargo xtask brokers`. WARN and above to stderr; the broker's
# own start and stop lines at INFO. KAFKA_LOG4J_OPTS overrides this file.
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.tools.MirrorMaker$=INFO
";

const LOG4J2_PROPERTIES: &str = "\
# Written by `cargo xtask brokers`. WARN and above to stderr; the broker's
# own start and stop lines at INFO. KAFKA_LOG4J_OPTS overrides this file.
status = error
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = STDERR
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
logger.broker.name = kafka.server.KafkaBroker
logger.broker.level = info
";

/// `<tools>/kafka-tool`: one launcher for every distribution's tools.
const LAUNCHER: &str = r#"#!/usr/bin/env bash
# Written by `cargo xtask brokers`: runs Apache Kafka's tools, broker,
# ZooKeeper and MirrorMakers from the Maven Central distributions beside it.
#
#   kafka-tool VERSION TOOL [ARGS...]
#
# VERSION: 4.4.0, 3.9.2, 2.1.1 (a kafka-VERSION directory here), or mm2.
# TOOL: kafka-server, kafka-storage, zookeeper-server, kafka-topics,
#   kafka-console-producer, kafka-console-consumer, kafka-consumer-groups,
#   kafka-configs, kafka-leader-election, kafka-reassign-partitions,
#   kafka-mirror-maker (MirrorMaker 1,
#   2.1.1 and 3.9.2), connect-mirror-maker (VERSION mm2), or
#   kafka-run-class CLASS.
# Environment, as Kafka's bin/ scripts read it: KAFKA_HEAP_OPTS (default
# -Xmx256m), KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_LOG4J_OPTS, KAFKA_OPTS;
# JAVA (default: java on PATH, or $JAVA_HOME/bin/java).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
version="$1"; tool="$2"; shift 2
if [ "$version" = mm2 ]; then dist="$here/mm2-4.3.1"; else dist="$here/kafka-$version"; fi
[ -d "$dist/lib" ] || { echo "kafka-tool: $dist is not installed; run \`cargo xtask brokers\`" >&2; exit 2; }
case "$version" in
  4.*|mm2) generation=4 ;;
  3.*) generation=3 ;;
  *) generation=2 ;;
esac
class=""
case "$tool:$generation" in
  kafka-server:*) class=kafka.Kafka ;;
  kafka-storage:[34]) class=kafka.tools.StorageTool ;;
  zookeeper-server:[23]) class=org.apache.zookeeper.server.ZooKeeperServerMain ;;
  kafka-topics:[34]) class=org.apache.kafka.tools.TopicCommand ;;
  kafka-topics:2) class=kafka.admin.TopicCommand ;;
  kafka-console-producer:4) class=org.apache.kafka.tools.ConsoleProducer ;;
  kafka-console-producer:[23]) class=kafka.tools.ConsoleProducer ;;
  kafka-console-consumer:[34]) class=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
  kafka-console-consumer:2) class=kafka.tools.ConsoleConsumer ;;
  kafka-consumer-groups:[34]) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  kafka-consumer-groups:2) class=kafka.admin.ConsumerGroupCommand ;;
  kafka-configs:4) class=org.apache.kafka.tools.ConfigCommand ;;
  kafka-configs:[23]) class=kafka.admin.ConfigCommand ;;
  kafka-leader-election:[34]) class=org.apache.kafka.tools.LeaderElectionCommand ;;
  kafka-leader-election:2) class=kafka.admin.PreferredReplicaLeaderElectionCommand ;;
  kafka-reassign-partitions:[34]) class=org.apache.kafka.tools.reassign.ReassignPartitionsCommand ;;
  kafka-reassign-partitions:2) class=kafka.admin.ReassignPartitionsCommand ;;
  kafka-mirror-maker:[23]) class=kafka.tools.MirrorMaker ;;
  connect-mirror-maker:4) class=org.apache.kafka.connect.mirror.MirrorMaker ;;
  kafka-run-class:*) [ $# -ge 1 ] || usage; class="$1"; shift ;;
esac
[ -n "$class" ] || { echo "kafka-tool: $tool is not available in $(basename "$dist")" >&2; exit 2; }
if [ -z "${KAFKA_LOG4J_OPTS:-}" ]; then
  if [ -f "$dist/config/log4j2.properties" ]; then
    KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile=$dist/config/log4j2.properties"
  else
    KAFKA_LOG4J_OPTS="-Dlog4j.configuration=file:$dist/config/log4j.properties"
  fi
fi
java="${JAVA:-}"
if [ -z "$java" ]; then
  if [ -n "${JAVA_HOME:-}" ]; then java="$JAVA_HOME/bin/java"; else java=java; fi
fi
# shellcheck disable=SC2086
exec "$java" ${KAFKA_HEAP_OPTS:--Xmx256m} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseSerialGC} \
  $KAFKA_LOG4J_OPTS ${KAFKA_OPTS:-} -cp "$dist/lib/*" "$class" "$@"
"#;

/// The launcher's path.
/// The MirrorMaker 2 (`connect-mirror`) version installed: the newest 4.x
/// on Maven Central here.
pub(crate) const MM2_VERSION: &str = "4.3.1";
/// Its directory under the tools root.
const MM2_DIR: &str = "mm2-4.3.1";

pub(crate) fn launcher() -> PathBuf {
    paths::tools_root().join("kafka-tool")
}

/// Installs every pinned distribution that is missing or stale and writes
/// the launcher; returns the launcher's path.
pub(crate) fn ensure_all() -> Result<PathBuf> {
    let root = paths::tools_root();
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    for dist in DISTRIBUTIONS {
        ensure(&root, dist)?;
    }
    let launcher = launcher();
    write_if_changed(&launcher, LAUNCHER)?;
    set_executable(&launcher)?;
    Ok(launcher)
}

/// Whether every distribution and the launcher are in place (no Maven run).
pub(crate) fn installed() -> bool {
    let root = paths::tools_root();
    launcher().is_file()
        && DISTRIBUTIONS.iter().all(|dist| {
            std::fs::read_to_string(root.join(dist.name).join("INSTALLED"))
                .is_ok_and(|found| found == pom(dist))
        })
}

fn ensure(root: &Path, dist: &Distribution) -> Result<()> {
    let dir = root.join(dist.name);
    let marker = dir.join("INSTALLED");
    let wanted = pom(dist);
    if std::fs::read_to_string(&marker).is_ok_and(|found| found == wanted) {
        println!("{} ({}): already installed (skipped)", dist.name, dist.role);
        return write_logging(&dir, dist.logging);
    }
    println!(
        "{} ({}): resolving from Maven Central into {}",
        dist.name,
        dist.role,
        dir.display()
    );
    let started = Instant::now();
    let lib = dir.join("lib");
    if lib.exists() {
        std::fs::remove_dir_all(&lib)
            .map_err(|e| format!("cannot remove {}: {e}", lib.display()))?;
    }
    let _ = std::fs::remove_file(&marker);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let pom_path = dir.join("pom.xml");
    std::fs::write(&pom_path, &wanted)
        .map_err(|e| format!("cannot write {}: {e}", pom_path.display()))?;
    let output = Command::new("mvn")
        .args(["-B", "-q", "-f"])
        .arg(&pom_path)
        .arg(format!("{DEPENDENCY_PLUGIN}:copy-dependencies"))
        .arg(format!("-DoutputDirectory={}", lib.display()))
        .arg("-DincludeScope=runtime")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "cannot run mvn ({e}): install Maven (Debian: apt-get install -y maven) and Java 17"
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "resolving {} from Maven Central failed ({}): {}\n{}",
            dist.name,
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let jars = std::fs::read_dir(&lib)
        .map(|entries| entries.filter_map(Result::ok).count())
        .unwrap_or(0);
    if jars == 0 {
        return Err(format!("mvn resolved no jars into {}", lib.display()));
    }
    write_logging(&dir, dist.logging)?;
    std::fs::write(&marker, &wanted)
        .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    println!(
        "{}: {jars} jars in {:.1} s",
        dist.name,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write_logging(dir: &Path, logging: Logging) -> Result<()> {
    let config = dir.join("config");
    std::fs::create_dir_all(&config)
        .map_err(|e| format!("cannot create {}: {e}", config.display()))?;
    match logging {
        Logging::Reload4j => write_if_changed(&config.join("log4j.properties"), LOG4J_PROPERTIES),
        Logging::Log4j2 => write_if_changed(&config.join("log4j2.properties"), LOG4J2_PROPERTIES),
    }
}

fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|found| found == text) {
        return Ok(());
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot make {} executable: {e}", path.display()))
}

/// `java -version`'s first line, or an error saying what to install.
pub(crate) fn java_version() -> Result<String> {
    let output = Command::new("java")
        .arg("-version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("cannot run java ({e}): Apache Kafka's broker needs Java 17 or newer")
        })?;
    let text = String::from_utf8_lossy(&output.stderr);
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}
