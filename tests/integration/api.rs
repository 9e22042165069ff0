//! The JSON API under `/api/` on both engines: sessions, requests, statistics, pricing and the
//! live event stream, fed by real MCP traffic.

use crate::common;

use std::time::Duration;

use common::{InProcess, TestDb, backends, call, connect};
use serde_json::{Value, json};

async fn get(
    http: &reqwest::Client,
    server: &InProcess,
    path: &str,
) -> anyhow::Result<(u16, Value)> {
    let response = http
        .get(format!("{}{path}", server.base_url))
        .send()
        .await?;
    Ok((
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    ))
}

/// Polls `path` until `ready` holds (the ledger writer is asynchronous).
async fn get_until(
    http: &reqwest::Client,
    server: &InProcess,
    path: &str,
    ready: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = get(http, server, path).await?;
        if ready(&body) || tokio::time::Instant::now() > deadline {
            return Ok(body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sessions_requests_stats_and_pricing() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = InProcess::start(&db).await?;
        let http = crate::common::http_client();
        let claude = connect(&server.mcp_url(), "claude-code").await?;
        let cursor = connect(&server.mcp_url(), "cursor-vscode").await?;
        for _ in 0..3 {
            call(&claude, "find_projects", json!({})).await?;
        }
        call(&claude, "manage_task", json!({ "action": "explode" })).await?;
        call(&cursor, "health_check", json!({})).await?;

        // Sessions, filtered and paged.
        let (status, body) = get(&http, &server, "/api/sessions?client_type=Claude%20Code").await?;
        assert_eq!(status, 200);
        assert_eq!(body["total"], 1, "{backend:?}: {body}");
        let claude_id = body["sessions"][0]["session_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (_, page) = get(&http, &server, "/api/sessions?per_page=1&page=2").await?;
        assert_eq!(
            (
                page["total"].as_i64(),
                page["sessions"].as_array().map(Vec::len)
            ),
            (Some(2), Some(1))
        );
        let (status, _) = get(&http, &server, "/api/sessions?per_page=0").await?;
        assert_eq!(status, 400, "bad paging is refused");

        // One session with its timeline.
        let body = get_until(&http, &server, &format!("/api/sessions/{claude_id}"), |b| {
            b["request_count"].as_i64() >= Some(6)
        })
        .await?;
        assert_eq!(body["session"]["client_name"], "claude-code", "{body}");
        assert_eq!(
            body["request_count"], 6,
            "{backend:?}: initialize, initialized, 3 calls, 1 failing call: {body}"
        );
        let (status, _) = get(&http, &server, "/api/sessions/nope").await?;
        assert_eq!(status, 404);

        // Requests, filtered.
        let path = format!("/api/requests?session_id={claude_id}&tool=find_projects");
        let body = get_until(&http, &server, &path, |b| b["total"] == 3).await?;
        assert_eq!(body["total"], 3, "{body}");
        let (_, failed) = get(&http, &server, "/api/requests?status=tool_error").await?;
        assert_eq!(failed["total"], 1, "{failed}");
        assert_eq!(failed["requests"][0]["tool_name"], "manage_task");
        let (_, found) = get(&http, &server, "/api/requests?q=MANAGE_Task").await?;
        assert_eq!(
            found["total"], 1,
            "text search is case-insensitive: {found}"
        );
        let (_, none) = get(&http, &server, "/api/requests?q=no-such-thing").await?;
        assert_eq!(none["total"], 0, "{none}");
        let (status, _) = get(&http, &server, "/api/requests?since=yesterday-ish").await?;
        assert_eq!(status, 400, "an unreadable since is refused");

        // Statistics: per tool and per client, exact estimated cost as a string.
        let stats = get_until(&http, &server, "/api/stats?since=1h", |b| {
            b["totals"]["count"].as_u64() >= Some(9)
        })
        .await?;
        let tool = |name: &str| {
            stats["tools"]
                .as_array()
                .and_then(|t| t.iter().find(|x| x["name"] == name))
                .cloned()
                .unwrap_or(Value::Null)
        };
        assert_eq!(tool("find_projects")["count"], 3, "{stats}");
        assert_eq!(tool("manage_task")["errors"], 1, "{stats}");
        assert!(
            stats["totals"]["estimated_cost_usd"]
                .as_str()
                .is_some_and(|c| c != "0"),
            "{stats}"
        );
        let clients: Vec<&str> = stats["clients"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert!(
            clients.contains(&"Claude Code") && clients.contains(&"Cursor"),
            "{clients:?}"
        );

        // Pricing.
        let (_, pricing) = get(&http, &server, "/api/pricing").await?;
        assert!(
            pricing["pricing"]
                .as_array()
                .is_some_and(|p| p.iter().any(|r| r["model"] == "claude-sonnet-4-5"))
        );
        claude.cancel().await?;
        cursor.cancel().await?;
    }
    Ok(())
}

#[tokio::test]
async fn the_event_stream_announces_new_requests() -> anyhow::Result<()> {
    let db = TestDb::new(common::Backend::Sqlite).await?;
    let server = InProcess::start(&db).await?;
    let mut events = crate::common::http_client()
        .get(format!("{}/api/events", server.base_url))
        .header("accept", "text/event-stream")
        .send()
        .await?;
    assert_eq!(events.status(), 200);
    let client = connect(&server.mcp_url(), "live-test").await?;
    call(&client, "find_projects", json!({})).await?;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.contains("find_projects") && tokio::time::Instant::now() < deadline {
        // A quiet second is fine (keep-alives are sparse); only data matters.
        if let Ok(chunk) = tokio::time::timeout(Duration::from_secs(1), events.chunk()).await
            && let Some(chunk) = chunk?
        {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(seen.contains("event: session"), "a session event: {seen}");
    assert!(
        seen.contains("event: request") && seen.contains("find_projects"),
        "a request event: {seen}"
    );
    client.cancel().await?;
    Ok(())
}

/// GETs `path` and returns the status, a header and the body as text.
async fn get_text(
    http: &reqwest::Client,
    server: &InProcess,
    path: &str,
    header: &str,
) -> anyhow::Result<(u16, String, String)> {
    let response = http
        .get(format!("{}{path}", server.base_url))
        .send()
        .await?;
    let status = response.status().as_u16();
    let value = response
        .headers()
        .get(header)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok((status, value, response.text().await?))
}

/// The request ids a JSON-lines export of `path` lists, checking it answers 200 and every line
/// parses.
async fn export_ids(
    http: &reqwest::Client,
    server: &InProcess,
    path: &str,
) -> anyhow::Result<Vec<String>> {
    let (status, _, body) = get_text(http, server, path, "").await?;
    anyhow::ensure!(status == 200, "{path}: {status} {body}");
    jsonl_ids(&body)
}

/// The request ids of JSON lines, checking every line parses.
fn jsonl_ids(body: &str) -> anyhow::Result<Vec<String>> {
    body.lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line)?;
            Ok(row["request_id"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

#[tokio::test]
async fn requests_export_as_csv_and_json_lines() -> anyhow::Result<()> {
    use chrono::{Duration as Ago, Utc};
    use steward::ledger::Status;
    use steward::store::Money;

    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = common::open_store(&db).await?;
        let now = Utc::now();
        let old = common::ledger_row("s-a", "find_tasks", now - Ago::hours(2));
        let hostile = steward::ledger::LedgerRow {
            status: Status::ToolError,
            error_message: Some("bad, \"quoted\"\nsecond line".into()),
            estimated_cost_usd: Some(Money("0.0000000123".parse()?)),
            ..common::ledger_row("s-a", "manage_task", now - Ago::minutes(30))
        };
        let formula = steward::ledger::LedgerRow {
            error_message: Some("=HYPERLINK(\"http://evil\")".into()),
            ..common::ledger_row("s-b", "find_tasks", now - Ago::minutes(10))
        };
        store
            .insert_requests(&[old.clone(), hostile.clone(), formula.clone()])
            .await?;
        // More rows than one export page, all at the same instant: keyset paging must break
        // the tie by request id, losing and repeating none.
        let bulk_at = now - Ago::minutes(20);
        let bulk: Vec<_> = (0..2_500)
            .map(|_| common::ledger_row("s-c", "bulk", bulk_at))
            .collect();
        for chunk in bulk.chunks(500) {
            store.insert_requests(chunk).await?;
        }
        store.close().await;
        let server = InProcess::start(&db).await?;
        let http = crate::common::http_client();

        // CSV: a download that parses back, with the hostile field intact.
        let (status, disposition, body) = get_text(
            &http,
            &server,
            "/api/requests/export?format=csv&session_id=s-a",
            "content-disposition",
        )
        .await?;
        assert_eq!(status, 200, "{backend:?}: {body}");
        assert!(
            disposition.starts_with("attachment; filename=\"steward-requests-")
                && disposition.ends_with(".csv\""),
            "{disposition}"
        );
        let mut reader = csv::Reader::from_reader(body.as_bytes());
        let header: Vec<String> = reader.headers()?.iter().map(String::from).collect();
        assert_eq!(header, steward::export::COLUMNS, "{backend:?}");
        let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
        assert_eq!(rows.len(), 2, "{backend:?}: {body}");
        let column = |name: &str| header.iter().position(|h| h == name).unwrap_or(usize::MAX);
        let newest = &rows[0];
        assert_eq!(
            &newest[column("request_id")],
            hostile.request_id.to_string()
        );
        assert_eq!(
            &newest[column("error_message")],
            "bad, \"quoted\"\nsecond line"
        );
        assert_eq!(&newest[column("status")], "tool_error");
        assert_eq!(&newest[column("estimated_cost_usd")], "0.0000000123");
        assert_eq!(&rows[1][column("request_id")], old.request_id.to_string());

        // Spreadsheet formulas from clients are defused.
        let (_, _, body) =
            get_text(&http, &server, "/api/requests/export?session_id=s-b", "").await?;
        let mut reader = csv::Reader::from_reader(body.as_bytes());
        let row = reader.records().next().transpose()?.unwrap_or_default();
        assert_eq!(
            &row[column("error_message")],
            "'=HYPERLINK(\"http://evil\")",
            "{body}"
        );

        // JSON lines with filters: tool, time range, text search.
        let (status, content_type, body) = get_text(
            &http,
            &server,
            "/api/requests/export?format=jsonl&tool=find_tasks&since=1h",
            "content-type",
        )
        .await?;
        assert_eq!(status, 200);
        assert_eq!(content_type, "application/x-ndjson");
        assert_eq!(
            jsonl_ids(&body)?,
            [formula.request_id.to_string()],
            "{backend:?}: {body}"
        );
        let line: Value = serde_json::from_str(body.lines().next().unwrap_or_default())?;
        assert_eq!(
            line["estimated_cost_usd"], "0.001",
            "money stays an exact string: {line}"
        );
        assert_eq!(
            export_ids(&http, &server, "/api/requests/export?format=jsonl&until=1h").await?,
            [old.request_id.to_string()],
            "{backend:?}"
        );
        assert_eq!(
            export_ids(&http, &server, "/api/requests/export?format=jsonl&q=QUOTED").await?,
            [hostile.request_id.to_string()],
            "{backend:?}"
        );

        // Thousands of rows across pages: each exactly once.
        let mut ids = export_ids(
            &http,
            &server,
            "/api/requests/export?format=jsonl&tool=bulk",
        )
        .await?;
        assert_eq!(ids.len(), 2_500, "{backend:?}");
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 2_500, "{backend:?}: no row twice");

        // Bad filters are refused with a message that says what to fix.
        for (path, says) in [
            ("/api/requests/export?format=xml", "csv or jsonl"),
            ("/api/requests/export?status=broken", "status"),
            ("/api/requests/export?since=1h&until=2h", "before"),
            ("/api/requests/export?until=soon", "until \"soon\""),
            ("/api/requests?since=99999999999y", "too far back"),
        ] {
            let (status, body) = get(&http, &server, path).await?;
            assert_eq!(status, 400, "{path}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(says), "{path}: {message}");
        }
        server.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn session_health_buckets_reasons_and_rate() -> anyhow::Result<()> {
    use chrono::{Duration as Ago, Utc};

    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = common::open_store(&db).await?;
        let now = Utc::now();
        let session = |id: &str, minutes_ago: i64| {
            common::new_session(id, "unknown", now - Ago::minutes(minutes_ago))
        };
        for (id, minutes_ago) in [("fresh", 1), ("older", 7), ("oldest", 15), ("ancient", 20)] {
            store.insert_session(&session(id, minutes_ago)).await?;
        }
        for (id, minutes_ago) in [("gone-1", 2), ("gone-2", 3), ("banned", 4)] {
            store.insert_session(&session(id, minutes_ago)).await?;
        }
        assert!(
            store
                .end_session("gone-1", "disconnected", "client_delete")
                .await?
                .is_some()
        );
        assert!(
            store
                .end_session("gone-2", "disconnected", "client_delete")
                .await?
                .is_some()
        );
        assert!(
            store
                .end_session("banned", "revoked", "revoked")
                .await?
                .is_some()
        );
        store.close().await;
        let server = InProcess::start(&db).await?;
        let http = crate::common::http_client();

        let (status, body) = get(&http, &server, "/api/sessions/health").await?;
        assert_eq!(status, 200, "{backend:?}: {body}");
        assert_eq!(
            (
                &body["live"]["healthy"],
                &body["live"]["aging"],
                &body["live"]["stale"]
            ),
            (&json!(1), &json!(1), &json!(2)),
            "{backend:?}: {body}"
        );
        assert_eq!(body["live"]["total"], 4);
        assert_eq!(body["by_status"]["disconnected"], 2, "{body}");
        assert_eq!(body["by_status"]["revoked"], 1, "{body}");
        assert_eq!(
            body["disconnects"]["reasons"],
            json!([{ "reason": "client_delete", "count": 2 }, { "reason": "revoked", "count": 1 }]),
            "{body}"
        );
        assert_eq!(body["disconnects"]["total"], 3);
        // 3 of the 7 sessions live during the last hour ended in it.
        assert_eq!(body["disconnects"]["rate_percent"], 42.86, "{body}");
        assert!(body["ledger"]["status"].is_string(), "{body}");
        assert!(body["cleanup"].is_object(), "{body}");

        let (status, body) = get(&http, &server, "/api/sessions/health?window=lately").await?;
        assert_eq!(status, 400);
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("window")),
            "{body}"
        );
        server.stop().await;
    }
    Ok(())
}

/// A filter outside its documented values is a 400 that names them (docs/openapi.yaml's
/// enums), not an empty list that looks like "nothing matched".
#[tokio::test]
async fn filters_outside_their_values_say_which_values_exist() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = InProcess::start(&db).await?;
        let http = common::http_client();
        let client = connect(&server.mcp_url(), "filters").await?;
        let (_, created) = call(
            &client,
            "manage_project",
            json!({ "action": "create", "title": "Filters" }),
        )
        .await?;
        let project = created["project_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();

        for (path, names) in [
            (
                "/api/sessions?status=gone",
                "active, idle, disconnected, revoked",
            ),
            ("/api/sessions?kind=stdio", "session, logical"),
        ] {
            let (status, body) = get(&http, &server, path).await?;
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert_eq!(status, 400, "{backend:?} {path}: {body}");
            assert!(message.contains(names), "{backend:?} {path}: {message}");
        }
        let (status, _) = get(&http, &server, "/api/sessions?status=active&kind=session").await?;
        assert_eq!(
            status, 200,
            "{backend:?}: the documented values still filter"
        );

        let versions = format!("/api/projects/{project}/versions");
        let (status, body) = get(&http, &server, &format!("{versions}?field=spec")).await?;
        assert_eq!(status, 400, "{backend:?}: {body}");
        assert_eq!(body["error"]["field"], "field", "{backend:?}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("docs, features, data, prd"),
            "{backend:?}: {message}"
        );
        let (status, _) = get(&http, &server, &format!("{versions}?field=features")).await?;
        assert_eq!(status, 200, "{backend:?}");

        let (status, body) = get(&http, &server, "/api/cost?bucket=hour&since=40d").await?;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{backend:?}: {body}");
        assert!(message.contains(" hour buckets"), "{backend:?}: {message}");

        client.cancel().await?;
        server.stop().await;
    }
    Ok(())
}
