//! Command-line interface. Most flags can also come from a `STEWARD_<FLAG>` environment
//! variable (clap's `env`; `--help` names each one, e.g. `--database` reads
//! `STEWARD_DATABASE_URL`) and from `steward.toml` (see [`crate::config`]); flags win over
//! the environment, which wins over the file, which wins over the defaults.
//!
//! Exit codes: 0 success, 1 a runtime failure, 2 a usage or configuration error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, Args, Parser, Subcommand};

use crate::ledger::Durability;
use crate::logs::LogFormat;
use crate::security::AuthMode;
use crate::store::sessions::{SESSION_KINDS, SESSION_STATUSES};

#[derive(Debug, Parser)]
#[command(
    name = "steward",
    version,
    about = "An MCP server with a shared task board and an honest ledger of every session and request"
)]
pub struct Cli {
    /// Configuration file (TOML). Defaults to $XDG_CONFIG_HOME/steward/steward.toml
    /// (~/.config/steward/steward.toml) when that file exists; never read from the working directory.
    #[arg(long, env = "STEWARD_CONFIG", global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log lines on stderr as text (default) or json (one object per line).
    #[arg(
        long,
        env = "STEWARD_LOG_FORMAT",
        global = true,
        value_parser = one_of(&LogFormat::NAMES),
        value_name = "FORMAT"
    )]
    pub log_format: Option<LogFormat>,

    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start-up: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over Streamable HTTP at /mcp, plus /health.
    Serve(ServeArgs),
    /// Serve the same tools over stdio (for `claude mcp add steward -- steward stdio`).
    Stdio(DatabaseArgs),
    /// List, inspect and revoke MCP sessions (reads the same database as `serve`).
    Sessions(DatabaseCommand<SessionsAction>),
    /// The task board's projects (reads the same database as `serve`).
    Projects(DatabaseCommand<ProjectsAction>),
    /// The task board's tasks: list, show with history, add, move (same rules as manage_task).
    Tasks(DatabaseCommand<TasksAction>),
    /// Model prices used for the ledger's cost estimates (`llm_pricing`).
    Pricing(DatabaseCommand<PricingAction>),
    /// The request ledger (reads the same database as `serve`).
    Requests(DatabaseCommand<RequestsAction>),
    /// Request statistics per tool and per client (estimated tokens and cost).
    Stats(StatsArgs),
    /// Verify end to end that a server really works: health, sessions, request tracking,
    /// token counts, protocol errors, /api, restart recovery, cleanup and orphan rows.
    Check(CheckArgs),
    /// API keys for `serve --auth api-key` (shown once, stored hashed).
    Keys(DatabaseCommand<KeysAction>),
    /// Copy another task server's board into Steward's database.
    Import(DatabaseCommand<ImportSource>),
}

#[derive(Debug, Subcommand)]
pub enum ImportSource {
    /// Archon v1's projects, tasks, documents and versions, keeping their ids and timestamps.
    /// Idempotent: rows already in Steward are left as they are, so a second run adds nothing.
    Archon {
        /// Archon's PostgreSQL database, e.g. postgres://USER@HOST:5432/DB (read only).
        #[arg(long, value_name = "URL")]
        from: String,
        /// Read and count everything, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Creates a key and prints it once; only its hash is stored. NAME becomes the principal of
    /// the sessions the key opens.
    Create {
        /// The key's name (letters, digits, `-`, `_`, `.`); also the principal of its sessions.
        name: String,
        /// May also read /api/ and the dashboard.
        #[arg(long)]
        admin: bool,
        /// Print JSON (with the key) instead of the bare key.
        #[arg(long)]
        json: bool,
    },
    /// Every key (never the key itself): name, admin, created, revoked.
    List {
        #[command(flatten)]
        output: JsonOutput,
    },
    /// Revokes a key: running servers refuse it within their revocation poll (default 2s).
    Revoke {
        /// The name given to `keys create`.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The period: a duration back from now (e.g. 1h, 7d) or an RFC 3339 time.
    #[arg(long, default_value = "24h", value_name = "DUR")]
    pub since: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// MCP endpoint of the server to check.
    #[arg(
        long,
        env = "STEWARD_CHECK_URL",
        default_value = "http://127.0.0.1:8051/mcp"
    )]
    pub url: String,
    /// Start a server of its own (on a temporary SQLite file, or on --database) with short
    /// timeouts, so every phase runs, including restart recovery and cleanup.
    #[arg(long)]
    pub spawn: bool,
    /// Command that restarts the server under check (phase 6 without --spawn).
    #[arg(long, value_name = "CMD")]
    pub restart_cmd: Option<String>,
    /// With --database, rows are verified with SQL directly; without, through the /api endpoints.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Extra arguments for the spawned server (after `--`).
    #[arg(last = true, hide = true)]
    pub serve_args: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum RequestsAction {
    /// Ledger rows, newest first.
    List {
        /// Only this session: its full id or a unique prefix (as `sessions list` shows it).
        #[arg(long, value_name = "ID")]
        session: Option<String>,
        /// Only calls of this tool (e.g. manage_task).
        #[arg(long)]
        tool: Option<String>,
        /// Only this JSON-RPC method (e.g. tools/call, initialize).
        #[arg(long)]
        method: Option<String>,
        /// Only sessions of this client, by the name it announced (as `sessions list` shows it).
        #[arg(long, value_name = "NAME")]
        client: Option<String>,
        /// Only this outcome.
        #[arg(long, value_parser = ["success", "error", "tool_error", "timeout", "cancelled", "input_required"])]
        status: Option<String>,
        /// Only since this long ago (e.g. 15m, 24h) or this RFC 3339 time.
        #[arg(long, value_name = "DUR")]
        since: Option<String>,
        /// Most rows to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        output: JsonOutput,
    },
}

#[derive(Debug, Subcommand)]
pub enum PricingAction {
    /// Every price row, by model and date; marks the model that prices clients by default.
    List {
        #[command(flatten)]
        output: JsonOutput,
        /// The model Steward prices clients with (default claude-sonnet-4-5, or the config
        /// file's `ledger.pricing_model`).
        #[arg(long, env = "STEWARD_PRICING_MODEL", value_name = "MODEL")]
        pricing_model: Option<String>,
    },
    /// Adds (or corrects) a model's price from a date on. Running servers pick it up within a minute.
    Add {
        /// Model name as the pricing policy refers to it, e.g. claude-sonnet-4-5.
        model: String,
        /// anthropic, openai, google, ...
        #[arg(long)]
        provider: String,
        /// USD per 1,000 input tokens (what the model reads), e.g. 0.003.
        #[arg(long, value_name = "USD")]
        input_per_1k: rust_decimal::Decimal,
        /// USD per 1,000 output tokens (what the model writes), e.g. 0.015.
        #[arg(long, value_name = "USD")]
        output_per_1k: rust_decimal::Decimal,
        /// First day (UTC) the price applies, YYYY-MM-DD. Default: today.
        #[arg(long, value_name = "DATE")]
        effective_from: Option<chrono::NaiveDate>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectsAction {
    /// Projects with their task counts by status, most recently active first.
    List {
        #[command(flatten)]
        output: JsonOutput,
    },
    /// One project: its counts and tasks. ID: the full id or a unique prefix.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

/// A task status as the CLI accepts it.
pub const TASK_STATUSES: [&str; 4] = ["todo", "doing", "review", "done"];

#[derive(Debug, Subcommand)]
pub enum TasksAction {
    /// Live tasks (done ones included), highest task_order first.
    List {
        /// Only this project (full id or unique prefix).
        #[arg(long)]
        project: Option<String>,
        #[arg(long, value_parser = TASK_STATUSES)]
        status: Option<String>,
        #[arg(long)]
        assignee: Option<String>,
        /// Text to find in titles and descriptions.
        #[arg(long)]
        query: Option<String>,
        /// Most rows to show (1 to 100).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// One task in full, with its history. ID: the full id or a unique prefix.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Add a task to a project (recorded in its history as made by "cli").
    Add {
        /// The project (full id or unique prefix).
        #[arg(long)]
        project: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        assignee: Option<String>,
        #[arg(long)]
        feature: Option<String>,
        /// Priority from 0 (lowest) to 100 (highest).
        #[arg(long)]
        order: Option<i64>,
        #[arg(long, value_parser = TASK_STATUSES)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Move a task to another status.
    Move {
        id: String,
        #[arg(value_parser = TASK_STATUSES)]
        status: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsAction {
    /// Sessions, most recently active first, with each one's requests, errors, estimated
    /// tokens and cost from the ledger.
    List {
        /// Only this status.
        #[arg(long, value_parser = SESSION_STATUSES)]
        status: Option<String>,
        /// Only this client type, e.g. "Claude Code".
        #[arg(long)]
        client_type: Option<String>,
        /// Only this kind: session (HTTP) or logical (stateless and stdio clients).
        #[arg(long, value_parser = SESSION_KINDS)]
        kind: Option<String>,
        /// Most rows to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        output: JsonOutput,
    },
    /// One session in full, with its requests, errors, estimated tokens and cost, and its
    /// first and last request.
    Show {
        /// The session's full id or a unique prefix (as `sessions list` shows it).
        id: String,
        #[command(flatten)]
        output: JsonOutput,
    },
    /// Revoke a session: it answers 404 everywhere within the servers' revocation poll (2 s).
    Revoke {
        /// The session's full id or a unique prefix (as `sessions list` shows it).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, HOST:PORT (the host may be a name, e.g. localhost:8051). Port 0
    /// picks a free port (the chosen address is printed). [default: 127.0.0.1:8051]
    #[arg(long, env = "STEWARD_LISTEN", value_name = "ADDR", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,

    /// Port to listen on (replaces the port of --listen). [default: 8051]
    #[arg(long, env = "STEWARD_PORT", value_name = "PORT")]
    pub port: Option<u16>,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub sessions: SessionArgs,

    #[command(flatten)]
    pub ledger: LedgerArgs,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    /// Also serve the official MCP conformance suite's fixture tools, prompts and resources
    /// (`test_*`, `test://...`). For running the suite; normal users never need it.
    #[arg(
        long,
        env = "STEWARD_CONFORMANCE_FIXTURES",
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub conformance_fixtures: Option<bool>,

    #[command(flatten)]
    pub security: SecurityArgs,

    #[command(flatten)]
    pub gateway: GatewayArgs,
}

/// Gateway mode: Steward in front of other MCP servers.
#[derive(Debug, Args, Default)]
pub struct GatewayArgs {
    /// Put Steward in front of another MCP server (repeatable): NAME=http://HOST:PORT/mcp or
    /// NAME=https://HOST/mcp (its certificate checked against the system's trust store), or
    /// 'NAME=stdio:COMMAND ARG...' for a process Steward starts (and restarts when it ends).
    /// Its tools are listed as NAME__tool. Headers, environment variables, timeouts, tool
    /// allow-lists, a private CA (ca_file) and a client certificate (client_cert, client_key):
    /// [[upstream]] tables in steward.toml.
    #[arg(long = "upstream", value_name = "NAME=TARGET")]
    pub upstreams: Vec<String>,
    /// Like --upstream, but its tools, prompts and resources keep their own names (no NAME__
    /// prefix, no upstream://NAME/ URIs), so Steward stands in for that one server. At most
    /// one, and only with --no-board. In steward.toml: namespace = false.
    #[arg(long = "upstream-unnamespaced", value_name = "NAME=TARGET")]
    pub unnamespaced: Vec<String>,
    /// How long an upstream may take to answer before the call fails naming it, and how long a
    /// call parked for a 2026-07-28 client's answer to the upstream's request waits (default 60s;
    /// at most 16 such calls per client session and 1,024 in all).
    #[arg(long, env = "STEWARD_UPSTREAM_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub upstream_timeout: Option<Duration>,
    /// Consecutive failures (unreachable, not MCP, down, timed out) after which an upstream's
    /// circuit breaker opens and its calls fail at once for the cool-down (default 5; 0: never).
    #[arg(long, env = "STEWARD_UPSTREAM_BREAKER_FAILURES", value_name = "N")]
    pub upstream_breaker_failures: Option<u32>,
    /// How long an open breaker refuses calls before one probe goes through (default 30s).
    #[arg(long, env = "STEWARD_UPSTREAM_BREAKER_COOLDOWN", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub upstream_breaker_cooldown: Option<Duration>,
    /// Serve only the upstreams' tools, not the task board's (needs an upstream).
    #[arg(long, env = "STEWARD_NO_BOARD", value_parser = env_bool(), action = ArgAction::SetTrue)]
    pub no_board: bool,
}

/// Export to observability tools (Prometheus needs nothing: scrape `/metrics`).
#[derive(Debug, Args, Default)]
pub struct TelemetryArgs {
    /// Send one OpenTelemetry span per request to this OTLP/HTTP collector
    /// (e.g. http://127.0.0.1:4318; `/v1/traces` is added). Off by default.
    #[arg(long, env = "STEWARD_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

/// Who may connect and what limits apply.
#[derive(Debug, Args, Default)]
pub struct SecurityArgs {
    /// none (default; loopback addresses only) or api-key (`Authorization: Bearer <key>`, keys
    /// from `steward keys create`).
    #[arg(long, env = "STEWARD_AUTH", value_parser = one_of(&AuthMode::NAMES), value_name = "MODE")]
    pub auth: Option<AuthMode>,
    /// Serve without authentication on an address other machines can reach (only behind a proxy
    /// that authenticates).
    #[arg(long, env = "STEWARD_INSECURE_NO_AUTH", value_parser = env_bool(), action = ArgAction::SetTrue)]
    pub insecure_no_auth: bool,
    /// Browser origins allowed besides localhost/127.0.0.1/[::1], comma-separated
    /// (e.g. https://app.example.com); `*` allows any.
    #[arg(long, env = "STEWARD_ALLOWED_ORIGINS", value_name = "LIST")]
    pub allowed_origins: Option<String>,
    /// Host names this server answers to besides localhost/127.0.0.1/[::1] and the listen
    /// address, comma-separated (e.g. steward.example.com); `*` allows any.
    #[arg(long, env = "STEWARD_ALLOWED_HOSTS", value_name = "LIST")]
    pub allowed_hosts: Option<String>,
    /// Largest request body in bytes (default 4194304, i.e. 4 MiB); larger ones get 413.
    #[arg(long, env = "STEWARD_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Deepest JSON nesting accepted (default 64).
    #[arg(long, env = "STEWARD_MAX_JSON_DEPTH", value_name = "N")]
    pub max_json_depth: Option<usize>,
    /// Requests per second per principal (default 100; 0 turns the limit off); beyond it, 429.
    /// Each message of a JSON-RPC batch counts; requests that fail authentication count
    /// against their peer address.
    #[arg(long, env = "STEWARD_RATE_LIMIT", value_name = "N")]
    pub rate_limit: Option<u32>,
    /// Requests a principal may make at once above the rate (default 200).
    #[arg(long, env = "STEWARD_RATE_BURST", value_name = "N")]
    pub rate_burst: Option<u32>,
    /// Live sessions per principal (default 1000; 0 means no limit).
    #[arg(long, env = "STEWARD_MAX_SESSIONS_PER_PRINCIPAL", value_name = "N")]
    pub max_sessions_per_principal: Option<u32>,
    /// Longest a tool call may run (default 60s); then it is stopped and recorded as timeout.
    #[arg(long, env = "STEWARD_TOOL_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub tool_timeout: Option<Duration>,
    /// Time a client has to send a request's headers (default 10s), from the connection's
    /// start or the request's first byte; then the connection is closed.
    #[arg(long, env = "STEWARD_HEADER_READ_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub header_read_timeout: Option<Duration>,
    /// A keep-alive connection that waits this long for its next request is closed (default
    /// 120s: longer than client pools' and load balancers' idle timeouts, so they close first
    /// and never reuse a connection as it closes). Streams the server is sending are not idle.
    #[arg(long, env = "STEWARD_CONNECTION_IDLE_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub connection_idle_timeout: Option<Duration>,
    /// A request body that pauses this long is refused (408 on /mcp, 400 elsewhere) and its
    /// connection closed (default 60s).
    #[arg(long, env = "STEWARD_BODY_STALL_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub body_stall_timeout: Option<Duration>,
    /// Connections open at once (default 1024); one more is answered 503 and closed.
    #[arg(long, env = "STEWARD_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<u32>,
}

/// The request ledger.
#[derive(Debug, Args, Default)]
pub struct LedgerArgs {
    /// async (default): answer first, store the row moments later (a crash loses nothing:
    /// see --ledger-journal); sync: answer only after the row is stored (group commit; also
    /// survives a power loss); off: keep no ledger.
    #[arg(
        long,
        env = "STEWARD_LEDGER_DURABILITY",
        value_parser = one_of(&Durability::NAMES),
        value_name = "MODE"
    )]
    pub ledger_durability: Option<Durability>,
    /// Where ledger rows wait while the database refuses writes. Default: next to the SQLite
    /// file, or ./steward-ledger.spill for PostgreSQL.
    #[arg(long, env = "STEWARD_LEDGER_SPILL", value_name = "PATH")]
    pub ledger_spill: Option<PathBuf>,
    /// Where the async ledger journals each request before it is stored, so a crash or
    /// `kill -9` loses no row: replayed (exactly once) at the next start. Written without
    /// fsync: a power loss or kernel crash can still lose the last few seconds the OS had not
    /// flushed (use `--ledger-durability sync` for that). Each process takes its own slot
    /// inside. Default: next to the SQLite file (`<db>.ledger-journal/`), or
    /// ./steward-ledger-journal/ for PostgreSQL.
    #[arg(long, env = "STEWARD_LEDGER_JOURNAL", value_name = "DIR")]
    pub ledger_journal: Option<PathBuf>,
    /// Keep ledger rows this long (e.g. 30d, the default); older rows are folded into hourly
    /// rollups and pruned.
    #[arg(long, env = "STEWARD_LEDGER_RETENTION", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub ledger_retention: Option<Duration>,
    /// Most bytes of rows (and of requests and replies not analysed yet) waiting in memory for
    /// the ledger writer (default 67108864, i.e. 64 MiB; at least one request always fits).
    /// Past it, rows go to the spill file, counted (`steward_ledger_queue_overflows_total`)
    /// and shown in /health.
    #[arg(long, env = "STEWARD_LEDGER_QUEUE_BYTES", value_parser = clap::value_parser!(u64).range(1..), value_name = "BYTES")]
    pub ledger_queue_bytes: Option<u64>,
    /// How often the ledger writer stores rows (default 100ms). Hidden: only for measuring the
    /// ledger under an instruction counter (valgrind runs a server ~50x slower; a longer
    /// interval keeps its batches as large as at full speed). Rows wait longer in memory.
    #[arg(long, hide = true, value_parser = humantime::parse_duration, value_name = "DUR")]
    pub ledger_flush_interval: Option<Duration>,
    /// Model whose prices estimate cost for clients without a model of their own
    /// (default claude-sonnet-4-5; see `llm_pricing`).
    #[arg(long, env = "STEWARD_PRICING_MODEL", value_name = "MODEL")]
    pub pricing_model: Option<String>,
}

/// Session lifecycle. Durations read like `90s`, `5m`, `24h`, `7d`.
#[derive(Debug, Args, Default)]
pub struct SessionArgs {
    /// No request for this long: the session is labelled idle (still usable). Default 5m.
    #[arg(long, env = "STEWARD_IDLE_AFTER", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub idle_after: Option<Duration>,
    /// No request for this long: the session is disconnected (timeout_no_activity). Default 24h.
    #[arg(long, env = "STEWARD_SESSION_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub session_timeout: Option<Duration>,
    /// Sessions older than this are disconnected (expired). Default 7d.
    #[arg(long, env = "STEWARD_SESSION_MAX_AGE", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub session_max_age: Option<Duration>,
    /// How often the session lifecycle is applied. Default 60s.
    #[arg(long, env = "STEWARD_CLEANUP_INTERVAL", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub cleanup_interval: Option<Duration>,
    /// How often each replica checks for sessions revoked or ended elsewhere. Default 2s.
    #[arg(long, env = "STEWARD_REVOCATION_POLL", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub revocation_poll: Option<Duration>,
    /// A client that closes its connection before a request's answer has this long to come
    /// back for it (`Last-Event-ID`) before the request is cancelled, at an upstream too.
    /// Default 5s; at most 1h.
    #[arg(long, env = "STEWARD_HANGUP_GRACE", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub hangup_grace: Option<Duration>,
    /// Where server-sent events wait for `Last-Event-ID` replay: memory (this replica, the
    /// default) or database (also after a restart and on other replicas; costs a write per event).
    #[arg(long, env = "STEWARD_EVENT_STORE", value_parser = ["memory", "database"], value_name = "WHERE")]
    pub event_store: Option<String>,
}

/// `--json` of a command that prints a table.
#[derive(Debug, Args)]
pub struct JsonOutput {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A command with subcommands (its action) that works on the database alone.
#[derive(Debug, Args)]
pub struct DatabaseCommand<A: Subcommand> {
    #[command(subcommand)]
    pub action: A,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB. `serve` and `stdio` create
    /// a SQLite file (and its directory) on first run; the other commands never create one.
    /// [default: sqlite://$XDG_DATA_HOME/steward/steward.db, i.e.
    /// ~/.local/share/steward/steward.db]
    #[arg(long, env = "STEWARD_DATABASE_URL", value_name = "URL", global = true)]
    pub database: Option<String>,
}

/// Parses `HOST:PORT` for `--listen`: an IP address, or a host name resolved now (the first
/// IPv4 address it has, else its first address).
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    if !text.contains(':') {
        return Err(format!(
            "{text:?} has no port; write HOST:PORT, e.g. 127.0.0.1:8051 or localhost:8051 (or use --port)"
        ));
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| {
            format!("cannot resolve {text:?}: {e}; write HOST:PORT, e.g. 127.0.0.1:8051 or localhost:8051")
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| {
            format!("{text:?} resolves to no address; write HOST:PORT, e.g. 127.0.0.1:8051")
        })
}

/// How an on/off flag reads its environment variable: `1`, `yes`, `on` and `true` (any case)
/// turn it on, `0`, `no`, `off` and `false` leave it off, as `--conformance-fixtures` reads its own.
fn env_bool() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

/// A flag that takes one of a domain type's named values: the names are offered in `--help`
/// and completions, and a wrong one is refused listing them.
fn one_of<T: Copy + Send + Sync + 'static>(
    names: &'static [(&'static str, T)],
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(names.iter().map(|(name, _)| *name)).map(move |chosen| {
        names
            .iter()
            .find(|(name, _)| *name == chosen)
            .map(|(_, value)| *value)
            .expect("the parser admits only listed names")
    })
}
