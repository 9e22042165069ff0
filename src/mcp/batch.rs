//! JSON-RPC batches, answered per the session's negotiated protocol revision. Batches exist
//! only in 2025-03-26 (2025-06-18 removed them; 2024-11-05 never had them). rmcp cannot parse a
//! batch, so for 2025-03-26 each message is sent on its own through `items` (the ledger's
//! capture, a rate-limit token, then rmcp): each is its own ledger row with its own method,
//! tool and status. The replies are returned together as one JSON array. A batch holds at most
//! [`MAX_ITEMS`] messages and its replies at most [`MAX_REPLY_BYTES`]; other revisions get
//! -32600 saying why.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tower::ServiceExt;

use crate::ledger::http::RecordedApart;
use crate::protocol::{self, BATCH_REVISION, Envelope, INVALID_REQUEST, Message};
use crate::security::layers::Prepaid;

/// Most messages in one batch.
pub const MAX_ITEMS: usize = 100;
/// Most bytes of replies one batch returns (the messages after are not run).
pub const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;
/// Bound on one message's reply (tool calls have their own, shorter timeout).
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// Answers the batch in `envelope`, for a session that negotiated `revision` (None: no session).
pub async fn answer(
    items: Router,
    parts: Parts,
    envelope: &Envelope,
    revision: Option<&str>,
) -> Response {
    if let Some(refusal) = refusal(envelope, revision) {
        return refuse(&refusal);
    }
    let mut replies = Vec::new();
    let mut budget = MAX_REPLY_BYTES;
    for (index, message) in envelope.messages().iter().enumerate() {
        if budget == 0 {
            replies.extend(message.id.as_ref().map(|id| {
                protocol::error_body(INVALID_REQUEST, &format!(
                    "Invalid Request: not run: the batch's replies reached {MAX_REPLY_BYTES} bytes; send this message again on its own"
                ), Some(id))
            }));
            continue;
        }
        let request = item_request(&parts, envelope, message, index == 0);
        let response = match items.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let reply = reply_of(response, budget).await;
        let Some(id) = &message.id else {
            continue;
        };
        let reply = match reply {
            Ok(Some(mut reply)) => {
                if let Some(slot) = reply.as_object_mut() {
                    slot.insert("id".into(), id.to_value());
                }
                budget = budget.saturating_sub(reply.to_string().len());
                reply
            }
            Ok(None) => continue,
            Err(()) => {
                budget = 0;
                protocol::error_body(
                    INVALID_REQUEST,
                    &format!(
                        "Invalid Request: this message ran, but its reply would take the batch's replies past {MAX_REPLY_BYTES} bytes; send it on its own to read the reply"
                    ),
                    Some(id),
                )
            }
        };
        replies.push(reply);
    }
    let mut response = match replies.is_empty() {
        true => StatusCode::ACCEPTED.into_response(),
        false => (StatusCode::OK, axum::Json(Value::Array(replies))).into_response(),
    };
    response.extensions_mut().insert(RecordedApart);
    response
}

/// Why the batch is refused as a whole, if it is. (The fuzz target in `fuzz/` drives this.)
pub fn refusal(envelope: &Envelope, revision: Option<&str>) -> Option<String> {
    let Some(revision) = revision else {
        return Some(format!(
            "Invalid Request: JSON-RPC batches need a session that negotiated {BATCH_REVISION} (initialize with that protocolVersion, then send the batch with its Mcp-Session-Id); send one message per POST"
        ));
    };
    if revision != BATCH_REVISION {
        return Some(format!(
            "Invalid Request: JSON-RPC batches are not part of protocol revision {revision} (only {BATCH_REVISION} has them); send one message per POST"
        ));
    }
    let messages = envelope.messages();
    if messages.len() > MAX_ITEMS {
        return Some(format!(
            "Invalid Request: a batch holds at most {MAX_ITEMS} messages, this one has {}; split it into smaller batches",
            messages.len()
        ));
    }
    messages
        .iter()
        .any(|m| m.method.as_deref() == Some("initialize"))
        .then(|| {
            "Invalid Request: initialize must not be part of a batch; send it on its own".into()
        })
}

/// One message of the batch as a request of its own. The first message is paid for by the
/// POST's rate-limit token; each other one takes its own.
fn item_request(
    parts: &Parts,
    envelope: &Envelope,
    message: &Message,
    first: bool,
) -> axum::http::Request<Body> {
    let mut parts = parts.clone();
    parts.headers.remove(header::CONTENT_LENGTH);
    let item = Arc::new(envelope.item(message));
    let body = Body::from(item.body().clone());
    parts.extensions.insert(item);
    if first {
        parts.extensions.insert(Prepaid);
    }
    axum::http::Request::from_parts(parts, body)
}

fn refuse(message: &str) -> Response {
    let body = protocol::error_body(INVALID_REQUEST, message, None);
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// The JSON-RPC reply in a JSON or SSE response body, read up to `budget` bytes (Err beyond).
async fn reply_of(response: Response, budget: usize) -> Result<Option<Value>, ()> {
    let body = response.into_body();
    let bytes = match tokio::time::timeout(REPLY_TIMEOUT, to_bytes(body, budget)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return Err(()),
        Err(_) => return Ok(None),
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(None);
    };
    let is_reply = |v: &Value| v.get("result").is_some() || v.get("error").is_some();
    if let Ok(value) = serde_json::from_str::<Value>(text.trim()) {
        return Ok(is_reply(&value).then_some(value));
    }
    Ok(text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .find(is_reply))
}
