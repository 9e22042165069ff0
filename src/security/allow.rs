//! Allow-lists for the `Host` and `Origin` headers.
//!
//! A browser page on another site can POST to a server on loopback (`Origin` tells), and a
//! DNS-rebinding attack makes the browser believe the attacker's name points at 127.0.0.1
//! (`Host` tells). Entries read `host`, `host:port`, `host:*` or `scheme://host[:port]`;
//! without a port any port matches. `*` allows everything (behind a proxy that checks).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Names that always mean this machine.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    scheme: Option<String>,
    host: String,
    /// None: any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    any: bool,
    entries: Vec<Entry>,
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            return f.write_str("*");
        }
        let shown: Vec<String> = self
            .entries
            .iter()
            .map(|e| {
                let host = if e.host.contains(':') {
                    format!("[{}]", e.host)
                } else {
                    e.host.clone()
                };
                let scheme = e
                    .scheme
                    .as_ref()
                    .map_or(String::new(), |s| format!("{s}://"));
                let port = e.port.map_or(String::new(), |p| format!(":{p}"));
                format!("{scheme}{host}{port}")
            })
            .collect();
        f.write_str(&shown.join(", "))
    }
}

impl AllowList {
    /// localhost, 127.0.0.1 and [::1] on any port, plus the listen address when it names a host
    /// (an unspecified address such as 0.0.0.0 names none: such servers must list their names).
    pub fn loopback_and(listen: SocketAddr) -> Self {
        let mut entries: Vec<Entry> = LOOPBACK_NAMES
            .iter()
            .map(|name| Entry {
                scheme: None,
                host: (*name).to_string(),
                port: None,
            })
            .collect();
        if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
            entries.push(Entry {
                scheme: None,
                host: listen.ip().to_string(),
                port: Some(listen.port()),
            });
        }
        AllowList {
            any: false,
            entries,
        }
    }

    /// Parses a comma-separated list. The loopback names are always included: a server cannot
    /// be told to refuse its own machine.
    pub fn parse(text: &str, listen: SocketAddr) -> Result<Self, String> {
        let mut list = AllowList::loopback_and(listen);
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                list.any = true;
                continue;
            }
            list.entries.push(parse_entry(item).ok_or_else(|| {
                format!(
                    "{item:?} is not a host; use host, host:port, host:*, or scheme://host[:port] (e.g. steward.example.com or https://app.example.com)"
                )
            })?);
        }
        Ok(list)
    }

    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Whether a `Host` header value (`host[:port]`) is allowed.
    pub fn allows_host(&self, value: &str) -> bool {
        if self.any {
            return true;
        }
        let Some((host, port)) = split_authority(value) else {
            return false;
        };
        self.entries
            .iter()
            .any(|e| e.host == host && e.port.is_none_or(|p| Some(p) == port))
    }

    /// Whether a `Host` header value is allowed for the operator's endpoints (`/health`,
    /// `/metrics`): the allow-list, or any IP address literal. A DNS-rebinding page reaches the
    /// server under the attacker's *name*, never under an IP literal, so probes that address
    /// the server by IP (load balancers, Kubernetes) keep working.
    pub fn allows_probe_host(&self, value: &str) -> bool {
        self.allows_host(value)
            || split_authority(value).is_some_and(|(host, _)| host.parse::<IpAddr>().is_ok())
    }

    /// Whether an `Origin` header value (`scheme://host[:port]`) is allowed.
    pub fn allows_origin(&self, value: &str) -> bool {
        if self.any {
            return true;
        }
        let Some((scheme, rest)) = value.split_once("://") else {
            return false;
        };
        let scheme = scheme.to_ascii_lowercase();
        if rest.contains('/') {
            return false;
        }
        let Some((host, port)) = split_authority(rest) else {
            return false;
        };
        let port = port.or(match scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        });
        self.entries.iter().any(|e| {
            e.host == host
                && e.scheme.as_ref().is_none_or(|s| *s == scheme)
                && e.port.is_none_or(|p| Some(p) == port)
        })
    }
}

fn parse_entry(item: &str) -> Option<Entry> {
    let (scheme, rest) = match item.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, item),
    };
    if scheme.as_deref().is_some_and(|s| {
        s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    }) {
        return None;
    }
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.strip_suffix(":*") {
        Some(host) => (split_authority(host)?.0, None),
        None => split_authority(rest)?,
    };
    Some(Entry { scheme, host, port })
}

/// `host[:port]` (IPv6 in brackets) → lowercase host without brackets, and the port.
fn split_authority(value: &str) -> Option<(String, Option<u16>)> {
    let value = value.trim();
    if value.is_empty() || value.contains(['/', '@', ' ', '?', '#']) {
        return None;
    }
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<IpAddr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        (host, port)
    } else if value.matches(':').count() > 1 {
        // A bare IPv6 address (in a configured list, not in a Host header).
        value.parse::<IpAddr>().ok()?;
        (value, None)
    } else {
        match value.split_once(':') {
            Some((host, port)) => (host, Some(port.parse().ok()?)),
            None => (value, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen() -> SocketAddr {
        "127.0.0.1:8051".parse().unwrap()
    }

    /// Asserts that `allows` holds for each of `allowed` and for none of `refused`.
    fn assert_allows(allows: impl Fn(&str) -> bool, allowed: &[&str], refused: &[&str]) {
        for text in allowed {
            assert!(allows(text), "{text} should be allowed");
        }
        for text in refused {
            assert!(!allows(text), "{text} should be refused");
        }
    }

    #[test]
    fn loopback_names_on_any_port_by_default() {
        let list = AllowList::loopback_and(listen());
        assert_allows(
            |host| list.allows_host(host),
            &[
                "localhost",
                "localhost:8051",
                "127.0.0.1:1",
                "[::1]:9",
                "LOCALHOST",
            ],
            &[
                "evil.example",
                "evil.example:8051",
                "127.0.0.1.evil.example",
                "",
                "[::1",
            ],
        );
        assert_allows(
            |origin| list.allows_origin(origin),
            &[
                "http://localhost:3000",
                "https://127.0.0.1",
                "http://[::1]:8051",
            ],
            &[
                "null",
                "https://evil.example",
                "http://localhost.evil.example",
                "file://",
                "localhost",
            ],
        );
    }

    #[test]
    fn the_listen_address_is_allowed_with_its_port() {
        let list = AllowList::loopback_and("10.0.0.5:8051".parse().unwrap());
        assert!(list.allows_host("10.0.0.5:8051"));
        assert!(!list.allows_host("10.0.0.5:9999"));
        let unspecified = AllowList::loopback_and("0.0.0.0:8051".parse().unwrap());
        assert!(!unspecified.allows_host("0.0.0.0:8051"));
    }

    #[test]
    fn configured_entries() {
        let list = AllowList::parse(
            "steward.example.com, https://app.example.com, api.example.com:8443, x.example:*",
            listen(),
        )
        .unwrap();
        assert_allows(
            |host| list.allows_host(host),
            &["steward.example.com:443", "api.example.com:8443"],
            &["api.example.com:8444"],
        );
        assert_allows(
            |origin| list.allows_origin(origin),
            &["https://app.example.com", "https://x.example:1234"],
            &["http://app.example.com"],
        );
        assert!(
            AllowList::parse("*", listen())
                .unwrap()
                .allows_host("anything")
        );
        assert!(AllowList::parse("exa mple", listen()).is_err());
        assert!(AllowList::parse("http://a/b/c", listen()).is_err());
    }
}
