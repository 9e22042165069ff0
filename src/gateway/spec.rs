//! What an upstream is, as the operator wrote it: `--upstream NAME=http://host:port/mcp`,
//! `--upstream 'NAME=stdio:COMMAND ARG…'`, or an `[[upstream]]` table of `steward.toml`.
//! Everything here is checked once, at start-up; a problem is a message that says what to fix.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::breaker::BreakerPolicy;
use crate::tls::{ClientIdentity, ExtraRoots};

/// Between an upstream's name and its tool's name in the merged `tools/list`: `docs__search`.
/// Two underscores keep the name within MCP's tool-name characters (`A-Z a-z 0-9 _ - .`).
pub const SEPARATOR: &str = "__";
/// Longest upstream name, so prefixed tool names stay far below MCP's 128 characters.
const MAX_NAME: usize = 32;

/// An upstream's name: 1 to 32 of `A-Z a-z 0-9 _ -`, without `__` and not starting or ending
/// with `_`, so the first `__` of a prefixed tool name always ends the upstream's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamName(String);

impl UpstreamName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        let problem = if text.is_empty() || text.len() > MAX_NAME {
            Some(format!("must be 1 to {MAX_NAME} characters long"))
        } else if !text.chars().all(allowed) {
            Some("may hold only letters, digits, '_' and '-'".to_string())
        } else if text.contains(SEPARATOR) || text.starts_with('_') || text.ends_with('_') {
            Some(format!(
                "may not contain {SEPARATOR:?} (it separates the upstream from its tool in tool names) nor start or end with '_'"
            ))
        } else {
            None
        };
        match problem {
            Some(problem) => Err(format!("upstream name {text:?} {problem}")),
            None => Ok(UpstreamName(text.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UpstreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A header or environment value that may hold a credential: never printed, logged or stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The value itself, only to hand it to the upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How Steward reaches an upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Streamable HTTP at `url`, with these extra headers on every request; an https:// one's
    /// certificate may also chain to the roots of `ca_file`, and it is shown `identity` when it
    /// asks for a client certificate.
    Http {
        url: String,
        headers: Vec<(String, Secret)>,
        ca_file: Option<ExtraRoots>,
        identity: Option<ClientIdentity>,
    },
    /// A child process speaking MCP on its standard input/output.
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, Secret)>,
    },
}

/// One upstream server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamSpec {
    pub name: UpstreamName,
    pub target: Target,
    /// A request the upstream has not answered by then fails, naming the upstream.
    pub timeout: Duration,
    /// Only these of its tools are offered (all when `None`).
    pub tools: Option<Vec<String>>,
    /// When to stop calling it for a while (`--upstream-breaker-*`).
    pub breaker: BreakerPolicy,
    /// Whether its tools, prompts and resources carry its name (`NAME__tool`,
    /// `upstream://NAME/URI`); without it (`--upstream-unnamespaced`, `namespace = false`) they
    /// keep the upstream's own names, so Steward can stand in for that one server.
    pub namespaced: bool,
}

impl UpstreamSpec {
    /// Reads `NAME=http://host:port/mcp` or `NAME=stdio:COMMAND ARG…` (the `--upstream` flag).
    pub fn parse_flag(text: &str, timeout: Duration) -> Result<Self, String> {
        let Some((name, target)) = text.split_once('=') else {
            return Err(format!(
                "--upstream {text:?} has no '='; write NAME=http://HOST:PORT/mcp or 'NAME=stdio:COMMAND ARG...'"
            ));
        };
        let name = UpstreamName::parse(name.trim())?;
        let target = match target.strip_prefix("stdio:") {
            Some(command_line) => {
                let mut words = split_words(command_line)?.into_iter();
                let command = words.next().ok_or_else(|| {
                    format!("upstream {name}: stdio: needs a command, e.g. {name}=stdio:python server.py")
                })?;
                Target::Stdio {
                    command,
                    args: words.collect(),
                    env: Vec::new(),
                }
            }
            None => Target::Http {
                url: check_url(&name, target.trim())?,
                headers: Vec::new(),
                ca_file: None,
                identity: None,
            },
        };
        Ok(UpstreamSpec {
            name,
            target,
            timeout,
            tools: None,
            breaker: BreakerPolicy::default(),
            namespaced: true,
        })
    }

    /// Whether its allow-list (if any) lets `tool` through.
    pub fn offers(&self, tool: &str) -> bool {
        self.tools
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|t| t == tool))
    }

    /// Where it is, for `/health` and logs: the URL without credentials or query, or the
    /// command without its arguments.
    pub fn location(&self) -> String {
        match &self.target {
            Target::Http { url, .. } => shown_url(url),
            Target::Stdio { command, .. } => format!("stdio:{command}"),
        }
    }
}

/// An `[[upstream]]` table of `steward.toml`. Header and environment values may name
/// environment variables (`"Bearer ${DOCS_TOKEN}"`), so the file need not hold the secret.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTable {
    name: String,
    url: Option<String>,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// A PEM file of certificate authorities an https:// upstream's certificate may chain to,
    /// besides the system's (a private CA); relative to the config file's folder.
    ca_file: Option<PathBuf>,
    /// PEM files of the certificate and private key shown to an https:// upstream that asks for
    /// a client certificate (mutual TLS); relative to the config file's folder.
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    /// e.g. "30s".
    timeout: Option<String>,
    /// Only these of its tools are offered.
    tools: Option<Vec<String>>,
    /// `false`: its names are not prefixed with the upstream's (see [`UpstreamSpec::namespaced`]).
    namespace: Option<bool>,
}

impl UpstreamTable {
    /// Makes a relative `ca_file`, `client_cert` or `client_key` relative to `dir` (the config
    /// file's folder), so it does not depend on where Steward was started.
    pub fn anchor(&mut self, dir: &Path) {
        for file in [
            &mut self.ca_file,
            &mut self.client_cert,
            &mut self.client_key,
        ] {
            if let Some(path) = file.as_mut().filter(|p| p.is_relative()) {
                *path = dir.join(&*path);
            }
        }
    }

    pub fn into_spec(
        self,
        default_timeout: Duration,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<UpstreamSpec, String> {
        let name = UpstreamName::parse(&self.name)?;
        let secrets = |values: std::collections::BTreeMap<String, String>, what: &str| {
            values
                .into_iter()
                .map(|(key, value)| {
                    let place = format!("upstream {name} {what} {key}");
                    Ok((key, Secret::new(expand_env(&value, &place, &lookup)?)))
                })
                .collect::<Result<Vec<_>, String>>()
        };
        let tls_files =
            self.ca_file.is_some() || self.client_cert.is_some() || self.client_key.is_some();
        let target = match (self.url, self.command) {
            (Some(url), None) if self.args.is_empty() && self.env.is_empty() => Target::Http {
                ca_file: extra_roots(&name, &url, self.ca_file.as_deref())?,
                identity: client_identity(
                    &name,
                    &url,
                    self.client_cert.as_deref(),
                    self.client_key.as_deref(),
                )?,
                url: check_url(&name, &url)?,
                headers: secrets(self.headers, "header")?,
            },
            (None, Some(command)) if self.headers.is_empty() && !tls_files => Target::Stdio {
                command,
                args: self.args,
                env: secrets(self.env, "env")?,
            },
            _ => {
                return Err(format!(
                    "upstream {name}: give either url (with headers, ca_file, client_cert and client_key) or command (with args and env), not both or neither"
                ));
            }
        };
        let timeout = match self.timeout {
            None => default_timeout,
            Some(text) => humantime::parse_duration(&text)
                .ok()
                .filter(|t| !t.is_zero())
                .ok_or_else(|| {
                    format!("upstream {name}: timeout {text:?} is not a duration like 30s or 2m")
                })?,
        };
        Ok(UpstreamSpec {
            name,
            target,
            timeout,
            tools: self.tools,
            breaker: BreakerPolicy::default(),
            namespaced: self.namespace.unwrap_or(true),
        })
    }
}

/// Refuses a set of upstreams whose names could clash: an upstream without a namespace owns
/// every name no other upstream's `NAME__` prefix claims, so there may be only one, and only
/// when Steward serves nothing of its own (`serves_own`: the board or the conformance fixtures).
pub fn check_namespaces(specs: &[UpstreamSpec], serves_own: bool) -> Result<(), String> {
    let bare: Vec<&str> = specs
        .iter()
        .filter(|s| !s.namespaced)
        .map(|s| s.name.as_str())
        .collect();
    match bare.as_slice() {
        [] => Ok(()),
        [_] if !serves_own => Ok(()),
        [one] => Err(format!(
            "upstream {one} has no namespace, so its tool, prompt and resource names could clash with the board's: add --no-board (and no --conformance-fixtures), or give it its namespace back"
        )),
        several => Err(format!(
            "upstreams {} have no namespace, so their names could clash: at most one upstream may be mounted without a namespace",
            several.join(" and ")
        )),
    }
}

/// An upstream URL must be `http://HOST[:PORT]/PATH` or `https://HOST[:PORT]/PATH`.
pub fn check_url(name: &UpstreamName, url: &str) -> Result<String, String> {
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or_default();
    if host.is_empty() || host.starts_with('/') || url.contains(char::is_whitespace) {
        return Err(format!(
            "upstream {name}: {url:?} is not an http:// or https:// URL; write e.g. {name}=http://127.0.0.1:8000/mcp or {name}=stdio:COMMAND"
        ));
    }
    Ok(url.to_string())
}

/// The roots of an https:// upstream's `ca_file`, read now so a missing or wrong file stops
/// Steward at start, naming the upstream and the file.
fn extra_roots(
    name: &UpstreamName,
    url: &str,
    ca_file: Option<&Path>,
) -> Result<Option<ExtraRoots>, String> {
    let Some(path) = ca_file else {
        return Ok(None);
    };
    if !url.starts_with("https://") {
        return Err(format!(
            "upstream {name}: ca_file is for https:// upstreams, and its url is not one"
        ));
    }
    ExtraRoots::read(path)
        .map(Some)
        .map_err(|e| format!("upstream {name}: ca_file {e}"))
}

/// The client certificate and key of an https:// upstream, read now so a missing or wrong file
/// stops Steward at start, naming the upstream and the file.
fn client_identity(
    name: &UpstreamName,
    url: &str,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Option<ClientIdentity>, String> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => {
            return Err(format!(
                "upstream {name}: client_cert and client_key go together: give both (PEM files of the certificate and its private key) or neither"
            ));
        }
    };
    if !url.starts_with("https://") {
        return Err(format!(
            "upstream {name}: client_cert and client_key are for https:// upstreams, and its url is not one"
        ));
    }
    ClientIdentity::read(cert, key)
        .map(Some)
        .map_err(|e| format!("upstream {name}: {e}"))
}

/// `url` without user information (`user:password@`) and without its query string.
fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}{path}")
}

/// Replaces every `${VAR}` in `value` with that environment variable's value. A variable that
/// is not set is an error naming it (never the value around it, which may be a secret).
pub fn expand_env(
    value: &str,
    where_: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("{where_}: a '${{' has no closing '}}'"))?;
        let var = &after[..end];
        let found = lookup(var).ok_or_else(|| {
            format!("{where_}: the environment variable {var} is not set; export it before starting Steward")
        })?;
        out.push_str(&found);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits a command line into words at spaces; single or double quotes keep spaces inside a word.
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_default().push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_default().push(c),
        }
    }
    if quote.is_some() {
        return Err(format!("the command {text:?} has an unclosed quote"));
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn names_keep_the_separator_unambiguous() {
        for good in ["docs", "my-server", "a_b", "X1"] {
            assert!(UpstreamName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "a__b", "_a", "a_", "a b", "a.b", "é", &"x".repeat(33)] {
            assert!(UpstreamName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_name_http_and_stdio_upstreams() {
        let http = UpstreamSpec::parse_flag("docs=http://127.0.0.1:8000/mcp", T).unwrap();
        assert_eq!(http.name.as_str(), "docs");
        assert!(
            matches!(http.target, Target::Http { ref url, .. } if url == "http://127.0.0.1:8000/mcp")
        );
        let https = UpstreamSpec::parse_flag("docs=https://mcp.example.com/mcp", T).unwrap();
        assert!(
            matches!(https.target, Target::Http { ref url, ca_file: None, .. } if url == "https://mcp.example.com/mcp")
        );
        let stdio =
            UpstreamSpec::parse_flag("py=stdio:python3 'my server.py' --port 1", T).unwrap();
        assert_eq!(
            stdio.target,
            Target::Stdio {
                command: "python3".into(),
                args: vec!["my server.py".into(), "--port".into(), "1".into()],
                env: vec![],
            }
        );
        for bad in [
            "docs",
            "a__b=http://h/mcp",
            "docs=https://",
            "docs=ftp://h",
            "docs=http://",
            "py=stdio:",
            "py=stdio:'open",
        ] {
            assert!(UpstreamSpec::parse_flag(bad, T).is_err(), "{bad}");
        }
    }

    #[test]
    fn locations_hide_credentials_and_environment_values_are_expanded() {
        let spec = UpstreamSpec::parse_flag("d=http://user:pw@h:1/mcp?token=abc", T).unwrap();
        assert_eq!(spec.location(), "http://h:1/mcp");
        let env = |var: &str| (var == "TOKEN").then(|| "s3cret".to_string());
        assert_eq!(
            expand_env("Bearer ${TOKEN}", "x", env).unwrap(),
            "Bearer s3cret"
        );
        let missing = expand_env("${NOPE}", "upstream d header A", env).unwrap_err();
        assert!(
            missing.contains("NOPE") && missing.contains("header A"),
            "{missing}"
        );
        assert_eq!(format!("{:?}", Secret::new("s3cret".into())), "<redacted>");
    }

    #[test]
    fn one_unnamespaced_upstream_only_without_the_board() {
        let named = UpstreamSpec::parse_flag("a=http://h/mcp", T).unwrap();
        let bare = |name: &str| UpstreamSpec {
            namespaced: false,
            ..UpstreamSpec::parse_flag(&format!("{name}=http://h/mcp"), T).unwrap()
        };
        assert!(check_namespaces(&[named.clone(), bare("b")], false).is_ok());
        assert!(check_namespaces(std::slice::from_ref(&named), true).is_ok());
        let with_board = check_namespaces(&[bare("b")], true).unwrap_err();
        assert!(with_board.contains("--no-board"), "{with_board}");
        let two = check_namespaces(&[bare("b"), bare("c")], false).unwrap_err();
        assert!(
            two.contains("b and c") && two.contains("at most one"),
            "{two}"
        );
    }

    #[test]
    fn tables_take_headers_from_the_environment_and_refuse_mixed_targets() {
        let env = |var: &str| (var == "TOKEN").then(|| "s3cret".to_string());
        let table: UpstreamTable = toml::from_str(
            "name = \"docs\"\nurl = \"http://h:1/mcp\"\ntimeout = \"2s\"\ntools = [\"search\"]\n[headers]\nAuthorization = \"Bearer ${TOKEN}\"",
        )
        .unwrap();
        let spec = table.into_spec(T, env).unwrap();
        assert_eq!(spec.timeout, Duration::from_secs(2));
        assert_eq!(spec.tools, Some(vec!["search".to_string()]));
        let Target::Http { headers, .. } = &spec.target else {
            panic!("not http")
        };
        assert_eq!(headers[0].1.expose(), "Bearer s3cret");
        let bare: UpstreamTable =
            toml::from_str("name = \"fx\"\nurl = \"http://h/mcp\"\nnamespace = false").unwrap();
        assert!(!bare.into_spec(T, env).unwrap().namespaced);
        let mixed: UpstreamTable =
            toml::from_str("name = \"x\"\nurl = \"http://h/mcp\"\ncommand = \"y\"").unwrap();
        assert!(mixed.into_spec(T, env).is_err());
    }

    #[test]
    fn a_ca_file_is_read_at_start_relative_to_the_config_file() {
        let env = |_: &str| None;
        let dir = tempfile::tempdir().unwrap();
        let table = |text: &str| -> UpstreamTable {
            let mut table: UpstreamTable = toml::from_str(text).unwrap();
            table.anchor(dir.path());
            table
        };
        let missing = table("name = \"v\"\nurl = \"https://h/mcp\"\nca_file = \"ca.pem\"")
            .into_spec(T, env)
            .unwrap_err();
        let expected = dir.path().join("ca.pem").display().to_string();
        assert!(
            missing.contains("upstream v: ca_file") && missing.contains(&expected),
            "{missing}"
        );
        let plain = table("name = \"v\"\nurl = \"http://h/mcp\"\nca_file = \"ca.pem\"")
            .into_spec(T, env)
            .unwrap_err();
        assert!(plain.contains("ca_file is for https://"), "{plain}");
        let stdio = table("name = \"v\"\ncommand = \"x\"\nca_file = \"ca.pem\"")
            .into_spec(T, env)
            .unwrap_err();
        assert!(stdio.contains("either url"), "{stdio}");
    }
}
