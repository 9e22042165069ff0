//! The request ledger, end to end: the real `steward` binary driven by a real MCP client (rmcp,
//! over Streamable HTTP and stdio) and by raw HTTP, with every claim checked in the
//! `mcp_requests` rows read straight from the test database with sqlx.
//!
//! The promise under test: every JSON-RPC message that reaches Steward lands in `mcp_requests`
//! exactly once, with a true status, integer durations, estimated tokens and cost, even while
//! the database refuses writes, across SIGTERM, and (with `--ledger-durability sync`) across
//! `kill -9`.
//!
//! Each scenario runs on SQLite and (when `STEWARD_TEST_POSTGRES_URL` is set) PostgreSQL, as two
//! tests (`<scenario>::sqlite`, `<scenario>::postgres`) so they run in parallel.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Connection, PgPool, Row, SqliteConnection, SqlitePool};

use common::raw::{ACCEPT, Client as RawClient, Reply};
use common::{Backend, Client, TestDb, TestServer, call, connect, connect_stdio, kill_9};

const PROTOCOL: &str = "2025-11-25";
/// The pricing model the servers are started with, and its list prices per 1k tokens.
const MODEL: &str = "claude-sonnet-4-5";
const MODEL_INPUT_PER_1K: &str = "0.003";
const MODEL_OUTPUT_PER_1K: &str = "0.015";
const TOKENIZER: &str = "o200k_base";
/// The writer flushes every 100 ms, but its first batch loads the tokenizer (seconds in a debug
/// build on a busy machine) and a 100 KB argument takes a while to count: a generous bound,
/// which only a failing test waits out.
const FLUSH_DEADLINE: Duration = Duration::from_secs(20);
/// The writer retries refused writes with a backoff of at most 5 s.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------------
// Running a scenario on each engine

common::test_on_each_backend!(
    every_request_lands_exactly_once,
    blocked_writes_wait_and_land_once_unblocked,
    sigterm_under_load_records_every_answered_request,
    a_request_begun_before_sigterm_is_answered,
    sync_durability_survives_kill_9,
    large_and_nul_arguments_are_recorded,
    spilled_rows_are_replayed_after_a_restart,
    stdio_requests_are_recorded_under_a_logical_session,
    durability_off_records_nothing,
);

/// Regression tests for bugs found and fixed while building the ledger.
mod regressions {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sync_durability_answers_while_writes_are_refused_sqlite() -> anyhow::Result<()> {
        crate::common::on_backend(
            super::Backend::Sqlite,
            super::sync_durability_answers_while_writes_are_refused,
        )
        .await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sync_durability_answers_while_writes_are_refused_postgres() -> anyhow::Result<()> {
        crate::common::on_backend(
            super::Backend::Postgres,
            super::sync_durability_answers_while_writes_are_refused,
        )
        .await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_reply_read_in_full_is_not_recorded_as_cancelled_sqlite() -> anyhow::Result<()> {
        crate::common::on_backend(
            super::Backend::Sqlite,
            super::a_reply_read_in_full_is_not_recorded_as_cancelled,
        )
        .await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_reply_read_in_full_is_not_recorded_as_cancelled_postgres() -> anyhow::Result<()> {
        crate::common::on_backend(
            super::Backend::Postgres,
            super::a_reply_read_in_full_is_not_recorded_as_cancelled,
        )
        .await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn stdio_flushes_the_ledger_on_sigterm_sqlite() -> anyhow::Result<()> {
        crate::common::on_backend(
            super::Backend::Sqlite,
            super::stdio_flushes_the_ledger_on_sigterm,
        )
        .await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn stdio_flushes_the_ledger_on_sigterm_postgres() -> anyhow::Result<()> {
        crate::common::on_backend(
            super::Backend::Postgres,
            super::stdio_flushes_the_ledger_on_sigterm,
        )
        .await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn in_flight_requests_are_answered_across_sigterm_sqlite() -> anyhow::Result<()> {
        crate::common::on_backend(
            super::Backend::Sqlite,
            super::in_flight_requests_are_answered_across_sigterm,
        )
        .await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn in_flight_requests_are_answered_across_sigterm_postgres() -> anyhow::Result<()> {
        crate::common::on_backend(
            super::Backend::Postgres,
            super::in_flight_requests_are_answered_across_sigterm,
        )
        .await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn spill_is_replayed_when_the_database_recovers_without_traffic_sqlite()
    -> anyhow::Result<()> {
        crate::common::on_backend(
            super::Backend::Sqlite,
            super::spill_is_replayed_when_the_database_recovers_without_traffic,
        )
        .await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn spill_is_replayed_when_the_database_recovers_without_traffic_postgres()
    -> anyhow::Result<()> {
        crate::common::on_backend(
            super::Backend::Postgres,
            super::spill_is_replayed_when_the_database_recovers_without_traffic,
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// The ledger as stored

/// One `mcp_requests` row, read with sqlx.
#[derive(Debug, Clone)]
struct Stored {
    request_id: String,
    session_id: Option<String>,
    jsonrpc_id: Option<String>,
    method: String,
    tool_name: Option<String>,
    status: String,
    error_code: Option<i64>,
    error_message: Option<String>,
    duration_ms: i64,
    duration_us: i64,
    request_bytes: i64,
    response_bytes: i64,
    args_tokens: Option<i64>,
    result_tokens: Option<i64>,
    total_tokens: Option<i64>,
    estimated_cost_usd: Option<String>,
    pricing_model: Option<String>,
    tokenizer: Option<String>,
    sanitized: bool,
}

impl Stored {
    /// Every stored text field.
    fn texts(&self) -> Vec<&str> {
        let mut texts = vec![self.request_id.as_str(), &self.method, &self.status];
        for field in [
            &self.session_id,
            &self.jsonrpc_id,
            &self.tool_name,
            &self.error_message,
            &self.estimated_cost_usd,
            &self.pricing_model,
            &self.tokenizer,
        ] {
            texts.extend(field.as_deref());
        }
        texts
    }

    fn cost(&self) -> Option<Decimal> {
        self.estimated_cost_usd
            .as_deref()
            .map(|c| Decimal::from_str(c).unwrap_or_else(|e| panic!("cost {c:?}: {e}")))
    }
}

/// Reads a [`Stored`] from a row of either engine (same column names and decoded types).
macro_rules! stored_from {
    ($row:expr) => {{
        let row = $row;
        Stored {
            request_id: row.try_get("request_id")?,
            session_id: row.try_get("session_id")?,
            jsonrpc_id: row.try_get("jsonrpc_id")?,
            method: row.try_get("method")?,
            tool_name: row.try_get("tool_name")?,
            status: row.try_get("status")?,
            error_code: row.try_get("error_code")?,
            error_message: row.try_get("error_message")?,
            duration_ms: row.try_get("duration_ms")?,
            duration_us: row.try_get("duration_us")?,
            request_bytes: row.try_get("request_bytes")?,
            response_bytes: row.try_get("response_bytes")?,
            args_tokens: row.try_get("args_tokens")?,
            result_tokens: row.try_get("result_tokens")?,
            total_tokens: row.try_get("total_tokens")?,
            estimated_cost_usd: row.try_get("estimated_cost_usd")?,
            pricing_model: row.try_get("pricing_model")?,
            tokenizer: row.try_get("tokenizer")?,
            sanitized: row.try_get("sanitized")?,
        }
    }};
}

/// The test's own connection to the database the server uses.
enum LedgerDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl LedgerDb {
    async fn open(db: &TestDb) -> anyhow::Result<LedgerDb> {
        Ok(match db.backend {
            Backend::Sqlite => {
                let options =
                    SqliteConnectOptions::from_str(&db.url)?.busy_timeout(Duration::from_secs(15));
                LedgerDb::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(2)
                        .connect_with(options)
                        .await
                        .context("opening the SQLite test database")?,
                )
            }
            Backend::Postgres => LedgerDb::Postgres(
                PgPoolOptions::new()
                    .max_connections(2)
                    .connect(&db.url)
                    .await
                    .context("opening the PostgreSQL test database")?,
            ),
        })
    }

    /// Every row, oldest first. Durations are checked to be stored as integers.
    async fn rows(&self) -> anyhow::Result<Vec<Stored>> {
        let mut rows = Vec::new();
        match self {
            LedgerDb::Sqlite(pool) => {
                let not_integer: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM mcp_requests WHERE typeof(duration_ms) <> 'integer' \
                     OR typeof(duration_us) <> 'integer' OR typeof(request_bytes) <> 'integer' \
                     OR typeof(response_bytes) <> 'integer'",
                )
                .fetch_one(pool)
                .await?;
                ensure!(
                    not_integer == 0,
                    "{not_integer} rows store a non-integer duration or size"
                );
                for row in sqlx::query(
                    "SELECT request_id, session_id, jsonrpc_id, method, tool_name, status, error_code, \
                     error_message, duration_ms, duration_us, request_bytes, response_bytes, args_tokens, \
                     result_tokens, total_tokens, estimated_cost_usd, pricing_model, tokenizer, sanitized \
                     FROM mcp_requests ORDER BY timestamp, request_id",
                )
                .fetch_all(pool)
                .await?
                {
                    rows.push(stored_from!(row));
                }
            }
            LedgerDb::Postgres(pool) => {
                // BIGINT columns decode only as i64: a float column would fail here.
                for row in sqlx::query(
                    "SELECT request_id::text AS request_id, session_id, jsonrpc_id, method, tool_name, \
                     status, error_code::bigint AS error_code, error_message, duration_ms, duration_us, \
                     request_bytes, response_bytes, args_tokens::bigint AS args_tokens, \
                     result_tokens::bigint AS result_tokens, total_tokens::bigint AS total_tokens, \
                     estimated_cost_usd::text AS estimated_cost_usd, pricing_model, tokenizer, sanitized \
                     FROM mcp_requests ORDER BY timestamp, request_id",
                )
                .fetch_all(pool)
                .await?
                {
                    rows.push(stored_from!(row));
                }
            }
        }
        Ok(rows)
    }

    async fn count(&self) -> anyhow::Result<i64> {
        let sql = "SELECT COUNT(*) FROM mcp_requests";
        Ok(match self {
            LedgerDb::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
            LedgerDb::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
        })
    }

    async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        match self {
            LedgerDb::Sqlite(pool) => {
                sqlx::raw_sql(sql).execute(pool).await?;
            }
            LedgerDb::Postgres(pool) => {
                sqlx::raw_sql(sql).execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Makes the database refuse every ledger INSERT (a trigger that raises).
    async fn block(&self) -> anyhow::Result<()> {
        self.execute(match self {
            LedgerDb::Sqlite(_) => {
                "CREATE TRIGGER block BEFORE INSERT ON mcp_requests \
                 BEGIN SELECT RAISE(ABORT, 'blocked by test'); END;"
            }
            LedgerDb::Postgres(_) => {
                "CREATE FUNCTION steward_block() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'blocked by test'; END $$; \
                 CREATE TRIGGER block BEFORE INSERT ON mcp_requests \
                 FOR EACH ROW EXECUTE FUNCTION steward_block();"
            }
        })
        .await
        .context("installing the blocking trigger")
    }

    async fn unblock(&self) -> anyhow::Result<()> {
        self.execute(match self {
            LedgerDb::Sqlite(_) => "DROP TRIGGER block;",
            LedgerDb::Postgres(_) => {
                "DROP TRIGGER block ON mcp_requests; DROP FUNCTION steward_block();"
            }
        })
        .await
        .context("dropping the blocking trigger")
    }

    /// `(kind, client_name)` of a `mcp_sessions` row.
    async fn session(&self, id: &str) -> anyhow::Result<Option<(String, Option<String>)>> {
        let sql = "SELECT kind, client_name FROM mcp_sessions WHERE session_id = $1";
        Ok(match self {
            LedgerDb::Sqlite(pool) => sqlx::query_as(sql).bind(id).fetch_optional(pool).await?,
            LedgerDb::Postgres(pool) => sqlx::query_as(sql).bind(id).fetch_optional(pool).await?,
        })
    }

    /// Waits (up to `within`) until exactly `expected` rows are stored, then makes sure no
    /// more arrive (a late duplicate would) and returns them.
    async fn wait_for_rows(
        &self,
        expected: usize,
        within: Duration,
    ) -> anyhow::Result<Vec<Stored>> {
        let deadline = Instant::now() + within;
        loop {
            let count = usize::try_from(self.count().await?)?;
            if count > expected {
                bail!(
                    "{count} ledger rows, expected exactly {expected}:\n{}",
                    describe(&self.rows().await?)
                );
            }
            if count == expected {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "only {count} of {expected} ledger rows after {within:?}:\n{}",
                    describe(&self.rows().await?)
                );
            }
            tokio::time::sleep(POLL).await;
        }
        // Two more flush intervals: nothing else may land.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rows = self.rows().await?;
        ensure!(
            rows.len() == expected,
            "{} ledger rows after settling, expected exactly {expected}:\n{}",
            rows.len(),
            describe(&rows)
        );
        Ok(rows)
    }

    /// Waits until a `mcp_sessions` row exists for `id`.
    async fn wait_for_session(&self, id: &str) -> anyhow::Result<(String, Option<String>)> {
        let deadline = Instant::now() + FLUSH_DEADLINE;
        loop {
            if let Some(row) = self.session(id).await? {
                return Ok(row);
            }
            ensure!(Instant::now() < deadline, "no mcp_sessions row for {id}");
            tokio::time::sleep(POLL).await;
        }
    }
}

fn describe(rows: &[Stored]) -> String {
    rows.iter()
        .map(|r| {
            format!(
                "  {} {:?} tool={:?} status={} code={:?} session={:?} id={:?} msg={:?}",
                r.request_id,
                r.method,
                r.tool_name,
                r.status,
                r.error_code,
                r.session_id.as_deref().map(|s| &s[..s.len().min(12)]),
                r.jsonrpc_id,
                r.error_message.as_deref().map(|m| &m[..m.len().min(60)]),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The invariants every row keeps, whatever the request: integer durations that agree,
/// sizes, tokens that add up, the tokenizer named, no NUL anywhere.
fn check_row_invariants(row: &Stored) {
    let r = format!("{row:?}");
    assert!(row.duration_us >= 0 && row.duration_ms >= 0, "{r}");
    assert_eq!(
        row.duration_ms,
        row.duration_us / 1000,
        "ms = us / 1000: {r}"
    );
    assert!(row.request_bytes >= 0 && row.response_bytes >= 0, "{r}");
    assert!(
        ["success", "error", "tool_error", "cancelled", "timeout"].contains(&row.status.as_str()),
        "{r}"
    );
    assert_eq!(row.tokenizer.as_deref(), Some(TOKENIZER), "{r}");
    let (args, result, total) = (
        row.args_tokens.unwrap_or(-1),
        row.result_tokens.unwrap_or(-1),
        row.total_tokens.unwrap_or(-1),
    );
    assert!(args >= 0 && result >= 0, "{r}");
    assert_eq!(total, args + result, "total = args + result: {r}");
    for text in row.texts() {
        assert!(!text.contains('\0'), "a stored text holds U+0000: {r}");
    }
}

/// A tool call's tokens and cost: args at the model's output price, result at its input price.
fn check_priced(row: &Stored) {
    let r = format!("{row:?}");
    assert_eq!(row.pricing_model.as_deref(), Some(MODEL), "{r}");
    let args = Decimal::from(row.args_tokens.unwrap_or_default());
    let result = Decimal::from(row.result_tokens.unwrap_or_default());
    assert!(row.total_tokens.unwrap_or_default() > 0, "{r}");
    let expected = (args * Decimal::from_str(MODEL_OUTPUT_PER_1K).unwrap()
        + result * Decimal::from_str(MODEL_INPUT_PER_1K).unwrap())
        / Decimal::ONE_THOUSAND;
    let cost = row.cost().unwrap_or_else(|| panic!("no cost: {r}"));
    assert!(cost > Decimal::ZERO, "{r}");
    assert_eq!(cost, expected, "cost = args × output + result × input: {r}");
}

/// No request recorded twice: distinct request ids, and each (session, JSON-RPC id) once.
fn check_no_duplicates(rows: &[Stored]) {
    let ids: HashSet<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(
        ids.len(),
        rows.len(),
        "duplicate request_id:\n{}",
        describe(rows)
    );
    let mut by_rpc_id: HashMap<(Option<&str>, &str), usize> = HashMap::new();
    for row in rows {
        if let Some(id) = &row.jsonrpc_id {
            *by_rpc_id
                .entry((row.session_id.as_deref(), id.as_str()))
                .or_default() += 1;
        }
    }
    let twice: Vec<_> = by_rpc_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "recorded twice: {twice:?}\n{}",
        describe(rows)
    );
}

fn count_by_rpc_id(rows: &[Stored]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for id in rows.iter().filter_map(|r| r.jsonrpc_id.clone()) {
        *counts.entry(id).or_default() += 1;
    }
    counts
}

/// Regression (`a_reply_read_in_full_is_not_recorded_as_cancelled`): when a client
/// closes the connection as soon as it has read the reply (as the rmcp client does), before the
/// SSE body has ended on the server side, the row says `cancelled` although the client got the
/// whole reply. The tests driving the rmcp client forgive exactly that (the known-bug test does
/// not); set this to `false` once the bug is fixed.
const FORGIVE_CANCELLED_AFTER_REPLY: bool = false;

/// Replaces the status of rows hit by the bug above with what the client saw (`seen`: status
/// and error code by JSON-RPC id). Returns how many rows were forgiven.
fn forgive_cancelled_after_reply(
    rows: &mut [Stored],
    seen: impl Fn(&Stored) -> Option<(String, Option<i64>)>,
) -> usize {
    if !FORGIVE_CANCELLED_AFTER_REPLY {
        return 0;
    }
    let mut forgiven = 0;
    for row in rows.iter_mut().filter(|r| r.status == "cancelled") {
        if let Some((status, code)) = seen(row) {
            eprintln!(
                "warning: known bug: {row:?} was answered ({status}) but is recorded as cancelled"
            );
            row.status = status.clone();
            row.error_code = code;
            if status == "success" {
                row.error_message = None;
            }
            forgiven += 1;
        }
    }
    forgiven
}

// ---------------------------------------------------------------------------------------------
// Raw MCP over HTTP

fn http() -> reqwest::Client {
    steward::tls::client_builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a reqwest client builds")
}

/// POSTs `body` to `url` with `accept` as the Accept header, through the shared raw client.
async fn post_raw(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    accept: &str,
    body: String,
) -> anyhow::Result<Reply> {
    RawClient::with_http(url, http.clone())
        .post_with(body, session, &[("accept", accept)])
        .await
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    message: &Value,
) -> anyhow::Result<Reply> {
    post_raw(http, url, session, ACCEPT, message.to_string()).await
}

fn tool_call(id: &str, tool: &str, arguments: Value) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    })
}

/// `initialize` (JSON-RPC id `init_id`) + `notifications/initialized`; returns the session id.
async fn open_session(
    http: &reqwest::Client,
    url: &str,
    client_name: &str,
    init_id: &str,
) -> anyhow::Result<String> {
    let reply = post(
        http,
        url,
        None,
        &json!({
            "jsonrpc": "2.0",
            "id": init_id,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": client_name, "version": "1.0.0"},
            },
        }),
    )
    .await?;
    reply.result().context("initialize")?;
    let session = reply
        .session()
        .context("initialize answered without Mcp-Session-Id")?;
    let notified = post(
        http,
        url,
        Some(&session),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await?;
    ensure!(
        notified.status == StatusCode::ACCEPTED,
        "notifications/initialized: {} {}",
        notified.status,
        notified.text
    );
    Ok(session)
}

/// `GET /health`: status code and body.
async fn health(server: &TestServer) -> anyhow::Result<(StatusCode, Value)> {
    let response = http()
        .get(format!("{}/health", server.base_url))
        .send()
        .await
        .context("GET /health")?;
    let status = response.status();
    let body: Value = response.json().await.context("/health is not JSON")?;
    Ok((status, body))
}

/// Polls `/health` until it answers `want`; returns the body.
async fn health_becomes(
    server: &TestServer,
    want: StatusCode,
    within: Duration,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = health(server).await?;
        if status == want {
            return Ok(body);
        }
        ensure!(
            Instant::now() < deadline,
            "/health still answers {status} after {within:?} (wanted {want}): {body}"
        );
        tokio::time::sleep(POLL).await;
    }
}

fn check_degraded_health(body: &Value) {
    assert_eq!(body["status"], "degraded", "{body}");
    let ledger = &body["ledger"];
    assert_eq!(ledger["status"], "degraded", "{body}");
    assert!(
        ledger["pending"].as_u64().unwrap_or(0) >= 1,
        "pending: {body}"
    );
    assert!(
        ledger["reason"]
            .as_str()
            .is_some_and(|r| !r.trim().is_empty()),
        "reason: {body}"
    );
    assert!(
        body["problems"].as_array().is_some_and(|p| p
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.starts_with("ledger")))),
        "problems: {body}"
    );
}

fn check_ok_health(body: &Value) {
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["ledger"]["status"], "ok", "{body}");
    assert!(body["ledger"]["reason"].is_null(), "{body}");
    assert_eq!(body["ledger"]["pending"], 0, "{body}");
    assert_eq!(body["ledger"]["lost"], 0, "{body}");
}

// ---------------------------------------------------------------------------------------------
// MCP client helpers and processes

async fn session_of(client: &Client) -> anyhow::Result<String> {
    let (is_error, info) = call(client, "session_info", Value::Null).await?;
    ensure!(!is_error, "session_info failed: {info}");
    info["session"]["session_id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no session id in {info}"))
}

async fn ok(client: &Client, tool: &str, args: Value) -> anyhow::Result<Value> {
    let (is_error, body) = call(client, tool, args.clone()).await?;
    ensure!(
        !is_error && body["success"] == true,
        "{tool} {args} failed: {body}"
    );
    Ok(body)
}

fn server_args(extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--pricing-model".to_string(), MODEL.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn start(db: &TestDb, extra: &[&str]) -> anyhow::Result<TestServer> {
    let args = server_args(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start_with(db, &args).await
}

fn spill_lines(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the spill file {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("spill line {l:?}")))
        .collect()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

// ---------------------------------------------------------------------------------------------
// 1. Exactly one row per request, with the true status

async fn every_request_lands_exactly_once(db: TestDb) -> anyhow::Result<()> {
    let server = start(&db, &[]).await?;
    let ledger = LedgerDb::open(&db).await?;
    let client = connect(&server.mcp_url(), "ledger-tester").await?;

    let session = session_of(&client).await?;
    let tools = client.list_all_tools().await?;
    ensure!(tools.len() == 17, "tools/list: {} tools", tools.len());
    ok(&client, "health_check", Value::Null).await?;
    let project = ok(
        &client,
        "manage_project",
        json!({"action": "create", "title": "Ledger project", "description": "counted"}),
    )
    .await?;
    ensure!(project["project_id"].is_string(), "{project}");
    ok(&client, "find_projects", json!({})).await?;
    ok(&client, "find_projects", json!({"query": "ledger"})).await?;
    // A tool that runs and fails validation: a tool error, not a success.
    let (is_error, body) = call(
        &client,
        "manage_project",
        json!({"action": "create", "title": "   "}),
    )
    .await?;
    ensure!(is_error, "a blank title was accepted: {body}");
    // Bad params (a string where a number belongs): the server answers a tool error.
    let (is_error, body) = call(&client, "find_tasks", json!({"per_page": "many"})).await?;
    ensure!(is_error, "per_page=\"many\" was accepted: {body}");
    // An unknown tool is a JSON-RPC error.
    let unknown = call(&client, "no_such_tool", json!({})).await;
    ensure!(unknown.is_err(), "an unknown tool answered: {unknown:?}");

    // Rejections before any handler runs.
    let http = http();
    let url = server.mcp_url();
    let stranger = uuid::Uuid::new_v4().simple().to_string();
    let list = |id: &str| json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
    let rejected = post(&http, &url, Some(&stranger), &list("raw-404")).await?;
    ensure!(
        rejected.status == StatusCode::NOT_FOUND,
        "unknown session: {} {}",
        rejected.status,
        rejected.text
    );
    let rejected = post_raw(
        &http,
        &url,
        Some(&session),
        "application/json",
        list("raw-406").to_string(),
    )
    .await?;
    ensure!(
        rejected.status.is_client_error(),
        "missing text/event-stream in Accept: {} {}",
        rejected.status,
        rejected.text
    );
    let garbage = post_raw(&http, &url, Some(&session), ACCEPT, "{not json".into()).await?;
    ensure!(
        garbage.status.is_client_error() || garbage.message.get("error").is_some(),
        "invalid JSON: {} {}",
        garbage.status,
        garbage.text
    );
    client.cancel().await?;

    // (method, tool, status, error_code, session, jsonrpc id)
    type Expected<'a> = (
        &'a str,
        Option<&'a str>,
        &'a str,
        Option<i64>,
        Option<&'a str>,
        Option<&'a str>,
    );
    let s = Some(session.as_str());
    let expected: Vec<Expected> = vec![
        ("initialize", None, "success", None, s, Some("0")),
        ("notifications/initialized", None, "success", None, s, None),
        // The rmcp client's GET stream, recorded when the client closes it.
        ("(GET stream)", None, "success", None, s, None),
        (
            "tools/call",
            Some("session_info"),
            "success",
            None,
            s,
            Some("1"),
        ),
        ("tools/list", None, "success", None, s, Some("2")),
        (
            "tools/call",
            Some("health_check"),
            "success",
            None,
            s,
            Some("3"),
        ),
        (
            "tools/call",
            Some("manage_project"),
            "success",
            None,
            s,
            Some("4"),
        ),
        (
            "tools/call",
            Some("find_projects"),
            "success",
            None,
            s,
            Some("5"),
        ),
        (
            "tools/call",
            Some("find_projects"),
            "success",
            None,
            s,
            Some("6"),
        ),
        (
            "tools/call",
            Some("manage_project"),
            "tool_error",
            None,
            s,
            Some("7"),
        ),
        (
            "tools/call",
            Some("find_tasks"),
            "tool_error",
            None,
            s,
            Some("8"),
        ),
        (
            "tools/call",
            Some("no_such_tool"),
            "error",
            Some(-32602),
            s,
            Some("9"),
        ),
        (
            "tools/list",
            None,
            "error",
            Some(-32600),
            Some(&stranger),
            Some("raw-404"),
        ),
        (
            "tools/list",
            None,
            "error",
            Some(-32600),
            s,
            Some("raw-406"),
        ),
        ("(invalid json)", None, "error", None, s, None),
    ];
    let mut rows = ledger.wait_for_rows(expected.len(), FLUSH_DEADLINE).await?;
    // The rmcp client's calls (ids 0..=9) were all answered in full.
    forgive_cancelled_after_reply(&mut rows, |row| {
        expected
            .iter()
            .find(|e| e.4 == row.session_id.as_deref() && e.5 == row.jsonrpc_id.as_deref())
            .filter(|e| e.5.is_some_and(|id| id.parse::<u32>().is_ok()))
            .map(|e| (e.2.to_string(), e.3))
    });
    let mut actual: Vec<Expected> = rows
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.tool_name.as_deref(),
                r.status.as_str(),
                r.error_code,
                r.session_id.as_deref(),
                r.jsonrpc_id.as_deref(),
            )
        })
        .collect();
    // The invalid-JSON rejection's error code depends on who rejects it; its status may not.
    for row in &mut actual {
        if row.0 == "(invalid json)" {
            row.3 = None;
        }
    }
    let mut want = expected.clone();
    want.sort();
    actual.sort();
    assert_eq!(actual, want, "rows:\n{}", describe(&rows));

    check_no_duplicates(&rows);
    for row in &rows {
        check_row_invariants(row);
        let r = format!("{row:?}");
        assert!(!row.sanitized, "{r}");
        if row.method == "(GET stream)" {
            // A GET carries no message: nothing was sent, a stream was received.
            assert_eq!(row.request_bytes, 0, "request_bytes: {r}");
            continue;
        }
        assert!(row.request_bytes > 0, "request_bytes: {r}");
        if row.method.starts_with("notifications/") {
            assert_eq!(
                row.response_bytes, 0,
                "a notification is answered 202 without body: {r}"
            );
        } else {
            assert!(row.response_bytes > 0, "response_bytes: {r}");
        }
        if row.status != "success" {
            assert!(
                row.error_message.as_deref().is_some_and(|m| !m.is_empty()),
                "a failure says why: {r}"
            );
        } else {
            assert!(
                row.error_message.is_none() && row.error_code.is_none(),
                "{r}"
            );
        }
        // Every row is priced (unknown clients at the default model).
        assert_eq!(row.pricing_model.as_deref(), Some(MODEL), "{r}");
        if row.method == "tools/call" || row.method == "tools/list" || row.method == "initialize" {
            check_priced(row);
        }
        if row.tool_name.as_deref() == Some("manage_project") && row.status == "success" {
            assert!(row.args_tokens.unwrap_or(0) > 0, "args tokens: {r}");
            assert!(row.result_tokens.unwrap_or(0) > 0, "result tokens: {r}");
        }
    }
    // tools/list carries every tool definition: the result tokens say so.
    let list_row = rows
        .iter()
        .find(|r| r.method == "tools/list" && r.status == "success")
        .context("no tools/list row")?;
    assert!(list_row.result_tokens.unwrap_or(0) > 500, "{list_row:?}");

    // The rows link to the session the client opened (and the stranger's to none).
    let (kind, name) = ledger.wait_for_session(&session).await?;
    assert_eq!(
        (kind.as_str(), name.as_deref()),
        ("session", Some("ledger-tester"))
    );
    assert!(ledger.session(&stranger).await?.is_none());
    ensure!(
        server.shutdown().await?.success(),
        "steward did not exit cleanly"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. Writes refused while clients keep calling

async fn blocked_writes_wait_and_land_once_unblocked(db: TestDb) -> anyhow::Result<()> {
    let server = start(&db, &[]).await?;
    let ledger = LedgerDb::open(&db).await?;
    let client = connect(&server.mcp_url(), "ledger-blocked").await?;
    let session = session_of(&client).await?;
    ledger.wait_for_rows(3, FLUSH_DEADLINE).await?; // initialize, initialized, session_info
    check_ok_health(&health_becomes(&server, StatusCode::OK, FLUSH_DEADLINE).await?);

    ledger.block().await?;
    let tools = [
        "find_projects",
        "health_check",
        "find_tasks",
        "get_completion_stats",
    ];
    for i in 0..20 {
        ok(&client, tools[i % tools.len()], json!({})).await?;
    }
    let body = health_becomes(&server, StatusCode::SERVICE_UNAVAILABLE, FLUSH_DEADLINE).await?;
    check_degraded_health(&body);
    let reason = body["ledger"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("blocked by test"),
        "the reason names the database error: {body}"
    );
    assert!(
        body["ledger"]["failed_writes"].as_u64().unwrap_or(0) >= 1,
        "{body}"
    );
    assert_eq!(body["ledger"]["lost"], 0, "{body}");

    // The health_check tool says so too (and is recorded like any other call).
    let checked = ok(&client, "health_check", Value::Null).await?;
    assert_eq!(checked["status"], "degraded", "{checked}");
    assert_eq!(checked["ledger"]["status"], "degraded", "{checked}");
    assert_eq!(
        ledger.count().await?,
        3,
        "rows were stored despite the trigger"
    );

    ledger.unblock().await?;
    let mut rows = ledger.wait_for_rows(3 + 20 + 1, RECOVERY_DEADLINE).await?;
    forgive_cancelled_after_reply(&mut rows, |_| Some(("success".into(), None)));
    check_no_duplicates(&rows);
    for row in &rows {
        check_row_invariants(row);
        assert_eq!(row.session_id.as_deref(), Some(session.as_str()), "{row:?}");
        assert_eq!(row.status, "success", "{row:?}");
    }
    let ids: HashSet<&str> = rows
        .iter()
        .filter_map(|r| r.jsonrpc_id.as_deref())
        .collect();
    let want: HashSet<String> = (0..=22).map(|i| i.to_string()).collect();
    assert_eq!(
        ids,
        want.iter().map(String::as_str).collect(),
        "JSON-RPC ids 0..=22, each once"
    );
    check_ok_health(&health_becomes(&server, StatusCode::OK, FLUSH_DEADLINE).await?);
    client.cancel().await?;
    ensure!(
        server.shutdown().await?.success(),
        "steward did not exit cleanly"
    );
    Ok(())
}

/// SQLite only: a real lock (another connection holding `BEGIN EXCLUSIVE` for longer than the
/// server's 5 s busy timeout) degrades the ledger without failing requests; every row lands once
/// the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_exclusive_lock_degrades_then_recovers() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    let server = start(&db, &[]).await?;
    let ledger = LedgerDb::open(&db).await?;
    let client = connect(&server.mcp_url(), "ledger-locked").await?;
    session_of(&client).await?;
    ledger.wait_for_rows(3, FLUSH_DEADLINE).await?;

    let mut locker = SqliteConnection::connect(&db.url).await?;
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await?;
    let locked_at = Instant::now();
    let hold = Duration::from_secs(8);
    let mut calls = 0;
    let mut degraded = None;
    while locked_at.elapsed() < hold - Duration::from_millis(500) {
        // Reads keep working under the writer's lock (WAL): every call must succeed.
        ok(&client, "find_projects", json!({})).await?;
        calls += 1;
        let (status, body) = health(&server).await?;
        // The session layer's activity writes fail under the lock too, and may turn /health
        // 503 a moment before the ledger's own insert gives up: wait for the ledger's report.
        let ledger_degraded = body["ledger"]["status"] == "degraded";
        if status == StatusCode::SERVICE_UNAVAILABLE && ledger_degraded && degraded.is_none() {
            degraded = Some(body);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let during = ledger.count().await?;
    sqlx::raw_sql("COMMIT").execute(&mut locker).await?;
    locker.close().await?;
    let body = degraded.context("/health never reported the locked database")?;
    check_degraded_health(&body);
    assert_eq!(during, 3, "rows were stored while the database was locked");

    let rows = ledger.wait_for_rows(3 + calls, RECOVERY_DEADLINE).await?;
    check_no_duplicates(&rows);
    rows.iter().for_each(check_row_invariants);
    check_ok_health(&health_becomes(&server, StatusCode::OK, FLUSH_DEADLINE).await?);
    client.cancel().await?;
    ensure!(
        server.shutdown().await?.success(),
        "steward did not exit cleanly"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. SIGTERM while requests are in flight

#[derive(Debug)]
enum Outcome {
    /// A complete JSON-RPC reply.
    Replied,
    /// An HTTP response, but not the reply (an error status, or a body without the reply).
    Partial(String),
    /// No HTTP response at all.
    Failed,
}

async fn one_call(
    http: &reqwest::Client,
    url: &str,
    session: &str,
    id: &str,
    tool: &str,
) -> Outcome {
    let request = http
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", ACCEPT)
        .header("Mcp-Session-Id", session)
        .body(tool_call(id, tool, json!({})).to_string());
    let Ok(response) = request.send().await else {
        return Outcome::Failed;
    };
    let status = response.status();
    match response.text().await {
        Ok(body)
            if status == StatusCode::OK
                && body.contains(&format!("\"id\":\"{id}\""))
                && body.contains("\"result\"") =>
        {
            Outcome::Replied
        }
        Ok(body) => Outcome::Partial(format!("{status}: {body:?}")),
        Err(error) => Outcome::Partial(format!("{status}, then {error}")),
    }
}

/// What a SIGTERM in the middle of 200 calls (16 in flight, over 4 sessions) left behind.
struct SigtermUnderLoad {
    /// `(session, JSON-RPC id, outcome)` of every call.
    outcomes: Vec<(String, String, Outcome)>,
    /// The ledger once the server has exited.
    rows: Vec<Stored>,
}

async fn sigterm_under_load(db: &TestDb) -> anyhow::Result<SigtermUnderLoad> {
    const CALLS: usize = 200;
    const IN_FLIGHT: usize = 16;
    let server = start(db, &[]).await?;
    let url = server.mcp_url();
    let http = http();
    let mut sessions = Vec::new();
    for i in 0..4 {
        sessions.push(open_session(&http, &url, "ledger-load", &format!("init-{i}")).await?);
    }
    let done = Arc::new(AtomicUsize::new(0));
    let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CALLS {
        let (http, url, done, permits) = (http.clone(), url.clone(), done.clone(), permits.clone());
        let session = sessions[i % sessions.len()].clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore open");
            let id = format!("load-{i}");
            let tool = if i % 2 == 0 {
                "find_projects"
            } else {
                "health_check"
            };
            let outcome = one_call(&http, &url, &session, &id, tool).await;
            done.fetch_add(1, Ordering::SeqCst);
            (session, id, outcome)
        });
    }
    // SIGTERM once the load is well under way.
    let deadline = Instant::now() + Duration::from_secs(20);
    while done.load(Ordering::SeqCst) < 24 {
        ensure!(Instant::now() < deadline, "the load did not get going");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let status = server.shutdown().await?;
    ensure!(
        status.success(),
        "steward exited with {status} after SIGTERM"
    );

    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined?);
    }
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|(_, _, o)| f(o)).count();
    eprintln!(
        "{} calls: {} replied, {} answered without the reply, {} without a response",
        outcomes.len(),
        count(|o| matches!(o, Outcome::Replied)),
        count(|o| matches!(o, Outcome::Partial(_))),
        count(|o| matches!(o, Outcome::Failed)),
    );
    ensure!(
        count(|o| matches!(o, Outcome::Replied)) >= 24,
        "too few replies: {outcomes:?}"
    );
    // The server is gone: what it stored is final.
    let rows = LedgerDb::open(db).await?.rows().await?;
    Ok(SigtermUnderLoad { outcomes, rows })
}

async fn sigterm_under_load_records_every_answered_request(db: TestDb) -> anyhow::Result<()> {
    let SigtermUnderLoad { outcomes, rows } = sigterm_under_load(&db).await?;
    check_no_duplicates(&rows);
    rows.iter().for_each(check_row_invariants);
    let counts = count_by_rpc_id(&rows);
    for (session, id, outcome) in &outcomes {
        if matches!(outcome, Outcome::Failed) {
            continue; // never answered: it may or may not have reached the server
        }
        assert_eq!(
            counts.get(id.as_str()).copied().unwrap_or(0),
            1,
            "{id} ({outcome:?}) must have exactly one row:\n{}",
            describe(&rows)
        );
        let row = rows
            .iter()
            .find(|r| r.jsonrpc_id.as_deref() == Some(id.as_str()))
            .context("row")?;
        assert_eq!(row.session_id.as_deref(), Some(session.as_str()), "{row:?}");
        // The status is the truth the client saw.
        match outcome {
            Outcome::Replied => assert_eq!(row.status, "success", "{row:?}"),
            _ => assert_ne!(row.status, "success", "{outcome:?} but {row:?}"),
        }
    }
    // Every row is a request that was sent; nothing is invented.
    let sent: HashSet<&str> = outcomes.iter().map(|(_, id, _)| id.as_str()).collect();
    for row in &rows {
        let id = row.jsonrpc_id.as_deref();
        let setup = row.method == "notifications/initialized"
            || id.is_some_and(|id| id.starts_with("init-"));
        assert!(
            setup || id.is_some_and(|id| sent.contains(id)),
            "unexpected row {row:?}"
        );
    }
    // The sessions' own requests were answered, so recorded.
    let setup_rows = rows
        .iter()
        .filter(|r| r.method == "initialize" || r.method == "notifications/initialized")
        .count();
    assert_eq!(setup_rows, 8, "{}", describe(&rows));
    Ok(())
}

/// Regression: the contract says SIGTERM lets in-flight requests finish, so a
/// request the server has started answering gets its reply.
async fn in_flight_requests_are_answered_across_sigterm(db: TestDb) -> anyhow::Result<()> {
    let SigtermUnderLoad { outcomes, .. } = sigterm_under_load(&db).await?;
    let cut: Vec<String> = outcomes
        .iter()
        .filter_map(|(_, id, outcome)| match outcome {
            Outcome::Partial(what) => Some(format!("{id}: {what}")),
            _ => None,
        })
        .collect();
    assert!(
        cut.is_empty(),
        "{} requests in flight at SIGTERM were answered without their reply:\n{}",
        cut.len(),
        cut.join("\n")
    );
    Ok(())
}

/// How long the slow client below takes between two parts of its request.
const SLOW_CLIENT: Duration = Duration::from_millis(300);

/// A request whose first bytes were sent before SIGTERM and the rest after it is answered, and
/// recorded: the stop waits for every connection that may still serve a request, not only for
/// the requests the router has seen (this one's head was not complete at the stop).
async fn a_request_begun_before_sigterm_is_answered(db: TestDb) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start(&db, &[]).await?;
    let http = http();
    let session = open_session(&http, &server.mcp_url(), "ledger-slow", "init-slow").await?;
    let addr = server.base_url.trim_start_matches("http://").to_string();
    let body = tool_call("slow", "health_check", json!({})).to_string();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: {ACCEPT}\r\n\
         mcp-session-id: {session}\r\nmcp-protocol-version: {PROTOCOL}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let (begun, rest) = head.split_at(20);
    let mut stream = tokio::net::TcpStream::connect(&addr).await?;
    stream.write_all(begun.as_bytes()).await?;
    // A slow client: its request has begun when the stop comes, and ends well after it.
    tokio::time::sleep(SLOW_CLIENT).await;
    let stopped = tokio::spawn(server.shutdown());
    tokio::time::sleep(SLOW_CLIENT).await;
    stream.write_all(rest.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    // The connection closes after the reply: the server is stopping.
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    let reply = String::from_utf8_lossy(&reply);
    ensure!(
        reply.starts_with("HTTP/1.1 200")
            && reply.contains(r#""id":"slow""#)
            && reply.contains(r#""result""#),
        "the request begun before the stop was not answered: {reply}"
    );
    let status = stopped.await??;
    ensure!(status.success(), "steward exited with {status}");
    let rows = LedgerDb::open(&db).await?.rows().await?;
    let row = rows
        .iter()
        .find(|r| r.jsonrpc_id.as_deref() == Some("slow"))
        .with_context(|| format!("no row for the slow request:\n{}", describe(&rows)))?;
    assert_eq!(row.status, "success", "{row:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. --ledger-durability sync + kill -9

async fn sync_durability_survives_kill_9(db: TestDb) -> anyhow::Result<()> {
    let ledger = LedgerDb::open_later(&db);
    // Round 0: one call at a time; round 1: eight at a time; round 2: both.
    for (round, (sequential, concurrent)) in [(1, 0), (0, 8), (1, 6)].into_iter().enumerate() {
        let server = start(&db, &["--ledger-durability", "sync"]).await?;
        let url = server.mcp_url();
        let http = http();
        let init_id = format!("k{round}-init");
        let session = open_session(&http, &url, "ledger-sync", &init_id).await?;
        let answered = Arc::new(std::sync::Mutex::new(vec![init_id]));
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..sequential + concurrent {
            let (http, url, session, answered) =
                (http.clone(), url.clone(), session.clone(), answered.clone());
            workers.spawn(async move {
                for n in 0..5000 {
                    let id = format!("k{round}-{worker}-{n}");
                    let tool = if n % 3 == 0 {
                        "health_check"
                    } else {
                        "find_projects"
                    };
                    let call = tool_call(&id, tool, json!({}));
                    match post(&http, &url, Some(&session), &call).await {
                        Ok(reply) if reply.result().is_ok() => {
                            answered.lock().expect("lock").push(id);
                        }
                        _ => break,
                    }
                    if worker < sequential {
                        // The sequential worker pauses between calls so the kill can land
                        // anywhere: mid-call or between calls.
                        let pause: u64 = rand::random_range(0..20);
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                }
            });
        }
        let delay: u64 = rand::random_range(150..900);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        kill_9(server).await?;
        while let Some(joined) = workers.join_next().await {
            joined?;
        }
        let answered = answered.lock().expect("lock").clone();
        ensure!(
            answered.len() > 1,
            "round {round}: nothing was answered before the kill"
        );

        let ledger = ledger.get().await?;
        let rows = ledger.rows().await?;
        check_no_duplicates(&rows);
        rows.iter().for_each(check_row_invariants);
        let counts = count_by_rpc_id(&rows);
        let missing: Vec<&String> = answered
            .iter()
            .filter(|id| counts.get(id.as_str()).copied().unwrap_or(0) != 1)
            .collect();
        assert!(
            missing.is_empty(),
            "round {round} (killed after {delay} ms, {} answered): answered without a row: {missing:?}",
            answered.len()
        );
        eprintln!(
            "round {round}: {} answered, killed after {delay} ms",
            answered.len()
        );
    }
    Ok(())
}

/// A [`LedgerDb`] opened on first use (after the server has created the database).
struct LazyLedger<'a> {
    db: &'a TestDb,
    opened: tokio::sync::OnceCell<LedgerDb>,
}

impl LedgerDb {
    fn open_later(db: &TestDb) -> LazyLedger<'_> {
        LazyLedger {
            db,
            opened: tokio::sync::OnceCell::new(),
        }
    }
}

impl LazyLedger<'_> {
    async fn get(&self) -> anyhow::Result<&LedgerDb> {
        self.opened
            .get_or_try_init(|| LedgerDb::open(self.db))
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// 5. A 100 KB argument and U+0000

async fn large_and_nul_arguments_are_recorded(db: TestDb) -> anyhow::Result<()> {
    let server = start(&db, &[]).await?;
    let ledger = LedgerDb::open(&db).await?;
    let client = connect(&server.mcp_url(), "ledger-big").await?;
    let session = session_of(&client).await?;

    // Exactly the longest description the server takes.
    let description: String = "lorem ipsum dolor sit amet, consectetur adipiscing elit. "
        .chars()
        .cycle()
        .take(100_000)
        .collect();
    let created = ok(
        &client,
        "manage_project",
        json!({"action": "create", "title": "Big", "description": description}),
    )
    .await?;
    ensure!(created["project_id"].is_string(), "{created}");

    let bad_tool = call(&client, "bad\u{0}tool", json!({})).await;
    ensure!(
        bad_tool.is_err(),
        "a tool named bad\\0tool answered: {bad_tool:?}"
    );
    // NUL inside an argument: refused or not, the request is recorded.
    let (_, nul_query) = call(&client, "find_projects", json!({"query": "nul\u{0}here"})).await?;
    eprintln!("find_projects with U+0000: {nul_query}");

    let http = http();
    let url = server.mcp_url();
    let reply = post(
        &http,
        &url,
        Some(&session),
        &tool_call("nul\u{0}id", "health_check", json!({})),
    )
    .await?;
    ensure!(
        reply.status == StatusCode::OK,
        "{} {}",
        reply.status,
        reply.text
    );
    let reply = post(
        &http,
        &url,
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": "raw-method", "method": "tools/\u{0}list"}),
    )
    .await?;
    ensure!(
        reply.message.get("error").is_some(),
        "an unknown method answered: {} {}",
        reply.status,
        reply.text
    );
    client.cancel().await?;

    // initialize, initialized, the client's GET stream, session_info, big, bad tool, NUL query,
    // NUL id, NUL method
    let mut rows = ledger.wait_for_rows(9, FLUSH_DEADLINE).await?;
    // What the rmcp client saw (the raw calls read their replies to the end).
    forgive_cancelled_after_reply(&mut rows, |row| match row.jsonrpc_id.as_deref() {
        Some("0" | "1" | "2") => Some(("success".into(), None)),
        Some("3") => Some(("error".into(), Some(-32602))),
        Some("4") => Some(("tool_error".into(), None)),
        _ => None,
    });
    check_no_duplicates(&rows);
    rows.iter().for_each(check_row_invariants);
    for row in &rows {
        assert_eq!(row.session_id.as_deref(), Some(session.as_str()), "{row:?}");
    }

    let big = rows
        .iter()
        .find(|r| r.tool_name.as_deref() == Some("manage_project"))
        .context("no row for the 100 KB call")?;
    assert_eq!(big.status, "success", "{big:?}");
    assert!(big.request_bytes > 100_000, "{big:?}");
    assert!(big.args_tokens.unwrap_or(0) > 10_000, "{big:?}");
    assert!(!big.sanitized, "{big:?}");
    check_priced(big);

    let bad = rows
        .iter()
        .find(|r| r.tool_name.as_deref().is_some_and(|t| t.starts_with("bad")))
        .context("no row for the tool named bad\\0tool")?;
    assert_eq!(bad.tool_name.as_deref(), Some("bad\u{FFFD}tool"), "{bad:?}");
    assert_eq!(
        (bad.status.as_str(), bad.error_code),
        ("error", Some(-32602)),
        "{bad:?}"
    );
    assert!(
        bad.sanitized,
        "text was altered, so the row says so: {bad:?}"
    );

    let query = rows
        .iter()
        .find(|r| r.tool_name.as_deref() == Some("find_projects"))
        .context("no row for the query holding U+0000")?;
    assert!(
        query.status == "success" || query.status == "tool_error",
        "{query:?}"
    );
    assert_eq!(query.jsonrpc_id.as_deref(), Some("4"), "{query:?}");

    let nul_id = rows
        .iter()
        .find(|r| {
            r.jsonrpc_id
                .as_deref()
                .is_some_and(|id| id.starts_with("nul"))
        })
        .context("no row for the JSON-RPC id holding U+0000")?;
    assert_eq!(
        nul_id.jsonrpc_id.as_deref(),
        Some("nul\u{FFFD}id"),
        "{nul_id:?}"
    );
    assert_eq!(
        nul_id.tool_name.as_deref(),
        Some("health_check"),
        "{nul_id:?}"
    );
    assert_eq!(nul_id.status, "success", "{nul_id:?}");
    assert!(nul_id.sanitized, "{nul_id:?}");

    let method = rows
        .iter()
        .find(|r| r.jsonrpc_id.as_deref() == Some("raw-method"))
        .context("no row for the method holding U+0000")?;
    assert_eq!(method.method, "tools/\u{FFFD}list", "{method:?}");
    assert_eq!(method.status, "error", "{method:?}");
    assert!(method.sanitized, "{method:?}");

    let altered = rows.iter().filter(|r| r.sanitized).count();
    assert_eq!(
        altered,
        3,
        "only the rows whose text held U+0000:\n{}",
        describe(&rows)
    );
    let (_, body) = health(&server).await?;
    assert_eq!(body["ledger"]["sanitized"], 3, "{body}");
    ensure!(
        server.shutdown().await?.success(),
        "steward did not exit cleanly"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 6. Spill at shutdown, replay at the next start

/// Starts a server with the database refusing ledger writes, makes `calls` tool calls, stops
/// it with SIGTERM and returns the spilled rows' request ids (and the session id).
async fn spill_some(
    db: &TestDb,
    ledger: &LedgerDb,
    spill: &str,
    calls: usize,
) -> anyhow::Result<(Vec<String>, String)> {
    let server = start(db, &["--ledger-spill", spill]).await?;
    ledger.block().await?;
    let http = http();
    let url = server.mcp_url();
    let session = open_session(&http, &url, "ledger-spill", "init").await?;
    for i in 0..calls {
        let reply = post(
            &http,
            &url,
            Some(&session),
            &tool_call(&format!("spill-{i}"), "find_projects", json!({})),
        )
        .await?;
        reply.result()?;
    }
    let body = health_becomes(&server, StatusCode::SERVICE_UNAVAILABLE, FLUSH_DEADLINE).await?;
    check_degraded_health(&body);
    let started = Instant::now();
    let status = server.shutdown().await?;
    ensure!(
        status.success(),
        "steward exited with {status} after SIGTERM"
    );
    eprintln!("SIGTERM with refused writes took {:?}", started.elapsed());

    let lines = spill_lines(Path::new(spill))?;
    assert_eq!(lines.len(), calls + 2, "spill file: {lines:#?}");
    assert_eq!(
        ledger.count().await?,
        0,
        "rows were stored despite the trigger"
    );
    let ids: Vec<String> = lines
        .iter()
        .map(|l| {
            l["request_id"]
                .as_str()
                .map(str::to_string)
                .context("request_id")
        })
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "spilled twice"
    );
    Ok((ids, session))
}

async fn check_replayed(
    ledger: &LedgerDb,
    spilled: &[String],
    session: &str,
    spill: &Path,
) -> anyhow::Result<()> {
    let rows = ledger
        .wait_for_rows(spilled.len(), RECOVERY_DEADLINE)
        .await?;
    check_no_duplicates(&rows);
    rows.iter().for_each(check_row_invariants);
    let stored: HashSet<&str> = rows.iter().map(|r| r.request_id.as_str()).collect();
    let want: HashSet<&str> = spilled.iter().map(String::as_str).collect();
    assert_eq!(stored, want, "the stored rows are the spilled ones");
    for row in &rows {
        assert_eq!(row.session_id.as_deref(), Some(session), "{row:?}");
        assert_eq!(row.status, "success", "{row:?}");
    }
    let deadline = Instant::now() + FLUSH_DEADLINE;
    while spill.exists() || with_suffix(spill, ".replaying").exists() {
        ensure!(
            Instant::now() < deadline,
            "the spill file is still there after replay"
        );
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

async fn spilled_rows_are_replayed_after_a_restart(db: TestDb) -> anyhow::Result<()> {
    let spill_path = db.dir().join("ledger.spill");
    let spill = spill_path.to_str().context("utf-8 path")?.to_string();
    // The server creates the schema; the test connects once it is there.
    let ledger = LedgerDb::open_later(&db);
    let first = start(&db, &["--ledger-spill", &spill]).await?;
    ensure!(
        first.shutdown().await?.success(),
        "steward did not exit cleanly"
    );
    let ledger = ledger.get().await?;

    let (spilled, session) = spill_some(&db, ledger, &spill, 6).await?;
    ledger.unblock().await?;

    let server = start(&db, &["--ledger-spill", &spill]).await?;
    check_replayed(ledger, &spilled, &session, &spill_path).await?;
    check_ok_health(&health_becomes(&server, StatusCode::OK, FLUSH_DEADLINE).await?);
    ensure!(
        server.shutdown().await?.success(),
        "steward did not exit cleanly"
    );
    // A second restart replays nothing again.
    let server = start(&db, &["--ledger-spill", &spill]).await?;
    check_ok_health(&health_becomes(&server, StatusCode::OK, FLUSH_DEADLINE).await?);
    ensure!(
        server.shutdown().await?.success(),
        "steward did not exit cleanly"
    );
    assert_eq!(ledger.count().await?, spilled.len() as i64);
    Ok(())
}

/// Regression: a server started while the database still refuses holds the
/// spilled rows; once the database takes writes again they must land without new traffic.
async fn spill_is_replayed_when_the_database_recovers_without_traffic(
    db: TestDb,
) -> anyhow::Result<()> {
    let spill_path = db.dir().join("ledger.spill");
    let spill = spill_path.to_str().context("utf-8 path")?.to_string();
    let ledger = LedgerDb::open_later(&db);
    let first = start(&db, &["--ledger-spill", &spill]).await?;
    ensure!(
        first.shutdown().await?.success(),
        "steward did not exit cleanly"
    );
    let ledger = ledger.get().await?;
    let (spilled, session) = spill_some(&db, ledger, &spill, 3).await?;

    // Restart while the database still refuses: the rows wait, and /health says so.
    let server = start(&db, &["--ledger-spill", &spill]).await?;
    let body = health_becomes(&server, StatusCode::SERVICE_UNAVAILABLE, FLUSH_DEADLINE).await?;
    check_degraded_health(&body);
    assert_eq!(body["ledger"]["spilled"], spilled.len(), "{body}");
    // Unblock only once the startup replay has been tried (and refused).
    let deadline = Instant::now() + FLUSH_DEADLINE;
    loop {
        let (_, body) = health(&server).await?;
        let reason = body["ledger"]["reason"].as_str().unwrap_or_default();
        if reason.contains("replaying the ledger spill file failed") {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the startup replay was never refused: {body}"
        );
        tokio::time::sleep(POLL).await;
    }
    ledger.unblock().await?;
    // No MCP traffic from here on: only GET /health, which is not a ledger request.
    check_replayed(ledger, &spilled, &session, &spill_path).await?;
    check_ok_health(&health_becomes(&server, StatusCode::OK, FLUSH_DEADLINE).await?);
    ensure!(
        server.shutdown().await?.success(),
        "steward did not exit cleanly"
    );
    Ok(())
}

/// Regression: with `sync` durability the reply waits for its row to be
/// durable, "stored, or fsynced to the spill file while the database is down" — so a refused
/// database must not hold replies forever.
async fn sync_durability_answers_while_writes_are_refused(db: TestDb) -> anyhow::Result<()> {
    let spill_path = db.dir().join("ledger.spill");
    let spill = spill_path.to_str().context("utf-8 path")?.to_string();
    let server = start(
        &db,
        &["--ledger-durability", "sync", "--ledger-spill", &spill],
    )
    .await?;
    let ledger = LedgerDb::open(&db).await?;
    let http = http();
    let url = server.mcp_url();
    let session = open_session(&http, &url, "ledger-sync-blocked", "init").await?;
    ledger.wait_for_rows(2, FLUSH_DEADLINE).await?;
    ledger.block().await?;
    let call = tool_call("while-refused", "find_projects", json!({}));
    let reply = tokio::time::timeout(
        Duration::from_secs(12),
        post(&http, &url, Some(&session), &call),
    )
    .await
    .context("no reply within 12 s while the database refused ledger writes (sync durability)")??;
    reply.result()?;
    check_degraded_health(
        &health_becomes(&server, StatusCode::SERVICE_UNAVAILABLE, FLUSH_DEADLINE).await?,
    );
    ledger.unblock().await?;
    // One more call after recovery, so the row lands whatever the replay trigger is.
    post(
        &http,
        &url,
        Some(&session),
        &tool_call("after", "health_check", json!({})),
    )
    .await?
    .result()?;
    let rows = ledger.wait_for_rows(4, RECOVERY_DEADLINE).await?;
    check_no_duplicates(&rows);
    ensure!(
        server.shutdown().await?.success(),
        "steward did not exit cleanly"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 7. stdio

async fn stdio_requests_are_recorded_under_a_logical_session(db: TestDb) -> anyhow::Result<()> {
    let client = connect_stdio(&db, "ledger-stdio").await?;
    let session = session_of(&client).await?;
    ok(&client, "find_projects", json!({})).await?;
    // `steward stdio` has created the database by now.
    let ledger = LedgerDb::open(&db).await?;
    // initialize, notifications/initialized, session_info, find_projects: stored while the
    // client is still connected (a stdio server's exit is covered by a known-bug test).
    ledger.wait_for_rows(4, FLUSH_DEADLINE).await?;
    client.cancel().await?;
    let rows = ledger.wait_for_rows(4, FLUSH_DEADLINE).await?;
    check_no_duplicates(&rows);
    let uuid = session.strip_prefix("stdio-").unwrap_or("");
    ensure!(
        uuid::Uuid::parse_str(uuid).is_ok(),
        "not a stdio session id: {session}"
    );
    let mut methods: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.method.as_str(), r.tool_name.as_deref()))
        .collect();
    methods.sort();
    assert_eq!(
        methods,
        [
            ("initialize", None),
            ("notifications/initialized", None),
            ("tools/call", Some("find_projects")),
            ("tools/call", Some("session_info")),
        ]
    );
    for row in &rows {
        check_row_invariants(row);
        let r = format!("{row:?}");
        assert_eq!(row.session_id.as_deref(), Some(session.as_str()), "{r}");
        assert_eq!(row.status, "success", "{r}");
        assert!(row.request_bytes > 0, "{r}");
        if row.method == "tools/call" {
            assert!(row.response_bytes > 0, "{r}");
            check_priced(row);
        }
    }
    let (kind, name) = ledger.wait_for_session(&session).await?;
    assert_eq!(
        (kind.as_str(), name.as_deref()),
        ("logical", Some("ledger-stdio"))
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 8. --ledger-durability off

async fn durability_off_records_nothing(db: TestDb) -> anyhow::Result<()> {
    let server = start(&db, &["--ledger-durability", "off"]).await?;
    let client = connect(&server.mcp_url(), "ledger-off").await?;
    session_of(&client).await?;
    ok(&client, "find_projects", json!({})).await?;
    let unknown = call(&client, "no_such_tool", json!({})).await;
    ensure!(unknown.is_err(), "{unknown:?}");
    let rejected = post(
        &http(),
        &server.mcp_url(),
        Some("no-such-session"),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await?;
    ensure!(
        rejected.status == StatusCode::NOT_FOUND,
        "{}",
        rejected.text
    );
    client.cancel().await?;
    let (status, body) = health(&server).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ledger"]["durability"], "off", "{body}");
    assert_eq!(body["ledger"]["written"], 0, "{body}");
    ensure!(
        server.shutdown().await?.success(),
        "steward did not exit cleanly"
    );

    let ledger = LedgerDb::open(&db).await?;
    assert_eq!(
        ledger.count().await?,
        0,
        "{}",
        describe(&ledger.rows().await?)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Regressions: bugs found and fixed

/// Regression: a client that has read the whole reply and then closes the connection (as the
/// rmcp client does, without waiting for the end of the SSE body) must not be recorded as
/// `cancelled`. Raw HTTP, reading each reply chunk by chunk and hanging up as soon as it is in.
async fn a_reply_read_in_full_is_not_recorded_as_cancelled(db: TestDb) -> anyhow::Result<()> {
    const CALLS: usize = 200;
    let server = start(&db, &[]).await?;
    let http = http();
    let url = server.mcp_url();
    let session = open_session(&http, &url, "ledger-hangs-up", "init").await?;
    for i in 0..CALLS {
        let id = format!("hang-{i}");
        let mut response = http
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", ACCEPT)
            .header("Mcp-Session-Id", &session)
            .body(tool_call(&id, "health_check", json!({})).to_string())
            .send()
            .await?;
        ensure!(
            response.status() == StatusCode::OK,
            "{id}: {}",
            response.status()
        );
        let mut body = Vec::new();
        let complete = loop {
            let Some(chunk) = response.chunk().await? else {
                break false;
            };
            body.extend_from_slice(&chunk);
            let text = String::from_utf8_lossy(&body);
            // The reply event is complete once its blank line has arrived.
            if let Some(at) = text.find("\"result\"")
                && text[at..].contains("\n\n")
            {
                break true;
            }
        };
        ensure!(
            complete,
            "{id}: no complete reply in {}",
            String::from_utf8_lossy(&body)
        );
        drop(response); // hang up without reading the end of the stream
    }
    let ledger = LedgerDb::open(&db).await?;
    let rows = ledger.wait_for_rows(2 + CALLS, FLUSH_DEADLINE).await?;
    let failed: Vec<Stored> = rows
        .iter()
        .filter(|r| r.status != "success")
        .cloned()
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {CALLS} replies read in full are recorded as failures:\n{}",
        failed.len(),
        describe(&failed)
    );
    ensure!(
        server.shutdown().await?.success(),
        "steward did not exit cleanly"
    );
    Ok(())
}

/// Regression: `steward stdio` stopped with SIGTERM (the MCP stdio shutdown sequence's second
/// step) exits 0 after flushing its ledger, like `steward serve`.
async fn stdio_flushes_the_ledger_on_sigterm(db: TestDb) -> anyhow::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["stdio", "--database", &db.url])
        .current_dir(db.dir())
        .env_remove("STEWARD_CONFIG")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let messages = [
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {},
            "clientInfo": {"name": "ledger-stdio-term", "version": "1.0.0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        tool_call("1", "health_check", json!({})),
        tool_call("2", "find_projects", json!({})),
    ];
    for message in &messages {
        stdin.write_all(format!("{message}\n").as_bytes()).await?;
        stdin.flush().await?;
        if message.get("id").is_some() {
            let line = tokio::time::timeout(Duration::from_secs(20), stdout.next_line())
                .await
                .context("no reply over stdio")??
                .context("stdout closed")?;
            let reply: Value = serde_json::from_str(&line)?;
            ensure!(reply.get("result").is_some(), "{reply}");
        }
    }
    // The client is still connected (stdin open): SIGTERM, as after a slow exit.
    let pid = child.id().context("no pid")?;
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    ensure!(sent.success(), "kill -TERM failed");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .context("steward stdio did not exit after SIGTERM")??;
    drop(stdin);
    let ledger = LedgerDb::open(&db).await?;
    let count = ledger.count().await?;
    assert!(
        status.success() && count == 4,
        "after SIGTERM: exit {status}, {count} of 4 ledger rows"
    );
    Ok(())
}
