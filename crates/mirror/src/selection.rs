//! Which source topics are mirrored: MirrorMaker 1's `--whitelist`/`--include`
//! and `--blacklist`/`--exclude` patterns, with MirrorMaker's semantics.
//!
//! Owns the translation of a pattern as the user typed it into a compiled
//! regular expression, and the decision "is this topic mirrored?". It must
//! never list topics, talk to a broker or log: the fetch side calls
//! [`TopicSelector::verdict`] on every (re-)listed topic and logs the answer.
//!
//! MirrorMaker's rules, which this module keeps (Kafka's `TopicFilter`):
//!
//! - the pattern is a Java regular expression matched against the *whole*
//!   topic name (`Pattern.matches`): `testtopic` does not select
//!   `testtopic2`;
//! - `,` separates alternatives (MirrorMaker replaced `,` with `|`), so
//!   `orders,payments` selects both topics;
//! - surrounding whitespace is trimmed, spaces are removed and leading and
//!   trailing quotes are stripped (property files and shells bring them);
//! - internal topics are never mirrored. Kafka's list is
//!   `__consumer_offsets` and `__transaction_state`; kmirror extends it to
//!   every name that starts with `__` (Kafka's own convention for internal
//!   topics: `__cluster_metadata`, MirrorMaker 2's `__heartbeats`, ...), and
//!   to the bookkeeping topics of mirrors (kmirror's offset map
//!   `kmirror-offset-map.<alias>.internal`, MirrorMaker 2's
//!   `<alias>.checkpoints.internal` and `mm2-offset-syncs.<alias>.internal`,
//!   which hold offsets of another cluster), even when the pattern is `.*`.
//!
//! Where kmirror differs, it is more lenient: a counted repetition such as
//! `a{2,3}` keeps its comma (MirrorMaker turned it into `a{2|3}`, an invalid
//! Java regex). Java syntax that the Rust `regex` crate does not implement
//! (look-around, backreferences, possessive quantifiers, atomic groups,
//! `\Q...\E`) is refused with an error that says so and what to write
//! instead. Matching is ASCII, as Java's is by default (`\w`, `\d`, `(?i)`).

use std::fmt;

use regex::bytes::{Regex, RegexBuilder};

/// Which command-line flag a pattern came from, so that errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatternFlag {
    /// `--whitelist`, or its newer spelling `--include`.
    Include,
    /// `--blacklist`, or its newer spelling `--exclude`.
    Exclude,
    /// `--partition-by-key`: topics placed by key even with equal
    /// partition counts.
    PartitionByKey,
}

impl fmt::Display for PatternFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatternFlag::Include => "--whitelist/--include",
            PatternFlag::Exclude => "--blacklist/--exclude",
            PatternFlag::PartitionByKey => "--partition-by-key",
        })
    }
}

/// A construct of Java's regex syntax that kmirror's regex engine lacks.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JavaOnlySyntax {
    /// `(?=...)` or `(?!...)`.
    Lookahead,
    /// `(?<=...)` or `(?<!...)`.
    Lookbehind,
    /// `\1`..`\9` or `\k<name>`.
    Backreference,
    /// `*+`, `++`, `?+` or `{n,m}+`.
    PossessiveQuantifier,
    /// `(?>...)`.
    AtomicGroup,
    /// `\Q...\E` literal quoting.
    Quotation,
}

impl JavaOnlySyntax {
    /// What to write instead, as a sentence fragment for an error message.
    pub fn advice(self) -> &'static str {
        match self {
            JavaOnlySyntax::Lookahead | JavaOnlySyntax::Lookbehind => {
                "list the topics to mirror (`--include 'orders,payments'`), \
                 or select broadly and leave topics out with `--exclude` \
                 (`--include '.*' --exclude 'internal.*'` instead of \
                 `(?!internal).*`)"
            }
            JavaOnlySyntax::Backreference => {
                "list the topics to mirror (`--include 'a-a,b-b'`) or leave \
                 topics out with `--exclude`"
            }
            JavaOnlySyntax::PossessiveQuantifier | JavaOnlySyntax::AtomicGroup => {
                "use the plain quantifier or group instead (`.*` for `.*+`, \
                 `(?:...)` for `(?>...)`), which matches every topic name \
                 the Java form matched"
            }
            JavaOnlySyntax::Quotation => {
                "escape each special character with a backslash instead \
                 (`my\\.topic` instead of `\\Qmy.topic\\E`)"
            }
        }
    }
}

impl fmt::Display for JavaOnlySyntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JavaOnlySyntax::Lookahead => "a lookahead `(?=...)`/`(?!...)`",
            JavaOnlySyntax::Lookbehind => "a lookbehind `(?<=...)`/`(?<!...)`",
            JavaOnlySyntax::Backreference => "a backreference (`\\1`, `\\k<name>`)",
            JavaOnlySyntax::PossessiveQuantifier => {
                "a possessive quantifier (`*+`, `++`, `?+`, `{n}+`)"
            }
            JavaOnlySyntax::AtomicGroup => "an atomic group `(?>...)`",
            JavaOnlySyntax::Quotation => "literal quoting `\\Q...\\E`",
        })
    }
}

/// Why a topic pattern was refused. Every variant is a mistake on the
/// command line; the message names the flag and what to change.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum SelectionError {
    /// The include pattern is empty once spaces and quotes are removed: it
    /// would select no topic at all.
    #[error(
        "{flag} is empty (after removing spaces and quotes), so no topic \
         would be mirrored; give a regular expression matching whole topic \
         names, such as `testtopic` or `orders.*`"
    )]
    EmptyInclude {
        /// The flag.
        flag: PatternFlag,
    },
    /// The pattern uses Java regex syntax that kmirror does not support.
    #[error(
        "{flag} pattern `{pattern}` uses {construct}, which is Java regex \
         syntax that kmirror's regex engine (the Rust `regex` crate) does \
         not support; {advice}",
        advice = construct.advice()
    )]
    JavaOnlySyntax {
        /// The flag.
        flag: PatternFlag,
        /// The pattern as the user gave it.
        pattern: String,
        /// The unsupported construct.
        construct: JavaOnlySyntax,
    },
    /// The pattern is not a valid regular expression.
    #[error(
        "{flag} pattern `{pattern}` is not a valid regular expression \
         (MirrorMaker syntax: a Java regex matched against the whole topic \
         name, `,` separating alternatives): {reason}"
    )]
    InvalidRegex {
        /// The flag.
        flag: PatternFlag,
        /// The pattern as the user gave it.
        pattern: String,
        /// What the regex compiler said.
        reason: regex::Error,
    },
}

/// Whether `topic` is internal to Kafka (its name starts with `__`, which
/// covers `__consumer_offsets` and `__transaction_state`) or a mirror's
/// bookkeeping (offset maps, checkpoints, offset syncs), and so is never
/// mirrored.
pub fn is_internal_topic(topic: &str) -> bool {
    topic.starts_with("__")
        || (topic.ends_with(".internal")
            && (topic.starts_with("kmirror-offset-map.")
                || topic.starts_with("mm2-offset-syncs.")
                || topic.ends_with(".checkpoints.internal")))
}

/// One compiled pattern, matched against whole topic names.
#[derive(Debug, Clone)]
pub struct TopicPattern {
    /// The regex after MirrorMaker's normalisation, before anchoring.
    normalized: String,
    /// `^(?:normalized)$`.
    anchored: Regex,
}

/// Two patterns are equal when they are the same normalised regex.
impl PartialEq for TopicPattern {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized
    }
}

impl Eq for TopicPattern {}

impl TopicPattern {
    /// Compiles `raw`, a pattern as the user gave it to `flag`. `Ok(None)`
    /// when it is empty once trimmed.
    pub fn parse(flag: PatternFlag, raw: &str) -> Result<Option<Self>, SelectionError> {
        let normalized = mirror_maker_regex(raw);
        if normalized.is_empty() {
            return Ok(None);
        }
        if let Some(construct) = find_java_only_syntax(&normalized) {
            return Err(SelectionError::JavaOnlySyntax {
                flag,
                pattern: raw.to_owned(),
                construct,
            });
        }
        let invalid = |reason| SelectionError::InvalidRegex {
            flag,
            pattern: raw.to_owned(),
            reason,
        };
        // Compiled alone first: the error then points into the user's
        // pattern, and a pattern such as `a)|(b` cannot escape the anchoring
        // group below.
        compile(&normalized).map_err(invalid)?;
        let anchored = compile(&format!("^(?:{normalized})$")).map_err(invalid)?;
        Ok(Some(Self {
            normalized,
            anchored,
        }))
    }

    /// The regex as matched (after trimming, `,` to `|`, quotes removed),
    /// for logs.
    pub fn as_str(&self) -> &str {
        &self.normalized
    }

    /// Whether the pattern matches the whole of `topic`.
    pub fn matches(&self, topic: &str) -> bool {
        self.anchored.is_match(topic.as_bytes())
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized)
    }
}

/// Why a topic is or is not mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicVerdict {
    /// Mirrored.
    Selected,
    /// Internal to Kafka (`__` prefix): never mirrored.
    Internal,
    /// The include pattern does not match the whole name.
    NotIncluded,
    /// Included, but the exclude pattern matches: exclude wins.
    Excluded,
}

/// The set of source topics to mirror: an include pattern, an optional
/// exclude pattern, and no internal topic.
#[derive(Debug, Clone)]
pub struct TopicSelector {
    include: TopicPattern,
    exclude: Option<TopicPattern>,
}

impl TopicSelector {
    /// Builds the selector from the `--whitelist`/`--include` pattern and
    /// the optional `--blacklist`/`--exclude` pattern, as the user typed
    /// them. An empty exclude pattern excludes nothing; an empty include
    /// pattern is an error.
    pub fn new(include: &str, exclude: Option<&str>) -> Result<Self, SelectionError> {
        let include = TopicPattern::parse(PatternFlag::Include, include)?.ok_or(
            SelectionError::EmptyInclude {
                flag: PatternFlag::Include,
            },
        )?;
        let exclude = match exclude {
            Some(raw) => TopicPattern::parse(PatternFlag::Exclude, raw)?,
            None => None,
        };
        Ok(Self { include, exclude })
    }

    /// The include pattern.
    pub fn include(&self) -> &TopicPattern {
        &self.include
    }

    /// The exclude pattern, if any.
    pub fn exclude(&self) -> Option<&TopicPattern> {
        self.exclude.as_ref()
    }

    /// Whether `topic` is mirrored, and if not, why.
    pub fn verdict(&self, topic: &str) -> TopicVerdict {
        if is_internal_topic(topic) {
            TopicVerdict::Internal
        } else if !self.include.matches(topic) {
            TopicVerdict::NotIncluded
        } else if self.exclude.as_ref().is_some_and(|e| e.matches(topic)) {
            TopicVerdict::Excluded
        } else {
            TopicVerdict::Selected
        }
    }

    /// Whether `topic` is mirrored.
    pub fn selects(&self, topic: &str) -> bool {
        self.verdict(topic) == TopicVerdict::Selected
    }

    /// The mirrored topics among `topics`, in their order.
    pub fn select<'t, T>(
        &self,
        topics: impl IntoIterator<Item = &'t T>,
    ) -> impl Iterator<Item = &'t T>
    where
        T: AsRef<str> + ?Sized + 't,
    {
        topics.into_iter().filter(|t| self.selects(t.as_ref()))
    }
}

/// ASCII semantics like Java's defaults; no Unicode tables needed.
fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern).unicode(false).build()
}

/// MirrorMaker's `TopicFilter` normalisation: trim, `,` to `|`, remove
/// spaces, strip leading and trailing quotes. Commas of counted
/// repetitions (`{2,3}`) are kept.
fn mirror_maker_regex(raw: &str) -> String {
    let alternatives = commas_to_alternation(raw.trim());
    let without_spaces: String = alternatives.chars().filter(|c| *c != ' ').collect();
    without_spaces
        .trim_matches(|c| c == '"' || c == '\'')
        .trim()
        .to_owned()
}

fn commas_to_alternation(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        let token_len = match c {
            // An escape and the character it escapes are copied as is.
            '\\' => prefix_len(rest, 2),
            '{' => counted_repetition_len(rest).unwrap_or(1),
            _ => c.len_utf8(),
        };
        let (token, tail) = rest.split_at_checked(token_len).unwrap_or((rest, ""));
        if token == "," {
            out.push('|');
        } else {
            out.push_str(token);
        }
        rest = tail;
    }
    out
}

/// Byte length of the first `n` characters of `s` (all of it if shorter).
fn prefix_len(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(i, _)| i)
}

/// If `s` starts with a counted repetition `{n}`, `{n,}` or `{n,m}`, its
/// byte length.
fn counted_repetition_len(s: &str) -> Option<usize> {
    let inner_and_rest = s.strip_prefix('{')?;
    let close = inner_and_rest.find('}')?;
    let inner = inner_and_rest.get(..close)?;
    let (min, max) = inner.split_once(',').unwrap_or((inner, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    (!min.is_empty() && digits(min) && digits(max)).then_some(close + 2)
}

/// The first Java-only construct in `pattern`, skipping escaped characters
/// and the insides of character classes.
fn find_java_only_syntax(pattern: &str) -> Option<JavaOnlySyntax> {
    let mut chars = pattern.chars().peekable();
    let mut class_depth = 0u32;
    let mut after_quantifier = false;
    while let Some(c) = chars.next() {
        let was_quantifier = std::mem::replace(&mut after_quantifier, false);
        match c {
            '\\' => {
                let escaped = chars.next();
                if escaped == Some('Q') {
                    return Some(JavaOnlySyntax::Quotation);
                }
                if class_depth == 0 {
                    match escaped {
                        Some('1'..='9') => return Some(JavaOnlySyntax::Backreference),
                        Some('k') if chars.peek() == Some(&'<') => {
                            return Some(JavaOnlySyntax::Backreference);
                        }
                        _ => {}
                    }
                }
            }
            '[' => class_depth = class_depth.saturating_add(1),
            ']' if class_depth > 0 => class_depth -= 1,
            _ if class_depth > 0 => {}
            '(' if chars.peek() == Some(&'?') => {
                chars.next();
                match chars.next() {
                    Some('=' | '!') => return Some(JavaOnlySyntax::Lookahead),
                    Some('>') => return Some(JavaOnlySyntax::AtomicGroup),
                    Some('<') if matches!(chars.peek(), Some('=' | '!')) => {
                        return Some(JavaOnlySyntax::Lookbehind);
                    }
                    _ => {}
                }
            }
            '+' if was_quantifier => return Some(JavaOnlySyntax::PossessiveQuantifier),
            // `*?`: the `?` makes the quantifier lazy; what follows is not
            // a possessive marker.
            '?' if was_quantifier => {}
            '*' | '+' | '?' | '}' => after_quantifier = true,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(include: &str) -> TopicSelector {
        TopicSelector::new(include, None).unwrap()
    }

    #[test]
    fn the_guides_whitelist_matches_the_whole_name_only() {
        let s = selector("testtopic");
        assert!(s.selects("testtopic"));
        assert_eq!(s.verdict("testtopic2"), TopicVerdict::NotIncluded);
        assert!(!s.selects("mytesttopic"));
        assert!(!s.selects("testtopi"));
    }

    #[test]
    fn commas_separate_alternatives() {
        let s = selector("a,b");
        assert!(s.selects("a"));
        assert!(s.selects("b"));
        assert!(!s.selects("a,b"));
        assert!(!s.selects("ab"));
        assert_eq!(s.include().as_str(), "a|b");
    }

    #[test]
    fn spaces_around_alternatives_are_ignored() {
        let s = selector("  orders, payments ,refunds.*  ");
        assert!(s.selects("orders"));
        assert!(s.selects("payments"));
        assert!(s.selects("refunds-eu"));
        assert!(!s.selects("order"));
    }

    #[test]
    fn alternatives_are_each_anchored() {
        // `^a|b$` would match "ax" and "xb"; the group keeps both anchored.
        let s = selector("a|b");
        assert!(!s.selects("ax"));
        assert!(!s.selects("xb"));
    }

    #[test]
    fn match_all_never_selects_internal_topics() {
        let s = selector(".*");
        assert!(s.selects("testtopic"));
        assert_eq!(s.verdict("__consumer_offsets"), TopicVerdict::Internal);
        assert_eq!(s.verdict("__transaction_state"), TopicVerdict::Internal);
        assert_eq!(s.verdict("__cluster_metadata"), TopicVerdict::Internal);
        assert!(!s.selects("__consumer_offsets"));
        // One underscore is an ordinary topic.
        assert!(s.selects("_schemas"));
        // Mirrors' bookkeeping holds another cluster's offsets.
        for bookkeeping in [
            "kmirror-offset-map.source.internal",
            "source.checkpoints.internal",
            "mm2-offset-syncs.target.internal",
        ] {
            assert_eq!(
                s.verdict(bookkeeping),
                TopicVerdict::Internal,
                "{bookkeeping}"
            );
        }
        assert!(s.selects("orders.internal"));
    }

    #[test]
    fn naming_an_internal_topic_still_does_not_select_it() {
        assert!(!selector("__consumer_offsets").selects("__consumer_offsets"));
    }

    #[test]
    fn exclude_wins_over_include() {
        let s = TopicSelector::new("orders.*", Some("orders\\.internal.*,orders-tmp")).unwrap();
        assert!(s.selects("orders.eu"));
        assert_eq!(s.verdict("orders.internal.x"), TopicVerdict::Excluded);
        assert_eq!(s.verdict("orders-tmp"), TopicVerdict::Excluded);
        // Exclude is a whole-name match too.
        assert!(s.selects("orders-tmp2"));
        assert_eq!(
            s.exclude().map(TopicPattern::as_str),
            Some("orders\\.internal.*|orders-tmp")
        );
    }

    #[test]
    fn empty_exclude_excludes_nothing() {
        let s = TopicSelector::new(".*", Some("  \"\" ")).unwrap();
        assert!(s.exclude().is_none());
        assert!(s.selects("anything"));
    }

    #[test]
    fn quotes_from_property_files_or_shells_are_stripped() {
        for raw in ["\"test.*\"", "'test.*'", " \"test.*\" ", "\"'test.*'\""] {
            let s = selector(raw);
            assert_eq!(s.include().as_str(), "test.*", "{raw}");
            assert!(s.selects("testtopic"), "{raw}");
            assert!(!s.selects("atest"), "{raw}");
        }
    }

    #[test]
    fn empty_include_is_refused() {
        for raw in ["", "   ", "\"\"", "''"] {
            let err = TopicSelector::new(raw, None).unwrap_err();
            assert!(matches!(err, SelectionError::EmptyInclude { .. }), "{raw}");
            assert!(err.to_string().contains("--whitelist/--include"));
        }
    }

    #[test]
    fn lookahead_is_refused_with_the_alternative() {
        let err = TopicSelector::new("(?!internal).*", None).unwrap_err();
        let SelectionError::JavaOnlySyntax {
            flag,
            pattern,
            construct,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(*flag, PatternFlag::Include);
        assert_eq!(pattern, "(?!internal).*");
        assert_eq!(*construct, JavaOnlySyntax::Lookahead);
        let msg = err.to_string();
        assert!(msg.contains("--whitelist/--include"), "{msg}");
        assert!(msg.contains("`(?!internal).*`"), "{msg}");
        assert!(msg.contains("lookahead"), "{msg}");
        assert!(msg.contains("does not support"), "{msg}");
        assert!(msg.contains("--exclude"), "{msg}");
        assert!(msg.contains("list the topics"), "{msg}");
    }

    #[test]
    fn every_java_only_construct_is_named() {
        let cases = [
            ("(?=orders).*", JavaOnlySyntax::Lookahead),
            (".*(?<=-eu)", JavaOnlySyntax::Lookbehind),
            (".*(?<!-eu)", JavaOnlySyntax::Lookbehind),
            ("(a)\\1", JavaOnlySyntax::Backreference),
            ("(?<x>a)\\k<x>", JavaOnlySyntax::Backreference),
            ("orders.*+", JavaOnlySyntax::PossessiveQuantifier),
            ("a++", JavaOnlySyntax::PossessiveQuantifier),
            ("a?+", JavaOnlySyntax::PossessiveQuantifier),
            ("a{2}+", JavaOnlySyntax::PossessiveQuantifier),
            ("(?>a|ab)", JavaOnlySyntax::AtomicGroup),
            ("\\Qmy.topic\\E", JavaOnlySyntax::Quotation),
        ];
        for (raw, construct) in cases {
            let err = TopicSelector::new(".*", Some(raw)).unwrap_err();
            match &err {
                SelectionError::JavaOnlySyntax {
                    flag: PatternFlag::Exclude,
                    construct: c,
                    ..
                } => assert_eq!(*c, construct, "{raw}"),
                other => panic!("{raw}: {other:?}"),
            }
            assert!(err.to_string().contains("--blacklist/--exclude"), "{raw}");
        }
    }

    #[test]
    fn look_alikes_of_java_only_syntax_are_accepted() {
        // Escaped or inside a class, these are ordinary characters; `*?`
        // is a lazy quantifier; `(?<name>` is a named group; `\++` is a
        // literal plus, repeated.
        for raw in [
            "a\\++",
            "[(?=]x",
            "a[*+]b",
            "a*?",
            "(?<name>a)b",
            "(?:a)b",
            "(?i)orders",
        ] {
            assert!(
                TopicPattern::parse(PatternFlag::Include, raw).is_ok(),
                "{raw}"
            );
        }
    }

    #[test]
    fn invalid_regex_names_flag_pattern_and_reason() {
        let err = TopicSelector::new("orders(", None).unwrap_err();
        assert!(
            matches!(err, SelectionError::InvalidRegex { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("--whitelist/--include"), "{msg}");
        assert!(msg.contains("`orders(`"), "{msg}");
        assert!(msg.contains("unclosed group"), "{msg}");
    }

    #[test]
    fn a_pattern_cannot_escape_its_anchors() {
        // `^(?:a)|(b)$` would compile and match "ax"; refused instead.
        let err = TopicSelector::new("a)|(b", None).unwrap_err();
        assert!(
            matches!(err, SelectionError::InvalidRegex { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn counted_repetitions_keep_their_comma() {
        let s = selector("t{2,3},x{1,}");
        assert_eq!(s.include().as_str(), "t{2,3}|x{1,}");
        assert!(s.selects("ttt"));
        assert!(!s.selects("t"));
        assert!(s.selects("xx"));
        // Not a repetition: the comma still separates, as in MirrorMaker.
        assert_eq!(mirror_maker_regex("a{b,c}"), "a{b|c}");
        assert_eq!(mirror_maker_regex(r"a\,b"), r"a\,b");
    }

    #[test]
    fn classes_and_case_follow_java_ascii_defaults() {
        let s = selector("\\w+\\.\\d+");
        assert!(s.selects("orders.42"));
        assert!(!s.selects("orders.x"));
        let ci = selector("(?i)orders");
        assert!(ci.selects("ORDERS"));
        assert!(!selector("orders").selects("ORDERS"));
        // Dots, dashes and underscores as in real topic names.
        assert!(selector("my-topic_v1\\.eu").selects("my-topic_v1.eu"));
        assert!(!selector("my-topic_v1\\.eu").selects("my-topic_v1-eu"));
    }

    #[test]
    fn select_keeps_the_listing_order() {
        let s = TopicSelector::new("t.*", Some("t2")).unwrap();
        let listed = ["t1", "__consumer_offsets", "t2", "x", "t3"];
        let picked: Vec<&str> = s.select(listed.iter().copied()).collect();
        assert_eq!(picked, ["t1", "t3"]);
        let owned: Vec<String> = listed.iter().map(|t| (*t).to_owned()).collect();
        assert_eq!(s.select(&owned).count(), 2);
    }

    #[test]
    fn trailing_escape_does_not_panic() {
        assert!(TopicSelector::new("abc\\", None).is_err());
        let _ = TopicSelector::new("{", None);
        let _ = TopicSelector::new("a{", None);
        let _ = TopicSelector::new("[", None);
        let _ = TopicSelector::new("(?", None);
    }
}
