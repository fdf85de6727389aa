//! Parsing of single configuration values: numbers, durations, socket buffer
//! sizes, broker address lists and ZooKeeper connect strings.
//!
//! This file owns the rules for one value at a time and the wording of the
//! errors about it (key, value, what is allowed). Values are trimmed first,
//! as Kafka's `ConfigDef` trims them. It never logs.

use std::net::Ipv6Addr;
use std::time::Duration;

use super::error::ConfigError;
use super::properties::Properties;

/// The value of `key`, trimmed; `None` if the key is absent.
pub(crate) fn trimmed<'a>(props: &'a Properties, key: &str) -> Option<&'a str> {
    props.get(key).map(str::trim)
}

/// The value of `key`, trimmed; `None` if the key is absent or empty.
pub(crate) fn non_empty<'a>(props: &'a Properties, key: &str) -> Option<&'a str> {
    trimmed(props, key).filter(|v| !v.is_empty())
}

/// The value of `key` or of its librdkafka `alias` (trimmed, non-empty),
/// with the key it came from; an error if both are set and differ.
pub(crate) fn aliased<'a>(
    props: &'a Properties,
    key: &'static str,
    alias: &'static str,
) -> Result<Option<(&'static str, &'a str)>, ConfigError> {
    match (non_empty(props, key), non_empty(props, alias)) {
        (Some(a), Some(b)) if a != b => Err(ConfigError::conflict(
            key,
            alias,
            format!("{alias} is librdkafka's name for {key}; keep one of them"),
        )),
        (Some(a), _) => Ok(Some((key, a))),
        (None, Some(b)) => Ok(Some((alias, b))),
        (None, None) => Ok(None),
    }
}

/// A duration in milliseconds from 0 to `max`, or `default` if `key` is
/// absent.
pub(crate) fn millis(
    props: &Properties,
    key: &str,
    default: Duration,
    max: i64,
) -> Result<Duration, ConfigError> {
    let Some(value) = trimmed(props, key) else {
        return Ok(default);
    };
    let allowed = || {
        format!(
            "a whole number of milliseconds from 0 to {max} (remove the line for the default, {})",
            default.as_millis()
        )
    };
    match value.parse::<i64>() {
        Ok(ms) if (0..=max).contains(&ms) => Ok(Duration::from_millis(ms.unsigned_abs())),
        _ => Err(ConfigError::invalid_value(key, value, allowed())),
    }
}

/// A socket buffer size: `-1` (the default, `None`) leaves it to the
/// operating system.
pub(crate) fn buffer_bytes(props: &Properties, key: &str) -> Result<Option<u32>, ConfigError> {
    let Some(value) = trimmed(props, key) else {
        return Ok(None);
    };
    match value.parse::<i32>() {
        Ok(-1) => Ok(None),
        Ok(n) if n >= 1 => Ok(u32::try_from(n).ok()),
        _ => Err(ConfigError::invalid_value(
            key,
            value,
            "-1 (the operating system's default, which lets it size the buffer) or a size in \
             bytes from 1 to 2147483647",
        )),
    }
}

/// The largest response accepted (`receive.message.max.bytes`, as
/// librdkafka names it): from 1000 to 2147483647 bytes, or `default`.
pub(crate) fn response_bytes(
    props: &Properties,
    key: &str,
    default: usize,
) -> Result<usize, ConfigError> {
    let Some(value) = trimmed(props, key) else {
        return Ok(default);
    };
    match value.parse::<i32>() {
        Ok(n) if n >= 1000 => Ok(usize::try_from(n).unwrap_or(default)),
        _ => Err(ConfigError::invalid_value(
            key,
            value,
            format!(
                "a size in bytes from 1000 to 2147483647 (remove the line for the default, \
                 {default}); it must hold the largest record batch of the source plus about 1 KiB"
            ),
        )),
    }
}

/// A comma-separated list of `host:port` (`bootstrap.servers`): blanks
/// around entries and empty entries are skipped, a `SCHEME://` prefix is
/// dropped and unbracketed IPv6 addresses take the port after the last
/// colon, all as Kafka's clients do. The result is deduplicated and
/// normalized: `host:port`, or `[v6]:port` for IPv6.
pub(crate) fn broker_list(key: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    let mut servers: Vec<String> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, port) = host_port(entry, true).map_err(|reason| {
            ConfigError::invalid_value(
                key,
                value,
                format!(
                    "host:port entries separated by commas, ports from 1 to 65535, IPv6 \
                     addresses in brackets, e.g. broker1:9092,broker2:9092 or [::1]:9092 \
                     ({reason})"
                ),
            )
        })?;
        let address = join_host_port(&host, port.unwrap_or(0));
        if !servers.contains(&address) {
            servers.push(address);
        }
    }
    Ok(servers)
}

/// A ZooKeeper connect string, `host[:port][,host[:port]...][/chroot]`;
/// returned trimmed.
pub(crate) fn zookeeper_connect(key: &str, value: &str) -> Result<String, ConfigError> {
    let hosts = value
        .split_once('/')
        .map_or(value, |(hosts, _chroot)| hosts);
    let allowed = |reason: &str| {
        format!(
            "host:port entries separated by commas with an optional /chroot, ports from 1 to \
             65535, e.g. zk0:2181,zk1:2181,zk2:2181 ({reason})"
        )
    };
    let mut any = false;
    for entry in hosts.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        host_port(entry, false)
            .map_err(|reason| ConfigError::invalid_value(key, value, allowed(&reason)))?;
        any = true;
    }
    if !any {
        return Err(ConfigError::invalid_value(
            key,
            value,
            allowed("no host is given"),
        ));
    }
    Ok(value.to_owned())
}

/// Splits a normalized `host:port` or `[v6]:port` address, as found in
/// [`ClientConfig::bootstrap_servers`](super::ClientConfig::bootstrap_servers),
/// into the host (without brackets, e.g. for TLS server name checks) and the
/// port. `None` if the address is not of that form.
pub fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None => host,
    };
    if host.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    (port != 0).then_some((host, port))
}

/// `host:port`, with brackets around IPv6 hosts.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Parses one `host:port` entry; the error is a reason naming the entry.
fn host_port(entry: &str, port_required: bool) -> Result<(String, Option<u16>), String> {
    // Kafka's address parser skips anything before the host, so
    // `SASL_SSL://broker:9093` works; accept it too.
    let address = entry.split_once("://").map_or(entry, |(_, rest)| rest);
    let (host, port) = if let Some(bracketed) = address.strip_prefix('[') {
        let (inner, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("`{entry}` opens [ without closing it"))?;
        let ip = inner.split_once('%').map_or(inner, |(ip, _zone)| ip);
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{inner}` in `{entry}` is not an IPv6 address"));
        }
        let port = if after.is_empty() {
            None
        } else {
            Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("`{entry}` needs a : between ] and the port"))?,
            )
        };
        (inner, port)
    } else {
        match address.matches(':').count() {
            0 => (address, None),
            1 => match address.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (address, None),
            },
            _ if port_required => {
                // Unbracketed IPv6: the port follows the last colon.
                let (host, port) = address
                    .rsplit_once(':')
                    .ok_or_else(|| format!("`{entry}` is not host:port"))?;
                let ip = host.split_once('%').map_or(host, |(ip, _zone)| ip);
                if ip.parse::<Ipv6Addr>().is_err() {
                    return Err(format!(
                        "`{entry}` has more than one : and is not [IPv6]:port"
                    ));
                }
                (host, Some(port))
            }
            _ => {
                return Err(format!(
                    "`{entry}` has more than one :; write IPv6 addresses in brackets, e.g. [::1]:2181"
                ));
            }
        }
    };
    if host.is_empty() {
        return Err(format!("`{entry}` has no host name"));
    }
    if !host.contains(':')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(format!(
            "host `{host}` in `{entry}` may only contain letters, digits, '.', '-' and '_'"
        ));
    }
    let port = match port {
        None if port_required => {
            return Err(format!("`{entry}` has no port; write it as {entry}:9092"));
        }
        None => None,
        Some(p) => {
            let number = if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                p.parse::<u16>().ok().filter(|&n| n != 0)
            };
            match number {
                Some(n) => Some(n),
                None => {
                    return Err(format!(
                        "`{entry}` has port `{p}`; a port is a number from 1 to 65535"
                    ));
                }
            }
        }
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(text: &str) -> Properties {
        Properties::parse(text).unwrap()
    }

    #[test]
    fn durations() {
        let p = props("a=250\nb= 7 \nc=-1\nd=abc\ne=\nf=9223372036854775808\ng=+5");
        let def = Duration::from_millis(100);
        assert_eq!(
            millis(&p, "a", def, i64::MAX).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            millis(&p, "b", def, i64::MAX).unwrap(),
            Duration::from_millis(7)
        );
        assert_eq!(
            millis(&p, "g", def, i64::MAX).unwrap(),
            Duration::from_millis(5)
        );
        assert_eq!(millis(&p, "absent", def, i64::MAX).unwrap(), def);
        for key in ["c", "d", "e", "f"] {
            let e = millis(&p, key, def, i64::MAX).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(&format!("for {key};")), "{text}");
            assert!(text.contains("from 0 to 9223372036854775807"), "{text}");
        }
        let e = millis(&props("x=2147483648"), "x", def, i64::from(i32::MAX)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value \"2147483648\" for x; allowed: a whole number of milliseconds from 0 \
             to 2147483647 (remove the line for the default, 100)"
        );
    }

    #[test]
    fn buffers() {
        let p = props("a=-1\nb=65536\nc=0\nd=-2\ne=big");
        assert_eq!(buffer_bytes(&p, "a").unwrap(), None);
        assert_eq!(buffer_bytes(&p, "b").unwrap(), Some(65536));
        assert_eq!(buffer_bytes(&p, "absent").unwrap(), None);
        for key in ["c", "d", "e"] {
            let text = buffer_bytes(&p, key).unwrap_err().to_string();
            assert!(text.contains(&format!("for {key};")), "{text}");
            assert!(
                text.contains("-1 (the operating system's default"),
                "{text}"
            );
        }
    }

    #[test]
    fn broker_lists() {
        assert_eq!(
            broker_list("k", "wn0-kafka:9092,wn1-kafka:9092").unwrap(),
            vec!["wn0-kafka:9092", "wn1-kafka:9092"]
        );
        assert_eq!(
            broker_list(
                "k",
                " wn0-dest.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:9092 , ,10.0.0.1:9093,"
            )
            .unwrap(),
            vec![
                "wn0-dest.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:9092",
                "10.0.0.1:9093"
            ]
        );
        assert_eq!(broker_list("k", "[::1]:9092").unwrap(), vec!["[::1]:9092"]);
        assert_eq!(broker_list("k", "::1:9092").unwrap(), vec!["[::1]:9092"]);
        assert_eq!(
            broker_list("k", "[fe80::1%eth0]:9092").unwrap(),
            vec!["[fe80::1%eth0]:9092"]
        );
        assert_eq!(
            broker_list("k", "SASL_SSL://b:9093").unwrap(),
            vec!["b:9093"]
        );
        assert_eq!(broker_list("k", "a:1,a:1").unwrap(), vec!["a:1"]);
        assert_eq!(broker_list("k", "").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn bad_broker_lists_name_the_entry() {
        for (value, reason) in [
            ("broker", "`broker` has no port; write it as broker:9092"),
            (
                "b:0",
                "`b:0` has port `0`; a port is a number from 1 to 65535",
            ),
            ("b:65536", "has port `65536`"),
            ("b:x", "has port `x`"),
            ("b:", "has port ``"),
            ("b:+1", "has port `+1`"),
            (":9092", "has no host name"),
            ("[::1:9092", "opens [ without closing it"),
            ("[nope]:9092", "is not an IPv6 address"),
            ("[::1]9092", "needs a : between ] and the port"),
            ("a:b:c", "is not [IPv6]:port"),
            ("bro ker:9092", "may only contain letters"),
            ("ok:1,bad", "`bad` has no port"),
        ] {
            let e = broker_list("bootstrap.servers", value).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with(&format!(
                    "invalid value {value:?} for bootstrap.servers; allowed: "
                )),
                "{text}"
            );
            assert!(text.contains(reason), "{value}: {text}");
        }
    }

    #[test]
    fn zookeeper_strings() {
        let zk = "zk0-source.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:2181,zk1-source.aazwc2onlofevkbof0cuixrp5h.gx.internal.cloudapp.net:2181";
        assert_eq!(zookeeper_connect("z", zk).unwrap(), zk);
        assert!(zookeeper_connect("z", "zk0:2181,zk1:2181/kafka").is_ok());
        assert!(zookeeper_connect("z", "zk0").is_ok());
        assert!(zookeeper_connect("z", "[::1]:2181").is_ok());
        for (value, reason) in [
            ("zk0:0", "a port is a number"),
            ("/chroot", "no host is given"),
            ("::1:2181", "IPv6 addresses in brackets"),
        ] {
            let text = zookeeper_connect("zookeeper.connect", value)
                .unwrap_err()
                .to_string();
            assert!(text.contains("for zookeeper.connect"), "{text}");
            assert!(text.contains(reason), "{text}");
        }
    }

    #[test]
    fn split_addresses() {
        assert_eq!(split_host_port("wn0-kafka:9092"), Some(("wn0-kafka", 9092)));
        assert_eq!(split_host_port("[::1]:9092"), Some(("::1", 9092)));
        assert_eq!(split_host_port("nope"), None);
        assert_eq!(split_host_port(":9092"), None);
        assert_eq!(split_host_port("a:0"), None);
        assert_eq!(split_host_port("[::1:9092"), None);
    }
}
