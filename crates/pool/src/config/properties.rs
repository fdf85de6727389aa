//! Java `.properties` files, read the way Kafka's tools read them.
//!
//! This file owns [`Properties`]: the ordered key/value pairs of a file, with
//! the line each came from. It knows the syntax of
//! `java.util.Properties.load` and nothing about what the keys mean (that is
//! [`ClientConfig`](super::ClientConfig)'s job). It never panics, whatever
//! the input, and never logs a value. See [`Properties`] for the syntax and
//! the encoding.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use super::error::ConfigError;
use super::secret::{REDACTED, is_secret_key};

/// The largest file [`Properties::load`] reads. Properties files are a few
/// kilobytes; the limit catches a wrong path such as `/dev/zero`.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The source name of text given to [`Properties::parse`].
const DEFAULT_SOURCE_NAME: &str = "properties text";

/// One key/value pair of a [`Properties`].
#[derive(Clone, PartialEq, Eq)]
pub struct Property {
    key: String,
    value: String,
    line: Option<usize>,
    overridden_lines: Vec<usize>,
}

impl Property {
    /// The key, unescaped.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value, unescaped, trailing whitespace kept.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The 1-based line where the winning occurrence starts; `None` for a
    /// pair added with [`Properties::insert`].
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The lines of earlier occurrences of the same key, whose values were
    /// overridden by this one (empty if the key appears once).
    pub fn overridden_lines(&self) -> &[usize] {
        &self.overridden_lines
    }
}

impl fmt::Debug for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value: &dyn fmt::Debug = if is_secret_key(&self.key) {
            &Redacted
        } else {
            &self.value
        };
        f.debug_struct("Property")
            .field("key", &self.key)
            .field("value", value)
            .field("line", &self.line)
            .field("overridden_lines", &self.overridden_lines)
            .finish()
    }
}

/// Prints `[redacted]` in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// The key/value pairs of a `.properties` file, in the order their keys
/// first appear.
///
/// `Debug` prints the pairs with the values of secret keys (see
/// [`is_secret_key`](super::is_secret_key)) redacted.
///
/// # Syntax (as `java.util.Properties.load`)
///
/// - Lines end with `\n`, `\r\n` or `\r`. Leading spaces, tabs and form
///   feeds are ignored; blank lines are skipped.
/// - A line whose first non-blank character is `#` or `!` is a comment. A
///   comment never continues onto the next line.
/// - A line ending in an odd number of backslashes continues on the next
///   line; the backslash, the line break and the next line's leading blanks
///   are removed. A backslash at the very end of the text is dropped.
/// - The key ends at the first unescaped `=`, `:`, space, tab or form feed.
///   Blanks around the separator are skipped, and so is one `=` or `:` after
///   blank-separated keys (`key = value`, `key: value`, `key value`).
/// - The value is the rest of the line. **Trailing whitespace is kept**, as
///   Java keeps it (Kafka then trims values when it interprets them, and so
///   does [`ClientConfig`](super::ClientConfig)).
/// - Escapes in keys and values: `\t`, `\n`, `\r`, `\f`, `\uXXXX` (UTF-16
///   code units; surrogate pairs are combined), and a backslash before any
///   other character stands for that character (`\\`, `\=`, `\:`, `\ `,
///   `\#`). A malformed `\uXXXX` or an unpaired surrogate is a
///   [`ConfigError::Syntax`] error, the only syntax error there is.
/// - A key given twice: the last value wins, as in Java, and the lines of
///   the overridden occurrences are kept ([`Property::overridden_lines`]) so
///   that a caller can warn about them.
///
/// # Encoding
///
/// Kafka's tools read these files with `Properties.load(InputStream)`, which
/// decodes ISO-8859-1 (other characters must be written as `\uXXXX`).
/// [`Properties::load`] reads files as UTF-8, because that is what editors
/// write today; a file that is not valid UTF-8 is decoded as ISO-8859-1, as
/// Java would. A leading UTF-8 byte order mark is skipped (Java would make
/// it part of the first key). The two readings differ only for non-ASCII
/// bytes, which Kafka keys and values practically never contain.
#[derive(Clone, PartialEq, Eq)]
pub struct Properties {
    source_name: String,
    entries: Vec<Property>,
    index: HashMap<String, usize>,
}

impl Default for Properties {
    fn default() -> Self {
        Properties::new()
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for p in &self.entries {
            if is_secret_key(&p.key) {
                map.entry(&p.key, &Redacted);
            } else {
                map.entry(&p.key, &p.value);
            }
        }
        map.finish()
    }
}

impl Properties {
    /// An empty set of properties.
    pub fn new() -> Self {
        Properties {
            source_name: DEFAULT_SOURCE_NAME.to_owned(),
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Parses `.properties` text (see [`Properties`] for the syntax). Errors
    /// name the source as `properties text`.
    pub fn parse(text: &str) -> Result<Properties, ConfigError> {
        Properties::parse_named(text, DEFAULT_SOURCE_NAME)
    }

    /// Parses `.properties` text; `source_name` (a path, or a description
    /// such as `--consumer-property`) names it in errors and warnings.
    pub fn parse_named(text: &str, source_name: &str) -> Result<Properties, ConfigError> {
        let mut props = Properties::new();
        source_name.clone_into(&mut props.source_name);
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = NaturalLines::new(text);
        while let Some((line_no, raw)) = lines.next() {
            let start = raw.trim_start_matches(is_blank);
            if start.is_empty() || start.starts_with(['#', '!']) {
                continue;
            }
            let mut logical = String::new();
            let mut current = start;
            loop {
                let trailing = current.len() - current.trim_end_matches('\\').len();
                if trailing % 2 == 1 {
                    logical.push_str(current.strip_suffix('\\').unwrap_or(current));
                    match lines.next() {
                        Some((_, next)) => current = next.trim_start_matches(is_blank),
                        None => break,
                    }
                } else {
                    logical.push_str(current);
                    break;
                }
            }
            let (raw_key, raw_value) = split_key_value(&logical);
            let syntax = |reason: String| ConfigError::Syntax {
                source_name: source_name.to_owned(),
                line: line_no,
                reason,
            };
            let key = unescape(raw_key).map_err(|e| syntax(e.describe("the key", true)))?;
            let value = unescape(raw_value).map_err(|e| {
                syntax(e.describe(&format!("the value of {key}"), !is_secret_key(&key)))
            })?;
            props.set(key, value, Some(line_no));
        }
        Ok(props)
    }

    /// Reads and parses a `.properties` file (UTF-8, or ISO-8859-1 if it is
    /// not valid UTF-8; at most [`MAX_FILE_BYTES`]). The error names the path
    /// and the operating system's reason.
    pub fn load(path: &Path) -> Result<Properties, ConfigError> {
        read_file(path, "properties file", None)
    }

    /// Like [`Properties::load`], for a file the user passed with a
    /// command-line flag: `what` names the file in errors (`consumer config`)
    /// and `flag` is the flag to fix (`--consumer.config`), e.g. "cannot read
    /// consumer config /x/consumer.properties: No such file or directory;
    /// pass the path of an existing file to --consumer.config".
    pub fn load_for(path: &Path, what: &str, flag: &str) -> Result<Properties, ConfigError> {
        read_file(path, what, Some(flag))
    }

    /// The file's path, or the name given to [`Properties::parse_named`].
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The value of `key` (the last one if the key was given more than once).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.get_property(key).map(Property::value)
    }

    /// The pair for `key`, with its line.
    pub fn get_property(&self, key: &str) -> Option<&Property> {
        self.index.get(key).and_then(|&i| self.entries.get(i))
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Sets `key` to `value` (e.g. a command-line override), returning the
    /// previous value. A new key goes last; an existing key keeps its place
    /// and remembers the overridden line.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.set(key.into(), value.into(), None)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.index.remove(key)?;
        if i >= self.entries.len() {
            return None;
        }
        let removed = self.entries.remove(i);
        for slot in self.index.values_mut() {
            if *slot > i {
                *slot -= 1;
            }
        }
        Some(removed.value)
    }

    /// The number of distinct keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `(key, value)` pairs in the order the keys first appear.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// The pairs with their lines, in the order the keys first appear.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &Property> + '_ {
        self.entries.iter()
    }

    fn set(&mut self, key: String, value: String, line: Option<usize>) -> Option<String> {
        if let Some(existing) = self.index.get(&key).and_then(|&i| self.entries.get_mut(i)) {
            if let Some(old_line) = existing.line {
                existing.overridden_lines.push(old_line);
            }
            existing.line = line;
            return Some(std::mem::replace(&mut existing.value, value));
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push(Property {
            key,
            value,
            line,
            overridden_lines: Vec::new(),
        });
        None
    }
}

/// An iterator over the `(key, value)` pairs of a [`Properties`].
#[derive(Debug, Clone)]
pub struct Iter<'a>(std::slice::Iter<'a, Property>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|p| (p.key.as_str(), p.value.as_str()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Properties {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Properties {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut props = Properties::new();
        props.extend(iter);
        props
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Properties {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

/// Java's "white space" in properties files: space, tab, form feed.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// The lines of a text with their 1-based numbers; `\n`, `\r\n` and `\r`
/// each end a line.
struct NaturalLines<'a> {
    rest: Option<&'a str>,
    line: usize,
}

impl<'a> NaturalLines<'a> {
    fn new(text: &'a str) -> Self {
        NaturalLines {
            rest: Some(text),
            line: 0,
        }
    }
}

impl<'a> Iterator for NaturalLines<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        let rest = self.rest?;
        self.line += 1;
        match rest.find(['\n', '\r']) {
            Some(end) => {
                let line = rest.get(..end).unwrap_or("");
                let after = rest.get(end..).unwrap_or("");
                let after = after
                    .strip_prefix("\r\n")
                    .or_else(|| after.strip_prefix('\r'))
                    .or_else(|| after.strip_prefix('\n'))
                    .unwrap_or("");
                self.rest = Some(after);
                Some((self.line, line))
            }
            None => {
                self.rest = None;
                if rest.is_empty() {
                    None
                } else {
                    Some((self.line, rest))
                }
            }
        }
    }
}

/// Splits a logical line into the raw (still escaped) key and value, as
/// `Properties.load0` does.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut key_end = line.len();
    let mut value_start = line.len();
    let mut has_separator = false;
    let mut preceding_backslash = false;
    for (i, c) in line.char_indices() {
        if !preceding_backslash && (c == '=' || c == ':') {
            key_end = i;
            value_start = i + 1;
            has_separator = true;
            break;
        }
        if !preceding_backslash && is_blank(c) {
            key_end = i;
            value_start = i + c.len_utf8();
            break;
        }
        preceding_backslash = c == '\\' && !preceding_backslash;
    }
    let rest = line.get(value_start..).unwrap_or("");
    let mut start = rest.len();
    for (i, c) in rest.char_indices() {
        if is_blank(c) {
            continue;
        }
        if !has_separator && (c == '=' || c == ':') {
            has_separator = true;
            continue;
        }
        start = i;
        break;
    }
    (
        line.get(..key_end).unwrap_or(""),
        rest.get(start..).unwrap_or(""),
    )
}

/// A bad escape in a key or value.
#[derive(Debug)]
enum EscapeError {
    /// `\u` not followed by four hex digits; holds what followed.
    MalformedUnicode(String),
    /// A UTF-16 surrogate without its other half.
    LoneSurrogate(u32),
}

impl EscapeError {
    /// A sentence for a syntax error; the offending text is shown only if
    /// `show_text` (never for secret keys).
    fn describe(&self, place: &str, show_text: bool) -> String {
        match self {
            EscapeError::MalformedUnicode(after) if show_text => format!(
                "malformed \\uXXXX escape \"\\u{after}\" in {place}: \\u must be followed by \
                 four hex digits; write \\\\u for a literal backslash followed by u"
            ),
            EscapeError::MalformedUnicode(_) => format!(
                "malformed \\uXXXX escape in {place}: \\u must be followed by four hex digits; \
                 write \\\\u for a literal backslash followed by u"
            ),
            EscapeError::LoneSurrogate(unit) if show_text => format!(
                "escape \\u{unit:04X} in {place} is half of a UTF-16 surrogate pair without \
                 its other half; write the character itself or both halves"
            ),
            EscapeError::LoneSurrogate(_) => format!(
                "a \\uXXXX escape in {place} is half of a UTF-16 surrogate pair without its \
                 other half; write the character itself or both halves"
            ),
        }
    }
}

/// Reads four hex digits of a `\u` escape.
fn read_hex4(chars: &mut std::str::Chars<'_>) -> Result<u32, EscapeError> {
    let mut code = 0u32;
    let mut seen = String::new();
    for _ in 0..4 {
        match chars.next() {
            Some(c) => {
                seen.push(c);
                match c.to_digit(16) {
                    Some(d) => code = code * 16 + d,
                    None => return Err(EscapeError::MalformedUnicode(seen)),
                }
            }
            None => return Err(EscapeError::MalformedUnicode(seen)),
        }
    }
    Ok(code)
}

/// Resolves the escapes of a raw key or value (`loadConvert` in Java).
fn unescape(raw: &str) -> Result<String, EscapeError> {
    if !raw.contains('\\') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // A lone backslash at the end cannot come out of the line
            // reader; drop it like Java's line reader would.
            None => break,
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let unit = read_hex4(&mut chars)?;
                let code = match unit {
                    0xD800..=0xDBFF => {
                        let mut look = chars.clone();
                        let low = if look.next() == Some('\\') && look.next() == Some('u') {
                            read_hex4(&mut look).ok()
                        } else {
                            None
                        };
                        match low {
                            Some(low @ 0xDC00..=0xDFFF) => {
                                chars = look;
                                0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                            }
                            _ => return Err(EscapeError::LoneSurrogate(unit)),
                        }
                    }
                    _ => unit,
                };
                match char::from_u32(code) {
                    Some(ch) => out.push(ch),
                    None => return Err(EscapeError::LoneSurrogate(unit)),
                }
            }
            Some(other) => out.push(other),
        }
    }
    Ok(out)
}

/// Reads a file for [`Properties::load`] and [`Properties::load_for`].
fn read_file(path: &Path, what: &str, flag: Option<&str>) -> Result<Properties, ConfigError> {
    let read_error = |reason: String, hint: String| ConfigError::Read {
        what: what.to_owned(),
        path: path.to_owned(),
        reason,
        hint,
    };
    let to_flag = flag.map(|f| format!(" to {f}")).unwrap_or_default();
    let io_error = |e: std::io::Error| {
        let hint = match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                format!("make the file readable by this user or pass another path{to_flag}")
            }
            std::io::ErrorKind::IsADirectory => {
                format!("pass the path of a file, not a directory{to_flag}")
            }
            _ => format!("pass the path of an existing file{to_flag}"),
        };
        read_error(os_reason(&e), hint)
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_FILE_BYTES {
        return Err(read_error(
            format!(
                "the file is larger than {} MiB",
                MAX_FILE_BYTES / (1024 * 1024)
            ),
            format!("pass the path of a Kafka .properties file{to_flag}"),
        ));
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        // Not UTF-8: read it as ISO-8859-1, as Java does.
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    };
    Properties::parse_named(&text, &path.display().to_string())
}

/// The operating system's reason without Rust's ` (os error N)` suffix.
fn os_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text.get(..i).unwrap_or(&text).to_owned(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Properties {
        Properties::parse(text).unwrap()
    }

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn separators() {
        assert_eq!(
            pairs("a=1\nb:2\nc 3\nd = 4\ne : 5\nf\t6\ng  =  7\nh   8\n"),
            vec![
                p("a", "1"),
                p("b", "2"),
                p("c", "3"),
                p("d", "4"),
                p("e", "5"),
                p("f", "6"),
                p("g", "7"),
                p("h", "8"),
            ]
        );
        // Only one separator is skipped after blanks; the rest is the value.
        assert_eq!(pairs("a = = b"), vec![p("a", "= b")]);
        assert_eq!(pairs("a:=b"), vec![p("a", "=b")]);
        assert_eq!(pairs("a==b"), vec![p("a", "=b")]);
        assert_eq!(pairs("url=http://x:80/"), vec![p("url", "http://x:80/")]);
    }

    #[test]
    fn leading_whitespace_comments_and_blank_lines() {
        let text = "# comment\n! also a comment\n   # indented comment\n\n \t \nkey=value\n  \tindented=yes\n";
        assert_eq!(pairs(text), vec![p("key", "value"), p("indented", "yes")]);
        // `#` inside a value is not a comment.
        assert_eq!(
            pairs("a=b # not a comment"),
            vec![p("a", "b # not a comment")]
        );
    }

    #[test]
    fn empty_values_and_keys() {
        assert_eq!(
            pairs("a=\nb\nc:\nd   \n=v"),
            vec![p("a", ""), p("b", ""), p("c", ""), p("d", ""), p("", "v")]
        );
        assert_eq!(
            parse("ssl.endpoint.identification.algorithm=")
                .get("ssl.endpoint.identification.algorithm"),
            Some("")
        );
    }

    #[test]
    fn trailing_whitespace_of_values_is_kept() {
        assert_eq!(pairs("a=b  \t"), vec![p("a", "b  \t")]);
    }

    #[test]
    fn line_endings() {
        assert_eq!(
            pairs("a=1\r\nb=2\rc=3\n"),
            vec![p("a", "1"), p("b", "2"), p("c", "3")]
        );
        let props = parse("a=1\r\n\r\nb=2\r\rc=3");
        assert_eq!(props.get_property("b").unwrap().line(), Some(3));
        assert_eq!(props.get_property("c").unwrap().line(), Some(5));
    }

    #[test]
    fn continuations() {
        assert_eq!(
            pairs("servers=a:1,\\\n        b:2,\\\n   c:3\nnext=x"),
            vec![p("servers", "a:1,b:2,c:3"), p("next", "x")]
        );
        // Continued keys.
        assert_eq!(pairs("ke\\\n  y=v"), vec![p("key", "v")]);
        // An even number of backslashes is an escaped backslash, no continuation.
        assert_eq!(pairs("a=b\\\\\nc=d"), vec![p("a", "b\\"), p("c", "d")]);
        // Three backslashes: one escaped backslash, then a continuation.
        assert_eq!(pairs("a=b\\\\\\\n  c"), vec![p("a", "b\\c")]);
        // A continuation onto a blank line ends the value.
        assert_eq!(pairs("a=b\\\n   \nc=d"), vec![p("a", "b"), p("c", "d")]);
        // A continued line starting with # is not a comment.
        assert_eq!(pairs("a=b\\\n  #c"), vec![p("a", "b#c")]);
        // A comment never continues.
        assert_eq!(pairs("# x \\\na=b"), vec![p("a", "b")]);
        // Backslash at the end of the text is dropped.
        assert_eq!(pairs("a=b\\"), vec![p("a", "b")]);
        // Line numbers are those of the first line.
        let props = parse("\n\na=1\\\n2\nb=3");
        assert_eq!(props.get_property("a").unwrap().line(), Some(3));
        assert_eq!(props.get_property("b").unwrap().line(), Some(5));
        // The JAAS config of a SASL setup, written over three lines.
        let text = "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n    username=\"alice\" \\\n    password=\"alice-secret\";\n";
        assert_eq!(
            parse(text).get("sasl.jaas.config"),
            Some(
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"alice-secret\";"
            )
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(
            pairs(r"a=tab\there\nnl\rcr\fff\\bs\q"),
            vec![p("a", "tab\there\nnl\rcr\u{c}ff\\bsq")]
        );
        assert_eq!(
            pairs(r"key\=with\:seps\ and\ spaces = v"),
            vec![p("key=with:seps and spaces", "v")]
        );
        assert_eq!(pairs(r"\#notcomment=1"), vec![p("#notcomment", "1")]);
        assert_eq!(pairs(r"a=\ leading"), vec![p("a", " leading")]);
    }

    #[test]
    fn unicode_escapes() {
        assert_eq!(pairs(r"a=\u0041\u00e9\u4e2D"), vec![p("a", "Aé中")]);
        assert_eq!(pairs(r"\u0041=b"), vec![p("A", "b")]);
        assert_eq!(pairs(r"a=\uD83D\uDE00"), vec![p("a", "😀")]);
        // UTF-8 text is taken as is.
        assert_eq!(
            pairs("client.id=미러-镜像"),
            vec![p("client.id", "미러-镜像")]
        );
    }

    #[test]
    fn malformed_unicode_escape_is_a_syntax_error_with_the_line() {
        let e = Properties::parse_named("a=1\nb=x\\u12G4", "/x/p.properties").unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ConfigError::Syntax { line: 2, .. }), "{e:?}");
        assert!(text.starts_with("/x/p.properties line 2: "), "{text}");
        assert!(text.contains("\\u12G"), "{text}");
        assert!(text.contains("the value of b"), "{text}");
        assert!(text.contains("four hex digits"), "{text}");

        let e = Properties::parse(r"a=\u12").unwrap_err();
        assert!(e.to_string().contains("properties text line 1"), "{e}");
        let e = Properties::parse(r"k\uZZZZ=1").unwrap_err();
        assert!(e.to_string().contains("the key"), "{e}");
        let e = Properties::parse(r"a=\uD83D").unwrap_err();
        assert!(e.to_string().contains("surrogate"), "{e}");
        let e = Properties::parse(r"a=\uDE00x").unwrap_err();
        assert!(e.to_string().contains("surrogate"), "{e}");
    }

    #[test]
    fn malformed_escape_in_a_secret_does_not_show_it() {
        let e = Properties::parse("sasl.password=hunter\\u2x").unwrap_err();
        assert!(!e.to_string().contains("u2x"), "{e}");
        assert!(!e.to_string().contains("hunter"), "{e}");
        assert!(e.to_string().contains("sasl.password"), "{e}");
    }

    #[test]
    fn duplicate_keys_last_wins_and_lines_are_remembered() {
        let props = parse("a=1\nb=2\na=3\na=4\n");
        assert_eq!(props.get("a"), Some("4"));
        assert_eq!(props.len(), 2);
        let a = props.get_property("a").unwrap();
        assert_eq!(a.line(), Some(4));
        assert_eq!(a.overridden_lines(), &[1, 3]);
        // The key keeps the position of its first occurrence.
        assert_eq!(
            props.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
    }

    #[test]
    fn insert_remove_iterate() {
        let mut props = parse("a=1\nb=2");
        assert_eq!(props.insert("a", "9"), Some("1".to_owned()));
        assert_eq!(props.get_property("a").unwrap().line(), None);
        assert_eq!(props.get_property("a").unwrap().overridden_lines(), &[1]);
        assert_eq!(props.insert("c", "3"), None);
        assert_eq!(props.remove("b"), Some("2".to_owned()));
        assert_eq!(props.remove("b"), None);
        assert!(!props.contains_key("b"));
        let all: Vec<_> = (&props).into_iter().collect();
        assert_eq!(all, vec![("a", "9"), ("c", "3")]);
        assert_eq!(props.get("c"), Some("3"));
        let built: Properties = [("x", "1"), ("y", "2")].into_iter().collect();
        assert_eq!(built.len(), 2);
        assert!(Properties::new().is_empty());
    }

    #[test]
    fn bom_is_skipped() {
        assert_eq!(pairs("\u{feff}a=1"), vec![p("a", "1")]);
    }

    #[test]
    fn debug_redacts_secret_values() {
        let props =
            parse("sasl.password=hunter2\nsasl.jaas.config=x password=\"hunter3\";\nclient.id=me");
        let debug = format!("{props:?} {:?}", props.entries().collect::<Vec<_>>());
        assert!(!debug.contains("hunter"), "{debug}");
        assert!(debug.contains("client.id"));
        assert!(debug.contains("me"));
    }

    #[test]
    fn never_panics_on_odd_input() {
        let samples = [
            "",
            "\\",
            "\\\\",
            "=",
            ":",
            " ",
            "\n\r\n\r",
            "\\u",
            "\\uD800\\u",
            "a\\\u{c}b",
            "é\\",
            "\\\u{10FFFF}",
            "\u{feff}",
            "#\\",
            "k\\\r\n\\",
            "\\ud800\\udbff",
        ];
        for s in samples {
            let _ = Properties::parse(s);
        }
        // Every prefix of a tricky text.
        let text = "a\\u00e9=b\\\n  c\\td\r\n# x\ne:\\uD83D\\uDE00\\\\\n";
        for (i, _) in text.char_indices() {
            let _ = Properties::parse(text.get(..i).unwrap());
        }
    }

    #[test]
    fn load_reports_path_reason_and_flag() {
        let e = Properties::load_for(
            Path::new("/nonexistent-kmirror/consumer.properties"),
            "consumer config",
            "--consumer.config",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read consumer config /nonexistent-kmirror/consumer.properties: \
             No such file or directory; pass the path of an existing file to --consumer.config"
        );
        let e = Properties::load(Path::new("/nonexistent-kmirror/p")).unwrap_err();
        assert!(
            e.to_string().ends_with("pass the path of an existing file"),
            "{e}"
        );
        let e = Properties::load(Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }

    #[test]
    fn load_reads_utf8_and_latin1() {
        let dir = std::env::temp_dir().join(format!("kmirror-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let utf8 = dir.join("utf8.properties");
        std::fs::write(&utf8, "client.id=café\n").unwrap();
        let props = Properties::load(&utf8).unwrap();
        assert_eq!(props.get("client.id"), Some("café"));
        assert_eq!(props.source_name(), utf8.display().to_string());
        let latin1 = dir.join("latin1.properties");
        std::fs::write(&latin1, b"client.id=caf\xe9\n").unwrap();
        assert_eq!(
            Properties::load(&latin1).unwrap().get("client.id"),
            Some("café")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn never_panics_on_random_input() {
        const ALPHABET: &[char] = &[
            'a', 'k', '0', '9', 'u', 'D', 'F', '=', ':', ' ', '\t', '\u{c}', '\n', '\r', '\\', '#',
            '!', '"', '\'', ';', '/', '*', 'é', '😀', '\u{feff}',
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..3000 {
            let mut text = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            for _ in 0..(state % 40) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(ALPHABET[(state % ALPHABET.len() as u64) as usize]);
            }
            let _ = Properties::parse(&text);
        }
    }
}
