//! The catalogue of configuration keys the connection layer knows.
//!
//! This file owns two lists: [`CLIENT_KEYS`], the keys
//! [`ClientConfig`](super::ClientConfig) reads, and [`IGNORED_KEYS`], Java
//! client keys that make no sense for kmirror and are accepted with an
//! `info` log instead of an unknown-key warning. It also finds the nearest
//! known key to a mistyped one. It never reads values.

/// The keys [`ClientConfig::from_properties`](super::ClientConfig::from_properties)
/// reads. Java client names first; librdkafka names (`ssl.ca.location`,
/// `sasl.username`...) are accepted as well.
pub const CLIENT_KEYS: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "zookeeper.connect",
    "client.id",
    "security.protocol",
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.truststore.certificates",
    "ssl.ca.location",
    "ssl.keystore.location",
    "ssl.keystore.type",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.jaas.config",
    "sasl.username",
    "sasl.password",
    "metadata.max.age.ms",
    "retry.backoff.ms",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "request.timeout.ms",
    "socket.connection.setup.timeout.ms",
    "send.buffer.bytes",
    "receive.buffer.bytes",
    "receive.message.max.bytes",
];

/// Java client keys that kmirror accepts and ignores, with the reason logged
/// at `info` level ("ignored: key.deserializer (...)").
pub const IGNORED_KEYS: &[(&str, &str)] = &[
    (
        "key.deserializer",
        "kmirror copies record bytes as they are and needs no deserializer",
    ),
    (
        "value.deserializer",
        "kmirror copies record bytes as they are and needs no deserializer",
    ),
    (
        "key.serializer",
        "kmirror copies record bytes as they are and needs no serializer",
    ),
    (
        "value.serializer",
        "kmirror copies record bytes as they are and needs no serializer",
    ),
    (
        "enable.auto.commit",
        "kmirror commits offsets itself once records are written to the destination; \
         see --offset.commit.interval.ms",
    ),
    (
        "auto.commit.interval.ms",
        "kmirror commits offsets itself once records are written to the destination; \
         see --offset.commit.interval.ms",
    ),
    ("interceptor.classes", "Java classes cannot run in kmirror"),
    ("metric.reporters", "Java classes cannot run in kmirror"),
    ("metrics.num.samples", "kmirror reports its own metrics"),
    (
        "metrics.sample.window.ms",
        "kmirror reports its own metrics",
    ),
    ("metrics.recording.level", "kmirror reports its own metrics"),
    ("auto.include.jmx.reporter", "there is no JMX in kmirror"),
    (
        "security.providers",
        "Java security providers do not apply to kmirror",
    ),
    ("client.dns.lookup", "kmirror resolves broker names itself"),
    (
        "connections.max.idle.ms",
        "kmirror keeps its broker connections open",
    ),
    (
        "socket.connection.setup.timeout.max.ms",
        "kmirror uses socket.connection.setup.timeout.ms for every attempt",
    ),
    ("retry.backoff.max.ms", "kmirror uses retry.backoff.ms"),
    (
        "ssl.protocol",
        "kmirror uses rustls, which speaks TLS 1.2 and 1.3",
    ),
    (
        "ssl.enabled.protocols",
        "kmirror uses rustls, which speaks TLS 1.2 and 1.3",
    ),
    (
        "ssl.cipher.suites",
        "kmirror uses rustls's default cipher suites",
    ),
    ("ssl.provider", "kmirror uses rustls"),
    ("ssl.keymanager.algorithm", "kmirror uses rustls"),
    ("ssl.trustmanager.algorithm", "kmirror uses rustls"),
    ("ssl.secure.random.implementation", "kmirror uses rustls"),
    (
        "ssl.engine.factory.class",
        "Java classes cannot run in kmirror",
    ),
    (
        "ssl.truststore.password",
        "PEM trust stores have no password",
    ),
    (
        "ssl.keystore.password",
        "PEM key stores have no store password; an encrypted private key's password \
         goes in ssl.key.password",
    ),
    (
        "sasl.kerberos.service.name",
        "only used by GSSAPI (Kerberos), which kmirror does not support",
    ),
    (
        "zookeeper.connection.timeout.ms",
        "old-consumer ZooKeeper tuning; kmirror only reads broker addresses from ZooKeeper",
    ),
    (
        "zookeeper.session.timeout.ms",
        "old-consumer ZooKeeper tuning; kmirror only reads broker addresses from ZooKeeper",
    ),
    (
        "zookeeper.sync.time.ms",
        "old-consumer ZooKeeper tuning; kmirror only reads broker addresses from ZooKeeper",
    ),
];

/// Whether `key` is one of [`CLIENT_KEYS`].
pub(crate) fn is_client_key(key: &str) -> bool {
    CLIENT_KEYS.contains(&key)
}

/// Why `key` is ignored, if it is one of [`IGNORED_KEYS`].
pub(crate) fn ignored_reason(key: &str) -> Option<&'static str> {
    IGNORED_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, reason)| *reason)
}

/// Keys longer than this get no suggestion (the distance is quadratic).
const MAX_SUGGEST_LEN: usize = 128;

/// The most edits a suggestion may be away from the key.
const MAX_SUGGEST_DISTANCE: usize = 2;

/// The known key nearest to `key` (case-insensitive edit distance with
/// transpositions, at most 2), among [`CLIENT_KEYS`] and `other_known`.
pub(crate) fn suggest<'a>(key: &str, other_known: &[&'a str]) -> Option<&'a str> {
    if key.chars().count() > MAX_SUGGEST_LEN {
        return None;
    }
    let lower: Vec<char> = key.to_lowercase().chars().collect();
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in CLIENT_KEYS
        .iter()
        .copied()
        .chain(other_known.iter().copied())
    {
        if candidate == key {
            continue;
        }
        let cand: Vec<char> = candidate.to_lowercase().chars().collect();
        if cand.len().abs_diff(lower.len()) > MAX_SUGGEST_DISTANCE {
            continue;
        }
        let d = edit_distance(&lower, &cand);
        if d <= MAX_SUGGEST_DISTANCE && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, k)| k)
}

/// Optimal string alignment distance: insertions, deletions,
/// substitutions and transpositions of neighbours each cost 1.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let width = b.len() + 1;
    // Three rows: two back, previous, current.
    let mut two_back = vec![0usize; width];
    let mut prev: Vec<usize> = (0..width).collect();
    let mut cur = vec![0usize; width];
    for (i, &ca) in a.iter().enumerate() {
        if let Some(first) = cur.first_mut() {
            *first = i + 1;
        }
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let deletion = prev
                .get(j + 1)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let insertion = cur.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            let substitution = prev
                .get(j)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(cost);
            let mut best = deletion.min(insertion).min(substitution);
            if i > 0 && j > 0 && a.get(i - 1) == Some(&cb) && b.get(j - 1) == Some(&ca) {
                let transposition = two_back
                    .get(j - 1)
                    .copied()
                    .unwrap_or(usize::MAX)
                    .saturating_add(1);
                best = best.min(transposition);
            }
            if let Some(slot) = cur.get_mut(j + 1) {
                *slot = best;
            }
        }
        std::mem::swap(&mut two_back, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::security::{SASL_KEYS, TLS_KEYS};

    /// The TLS and SASL key lists (for the "unused without TLS/SASL"
    /// warnings) repeat part of CLIENT_KEYS: they must never drift apart.
    #[test]
    fn tls_and_sasl_keys_are_client_keys() {
        for key in TLS_KEYS.iter().chain(SASL_KEYS) {
            assert!(
                CLIENT_KEYS.contains(key),
                "{key} is missing from CLIENT_KEYS"
            );
        }
    }

    use super::*;

    fn d(a: &str, b: &str) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        edit_distance(&a, &b)
    }

    #[test]
    fn distances() {
        assert_eq!(d("", ""), 0);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("bootstrap.server", "bootstrap.servers"), 1);
        assert_eq!(d("bootsrtap.servers", "bootstrap.servers"), 1);
        assert_eq!(d("ab", "ba"), 1);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("bootstrap.server", &[]), Some("bootstrap.servers"));
        assert_eq!(suggest("Bootstrap.Servers", &[]), Some("bootstrap.servers"));
        assert_eq!(suggest("secuirty.protocol", &[]), Some("security.protocol"));
        assert_eq!(suggest("group.idd", &["group.id"]), Some("group.id"));
        assert_eq!(suggest("something.else", &["group.id"]), None);
        assert_eq!(suggest(&"x".repeat(1000), &[]), None);
    }

    #[test]
    fn lists_do_not_overlap() {
        for (key, _) in IGNORED_KEYS {
            assert!(!is_client_key(key), "{key}");
        }
        assert_eq!(
            ignored_reason("key.deserializer").map(|r| r.contains("bytes")),
            Some(true)
        );
        assert_eq!(ignored_reason("bootstrap.servers"), None);
    }
}
