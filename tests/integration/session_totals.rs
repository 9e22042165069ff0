//! What each session cost: real MCP calls (one of them failing) summed per session from the
//! ledger, checked in `/api/sessions`, `/api/sessions/{id}` and `steward sessions list|show`
//! against the session's own ledger rows, on both engines.

use crate::common;

use std::time::Duration;

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use common::{InProcess, TestDb, call, connect, ledger_row, new_session, open_store, steward_cli};
use steward::ledger::LedgerRow;
use steward::store::Money;

common::test_on_each_backend!(
    totals_in_api_and_cli,
    totals_stop_at_the_largest_value_across_batches
);

async fn get(http: &reqwest::Client, server: &InProcess, path: &str) -> anyhow::Result<Value> {
    let response = http
        .get(format!("{}{path}", server.base_url))
        .send()
        .await?;
    ensure!(
        response.status() == 200,
        "GET {path}: {}",
        response.status()
    );
    Ok(response.json().await?)
}

/// The session of `client_type` (the only one), from `/api/sessions`.
async fn session_of(
    http: &reqwest::Client,
    server: &InProcess,
    client_type: &str,
) -> anyhow::Result<Value> {
    let list = get(http, server, "/api/sessions").await?;
    list["sessions"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["client_type"] == client_type))
        .cloned()
        .with_context(|| format!("no {client_type} session in {list}"))
}

/// `/api/sessions/{id}` once the ledger holds `tool_calls` tools/call rows of the session and
/// nothing more arrives: the ledger writer is asynchronous, and a session's other messages (its
/// standalone GET stream, say) may be stored after its calls, between two reads of the test.
/// Returns the last reading at the deadline, so the caller's assertions say what differed.
async fn session_once_stored(
    http: &reqwest::Client,
    server: &InProcess,
    id: &str,
    tool_calls: usize,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut previous = Value::Null;
    loop {
        let body = get(http, server, &format!("/api/sessions/{id}")).await?;
        let calls = body["requests"].as_array().map_or(0, |rows| {
            rows.iter().filter(|r| r["method"] == "tools/call").count()
        });
        let settled = calls >= tool_calls && body == previous;
        if settled || (calls >= tool_calls && tokio::time::Instant::now() >= deadline) {
            return Ok(body);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the ledger never held {tool_calls} tool calls of {id}: {body}"
        );
        previous = body;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The totals a session's ledger rows add up to, as the API should report them.
fn expected_totals(requests: &[Value]) -> anyhow::Result<Value> {
    let errors = requests
        .iter()
        .filter(|r| {
            ["error", "tool_error", "timeout"].contains(&r["status"].as_str().unwrap_or(""))
        })
        .count();
    let tokens: i64 = requests
        .iter()
        .filter_map(|r| r["total_tokens"].as_i64())
        .sum();
    let mut cost = Decimal::ZERO;
    for r in requests {
        if let Some(c) = r["estimated_cost_usd"].as_str() {
            cost += c
                .parse::<Decimal>()
                .with_context(|| format!("cost {c} is no decimal"))?;
        }
    }
    let times: Vec<DateTime<Utc>> = requests
        .iter()
        .filter_map(|r| r["timestamp"].as_str()?.parse().ok())
        .collect();
    Ok(json!({
        "requests": requests.len(),
        "errors": errors,
        "estimated_tokens": tokens,
        "estimated_cost_usd": cost.normalize().to_string(),
        "first_request_at": times.iter().min(),
        "last_request_at": times.iter().max(),
    }))
}

/// `totals` with its times parsed, so engines' text forms of the same instant compare equal.
fn comparable(totals: &Value) -> Value {
    let mut t = totals.clone();
    for key in ["first_request_at", "last_request_at"] {
        let at: Option<DateTime<Utc>> = totals[key].as_str().and_then(|s| s.parse().ok());
        t[key] = json!(at);
    }
    t
}

async fn cli_json(db: &TestDb, args: &[&str]) -> anyhow::Result<Value> {
    let output = steward_cli(db, &[args, &["--database", &db.url, "--json"]].concat()).await?;
    ensure!(output.status.success(), "steward {args:?} failed");
    Ok(serde_json::from_slice(&output.stdout)?)
}

async fn totals_in_api_and_cli(db: TestDb) -> anyhow::Result<()> {
    let server = InProcess::start(&db).await?;
    let http = crate::common::http_client();
    let claude = connect(&server.mcp_url(), "claude-code").await?;
    let cursor = connect(&server.mcp_url(), "cursor-vscode").await?;
    for _ in 0..3 {
        call(&claude, "find_projects", json!({})).await?;
    }
    let (failed, _) = call(&claude, "manage_task", json!({ "action": "explode" })).await?;
    ensure!(failed, "manage_task with an unknown action should fail");
    call(&cursor, "health_check", json!({})).await?;

    let claude_id = session_of(&http, &server, "Claude Code").await?["session_id"]
        .as_str()
        .context("no session id")?
        .to_string();
    let cursor_id = session_of(&http, &server, "Cursor").await?["session_id"]
        .as_str()
        .context("no session id")?
        .to_string();

    // The detail: totals match the session's own rows, the failing call among the errors.
    let shown = session_once_stored(&http, &server, &claude_id, 4).await?;
    let rows = shown["requests"].as_array().context("no requests")?;
    let totals = comparable(&shown["session"]["totals"]);
    assert_eq!(totals, expected_totals(rows)?, "{shown}");
    assert_eq!(totals["requests"], shown["request_count"], "{shown}");
    assert!(totals["errors"].as_i64() >= Some(1), "{totals}");
    assert!(totals["estimated_tokens"].as_i64() > Some(0), "{totals}");
    assert_ne!(totals["estimated_cost_usd"], "0", "{totals}");

    let other = session_once_stored(&http, &server, &cursor_id, 1).await?;
    let other_rows = other["requests"].as_array().context("no requests")?;
    let other_totals = comparable(&other["session"]["totals"]);
    assert_eq!(other_totals, expected_totals(other_rows)?, "{other}");
    assert_eq!(other_totals["errors"], 0, "{other}");

    // The list carries the same totals for every session of the page.
    let listed = session_of(&http, &server, "Claude Code").await?;
    assert_eq!(comparable(&listed["totals"]), totals, "{listed}");
    let listed_other = session_of(&http, &server, "Cursor").await?;
    assert_eq!(
        comparable(&listed_other["totals"]),
        other_totals,
        "{listed_other}"
    );

    // The CLI reads the same figures from the database.
    let list = cli_json(&db, &["sessions", "list"]).await?;
    let in_list = list["sessions"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["session_id"] == claude_id.as_str()))
        .with_context(|| format!("{claude_id} missing from {list}"))?;
    assert_eq!(comparable(&in_list["totals"]), totals, "{in_list}");
    let show = cli_json(&db, &["sessions", "show", &claude_id[..12]]).await?;
    assert_eq!(comparable(&show["totals"]), totals, "{show}");

    let table = steward_cli(&db, &["sessions", "list", "--database", &db.url]).await?;
    let table = String::from_utf8(table.stdout)?;
    let header = table.lines().next().unwrap_or_default();
    for column in ["REQUESTS", "ERRORS", "TOKENS", "COST (USD)"] {
        assert!(header.contains(column), "no {column} column: {table}");
    }
    let row = table
        .lines()
        .find(|l| l.starts_with(&claude_id[..16]))
        .with_context(|| format!("no row for {claude_id}: {table}"))?;
    let expected_cells = [
        totals["requests"].to_string(),
        totals["errors"].to_string(),
        totals["estimated_cost_usd"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ];
    for cell in expected_cells {
        assert!(
            row.split_whitespace().any(|c| c == cell),
            "no {cell} in {row}"
        );
    }
    let text = steward_cli(
        &db,
        &["sessions", "show", &claude_id, "--database", &db.url],
    )
    .await?;
    let text = String::from_utf8(text.stdout)?;
    let errors_line = text
        .lines()
        .find(|l| l.starts_with("errors "))
        .with_context(|| format!("no errors line: {text}"))?;
    assert!(
        errors_line.ends_with(&totals["errors"].to_string()),
        "{text}"
    );

    claude.cancel().await?;
    cursor.cancel().await?;
    server.stop().await;
    Ok(())
}

/// A session's totals, which the database adds batch to batch, stop at the largest value a
/// 64-bit column holds when a row's cost is absurd (a mistyped price), as a batch's own sums do:
/// SQLite's `+` would turn the overflow into a REAL its STRICT column refuses and PostgreSQL's
/// would raise an error, so every later batch of the ledger would fail with it.
async fn totals_stop_at_the_largest_value_across_batches(db: TestDb) -> anyhow::Result<()> {
    let store = open_store(&db).await?;
    let at = Utc::now() - chrono::Duration::minutes(5);
    store
        .insert_session(&new_session("rich-1", "Claude Code", at))
        .await?;
    // $500,000,000 a call: 5e18 units of 1e-10 USD, two of them past i64::MAX.
    let absurd = |i: i64| LedgerRow {
        estimated_cost_usd: Some(Money(Decimal::new(5_000_000_000_000_000_000, 10))),
        ..ledger_row("rich-1", "find_tasks", at + chrono::Duration::seconds(i))
    };
    for batch in [
        vec![absurd(0)],
        vec![absurd(1), absurd(2)],
        vec![ledger_row(
            "rich-1",
            "find_tasks",
            at + chrono::Duration::seconds(3),
        )],
    ] {
        let stored = store.insert_new_requests(&batch).await?;
        ensure!(
            stored == batch.len() as u64,
            "{stored} of {} rows stored",
            batch.len()
        );
    }
    let totals = store.session_totals(&["rich-1".to_string()]).await?;
    let rich = totals.get("rich-1").context("no totals for rich-1")?;
    ensure!(rich.requests == 4, "requests {}", rich.requests);
    let largest: Decimal = "922337203.6854775807".parse()?;
    ensure!(
        rich.estimated_cost_usd == Money(largest),
        "cost {:?}, expected the largest {largest}",
        rich.estimated_cost_usd
    );
    store.close().await;
    Ok(())
}
