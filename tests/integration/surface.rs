//! The MCP surface beyond tools: board resources and prompts, resource subscriptions,
//! completion, the conformance fixtures (only with `--conformance-fixtures`), and the protocol
//! rules rmcp leaves to Steward (JSON-RPC batches, `server/discover` per revision).
// resources/subscribe is legacy in rmcp's eyes (SEP-2577); session-era clients still use it.
#![allow(deprecated)]

use crate::board;
use crate::common;

use std::time::Duration;

use board::{TOOL_NAMES as BOARD_TOOLS, listed_tool_names};
use common::{InProcess, TestDb, backends, call, connect};
use rmcp::model::{
    ArgumentInfo, CompleteRequestParams, GetPromptRequestParams, ReadResourceRequestParams,
    Reference, SubscribeRequestParams,
};
use serde_json::{Value, json};

async fn tool_names(server: &InProcess) -> anyhow::Result<Vec<String>> {
    let client = connect(&server.mcp_url(), "surface-test").await?;
    let names = listed_tool_names(&client).await?;
    client.cancel().await?;
    Ok(names)
}

#[tokio::test]
async fn fixtures_exist_only_with_the_flag() -> anyhow::Result<()> {
    let db = TestDb::new(common::Backend::Sqlite).await?;
    let server = InProcess::start(&db).await?;
    assert_eq!(tool_names(&server).await?, BOARD_TOOLS);
    let client = connect(&server.mcp_url(), "surface-test").await?;
    let resources = client.list_all_resources().await?;
    assert!(
        resources.iter().all(|r| r.uri.starts_with("steward://")),
        "{resources:?}"
    );
    let prompts = client.list_all_prompts().await?;
    assert!(
        prompts.iter().all(|p| !p.name.starts_with("test_")),
        "{prompts:?}"
    );
    client.cancel().await?;
    server.stop().await;

    let server = InProcess::start_with(&db, &["--conformance-fixtures"]).await?;
    let names = tool_names(&server).await?;
    for tool in BOARD_TOOLS
        .iter()
        .chain(&["test_simple_text", "json_schema_2020_12_tool"])
    {
        assert!(
            names.iter().any(|n| n == tool),
            "{tool} missing from {names:?}"
        );
    }
    let client = connect(&server.mcp_url(), "surface-test").await?;
    let (is_error, text) = call(&client, "test_simple_text", Value::Null).await?;
    assert!(!is_error);
    assert_eq!(text, json!("This is a simple text response for testing."));
    client.cancel().await?;
    server.stop().await;
    Ok(())
}

/// Creates a project with one task; returns (project id, task id).
async fn seed(client: &common::Client) -> anyhow::Result<(String, String)> {
    let (_, project) = call(
        client,
        "manage_project",
        json!({ "action": "create", "title": "Apollo", "description": "Go to the moon" }),
    )
    .await?;
    let project_id = project["project_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, task) = call(
        client,
        "manage_task",
        json!({ "action": "create", "project_id": project_id, "title": "Build the rocket", "status": "doing" }),
    )
    .await?;
    let task_id = task["task_id"].as_str().unwrap_or_default().to_string();
    Ok((project_id, task_id))
}

fn text_of(contents: &rmcp::model::ResourceContents) -> Value {
    match contents {
        rmcp::model::ResourceContents::TextResourceContents { text, .. } => {
            serde_json::from_str(text).unwrap_or(Value::Null)
        }
        _ => Value::Null,
    }
}

#[tokio::test]
async fn the_board_reads_as_resources_and_prompts() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = InProcess::start(&db).await?;
        let client = connect(&server.mcp_url(), "surface-test").await?;
        let (project_id, task_id) = seed(&client).await?;

        let listed = client.list_all_resources().await?;
        let project_uri = format!("steward://projects/{project_id}");
        assert!(
            listed.iter().any(|r| r.uri == project_uri),
            "{backend:?}: {listed:?}"
        );
        let templates = client.list_all_resource_templates().await?;
        assert!(
            templates
                .iter()
                .any(|t| t.uri_template == "steward://projects/{project_id}/tasks")
        );

        let tasks = client
            .read_resource(ReadResourceRequestParams::new(format!(
                "{project_uri}/tasks"
            )))
            .await?;
        let tasks = text_of(&tasks.contents[0]);
        assert_eq!(
            tasks["tasks"][0]["id"],
            json!(task_id),
            "{backend:?}: {tasks}"
        );
        let project = client
            .read_resource(ReadResourceRequestParams::new(project_uri.clone()))
            .await?;
        assert_eq!(text_of(&project.contents[0])["tasks_by_status"]["doing"], 1);
        let missing = client
            .read_resource(ReadResourceRequestParams::new(format!(
                "steward://tasks/{}",
                uuid::Uuid::new_v4()
            )))
            .await;
        assert!(
            missing.is_err(),
            "{backend:?}: an unknown task must be an error"
        );

        let mut standup = GetPromptRequestParams::new("standup");
        standup.arguments = Some(
            json!({ "project_id": project_id })
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let prompt = client.get_prompt(standup).await?;
        let text = serde_json::to_string(&prompt.messages)?;
        assert!(text.contains("Build the rocket"), "{backend:?}: {text}");
        let mut plan = GetPromptRequestParams::new("plan_feature");
        plan.arguments = Some(
            json!({ "project_id": project_id, "feature": "landing" })
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let prompt = client.get_prompt(plan).await?;
        assert!(serde_json::to_string(&prompt.messages)?.contains("manage_task"));
        let mut bad = GetPromptRequestParams::new("standup");
        bad.arguments = Some(
            json!({ "project_id": "nope" })
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let error = client
            .get_prompt(bad)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("project_id"), "{backend:?}: {error}");

        let completion = client
            .complete(CompleteRequestParams::new(
                Reference::for_prompt("standup"),
                ArgumentInfo::new("project_id", "apo"),
            ))
            .await?;
        assert_eq!(completion.completion.values, vec![project_id.clone()]);
        client.cancel().await?;
        server.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn subscribers_hear_about_task_changes() -> anyhow::Result<()> {
    let db = TestDb::new(common::Backend::Sqlite).await?;
    let server = InProcess::start(&db).await?;
    let editor = connect(&server.mcp_url(), "editor").await?;
    let (project_id, task_id) = seed(&editor).await?;

    let (watcher, mut updates) = common::watch(&server.mcp_url()).await?;
    let tasks_uri = format!("steward://projects/{project_id}/tasks");
    watcher
        .subscribe(SubscribeRequestParams::new(tasks_uri.clone()))
        .await?;
    let bad = watcher
        .subscribe(SubscribeRequestParams::new("steward://nowhere"))
        .await;
    assert!(
        bad.is_err(),
        "subscribing to a URI that names nothing must fail"
    );
    // Let the watcher's event stream open before the change happens.
    tokio::time::sleep(Duration::from_millis(300)).await;

    call(
        &editor,
        "manage_task",
        json!({ "action": "update", "task_id": task_id, "status": "done" }),
    )
    .await?;
    let uri = tokio::time::timeout(Duration::from_secs(5), updates.recv()).await?;
    assert_eq!(uri.as_deref(), Some(tasks_uri.as_str()));
    watcher.cancel().await?;
    editor.cancel().await?;
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn batches_and_discover_follow_the_negotiated_revision() -> anyhow::Result<()> {
    let db = TestDb::new(common::Backend::Sqlite).await?;
    let server = InProcess::start(&db).await?;
    let http = crate::common::http_client();
    let post = |body: Value, session: Option<&str>| {
        let mut request = http
            .post(server.mcp_url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(id) = session {
            request = request.header("mcp-session-id", id);
        }
        request.body(body.to_string()).send()
    };
    let init = post(
        json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": { "name": "raw", "version": "1" } } }),
        None,
    )
    .await?;
    let session = init
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(!session.is_empty());

    let batch = post(
        json!([{ "jsonrpc": "2.0", "id": 2, "method": "ping" }]),
        Some(&session),
    )
    .await?;
    assert_eq!(batch.status(), 400);
    let body: Value = batch.json().await?;
    assert_eq!(body["error"]["code"], -32600);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("2025-11-25"),
        "{body}"
    );

    let discover = post(
        json!({ "jsonrpc": "2.0", "id": 3, "method": "server/discover" }),
        Some(&session),
    )
    .await?;
    let body: Value = discover.json().await?;
    assert_eq!(body["error"]["code"], -32601, "{body}");
    assert_eq!(body["id"], 3);
    server.stop().await;
    Ok(())
}
