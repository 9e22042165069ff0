//! The JSON API under `/api/` on both engines: sessions, requests, statistics, pricing and the
//! live event stream, fed by real MCP traffic.

mod common;

use std::time::Duration;

use common::{TestDb, TestServer, backends, call, connect};
use serde_json::{Value, json};

async fn get(
    http: &reqwest::Client,
    server: &TestServer,
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
    server: &TestServer,
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
        let server = TestServer::start(&db).await?;
        let http = reqwest::Client::new();
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
    let server = TestServer::start(&db).await?;
    let mut events = reqwest::Client::new()
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
