//! The binary's log output: `tracing` events on stderr, as text lines or
//! one JSON object per line, filtered per module in the `RUST_LOG`
//! convention, and written around the terminal's progress line.
//!
//! This module owns the subscriber, the filter, the JSON line format and
//! the [`ProgressLine`]: a log line written while a progress line is shown
//! first clears it, then redraws it below, so the two never run into each
//! other. It never decides what is logged: the engine and the binary do.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::str::FromStr as _;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;

use crate::args::LogFormat;

/// The environment variable that sets the log filter.
pub const FILTER_VAR: &str = "RUST_LOG";

/// The log filter: `RUST_LOG` if set (e.g. `kmirror=debug,kmirror_pool=trace`,
/// or a bare level such as `warn`), else INFO (DEBUG with `verbose`) for
/// everything. As in env_logger, a target also covers the targets it is a
/// prefix of (`kmirror` covers `kmirror_pool` and `kmirror_cli`), and the
/// longest match wins; targets not named are off unless a bare level is
/// given.
///
/// # Errors
///
/// A message naming the variable, its value and the syntax if `RUST_LOG`
/// cannot be read as a filter.
pub fn filter(rust_log: Option<&str>, verbose: bool) -> Result<Targets, String> {
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        Some(spec) => Targets::from_str(spec).map_err(|e| {
            format!(
                "{FILTER_VAR}={spec:?} is not a log filter ({e}); write comma-separated \
                 TARGET=LEVEL pairs or a bare LEVEL (trace, debug, info, warn, error, off), e.g. \
                 {FILTER_VAR}=kmirror=debug,kmirror_pool=trace"
            )
        }),
        None => Ok(Targets::new().with_default(if verbose {
            LevelFilter::DEBUG
        } else {
            LevelFilter::INFO
        })),
    }
}

/// Installs the subscriber: `filter` (see [`filter`]), `format`, on
/// stderr through the [`ProgressLine`], targets shown when `RUST_LOG`
/// chose them, colour only on a terminal. Does nothing if a subscriber is
/// already installed.
pub fn init(filter: Targets, format: LogFormat, show_targets: bool) {
    let _ = FORMAT.set(format);
    let builder = tracing_subscriber::fmt()
        .with_writer(StderrAroundProgress)
        .with_max_level(Level::TRACE);
    let subscriber: Box<dyn Subscriber + Send + Sync> = match format {
        LogFormat::Text => Box::new(
            builder
                .with_target(show_targets)
                .with_ansi(std::io::stderr().is_terminal())
                .finish()
                .with(filter),
        ),
        LogFormat::Json => Box::new(
            builder
                .with_ansi(false)
                .event_format(JsonLines)
                .finish()
                .with(filter),
        ),
    };
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The format [`init`] installed.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Whether log lines are JSON (`--log.format json`): then no progress
/// line is drawn, even on a terminal, and status lines are log events.
pub fn json_lines() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}

/// Logs a [`Notice`](crate::settings::Notice) at its level, with the
/// target `kmirror_cli::settings` (what `RUST_LOG` names to filter them).
pub fn notice(notice: &crate::settings::Notice) {
    match notice.level {
        crate::settings::NoticeLevel::Info => {
            tracing::info!(target: "kmirror_cli::settings", "{}", notice.text)
        }
        crate::settings::NoticeLevel::Warn => {
            tracing::warn!(target: "kmirror_cli::settings", "{}", notice.text)
        }
    }
}

/// The progress line at the bottom of a terminal, redrawn in place
/// (`\r`, erase line, text, no newline). Log lines go above it.
#[derive(Debug, Default)]
pub struct ProgressLine {
    shown: Mutex<Option<String>>,
}

/// Carriage return and "erase the whole line".
const ERASE_LINE: &str = "\r\x1b[2K";

impl ProgressLine {
    /// The process's progress line (stderr).
    pub fn stderr() -> &'static ProgressLine {
        static LINE: OnceLock<ProgressLine> = OnceLock::new();
        LINE.get_or_init(ProgressLine::default)
    }

    /// Draws `text` in place of the current progress line.
    pub fn show(&self, text: &str) {
        self.show_on(&mut std::io::stderr().lock(), text);
    }

    /// Erases the progress line, if one is shown.
    pub fn clear(&self) {
        self.clear_on(&mut std::io::stderr().lock());
    }

    fn show_on(&self, out: &mut dyn std::io::Write, text: &str) {
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        let _ = write!(out, "{ERASE_LINE}{text}");
        let _ = out.flush();
        *shown = Some(text.to_owned());
    }

    fn clear_on(&self, out: &mut dyn std::io::Write) {
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        if shown.take().is_some() {
            let _ = write!(out, "{ERASE_LINE}");
            let _ = out.flush();
        }
    }

    /// Writes `line` (whole log lines) above the progress line: erases
    /// it, writes the line, draws it again.
    fn write_above(&self, out: &mut dyn std::io::Write, line: &[u8]) {
        let shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        if shown.is_some() {
            let _ = out.write_all(ERASE_LINE.as_bytes());
        }
        let _ = out.write_all(line);
        if let Some(text) = shown.as_deref() {
            let _ = out.write_all(text.as_bytes());
        }
        let _ = out.flush();
    }
}

/// Gives the formatter a buffer per event, written above the progress
/// line in one piece when the event is done.
struct StderrAroundProgress;

impl<'a> MakeWriter<'a> for StderrAroundProgress {
    type Writer = LogLine;

    fn make_writer(&'a self) -> Self::Writer {
        LogLine(Vec::with_capacity(256))
    }
}

/// One event's bytes.
struct LogLine(Vec<u8>);

impl std::io::Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            ProgressLine::stderr().write_above(&mut std::io::stderr().lock(), &self.0);
        }
    }
}

/// One JSON object per event and line: `time` (RFC 3339, UTC), `level`,
/// `target`, `message`, `fields` (the event's other fields), and `spans`
/// (the spans it is in, outermost first: `name`, and `fields` as text,
/// e.g. `index=0`) when there are any.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        let meta = event.metadata();
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let mut line = String::with_capacity(256);
        line.push_str("{\"time\":");
        push_json_string(&mut line, time.trim());
        line.push_str(",\"level\":");
        push_json_string(&mut line, meta.level().as_str());
        line.push_str(",\"target\":");
        push_json_string(&mut line, meta.target());
        line.push_str(",\"message\":");
        push_json_string(&mut line, fields.message.as_deref().unwrap_or(""));
        line.push_str(",\"fields\":{");
        line.push_str(&fields.others);
        line.push('}');
        if let Some(scope) = ctx.event_scope() {
            let mut first = true;
            for span in scope.from_root() {
                line.push_str(if first { ",\"spans\":[" } else { "," });
                first = false;
                line.push_str("{\"name\":");
                push_json_string(&mut line, span.name());
                let extensions = span.extensions();
                if let Some(fields) = extensions
                    .get::<FormattedFields<N>>()
                    .filter(|f| !f.fields.is_empty())
                {
                    line.push_str(",\"fields\":");
                    push_json_string(&mut line, &fields.fields);
                }
                line.push('}');
            }
            if !first {
                line.push(']');
            }
        }
        line.push('}');
        writeln!(writer, "{line}")
    }
}

/// An event's fields as JSON: the message apart, the others as members.
#[derive(Default)]
struct JsonFields {
    message: Option<String>,
    /// `"name":value` members, comma-separated.
    others: String,
}

impl JsonFields {
    fn member(&mut self, field: &Field) {
        if !self.others.is_empty() {
            self.others.push(',');
        }
        push_json_string(&mut self.others, field.name());
        self.others.push(':');
    }

    fn string(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.member(field);
            push_json_string(&mut self.others, value);
        }
    }
}

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.string(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field);
        let _ = write!(self.others, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field);
        let _ = write!(self.others, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field);
        let _ = write!(self.others, "{value}");
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.member(field);
            let _ = write!(self.others, "{value}");
        } else {
            self.string(field, &value.to_string());
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.string(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.string(field, &format!("{value:?}"));
    }
}

/// Appends `value` as a JSON string (quoted, escaped).
fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        push_json_string(&mut out, "a \"b\"\\\n\u{1}é");
        assert_eq!(out, r#""a \"b\"\\\n\u0001é""#);
    }

    /// A WARN written between two redraws of the progress line used to
    /// be glued to the end of the progress text.
    #[test]
    fn log_lines_go_above_the_progress_line() {
        let line = ProgressLine::default();
        let mut out = Vec::new();
        line.write_above(&mut out, b"before\n");
        line.show_on(&mut out, "10 records");
        line.write_above(&mut out, b"WARN retrying\n");
        line.show_on(&mut out, "20 records");
        line.clear_on(&mut out);
        line.write_above(&mut out, b"after\n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "before\n\r\x1b[2K10 records\r\x1b[2KWARN retrying\n10 records\r\x1b[2K20 records\
             \r\x1b[2Kafter\n"
        );
    }

    #[test]
    fn the_filter_follows_rust_log_then_verbose() {
        use tracing_subscriber::filter::LevelFilter;
        let f = filter(Some("kmirror=debug,kmirror_pool=trace"), false).unwrap();
        assert!(f.would_enable("kmirror::engine", &Level::DEBUG));
        assert!(!f.would_enable("kmirror::engine", &Level::TRACE));
        assert!(f.would_enable("kmirror_pool::connection", &Level::TRACE));
        // As in env_logger, a target names itself and every target it is
        // a prefix of: `kmirror` covers kmirror_cli too, the longest
        // match wins.
        assert!(f.would_enable("kmirror_cli", &Level::DEBUG));
        assert!(!f.would_enable("rustls", &Level::ERROR));
        let f = filter(Some("warn"), true).unwrap();
        assert!(!f.would_enable("kmirror", &Level::INFO));
        let f = filter(None, true).unwrap();
        assert_eq!(f.default_level(), Some(LevelFilter::DEBUG));
        let f = filter(Some("  "), false).unwrap();
        assert_eq!(f.default_level(), Some(LevelFilter::INFO));
        let e = filter(Some("kmirror=loud"), false).unwrap_err();
        assert!(e.contains("RUST_LOG=\"kmirror=loud\""), "{e}");
    }
}
