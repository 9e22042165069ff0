//! `steward check`: the seed's verification checklist (phases 0–8), run as a real MCP client
//! against a running server or one it spawns. One line per check; `N passed, N failed`; a
//! non-zero exit on any failure.

mod evidence;
mod target;

use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::config::CheckOptions;
use crate::mcp::client::{Client, PROTOCOL, Reply, initialize_request};
use crate::stdout::{StdoutError, errln, outln};
use crate::store::DatabaseUrl;
use evidence::Evidence;
use target::Spawned;

/// The name the check introduces itself with; phase 1 looks for it in the session row.
pub const CLIENT_NAME: &str = "steward-check";
/// A session id no server issued, for phase 4 (and excluded from phase 8's orphans).
const UNKNOWN_SESSION: &str = "steward-check-unknown-session";
/// How long to wait for the ledger writer (which flushes at least every 100 ms).
const LEDGER_WAIT: Duration = Duration::from_secs(10);

/// Counts and prints results.
#[derive(Default)]
struct Report {
    passed: usize,
    failed: usize,
    /// The first line that could not be written. The check still runs to its end, so a server
    /// it spawned stops as usual; [`Report::finish`] returns this error.
    unwritten: Option<StdoutError>,
}

impl Report {
    /// Prints one line of the report; after a failed write, nothing more is tried.
    fn line(&mut self, text: std::fmt::Arguments<'_>) {
        if self.unwritten.is_none()
            && let Err(error) = outln!("{text}")
        {
            self.unwritten = Some(error);
        }
    }

    /// Prints the tally, `failed` failures; returns whether there were none, or the first
    /// line that could not be written.
    fn finish(mut self, failed: usize) -> anyhow::Result<bool> {
        let passed = self.passed;
        self.line(format_args!("{passed} passed, {failed} failed"));
        match self.unwritten {
            Some(error) => Err(error.into()),
            None => Ok(failed == 0),
        }
    }

    fn check(
        &mut self,
        phase: u8,
        what: &str,
        ok: bool,
        expected: impl std::fmt::Display,
        seen: impl std::fmt::Display,
    ) -> bool {
        if ok {
            self.passed += 1;
            self.line(format_args!("✓ [{phase}] {what}: {seen}"));
        } else {
            self.failed += 1;
            self.line(format_args!(
                "✗ [{phase}] {what}: expected {expected}, saw {seen}"
            ));
        }
        ok
    }

    /// Checks that a JSON value the server sent is `true`.
    fn check_true(&mut self, phase: u8, what: &str, seen: &serde_json::Value) -> bool {
        self.check(phase, what, *seen == true, "true", seen)
    }

    /// Checks that there are `rows` and every one passes `test`.
    fn check_every(
        &mut self,
        phase: u8,
        what: &str,
        rows: &[&serde_json::Value],
        test: impl Fn(&serde_json::Value) -> bool,
    ) -> bool {
        let passing = rows.iter().filter(|row| test(row)).count();
        self.check(
            phase,
            what,
            passing == rows.len() && !rows.is_empty(),
            format!("{0} of {0}", rows.len()),
            format!("{passing} of {}", rows.len()),
        )
    }

    fn skip(&mut self, phase: u8, why: &str) {
        self.line(format_args!("- [{phase}] skipped: {why}"));
    }
}

/// Runs the check; returns whether everything passed.
pub async fn run(options: CheckOptions) -> anyhow::Result<bool> {
    let scratch = tempfile::tempdir()?;
    let mut spawned = None;
    let (url, database) = if options.spawn {
        let database = options
            .database
            .clone()
            .unwrap_or_else(|| DatabaseUrl::Sqlite {
                path: scratch.path().join("check.db"),
            });
        let server = Spawned::start(&database.unredacted(), &options.serve_args).await?;
        let url = server.mcp_url();
        spawned = Some(server);
        (url, Some(database))
    } else {
        (options.url.clone(), options.database.clone())
    };
    let evidence = match &database {
        Some(url) => Evidence::Database(crate::server::open_store(url).await?),
        None => Evidence::Api(Client::new(&url)),
    };
    let mut report = Report::default();
    report.line(format_args!(
        "steward check: {url} (verifying with {})",
        evidence.describe()
    ));
    let client = Client::new(&url).at_revision(PROTOCOL);
    let started = Utc::now() - chrono::Duration::seconds(1);

    phase0_health(&client, &mut report).await?;
    let Some(session) = phase1_session(&client, &evidence, &mut report).await? else {
        let failed = report.failed + 1;
        return report.finish(failed);
    };
    phase2_tracking(&client, &evidence, &session, &mut report).await?;
    phase3_tokens(&evidence, &session, &mut report).await?;
    phase4_protocol(&client, &mut report).await?;
    phase5_api(&client, &session, &mut report).await?;
    match (&mut spawned, &options.restart_cmd) {
        (Some(server), _) => {
            server.crash_and_restart().await?;
            phase6_restart(&client, &session, &mut report).await?;
        }
        (None, Some(command)) => {
            target::run_restart_cmd(command, client.base_url()).await?;
            phase6_restart(&client, &session, &mut report).await?;
        }
        (None, None) => report.skip(6, "restart recovery needs --spawn or --restart-cmd"),
    }
    if spawned.is_some() {
        phase7_cleanup(&client, &evidence, &mut report).await?;
    } else {
        report.skip(7, "background cleanup needs --spawn (short timeouts)");
    }
    phase8_orphans(&evidence, started, &mut report).await?;
    end_session(&client, &session).await;

    if let Some(server) = spawned {
        server.stop().await;
    }
    let failed = report.failed;
    report.finish(failed)
}

/// Ends the session the check opened, so a check of a running server leaves no live session
/// behind (the throwaway session of phase 4 ends itself; phase 7's is ended by the cleanup).
async fn end_session(client: &Client, session: &str) {
    match client.delete(session).await.map(|reply| reply.status) {
        Ok(status) if status.is_success() => {}
        Ok(status) => errln!("steward check: ending its session answered {status}"),
        Err(error) => errln!("steward check: could not end its session: {error:#}"),
    }
}

async fn phase0_health(client: &Client, report: &mut Report) -> anyhow::Result<()> {
    let (status, body) = client.get_json("/health").await?;
    report.check(
        0,
        "/health answers 200",
        status == StatusCode::OK,
        "200",
        status,
    );
    report.check_true(0, "database reachable", &body["database"]["reachable"]);
    let ledger = body["ledger"]["status"]
        .as_str()
        .unwrap_or("missing")
        .to_string();
    report.check(0, "ledger healthy", ledger == "ok", "ok", &ledger);
    report.check_true(
        0,
        "sessions and cleanup healthy",
        &body["sessions"]["healthy"],
    );
    Ok(())
}

/// `initialize`, then `notifications/initialized` when a session came back: the initialize reply.
async fn handshake(client: &Client) -> anyhow::Result<Reply> {
    let reply = client.initialize(PROTOCOL, CLIENT_NAME).await?;
    if let Some(session) = reply.session() {
        client.initialized(&session).await?;
    }
    Ok(reply)
}

async fn phase1_session(
    client: &Client,
    evidence: &Evidence,
    report: &mut Report,
) -> anyhow::Result<Option<String>> {
    let reply = handshake(client).await?;
    let Some(session) = reply.session() else {
        report.check(
            1,
            "initialize returns Mcp-Session-Id",
            false,
            "a session id",
            format!("HTTP {} without one", reply.status),
        );
        return Ok(None);
    };
    report.check(
        1,
        "initialize returns Mcp-Session-Id",
        true,
        "a session id",
        format!("{}…", &session[..session.len().min(12)]),
    );
    let row = evidence.session(&session).await?;
    let name = row
        .as_ref()
        .and_then(|r| r["client_name"].as_str())
        .unwrap_or("no row")
        .to_string();
    report.check(
        1,
        "session row records the client's name",
        name == CLIENT_NAME,
        CLIENT_NAME,
        &name,
    );
    Ok(Some(session))
}

/// Waits until the session has a ledger row for each of `tools` (the writer is asynchronous).
async fn wait_for_rows(
    evidence: &Evidence,
    session: &str,
    tools: &[&str],
) -> anyhow::Result<Vec<Value>> {
    let deadline = tokio::time::Instant::now() + LEDGER_WAIT;
    loop {
        let rows = evidence.requests(session).await?;
        let complete = tools.iter().all(|tool| !tool_rows(&rows, tool).is_empty());
        if complete || tokio::time::Instant::now() >= deadline {
            return Ok(rows);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tool_rows<'a>(rows: &'a [Value], tool: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["tool_name"] == tool).collect()
}

/// The recorded status of each of `tool`'s calls in `rows`.
fn tool_statuses(rows: &[Value], tool: &str) -> Vec<Value> {
    tool_rows(rows, tool)
        .iter()
        .map(|r| r["status"].clone())
        .collect()
}

async fn phase2_tracking(
    client: &Client,
    evidence: &Evidence,
    session: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let before = evidence.requests(session).await?.len();
    for (id, tool, args) in [
        (1, "health_check", json!({})),
        (2, "find_projects", json!({})),
        (3, "find_tasks", json!({})),
    ] {
        let reply = client.call(Some(session), id, tool, args).await?;
        let ok = reply.status == StatusCode::OK
            && reply.tool_json().is_some_and(|j| j["success"] == true);
        report.check(
            2,
            &format!("{tool} succeeds"),
            ok,
            "success: true",
            format!("HTTP {}", reply.status),
        );
    }
    let failing = client
        .call(
            Some(session),
            4,
            "manage_task",
            json!({ "action": "explode" }),
        )
        .await?;
    report.check(
        2,
        "a deliberately invalid call is a tool error",
        failing.is_tool_error(),
        "isError: true",
        failing.is_tool_error(),
    );

    let rows = wait_for_rows(
        evidence,
        session,
        &["health_check", "find_projects", "find_tasks", "manage_task"],
    )
    .await?;
    let new = rows.len().saturating_sub(before);
    report.check(
        2,
        "ledger rows for this session",
        new >= 4,
        "at least 4 new rows",
        new,
    );
    let integers = rows.iter().all(|r| {
        let (ms, us) = (r["duration_ms"].as_i64(), r["duration_us"].as_i64());
        matches!((ms, us), (Some(ms), Some(us)) if ms == us / 1000)
    });
    report.check(
        2,
        "durations are integers (ms = µs / 1000)",
        integers,
        "integer duration_ms and duration_us",
        integers,
    );
    for tool in ["health_check", "find_projects", "find_tasks"] {
        let statuses = tool_statuses(&rows, tool);
        report.check(
            2,
            &format!("{tool} recorded as success"),
            statuses.iter().any(|s| s == "success"),
            "success",
            json!(statuses),
        );
    }
    let failed = tool_statuses(&rows, "manage_task");
    report.check(
        2,
        "the failing call recorded as tool_error",
        failed.iter().any(|s| s == "tool_error"),
        "tool_error",
        json!(failed),
    );
    let (_, health) = client.get_json("/health").await?;
    let failures = health["ledger"]["failed_writes"]
        .as_u64()
        .unwrap_or(u64::MAX)
        .saturating_add(health["ledger"]["lost"].as_u64().unwrap_or(0));
    report.check(
        2,
        "no tracking failures counted by the server",
        failures == 0,
        0,
        failures,
    );
    Ok(())
}

async fn phase3_tokens(
    evidence: &Evidence,
    session: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let rows = evidence.requests(session).await?;
    let calls: Vec<_> = rows
        .iter()
        .filter(|r| r["method"] == "tools/call")
        .collect();
    report.check_every(3, "tool calls carry estimated tokens", &calls, |r| {
        r["total_tokens"].as_i64().unwrap_or(0) > 0
    });
    report.check_every(3, "tool calls carry an estimated cost", &calls, |r| {
        r["estimated_cost_usd"]
            .as_str()
            .and_then(|c| c.parse::<rust_decimal::Decimal>().ok())
            .is_some_and(|c| c > rust_decimal::Decimal::ZERO)
    });
    Ok(())
}

async fn phase4_protocol(client: &Client, report: &mut Report) -> anyhow::Result<()> {
    let list = json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/list" });
    let init = initialize_request(PROTOCOL, CLIENT_NAME, "0");
    let no_accept = client
        .post_with(init.to_string(), None, &[("accept", "application/json")])
        .await?;
    let names_header =
        no_accept.text.contains("Accept") && no_accept.text.contains("text/event-stream");
    report.check(
        4,
        "missing Accept type is refused, naming the header",
        no_accept.status == StatusCode::NOT_ACCEPTABLE && names_header,
        "406 naming Accept",
        format!("{} {}", no_accept.status, short(&no_accept.text)),
    );
    let unknown = client.post(&list, Some(UNKNOWN_SESSION)).await?;
    report.check(
        4,
        "unknown session id answers 404",
        unknown.status == StatusCode::NOT_FOUND,
        404,
        unknown.status,
    );
    let missing = client.post(&list, None).await?;
    report.check(
        4,
        "missing session id answers 400",
        missing.status == StatusCode::BAD_REQUEST,
        400,
        missing.status,
    );
    let throwaway = handshake(client).await?.session().unwrap_or_default();
    let deleted = client.delete(&throwaway).await?.status;
    let after = client.post(&list, Some(&throwaway)).await?;
    report.check(
        4,
        "DELETE ends the session",
        deleted.is_success() && after.status == StatusCode::NOT_FOUND,
        "DELETE 2xx, then 404",
        format!("{deleted}, then {}", after.status),
    );
    Ok(())
}

async fn phase5_api(client: &Client, session: &str, report: &mut Report) -> anyhow::Result<()> {
    let (status, body) = client.get_json(&format!("/api/sessions/{session}")).await?;
    let name = body["session"]["client_name"]
        .as_str()
        .unwrap_or("missing")
        .to_string();
    report.check(
        5,
        "the API returns this session",
        status == StatusCode::OK && name == CLIENT_NAME,
        CLIENT_NAME,
        format!("{status} {name}"),
    );
    let count = body["requests"].as_array().map_or(0, Vec::len);
    report.check(
        5,
        "the API returns its requests",
        count >= 4,
        "at least 4",
        count,
    );
    Ok(())
}

async fn phase6_restart(client: &Client, session: &str, report: &mut Report) -> anyhow::Result<()> {
    let reply = client
        .call(Some(session), 60, "health_check", json!({}))
        .await?;
    let ok =
        reply.status == StatusCode::OK && reply.tool_json().is_some_and(|j| j["success"] == true);
    report.check(
        6,
        "after a crash and restart the old session id works without initialize",
        ok,
        "HTTP 200, success",
        format!("HTTP {} {}", reply.status, short(&reply.text)),
    );
    Ok(())
}

async fn phase7_cleanup(
    client: &Client,
    evidence: &Evidence,
    report: &mut Report,
) -> anyhow::Result<()> {
    let idle = handshake(client).await?.session().unwrap_or_default();
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(target::SPAWN_SESSION_TIMEOUT_SECS + 10);
    let mut row = evidence.session(&idle).await?;
    while tokio::time::Instant::now() < deadline
        && row.as_ref().is_none_or(|r| r["status"] != "disconnected")
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
        row = evidence.session(&idle).await?;
    }
    let seen = row.as_ref().map_or("no row".to_string(), |r| {
        format!("{} / {}", r["status"], r["disconnect_reason"])
    });
    let ok = row.as_ref().is_some_and(|r| {
        r["status"] == "disconnected" && r["disconnect_reason"] == "timeout_no_activity"
    });
    report.check(
        7,
        "an idle session is disconnected for inactivity",
        ok,
        "disconnected / timeout_no_activity",
        seen,
    );
    let (_, health) = client.get_json("/health").await?;
    let run = &health["sessions"]["cleanup"];
    report.check(
        7,
        "cleanup runs are recorded",
        run["started_at"].is_string() && run["error"].is_null(),
        "a recorded run without error",
        short(&run.to_string()),
    );
    Ok(())
}

async fn phase8_orphans(
    evidence: &Evidence,
    since: chrono::DateTime<Utc>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let orphans: Vec<String> = evidence
        .orphans(since)
        .await?
        .into_iter()
        .filter(|id| id != UNKNOWN_SESSION)
        .collect();
    report.check(
        8,
        "every ledger row of the check belongs to a known session",
        orphans.is_empty(),
        "no orphans",
        json!(orphans),
    );
    Ok(())
}

fn short(text: &str) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() > 120 {
        format!("{}…", one_line.chars().take(120).collect::<String>())
    } else {
        one_line
    }
}
