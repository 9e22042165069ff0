//! A session-era client's plain `tools/call` of a board tool, answered in front of rmcp
//! (`steward::mcp::fast`): the same reply, byte for byte but for the event ids, as rmcp's path
//! gives the same call (forced there by an `Mcp-Method` header, which rmcp compares with the
//! body), a stream that can be resumed within the session, the same ledger row, and what rmcp
//! must handle (an unknown tool, a progress token) still handled by it.

use crate::common;

use std::time::Duration;

use anyhow::{Context, ensure};
use common::raw::{self, Client, Reply, event_ids};
use common::{TestDb, TestServer, test_on_each_backend};
use serde_json::{Value, json};

test_on_each_backend!(
    a_board_call_is_answered_in_front_of_rmcp_as_rmcp_answers_it,
    a_direct_answer_is_resumed_and_its_ledger_row_is_rmcp_s,
);

/// `/health`'s count of board calls answered in front of rmcp.
async fn direct(api: &Client) -> anyhow::Result<u64> {
    let (_, health) = api.get_json("/health").await?;
    health["board_calls_direct"]
        .as_u64()
        .with_context(|| format!("no board_calls_direct: {health}"))
}

/// Opens a session and waits until its calls are answered directly: its handler notes it once
/// rmcp has handled `notifications/initialized`, which the client does not wait for.
async fn direct_session(client: &Client, api: &Client) -> anyhow::Result<String> {
    let session = raw::open_session(client).await?;
    for id in 1000..1100 {
        let before = direct(api).await?;
        client
            .call(Some(&session), id, "find_projects", json!({}))
            .await?;
        if direct(api).await? > before {
            return Ok(session);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("no call of session {session} was answered directly")
}

/// The body of `tools/call` `id` of `tool`.
fn call_body(id: u64, tool: &str, arguments: Value) -> String {
    steward::mcp::client::tool_call_request(id, tool, arguments).to_string()
}

/// The same request through rmcp's path: rmcp checks `Mcp-Method` and `Mcp-Name` against the
/// body, so a request carrying them is never answered in front of it.
async fn via_rmcp(
    client: &Client,
    session: &str,
    tool: &str,
    body: String,
) -> anyhow::Result<Reply> {
    let headers = [("mcp-method", "tools/call"), ("mcp-name", tool)];
    client.post_with(body, Some(session), &headers).await
}

/// An event stream with its event ids blanked (they are random).
fn without_event_ids(stream: &str) -> String {
    stream
        .lines()
        .map(|line| match line.starts_with("id: ") {
            true => "id: _",
            false => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The headers a client reads off an event stream.
fn stream_headers(reply: &Reply) -> Vec<Option<String>> {
    ["content-type", "cache-control", "x-accel-buffering"]
        .iter()
        .map(|name| {
            let value = reply.headers.get(*name)?.to_str().ok()?;
            Some(value.to_string())
        })
        .collect()
}

async fn a_board_call_is_answered_in_front_of_rmcp_as_rmcp_answers_it(
    db: TestDb,
) -> anyhow::Result<()> {
    let server = TestServer::start(&db).await?;
    let api = Client::new(&server.base_url);
    let client = Client::new(&server.mcp_url());
    let session = direct_session(&client, &api).await?;
    let start = direct(&api).await?;

    let project = client
        .call(
            Some(&session),
            1,
            "manage_project",
            json!({ "action": "create", "title": "Cache" }),
        )
        .await?;
    let project_id = project.tool_json().context("no project")?["project"]["id"]
        .as_str()
        .context("no project id")?
        .to_string();
    let task = json!({ "action": "create", "project_id": project_id, "title": "cache warmup" });
    let task = client.call(Some(&session), 2, "manage_task", task).await?;
    ensure!(!task.is_tool_error(), "{}", task.text);
    ensure!(
        direct(&api).await? == start + 2,
        "the writes were not answered directly"
    );

    let cases = [
        ("find_tasks", json!({ "query": "cache" })),
        ("find_projects", json!({})),
        ("find_documents", json!({ "project_id": project_id })),
        // A tool error, and an argument of the wrong type (a tool error saying which).
        ("find_tasks", json!({ "task_id": "nope" })),
        ("find_tasks", json!({ "per_page": "ten" })),
    ];
    for (n, (tool, arguments)) in cases.into_iter().enumerate() {
        let body = call_body(10, tool, arguments);
        let before = direct(&api).await?;
        let fast = client.post_with(body.clone(), Some(&session), &[]).await?;
        ensure!(
            direct(&api).await? == before + 1,
            "case {n} ({tool}) was not answered directly"
        );
        let slow = via_rmcp(&client, &session, tool, body).await?;
        ensure!(
            direct(&api).await? == before + 1,
            "case {n} ({tool}) with Mcp-Method was answered directly"
        );
        ensure!(
            fast.status == 200 && slow.status == 200,
            "{fast:?} {slow:?}"
        );
        ensure!(
            stream_headers(&fast) == stream_headers(&slow),
            "case {n}: {:?} vs {:?}",
            fast.headers,
            slow.headers
        );
        ensure!(event_ids(&fast.text).len() == 2, "case {n}: {}", fast.text);
        ensure!(
            without_event_ids(&fast.text) == without_event_ids(&slow.text),
            "case {n} ({tool}) answered differently:\n{}\n{}",
            fast.text,
            slow.text
        );
    }
    let invalid = client
        .call(
            Some(&session),
            20,
            "find_tasks",
            json!({ "per_page": "ten" }),
        )
        .await?;
    let error = invalid.tool_json().context("no tool result")?;
    ensure!(
        invalid.is_tool_error() && error["error"]["type"] == "validation_error",
        "{}",
        invalid.text
    );

    // What rmcp must handle is still handled by it: an unknown tool, a progress token.
    let before = direct(&api).await?;
    let unknown = client
        .call(Some(&session), 21, "no_such_tool", json!({}))
        .await?;
    ensure!(unknown.error_code() == Some(-32602), "{}", unknown.text);
    let progress = json!({ "jsonrpc": "2.0", "id": 22, "method": "tools/call", "params": {
        "name": "find_projects", "arguments": {}, "_meta": { "progressToken": "p22" } } });
    let progress = client.post(&progress, Some(&session)).await?;
    ensure!(
        progress.tool_json().is_some_and(|j| j["success"] == true),
        "{}",
        progress.text
    );
    ensure!(
        direct(&api).await? == before,
        "an unknown tool or a progress token was answered directly"
    );
    server.stop().await;
    Ok(())
}

async fn a_direct_answer_is_resumed_and_its_ledger_row_is_rmcp_s(db: TestDb) -> anyhow::Result<()> {
    let server = TestServer::start(&db).await?;
    let api = Client::new(&server.base_url);
    let client = Client::new(&server.mcp_url());
    let session = direct_session(&client, &api).await?;
    let start = direct(&api).await?;

    let fast = client
        .post_with(
            call_body(5, "find_tasks", json!({ "query": "x" })),
            Some(&session),
            &[],
        )
        .await?;
    ensure!(
        direct(&api).await? == start + 1,
        "the call was not answered directly"
    );
    let ids = event_ids(&fast.text);
    ensure!(
        ids.len() == 2,
        "a priming event and the answer: {}",
        fast.text
    );
    let answer = fast
        .text
        .lines()
        .find(|line| line.starts_with("data: {"))
        .context("no answer")?
        .to_string();

    // Its answer is replayed from the priming event, within the session only.
    let (status, replayed) = raw::replay(&client, &session, &ids[0]).await?;
    ensure!(
        status == 200 && replayed.lines().any(|line| line == answer),
        "{status}: {replayed}"
    );
    let other = raw::open_session(&client).await?;
    let (status, _) = raw::replay(&client, &other, &ids[0]).await?;
    ensure!(
        status == 404,
        "another session replayed the stream: {status}"
    );

    // The same call through rmcp: the ledger's rows agree in all but ids and times.
    let body = call_body(6, "find_tasks", json!({ "query": "x" }));
    via_rmcp(&client, &session, "find_tasks", body).await?;
    let query = format!("session_id={session}");
    let row = |id: &'static str| raw::ledger_row(&api, &query, move |r| r["jsonrpc_id"] == id);
    let (fast_row, slow_row) = (row("5").await?, row("6").await?);
    for field in [
        "status",
        "method",
        "tool_name",
        "request_bytes",
        "response_bytes",
        "args_tokens",
        "result_tokens",
        "total_tokens",
        "error_code",
        "error_message",
        "upstream",
    ] {
        ensure!(
            fast_row[field] == slow_row[field],
            "{field}: {fast_row} vs {slow_row}"
        );
    }
    ensure!(
        fast_row["status"] == "success" && fast_row["tool_name"] == "find_tasks",
        "{fast_row}"
    );
    server.stop().await;
    Ok(())
}
