//! The protocol's vocabulary, shared by every layer of the request path: JSON-RPC error codes,
//! MCP protocol revisions and header names, the one builder of a JSON-RPC error body, the typed
//! [`envelope`] a POSTed body is parsed into once, and the rules rmcp leaves to the server.
//!
//! A foundation module: it imports nothing from the crate.
//!
//! - `server/discover` exists from 2026-07-28 on: a client that negotiated an older revision
//!   gets "method not found" for it, not a complaint about missing `_meta` fields.

mod client_text;
pub mod envelope;
mod readable;

use axum::http::HeaderName;
use serde_json::{Value, json};

pub use client_text::{CUT_MARK, MAX_CLIENT_TEXT_CHARS, cut_client_json, cut_client_text};
pub use envelope::{CallSpans, Envelope, Id, Message, Rejection};
pub use readable::{Scan, scan};

/// JSON-RPC "parse error": the body is not JSON.
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC "invalid request": JSON, but not a JSON-RPC message (also used for transport
/// refusals, which JSON-RPC has no code of its own for).
pub const INVALID_REQUEST: i32 = -32600;
/// JSON-RPC "method not found".
pub const METHOD_NOT_FOUND: i32 = -32601;
/// JSON-RPC "invalid params".
pub const INVALID_PARAMS: i32 = -32602;
/// JSON-RPC "internal error".
pub const INTERNAL_ERROR: i32 = -32603;

/// `Mcp-Session-Id`.
pub const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
/// `MCP-Protocol-Version`.
pub const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// What a request for an unknown, ended or another principal's session is told (with 404).
pub const SESSION_NOT_FOUND: &str = "Not Found: Session not found: this Mcp-Session-Id is unknown, expired or was closed. Start a new session with initialize";
/// The first revision without sessions.
pub const STATELESS_REVISION: &str = "2026-07-28";
/// The only revision with JSON-RPC batches (2025-06-18 removed them; 2024-11-05 never had them).
pub const BATCH_REVISION: &str = "2025-03-26";
/// The revision rmcp assumes for a session that never told it otherwise.
pub const DEFAULT_REVISION: &str = "2025-03-26";

/// The method [`discover_refusal`] rules on.
pub const DISCOVER: &str = "server/discover";
/// The first revision with `server/discover`.
const DISCOVER_FROM: &str = "2026-07-28";

/// A JSON-RPC error response. `id` is the request's when known, else null (as JSON-RPC wants
/// for a message whose id could not be read).
pub fn error_body(code: i32, message: &str, id: Option<&Id>) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.map_or(Value::Null, Id::to_value),
        "error": { "code": code, "message": message },
    })
}

/// Why `server/discover` is refused to a request speaking `revision`, or None when it is allowed.
pub fn discover_refusal(revision: &str) -> Option<String> {
    (revision < DISCOVER_FROM).then(|| {
        format!(
            "server/discover is not part of MCP {revision} (it exists from {DISCOVER_FROM}); use initialize, or send MCP-Protocol-Version: {DISCOVER_FROM} without a session"
        )
    })
}

/// Whether a request speaking `revision` without a session id is a stateless one.
pub fn is_stateless(revision: &str) -> bool {
    revision >= STATELESS_REVISION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discover_is_refused_before_its_revision_only() {
        for old in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
            let message = discover_refusal(old).expect("refused");
            assert!(message.contains(old) && message.contains(DISCOVER_FROM));
        }
        assert_eq!(discover_refusal("2026-07-28"), None);
    }

    #[test]
    fn error_bodies_echo_the_id_or_null() {
        let body = error_body(INVALID_REQUEST, "no", Some(&Id::Number(7)));
        assert_eq!(body["id"], 7);
        assert_eq!(body["error"]["code"], INVALID_REQUEST);
        assert_eq!(body["jsonrpc"], "2.0");
        assert!(error_body(PARSE_ERROR, "x", None)["id"].is_null());
    }
}
