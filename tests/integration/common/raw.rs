//! MCP over plain HTTP, byte for byte, for tests that send what no well-behaved client would:
//! the library's raw client (`steward::mcp::client`, which `steward check` uses too) and the
//! few checks the tests repeat with it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::ensure;
use reqwest::StatusCode;
use serde_json::{Value, json};
pub use steward::mcp::client::{ACCEPT, Client, PROTOCOL, Reply, initialize_request};

/// The client name raw tests introduce themselves with.
pub const CLIENT_NAME: &str = "raw-test";

/// `initialize` at the current revision as [`CLIENT_NAME`].
pub fn initialize() -> Value {
    initialize_request(PROTOCOL, CLIENT_NAME, "1.0")
}

/// `initialize` + `notifications/initialized` at `protocol`; the session id.
pub async fn open_session_at(client: &Client, protocol: &str) -> anyhow::Result<String> {
    client.open_session(protocol, CLIENT_NAME).await
}

/// [`open_session_at`] the current revision.
pub async fn open_session(client: &Client) -> anyhow::Result<String> {
    open_session_at(client, PROTOCOL).await
}

/// The event ids of an event stream, in order.
pub fn event_ids(stream: &str) -> Vec<String> {
    stream
        .lines()
        .filter_map(|line| line.strip_prefix("id: "))
        .map(str::to_string)
        .collect()
}

/// A GET of session `session`'s stream resumed after event `last_event_id`: the status and the
/// text replayed (read for up to 5 s).
pub async fn replay(
    client: &Client,
    session: &str,
    last_event_id: &str,
) -> anyhow::Result<(StatusCode, String)> {
    let response = client
        .http()
        .get(client.mcp_url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", PROTOCOL)
        .header("last-event-id", last_event_id)
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    let status = response.status();
    Ok((status, response.text().await.unwrap_or_default()))
}

/// A JSON-RPC id unique in this test binary: a session's requests never share one (MCP: an id
/// is not used twice by the requestor within a session).
pub fn next_request_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `tools/list` in `session`, saying the current revision.
pub async fn tools_list(client: &Client, session: &str) -> anyhow::Result<Reply> {
    let body = json!({ "jsonrpc": "2.0", "id": next_request_id(), "method": "tools/list" });
    client
        .post_with(
            body.to_string(),
            Some(session),
            &[("mcp-protocol-version", PROTOCOL)],
        )
        .await
}

/// The server still does its normal work: a tools/list in `session` lists the 17 tools.
pub async fn still_serves(client: &Client, session: &str) -> anyhow::Result<()> {
    let reply = tools_list(client, session).await?;
    ensure!(
        reply.status == StatusCode::OK,
        "tools/list afterwards: {reply:?}"
    );
    let tools = reply.message["result"]["tools"].as_array().map(Vec::len);
    ensure!(
        tools == Some(17),
        "tools/list afterwards: {:?}",
        reply.message
    );
    Ok(())
}

/// Polls `/api/requests?{query}` until a row matches `pred` (the ledger writes in batches).
pub async fn ledger_row(
    client: &Client,
    query: &str,
    pred: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    for _ in 0..100 {
        let (_, body) = client
            .get_json(&format!("/api/requests?per_page=1000&{query}"))
            .await?;
        if let Some(row) = body["requests"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| pred(r)))
        {
            return Ok(row.clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("no ledger row for {query} matched")
}
