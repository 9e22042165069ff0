//! A 2026-07-28 client without a session, in front of a session-era upstream (the official
//! Python SDK server over HTTP refusing 2026-07-28 requests, as one from before that revision
//! does, and the same server over stdio) that asks for elicitation or sampling while serving a
//! call: that revision
//! has no requests from server to client, so Steward answers the client with an
//! `InputRequiredResult` carrying the upstream's request and a `requestState` of its own, and
//! the client's retry with its answer and that state gets the upstream's final result. A state
//! from another session, a changed one, or one already used is refused saying so; a call the
//! client never resumes is given up (the upstream is told to stop; `/health` counts it). A
//! client session parks at most so many calls: the next is refused, saying so, and counted.
//! The upstream's `roots/list` sent on its session's GET stream rather than the call's own (the
//! Python SDK's `list_roots()`) reaches the client the same way, tied to its one call in flight;
//! one still waiting for that call when it ends is answered with an error, not left unanswered.

use crate::common;
use crate::gateway::{PythonUpstream, free_port, python, upstream_script, wait_until_up};
use crate::gateway_stateless::python_client;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::raw::{self, Client, Reply};
use common::{TestDb, TestServer, test_on_each_backend};
use serde_json::{Value, json};

test_on_each_backend!(
    a_stateless_client_answers_a_session_era_upstream_through_input_required,
    a_stateless_client_answers_a_stdio_upstream_through_input_required,
    a_client_session_parks_only_so_many_calls,
    a_request_sent_outside_the_call_s_stream_reaches_a_stateless_client,
    a_request_left_for_a_call_that_ended_is_answered_with_an_error,
);

const REVISION: &str = "2026-07-28";

/// A 2026-07-28 `tools/call` without a session from the client named `client` (each name is
/// a logical session of its own), declaring sampling and elicitation.
async fn call(client: &Client, name: &str, id: u64, mut params: Value) -> anyhow::Result<Reply> {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": REVISION,
        "io.modelcontextprotocol/clientCapabilities": { "elicitation": {}, "sampling": {}, "roots": {} },
        "io.modelcontextprotocol/clientInfo": { "name": name, "version": "1.0" },
    });
    let tool = params["name"].as_str().unwrap_or_default().to_string();
    let body = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params });
    let headers = [
        ("mcp-protocol-version", REVISION),
        ("mcp-method", "tools/call"),
        ("mcp-name", tool.as_str()),
    ];
    client.post_with(body.to_string(), None, &headers).await
}

/// The one request an `InputRequiredResult` asks (its key), checked to be `method`, and the
/// state to send back.
fn asked(reply: &Reply, method: &str) -> anyhow::Result<(String, String)> {
    let result = reply.result()?;
    ensure!(result["resultType"] == "input_required", "{}", reply.text);
    let requests = result["inputRequests"]
        .as_object()
        .context("no inputRequests")?;
    ensure!(requests.len() == 1, "{}", reply.text);
    let (key, request) = requests.iter().next().context("no request")?;
    ensure!(request["method"] == method, "{}", reply.text);
    let state = result["requestState"].as_str().context("no requestState")?;
    Ok((key.clone(), state.to_string()))
}

fn retry(tool: &str, arguments: Value, key: &str, answer: Value, state: &str) -> Value {
    json!({ "name": tool, "arguments": arguments, "inputResponses": { key: answer }, "requestState": state })
}

fn text(reply: &Reply) -> anyhow::Result<&str> {
    reply.result()?["content"][0]["text"]
        .as_str()
        .with_context(|| format!("no text: {}", reply.text))
}

async fn abandoned(api: &Client) -> anyhow::Result<u64> {
    let (_, health) = api.get_json("/health").await?;
    let upstream = health["upstreams"]
        .as_array()
        .and_then(|list| list.iter().find(|u| u["name"] == "py"))
        .with_context(|| format!("no upstream py in /health: {health}"))?;
    upstream["abandoned"]
        .as_u64()
        .with_context(|| format!("no abandoned count: {upstream}"))
}

async fn a_stateless_client_answers_a_session_era_upstream_through_input_required(
    db: TestDb,
) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let env: &[(&str, &Path)] = &[("HANDSHAKE_ONLY", Path::new("1"))];
    let upstream = PythonUpstream::start_with(&python, free_port()?, env).await?;
    bridged(&db, &python, &format!("py={}", upstream.url())).await?;
    drop(upstream);
    Ok(())
}

/// A stdio upstream speaks a session-era revision by nature: its requests reach a 2026-07-28
/// client the same way.
async fn a_stateless_client_answers_a_stdio_upstream_through_input_required(
    db: TestDb,
) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let flag = format!("py=stdio:{} {} stdio", python.display(), upstream_script());
    bridged(&db, &python, &flag).await
}

/// A Steward in front of the upstream `py` (`flag`) whose timeout, also how long a parked
/// call waits for the client's answer, is 6 s.
async fn gateway(db: &TestDb, flag: &str) -> anyhow::Result<(TestServer, Client, Client)> {
    let args = ["--upstream", flag, "--upstream-timeout", "6s"];
    let server = TestServer::start_with(db, &args).await?;
    let client = Client::new(&server.mcp_url());
    let api = Client::new(&server.base_url);
    if flag.contains("=stdio:") {
        // An HTTP upstream is reached on first use; a process is started at once.
        wait_until_up(&api, "py").await?;
    }
    Ok((server, client, api))
}

/// Elicitation and sampling asked and answered, a state refused when it is not the client's,
/// a call never resumed given up, the ledger's rows, and the Python SDK's client.
async fn bridged(db: &TestDb, python: &Path, flag: &str) -> anyhow::Result<()> {
    let (server, client, api) = gateway(db, flag).await?;

    // Elicitation: asked, answered, the upstream's result.
    let ask = json!({ "name": "py__ask_name", "arguments": {} });
    let (key, state) = asked(&call(&client, "alice", 1, ask).await?, "elicitation/create")?;
    let ada = json!({ "action": "accept", "content": { "name": "Ada" } });
    let answer = retry("py__ask_name", json!({}), &key, ada, &state);
    // Another session cannot answer it, and that does not spend it.
    let stranger = call(&client, "mallory", 2, answer.clone()).await?;
    ensure!(
        stranger.error_message().contains("another session"),
        "{}",
        stranger.text
    );
    let done = call(&client, "alice", 3, answer.clone()).await?;
    ensure!(text(&done)? == "hello Ada", "{}", done.text);
    // A state is used once; a changed one is not Steward's.
    let again = call(&client, "alice", 4, answer).await?;
    ensure!(
        again.error_message().contains("no longer holds"),
        "{}",
        again.text
    );
    let changed = format!("{state}x");
    let forged = retry("py__ask_name", json!({}), &key, json!({}), &changed);
    let forged = call(&client, "alice", 5, forged).await?;
    ensure!(
        forged.error_message().contains("not one Steward issued"),
        "{}",
        forged.text
    );

    // Sampling, the same way.
    let question = json!({ "question": "?" });
    let sample = json!({ "name": "py__sample", "arguments": question });
    let reply = call(&client, "alice", 6, sample).await?;
    let (key, state) = asked(&reply, "sampling/createMessage")?;
    let said = json!({ "role": "assistant", "model": "m",
        "content": { "type": "text", "text": "forty-two" } });
    let done = call(
        &client,
        "alice",
        7,
        retry("py__sample", question, &key, said, &state),
    )
    .await?;
    ensure!(text(&done)? == "model said: forty-two", "{}", done.text);

    // Never resumed: given up after the upstream's timeout, and the upstream told to stop.
    let confirm = json!({ "name": "py__confirm", "arguments": {} });
    let (key, state) = asked(
        &call(&client, "alice", 8, confirm).await?,
        "elicitation/create",
    )?;
    let mut count = abandoned(&api).await?;
    for _ in 0..300 {
        if count >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        count = abandoned(&api).await?;
    }
    ensure!(count == 1, "abandoned {count}");
    let metrics = api.get("/metrics").await?.text().await?;
    ensure!(
        metrics.contains("steward_upstream_abandoned{upstream=\"py\"} 1"),
        "{metrics}"
    );
    let yes = json!({ "action": "accept", "content": { "ok": true } });
    let late = call(
        &client,
        "alice",
        9,
        retry("py__confirm", json!({}), &key, yes, &state),
    )
    .await?;
    ensure!(
        late.error_message().contains("no longer holds"),
        "{}",
        late.text
    );
    let seen = json!({ "name": "py__seen", "arguments": {} });
    let mut upstream_saw = String::new();
    for id in 10..60 {
        upstream_saw = text(&call(&client, "alice", id, seen.clone()).await?)?.to_string();
        if !upstream_saw.starts_with("cancelled= ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        upstream_saw.starts_with("cancelled=") && !upstream_saw.starts_with("cancelled= "),
        "the upstream was not told to stop: {upstream_saw}"
    );

    // The ledger: one row per client message, naming the upstream; refused states are errors.
    raw::ledger_row(&api, "tool=py__ask_name", |r| r["jsonrpc_id"] == "5").await?;
    let (_, rows) = api
        .get_json("/api/requests?per_page=1000&tool=py__ask_name")
        .await?;
    let rows = rows["requests"].as_array().context("no rows")?.clone();
    let status = |id: &str| {
        rows.iter()
            .find(|r| r["jsonrpc_id"] == id)
            .map(|r| r["status"].as_str().unwrap_or_default().to_string())
    };
    ensure!(rows.len() == 5, "{rows:?}");
    ensure!(
        rows.iter()
            .all(|r| r["upstream"] == "py" && r["upstream_tool"] == "ask_name"),
        "{rows:?}"
    );
    // The call that asked for input did not complete: the retry that answered did.
    for (id, expected) in [
        ("1", "input_required"),
        ("2", "error"),
        ("3", "success"),
        ("4", "error"),
    ] {
        ensure!(
            status(id).as_deref() == Some(expected),
            "row {id}: {rows:?}"
        );
    }

    // A real 2026-07-28 client: the Python SDK in auto mode answers through its callbacks.
    let answer = python_client(python, &server.mcp_url(), "ask").await?;
    ensure!(
        answer["protocol_version"] == REVISION
            && answer["ask_name"] == "hello Ada"
            && answer["sample"] == "model said: forty-two"
            && answer["roots"] == "file:///work/project",
        "{answer}"
    );
    server.stop().await;
    Ok(())
}

/// Over stdio (the same shelf serves HTTP upstreams): a session's 17th parked call is refused
/// with an error naming the limit and counted in `/health` and `/metrics`; another session
/// still parks; answering one frees a place.
async fn a_client_session_parks_only_so_many_calls(db: TestDb) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let flag = format!("py=stdio:{} {} stdio", python.display(), upstream_script());
    let (server, client, api) = gateway(&db, &flag).await?;
    let confirm = json!({ "name": "py__confirm", "arguments": {} });
    let mut parked = Vec::new();
    for id in 1..=16 {
        let reply = call(&client, "alice", id, confirm.clone()).await?;
        parked.push(asked(&reply, "elicitation/create")?);
    }
    let refused = call(&client, "alice", 17, confirm.clone()).await?;
    ensure!(
        refused
            .error_message()
            .contains("already has 16 calls waiting"),
        "{}",
        refused.text
    );
    let (_, health) = api.get_json("/health").await?;
    ensure!(health["upstreams"][0]["parking_refused"] == 1, "{health}");
    let metrics = api.get("/metrics").await?.text().await?;
    ensure!(
        metrics.contains("steward_upstream_parking_refused{upstream=\"py\"} 1"),
        "{metrics}"
    );
    asked(
        &call(&client, "bob", 18, confirm.clone()).await?,
        "elicitation/create",
    )?;
    let (key, state) = parked.pop().context("a parked call")?;
    let yes = json!({ "action": "accept", "content": { "ok": true } });
    let done = call(
        &client,
        "alice",
        19,
        retry("py__confirm", json!({}), &key, yes, &state),
    )
    .await?;
    ensure!(text(&done)? == "confirmed=True", "{}", done.text);
    asked(
        &call(&client, "alice", 20, confirm).await?,
        "elicitation/create",
    )?;
    server.stop().await;
    Ok(())
}

/// The Python SDK server's `roots` tool calls `list_roots()` without naming its request, so the
/// SDK sends it on the session's GET stream: for a 2026-07-28 client's one call in flight it is
/// asked in an `InputRequiredResult` and the retry's answer reaches the upstream; with two of
/// that client's calls in flight it cannot be tied to one, and the upstream is told so.
async fn a_request_sent_outside_the_call_s_stream_reaches_a_stateless_client(
    db: TestDb,
) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let env: &[(&str, &Path)] = &[("HANDSHAKE_ONLY", Path::new("1"))];
    let upstream = PythonUpstream::start_with(&python, free_port()?, env).await?;
    let (server, client, api) = gateway(&db, &format!("py={}", upstream.url())).await?;

    let roots = json!({ "name": "py__roots", "arguments": {} });
    let (key, state) = asked(&call(&client, "alice", 1, roots).await?, "roots/list")?;
    let listed = json!({ "roots": [{ "uri": "file:///work/project" }] });
    let done = call(
        &client,
        "alice",
        2,
        retry("py__roots", json!({}), &key, listed, &state),
    )
    .await?;
    ensure!(text(&done)? == "file:///work/project", "{}", done.text);
    raw::ledger_row(&api, "tool=py__roots", |r| {
        r["jsonrpc_id"] == "1" && r["status"] == "input_required"
    })
    .await?;
    raw::ledger_row(&api, "tool=py__roots", |r| {
        r["jsonrpc_id"] == "2" && r["status"] == "success"
    })
    .await?;

    // Another call of the same client in flight: which one the request serves is unknown.
    let slow = json!({ "name": "py__sleep", "arguments": { "seconds": 4 } });
    let sleeping = {
        let client = client.clone();
        tokio::spawn(async move { call(&client, "alice", 3, slow).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let roots = json!({ "name": "py__roots", "arguments": {} });
    let refused = call(&client, "alice", 4, roots).await?;
    // The SDK passes the refusal on as the call's error.
    ensure!(
        refused.error_message().contains("2 calls in flight"),
        "{}",
        refused.text
    );
    let slept = sleeping.await??;
    ensure!(text(&slept)? == "slept", "{}", slept.text);

    // The Python SDK's own 2026-07-28 client answers it through its roots callback.
    let answer = python_client(&python, &server.mcp_url(), "ask").await?;
    ensure!(answer["roots"] == "file:///work/project", "{answer}");
    server.stop().await;
    drop(upstream);
    Ok(())
}

/// The upstream's `roots_unawaited` sends `roots/list` on its session's GET stream and returns
/// without waiting for the answer; answering each POST in one JSON body, its result leaves
/// only after the request did, so the request is handed to the call and the call ends at its
/// result with the request still waiting for it. The upstream gets an error saying so (not
/// silence), and `/health` and `/metrics` count it.
async fn a_request_left_for_a_call_that_ended_is_answered_with_an_error(
    db: TestDb,
) -> anyhow::Result<()> {
    let Some(python) = python() else {
        return Ok(());
    };
    let env: &[(&str, &Path)] = &[
        ("HANDSHAKE_ONLY", Path::new("1")),
        ("JSON_RESPONSE", Path::new("1")),
    ];
    let upstream = PythonUpstream::start_with(&python, free_port()?, env).await?;
    let (server, client, api) = gateway(&db, &format!("py={}", upstream.url())).await?;

    let unawaited = json!({ "name": "py__roots_unawaited", "arguments": {} });
    let returned = call(&client, "alice", 1, unawaited).await?;
    ensure!(text(&returned)? == "returned", "{}", returned.text);
    let outcomes = json!({ "name": "py__unawaited_outcomes", "arguments": {} });
    let mut seen = String::new();
    for id in 2..100 {
        let reply = call(&client, "alice", id, outcomes.clone()).await?;
        seen = text(&reply)?.to_string();
        if seen != "none" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        seen.starts_with("error ") && seen.contains("that call ended"),
        "the upstream's request was not answered with an error: {seen:?}"
    );
    let (_, health) = api.get_json("/health").await?;
    ensure!(health["upstreams"][0]["orphaned"] == 1, "{health}");
    let metrics = api.get("/metrics").await?.text().await?;
    ensure!(
        metrics.contains("steward_upstream_orphaned{upstream=\"py\"} 1"),
        "{metrics}"
    );
    server.stop().await;
    drop(upstream);
    Ok(())
}
