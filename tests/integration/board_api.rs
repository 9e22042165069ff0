//! The board under `/api/` on both engines: projects with counts, a project's tasks with
//! filters, one task and its history, and writes that go through manage_task's rules, are
//! recorded as made by the dashboard, and are seen by agents over MCP.

use crate::board;
use crate::common;

use std::time::Duration;

use anyhow::{Context, ensure};
use common::{TestDb, TestServer, backends, connect};
use serde_json::{Value, json};

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "PATCH" => self.http.patch(url),
            _ => self.http.post(url),
        };
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let response = request.send().await?;
        Ok((
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        ))
    }
}

#[tokio::test]
async fn the_board_api_reads_and_writes_through_the_tools_rules() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start(&db).await?;
        let agent = connect(&server.mcp_url(), "claude-code").await?;
        let api = Api {
            http: crate::common::http_client(),
            base: server.base_url.clone(),
        };
        let project = board::create_project(&agent, "Board").await?;
        let first = board::create_task(
            &agent,
            &project,
            "First",
            json!({ "assignee": "ana", "feature": "ui" }),
        )
        .await?;
        board::create_task(&agent, &project, "Second", json!({ "status": "done" })).await?;

        // The project list counts live tasks by status.
        let (status, body) = api.send("GET", "/api/projects", None).await?;
        ensure!(status == 200, "{backend:?}: {body}");
        let listed = &body["projects"][0];
        ensure!(
            listed["id"] == project.as_str() && listed["todo"] == 1 && listed["done"] == 1,
            "{body}"
        );
        ensure!(
            listed["total"] == 2 && listed["progress_percent"] == 50.0,
            "{body}"
        );

        // Tasks by filter; done tasks are on the board too.
        let path = format!("/api/projects/{project}/tasks");
        let (_, all) = api.send("GET", &path, None).await?;
        ensure!(all["total"] == 2, "{all}");
        let (_, mine) = api
            .send("GET", &format!("{path}?assignee=ana&feature=ui"), None)
            .await?;
        ensure!(
            mine["total"] == 1 && mine["tasks"][0]["id"] == first.as_str(),
            "{mine}"
        );
        let (status, bad) = api
            .send("GET", &format!("{path}?status=blocked"), None)
            .await?;
        ensure!(status == 400 && bad["error"]["field"] == "status", "{bad}");

        // Moving a task: the agent sees it, and the history says the dashboard did it.
        let task_path = format!("/api/tasks/{first}");
        let (status, moved) = api
            .send("PATCH", &task_path, Some(json!({ "status": "doing" })))
            .await?;
        ensure!(
            status == 200 && moved["task"]["status"] == "doing",
            "{moved}"
        );
        let seen = board::ok(&agent, "find_tasks", json!({ "task_id": first })).await?;
        ensure!(seen["task"]["status"] == "doing", "{seen}");
        let history = board::history(&agent, &first).await?;
        let row = history.last().context("no history")?;
        ensure!(
            row["field"] == "status" && row["new_value"] == "doing",
            "{row}"
        );
        ensure!(
            row["client_name"] == "dashboard" && row["session_id"].is_null(),
            "{row}"
        );
        let (_, api_history) = api
            .send("GET", &format!("{task_path}/history"), None)
            .await?;
        ensure!(api_history["count"] == history.len(), "{api_history}");

        // The same validation and messages as manage_task, naming the field.
        let (status, bad) = api
            .send("PATCH", &task_path, Some(json!({ "task_order": 101 })))
            .await?;
        ensure!(
            status == 400 && bad["error"]["field"] == "task_order",
            "{bad}"
        );
        ensure!(
            bad["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("between 0 and 100"),
            "{bad}"
        );
        let (status, bad) = api
            .send("PATCH", &task_path, Some(json!({ "status": "blocked" })))
            .await?;
        ensure!(status == 400 && bad["error"]["field"] == "status", "{bad}");
        let (status, bad) = api
            .send("POST", &path, Some(json!({ "title": "  " })))
            .await?;
        ensure!(status == 400 && bad["error"]["field"] == "title", "{bad}");
        let (status, bad) = api.send("GET", "/api/tasks/nope", None).await?;
        ensure!(status == 400 && bad["error"]["field"] == "task_id", "{bad}");
        let missing = format!("/api/tasks/{}", uuid::Uuid::new_v4());
        ensure!(api.send("GET", &missing, None).await?.0 == 404);

        // Creating a task: 201, and the agent finds it.
        let (status, created) = api
            .send(
                "POST",
                &path,
                Some(json!({ "title": "<img src=x onerror=alert(1)>", "task_order": 7 })),
            )
            .await?;
        ensure!(
            status == 201 && created["task"]["task_order"] == 7,
            "{created}"
        );
        let found = board::ok(&agent, "find_tasks", json!({ "project_id": project })).await?;
        ensure!(found["total"] == 2, "{found}");

        let (status, shown) = api
            .send("GET", &format!("/api/projects/{project}"), None)
            .await?;
        ensure!(status == 200 && shown["counts"]["total"] == 3, "{shown}");
        server.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn board_changes_reach_the_event_stream() -> anyhow::Result<()> {
    use futures::StreamExt;
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start(&db).await?;
        let agent = connect(&server.mcp_url(), "claude-code").await?;
        let project = board::create_project(&agent, "Live").await?;
        let response = reqwest::get(format!("{}/api/events", server.base_url)).await?;
        let mut stream = response.bytes_stream();
        let task = board::create_task(&agent, &project, "Watched", json!({})).await?;
        let mut seen = String::new();
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(chunk) = stream.next().await {
                seen.push_str(&String::from_utf8_lossy(&chunk?));
                if seen.contains("event: board") && seen.contains(&task) {
                    return anyhow::Ok(true);
                }
            }
            Ok(false)
        })
        .await;
        ensure!(
            matches!(found, Ok(Ok(true))),
            "{backend:?}: no board event in {seen:?}"
        );
        server.stop().await;
    }
    Ok(())
}

/// Polls `GET /api/tasks/{id}/activity` until it counts `calls` calls (the ledger stores rows
/// off the request path), and returns it.
async fn activity(api: &Api, task: &str, calls: i64) -> anyhow::Result<Value> {
    let path = format!("/api/tasks/{task}/activity");
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, body) = api.send("GET", &path, None).await?;
        ensure!(status == 200, "{body}");
        last = body["activity"].clone();
        if last["calls"] == calls {
            return Ok(last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the activity of {task} never counted {calls} calls: {last}")
}

fn decimal(value: &Value) -> anyhow::Result<rust_decimal::Decimal> {
    Ok(value.as_str().context("a decimal string")?.parse()?)
}

#[tokio::test]
async fn a_task_s_activity_counts_the_calls_that_concern_it() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start(&db).await?;
        let claude = connect(&server.mcp_url(), "claude-code").await?;
        let cursor = connect(&server.mcp_url(), "cursor-vscode").await?;
        let api = Api {
            http: crate::common::http_client(),
            base: server.base_url.clone(),
        };
        let project = board::create_project(&claude, "Costs").await?;
        // 1: the create (the task id is in the reply, not the arguments).
        let task = board::create_task(&claude, &project, "Measured", json!({})).await?;
        let other = board::create_task(&claude, &project, "Elsewhere", json!({})).await?;
        // 2, 3: a move to doing, and its history.
        let doing = json!({ "action": "update", "task_id": task, "status": "doing" });
        board::ok(&claude, "manage_task", doing).await?;
        board::history(&claude, &task).await?;
        // 4: another client reads it; 5: and fails to change it (a tool error).
        board::ok(&cursor, "find_tasks", json!({ "task_id": task })).await?;
        let bad = json!({ "action": "update", "task_id": task, "task_order": 500 });
        board::fails(&cursor, "manage_task", bad, "validation_error").await?;
        // 6: done. Calls about other things do not count.
        let done = json!({ "action": "update", "task_id": task, "status": "done" });
        board::ok(&claude, "manage_task", done).await?;
        let elsewhere = json!({ "action": "update", "task_id": other, "status": "doing" });
        board::ok(&cursor, "manage_task", elsewhere).await?;
        board::ok(&claude, "find_projects", json!({})).await?;

        let a = activity(&api, &task, 6).await?;
        ensure!(
            a["errors"] == 1 && a["tool_errors"] == 1 && a["session_count"] == 2,
            "{backend:?}: {a}"
        );
        let sessions = a["sessions"].as_array().context("sessions")?;
        let names: Vec<&str> = sessions
            .iter()
            .filter_map(|s| s["client_name"].as_str())
            .collect();
        ensure!(names == ["claude-code", "cursor-vscode"], "{a}");
        ensure!(
            sessions[0]["calls"] == 4 && sessions[1]["calls"] == 2,
            "{a}"
        );
        ensure!(sessions[1]["tool_errors"] == 1, "{a}");
        // The totals are the sessions' sums; tokens were estimated for every call.
        let tokens: i64 = sessions
            .iter()
            .filter_map(|s| s["estimated_tokens"].as_i64())
            .sum();
        ensure!(tokens > 0 && a["estimated_tokens"] == tokens, "{a}");
        let cost = decimal(&sessions[0]["estimated_cost_usd"])?
            + decimal(&sessions[1]["estimated_cost_usd"])?;
        ensure!(decimal(&a["estimated_cost_usd"])? == cost, "{a}");
        // From the first doing to done.
        ensure!(
            a["started_at"].is_string()
                && a["done_at"].is_string()
                && a["doing_to_done_seconds"].as_i64().is_some_and(|s| s >= 0),
            "{a}"
        );
        activity(&api, &other, 2).await?;
        let missing = format!("/api/tasks/{}/activity", uuid::Uuid::new_v4());
        ensure!(api.send("GET", &missing, None).await?.0 == 404);
        server.stop().await;

        // Over stdio too: the create and a read, attributed in the stdio process's ledger.
        let stdio = common::connect_stdio(&db, "zed").await?;
        let third = board::create_task(&stdio, &project, "Over stdio", json!({})).await?;
        board::ok(&stdio, "find_tasks", json!({ "task_id": third })).await?;
        stdio.cancel().await?;
        let server = TestServer::start(&db).await?;
        let api = Api {
            http: crate::common::http_client(),
            base: server.base_url.clone(),
        };
        let a = activity(&api, &third, 2).await?;
        ensure!(a["sessions"][0]["client_name"] == "zed", "{a}");
        server.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn a_version_is_restored_from_the_api_as_the_tool_restores_it() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start(&db).await?;
        let agent = connect(&server.mcp_url(), "claude-code").await?;
        let api = Api {
            http: crate::common::http_client(),
            base: server.base_url.clone(),
        };
        let project = board::create_project(&agent, "Versions").await?;
        let features = |names: &[&str]| {
            json!(
                names
                    .iter()
                    .map(|n| json!({ "name": n }))
                    .collect::<Vec<_>>()
            )
        };
        let set = |names: &[&str]| json!({ "action": "update", "project_id": project, "features": features(names) });
        board::ok(&agent, "manage_project", set(&["login"])).await?;
        board::ok(&agent, "manage_project", set(&["login", "billing"])).await?;
        let listed = board::ok(
            &agent,
            "find_versions",
            json!({ "project_id": project, "field_name": "features" }),
        )
        .await?;
        let first = listed["versions"]
            .as_array()
            .context("versions")?
            .iter()
            .filter(|v| v["change_summary"] == "Set by manage_project")
            .filter_map(|v| v["version_number"].as_i64())
            .min()
            .context("no version set by manage_project")?;

        let path = format!("/api/projects/{project}/versions/restore");
        let asked = json!({ "field_name": "features", "version_number": first });
        let (status, restored) = api.send("POST", &path, Some(asked)).await?;
        ensure!(status == 200, "{backend:?}: {restored}");
        ensure!(
            restored["restored_version"] == first
                && restored["version"]["change_type"] == "restore"
                && restored["version"]["created_by"] == "dashboard",
            "{restored}"
        );
        // The agent sees the old value, and the value it replaced is a version of its own.
        let now = board::ok(
            &agent,
            "get_project_features",
            json!({ "project_id": project }),
        )
        .await?;
        ensure!(now["features"] == features(&["login"]), "{now}");
        let backup = board::ok(
            &agent,
            "find_versions",
            json!({ "project_id": project, "field_name": "features",
                    "version_number": restored["backup_version"] }),
        )
        .await?;
        ensure!(
            backup["version"]["content"] == features(&["login", "billing"])
                && backup["version"]["created_by"] == "dashboard",
            "{backup}"
        );

        // Refusals name what is wrong.
        let (status, body) = api
            .send(
                "POST",
                &path,
                Some(json!({ "field_name": "features", "version_number": 99 })),
            )
            .await?;
        ensure!(status == 404, "{body}");
        let (status, body) = api
            .send(
                "POST",
                &path,
                Some(json!({ "field_name": "nope", "version_number": 1 })),
            )
            .await?;
        ensure!(
            status == 400 && body["error"]["field"] == "field_name",
            "{body}"
        );
        let missing = format!("/api/projects/{}/versions/restore", uuid::Uuid::new_v4());
        let asked = json!({ "field_name": "prd", "version_number": 1 });
        ensure!(api.send("POST", &missing, Some(asked)).await?.0 == 404);
        server.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn cost_over_time_by_bucket_client_type_and_client_name() -> anyhow::Result<()> {
    use chrono::{Duration as Span, DurationRound, Utc};
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = common::open_store(&db).await?;
        let now = Utc::now();
        for (id, name, client_type) in [
            ("s-claude", "claude-code", "claude_code"),
            ("s-cursor", "cursor-vscode", "cursor"),
            ("s-cursor-2", "cursor-vscode", "cursor"),
        ] {
            let mut session = common::new_session(id, client_type, now - Span::days(3));
            session.client_name = Some(name.into());
            store.insert_session(&session).await?;
        }
        // ledger_row: 8 tokens and $0.001 each.
        let rows = vec![
            common::ledger_row("s-claude", "find_tasks", now - Span::minutes(1)),
            common::ledger_row("s-claude", "find_tasks", now - Span::hours(3)),
            common::ledger_row("s-cursor", "manage_task", now - Span::hours(3)),
            common::ledger_row("s-cursor-2", "manage_task", now - Span::hours(30)),
        ];
        store.insert_requests(&rows).await?;
        store.close().await;
        let server = TestServer::start(&db).await?;
        let api = Api {
            http: crate::common::http_client(),
            base: server.base_url.clone(),
        };

        let (status, hourly) = api.send("GET", "/api/cost?bucket=hour", None).await?;
        ensure!(status == 200, "{backend:?}: {hourly}");
        let series = hourly["series"].as_array().context("series")?;
        ensure!(
            series.len() == 25,
            "24 hours back and this one: {}",
            series.len()
        );
        let this_hour = now.duration_trunc(Span::hours(1))?;
        let point = |at: chrono::DateTime<Utc>| {
            series
                .iter()
                .find(|p| {
                    p["start"]
                        .as_str()
                        .and_then(|s| s.parse::<chrono::DateTime<Utc>>().ok())
                        == Some(at)
                })
                .cloned()
                .unwrap_or(Value::Null)
        };
        let three_hours_ago = (now - Span::hours(3)).duration_trunc(Span::hours(1))?;
        ensure!(point(three_hours_ago)["requests"] == 2, "{hourly}");
        ensure!(
            decimal(&point(three_hours_ago)["estimated_cost_usd"])? == "0.002".parse()?,
            "{hourly}"
        );
        ensure!(point(three_hours_ago)["tokens"] == 16, "{hourly}");
        ensure!(point(this_hour)["requests"] == 1, "{hourly}");
        ensure!(
            hourly["totals"]["requests"] == 3,
            "the row 30 h ago is outside: {hourly}"
        );
        let names = &hourly["client_names"];
        ensure!(
            names[0]["client_name"] == "claude-code"
                && names[0]["requests"] == 2
                && names[1]["client_name"] == "cursor-vscode"
                && names[1]["client_type"] == "cursor"
                && names[1]["requests"] == 1,
            "{names}"
        );
        let types = &hourly["client_types"];
        ensure!(
            types.as_array().map(Vec::len) == Some(2) && types[0]["client_name"].is_null(),
            "{types}"
        );

        let (status, daily) = api
            .send("GET", "/api/cost?bucket=day&since=3days", None)
            .await?;
        ensure!(status == 200, "{daily}");
        ensure!(
            daily["series"].as_array().map(Vec::len) == Some(4) && daily["totals"]["requests"] == 4,
            "{daily}"
        );
        let cursor = daily["client_names"]
            .as_array()
            .and_then(|n| n.iter().find(|c| c["client_name"] == "cursor-vscode"))
            .context("no cursor-vscode")?;
        ensure!(cursor["requests"] == 2, "both cursor sessions: {daily}");

        let (status, body) = api
            .send("GET", "/api/cost?bucket=hour&since=90days", None)
            .await?;
        ensure!(
            status == 400
                && body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("bucket=day")),
            "{body}"
        );
        let (status, _) = api.send("GET", "/api/cost?bucket=week", None).await?;
        ensure!(status == 400);
        server.stop().await;
    }
    Ok(())
}
