//! Protocol rules rmcp leaves to the server, checked before a message reaches it.
//! (JSON-RPC batches are answered or refused per revision by the security guard outside this
//! layer, `security::batch`.)
//! - `server/discover` exists from 2026-07-28 on: a client that negotiated an older revision
//!   gets "method not found" for it, not a complaint about missing `_meta` fields.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::Store;

/// The first revision with `server/discover`.
const DISCOVER_FROM: &str = "2026-07-28";
/// What the spec tells a server to assume when a request names no revision.
const DEFAULT_REVISION: &str = "2025-03-26";

pub async fn enforce(State(store): State<Store>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // The body's size was bounded (--max-body-bytes) by the layers outside this one.
    let bytes = match to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(_) => return next.run(Request::from_parts(parts, Body::empty())).await,
    };
    // Batches never get here: the security guard outside this layer answers or refuses them
    // per revision (`security::batch`).
    if let Some(id) = discover_id(&bytes) {
        let revision = revision(&store, &parts.headers).await;
        if revision.as_str() < DISCOVER_FROM {
            return rejection(
                StatusCode::BAD_REQUEST,
                id,
                -32601,
                format!(
                    "server/discover is not part of MCP {revision} (it exists from {DISCOVER_FROM}); use initialize, or send MCP-Protocol-Version: {DISCOVER_FROM} without a session"
                ),
            );
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The JSON-RPC id of a `server/discover` request, if that is what the body is.
fn discover_id(body: &[u8]) -> Option<Value> {
    let message: Value = serde_json::from_slice(body).ok()?;
    (message.get("method")?.as_str()? == "server/discover")
        .then(|| message.get("id").cloned().unwrap_or(Value::Null))
}

/// The revision this request speaks: its `MCP-Protocol-Version` header, else the one its
/// session negotiated, else the spec's default.
async fn revision(store: &Store, headers: &axum::http::HeaderMap) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(version) = header("mcp-protocol-version") {
        return version.to_string();
    }
    if let Some(id) = header("mcp-session-id") {
        match store.get_session(id).await {
            Ok(Some(row)) => {
                if let Some(version) = row.protocol_version {
                    return version;
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot read the session's protocol revision"),
        }
    }
    DEFAULT_REVISION.to_string()
}

fn rejection(status: StatusCode, id: Value, code: i64, message: String) -> Response {
    let body = json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_discover_requests_only() {
        assert_eq!(
            discover_id(br#"{"jsonrpc":"2.0","id":7,"method":"server/discover"}"#),
            Some(json!(7))
        );
        assert_eq!(
            discover_id(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#),
            None
        );
        assert_eq!(discover_id(b"not json"), None);
    }
}
