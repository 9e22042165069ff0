//! Resolved configuration: flags > `STEWARD_*` environment > `steward.toml` > defaults.
//!
//! Every problem found here is a [`ConfigError`], which `main` turns into exit code 2 with a
//! message that says what to fix.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::{
    Cli, Command, DatabaseArgs, GatewayArgs, ImportSource, KeysAction, LedgerArgs, PricingAction,
    RequestsAction, SecurityArgs, ServeArgs, SessionArgs, SessionsAction,
};
use crate::gateway::breaker::{self, BreakerPolicy};
use crate::gateway::spec::{UpstreamSpec, UpstreamTable};
use crate::ledger::pricing::PricingPolicy;
use crate::ledger::{Durability, LedgerSettings};
use crate::logs::LogFormat;
use crate::security::{AllowList, AuthMode, ConnectionLimits, SecuritySettings};
use crate::sessions::{MAX_HANGUP_GRACE, SessionSettings};
use crate::store::{DatabaseUrl, UrlError};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8051";
/// The default database, under the user's data directory (see [`default_database_path`]), so
/// `serve`, `stdio` and the CLI find the same board from any working directory.
pub const DEFAULT_DATABASE_FILE: &str = "steward/steward.db";
const DEFAULT_CONFIG_FILE: &str = "steward.toml";

/// A configuration problem the user must fix; exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error(transparent)]
    DatabaseUrl(#[from] UrlError),
    #[error(
        "cannot listen on {addr}: {source}. Choose another address with --listen or STEWARD_LISTEN (port 0 picks a free one)"
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid duration {value:?} for {key}: {reason}. Use e.g. 90s, 5m, 24h or 7d")]
    Duration {
        key: String,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot open the database at {url}: {reason}")]
    Database { url: String, reason: String },
}

/// What `steward.toml` may contain. Unknown keys are an error, so a typo never goes unnoticed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// `HOST:PORT`; the host may be a name (`localhost`).
    listen: Option<String>,
    database: Option<String>,
    conformance_fixtures: Option<bool>,
    #[serde(default)]
    sessions: FileSessions,
    #[serde(default)]
    ledger: FileLedger,
    #[serde(default)]
    telemetry: FileTelemetry,
    #[serde(default)]
    security: FileSecurity,
    /// Serve only the upstreams' tools (`--no-board`).
    no_board: Option<bool>,
    /// Gateway mode: the servers Steward stands in front of.
    #[serde(default)]
    upstream: Vec<UpstreamTable>,
}

/// `[telemetry]` in `steward.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTelemetry {
    /// "text" or "json".
    log_format: Option<LogFormat>,
    otlp_endpoint: Option<String>,
}

/// `[security]` in `steward.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSecurity {
    auth: Option<AuthMode>,
    insecure_no_auth: Option<bool>,
    allowed_origins: Option<Vec<String>>,
    allowed_hosts: Option<Vec<String>>,
    max_body_bytes: Option<usize>,
    max_json_depth: Option<usize>,
    rate_limit: Option<u32>,
    rate_burst: Option<u32>,
    max_sessions_per_principal: Option<u32>,
    /// e.g. "60s".
    tool_timeout: Option<String>,
    header_read_timeout: Option<String>,
    connection_idle_timeout: Option<String>,
    body_stall_timeout: Option<String>,
    max_connections: Option<u32>,
}

/// `[ledger]` in `steward.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLedger {
    durability: Option<Durability>,
    spill: Option<PathBuf>,
    /// The journal directory (see `--ledger-journal`).
    journal: Option<PathBuf>,
    /// e.g. "30d".
    retention: Option<String>,
    /// See `--ledger-queue-bytes`.
    queue_bytes: Option<u64>,
    /// Default pricing model.
    pricing_model: Option<String>,
    /// Pricing model per client type, e.g. `"Cursor" = "gpt-5"`.
    #[serde(default)]
    client_models: HashMap<String, String>,
}

/// `[sessions]` in `steward.toml`; durations as text (`"5m"`, `"24h"`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSessions {
    idle_after: Option<String>,
    session_timeout: Option<String>,
    max_age: Option<String>,
    cleanup_interval: Option<String>,
    revocation_poll: Option<String>,
    hangup_grace: Option<String>,
    /// "memory" or "database".
    event_store: Option<String>,
}

/// What `steward check` runs against.
pub struct CheckOptions {
    pub url: String,
    pub database: Option<DatabaseUrl>,
    pub spawn: bool,
    pub restart_cmd: Option<String>,
    /// Extra arguments for a spawned server (used by tests to break a promise on purpose).
    pub serve_args: Vec<String>,
}

/// Configuration of `steward serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub store: StoreConfig,
    pub sessions: SessionSettings,
    /// OTLP/HTTP collector for request spans, if any.
    pub otlp_endpoint: Option<String>,
    /// Serve the conformance suite's fixture tools, prompts and resources too.
    pub conformance_fixtures: bool,
    pub security: SecuritySettings,
    /// The servers Steward stands in front of (gateway mode).
    pub upstreams: Vec<UpstreamSpec>,
    /// Whether the board's tools, resources and prompts are served (`--no-board`: not).
    pub board: bool,
}

/// What `steward serve` and `steward stdio` both open: the database, and the request ledger
/// that writes to it. (All of `stdio`'s configuration.)
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub database: DatabaseUrl,
    pub ledger: LedgerSettings,
    pub pricing: PricingPolicy,
}

// Built once at start-up: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Resolved {
    Serve(ServeConfig),
    Stdio(StoreConfig),
    Sessions(DatabaseUrl, SessionsAction),
    Projects(DatabaseUrl, crate::cli::ProjectsAction),
    Tasks(DatabaseUrl, crate::cli::TasksAction),
    Pricing(DatabaseUrl, PricingAction),
    Requests(DatabaseUrl, RequestsAction),
    Check(CheckOptions),
    Stats(DatabaseUrl, String, bool),
    Keys(DatabaseUrl, KeysAction),
    Import(DatabaseUrl, ImportSource),
}

impl Resolved {
    /// The database the command reads or writes (`check` names its own).
    pub fn database(&self) -> Option<&DatabaseUrl> {
        match self {
            Resolved::Serve(ServeConfig { store, .. }) | Resolved::Stdio(store) => {
                Some(&store.database)
            }
            Resolved::Check(_) => None,
            Resolved::Sessions(url, _)
            | Resolved::Projects(url, _)
            | Resolved::Tasks(url, _)
            | Resolved::Pricing(url, _)
            | Resolved::Requests(url, _)
            | Resolved::Stats(url, _, _)
            | Resolved::Keys(url, _)
            | Resolved::Import(url, _) => Some(url),
        }
    }
}

/// Merges flags/env (already applied by clap) with the config file and the defaults; also
/// says how to log.
pub fn resolve(cli: Cli) -> Result<(Resolved, LogFormat), ConfigError> {
    let file = load_file(cli.config.as_deref())?;
    let log_format = cli
        .log_format
        .or(file.telemetry.log_format)
        .unwrap_or_default();
    Ok((resolve_command(cli.command, file)?, log_format))
}

fn resolve_command(command: Command, file: FileConfig) -> Result<Resolved, ConfigError> {
    Ok(match command {
        Command::Serve(ServeArgs {
            listen,
            port,
            database,
            sessions,
            ledger,
            telemetry,
            conformance_fixtures,
            security,
            gateway,
        }) => {
            let database = database_url(database, &file)?;
            let session_settings = session_settings(sessions, &file.sessions)?;
            let listen = listen_address(listen, port, file.listen.as_deref())?;
            let no_board = gateway.no_board || file.no_board.unwrap_or(false);
            let conformance_fixtures = conformance_fixtures
                .or(file.conformance_fixtures)
                .unwrap_or(false);
            Resolved::Serve(ServeConfig {
                security: security_settings(security, &file.security, listen)?,
                listen,
                store: store_config(
                    database,
                    &ledger,
                    &file.ledger,
                    session_settings.cleanup_interval,
                )?,
                sessions: session_settings,
                otlp_endpoint: otlp_endpoint(
                    telemetry.otlp_endpoint.or(file.telemetry.otlp_endpoint),
                )?,
                conformance_fixtures,
                board: !no_board,
                upstreams: upstreams(gateway, file.upstream, no_board, conformance_fixtures)?,
            })
        }
        Command::Stdio(database) => {
            let database = database_url(database, &file)?;
            Resolved::Stdio(store_config(
                database,
                &LedgerArgs::default(),
                &file.ledger,
                SessionSettings::default().cleanup_interval,
            )?)
        }
        Command::Pricing(args) => {
            let action = match args.action {
                PricingAction::List {
                    output,
                    pricing_model,
                } => PricingAction::List {
                    output,
                    pricing_model: Some(pricing_policy(pricing_model, &file.ledger).default_model),
                },
                other => other,
            };
            Resolved::Pricing(database_url(args.database, &file)?, action)
        }
        Command::Check(args) => {
            // Only an explicit --database (flag or env) is used: the check never guesses.
            let database = args
                .database
                .database
                .as_deref()
                .map(DatabaseUrl::parse)
                .transpose()?;
            Resolved::Check(CheckOptions {
                url: args.url,
                database,
                spawn: args.spawn,
                restart_cmd: args.restart_cmd,
                serve_args: args.serve_args,
            })
        }
        Command::Stats(args) => {
            Resolved::Stats(database_url(args.database, &file)?, args.since, args.json)
        }
        Command::Requests(args) => {
            Resolved::Requests(database_url(args.database, &file)?, args.action)
        }
        Command::Sessions(args) => {
            Resolved::Sessions(database_url(args.database, &file)?, args.action)
        }
        Command::Keys(args) => Resolved::Keys(database_url(args.database, &file)?, args.action),
        Command::Import(args) => {
            let ImportSource::Archon { from, .. } = &args.action;
            if !matches!(DatabaseUrl::parse(from), Ok(DatabaseUrl::Postgres { .. })) {
                return Err(ConfigError::Invalid(format!(
                    "--from {from:?} is not a PostgreSQL URL; Archon v1 keeps its board in PostgreSQL (Supabase): pass --from postgres://USER@HOST:5432/DB"
                )));
            }
            Resolved::Import(database_url(args.database, &file)?, args.action)
        }
        Command::Projects(args) => {
            Resolved::Projects(database_url(args.database, &file)?, args.action)
        }
        Command::Tasks(args) => Resolved::Tasks(database_url(args.database, &file)?, args.action),
    })
}

/// The upstreams of the flags, then the file's; `--no-board` needs one, and one without a
/// namespace needs `--no-board` (and no fixtures).
fn upstreams(
    args: GatewayArgs,
    tables: Vec<UpstreamTable>,
    no_board: bool,
    fixtures: bool,
) -> Result<Vec<UpstreamSpec>, ConfigError> {
    let timeout = args
        .upstream_timeout
        .unwrap_or(crate::security::DEFAULT_TOOL_TIMEOUT);
    if timeout.is_zero() {
        return Err(ConfigError::Invalid(
            "the upstream timeout must be longer than zero (e.g. 60s)".into(),
        ));
    }
    let mut specs = Vec::new();
    for flag in &args.upstreams {
        specs.push(UpstreamSpec::parse_flag(flag, timeout).map_err(ConfigError::Invalid)?);
    }
    for flag in &args.unnamespaced {
        let spec = UpstreamSpec::parse_flag(flag, timeout).map_err(ConfigError::Invalid)?;
        specs.push(UpstreamSpec {
            namespaced: false,
            ..spec
        });
    }
    for table in tables {
        let spec = table
            .into_spec(timeout, |var| std::env::var(var).ok())
            .map_err(|e| ConfigError::Invalid(format!("[[upstream]] in the config file: {e}")))?;
        specs.push(spec);
    }
    let breaker = BreakerPolicy {
        failures: args
            .upstream_breaker_failures
            .unwrap_or(breaker::DEFAULT_FAILURES),
        cool_down: args
            .upstream_breaker_cooldown
            .unwrap_or(breaker::DEFAULT_COOL_DOWN),
    };
    for spec in &mut specs {
        spec.breaker = breaker;
    }
    if let Some(twice) = specs
        .iter()
        .enumerate()
        .find(|(i, s)| specs[..*i].iter().any(|other| other.name == s.name))
    {
        return Err(ConfigError::Invalid(format!(
            "two upstreams are named {}; give each its own name",
            twice.1.name
        )));
    }
    crate::gateway::spec::check_namespaces(&specs, !no_board || fixtures)
        .map_err(ConfigError::Invalid)?;
    if no_board && specs.is_empty() {
        return Err(ConfigError::Invalid(
            "--no-board serves only upstreams, and none is configured: add --upstream NAME=URL (or [[upstream]] in steward.toml)".into(),
        ));
    }
    Ok(specs)
}

fn security_settings(
    args: SecurityArgs,
    file: &FileSecurity,
    listen: SocketAddr,
) -> Result<SecuritySettings, ConfigError> {
    let defaults = SecuritySettings::loopback_defaults(listen);
    let list = |flag: Option<String>, from_file: &Option<Vec<String>>, key: &str| {
        let text = flag.or_else(|| from_file.as_ref().map(|items| items.join(",")));
        match text {
            None => Ok(AllowList::loopback_and(listen)),
            Some(text) => AllowList::parse(&text, listen)
                .map_err(|reason| ConfigError::Invalid(format!("{key}: {reason}"))),
        }
    };
    let tool_timeout = duration_setting(
        args.tool_timeout,
        "security.tool_timeout",
        &file.tool_timeout,
        defaults.tool_timeout,
    )?;
    let connections = ConnectionLimits {
        header_read_timeout: duration_setting(
            args.header_read_timeout,
            "security.header_read_timeout",
            &file.header_read_timeout,
            defaults.connections.header_read_timeout,
        )?,
        idle_timeout: duration_setting(
            args.connection_idle_timeout,
            "security.connection_idle_timeout",
            &file.connection_idle_timeout,
            defaults.connections.idle_timeout,
        )?,
        body_stall_timeout: duration_setting(
            args.body_stall_timeout,
            "security.body_stall_timeout",
            &file.body_stall_timeout,
            defaults.connections.body_stall_timeout,
        )?,
        max_connections: layered(
            args.max_connections,
            file.max_connections,
            defaults.connections.max_connections,
        ),
    };
    connections.check().map_err(ConfigError::Invalid)?;
    let settings = SecuritySettings {
        auth: args.auth.or(file.auth).unwrap_or(AuthMode::None),
        allowed_hosts: list(args.allowed_hosts, &file.allowed_hosts, "allowed hosts")?,
        allowed_origins: list(
            args.allowed_origins,
            &file.allowed_origins,
            "allowed origins",
        )?,
        max_body_bytes: layered(
            args.max_body_bytes,
            file.max_body_bytes,
            defaults.max_body_bytes,
        ),
        max_json_depth: layered(
            args.max_json_depth,
            file.max_json_depth,
            defaults.max_json_depth,
        ),
        rate_limit: layered(args.rate_limit, file.rate_limit, defaults.rate_limit),
        rate_burst: layered(args.rate_burst, file.rate_burst, defaults.rate_burst),
        max_sessions: layered(
            args.max_sessions_per_principal,
            file.max_sessions_per_principal,
            defaults.max_sessions,
        ),
        tool_timeout,
        connections,
    };
    if settings.max_body_bytes < 1024 {
        return Err(ConfigError::Invalid(format!(
            "the body limit {} is too small for any MCP message; use at least 1024 bytes (default 4194304)",
            settings.max_body_bytes
        )));
    }
    if !(4..=10_000).contains(&settings.max_json_depth) {
        return Err(ConfigError::Invalid(format!(
            "the JSON depth limit {} is out of range; use 4 to 10000 (default 64)",
            settings.max_json_depth
        )));
    }
    if settings.tool_timeout.is_zero() {
        return Err(ConfigError::Invalid(
            "the tool timeout must be longer than zero (e.g. 60s)".into(),
        ));
    }
    let insecure = args.insecure_no_auth || file.insecure_no_auth.unwrap_or(false);
    if settings.auth == AuthMode::None && !listen.ip().is_loopback() && !insecure {
        return Err(ConfigError::Invalid(format!(
            "refusing to serve without authentication on {listen}, which other machines can reach. \
             Either create a key (`steward keys create NAME --admin`) and start with --auth api-key, \
             listen on a loopback address (--listen 127.0.0.1:8051), or, only if a proxy in front \
             authenticates every request, pass --insecure-no-auth"
        )));
    }
    Ok(settings)
}

/// A duration setting: the flag, else the file's text at `key` (e.g. "60s"), else the default.
/// A setting's value by precedence: the flag (or its environment variable), then the file,
/// then the default.
fn layered<T>(flag: Option<T>, from_file: Option<T>, default: T) -> T {
    flag.or(from_file).unwrap_or(default)
}

fn duration_setting(
    flag: Option<Duration>,
    key: &str,
    file: &Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match (flag, file) {
        (Some(value), _) => Ok(value),
        (None, Some(text)) => humantime::parse_duration(text).map_err(|e| ConfigError::Duration {
            key: key.to_string(),
            value: text.clone(),
            reason: e.to_string(),
        }),
        (None, None) => Ok(default),
    }
}

fn database_url(args: DatabaseArgs, file: &FileConfig) -> Result<DatabaseUrl, ConfigError> {
    let url = match args.database.or_else(|| file.database.clone()) {
        Some(url) => DatabaseUrl::parse(&url)?,
        None => DatabaseUrl::Sqlite {
            path: default_database_path()?,
        },
    };
    // An absolute path, so every message names the file itself, whatever the working directory.
    Ok(match url {
        DatabaseUrl::Sqlite { path } if path.is_relative() => DatabaseUrl::Sqlite {
            path: std::path::absolute(&path).unwrap_or(path),
        },
        other => other,
    })
}

/// `$XDG_DATA_HOME/steward/steward.db`, else `~/.local/share/steward/steward.db`: one database
/// per user, the same from every working directory.
pub fn default_database_path() -> Result<PathBuf, ConfigError> {
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::home_dir().map(|home| home.join(".local/share")))
        .ok_or_else(|| {
            ConfigError::Invalid(
                "cannot find a data directory for the default database (neither XDG_DATA_HOME nor HOME is set); pass --database sqlite://PATH".into(),
            )
        })?;
    Ok(data_home.join(DEFAULT_DATABASE_FILE))
}

/// The address to listen on: `--listen` (or the file's `listen`, or the default), with its
/// port replaced by `--port` when given.
fn listen_address(
    flag: Option<SocketAddr>,
    port: Option<u16>,
    file: Option<&str>,
) -> Result<SocketAddr, ConfigError> {
    let mut addr = match (flag, file) {
        (Some(addr), _) => addr,
        (None, Some(text)) => crate::cli::parse_listen(text).map_err(|reason| {
            ConfigError::Invalid(format!("listen in the config file: {reason}"))
        })?,
        (None, None) => DEFAULT_LISTEN
            .parse()
            .map_err(|_| ConfigError::Invalid("the default listen address is invalid".into()))?,
    };
    if let Some(port) = port {
        addr.set_port(port);
    }
    Ok(addr)
}

/// The database with the ledger settings from `--ledger-*`/`--pricing-model` and `[ledger]`.
fn store_config(
    database: DatabaseUrl,
    ledger: &LedgerArgs,
    file: &FileLedger,
    cleanup_interval: Duration,
) -> Result<StoreConfig, ConfigError> {
    Ok(StoreConfig {
        ledger: ledger_settings(ledger, file, &database, cleanup_interval)?,
        pricing: pricing_policy(ledger.pricing_model.clone(), file),
        database,
    })
}

fn ledger_settings(
    args: &LedgerArgs,
    file: &FileLedger,
    database: &DatabaseUrl,
    cleanup_interval: Duration,
) -> Result<LedgerSettings, ConfigError> {
    let durability = args
        .ledger_durability
        .or(file.durability)
        .unwrap_or(Durability::Async);
    let spill = args
        .ledger_spill
        .clone()
        .or_else(|| file.spill.clone())
        .unwrap_or_else(|| beside_database(database, ".ledger-spill", "steward-ledger.spill"));
    // Not `<db>-journal`: that is SQLite's own rollback journal.
    let journal = args
        .ledger_journal
        .clone()
        .or_else(|| file.journal.clone())
        .unwrap_or_else(|| beside_database(database, ".ledger-journal", "steward-ledger-journal"));
    let mut settings = LedgerSettings::new(durability, spill);
    settings.journal_dir = Some(journal);
    settings.retention_interval = cleanup_interval;
    if let Some(bytes) = args.ledger_queue_bytes.or(file.queue_bytes) {
        if bytes == 0 {
            return Err(ConfigError::Invalid(
                "ledger.queue_bytes must be at least 1".into(),
            ));
        }
        settings.queue_bytes = bytes;
    }
    if let Some(interval) = args.ledger_flush_interval {
        settings.flush_interval = interval;
    }
    if let Some(retention) = args.ledger_retention {
        settings.retention = retention;
    } else if let Some(text) = &file.retention {
        settings.retention =
            humantime::parse_duration(text).map_err(|e| ConfigError::Duration {
                key: "ledger.retention".into(),
                value: text.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(settings)
}

/// Where a ledger file goes by default: next to the SQLite file (its path plus `suffix`), or
/// `fallback` in the working directory for PostgreSQL.
fn beside_database(database: &DatabaseUrl, suffix: &str, fallback: &str) -> PathBuf {
    match database {
        DatabaseUrl::Sqlite { path } => {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        }
        DatabaseUrl::Postgres { .. } => PathBuf::from(fallback),
    }
}

fn pricing_policy(flag: Option<String>, file: &FileLedger) -> PricingPolicy {
    let mut policy = PricingPolicy::default();
    if let Some(model) = flag.or_else(|| file.pricing_model.clone()) {
        policy.default_model = model;
    }
    policy.by_client_type.extend(file.client_models.clone());
    policy
}

fn session_settings(
    args: SessionArgs,
    file: &FileSessions,
) -> Result<SessionSettings, ConfigError> {
    let defaults = SessionSettings::default();
    let pick = |flag: Option<Duration>, key: &str, text: &Option<String>, default: Duration| {
        duration_setting(flag, &format!("sessions.{key}"), text, default)
    };
    let settings = SessionSettings {
        idle_after: pick(
            args.idle_after,
            "idle_after",
            &file.idle_after,
            defaults.idle_after,
        )?,
        session_timeout: pick(
            args.session_timeout,
            "session_timeout",
            &file.session_timeout,
            defaults.session_timeout,
        )?,
        max_age: pick(
            args.session_max_age,
            "max_age",
            &file.max_age,
            defaults.max_age,
        )?,
        cleanup_interval: pick(
            args.cleanup_interval,
            "cleanup_interval",
            &file.cleanup_interval,
            defaults.cleanup_interval,
        )?,
        revocation_poll: pick(
            args.revocation_poll,
            "revocation_poll",
            &file.revocation_poll,
            defaults.revocation_poll,
        )?,
        hangup_grace: pick(
            args.hangup_grace,
            "hangup_grace",
            &file.hangup_grace,
            defaults.hangup_grace,
        )?,
        durable_events: match args.event_store.as_deref().or(file.event_store.as_deref()) {
            None | Some("memory") => false,
            Some("database") => true,
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "sessions.event_store is {other:?}; use \"memory\" or \"database\""
                )));
            }
        },
        ..defaults
    };
    for (name, value) in [
        ("cleanup interval", settings.cleanup_interval),
        ("revocation poll", settings.revocation_poll),
        ("session timeout", settings.session_timeout),
        ("hang-up grace", settings.hangup_grace),
    ] {
        if value.is_zero() {
            return Err(ConfigError::Invalid(format!(
                "the {name} must be longer than zero"
            )));
        }
    }
    if settings.hangup_grace > MAX_HANGUP_GRACE {
        return Err(ConfigError::Invalid(format!(
            "the hang-up grace (--hangup-grace, sessions.hangup_grace) is {}: at most {} (a request held longer after its client left only holds its work for nobody)",
            humantime::format_duration(settings.hangup_grace),
            humantime::format_duration(MAX_HANGUP_GRACE)
        )));
    }
    Ok(settings)
}

/// An OTLP/HTTP endpoint must be an http(s) URL; an empty value turns export off.
fn otlp_endpoint(value: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(url) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
        return Err(ConfigError::Invalid(format!(
            "invalid --otlp-endpoint {url:?}: give the collector's OTLP/HTTP URL, e.g. http://127.0.0.1:4318"
        )));
    }
    Ok(Some(url))
}

/// Reads the config file named by `--config`/`STEWARD_CONFIG` (which must exist), else
/// `steward/steward.toml` in the user's config directory if present. Never one from the working
/// directory: a repository an editor opens must not be able to point Steward at another
/// database or turn its authentication off.
fn load_file(explicit: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let path = match (explicit, user_config_file()) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(path)) if path.is_file() => path,
        (None, _) => return Ok(FileConfig::default()),
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::ReadFile {
        path: path.clone(),
        source,
    })?;
    let mut file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::ParseFile {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let folder = std::path::absolute(&path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    for table in &mut file.upstream {
        table.anchor(&folder);
    }
    Ok(file)
}

/// `$XDG_CONFIG_HOME/steward/steward.toml`, or `~/.config/steward/steward.toml` (the XDG
/// default; relative values are ignored, as the XDG spec says).
fn user_config_file() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = absolute("XDG_CONFIG_HOME").or_else(|| Some(absolute("HOME")?.join(".config")))?;
    Some(base.join("steward").join(DEFAULT_CONFIG_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hang_up_grace_comes_from_the_flag_or_the_file_and_is_checked() {
        let file = |text: &str| FileSessions {
            hangup_grace: Some(text.to_string()),
            ..FileSessions::default()
        };
        let grace = |args, file: &FileSessions| {
            session_settings(args, file)
                .map(|s| s.hangup_grace)
                .map_err(|e| e.to_string())
        };
        let default = grace(SessionArgs::default(), &FileSessions::default());
        assert_eq!(default, Ok(Duration::from_secs(5)));
        let from_file = grace(SessionArgs::default(), &file("750ms"));
        assert_eq!(from_file, Ok(Duration::from_millis(750)));
        let flag = SessionArgs {
            hangup_grace: Some(Duration::from_secs(2)),
            ..SessionArgs::default()
        };
        assert_eq!(grace(flag, &file("750ms")), Ok(Duration::from_secs(2)));
        for (text, says) in [
            ("0s", "hang-up grace must be longer than zero"),
            ("2h", "at most 1h"),
            ("soon", "sessions.hangup_grace"),
        ] {
            let error = grace(SessionArgs::default(), &file(text)).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn file_rejects_unknown_keys() {
        let err =
            toml::from_str::<FileConfig>("listen = \"127.0.0.1:1\"\ndatabse = \"x\"").unwrap_err();
        assert!(err.to_string().contains("databse"), "{err}");
    }

    #[test]
    fn file_takes_the_connection_limits_the_readme_shows() {
        let text = "[security]\nheader_read_timeout = \"10s\"\nconnection_idle_timeout = \"120s\"\nbody_stall_timeout = \"60s\"\nmax_connections = 1024";
        let file = toml::from_str::<FileConfig>(text).expect("the README's keys");
        assert_eq!(file.security.max_connections, Some(1024));
        assert_eq!(
            file.security.connection_idle_timeout.as_deref(),
            Some("120s")
        );
        assert_eq!(file.security.body_stall_timeout.as_deref(), Some("60s"));
    }
}
