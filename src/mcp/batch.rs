//! JSON-RPC batches, answered per the negotiated protocol revision. Batches exist only in
//! 2025-03-26 (2025-06-18 removed them; 2024-11-05 never had them). rmcp cannot parse a batch,
//! so for 2025-03-26 each message is sent through the MCP service on its own and the replies
//! are returned together as one JSON array; other revisions get -32600 saying why.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tower::ServiceExt;

use crate::protocol::{self, BATCH_REVISION, Envelope, INVALID_REQUEST};

/// Largest reply read back for one message of a batch.
const MAX_REPLY: usize = 16 * 1024 * 1024;
/// Bound on one message's reply (tool calls have their own, shorter timeout).
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// Answers the batch in `envelope`, sending each message through `inner` (rmcp).
pub async fn answer(inner: Router, parts: Parts, envelope: &Envelope, revision: &str) -> Response {
    if revision != BATCH_REVISION {
        return refuse(&format!(
            "Invalid Request: JSON-RPC batches are not part of protocol revision {revision} (only {BATCH_REVISION} has them); send one message per POST"
        ));
    }
    let messages = envelope.messages();
    if messages
        .iter()
        .any(|m| m.method.as_deref() == Some("initialize"))
    {
        return refuse(
            "Invalid Request: initialize must not be part of a batch; send it on its own",
        );
    }
    let mut replies = Vec::new();
    for message in messages {
        // Batches belong to a revision without `server/discover`: refused like a single one.
        if message.method.as_deref() == Some(protocol::DISCOVER)
            && let Some(refusal) = protocol::discover_refusal(revision)
        {
            let error =
                protocol::error_body(protocol::METHOD_NOT_FOUND, &refusal, message.id.as_ref());
            replies.push(error);
            continue;
        }
        let mut parts = parts.clone();
        parts.headers.remove(header::CONTENT_LENGTH);
        let body = Body::from(envelope.message_bytes(message));
        let request = axum::http::Request::from_parts(parts, body);
        let response = match inner.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        if let (Some(id), Some(mut reply)) = (&message.id, reply_of(response).await) {
            if let Some(slot) = reply.as_object_mut() {
                slot.insert("id".into(), id.to_value());
            }
            replies.push(reply);
        }
    }
    if replies.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    (StatusCode::OK, axum::Json(Value::Array(replies))).into_response()
}

fn refuse(message: &str) -> Response {
    let body = protocol::error_body(INVALID_REQUEST, message, None);
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
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
