//! Shared support for the integration tests: one throwaway database per test on each engine,
//! the real `steward` binary on a free port, and rmcp clients over Streamable HTTP or stdio.
//!
//! Every test file does `mod common;` and uses only part of this module, hence the
//! `dead_code` allowances.
#![allow(dead_code)]

pub mod in_process;
pub mod proxy;
pub mod raw;

pub use in_process::InProcess;

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use anyhow::{Context, bail};
use rmcp::ClientHandler;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation,
    ResourceUpdatedNotificationParam,
};
use rmcp::service::NotificationContext;
use rmcp::service::RunningService;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use steward::store::DatabaseUrl;
use steward::store::Store;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Environment variable holding the PostgreSQL base URL; its database is only used to create
/// and drop per-test databases.
pub const POSTGRES_URL_ENV: &str = "STEWARD_TEST_POSTGRES_URL";
/// How long the server may take to print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to exit after SIGTERM.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// A database engine a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Runs `story` on a fresh database of `backend`; the error names the engine. Passes (with a
/// notice) when that engine is not configured.
pub async fn on_backend(
    backend: Backend,
    story: impl AsyncFnOnce(TestDb) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if !backends().contains(&backend) {
        eprintln!("skipped: {} is not configured", backend.name());
        return Ok(());
    }
    // Printed first so a failing assertion's output names the engine.
    eprintln!("--- on {}", backend.name());
    let db = TestDb::new(backend).await?;
    story(db)
        .await
        .with_context(|| format!("on {}", backend.name()))
}

/// Runs `story` on a fresh database of every configured engine, one after the other.
pub async fn on_each_backend(
    story: impl AsyncFn(TestDb) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for backend in backends() {
        on_backend(backend, &story).await?;
    }
    Ok(())
}

/// Defines `mod $name { fn sqlite(); fn postgres(); }`, two tests running `$name(TestDb)` on a
/// fresh database of that engine, so each engine passes or fails on its own. Attributes before
/// a name (e.g. `#[ignore = "..."]`) go on both tests.
macro_rules! test_on_each_backend {
    ($($(#[$attr:meta])* $name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            $(#[$attr])*
            async fn sqlite() -> anyhow::Result<()> {
                $crate::common::on_backend($crate::common::Backend::Sqlite, super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            $(#[$attr])*
            async fn postgres() -> anyhow::Result<()> {
                $crate::common::on_backend($crate::common::Backend::Postgres, super::$name).await
            }
        }
    )+};
}
pub(crate) use test_on_each_backend;

/// `kill -KILL` the server (no chance to flush or clean up) and reaps it, so the next server
/// surely shares nothing with it but the database.
pub async fn kill_9(server: TestServer) -> anyhow::Result<()> {
    let pid = server.pid().context("the server has no pid")?;
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -KILL {pid} failed: {status}");
    // Reaps the process (a SIGTERM to a dead process changes nothing).
    let exit = server.shutdown().await?;
    anyhow::ensure!(!exit.success(), "steward survived kill -KILL: {exit}");
    Ok(())
}

/// SQLite always; PostgreSQL when `STEWARD_TEST_POSTGRES_URL` is set (otherwise a skip notice
/// is printed once per test binary).
pub fn backends() -> Vec<Backend> {
    static SKIP_NOTICE: Once = Once::new();
    if postgres_base_url().is_some() {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        SKIP_NOTICE.call_once(|| eprintln!("skipping PostgreSQL: {POSTGRES_URL_ENV} not set"));
        vec![Backend::Sqlite]
    }
}

fn postgres_base_url() -> Option<String> {
    std::env::var(POSTGRES_URL_ENV)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// A fresh, empty database for one test. SQLite: a file in a temporary directory. PostgreSQL:
/// a uniquely named database, dropped (`WITH (FORCE)`) when this value is dropped.
pub struct TestDb {
    pub backend: Backend,
    /// `sqlite://PATH` or `postgres://.../steward_test_<uuid>`.
    pub url: String,
    /// Scratch directory (holds the SQLite file; the working directory of spawned servers).
    dir: TempDir,
    /// `(base URL, database name)` of a PostgreSQL database to drop.
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> anyhow::Result<TestDb> {
        // Every test makes its database first: from here on it may build HTTP clients, whose
        // TLS needs the process's crypto provider (see steward::tls).
        steward::tls::install();
        let dir = tempfile::Builder::new().prefix("steward-test-").tempdir()?;
        match backend {
            Backend::Sqlite => {
                let path = dir.path().join("steward.db");
                let url = format!("sqlite://{}", path.display());
                Ok(TestDb {
                    backend,
                    url,
                    dir,
                    postgres: None,
                })
            }
            Backend::Postgres => {
                let base = postgres_base_url()
                    .with_context(|| format!("{POSTGRES_URL_ENV} is not set"))?;
                let name = format!("steward_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::connect(&base)
                    .await
                    .with_context(|| format!("cannot connect to {POSTGRES_URL_ENV}"))?;
                conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
                    .await
                    .with_context(|| format!("cannot create database {name}"))?;
                conn.close().await?;
                let url = with_database(&base, &name)?;
                Ok(TestDb {
                    backend,
                    url,
                    dir,
                    postgres: Some((base, name)),
                })
            }
        }
    }

    /// A scratch directory that lives as long as the database.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((base, name)) = self.postgres.take() else {
            return;
        };
        // Runs on its own thread and runtime: the test's runtime may be single-threaded and
        // is blocked here, and may even be shutting down.
        let dropper = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&base).await?;
                conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                    .await?;
                conn.close().await?;
                Ok(())
            })
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database: {e:#}"),
            Err(_) => eprintln!("warning: the thread dropping the test database panicked"),
        }
    }
}

/// `base` with its path (the database name) replaced by `/{database}`; the query is kept.
fn with_database(base: &str, database: &str) -> anyhow::Result<String> {
    let (scheme, rest) = base
        .split_once("://")
        .context("the PostgreSQL URL has no scheme")?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    Ok(format!("{scheme}://{authority}/{database}{query}"))
}

/// Runs `sql` (one or more statements) on `db` over a connection of its own, as an operator
/// with a database shell would.
pub async fn execute_sql(db: &TestDb, sql: &str) -> anyhow::Result<()> {
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await?;
            conn.execute(sqlx::raw_sql(sql)).await?;
            conn.close().await?;
        }
        Backend::Postgres => {
            let mut conn = PgConnection::connect(&db.url).await?;
            conn.execute(sqlx::raw_sql(sql)).await?;
            conn.close().await?;
        }
    }
    Ok(())
}

/// Opens (and migrates) the store on `db`.
pub async fn open_store(db: &TestDb) -> anyhow::Result<Store> {
    let url = DatabaseUrl::parse(&db.url)?;
    Ok(Store::open(&url).await?)
}

/// Runs `steward ARGS` to completion in `db`'s scratch directory, untouched by the caller's
/// `STEWARD_*` settings, and prints what it wrote (shown when the test fails).
pub async fn steward_cli(db: &TestDb, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steward"));
    command
        .args(args)
        .current_dir(db.dir())
        .env_remove("STEWARD_CONFIG")
        .env_remove("STEWARD_DATABASE_URL")
        .env_remove("STEWARD_AUTH")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .with_context(|| format!("steward {args:?} did not finish within 30 s"))?
        .with_context(|| format!("cannot run steward {args:?}"))?;
    eprintln!(
        "[steward {}] exit {}\nstdout: {}\nstderr: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

/// The last lines a child wrote to stderr, kept for error messages.
type LogTail = Arc<Mutex<Vec<String>>>;
const LOG_TAIL_LINES: usize = 200;

/// Forwards every line of `stream` to the test's stderr (shown only when the test fails) and
/// keeps the last lines in `tail`.
fn forward_lines(
    stream: impl AsyncRead + Unpin + Send + 'static,
    label: &'static str,
    tail: Option<LogTail>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[{label}] {line}");
            if let Some(tail) = &tail {
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == LOG_TAIL_LINES {
                    tail.remove(0);
                }
                tail.push(line);
            }
        }
    });
}

/// The real `steward serve` on a free port of 127.0.0.1. Dropping it kills the process.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    child: Child,
    stderr: LogTail,
}

impl TestServer {
    /// Spawns `steward serve --listen 127.0.0.1:0 --database URL` (working directory: the
    /// database's scratch directory) and waits until it prints `listening on http://...`.
    pub async fn start(db: &TestDb) -> anyhow::Result<TestServer> {
        TestServer::start_with(db, &[]).await
    }

    /// Like [`TestServer::start`], with `extra_args` appended to the `serve` command line
    /// (e.g. `["--revocation-poll", "500ms"]`).
    pub async fn start_with(db: &TestDb, extra_args: &[&str]) -> anyhow::Result<TestServer> {
        TestServer::start_at(db, &db.url, extra_args).await
    }

    /// Like [`TestServer::start_with`], with `database_url` for `--database` (e.g. the same
    /// database through a [`proxy::Proxy`]).
    pub async fn start_at(
        db: &TestDb,
        database_url: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<TestServer> {
        TestServer::start_at_env(db, database_url, extra_args, &[]).await
    }

    /// Like [`TestServer::start_with`], with `env` set in the server's environment (e.g. a
    /// proxy) and `NO_PROXY` cleared so only `env` decides.
    pub async fn start_with_env(
        db: &TestDb,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<TestServer> {
        TestServer::start_at_env(db, &db.url, extra_args, env).await
    }

    async fn start_at_env(
        db: &TestDb,
        database_url: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<TestServer> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_steward"));
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database",
                database_url,
            ])
            .args(extra_args)
            .current_dir(db.dir())
            .env_remove("STEWARD_CONFIG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if !env.is_empty() {
            command.env_remove("NO_PROXY").env_remove("no_proxy");
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().context("cannot spawn the steward binary")?;
        let stderr: LogTail = Arc::default();
        forward_lines(
            child.stderr.take().context("no stderr pipe")?,
            "steward stderr",
            Some(stderr.clone()),
        );
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout pipe")?).lines();

        let found = tokio::time::timeout(STARTUP_TIMEOUT, async {
            while let Some(line) = stdout.next_line().await? {
                eprintln!("[steward stdout] {line}");
                if let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..]
                        .trim()
                        .trim_end_matches('/');
                    return Ok(Some(url.to_string()));
                }
            }
            Ok::<_, std::io::Error>(None)
        })
        .await;

        let base_url = match found {
            Ok(Ok(Some(url))) => url,
            Ok(Ok(None)) => {
                // stdout closed: the server died (or closed stdout) before listening.
                let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                let status = match status {
                    Ok(Ok(status)) => status.to_string(),
                    _ => "still running".to_string(),
                };
                // Let the stderr forwarder catch the last lines before quoting them.
                tokio::time::sleep(Duration::from_millis(100)).await;
                bail!(
                    "steward serve closed stdout before printing its address ({status})\n{}",
                    tail_text(&stderr)
                );
            }
            Ok(Err(e)) => bail!(
                "reading steward's stdout failed: {e}\n{}",
                tail_text(&stderr)
            ),
            Err(_) => {
                let status = match child.try_wait() {
                    Ok(Some(status)) => status.to_string(),
                    _ => "still running".to_string(),
                };
                bail!(
                    "steward serve did not print `listening on http://...` within {STARTUP_TIMEOUT:?} \
                     ({status})\n{}",
                    tail_text(&stderr)
                );
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        forward_lines(stdout.into_inner(), "steward stdout", None);
        Ok(TestServer {
            base_url,
            child,
            stderr,
        })
    }

    /// The MCP endpoint.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base_url)
    }

    /// The process id of the server.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// What the server has written to stderr so far (its last lines).
    pub fn stderr_output(&self) -> String {
        tail_text(&self.stderr)
    }

    /// Reads [`TestServer::stderr_output`], also once the server is gone.
    pub fn stderr_handle(&self) -> impl Fn() -> String + use<> {
        let tail = self.stderr.clone();
        move || tail_text(&tail)
    }

    /// Sends SIGTERM and waits up to 10 s for the server to exit; kills it after that.
    /// Failures are printed, not returned (use [`TestServer::shutdown`] to assert on them).
    pub async fn stop(self) {
        if let Err(e) = self.shutdown().await {
            eprintln!("warning: {e:#}");
        }
    }

    /// Sends SIGTERM and returns the exit status. Fails (after killing the process) when the
    /// server does not exit within 10 s.
    pub async fn shutdown(self) -> anyhow::Result<ExitStatus> {
        self.shutdown_within(SHUTDOWN_TIMEOUT).await
    }

    /// [`TestServer::shutdown`], waiting up to `limit` for the exit.
    pub async fn shutdown_within(mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        let pid = self.child.id().context("the server has no pid")?;
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        if !kill.success() {
            bail!("kill -TERM {pid} failed: {kill}");
        }
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                self.child.kill().await?;
                bail!(
                    "steward did not exit within {limit:?} of SIGTERM; killed it\n{}",
                    tail_text(&self.stderr)
                )
            }
        }
    }
}

fn tail_text(tail: &LogTail) -> String {
    let lines = tail.lock().unwrap_or_else(|e| e.into_inner());
    if lines.is_empty() {
        "(no stderr output)".to_string()
    } else {
        format!("stderr (last lines):\n{}", lines.join("\n"))
    }
}

/// An MCP client session.
pub type Client = RunningService<RoleClient, ClientConfig>;

fn client_config(client_name: &str) -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new(client_name, "1.0.0"),
    )
}

/// An HTTP client for a test, built with Steward's TLS builder: `reqwest::Client::new()`
/// reads and parses the system's CA bundle for every client, this once per test binary. One
/// client per test, not one for all: a pooled connection belongs to the runtime that opened
/// it, and each test has its own.
pub fn http_client() -> reqwest::Client {
    steward::tls::client_builder()
        .build()
        .expect("a reqwest client builds")
}

/// Connects to a Streamable HTTP MCP endpoint (e.g. [`TestServer::mcp_url`]) and completes the
/// initialize handshake with `clientInfo = {name: client_name, version: "1.0.0"}`.
pub async fn connect(url: &str, client_name: &str) -> anyhow::Result<Client> {
    let transport = StreamableHttpClientTransport::from_uri(url.to_string());
    let client = client_config(client_name)
        .serve(transport)
        .await
        .with_context(|| format!("MCP initialize with {url} failed"))?;
    Ok(client)
}

/// A client that passes on every `notifications/resources/updated` it receives.
#[derive(Clone)]
pub struct Watcher(mpsc::UnboundedSender<String>);

impl ClientHandler for Watcher {
    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if self.0.send(params.uri).is_err() {
            eprintln!("test receiver gone");
        }
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("watcher", "1.0.0"),
        )
    }
}

/// Connects a [`Watcher`] to `url`: the client, and the URIs of the updates it hears.
pub async fn watch(
    url: &str,
) -> anyhow::Result<(
    RunningService<RoleClient, Watcher>,
    mpsc::UnboundedReceiver<String>,
)> {
    let (sender, updates) = mpsc::unbounded_channel();
    let transport = StreamableHttpClientTransport::from_uri(url.to_string());
    let watcher = Watcher(sender)
        .serve(transport)
        .await
        .with_context(|| format!("MCP initialize with {url} failed"))?;
    Ok((watcher, updates))
}

/// Spawns `steward stdio --database URL` and completes the initialize handshake as
/// `client_name`. The child's stderr is forwarded to the test's stderr; dropping (or
/// cancelling) the client ends the process.
pub async fn connect_stdio(db: &TestDb, client_name: &str) -> anyhow::Result<Client> {
    connect_stdio_at(db, &db.url, client_name).await
}

/// [`connect_stdio`] with `database_url` for `--database` (e.g. the same database through a
/// [`proxy::Proxy`]).
pub async fn connect_stdio_at(
    db: &TestDb,
    database_url: &str,
    client_name: &str,
) -> anyhow::Result<Client> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steward"));
    command
        .args(["stdio", "--database", database_url])
        .current_dir(db.dir())
        .env_remove("STEWARD_CONFIG")
        .env("NO_COLOR", "1");
    let (transport, stderr) = TokioChildProcess::builder(command)
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot spawn `steward stdio`")?;
    if let Some(stderr) = stderr {
        forward_lines(stderr, "steward stdio stderr", None);
    }
    let client = client_config(client_name)
        .serve(transport)
        .await
        .context("MCP initialize over stdio failed")?;
    Ok(client)
}

/// Calls `tool` with `args` (a JSON object, or `null` for none). Returns whether the result is
/// a tool error and the first text content parsed as JSON (a JSON string when the text is not
/// JSON; the structured content or `null` when there is no text). Protocol errors (e.g.
/// invalid params) are `Err`.
pub async fn call(client: &Client, tool: &str, args: Value) -> anyhow::Result<(bool, Value)> {
    let mut params = CallToolRequestParams::new(tool.to_string());
    match args {
        Value::Object(map) => params = params.with_arguments(map),
        Value::Null => {}
        other => bail!("tool arguments must be a JSON object, got {other}"),
    }
    let result = client
        .call_tool(params)
        .await
        .with_context(|| format!("calling tool {tool} failed"))?;
    let is_error = result.is_error.unwrap_or(false);
    let text = result
        .content
        .iter()
        .find_map(|c| c.as_text())
        .map(|t| t.text.clone());
    let value = match text {
        Some(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        None => result.structured_content.unwrap_or(Value::Null),
    };
    Ok((is_error, value))
}

/// The `field` of each row listed under `key` in a JSON answer (the titles of
/// `found["tasks"]`, say); a row without it is left out, a missing list is empty.
pub fn listed<'a>(found: &'a Value, key: &str, field: &str) -> Vec<&'a str> {
    found[key]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r[field].as_str()).collect())
        .unwrap_or_default()
}

/// A successful `tools/call` ledger row of `tool` in `session` at `at` (1 ms, 8 tokens, $0.001);
/// tests change the fields they care about.
pub fn ledger_row(
    session: &str,
    tool: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> steward::ledger::LedgerRow {
    steward::ledger::LedgerRow {
        request_id: uuid::Uuid::new_v4(),
        session_id: Some(session.into()),
        jsonrpc_id: Some("1".into()),
        method: "tools/call".into(),
        tool_name: Some(tool.into()),
        status: steward::ledger::Status::Success,
        error_code: None,
        error_message: None,
        duration: steward::ledger::Micros::from_micros(1_000),
        request_bytes: 10,
        response_bytes: 20,
        args_tokens: Some(3),
        result_tokens: Some(5),
        total_tokens: Some(8),
        estimated_cost_usd: Some(steward::store::Money(rust_decimal::Decimal::new(1, 3))),
        pricing_model: Some("claude-sonnet-4-5".into()),
        tokenizer: Some("o200k_base".into()),
        sanitized: false,
        timestamp: at,
        upstream: None,
        subject: None,
        trace: Default::default(),
    }
}

/// A new session row of `client_type` connected (and last active) at `at`.
pub fn new_session(
    id: &str,
    client_type: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> steward::store::sessions::NewSession {
    steward::store::sessions::NewSession {
        session_id: id.into(),
        kind: "session",
        protocol_version: Some("2025-11-25".into()),
        client_name: Some("test".into()),
        client_version: None,
        client_type: client_type.into(),
        client_capabilities: serde_json::json!({}),
        initialize_params: None,
        principal: None,
        at,
    }
}

#[test]
fn replaces_the_database_in_postgres_urls() {
    let cases = [
        (
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://postgres@127.0.0.1:5432/x",
        ),
        (
            "postgres://u:p@h:1/db?sslmode=disable",
            "postgres://u:p@h:1/x?sslmode=disable",
        ),
        ("postgresql://h", "postgresql://h/x"),
        (
            "postgres://h?sslmode=disable",
            "postgres://h/x?sslmode=disable",
        ),
    ];
    for (base, expected) in cases {
        assert_eq!(with_database(base, "x").unwrap(), expected);
    }
}
