//! Durable sessions, end to end: the real `steward serve` (one or two replicas) driven with raw
//! HTTP so the `Mcp-Session-Id` header is under the test's control, and every outcome checked
//! in the `mcp_sessions` row, the HTTP status, `/health` or the `steward sessions` CLI.
//!
//! Each scenario runs on SQLite and (when `STEWARD_TEST_POSTGRES_URL` is set) PostgreSQL, as
//! two tests (`<scenario>::sqlite`, `<scenario>::postgres`) so the engines run in parallel.

use crate::common;

use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use steward::store::Store;
use steward::store::sessions::SessionRow;

use common::raw::{Client as RawClient, Reply, next_request_id};
use common::{Backend, TestDb, TestServer, kill_9, open_store};

/// The protocol version the tests ask for (the newest of the session era).
const PROTOCOL: &str = "2025-11-25";
/// Generous bound for things the server does "within a second or two".
const SOON: Duration = Duration::from_secs(5);
/// How long a revocation may take to reach another replica polling every 500 ms. The documented
/// bound is the poll; this is far above it because CI's 2 cores also run other test binaries,
/// yet far below "until the replica restarts or evicts the session", which is the bug it catches.
const REVOCATION_SLACK: Duration = Duration::from_secs(10);
/// How often conditions are re-checked while waiting.
const POLL: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------------
// Running a scenario on each engine

common::test_on_each_backend!(
    initialize_records_the_session,
    session_survives_kill_9,
    session_survives_graceful_restart,
    restore_refuses_ended_sessions,
    replicas_share_sessions_and_revocation,
    board_writes_show_on_every_replica_at_once,
    remembered_answers_follow_every_write_on_another_replica,
    concurrent_first_requests_on_another_replica,
    revocation_closes_open_streams,
    unknown_missing_and_deleted_ids,
    delete_on_one_replica_ends_the_session_everywhere,
    requests_racing_the_end_of_their_session_get_404,
    idle_then_active_then_timed_out,
    sessions_expire_at_max_age,
    sessions_cli_lists_and_shows,
);

// ---------------------------------------------------------------------------------------------
// Raw MCP over HTTP

/// A successful tool result's first text content, parsed as JSON.
fn tool_output(reply: &Reply) -> anyhow::Result<Value> {
    let result = reply.result()?;
    ensure!(
        result["isError"] != json!(true),
        "the tool failed: {result}"
    );
    let text = result["content"][0]["text"]
        .as_str()
        .with_context(|| format!("no text content in {result}"))?;
    Ok(serde_json::from_str(text).unwrap_or(Value::String(text.to_string())))
}

/// Built with Steward's TLS builder: reqwest's own parses the system's CA bundle for every
/// client, which the many short-lived clients here would pay each time.
fn http() -> reqwest::Client {
    steward::tls::client_builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("a reqwest client builds")
}

/// A client without an overall timeout, for long-lived SSE streams.
fn http_streaming() -> reqwest::Client {
    steward::tls::client_builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("a reqwest client builds")
}

/// The shared raw client aimed at `server`, saying [`PROTOCOL`] in sessions as real clients
/// do after initialize.
fn raw(server: &TestServer) -> RawClient {
    RawClient::with_http(&server.mcp_url(), http()).at_revision(PROTOCOL)
}

/// POSTs one JSON-RPC message to `server`'s `/mcp`, with `session` as `Mcp-Session-Id`.
async fn post(
    server: &TestServer,
    session: Option<&str>,
    message: &Value,
) -> anyhow::Result<Reply> {
    raw(server).post(message, session).await
}

/// Sends `initialize` asking for `protocol_version`; returns the session id and the result.
async fn initialize_with(
    server: &TestServer,
    protocol_version: &str,
    client_name: &str,
    client_version: &str,
) -> anyhow::Result<(String, Value)> {
    let reply = post(
        server,
        None,
        &json!({
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": protocol_version,
                "capabilities": {},
                "clientInfo": {"name": client_name, "version": client_version},
            },
        }),
    )
    .await?;
    let result = reply.result().context("initialize")?.clone();
    let id = reply
        .session()
        .context("initialize answered without an Mcp-Session-Id header")?;
    Ok((id, result))
}

/// Sends `initialize` as `client_name`/`client_version` and returns the new session id.
async fn initialize(
    server: &TestServer,
    client_name: &str,
    client_version: &str,
) -> anyhow::Result<String> {
    let (id, result) = initialize_with(server, PROTOCOL, client_name, client_version).await?;
    ensure!(
        result["protocolVersion"] == PROTOCOL,
        "negotiated an unexpected protocol version: {result}"
    );
    ensure!(
        result["serverInfo"]["name"] == "steward",
        "unexpected serverInfo: {result}"
    );
    Ok(id)
}

/// Sends `notifications/initialized`; the server must accept it with 202.
async fn initialized(server: &TestServer, session: &str) -> anyhow::Result<()> {
    let reply = post(
        server,
        Some(session),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await?;
    ensure!(
        reply.status == StatusCode::ACCEPTED,
        "notifications/initialized: expected 202, got {}: {}",
        reply.status,
        reply.text
    );
    Ok(())
}

/// `initialize` + `notifications/initialized`, as a real client does.
async fn open_session(server: &TestServer, client_name: &str) -> anyhow::Result<String> {
    let id = initialize(server, client_name, "2.0.1").await?;
    initialized(server, &id).await?;
    Ok(id)
}

async fn call_tool(
    server: &TestServer,
    session: Option<&str>,
    tool: &str,
    arguments: Value,
) -> anyhow::Result<Reply> {
    call_tool_with(&raw(server), session, tool, arguments).await
}

/// [`call_tool`] through `client` (and its connection pool).
async fn call_tool_with(
    client: &RawClient,
    session: Option<&str>,
    tool: &str,
    arguments: Value,
) -> anyhow::Result<Reply> {
    client
        .post(
            &json!({
                "jsonrpc": "2.0",
                "id": next_request_id(),
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            }),
            session,
        )
        .await
}

/// `health_check` in `session`, which must succeed.
async fn health_check(server: &TestServer, session: &str) -> anyhow::Result<()> {
    let reply = call_tool(server, Some(session), "health_check", json!({})).await?;
    let output = tool_output(&reply).context("health_check")?;
    ensure!(output["success"] == true, "health_check: {output}");
    Ok(())
}

/// `session_info` in `session`: the `session` object of its output.
async fn session_info(server: &TestServer, session: &str) -> anyhow::Result<Value> {
    let reply = call_tool(server, Some(session), "session_info", json!({})).await?;
    let output = tool_output(&reply).context("session_info")?;
    ensure!(output["success"] == true, "session_info: {output}");
    Ok(output["session"].clone())
}

async fn tools_list(server: &TestServer, session: Option<&str>) -> anyhow::Result<Reply> {
    post(
        server,
        session,
        &json!({"jsonrpc": "2.0", "id": next_request_id(), "method": "tools/list", "params": {}}),
    )
    .await
}

async fn delete(server: &TestServer, session: &str) -> anyhow::Result<Reply> {
    raw(server).delete(session).await
}

/// The HTTP status of a `health_check` call in `session` (200 while usable, 404 once gone).
async fn status_of(server: &TestServer, session: &str) -> anyhow::Result<StatusCode> {
    Ok(call_tool(server, Some(session), "health_check", json!({}))
        .await?
        .status)
}

async fn health(server: &TestServer) -> anyhow::Result<Value> {
    let response = http()
        .get(format!("{}/health", server.base_url))
        .send()
        .await
        .context("GET /health failed")?;
    let status = response.status();
    let body: Value = response.json().await.context("/health is not JSON")?;
    ensure!(
        status == StatusCode::OK,
        "/health answered {status}: {body}"
    );
    Ok(body)
}

/// A well-formed session id no server ever issued.
fn unknown_session_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

// ---------------------------------------------------------------------------------------------
// Processes

/// Runs `steward ARGS --database URL` to completion.
async fn steward_cli(db: &TestDb, args: &[&str]) -> anyhow::Result<Output> {
    let database = ["--database", db.url.as_str()];
    common::steward_cli(db, &[args, &database[..]].concat()).await
}

/// Runs the CLI, requires exit 0, and returns stdout.
async fn steward_ok(db: &TestDb, args: &[&str]) -> anyhow::Result<String> {
    let output = steward_cli(db, args).await?;
    ensure!(
        output.status.success(),
        "steward {args:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

async fn steward_json(db: &TestDb, args: &[&str]) -> anyhow::Result<Value> {
    let stdout = steward_ok(db, args).await?;
    serde_json::from_str(&stdout)
        .with_context(|| format!("steward {args:?} did not print JSON: {stdout}"))
}

// ---------------------------------------------------------------------------------------------
// The database side

async fn row(store: &Store, id: &str) -> anyhow::Result<SessionRow> {
    store
        .get_session(id)
        .await?
        .with_context(|| format!("no mcp_sessions row for {id}"))
}

/// Waits until the session's row satisfies `done`, returning that row.
async fn row_when(
    store: &Store,
    id: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&SessionRow) -> bool,
) -> anyhow::Result<SessionRow> {
    let deadline = Instant::now() + within;
    loop {
        let current = row(store, id).await?;
        if done(&current) {
            return Ok(current);
        }
        if Instant::now() >= deadline {
            bail!("the session row did not become {what} within {within:?}: {current:#?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `server` answers 404 for `id`; returns how long that took. Only 200 (still
/// usable) and 404 are acceptable answers meanwhile.
async fn until_404(server: &TestServer, id: &str, within: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        match status_of(server, id).await? {
            StatusCode::NOT_FOUND => return Ok(started.elapsed()),
            StatusCode::OK => {}
            other => bail!(
                "{} answered {other} for a session being ended",
                server.base_url
            ),
        }
        if started.elapsed() >= within {
            bail!(
                "{} still serves the session {within:?} after it was ended",
                server.base_url
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `(runs, sum of idled, sum of timed_out, sum of expired, runs with an error)` over
/// `cleanup_runs`.
async fn cleanup_totals(store: &Store) -> anyhow::Result<(i64, i64, i64, i64, i64)> {
    const SQL: &str = "SELECT COUNT(*), COALESCE(SUM(idled), 0), COALESCE(SUM(timed_out), 0), \
                       COALESCE(SUM(expired), 0), COUNT(error) FROM cleanup_runs";
    Ok(match store {
        Store::Sqlite(pool) => sqlx::query_as(SQL).fetch_one(pool).await?,
        Store::Postgres(pool) => {
            // SUM of BIGINT is NUMERIC on PostgreSQL.
            let sql = SQL
                .replace("SUM(idled)", "SUM(idled)::BIGINT")
                .replace("SUM(timed_out)", "SUM(timed_out)::BIGINT")
                .replace("SUM(expired)", "SUM(expired)::BIGINT");
            sqlx::query_as(&sql).fetch_one(pool).await?
        }
    })
}

fn is_hex(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_hexdigit())
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// initialize → a complete `mcp_sessions` row, and a 256-bit hex session id.
async fn initialize_records_the_session(db: TestDb) -> anyhow::Result<()> {
    let server = TestServer::start(&db).await?;
    let before = Utc::now();
    let id = initialize(&server, "claude-code", "2.0.1").await?;
    ensure!(
        id.len() >= 64 && is_hex(&id),
        "session ids must be at least 64 hex characters (256 bits): {id:?}"
    );
    let store = open_store(&db).await?;
    let r = row(&store, &id).await?;
    assert_eq!(r.session_id, id);
    assert_eq!(r.kind, "session");
    assert_eq!(r.client_name.as_deref(), Some("claude-code"));
    assert_eq!(r.client_version.as_deref(), Some("2.0.1"));
    assert_eq!(r.client_type, "Claude Code");
    assert_eq!(r.protocol_version.as_deref(), Some(PROTOCOL));
    assert_eq!(r.status, "active");
    assert_eq!(r.disconnected_at, None);
    assert_eq!(r.disconnect_reason, None);
    assert!(
        r.connected_at >= before - chrono::Duration::seconds(1) && r.connected_at <= Utc::now(),
        "connected_at {} is not the time of initialize",
        r.connected_at
    );
    assert!(r.last_activity >= r.connected_at);
    let params = r
        .initialize_params
        .as_ref()
        .context("initialize_params not stored (restore needs them)")?;
    assert_eq!(
        params.0["clientInfo"]["name"], "claude-code",
        "{:?}",
        params.0
    );
    assert_eq!(params.0["clientInfo"]["version"], "2.0.1", "{:?}", params.0);
    assert_eq!(params.0["protocolVersion"], PROTOCOL, "{:?}", params.0);

    // The session works, and sees itself as the database does.
    initialized(&server, &id).await?;
    let info = session_info(&server, &id).await?;
    assert_eq!(info["session_id"], id.as_str(), "{info}");
    assert_eq!(info["client"]["name"], "claude-code", "{info}");
    assert_eq!(info["client"]["type"], "Claude Code", "{info}");
    assert_eq!(info["status"], "active", "{info}");

    // Another client gets its own id and its own label; an unknown client is `unknown`.
    let cursor = initialize(&server, "cursor-vscode", "1.0.0").await?;
    let curl = initialize(&server, "curl", "8.0").await?;
    assert_ne!(cursor, id);
    assert_ne!(cursor, curl);
    assert_eq!(row(&store, &cursor).await?.client_type, "Cursor");
    assert_eq!(row(&store, &curl).await?.client_type, "unknown");
    assert_eq!(
        row(&store, &curl).await?.client_name.as_deref(),
        Some("curl")
    );

    // The row records the version the session actually runs: what initialize answered.
    for requested in [
        "2024-11-05",
        "2025-03-26",
        "2025-06-18",
        "2026-07-28",
        "2099-01-01",
    ] {
        let (session, result) = initialize_with(&server, requested, "claude-code", "2.0.1")
            .await
            .with_context(|| format!("initialize asking for {requested}"))?;
        let negotiated = result["protocolVersion"]
            .as_str()
            .with_context(|| format!("no protocolVersion in {result}"))?;
        let recorded = row(&store, &session).await?.protocol_version;
        assert_eq!(
            recorded.as_deref(),
            Some(negotiated),
            "asked for {requested}, the server answered {negotiated}, the row says {recorded:?}"
        );
    }

    store.close().await;
    server.stop().await;
    Ok(())
}

/// A crash loses nothing a client relies on: after `kill -9` and a fresh process on the same
/// database, the old id works without a new initialize.
async fn session_survives_kill_9(db: TestDb) -> anyhow::Result<()> {
    let first = TestServer::start(&db).await?;
    let id = open_session(&first, "claude-code").await?;
    health_check(&first, &id).await?;
    let store = open_store(&db).await?;
    // Activity reaches the database within the 1 s flush.
    let connected = row(&store, &id).await?.connected_at;
    let flushed = row_when(&store, &id, SOON, "touched by the flush", |r| {
        r.last_activity > connected
    })
    .await?;

    kill_9(first).await?;
    let second = TestServer::start(&db).await?;
    let resumed_at = Utc::now();
    // No initialize: the old id is restored from the database. (Parallel first requests:
    // see `concurrent_first_requests_on_another_replica`.)
    health_check(&second, &id)
        .await
        .context("the old session id after kill -9")?;
    let tools = tools_list(&second, Some(&id)).await?;
    let names: Vec<&str> = tools.result()?["tools"]
        .as_array()
        .context("tools/list has no tools array")?
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"health_check"), "{names:?}");
    // The restored session is the same client (the handshake was replayed).
    let info = session_info(&second, &id).await?;
    assert_eq!(info["session_id"], id.as_str(), "{info}");
    assert_eq!(info["client"]["name"], "claude-code", "{info}");
    assert_eq!(info["client"]["version"], "2.0.1", "{info}");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after = row(&store, &id).await?;
    assert_eq!(after.status, "active", "{after:#?}");
    assert_eq!(after.disconnected_at, None);
    assert!(
        after.last_activity > flushed.last_activity,
        "last_activity did not move forward after the restore: {} then {}",
        flushed.last_activity,
        after.last_activity
    );
    assert!(
        after.last_activity >= resumed_at,
        "last_activity {} is older than the restored requests ({resumed_at})",
        after.last_activity
    );
    assert_eq!(
        after.connected_at, connected,
        "a restore is not a new session"
    );

    store.close().await;
    second.stop().await;
    Ok(())
}

/// SIGTERM is a stop, not a disconnect: the session stays active and keeps working on the next
/// process.
async fn session_survives_graceful_restart(db: TestDb) -> anyhow::Result<()> {
    let first = TestServer::start(&db).await?;
    let id = open_session(&first, "claude-code").await?;
    health_check(&first, &id).await?;
    let exit = first.shutdown().await?;
    assert!(
        exit.success(),
        "steward serve exited with {exit} on SIGTERM"
    );

    let store = open_store(&db).await?;
    let stopped = row(&store, &id).await?;
    assert_eq!(stopped.status, "active", "{stopped:#?}");
    assert_eq!(stopped.disconnected_at, None, "{stopped:#?}");
    assert_eq!(stopped.disconnect_reason, None, "{stopped:#?}");
    // The final flush on shutdown recorded the last activity (the health_check came after
    // initialize, so last_activity moved past connected_at).
    assert!(
        stopped.last_activity > stopped.connected_at,
        "the activity before SIGTERM was not flushed: {stopped:#?}"
    );

    let second = TestServer::start(&db).await?;
    health_check(&second, &id)
        .await
        .context("the old session id after a graceful restart")?;
    let info = session_info(&second, &id).await?;
    assert_eq!(info["client"]["name"], "claude-code", "{info}");
    assert_eq!(row(&store, &id).await?.status, "active");

    store.close().await;
    second.stop().await;
    Ok(())
}

/// A session whose inactivity timeout passed while no server ran is not restored, even before
/// any cleanup run marks it; nor is one revoked while no server ran.
async fn restore_refuses_ended_sessions(db: TestDb) -> anyhow::Result<()> {
    let first = TestServer::start(&db).await?;
    let id = open_session(&first, "claude-code").await?;
    let revoked = open_session(&first, "claude-code").await?;
    // Started while the sessions are fresh, so its first cleanup (at start) leaves them alone;
    // the next runs in an hour. It never holds them in memory.
    let second = TestServer::start_with(
        &db,
        &["--session-timeout", "3s", "--cleanup-interval", "1h"],
    )
    .await?;
    first.stop().await;
    steward_ok(&db, &["sessions", "revoke", &revoked]).await?;
    let reply = call_tool(&second, Some(&revoked), "health_check", json!({})).await?;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "a session revoked while no server ran was restored: {}",
        reply.text
    );
    let store = open_store(&db).await?;
    let last_activity = row(&store, &id).await?.last_activity;
    let timed_out_at = last_activity + chrono::Duration::milliseconds(3500);
    if let Ok(wait) = (timed_out_at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    let reply = call_tool(&second, Some(&id), "health_check", json!({})).await?;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "a session idle past --session-timeout was restored: {}",
        reply.text
    );
    // No cleanup ran since (the 404 came from the restore's own check), and the refused
    // restore did not revive the row.
    let r = row(&store, &id).await?;
    assert_eq!(r.status, "active", "{r:#?}");
    assert!(
        Utc::now() - r.last_activity >= chrono::Duration::seconds(3),
        "the refused restore touched last_activity: {r:#?}"
    );
    store.close().await;
    second.stop().await;
    Ok(())
}

/// Two replicas on one database: a session opened on A works on B; a revocation through the
/// CLI reaches both within `--revocation-poll` (+ one poll of slack).
/// A task written through one replica is in the very next read on the same replica and on
/// the other one (board reads go to the database, so there is nothing to wait for: the bound
/// of 100 ms the issue sets is checked as "the first read already shows it"), with the total
/// and the done count that come from the counts the migration's triggers keep, or (a text
/// query) that each replica remembers per board version.
async fn board_writes_show_on_every_replica_at_once(db: TestDb) -> anyhow::Result<()> {
    let a = TestServer::start(&db).await?;
    let b = TestServer::start(&db).await?;
    let (on_a, on_b) = (
        open_session(&a, "writer").await?,
        open_session(&b, "reader").await?,
    );
    let project = tool_output(
        &call_tool(
            &a,
            Some(&on_a),
            "manage_project",
            json!({"action": "create", "title": "Replicas"}),
        )
        .await?,
    )?;
    let project_id = project["project_id"]
        .as_str()
        .context("no project_id")?
        .to_string();
    let finds = [
        json!({"filter_by": "project", "filter_value": project_id}),
        json!({"query": "SEEN everywhere"}),
    ];
    // Each replica remembers the text query's totals before the writes.
    for (server, session) in [(&a, &on_a), (&b, &on_b)] {
        let find = finds[1].clone();
        let found = tool_output(&call_tool(server, Some(session), "find_tasks", find).await?)?;
        assert_eq!(found["total"], 0, "{found}");
    }
    let create = json!({"action": "create", "project_id": project_id, "title": "Seen everywhere"});
    let created = tool_output(&call_tool(&a, Some(&on_a), "manage_task", create).await?)?;
    let task_id = created["task_id"]
        .as_str()
        .context("no task_id")?
        .to_string();
    for (server, session, who) in [
        (&a, &on_a, "the writer's replica"),
        (&b, &on_b, "the other replica"),
    ] {
        for find in &finds {
            let found =
                tool_output(&call_tool(server, Some(session), "find_tasks", find.clone()).await?)?;
            assert_eq!(found["total"], 1, "{who}, {find}: {found}");
            assert_eq!(found["tasks"][0]["id"], task_id.as_str(), "{who}: {found}");
        }
    }
    let done = json!({"action": "update", "task_id": task_id, "status": "done"});
    tool_output(&call_tool(&b, Some(&on_b), "manage_task", done).await?)?;
    for (server, session, who) in [
        (&b, &on_b, "the writer's replica"),
        (&a, &on_a, "the other replica"),
    ] {
        for find in &finds {
            let found =
                tool_output(&call_tool(server, Some(session), "find_tasks", find.clone()).await?)?;
            assert_eq!(
                found["total"], 0,
                "{who}, {find}: the done task is hidden: {found}"
            );
            assert_eq!(found["closed_matches"], 1, "{who}, {find}: {found}");
        }
    }
    tokio::join!(a.stop(), b.stop());
    Ok(())
}

/// A successful tool result's text, as the server wrote it.
fn tool_text(reply: &Reply) -> anyhow::Result<String> {
    tool_output(reply)?;
    let result = reply.result()?;
    Ok(result["content"][0]["text"]
        .as_str()
        .context("no text content")?
        .to_string())
}

/// `tool` called twice on `server`: the second answer (remembered) is byte for byte the first
/// (made afresh, or remembered from before when nothing changed), parsed.
async fn read_twice(
    server: &TestServer,
    session: &str,
    tool: &str,
    arguments: &Value,
) -> anyhow::Result<Value> {
    let first = tool_text(&call_tool(server, Some(session), tool, arguments.clone()).await?)?;
    let second = tool_text(&call_tool(server, Some(session), tool, arguments.clone()).await?)?;
    ensure!(
        first == second,
        "{tool}: a second read differs:\n{first}\n{second}"
    );
    Ok(serde_json::from_str(&first)?)
}

/// The listed task with `id` in a `find_tasks` answer.
fn listed<'a>(found: &'a Value, id: &str) -> anyhow::Result<&'a Value> {
    found["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["id"] == id))
        .with_context(|| format!("task {id} not listed in {found}"))
}

/// Two replicas on one database, each remembering the answers of its board reads: every kind
/// of write through one replica — those that change no count (a claim, an order, blockers, a
/// project's title) included — shows in the very next read on the other, and a claim whose
/// lease runs out is ended (and recorded) by the next read although its answer was remembered.
async fn remembered_answers_follow_every_write_on_another_replica(
    db: TestDb,
) -> anyhow::Result<()> {
    let a = TestServer::start(&db).await?;
    let b = TestServer::start(&db).await?;
    let (on_a, on_b) = (
        open_session(&a, "writer").await?,
        open_session(&b, "reader").await?,
    );
    let create = json!({"action": "create", "title": "Remembered"});
    let project = tool_output(&call_tool(&a, Some(&on_a), "manage_project", create).await?)?;
    let project_id = project["project_id"].as_str().context("no project_id")?;
    let mut ids = Vec::new();
    for (title, order) in [("Alpha cache", 1), ("Beta cache", 2)] {
        let create = json!({"action": "create", "project_id": project_id, "title": title,
            "task_order": order});
        let created = tool_output(&call_tool(&a, Some(&on_a), "manage_task", create).await?)?;
        ids.push(
            created["task_id"]
                .as_str()
                .context("no task_id")?
                .to_string(),
        );
    }
    let (alpha, beta) = (ids[0].as_str(), ids[1].as_str());
    let find = json!({"query": "cache"});
    let on_a_found = read_twice(&a, &on_a, "find_tasks", &find).await?;
    let on_b_found = read_twice(&b, &on_b, "find_tasks", &find).await?;
    assert_eq!(on_a_found, on_b_found, "both replicas answer alike");
    assert_eq!(on_b_found["tasks"][0]["id"], beta, "{on_b_found}");

    // A claim changes no count; a one-second lease.
    let claim = json!({"task_id": alpha, "lease_seconds": 1});
    tool_output(&call_tool(&a, Some(&on_a), "claim_task", claim).await?)?;
    let found = read_twice(&b, &on_b, "find_tasks", &find).await?;
    assert_eq!(
        listed(&found, alpha)?["claimed_by"],
        on_a.as_str(),
        "{found}"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let found = read_twice(&b, &on_b, "find_tasks", &find).await?;
    assert_eq!(
        listed(&found, alpha)?["claimed_by"],
        Value::Null,
        "lease ran out: {found}"
    );
    let history = tool_output(
        &call_tool(
            &a,
            Some(&on_a),
            "get_task_history",
            json!({"task_id": alpha}),
        )
        .await?,
    )?;
    let ended = history["history"]
        .as_array()
        .context("no history")?
        .iter()
        .any(|row| row["field"] == "claimed_by" && row["reason"] == "lease_expired");
    assert!(ended, "the read recorded the claim's end: {history}");

    // An order and blockers change no count either.
    let order = json!({"action": "update", "task_id": alpha, "task_order": 10});
    tool_output(&call_tool(&b, Some(&on_b), "manage_task", order).await?)?;
    let found = read_twice(&a, &on_a, "find_tasks", &find).await?;
    assert_eq!(found["tasks"][0]["id"], alpha, "the new order: {found}");
    let blockers = json!({"action": "update", "task_id": beta, "blocked_by": [alpha]});
    tool_output(&call_tool(&a, Some(&on_a), "manage_task", blockers).await?)?;
    let found = read_twice(&b, &on_b, "find_tasks", &find).await?;
    assert_eq!(
        listed(&found, beta)?["blocked_by"],
        json!([alpha]),
        "{found}"
    );

    // Projects are remembered too.
    let projects = json!({});
    let found = read_twice(&b, &on_b, "find_projects", &projects).await?;
    assert_eq!(found["projects"][0]["title"], "Remembered", "{found}");
    let rename = json!({"action": "update", "project_id": project_id, "title": "Renamed"});
    tool_output(&call_tool(&a, Some(&on_a), "manage_project", rename).await?)?;
    let found = read_twice(&b, &on_b, "find_projects", &projects).await?;
    assert_eq!(found["projects"][0]["title"], "Renamed", "{found}");

    // And documents: each write on one replica is in the other's next read, the type and
    // text filters' answers included.
    let all = json!({"project_id": project_id});
    let specs = json!({"project_id": project_id, "document_type": "spec", "query": "cache"});
    fn titles(found: &Value) -> Vec<&str> {
        common::listed(found, "documents", "title")
    }
    for (server, session) in [(&a, &on_a), (&b, &on_b)] {
        for find in [&all, &specs] {
            let found = read_twice(server, session, "find_documents", find).await?;
            assert!(titles(&found).is_empty(), "{found}");
        }
    }
    let create = json!({"action": "create", "project_id": project_id, "title": "Cache spec",
        "document_type": "spec", "content": {"v": 1}});
    let created = tool_output(&call_tool(&a, Some(&on_a), "manage_document", create).await?)?;
    let document_id = created["document_id"].as_str().context("no document_id")?;
    for find in [&all, &specs] {
        let found = read_twice(&b, &on_b, "find_documents", find).await?;
        assert_eq!(
            titles(&found),
            ["Cache spec"],
            "created on a, {find}: {found}"
        );
    }
    let rename = json!({"action": "update", "project_id": project_id, "document_id": document_id,
        "title": "Cache design", "document_type": "design"});
    tool_output(&call_tool(&b, Some(&on_b), "manage_document", rename).await?)?;
    let found = read_twice(&a, &on_a, "find_documents", &all).await?;
    assert_eq!(titles(&found), ["Cache design"], "updated on b: {found}");
    let found = read_twice(&a, &on_a, "find_documents", &specs).await?;
    assert!(titles(&found).is_empty(), "no longer a spec: {found}");
    let delete = json!({"action": "delete", "project_id": project_id, "document_id": document_id});
    tool_output(&call_tool(&a, Some(&on_a), "manage_document", delete).await?)?;
    let found = read_twice(&b, &on_b, "find_documents", &all).await?;
    assert!(titles(&found).is_empty(), "deleted on a: {found}");
    tokio::join!(a.stop(), b.stop());
    Ok(())
}

async fn replicas_share_sessions_and_revocation(db: TestDb) -> anyhow::Result<()> {
    const FLAGS: &[&str] = &["--revocation-poll", "500ms"];
    let a = TestServer::start_with(&db, FLAGS).await?;
    let b = TestServer::start_with(&db, FLAGS).await?;
    let id = open_session(&a, "claude-code").await?;
    health_check(&a, &id).await?;
    health_check(&b, &id)
        .await
        .context("replica B, session from A")?;
    let info = session_info(&b, &id).await?;
    assert_eq!(info["client"]["name"], "claude-code", "{info}");
    health_check(&a, &id).await?;

    let revoked_at = Instant::now();
    let stdout = steward_ok(&db, &["sessions", "revoke", &id]).await?;
    assert!(
        stdout.to_lowercase().contains("revoked"),
        "`steward sessions revoke` should say it revoked the session: {stdout:?}"
    );
    let (on_a, on_b) = tokio::join!(
        until_404(&a, &id, REVOCATION_SLACK),
        until_404(&b, &id, REVOCATION_SLACK)
    );
    let (on_a, on_b) = (on_a.context("replica A")?, on_b.context("replica B")?);
    let total = revoked_at.elapsed();
    eprintln!("revocation reached A after {on_a:?}, B after {on_b:?} (total {total:?})");
    // Bound: revocation poll (500 ms) + one poll of slack, plus 1 s for process scheduling.
    assert!(
        total <= REVOCATION_SLACK,
        "revocation took {total:?} to reach both replicas (bound: 1 s + slack)"
    );

    let store = open_store(&db).await?;
    let r = row(&store, &id).await?;
    assert_eq!(r.status, "revoked", "{r:#?}");
    assert_eq!(r.disconnect_reason.as_deref(), Some("revoked"), "{r:#?}");
    assert!(r.disconnected_at.is_some(), "{r:#?}");

    // Revoking again, or an id that never existed, is an error (exit 1) with a message.
    for other in [id.clone(), unknown_session_id()] {
        let output = steward_cli(&db, &["sessions", "revoke", &other]).await?;
        assert_eq!(
            output.status.code(),
            Some(1),
            "revoking a session that is not live must exit 1: {output:?}"
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!said.trim().is_empty(), "no message from a failed revoke");
    }
    assert_eq!(row(&store, &id).await?.status, "revoked");

    // Both replicas still serve new sessions.
    let fresh = open_session(&b, "claude-code").await?;
    health_check(&a, &fresh).await?;

    store.close().await;
    tokio::join!(a.stop(), b.stop());
    Ok(())
}

/// A client's first requests on a replica that does not hold its session often arrive
/// together (parallel tool calls after a failover or restart): every one must succeed, the
/// session being restored once.
async fn concurrent_first_requests_on_another_replica(db: TestDb) -> anyhow::Result<()> {
    // The race is narrow (a request that found the session absent must reach rmcp's restore
    // after another request's restore has ended): several rounds of fresh sessions, each
    // with many parallel first requests, so it shows in most runs without the fix.
    const ROUNDS: usize = 6;
    const SESSIONS: usize = 8;
    const PARALLEL: usize = 16;
    // All from one address: the per-address rate limit would answer 429 to many of them.
    const UNLIMITED: &[&str] = &["--rate-limit", "0"];
    let a = TestServer::start_with(&db, UNLIMITED).await?;
    let b = TestServer::start_with(&db, UNLIMITED).await?;
    let mut failures = Vec::new();
    for _ in 0..ROUNDS {
        let mut ids = Vec::new();
        for _ in 0..SESSIONS {
            ids.push(open_session(&a, "claude-code").await?);
        }
        // One client for the burst, as a real client sends parallel calls (a connection per
        // call in flight). A client built per call, in this one task that polls them all,
        // would leave its first connections silent while it builds the others; on a loaded
        // machine that outlasts the server's header deadline, which rightly closes them.
        let replica = &raw(&b);
        let calls = ids.iter().flat_map(|id| {
            (0..PARALLEL).map(move |_| async move {
                let reply = call_tool_with(replica, Some(id), "health_check", json!({})).await;
                (id, reply.and_then(|reply| tool_output(&reply)))
            })
        });
        for (id, output) in futures::future::join_all(calls).await {
            if let Err(error) = output {
                failures.push(format!("{}…: {error:#}", &id[..8]));
            }
        }
        // Whatever happened, a later request must find the session (it is live in the
        // database).
        for id in &ids {
            let status = status_of(&b, id).await?;
            if status != StatusCode::OK {
                failures.push(format!(
                    "{}…: a later, single request answered {status}",
                    &id[..8]
                ));
            }
        }
    }
    ensure!(
        failures.is_empty(),
        "{} of {} parallel first requests on replica B failed:\n{}",
        failures.len(),
        ROUNDS * SESSIONS * PARALLEL,
        failures.join("\n")
    );
    tokio::join!(a.stop(), b.stop());
    Ok(())
}

/// A client holding the standalone GET stream of a session loses it when the session is
/// revoked, on the replica that holds the stream, within the revocation bound.
async fn revocation_closes_open_streams(db: TestDb) -> anyhow::Result<()> {
    const FLAGS: &[&str] = &["--revocation-poll", "500ms"];
    let a = TestServer::start_with(&db, FLAGS).await?;
    let b = TestServer::start_with(&db, FLAGS).await?;
    let id = open_session(&a, "claude-code").await?;
    let mut stream = http_streaming()
        .get(b.mcp_url())
        .header("Accept", "text/event-stream")
        .header("Mcp-Session-Id", &id)
        .send()
        .await
        .context("GET /mcp on replica B")?;
    assert_eq!(stream.status(), StatusCode::OK, "GET stream on replica B");

    let revoked_at = Instant::now();
    steward_ok(&db, &["sessions", "revoke", &id]).await?;
    // The stream must end (EOF or a broken connection), not stay open for a revoked session.
    let ended = tokio::time::timeout(SOON, async {
        loop {
            match stream.chunk().await {
                Ok(Some(_keep_alive_or_event)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    let took = revoked_at.elapsed();
    ensure!(
        ended.is_ok(),
        "the GET stream of a revoked session was still open {SOON:?} after the revocation"
    );
    assert!(
        took <= REVOCATION_SLACK,
        "the GET stream closed {took:?} after the revocation"
    );
    assert_eq!(status_of(&b, &id).await?, StatusCode::NOT_FOUND);
    until_404(&a, &id, REVOCATION_SLACK).await?;
    tokio::join!(a.stop(), b.stop());
    Ok(())
}

/// Unknown id → 404, no id → 400, DELETE → 204 then 404, with the row saying `client_delete`.
async fn unknown_missing_and_deleted_ids(db: TestDb) -> anyhow::Result<()> {
    let server = TestServer::start(&db).await?;

    let unknown = call_tool(
        &server,
        Some(&unknown_session_id()),
        "health_check",
        json!({}),
    )
    .await?;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    let error = unknown.message["error"]["message"]
        .as_str()
        .with_context(|| format!("404 without a JSON-RPC error: {}", unknown.text))?;
    assert!(
        error.contains("initialize"),
        "a 404 should say to start a new session: {error}"
    );

    let missing = tools_list(&server, None).await?;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.text);

    let id = open_session(&server, "claude-code").await?;
    health_check(&server, &id).await?;
    let deleted = delete(&server, &id).await?;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    let after = call_tool(&server, Some(&id), "health_check", json!({})).await?;
    assert_eq!(after.status, StatusCode::NOT_FOUND, "{}", after.text);
    assert_eq!(
        tools_list(&server, Some(&id)).await?.status,
        StatusCode::NOT_FOUND
    );

    let store = open_store(&db).await?;
    let r = row(&store, &id).await?;
    assert_eq!(r.status, "disconnected", "{r:#?}");
    assert_eq!(
        r.disconnect_reason.as_deref(),
        Some("client_delete"),
        "{r:#?}"
    );
    assert!(r.disconnected_at.is_some(), "{r:#?}");

    // After a restart the deleted id stays gone (it is not restored from the database).
    server.stop().await;
    let server = TestServer::start(&db).await?;
    let after_restart = call_tool(&server, Some(&id), "health_check", json!({})).await?;
    assert_eq!(
        after_restart.status,
        StatusCode::NOT_FOUND,
        "{}",
        after_restart.text
    );

    // DELETE of a session this process does not hold in memory (opened before a restart)
    // still ends it.
    let other = open_session(&server, "claude-code").await?;
    server.stop().await;
    let server = TestServer::start(&db).await?;
    let deleted = delete(&server, &other).await?;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    let r = row(&store, &other).await?;
    assert_eq!(r.status, "disconnected", "{r:#?}");
    assert_eq!(
        r.disconnect_reason.as_deref(),
        Some("client_delete"),
        "{r:#?}"
    );
    let reply = call_tool(&server, Some(&other), "health_check", json!({})).await?;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);

    store.close().await;
    server.stop().await;
    Ok(())
}

/// DELETE on replica B ends a session replica A holds in memory, within the revocation bound.
async fn delete_on_one_replica_ends_the_session_everywhere(db: TestDb) -> anyhow::Result<()> {
    const FLAGS: &[&str] = &["--revocation-poll", "500ms"];
    let a = TestServer::start_with(&db, FLAGS).await?;
    let b = TestServer::start_with(&db, FLAGS).await?;
    let id = open_session(&a, "claude-code").await?;
    health_check(&a, &id).await?;
    health_check(&b, &id).await?;

    let deleted_at = Instant::now();
    let deleted = delete(&b, &id).await?;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert_eq!(status_of(&b, &id).await?, StatusCode::NOT_FOUND);
    until_404(&a, &id, REVOCATION_SLACK).await?;
    let took = deleted_at.elapsed();
    assert!(
        took <= REVOCATION_SLACK,
        "the DELETE took {took:?} to reach the other replica"
    );

    let store = open_store(&db).await?;
    let r = row(&store, &id).await?;
    assert_eq!(r.status, "disconnected", "{r:#?}");
    assert_eq!(
        r.disconnect_reason.as_deref(),
        Some("client_delete"),
        "{r:#?}"
    );

    store.close().await;
    tokio::join!(a.stop(), b.stop());
    Ok(())
}

/// Requests in flight while their session ends (here a DELETE on the same replica; a
/// revocation or expiry takes the same path) are answered 200 or 404, never 500: rmcp reports a
/// session closed between its existence check and its use as a server error, which would make
/// a client retry instead of starting a new session.
async fn requests_racing_the_end_of_their_session_get_404(db: TestDb) -> anyhow::Result<()> {
    let server = TestServer::start_with(&db, &["--rate-limit", "0"]).await?;
    for round in 0..5 {
        let id = open_session(&server, "claude-code").await?;
        health_check(&server, &id).await?;
        let calls = (0..24).map(|_| status_of(&server, &id));
        let (statuses, deleted) = tokio::join!(futures::future::join_all(calls), async {
            tokio::time::sleep(Duration::from_millis(2 * round)).await;
            delete(&server, &id).await
        });
        ensure!(
            deleted?.status == StatusCode::NO_CONTENT,
            "round {round}: the DELETE was refused"
        );
        for status in statuses {
            let status = status?;
            ensure!(
                status == StatusCode::OK || status == StatusCode::NOT_FOUND,
                "round {round}: a request racing its session's end was answered {status}"
            );
        }
        ensure!(status_of(&server, &id).await? == StatusCode::NOT_FOUND);
    }
    server.stop().await;
    Ok(())
}

/// `--idle-after 1s --session-timeout 3s`: idle after a second of silence (still usable, and
/// active again on use), disconnected (`timeout_no_activity`) after three, then 404; every
/// cleanup run is recorded and shown in `/health`.
async fn idle_then_active_then_timed_out(db: TestDb) -> anyhow::Result<()> {
    let server = TestServer::start_with(
        &db,
        &[
            "--idle-after",
            "1s",
            "--session-timeout",
            "3s",
            "--cleanup-interval",
            "500ms",
            "--revocation-poll",
            "500ms",
        ],
    )
    .await?;
    let id = open_session(&server, "claude-code").await?;
    let opened = Instant::now();
    let store = open_store(&db).await?;

    let idle = row_when(&store, &id, Duration::from_secs(4), "idle", |r| {
        r.status == "idle"
    })
    .await?;
    let idle_after = opened.elapsed();
    assert!(
        idle_after >= Duration::from_millis(900),
        "the session was labelled idle after only {idle_after:?}"
    );
    assert_eq!(idle.disconnected_at, None);

    // Idle sessions are fully usable, and using one makes it active again.
    // Taken before the request: activity is stamped when the request arrives.
    let used_at = Utc::now();
    health_check(&server, &id)
        .await
        .context("an idle session must stay usable")?;
    let used = Instant::now();
    let active = row_when(&store, &id, Duration::from_secs(3), "active again", |r| {
        r.status == "active"
    })
    .await?;
    assert!(
        active.last_activity >= used_at - chrono::Duration::milliseconds(100),
        "the request while idle was not recorded: {active:#?}"
    );

    // Silence past the timeout: disconnected, then 404.
    let ended = row_when(&store, &id, Duration::from_secs(8), "disconnected", |r| {
        r.status == "disconnected"
    })
    .await?;
    let ended_after = used.elapsed();
    assert_eq!(
        ended.disconnect_reason.as_deref(),
        Some("timeout_no_activity"),
        "{ended:#?}"
    );
    let disconnected_at = ended.disconnected_at.context("no disconnected_at")?;
    assert!(
        disconnected_at - ended.last_activity >= chrono::Duration::seconds(3),
        "timed out before 3 s without activity: {ended:#?}"
    );
    assert!(
        ended_after >= Duration::from_millis(2900),
        "timed out {ended_after:?} after the last request"
    );
    until_404(&server, &id, Duration::from_secs(3)).await?;
    let r = row(&store, &id).await?;
    assert_eq!(
        r.status, "disconnected",
        "a request revived an ended session: {r:#?}"
    );

    let (runs, idled, timed_out, _expired, failed) = cleanup_totals(&store).await?;
    assert!(
        runs >= 5,
        "only {runs} cleanup runs in ~5 s at a 500 ms interval"
    );
    assert!(idled >= 1, "no cleanup run counted the idled session");
    assert!(
        timed_out >= 1,
        "no cleanup run counted the timed-out session"
    );
    assert_eq!(failed, 0, "a cleanup run failed");

    let health = health(&server).await?;
    let cleanup = &health["sessions"]["cleanup"];
    let started = cleanup["started_at"]
        .as_str()
        .with_context(|| format!("/health shows no cleanup run: {health}"))?;
    let started: DateTime<Utc> = started.parse()?;
    assert!(
        Utc::now() - started < chrono::Duration::seconds(3),
        "/health shows a stale cleanup run: {cleanup}"
    );
    for field in ["idled", "timed_out", "expired"] {
        assert!(
            cleanup[field].is_i64(),
            "/health cleanup lacks {field}: {cleanup}"
        );
    }
    assert!(cleanup["error"].is_null(), "{cleanup}");
    assert_eq!(health["sessions"]["write_failures"], 0, "{health}");

    store.close().await;
    server.stop().await;
    Ok(())
}

/// `--session-max-age 2s`: a session in constant use still ends (`expired`) after 2 s.
async fn sessions_expire_at_max_age(db: TestDb) -> anyhow::Result<()> {
    let server = TestServer::start_with(
        &db,
        &[
            "--session-max-age",
            "2s",
            "--cleanup-interval",
            "500ms",
            "--revocation-poll",
            "500ms",
        ],
    )
    .await?;
    let id = open_session(&server, "claude-code").await?;
    let opened = Instant::now();
    let mut served = 0;
    loop {
        match status_of(&server, &id).await? {
            StatusCode::OK => served += 1,
            StatusCode::NOT_FOUND => break,
            other => bail!("unexpected {other} while the session ages"),
        }
        ensure!(
            opened.elapsed() < Duration::from_secs(6),
            "the session still works {:?} after initialize with --session-max-age 2s",
            opened.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_millis(1900),
        "the session ended after only {lived:?}"
    );
    assert!(
        served >= 5,
        "only {served} requests were served before expiry"
    );

    let store = open_store(&db).await?;
    let r = row(&store, &id).await?;
    assert_eq!(r.status, "disconnected", "{r:#?}");
    assert_eq!(r.disconnect_reason.as_deref(), Some("expired"), "{r:#?}");
    let (_, _, _, expired, _) = cleanup_totals(&store).await?;
    assert!(expired >= 1, "no cleanup run counted the expiry");

    store.close().await;
    server.stop().await;
    Ok(())
}

/// `steward sessions list|show` (JSON and table) show what the server recorded.
async fn sessions_cli_lists_and_shows(db: TestDb) -> anyhow::Result<()> {
    let server = TestServer::start(&db).await?;
    let id = open_session(&server, "claude-code").await?;
    let cursor = open_session(&server, "cursor-vscode").await?;
    let deleted = delete(&server, &cursor).await?;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    fn ids(list: &Value) -> Vec<&str> {
        common::listed(list, "sessions", "session_id")
    }

    let all = steward_json(&db, &["sessions", "list", "--json"]).await?;
    assert_eq!(all["total"], 2, "{all}");
    let listed = all["sessions"]
        .as_array()
        .context("list --json has no sessions array")?
        .iter()
        .find(|r| r["session_id"] == id.as_str())
        .with_context(|| format!("the session is missing from list --json: {all}"))?;
    assert_eq!(listed["client_name"], "claude-code", "{listed}");
    assert_eq!(listed["client_version"], "2.0.1", "{listed}");
    assert_eq!(listed["client_type"], "Claude Code", "{listed}");
    assert_eq!(listed["status"], "active", "{listed}");
    assert_eq!(listed["kind"], "session", "{listed}");
    assert_eq!(listed["protocol_version"], PROTOCOL, "{listed}");

    let active = steward_json(&db, &["sessions", "list", "--status", "active", "--json"]).await?;
    assert_eq!(ids(&active), vec![id.clone()], "{active}");
    assert_eq!(active["total"], 1, "{active}");
    let gone = steward_json(
        &db,
        &["sessions", "list", "--status", "disconnected", "--json"],
    )
    .await?;
    assert_eq!(ids(&gone), vec![cursor.clone()], "{gone}");
    let cursors = steward_json(
        &db,
        &["sessions", "list", "--client-type", "Cursor", "--json"],
    )
    .await?;
    assert_eq!(ids(&cursors), vec![cursor.clone()], "{cursors}");
    let by_kind = steward_json(&db, &["sessions", "list", "--kind", "session", "--json"]).await?;
    assert_eq!(by_kind["total"], 2, "{by_kind}");
    let none = steward_json(&db, &["sessions", "list", "--kind", "logical", "--json"]).await?;
    assert_eq!(none["total"], 0, "{none}");
    assert_eq!(ids(&none), Vec::<String>::new());
    let limited = steward_json(&db, &["sessions", "list", "--limit", "1", "--json"]).await?;
    assert_eq!(ids(&limited).len(), 1, "{limited}");
    assert_eq!(
        limited["total"], 2,
        "total counts every match, not the page: {limited}"
    );

    let shown = steward_json(&db, &["sessions", "show", &id, "--json"]).await?;
    assert_eq!(shown["session_id"], id.as_str(), "{shown}");
    assert_eq!(shown["client_name"], "claude-code", "{shown}");
    assert_eq!(shown["client_version"], "2.0.1", "{shown}");
    assert_eq!(shown["client_type"], "Claude Code", "{shown}");
    assert_eq!(shown["protocol_version"], PROTOCOL, "{shown}");
    assert_eq!(shown["status"], "active", "{shown}");
    assert!(shown["connected_at"].is_string(), "{shown}");
    assert!(shown["last_activity"].is_string(), "{shown}");
    assert!(shown["disconnected_at"].is_null(), "{shown}");
    let shown_deleted = steward_json(&db, &["sessions", "show", &cursor, "--json"]).await?;
    assert_eq!(shown_deleted["status"], "disconnected", "{shown_deleted}");
    assert_eq!(
        shown_deleted["disconnect_reason"], "client_delete",
        "{shown_deleted}"
    );

    let missing = steward_cli(&db, &["sessions", "show", &unknown_session_id()]).await?;
    assert!(
        !missing.status.success(),
        "`sessions show` of an unknown id must fail"
    );

    let table = steward_ok(&db, &["sessions", "list"]).await?;
    assert!(
        table.contains("claude-code"),
        "client name missing from the table:\n{table}"
    );
    assert!(
        table.contains(&id[..8]),
        "session id missing from the table:\n{table}"
    );
    let text = steward_ok(&db, &["sessions", "show", &id]).await?;
    assert!(text.contains(&id), "{text}");
    assert!(text.contains("claude-code"), "{text}");
    assert!(text.contains("Claude Code"), "{text}");

    server.stop().await;
    Ok(())
}

/// The contract: a usage error exits 2 with a message that says what to fix.
#[tokio::test]
async fn sessions_cli_rejects_an_unknown_status_as_a_usage_error() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Sqlite).await?;
    let output = steward_cli(&db, &["sessions", "list", "--status", "bogus"]).await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("active") && stderr.contains("revoked"),
        "the message should list the valid statuses: {stderr}"
    );
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown --status is a usage error: {output:?}"
    );
    Ok(())
}
