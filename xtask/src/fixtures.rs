//! `cargo xtask fixtures`: capture golden frames of librdkafka talking to
//! nisshi.
//!
//! nisshi listens on one free port and advertises the recording proxy's
//! port, so every connection librdkafka opens (bootstrap and after) goes
//! through the proxy. `xtask/python/golden_exchange.py` then creates one
//! topic per codec, produces 20 records to each in one idempotent batch and
//! reads them back. From the capture this command copies the first Produce
//! request and the first non-empty Fetch response of every topic, plus
//! ApiVersions and Metadata exchanges, and writes `MANIFEST.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::json::Json;
use crate::record_proxy::{self, RecordedName};
use crate::wire::{self, TopicRef};
use crate::{Result, brokers, paths};

/// Where the fixtures go, relative to the workspace root.
pub(crate) const DEFAULT_OUT: &str = "crates/protocol/tests/fixtures/golden";

/// Default bound on the Python exchange.
pub(crate) const DEFAULT_TIMEOUT_SECS: u64 = 180;

/// The codecs, in the order the script uses them; topic `golden-<codec>`.
const CODECS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];

/// How many records the script produces to every topic.
const RECORDS: i32 = 20;

/// The script, relative to the xtask crate.
const SCRIPT: &str = "python/golden_exchange.py";

/// A child process killed when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request (and its response, if any) from the capture.
#[derive(Debug)]
struct Exchange {
    name: RecordedName,
    request: Vec<u8>,
    response: Option<Vec<u8>>,
}

/// A fixture to write, with what the manifest says about it.
#[derive(Debug)]
struct Fixture {
    file: String,
    api: &'static str,
    api_version: i16,
    direction: &'static str,
    correlation_id: i32,
    bytes: Vec<u8>,
    notes: String,
}

/// Runs the whole capture and writes the fixtures to `out`.
pub(crate) fn run(out: &Path, timeout: Duration) -> Result<()> {
    let nisshi = brokers::ensure_nisshi()?;
    let python = brokers::ensure_venv()?;
    let nisshi_version = brokers::nisshi_version(&nisshi).unwrap_or_else(|| "unknown".to_owned());
    let script = paths::xtask_dir().join(SCRIPT);
    if !script.is_file() {
        return Err(format!("missing {}", script.display()));
    }

    let work = capture_dir();
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .map_err(|e| format!("cannot clear {}: {e}", work.display()))?;
    }
    let frames_dir = work.join("frames");
    std::fs::create_dir_all(&frames_dir)
        .map_err(|e| format!("cannot create {}: {e}", frames_dir.display()))?;

    // The proxy keeps its listener from here on; the broker's port is free
    // when we look and bound by nisshi right after.
    let proxy_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot bind a proxy port: {e}"))?;
    let proxy_addr = proxy_listener.local_addr().map_err(|e| e.to_string())?;
    let broker_addr = free_port()?;

    let log_path = work.join("nisshi.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let broker_args = [
        "broker".to_owned(),
        "--listener-url".to_owned(),
        format!("tcp://{broker_addr}"),
        "--advertised-listener-url".to_owned(),
        format!("tcp://{proxy_addr}"),
        "--storage-engine".to_owned(),
        "memory://nisshi/".to_owned(),
        "--cluster-id".to_owned(),
        "fixtures".to_owned(),
    ];
    println!(
        "fixtures: starting {} {}",
        nisshi.display(),
        broker_args.join(" ")
    );
    let mut broker = KillOnDrop(
        Command::new(&nisshi)
            .args(&broker_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", nisshi.display()))?,
    );
    wait_for_port(broker_addr, &mut broker.0, &log_path)?;

    let proxy = record_proxy::start(proxy_listener, broker_addr, &frames_dir)?;
    println!(
        "fixtures: recording proxy {proxy_addr} -> nisshi {broker_addr}, frames in {}",
        frames_dir.display()
    );

    let outcome = run_script(&python, &script, proxy_addr, timeout);
    if !proxy.wait_idle(Duration::from_secs(10)) {
        eprintln!("fixtures: warning: connections still open 10 s after the script ended");
    }
    drop(broker);
    let summary_text = outcome?;
    std::fs::write(work.join("summary.json"), &summary_text).map_err(|e| e.to_string())?;
    let summary =
        Json::parse(&summary_text).map_err(|e| format!("the script's summary is not JSON: {e}"))?;
    println!(
        "fixtures: the script finished; {} connections recorded in {}",
        proxy.connections(),
        frames_dir.display()
    );

    let exchanges = load_capture(&frames_dir)?;
    let fixtures = select(&exchanges)?;
    write_out(
        out,
        &fixtures,
        &exchanges,
        &summary,
        &nisshi_version,
        &broker_args,
    )?;
    println!(
        "fixtures: wrote {} files and MANIFEST.md to {}",
        fixtures.len(),
        out.display()
    );
    for fixture in &fixtures {
        println!("  {:>6}  {}", fixture.bytes.len(), fixture.file);
    }
    println!(
        "fixtures: full capture, nisshi log and summary kept in {}",
        work.display()
    );
    Ok(())
}

/// `<target>/xtask/fixtures-capture`, next to the running binary's target
/// directory, or a temporary directory.
fn capture_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .filter(|target| target.join("CACHEDIR.TAG").is_file())
        .map_or_else(
            || std::env::temp_dir().join(format!("kmirror-fixtures-{}", std::process::id())),
            |target| target.join("xtask").join("fixtures-capture"),
        )
}

fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listener.local_addr().map_err(|e| e.to_string())
}

fn wait_for_port(addr: SocketAddr, child: &mut Child, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "nisshi exited ({status}) before accepting on {addr}; log:\n{}",
                log_tail(log)
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "nisshi did not accept on {addr} within 30 s; log:\n{}",
                log_tail(log)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Runs the Python exchange; returns its stdout (the JSON summary).
fn run_script(
    python: &Path,
    script: &Path,
    proxy: SocketAddr,
    timeout: Duration,
) -> Result<String> {
    println!("fixtures: running {} --bootstrap {proxy}", script.display());
    let mut child = KillOnDrop(
        Command::new(python)
            .arg(script)
            .args(["--bootstrap", &proxy.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?,
    );
    let mut stdout = child.0.stdout.take().ok_or("no stdout pipe")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                return Err(format!(
                    "the Python exchange did not finish within {} s",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for the script failed: {e}")),
        }
    };
    let text = reader.join().map_err(|_| "the stdout reader panicked")?;
    if !status.success() {
        return Err(format!(
            "the Python exchange failed ({status}); its stdout:\n{text}"
        ));
    }
    Ok(text)
}

fn load_capture(dir: &Path) -> Result<Vec<Exchange>> {
    let mut by_seq: BTreeMap<u32, Exchange> = BTreeMap::new();
    let mut responses: Vec<(RecordedName, Vec<u8>)> = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = record_proxy::parse_name(&file_name) else {
            eprintln!("fixtures: note: ignoring {file_name}");
            continue;
        };
        let bytes = std::fs::read(entry.path()).map_err(|e| e.to_string())?;
        if name.is_request {
            by_seq.insert(
                name.seq,
                Exchange {
                    name,
                    request: bytes,
                    response: None,
                },
            );
        } else {
            responses.push((name, bytes));
        }
    }
    for (name, bytes) in responses {
        if let Some(exchange) = by_seq.get_mut(&name.seq) {
            exchange.response = Some(bytes);
        }
    }
    if by_seq.is_empty() {
        return Err(format!("nothing was recorded in {}", dir.display()));
    }
    Ok(by_seq.into_values().collect())
}

/// Topic name to topic id, from every Metadata response in the capture.
fn topic_ids(exchanges: &[Exchange]) -> HashMap<String, [u8; 16]> {
    let mut ids = HashMap::new();
    for exchange in exchanges
        .iter()
        .filter(|x| x.name.api_key == wire::METADATA)
    {
        let Some(response) = &exchange.response else {
            continue;
        };
        if let Ok(metadata) = wire::metadata_response(response, exchange.name.api_version) {
            for topic in metadata.topics {
                if let (Some(name), Some(id)) = (topic.name, topic.id)
                    && id != [0; 16]
                {
                    ids.insert(name, id);
                }
            }
        }
    }
    ids
}

fn is_topic(topic: &TopicRef, name: &str, ids: &HashMap<String, [u8; 16]>) -> bool {
    match topic {
        TopicRef::Name(n) => n == name,
        TopicRef::Id(id) => ids.get(name) == Some(id),
    }
}

fn describe_topic(topic: &TopicRef) -> String {
    match topic {
        TopicRef::Name(name) => format!("topic `{name}`"),
        TopicRef::Id(id) => format!("topic id `{}`", wire::uuid_string(id)),
    }
}

/// Describes the batches in a RECORDS field and checks them against the
/// golden batch (one batch of 20 records with the codec's attribute).
fn describe_records(records: &[u8], codec: &str, check: bool) -> Result<String> {
    let batches = wire::batches(records)?;
    let mut text = format!(
        "{} bytes of records, {} batch(es)",
        records.len(),
        batches.len()
    );
    for batch in &batches {
        let _ = write!(
            text,
            "; batch at base offset {}: {} bytes, magic {}, attributes 0x{:04x} (compression {}), \
             {} records (last offset delta {}), base timestamp {}, max timestamp {}, \
             producer id {}, epoch {}, base sequence {}",
            batch.base_offset,
            batch.size,
            batch.magic,
            batch.attributes,
            batch.codec(),
            batch.record_count,
            batch.last_offset_delta,
            batch.base_timestamp,
            batch.max_timestamp,
            batch.producer_id,
            batch.producer_epoch,
            batch.base_sequence,
        );
    }
    if check {
        match batches.as_slice() {
            [batch] if batch.record_count == RECORDS && batch.codec() == codec => {}
            _ => {
                return Err(format!(
                    "expected one {codec} batch of {RECORDS} records, found: {text}"
                ));
            }
        }
    }
    Ok(text)
}

/// Parses every Produce request and every Fetch and Metadata response of
/// the capture completely, and warns about those that do not parse (they
/// cannot be selected).
fn check_parses(exchanges: &[Exchange]) {
    for x in exchanges {
        let v = x.name.api_version;
        let response = x.response.as_deref();
        let result = match (x.name.api_key, response) {
            (wire::PRODUCE, _) => wire::produce_request(&x.request).map(drop),
            (wire::FETCH, Some(r)) => wire::fetch_response(r, v).map(drop),
            (wire::METADATA, Some(r)) => wire::metadata_response(r, v).map(drop),
            _ => Ok(()),
        };
        if let Err(e) = result {
            eprintln!(
                "fixtures: warning: cannot parse {} v{v} (seq {}, c{}): {e}",
                record_proxy::api_name(x.name.api_key),
                x.name.seq,
                x.name.conn
            );
        }
    }
}

fn select(exchanges: &[Exchange]) -> Result<Vec<Fixture>> {
    check_parses(exchanges);
    let ids = topic_ids(exchanges);
    let mut fixtures = Vec::new();

    // ApiVersions: the first exchange the broker answered without error.
    let api_versions = exchanges
        .iter()
        .filter(|x| x.name.api_key == wire::API_VERSIONS)
        .find(|x| {
            x.response
                .as_deref()
                .and_then(|r| wire::api_versions_error(r).ok())
                == Some(0)
        })
        .ok_or("no successful ApiVersions exchange in the capture")?;
    let earlier_errors: Vec<String> = exchanges
        .iter()
        .filter(|x| x.name.api_key == wire::API_VERSIONS && x.name.seq < api_versions.name.seq)
        .map(|x| {
            let code = x.response.as_deref().map(wire::api_versions_error);
            format!("v{} answered with {code:?}", x.name.api_version)
        })
        .collect();
    let mut notes = "first successful ApiVersions exchange (error code 0)".to_owned();
    if !earlier_errors.is_empty() {
        let _ = write!(notes, "; earlier attempts: {}", earlier_errors.join(", "));
    }
    push_pair(
        &mut fixtures,
        api_versions,
        "ApiVersions",
        "apiversions",
        &notes,
        &notes,
    )?;

    // Metadata: the first response that describes a golden topic.
    let metadata = exchanges
        .iter()
        .filter(|x| x.name.api_key == wire::METADATA)
        .find_map(|x| {
            let response = x.response.as_deref()?;
            let wire::MetadataResponse { brokers, topics } =
                wire::metadata_response(response, x.name.api_version).ok()?;
            let golden: Vec<String> = topics
                .iter()
                .filter(|t| t.error_code == 0 && t.partitions > 0)
                .filter_map(|t| t.name.clone())
                .filter(|n| n.starts_with("golden-"))
                .collect();
            if golden.is_empty() {
                return None;
            }
            let brokers: Vec<String> = brokers
                .iter()
                .map(|(id, host, port)| format!("{id}={host}:{port}"))
                .collect();
            let ids: Vec<String> = topics
                .iter()
                .map(|t| {
                    let id =
                        t.id.map_or_else(|| "-".to_owned(), |id| wire::uuid_string(&id));
                    format!(
                        "`{}` ({} partitions, error {}, id {id})",
                        t.name.as_deref().unwrap_or("?"),
                        t.partitions,
                        t.error_code
                    )
                })
                .collect();
            Some((
                x,
                format!(
                    "brokers [{}]; topics {}",
                    brokers.join(", "),
                    ids.join(", ")
                ),
            ))
        })
        .ok_or("no Metadata response naming a golden topic in the capture")?;
    push_pair(
        &mut fixtures,
        metadata.0,
        "Metadata",
        "metadata",
        "the request that produced the response below",
        &format!(
            "first Metadata response describing a golden topic: {}",
            metadata.1
        ),
    )?;

    for codec in CODECS {
        let topic = format!("golden-{codec}");
        // Produce: the first request carrying this topic's records.
        let produce = exchanges
            .iter()
            .filter(|x| x.name.api_key == wire::PRODUCE)
            .find_map(|x| {
                let request = wire::produce_request(&x.request).ok()?;
                let (t, partitions) = request.topics.iter().find(|(t, parts)| {
                    is_topic(t, &topic, &ids)
                        && parts
                            .iter()
                            .any(|p| p.records.is_some_and(|r| !r.is_empty()))
                })?;
                let part = partitions
                    .iter()
                    .find(|p| p.records.is_some_and(|r| !r.is_empty()))?;
                Some((
                    x,
                    request.clone(),
                    describe_topic(t),
                    part.partition,
                    part.records?,
                ))
            })
            .ok_or_else(|| format!("no Produce request for {topic} in the capture"))?;
        let (exchange, request, topic_text, partition, records) = produce;
        let notes = format!(
            "{topic_text} partition {partition}, acks {}, transactional id {:?}, client id {:?}: {}",
            request.acks,
            request.transactional_id,
            request.header.client_id,
            describe_records(records, codec, true)
                .map_err(|e| format!("Produce for {topic}: {e}"))?
        );
        fixtures.push(Fixture {
            file: format!("produce-{codec}-v{}-request.bin", exchange.name.api_version),
            api: "Produce",
            api_version: exchange.name.api_version,
            direction: "request",
            correlation_id: correlation_id(&exchange.request, 4),
            bytes: exchange.request.clone(),
            notes,
        });

        // Fetch: the first response with records for this topic.
        let fetch = exchanges
            .iter()
            .filter(|x| x.name.api_key == wire::FETCH)
            .find_map(|x| {
                let response = x.response.as_deref()?;
                let topics = wire::fetch_response(response, x.name.api_version).ok()?;
                let (t, partitions) = topics.iter().find(|(t, parts)| {
                    is_topic(t, &topic, &ids)
                        && parts
                            .iter()
                            .any(|p| p.records.is_some_and(|r| !r.is_empty()))
                })?;
                let part = partitions
                    .iter()
                    .find(|p| p.records.is_some_and(|r| !r.is_empty()))?;
                let others = topics.len() - 1;
                Some((
                    x,
                    response,
                    describe_topic(t),
                    part.partition,
                    part.error_code,
                    part.high_watermark,
                    part.records?,
                    others,
                ))
            })
            .ok_or_else(|| format!("no Fetch response with records of {topic} in the capture"))?;
        let (
            exchange,
            response,
            topic_text,
            partition,
            error_code,
            high_watermark,
            records,
            others,
        ) = fetch;
        let mut notes = format!(
            "{topic_text} partition {partition}, error {error_code}, high watermark {high_watermark}: {}",
            describe_records(records, codec, false)?
        );
        if others > 0 {
            let _ = write!(notes, "; the response also has {others} other topic(s)");
        }
        if let Err(e) = describe_records(records, codec, true) {
            let _ = write!(notes, ". NOTE: {e}");
            eprintln!("fixtures: note: Fetch for {topic}: {e}");
        }
        fixtures.push(Fixture {
            file: format!("fetch-{codec}-v{}-response.bin", exchange.name.api_version),
            api: "Fetch",
            api_version: exchange.name.api_version,
            direction: "response",
            correlation_id: correlation_id(response, 0),
            bytes: response.to_vec(),
            notes,
        });
    }
    Ok(fixtures)
}

fn correlation_id(frame: &[u8], at: usize) -> i32 {
    frame
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(-1, i32::from_be_bytes)
}

fn push_pair(
    fixtures: &mut Vec<Fixture>,
    exchange: &Exchange,
    api: &'static str,
    stem: &str,
    request_notes: &str,
    response_notes: &str,
) -> Result<()> {
    let v = exchange.name.api_version;
    let response = exchange
        .response
        .clone()
        .ok_or_else(|| format!("{api} v{v} has no response"))?;
    fixtures.push(Fixture {
        file: format!("{stem}-v{v}-request.bin"),
        api,
        api_version: v,
        direction: "request",
        correlation_id: correlation_id(&exchange.request, 4),
        bytes: exchange.request.clone(),
        notes: request_notes.to_owned(),
    });
    fixtures.push(Fixture {
        file: format!("{stem}-v{v}-response.bin"),
        api,
        api_version: v,
        direction: "response",
        correlation_id: correlation_id(&response, 0),
        bytes: response,
        notes: response_notes.to_owned(),
    });
    Ok(())
}

/// Versions of every API librdkafka used in the capture.
fn negotiated(exchanges: &[Exchange]) -> BTreeMap<i16, (BTreeSet<i16>, usize)> {
    let mut seen: BTreeMap<i16, (BTreeSet<i16>, usize)> = BTreeMap::new();
    for exchange in exchanges {
        let entry = seen.entry(exchange.name.api_key).or_default();
        entry.0.insert(exchange.name.api_version);
        entry.1 += 1;
    }
    seen
}

fn write_out(
    out: &Path,
    fixtures: &[Fixture],
    exchanges: &[Exchange],
    summary: &Json,
    nisshi_version: &str,
    broker_args: &[String],
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    // Stale fixtures from an earlier run (other versions) must not linger.
    for entry in std::fs::read_dir(out).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|ext| ext == "bin") {
            std::fs::remove_file(&path)
                .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
    }
    for fixture in fixtures {
        let path = out.join(&fixture.file);
        std::fs::write(&path, &fixture.bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let manifest = manifest(fixtures, exchanges, summary, nisshi_version, broker_args)?;
    let path = out.join("MANIFEST.md");
    std::fs::write(&path, manifest).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn manifest(
    fixtures: &[Fixture],
    exchanges: &[Exchange],
    summary: &Json,
    nisshi_version: &str,
    broker_args: &[String],
) -> Result<String> {
    let librdkafka = summary
        .get("librdkafka")
        .and_then(Json::as_str)
        .unwrap_or("unknown");
    let confluent = summary
        .get("confluent_kafka")
        .and_then(Json::as_str)
        .unwrap_or("unknown");
    let records = summary
        .get("records")
        .and_then(Json::as_array)
        .ok_or("the summary has no records")?;
    let topics = summary
        .get("topics")
        .and_then(Json::as_object)
        .ok_or("the summary has no topics")?;
    let mut m = String::new();
    let _ = writeln!(m, "# Golden fixtures: librdkafka and nisshi\n");
    let _ = writeln!(
        m,
        "Captured by `cargo xtask fixtures` (`xtask/src/fixtures.rs`, which runs \
         `xtask/{SCRIPT}` through the recording proxy of `cargo xtask record-proxy`). \
         Do not edit by hand; rerun the command instead.\n"
    );
    let _ = writeln!(
        m,
        "- Client: librdkafka {librdkafka} (PyPI confluent-kafka {confluent}), client id `kmirror-golden`"
    );
    let _ = writeln!(
        m,
        "- Broker: {nisshi_version}, started as `nisshi {}`",
        broker_args.join(" ")
    );
    let _ = writeln!(
        m,
        "  (ports chosen at run time; the advertised listener is the proxy's, so every connection was recorded)"
    );
    let _ = writeln!(
        m,
        "- Command: `cargo xtask fixtures` from the workspace root\n"
    );
    let _ = writeln!(
        m,
        "Each `.bin` file is one Kafka frame WITHOUT its 4-byte size prefix. A request \
         file starts with the request header (api key i16, api version i16, correlation id i32, \
         client id, then tagged fields in flexible versions); a response file starts with the \
         correlation id (then tagged fields in flexible versions, except ApiVersions, whose \
         response header is always v0).\n"
    );

    let _ = writeln!(m, "## API versions librdkafka used with nisshi\n");
    let _ = writeln!(m, "| API | Key | Version(s) | Requests in the capture |");
    let _ = writeln!(m, "|---|---|---|---|");
    for (key, (versions, count)) in negotiated(exchanges) {
        let versions: Vec<String> = versions.iter().map(|v| format!("v{v}")).collect();
        let _ = writeln!(
            m,
            "| {} | {key} | {} | {count} |",
            record_proxy::api_name(key),
            versions.join(", ")
        );
    }

    let _ = writeln!(m, "\n## Files\n");
    let _ = writeln!(
        m,
        "| File | API | Version | Frame | Correlation id | Bytes | Contents |"
    );
    let _ = writeln!(m, "|---|---|---|---|---|---|---|");
    for f in fixtures {
        let _ = writeln!(
            m,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            f.file,
            f.api,
            f.api_version,
            f.direction,
            f.correlation_id,
            f.bytes.len(),
            f.notes.replace('|', "\\|")
        );
    }
    let total: usize = fixtures.iter().map(|f| f.bytes.len()).sum();
    let _ = writeln!(m, "\nTotal: {total} bytes in {} files.\n", fixtures.len());

    let _ = writeln!(m, "## Records\n");
    let _ = writeln!(
        m,
        "Every topic `golden-<codec>` (codecs {}) has 1 partition and received the same {RECORDS} \
         records from one idempotent producer (`enable.idempotence=true`, `linger.ms=100`, \
         `compression.type=<codec>`), in one batch, at offsets 0..{}; timestamps are \
         CreateTime, set by the producer. Null is shown as `null`; headers are in wire order, \
         repeated keys included. A consumer (assign partition 0 at offset 0) read them back \
         identically from every topic.\n",
        CODECS.join(", "),
        RECORDS - 1
    );
    let _ = writeln!(m, "| Offset | Key | Value | Headers | Timestamp (ms) |");
    let _ = writeln!(m, "|---|---|---|---|---|");
    for (offset, record) in records.iter().enumerate() {
        let show = |v: Option<&Json>| match v.and_then(Json::as_str) {
            Some(s) => format!("`{s}`"),
            None => "null".to_owned(),
        };
        let headers: Vec<String> = record
            .get("headers")
            .and_then(Json::as_array)
            .unwrap_or_default()
            .iter()
            .map(|h| {
                let pair = h.as_array().unwrap_or_default();
                format!("{}={}", show(pair.first()), show(pair.get(1)))
            })
            .collect();
        let timestamp = record.get("timestamp").and_then(Json::as_i64).unwrap_or(-1);
        let _ = writeln!(
            m,
            "| {offset} | {} | {} | {} | {timestamp} |",
            show(record.get("key")),
            show(record.get("value")),
            headers.join(", ")
        );
    }
    let mut mismatched = Vec::new();
    for (topic, info) in topics {
        if info.get("matches") != Some(&Json::Bool(true)) {
            mismatched.push(topic.clone());
        }
    }
    if !mismatched.is_empty() {
        return Err(format!("the script reports mismatches in {mismatched:?}"));
    }
    Ok(m)
}
