//! JSON-RPC batches, answered per the negotiated protocol revision. Batches exist only in
//! 2025-03-26 (2025-06-18 removed them; 2024-11-05 never had them). rmcp cannot parse a batch,
//! so for 2025-03-26 each message is sent through the MCP service on its own and the replies
//! are returned together as one JSON array; other revisions get -32600 saying why.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::gate::INVALID_REQUEST;
use super::layers::{json_response, rpc_error};
use crate::protocol;
use crate::sessions::Sessions;

/// The only revision with batches.
pub const BATCH_REVISION: &str = "2025-03-26";
/// rmcp treats a request without `MCP-Protocol-Version` as this revision.
const DEFAULT_REVISION: &str = "2025-03-26";
/// Largest reply read back for one message of a batch.
const MAX_REPLY: usize = 16 * 1024 * 1024;
/// Bound on one message's reply (tool calls have their own, shorter timeout).
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// The revision a batch is judged by: the header, else the session's negotiated one.
pub async fn revision(headers: &HeaderMap, session: Option<&str>, sessions: &Sessions) -> String {
    if let Some(version) = headers
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
    {
        return version.to_string();
    }
    if let Some(version) = match session {
        Some(id) => sessions.protocol_of(id).await,
        None => None,
    } {
        return version;
    }
    DEFAULT_REVISION.to_string()
}

pub async fn answer(inner: Router, parts: Parts, items: Vec<Value>, revision: &str) -> Response {
    if revision != BATCH_REVISION {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            &format!(
                "Invalid Request: JSON-RPC batches are not part of protocol revision {revision} (only {BATCH_REVISION} has them); send one message per POST"
            ),
            None,
        );
    }
    if items
        .iter()
        .any(|m| m.get("method").and_then(Value::as_str) == Some("initialize"))
    {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "Invalid Request: initialize must not be part of a batch; send it on its own",
            None,
        );
    }
    let mut replies = Vec::new();
    for item in items {
        let id = item.get("id").cloned();
        // Batches belong to a revision without `server/discover`: refused like a single one.
        if item.get("method").and_then(Value::as_str) == Some(protocol::DISCOVER)
            && let Some(message) = protocol::discover_refusal(revision)
        {
            replies.push(json!({
                "jsonrpc": "2.0",
                "id": id.unwrap_or(Value::Null),
                "error": { "code": protocol::METHOD_NOT_FOUND, "message": message },
            }));
            continue;
        }
        let mut parts = parts.clone();
        parts.headers.remove(header::CONTENT_LENGTH);
        let request = axum::http::Request::from_parts(parts, Body::from(item.to_string()));
        let response = match inner.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        if let (Some(id), Some(mut reply)) = (id, reply_of(response).await) {
            if let Some(slot) = reply.as_object_mut() {
                slot.insert("id".into(), id);
            }
            replies.push(reply);
        }
    }
    if replies.is_empty() {
        return Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    json_response(StatusCode::OK, &Value::Array(replies))
}

/// The JSON-RPC reply in a JSON or SSE response body.
async fn reply_of(response: Response) -> Option<Value> {
    let body = response.into_body();
    let bytes = tokio::time::timeout(REPLY_TIMEOUT, to_bytes(body, MAX_REPLY))
        .await
        .ok()?
        .ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let is_reply = |v: &Value| v.get("result").is_some() || v.get("error").is_some();
    if let Ok(value) = serde_json::from_str::<Value>(text.trim()) {
        return is_reply(&value).then_some(value);
    }
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .find(is_reply)
}
