//! The default (async) ledger survives `kill -9`: the real `steward` binary is killed under
//! load, restarted, and every request that got an answer has exactly one row in
//! `mcp_requests` (read straight from the test database); an unclean stop shows in `/health`
//! and `/metrics`; a torn journal record is skipped, counted and reported while the rest
//! replays; a kill while the database refuses writes still ends with every row stored; and so
//! does a kill while PostgreSQL is unreachable, followed by a restart and a prompt SIGTERM
//! while it still is. A SIGTERM just after PostgreSQL was cut is prompt too, and the session's
//! activity it could not write is taken from the journal at the next start; `/health` and
//! `/metrics` answer at once while it is cut.
//!
//! Each scenario runs on SQLite and (when `STEWARD_TEST_POSTGRES_URL` is set) PostgreSQL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::proxy::Proxy;
use crate::common::raw::{self, Client};
use crate::common::{Backend, TestDb, TestServer, kill_9, test_on_each_backend};

/// Long enough for the slowest replay on a busy machine; only a failing test waits it out.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
/// Keeps every row in memory (never stored before the kill): all of them must come back
/// from the journal.
const NEVER_FLUSH: [&str; 2] = ["--ledger-flush-interval", "1h"];

test_on_each_backend!(
    kill_9_under_load_loses_no_answered_request,
    a_torn_last_record_is_skipped_counted_and_reported,
    kill_9_while_the_database_refuses_writes_loses_nothing,
);

// ---------------------------------------------------------------------------------------------

/// Rounds: rows partly stored before the kill (the default flush), then none stored (every
/// row comes from the journal). A clean stop between rounds is not reported as a crash.
///
/// With the default flush a kill can land just after the writer stored everything answered
/// so far (nothing pending, nothing to recover): that attempt still proves no answered call
/// was lost or stored twice, and the round runs again, up to [`ATTEMPTS`] times, until a kill
/// finds rows that only the journal holds.
async fn kill_9_under_load_loses_no_answered_request(db: TestDb) -> anyhow::Result<()> {
    let ledger = Ledger::open(&db).await?;
    let mut recovered = 0;
    for attempt in 0..ATTEMPTS {
        (_, recovered) = kill_under_load(&db, &ledger, 0, attempt, &[]).await?;
        if recovered > 0 {
            break;
        }
    }
    ensure!(
        recovered > 0,
        "round 0: nothing recovered in {ATTEMPTS} kills"
    );
    let (answered, recovered) = kill_under_load(&db, &ledger, 1, 0, &NEVER_FLUSH).await?;
    // Nothing was stored before the kill: every answered call came back from the journal.
    ensure!(
        recovered >= answered as u64,
        "{recovered} rows recovered for {answered} answered calls"
    );
    let server = TestServer::start(&db).await?;
    let (_, health) = health(&server).await?;
    assert!(health["ledger"]["recovery"].is_null(), "{health}");
    server.stop().await;
    Ok(())
}

/// Kills with the default flush run at most this often (see
/// [`kill_9_under_load_loses_no_answered_request`]).
const ATTEMPTS: usize = 3;

/// Starts the server (with `extra` arguments), loads it from 8 workers, kills it with
/// SIGKILL at a random moment, restarts it and checks that every answered call has exactly
/// one row and the unclean stop is reported; stops it cleanly. Returns the calls answered and
/// the rows recovered.
async fn kill_under_load(
    db: &TestDb,
    ledger: &Ledger,
    round: usize,
    attempt: usize,
    extra: &[&str],
) -> anyhow::Result<(usize, u64)> {
    // No rate limit: the calls go on until the kill (past the default burst, a 429 would end
    // a worker's calls and the writer would store everything before the kill).
    let args = [extra, &["--rate-limit", "0"][..]].concat();
    let server = TestServer::start_with(db, &args).await?;
    let (_, health) = health(&server).await?;
    ensure!(
        health["ledger"]["recovery"].is_null(),
        "round {round}: a clean start reports no recovery: {health}"
    );
    let raw = Client::new(&server.mcp_url());
    let session = raw::open_session(&raw).await?;
    let answered = Arc::new(Mutex::new(Vec::new()));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (raw, session, answered) = (raw.clone(), session.clone(), answered.clone());
        workers.spawn(async move {
            for n in 0..100_000 {
                let id = format!("r{round}.{attempt}-{worker}-{n}");
                let tool = ["find_projects", "health_check", "find_tasks"][n % 3];
                match raw.post(&tool_call(&id, tool), Some(&session)).await {
                    Ok(reply) if reply.message.get("result").is_some() => {
                        answered.lock().expect("lock").push(id)
                    }
                    _ => break,
                }
            }
        });
    }
    // Under way (however slow the machine), then at a random moment: mid-call or between.
    let deadline = Instant::now() + DEADLINE;
    while answered.lock().expect("lock").len() < 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(rand::random_range(0..300))).await;
    kill_9(server).await?;
    while let Some(joined) = workers.join_next().await {
        joined?;
    }
    let answered = answered.lock().expect("lock").clone();
    ensure!(answered.len() > 8, "round {round}: too few calls answered");

    let server = TestServer::start(db).await?;
    let counts = ledger.wait_for_ids(&answered).await?;
    let twice = stored_twice(&counts, &answered);
    ensure!(
        twice.is_empty(),
        "round {round}: rows stored twice: {twice:?}"
    );
    let (_, health) = recovery(&server).await?;
    let recovery = &health["ledger"]["recovery"];
    assert_eq!(recovery["unclean_shutdown"], true, "{health}");
    assert_eq!(recovery["unrecoverable_rows"], 0, "{health}");
    let recovered = recovery["recovered_rows"].as_u64().unwrap_or(0);
    let metrics = metrics(&server).await?;
    assert!(
        metrics.contains("steward_unclean_shutdowns_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("steward_ledger_recovered_rows_total {recovered}")),
        "{metrics}"
    );
    assert!(
        server.stderr_output().contains("without a clean shutdown"),
        "a WARN line says so"
    );
    eprintln!(
        "round {round}.{attempt}: {} answered, {recovered} recovered",
        answered.len()
    );
    ensure!(server.shutdown().await?.success(), "a clean stop");
    Ok((answered.len(), recovered))
}

/// A record cut short at the end of the journal (a torn write) is skipped and reported; the
/// records before it replay.
async fn a_torn_last_record_is_skipped_counted_and_reported(db: TestDb) -> anyhow::Result<()> {
    let ledger = Ledger::open(&db).await?;
    let server = TestServer::start_with(&db, &NEVER_FLUSH).await?;
    let raw = Client::new(&server.mcp_url());
    let session = raw::open_session(&raw).await?;
    let ids: Vec<String> = (0..5).map(|n| format!("t{n}")).collect();
    for id in &ids {
        let reply = raw
            .post(&tool_call(id, "find_projects"), Some(&session))
            .await?;
        ensure!(reply.message.get("result").is_some(), "{reply:?}");
    }
    kill_9(server).await?;
    let segment = last_segment(&journal_dir(&db))?;
    // The file runs past its records (the journal maps it a window at a time): cut the last
    // record itself.
    let len = records_end(&std::fs::read(&segment)?);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)?
        .set_len(len - 7)?;

    let server = TestServer::start(&db).await?;
    let counts = ledger.wait_for_ids(&ids[..4]).await?;
    assert_eq!(counts.get("t4"), None, "the torn record is not stored");
    // The session's last_activity catches up with its last recovered request (written just
    // after the recovered rows are stored: polled, not read once).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (last_activity, last_request) = ledger.activity(&session).await?;
        if last_activity >= last_request {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "last_activity {last_activity} is before the last request {last_request}"
        );
        tokio::time::sleep(POLL).await;
    }
    let (status, health) = recovery(&server).await?;
    assert_eq!(status, StatusCode::OK, "{health}");
    let recovery = &health["ledger"]["recovery"];
    assert_eq!(recovery["unclean_shutdown"], true, "{health}");
    assert_eq!(recovery["unrecoverable_rows"], 1, "{health}");
    let reasons = recovery["unrecoverable_reasons"].to_string();
    assert!(reasons.contains("torn write"), "{health}");
    // initialize, notifications/initialized and four calls.
    assert_eq!(recovery["recovered_rows"], 6, "{health}");
    let metrics = metrics(&server).await?;
    assert!(
        metrics.contains("steward_ledger_unrecoverable_rows_total 1"),
        "{metrics}"
    );
    assert!(
        server.stderr_output().contains("could not be read back"),
        "an ERROR line says so"
    );
    server.stop().await;
    Ok(())
}

/// Killed while the database refuses ledger writes, restarted while it still does: the
/// journal's rows wait in the spill file (`/health` degraded), and land once it takes writes.
async fn kill_9_while_the_database_refuses_writes_loses_nothing(db: TestDb) -> anyhow::Result<()> {
    let ledger = Ledger::open(&db).await?;
    let server = TestServer::start(&db).await?;
    let raw = Client::new(&server.mcp_url());
    let session = raw::open_session(&raw).await?;
    ledger.block().await?;
    let ids: Vec<String> = (0..20).map(|n| format!("d{n}")).collect();
    for id in &ids {
        let reply = raw
            .post(&tool_call(id, "find_tasks"), Some(&session))
            .await?;
        ensure!(reply.message.get("result").is_some(), "{reply:?}");
    }
    kill_9(server).await?;

    let server = TestServer::start(&db).await?;
    let (status, health) = recovery(&server).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    let waiting = health["ledger"]["recovery"]["waiting_rows"].as_u64();
    ensure!(waiting >= Some(20), "rows wait in the spill file: {health}");
    assert!(
        health["ledger"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("blocked by test")),
        "the reason names the database's refusal: {health}"
    );
    ensure!(health["ledger"]["spilled"].as_u64() >= Some(20), "{health}");
    let counts = ledger.counts().await?;
    ensure!(
        !ids.iter().any(|id| counts.contains_key(id)),
        "stored while refused: {counts:?}"
    );

    ledger.unblock().await?;
    let counts = ledger.wait_for_ids(&ids).await?;
    let twice = stored_twice(&counts, &ids);
    ensure!(twice.is_empty(), "rows stored twice: {twice:?}");
    health_becomes(&server, StatusCode::OK).await?;
    server.stop().await;
    Ok(())
}

/// PostgreSQL only: a SQLite file is never unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_and_restart_while_the_database_is_unreachable() -> anyhow::Result<()> {
    crate::common::on_backend(Backend::Postgres, unreachable_database_story).await
}

/// The database unreachable (a forwarder in front of PostgreSQL, cut): Steward is killed while
/// it is and restarted while it still is. It starts anyway, `/health` and MCP replies say why,
/// and once the database is back every request answered before the kill has exactly one row.
async fn unreachable_database_story(db: TestDb) -> anyhow::Result<()> {
    let ledger = Ledger::open(&db).await?;
    let proxy = Proxy::start(&db.url).await?;
    let url = proxy.url(&db.url)?;
    let server = TestServer::start_at(&db, &url, &NEVER_FLUSH).await?;
    let raw = Client::new(&server.mcp_url());
    let session = raw::open_session(&raw).await?;
    let ids: Vec<String> = (0..20).map(|n| format!("u{n}")).collect();
    for id in &ids {
        let reply = raw
            .post(&tool_call(id, "find_tasks"), Some(&session))
            .await?;
        ensure!(reply.message.get("result").is_some(), "{reply:?}");
    }
    proxy.cut().await?;
    kill_9(server).await?;

    let server = TestServer::start_at(&db, &url, &[]).await?;
    let (status, health) = health(&server).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert!(
        health["problems"][0]
            .as_str()
            .is_some_and(|p| p.starts_with("database unreachable")),
        "{health}"
    );
    let refused = crate::common::http_client()
        .post(server.mcp_url())
        .header("accept", "application/json, text/event-stream")
        .json(&tool_call("refused", "find_tasks"))
        .send()
        .await?;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let refused: Value = refused.json().await?;
    assert_eq!(refused["error"]["code"], -32603, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("database unreachable")),
        "{refused}"
    );
    let counts = ledger.counts().await?;
    ensure!(
        !ids.iter().any(|id| counts.contains_key(id)),
        "stored while unreachable: {counts:?}"
    );
    // A stop while it still is does not wait for it (`shutdown` allows 10 s; the ledger's
    // write timeout alone is 10 s): the rows wait in the journal for the next start.
    ensure!(server.shutdown().await?.success(), "a clean stop");
    let server = TestServer::start_at(&db, &url, &[]).await?;

    proxy.restore().await?;
    let counts = ledger.wait_for_ids(&ids).await?;
    let twice = stored_twice(&counts, &ids);
    ensure!(twice.is_empty(), "rows stored twice: {twice:?}");
    // The replay's report comes a little after its rows (once the sessions' last_activity is
    // caught up): wait for it as an operator would, then for the ok.
    recovery(&server).await?;
    let health = health_becomes(&server, StatusCode::OK).await?;
    let recovery = &health["ledger"]["recovery"];
    assert_eq!(recovery["unclean_shutdown"], true, "{health}");
    // initialize, notifications/initialized, the twenty calls and the refused one (journaled
    // by the run stopped while the database was unreachable).
    assert_eq!(recovery["recovered_rows"], 23, "{health}");
    let raw = Client::new(&server.mcp_url());
    let session = raw::open_session(&raw).await?;
    let reply = raw
        .post(&tool_call("after", "find_tasks"), Some(&session))
        .await?;
    ensure!(
        reply.message.get("result").is_some(),
        "served again: {reply:?}"
    );
    server.stop().await;
    Ok(())
}

/// PostgreSQL only: a SQLite file is never unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_while_the_database_is_cut_does_not_wait_for_it() -> anyhow::Result<()> {
    crate::common::on_backend(Backend::Postgres, stop_while_cut_story).await
}

/// PostgreSQL answers at start, then is cut; a request answered after the cut (its activity
/// and its row unwritten) and a SIGTERM: the stop does not wait out the pool's 5-s acquire
/// timeout, the log says the activity was not written, and once the database is back the next
/// start stores the row and moves the session's `last_activity` to it.
async fn stop_while_cut_story(db: TestDb) -> anyhow::Result<()> {
    let ledger = Ledger::open(&db).await?;
    let proxy = Proxy::start(&db.url).await?;
    let url = proxy.url(&db.url)?;
    let server = TestServer::start_at(&db, &url, &[]).await?;
    let raw = Client::new(&server.mcp_url());
    let session = raw::open_session(&raw).await?;
    let ids: Vec<String> = (0..5).map(|n| format!("c{n}")).collect();
    for id in &ids {
        let reply = raw
            .post(&tool_call(id, "find_tasks"), Some(&session))
            .await?;
        ensure!(reply.message.get("result").is_some(), "{reply:?}");
    }
    ledger.wait_for_ids(&ids).await?;
    // Its calls were all board calls: the session rests without rmcp's worker.
    let deadline = Instant::now() + DEADLINE;
    while health(&server).await?.1["sessions"]["dormant"] != 1 {
        ensure!(Instant::now() < deadline, "the session never went dormant");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.cut().await?;
    // Answered from memory (the session is cached): activity noted, row journaled. A ping
    // needs rmcp, so the dormant session wakes, from the handshake held in memory.
    let ping = json!({ "jsonrpc": "2.0", "id": "ping-after-cut", "method": "ping" });
    let reply = raw.post(&ping, Some(&session)).await?;
    ensure!(reply.message.get("result").is_some(), "{reply:?}");
    let (_, after) = health(&server).await?;
    assert_eq!(after["sessions"]["woken_from_memory"], 1, "{after}");

    let pid = server.pid().context("the server has no pid")?;
    let asked = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    ensure!(kill.success(), "kill -TERM {pid}: {kill}");
    let logs = stderr_once(&server, "Steward stopped").await?;
    let took = asked.elapsed();
    ensure!(
        logs.contains("session activity not written at stop"),
        "the log says the activity waits: {logs}"
    );
    ensure!(
        logs.contains("these ledger rows wait in the journal"),
        "the log says the rows wait: {logs}"
    );
    // Before: ≥ 5 s (the activity write's pool acquire alone). Generous for a loaded machine.
    ensure!(
        took < Duration::from_secs(4),
        "the stop took {took:?}: {logs}"
    );
    ensure!(server.shutdown().await?.success(), "a clean stop");

    proxy.restore().await?;
    let server = TestServer::start_at(&db, &url, &[]).await?;
    let counts = ledger.wait_for_ids(&["ping-after-cut".to_string()]).await?;
    assert_eq!(counts.get("ping-after-cut"), Some(&1), "{counts:?}");
    let (last_activity, last_request) = ledger.activity(&session).await?;
    ensure!(
        last_activity >= last_request,
        "last_activity {last_activity} is before the last request {last_request}"
    );
    server.stop().await;
    Ok(())
}

/// PostgreSQL only: a SQLite file is never unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_and_metrics_answer_at_once_while_the_database_is_cut() -> anyhow::Result<()> {
    crate::common::on_backend(Backend::Postgres, health_while_cut_story).await
}

/// A pool retries a refused connection until its 5-s acquire timeout: `/health` took 5 s to
/// say PostgreSQL was down and `/metrics` 10 s (a Prometheus scrape's default timeout). Both
/// now wait at most 1 s for the database; each is asked three times (the first may meet a
/// pooled connection already broken, which fails at once anyway).
async fn health_while_cut_story(db: TestDb) -> anyhow::Result<()> {
    let proxy = Proxy::start(&db.url).await?;
    let url = proxy.url(&db.url)?;
    // Session cleanup every second, so runs fail during the cut and succeed after it: a
    // failed run must not keep `/health` degraded once the database is back.
    let server = TestServer::start_at(&db, &url, &["--cleanup-interval", "1s"]).await?;
    health_becomes(&server, StatusCode::OK).await?;
    proxy.cut().await?;
    // Under the pool's 5 s with room for a loaded machine; the limit is 1 s.
    let prompt = Duration::from_millis(4_000);
    for _ in 0..3 {
        let asked = Instant::now();
        let (status, body) = health(&server).await?;
        let took = asked.elapsed();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["database"]["reachable"], false, "{body}");
        ensure!(took < prompt, "/health took {took:?}: {body}");

        let asked = Instant::now();
        let text = metrics(&server).await?;
        let took = asked.elapsed();
        ensure!(
            text.lines().any(|l| l == "steward_database_up 0"),
            "/metrics says the database is up: {text}"
        );
        ensure!(took < prompt, "/metrics took {took:?}");
    }
    // Keep the database cut until a cleanup run has failed (its pool waits up to 5 s).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_, body) = health(&server).await?;
        if body["sessions"]["last_error"].is_string() {
            break;
        }
        ensure!(Instant::now() < deadline, "no cleanup run failed: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.restore().await?;
    let body = health_becomes(&server, StatusCode::OK).await?;
    assert_eq!(body["database"]["reachable"], true, "{body}");
    assert_eq!(body["sessions"]["healthy"], true, "{body}");
    server.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// The server's stderr once it holds `line` (waits up to [`DEADLINE`]).
async fn stderr_once(server: &TestServer, line: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let logs = server.stderr_output();
        if logs.contains(line) {
            return Ok(logs);
        }
        if Instant::now() >= deadline {
            bail!("no `{line}` in the server's log: {logs}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tool_call(id: &str, tool: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": { "name": tool, "arguments": {} },
    })
}

/// The ids among `ids` with more than one row.
fn stored_twice<'a>(counts: &HashMap<String, i64>, ids: &'a [String]) -> Vec<&'a String> {
    ids.iter()
        .filter(|id| counts.get(*id).copied().unwrap_or(0) > 1)
        .collect()
}

async fn health(server: &TestServer) -> anyhow::Result<(StatusCode, Value)> {
    let response = reqwest::get(format!("{}/health", server.base_url)).await?;
    let status = response.status();
    Ok((
        status,
        response.json().await.context("/health is not JSON")?,
    ))
}

/// Polls `/health` until it shows the start-up replay's outcome.
async fn recovery(server: &TestServer) -> anyhow::Result<(StatusCode, Value)> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) = health(server).await?;
        if !body["ledger"]["recovery"].is_null() {
            return Ok((status, body));
        }
        if Instant::now() >= deadline {
            bail!("/health shows no recovery: {body}");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn health_becomes(server: &TestServer, want: StatusCode) -> anyhow::Result<Value> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) = health(server).await?;
        if status == want {
            return Ok(body);
        }
        if Instant::now() >= deadline {
            bail!("/health still answers {status} (wanted {want}): {body}");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn metrics(server: &TestServer) -> anyhow::Result<String> {
    Ok(reqwest::get(format!("{}/metrics", server.base_url))
        .await?
        .text()
        .await?)
}

/// Where the server keeps its journal by default.
fn journal_dir(db: &TestDb) -> PathBuf {
    match db.backend {
        Backend::Sqlite => db.dir().join("steward.db.ledger-journal"),
        Backend::Postgres => db.dir().join("steward-ledger-journal"),
    }
}

/// The newest non-empty segment of the (single) slot.
fn last_segment(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let slot = dir.join("slot-0");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&slot)
        .with_context(|| format!("reading {}", slot.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "journal"))
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 8))
        .collect();
    segments.sort();
    segments.pop().context("no journal segment with records")
}

/// Where a stamped segment's records end: its header (magic and stamp), then records
/// (`[len: u32][crc32: u32][stamp: u64][payload]`) up to the first of another stamp.
fn records_end(segment: &[u8]) -> u64 {
    let word = |at: usize, n: usize| segment.get(at..at + n);
    let stamp = word(8, 8);
    let mut at = 16;
    while let Some(header) = word(at, 16)
        && Some(&header[8..]) == stamp
    {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        at += 16 + len as usize;
    }
    at as u64
}

/// The test database, read and changed with sqlx.
enum Ledger {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Ledger {
    async fn open(db: &TestDb) -> anyhow::Result<Ledger> {
        // Migrated by the store first, as the server would.
        crate::common::open_store(db).await?.close().await;
        Ok(match db.backend {
            Backend::Sqlite => Ledger::Sqlite(sqlx::SqlitePool::connect(&db.url).await?),
            Backend::Postgres => Ledger::Postgres(sqlx::PgPool::connect(&db.url).await?),
        })
    }

    /// Rows per JSON-RPC id.
    async fn counts(&self) -> anyhow::Result<HashMap<String, i64>> {
        let sql = "SELECT jsonrpc_id, COUNT(*) FROM mcp_requests \
                   WHERE jsonrpc_id IS NOT NULL GROUP BY jsonrpc_id";
        let rows: Vec<(String, i64)> = match self {
            Ledger::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
            Ledger::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
        };
        Ok(rows.into_iter().collect())
    }

    /// Waits until every id in `ids` has a row; returns the counts.
    async fn wait_for_ids(&self, ids: &[String]) -> anyhow::Result<HashMap<String, i64>> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let counts = self.counts().await?;
            let missing: Vec<&String> = ids.iter().filter(|id| !counts.contains_key(*id)).collect();
            if missing.is_empty() {
                return Ok(counts);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} of {} answered requests have no row, e.g. {:?}",
                    missing.len(),
                    ids.len(),
                    &missing[..missing.len().min(10)]
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A session's `last_activity` and the timestamp of its last ledger row.
    async fn activity(&self, session: &str) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>)> {
        let sessions = "SELECT last_activity FROM mcp_sessions WHERE session_id = $1";
        let requests = "SELECT timestamp FROM mcp_requests WHERE session_id = $1 ORDER BY timestamp DESC LIMIT 1";
        Ok(match self {
            Ledger::Sqlite(pool) => (
                sqlx::query_scalar(sessions)
                    .bind(session)
                    .fetch_one(pool)
                    .await?,
                sqlx::query_scalar(requests)
                    .bind(session)
                    .fetch_one(pool)
                    .await?,
            ),
            Ledger::Postgres(pool) => (
                sqlx::query_scalar(sessions)
                    .bind(session)
                    .fetch_one(pool)
                    .await?,
                sqlx::query_scalar(requests)
                    .bind(session)
                    .fetch_one(pool)
                    .await?,
            ),
        })
    }

    async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        match self {
            Ledger::Sqlite(pool) => {
                sqlx::raw_sql(sql).execute(pool).await?;
            }
            Ledger::Postgres(pool) => {
                sqlx::raw_sql(sql).execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Makes the database refuse every ledger INSERT (a trigger that raises).
    async fn block(&self) -> anyhow::Result<()> {
        self.execute(match self {
            Ledger::Sqlite(_) => {
                "CREATE TRIGGER block BEFORE INSERT ON mcp_requests \
                 BEGIN SELECT RAISE(ABORT, 'blocked by test'); END;"
            }
            Ledger::Postgres(_) => {
                "CREATE FUNCTION steward_block() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'blocked by test'; END $$; \
                 CREATE TRIGGER block BEFORE INSERT ON mcp_requests \
                 FOR EACH ROW EXECUTE FUNCTION steward_block();"
            }
        })
        .await
    }

    async fn unblock(&self) -> anyhow::Result<()> {
        self.execute(match self {
            Ledger::Sqlite(_) => "DROP TRIGGER block;",
            Ledger::Postgres(_) => {
                "DROP TRIGGER block ON mcp_requests; DROP FUNCTION steward_block();"
            }
        })
        .await
    }
}
