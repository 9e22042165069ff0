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
            http: reqwest::Client::new(),
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
