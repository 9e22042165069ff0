//! A session-era client's tool calls of an HTTP upstream answered in front of rmcp
//! (`steward::mcp::raw`), with the official Python SDK server as the upstream: once the session
//! has called the upstream through rmcp, its plain `tools/call`s are answered directly, with the
//! same reply, an event stream that can be replayed, the same ledger rows, and the client's
//! cancellation and hanging up reaching the upstream. Without the Python SDK these tests skip.

use crate::common;
use crate::gateway::{PythonUpstream, free_port, python, text};

use std::time::Duration;

use anyhow::{Context, ensure};
use common::raw::{self, Client, event_ids};
use common::{TestDb, TestServer, test_on_each_backend};
use serde_json::json;

test_on_each_backend!(
    a_session_s_later_calls_are_answered_in_front_of_rmcp,
    a_direct_call_is_cancelled_by_the_client_and_by_its_hanging_up,
);

/// `/health`'s count of `upstream`'s calls answered in front of rmcp.
async fn direct(api: &Client, upstream: &str) -> anyhow::Result<u64> {
    let (_, health) = api.get_json("/health").await?;
    health["upstreams"]
        .as_array()
        .and_then(|list| list.iter().find(|u| u["name"] == upstream))
        .and_then(|u| u["calls_direct"].as_u64())
        .with_context(|| format!("no calls_direct for {upstream}: {health}"))
}

async fn gateway(db: &TestDb) -> anyhow::Result<Option<(PythonUpstream, TestServer)>> {
    let Some(python) = python() else {
        return Ok(None);
    };
    let upstream = PythonUpstream::start(&python, free_port()?).await?;
    let http = format!("py={}", upstream.url());
    let server = TestServer::start_with(db, &["--upstream", &http]).await?;
    Ok(Some((upstream, server)))
}

async fn a_session_s_later_calls_are_answered_in_front_of_rmcp(db: TestDb) -> anyhow::Result<()> {
    let Some((upstream, server)) = gateway(&db).await? else {
        return Ok(());
    };
    let api = Client::new(&server.base_url);
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(raw::PROTOCOL, "direct").await?;

    // The first call goes through rmcp, which makes the session's connection known.
    let first = client
        .call(Some(&session), 1, "py__echo", json!({ "text": "one" }))
        .await?;
    ensure!(text(&first) == "one", "{}", first.text);
    ensure!(direct(&api, "py").await? == 0, "the first call was direct");

    // The next is answered in front of rmcp, as an event stream like rmcp's.
    let second = client
        .call(Some(&session), 2, "py__echo", json!({ "text": "two" }))
        .await?;
    ensure!(
        text(&second) == "two" && !second.is_tool_error(),
        "{}",
        second.text
    );
    ensure!(second.message["id"] == 2, "{}", second.text);
    let kind = second
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    ensure!(kind == Some("text/event-stream"), "{kind:?}");
    ensure!(
        direct(&api, "py").await? == 1,
        "the second call was not direct"
    );

    // Its events can be replayed from the priming event, within the session only.
    let ids = event_ids(&second.text);
    ensure!(
        ids.len() == 2,
        "a priming event and the answer: {}",
        second.text
    );
    let (status, replayed) = raw::replay(&client, &session, &ids[0]).await?;
    ensure!(
        status == 200 && replayed.contains(r#""id":2"#) && replayed.contains("two"),
        "{status}: {replayed}"
    );
    let other = client.open_session(raw::PROTOCOL, "other").await?;
    let (status, _) = raw::replay(&client, &other, &ids[0]).await?;
    ensure!(
        status == 404,
        "another session replayed the stream: {status}"
    );

    // An isError result, and an upstream's JSON-RPC error, answered directly too.
    let failed = client
        .call(Some(&session), 3, "py__fail", json!({ "message": "boom" }))
        .await?;
    ensure!(failed.is_tool_error(), "{}", failed.text);
    let unknown = client
        .call(Some(&session), 4, "py__no_such_tool", json!({}))
        .await?;
    ensure!(
        unknown.message.get("error").is_some() || unknown.is_tool_error(),
        "{}",
        unknown.text
    );
    ensure!(
        direct(&api, "py").await? == 3,
        "the failing calls were not direct"
    );

    // A call with `_meta` (a progress token) goes through rmcp, and works as before.
    let progress = json!({ "jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": "py__progress", "arguments": { "steps": 2 }, "_meta": { "progressToken": "p5" } } });
    let progress = client.post(&progress, Some(&session)).await?;
    ensure!(
        progress.text.contains(r#""progressToken":"p5""#),
        "{}",
        progress.text
    );
    ensure!(text(&progress) == "done", "{}", progress.text);
    ensure!(
        direct(&api, "py").await? == 3,
        "a call with _meta was direct"
    );

    // The ledger's rows are those of rmcp's path.
    let query = format!("session_id={session}");
    let row = |id: &'static str| raw::ledger_row(&api, &query, move |r| r["jsonrpc_id"] == id);
    let echoed = row("2").await?;
    let share = echoed["upstream_us"].as_i64().context("no upstream_us")?;
    let total = echoed["duration_us"].as_i64().context("no duration_us")?;
    ensure!(
        echoed["status"] == "success"
            && echoed["upstream"] == "py"
            && echoed["tool_name"] == "py__echo"
            && echoed["upstream_tool"] == "echo"
            && share > 0
            && share <= total,
        "{echoed}"
    );
    let failed = row("3").await?;
    ensure!(
        failed["status"] == "tool_error" && failed["upstream_tool"] == "fail",
        "{failed}"
    );
    server.stop().await;
    drop(upstream);
    Ok(())
}

/// How many calls the upstream's `seen` says were cancelled.
fn cancelled(seen: &str) -> usize {
    let ids = seen.trim_start_matches("cancelled=").split(' ').next();
    ids.unwrap_or_default()
        .split(',')
        .filter(|id| !id.is_empty())
        .count()
}

/// What the upstream's `seen` says once `expected` holds (up to 10 s), or at the end.
async fn seen_until(
    client: &Client,
    session: &str,
    first_id: u64,
    expected: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let mut seen = String::new();
    for id in first_id..first_id + 50 {
        let reply = client
            .call(Some(session), id, "py__seen", json!({}))
            .await?;
        seen = text(&reply).to_string();
        if expected(&seen) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(seen)
}

async fn a_direct_call_is_cancelled_by_the_client_and_by_its_hanging_up(
    db: TestDb,
) -> anyhow::Result<()> {
    let Some((upstream, server)) = gateway(&db).await? else {
        return Ok(());
    };
    let api = Client::new(&server.base_url);
    let client = Client::new(&server.mcp_url());
    let session = client.open_session(raw::PROTOCOL, "cancels").await?;
    let before = seen_until(&client, &session, 1, |_| true).await?;
    ensure!(before.starts_with("cancelled= "), "{before}");

    // The client cancels a direct call: the upstream is told, and the stream ends unanswered.
    let call = client.call(Some(&session), 10, "py__slow", json!({ "seconds": 120 }));
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let note = json!({ "jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": { "requestId": 10, "reason": "changed my mind" } });
        client.post(&note, Some(&session)).await
    };
    let (answered, noted) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(call, cancel)
    })
    .await
    .context("the cancelled call's stream did not end")?;
    let answered = answered?;
    ensure!(noted?.status == 202, "the cancellation was refused");
    ensure!(
        answered.message.get("result").is_none(),
        "{}",
        answered.text
    );
    ensure!(
        direct(&api, "py").await? == 1,
        "the slow call was not direct"
    );
    let seen = seen_until(&client, &session, 20, |s| !s.starts_with("cancelled= ")).await?;
    ensure!(
        !seen.starts_with("cancelled= ") && seen.ends_with("sleeping=0"),
        "the upstream was not told to stop the call: {seen}"
    );
    let cancelled_once = cancelled(&seen);

    // The client hangs up: after the grace (5 s) without it coming back, the upstream is told.
    let call = client.call(Some(&session), 100, "py__slow", json!({ "seconds": 120 }));
    let hung_up = tokio::time::timeout(Duration::from_millis(1500), call).await;
    ensure!(hung_up.is_err(), "the slow call answered: {hung_up:?}");
    let seen = seen_until(&client, &session, 101, |s| cancelled(s) > cancelled_once).await?;
    ensure!(
        seen.ends_with("sleeping=0"),
        "the upstream was not told to stop the call: {seen}"
    );
    let query = format!("session_id={session}");
    let row = raw::ledger_row(&api, &query, |r| r["jsonrpc_id"] == "100").await?;
    ensure!(
        row["status"] == "cancelled" && row["tool_name"] == "py__slow",
        "{row}"
    );
    server.stop().await;
    drop(upstream);
    Ok(())
}
