//! The JSON-RPC gate: every POSTed body is checked here before rmcp sees it, so malformed
//! input gets the error JSON-RPC defines, with a message that says what to fix.
//!
//! rmcp alone answers a parse error with HTTP 415 and plain text, and a known method with
//! malformed params with -32601 (it treats it as an unknown custom method). Pure functions,
//! so the fuzz target (`fuzz/`) drives exactly this code.

use rmcp::model::{
    CallToolRequestParams, CancelledNotificationParam, CompleteRequestParams,
    GetPromptRequestParams, InitializeRequestParams, PaginatedRequestParams,
    ProgressNotificationParam, ReadResourceRequestParams, SubscribeRequestParams,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub const PARSE_ERROR: i32 = -32700;
pub const INVALID_REQUEST: i32 = -32600;
pub const INVALID_PARAMS: i32 = -32602;

/// Why a body was refused: the JSON-RPC error, and the request id to echo when known.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub code: i32,
    pub message: String,
    pub id: Option<Value>,
}

impl Rejection {
    fn new(code: i32, message: impl Into<String>, id: Option<Value>) -> Self {
        Rejection {
            code,
            message: message.into(),
            id,
        }
    }

    /// HTTP status: an invalid-params error answers a well-formed request (200, like any
    /// other JSON-RPC error); a body that is not a valid request at all is a 400.
    pub fn http_status(&self) -> u16 {
        if self.code == INVALID_PARAMS && self.id.is_some() {
            200
        } else {
            400
        }
    }

    /// The JSON-RPC error response.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": self.id.clone().unwrap_or(Value::Null),
            "error": { "code": self.code, "message": self.message },
        })
    }
}

/// A body that passed the gate.
#[derive(Debug, Clone, PartialEq)]
pub enum Inspected {
    /// One message; `method` is None for a client's response to a server request.
    Single { method: Option<String> },
    /// A JSON-RPC batch (each element already checked like a single message).
    Batch(Vec<Value>),
}

/// Methods the stateless revision (2026-07-28) removed. rmcp answers them 404 with -32601,
/// which tells a stateless client more than a complaint about their params would.
const REMOVED_WHEN_STATELESS: &[&str] =
    &["initialize", "resources/subscribe", "resources/unsubscribe"];

/// Checks a POSTed body: nesting depth, JSON syntax, JSON-RPC shape, and the params of the
/// methods MCP defines.
pub fn inspect(body: &[u8], max_depth: usize) -> Result<Inspected, Rejection> {
    inspect_for(body, max_depth, false)
}

/// [`inspect`], for a request that is `stateless` (2026-07-28 or later, no session): the
/// methods that revision removed are left for rmcp to refuse.
pub fn inspect_for(body: &[u8], max_depth: usize, stateless: bool) -> Result<Inspected, Rejection> {
    if let Some(depth) = too_deep(body, max_depth) {
        return Err(Rejection::new(
            INVALID_REQUEST,
            format!(
                "Invalid Request: the JSON nests deeper than {max_depth} levels (found {depth}); send flatter arguments"
            ),
            None,
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Rejection::new(
            PARSE_ERROR,
            format!("Parse error: the body is not valid UTF-8 JSON ({e}); send one JSON-RPC message as a JSON object"),
            None,
        )
    })?;
    match value {
        Value::Array(items) if items.is_empty() => Err(Rejection::new(
            INVALID_REQUEST,
            "Invalid Request: an empty batch; send a JSON-RPC message object",
            None,
        )),
        Value::Array(items) => {
            for item in &items {
                check_message(item)?;
            }
            Ok(Inspected::Batch(items))
        }
        single => check_message_for(&single, stateless).map(|method| Inspected::Single { method }),
    }
}

/// The JSON-RPC id of a single message that already passed [`inspect`] (parsed again: only
/// the rare replies that need it call this).
pub fn id_of(body: &[u8]) -> Option<Value> {
    let message: Value = serde_json::from_slice(body).ok()?;
    message.get("id").cloned()
}

/// The depth at which `body` first exceeds `max` levels of `[`/`{`, if it does. Scans bytes
/// without parsing, so a hostile body cannot exhaust the stack of a recursive parser.
pub fn too_deep(body: &[u8], max: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Some(depth);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Checks one JSON-RPC message; returns its method.
pub fn check_message(message: &Value) -> Result<Option<String>, Rejection> {
    check_message_for(message, false)
}

fn check_message_for(message: &Value, stateless: bool) -> Result<Option<String>, Rejection> {
    let Some(object) = message.as_object() else {
        return Err(Rejection::new(
            INVALID_REQUEST,
            "Invalid Request: a JSON-RPC message must be a JSON object with jsonrpc, method and (for a request) id",
            None,
        ));
    };
    let id = match object.get("id") {
        None => None,
        Some(id @ Value::String(_)) => Some(id.clone()),
        Some(id @ Value::Number(n)) if n.as_i64().is_some() => Some(id.clone()),
        Some(other) => {
            return Err(Rejection::new(
                INVALID_REQUEST,
                format!(
                    "Invalid Request: id must be a string or an integer, got {}",
                    kind(other)
                ),
                None,
            ));
        }
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(Rejection::new(
            INVALID_REQUEST,
            "Invalid Request: the member \"jsonrpc\" must be exactly \"2.0\"",
            id,
        ));
    }
    let method = match object.get("method") {
        Some(Value::String(method)) => method.clone(),
        Some(other) => {
            return Err(Rejection::new(
                INVALID_REQUEST,
                format!(
                    "Invalid Request: method must be a string, got {}",
                    kind(other)
                ),
                id,
            ));
        }
        None if id.is_some() && (object.contains_key("result") || object.contains_key("error")) => {
            return Ok(None);
        }
        None => {
            return Err(Rejection::new(
                INVALID_REQUEST,
                "Invalid Request: no method; a request needs method and id, a notification needs method",
                id,
            ));
        }
    };
    let params = object.get("params");
    if let Some(params) = params.filter(|p| !p.is_object()) {
        return Err(Rejection::new(
            INVALID_PARAMS,
            format!(
                "Invalid params: params must be an object, got {}",
                kind(params)
            ),
            id,
        ));
    }
    if stateless && REMOVED_WHEN_STATELESS.contains(&method.as_str()) {
        return Ok(Some(method));
    }
    check_params(&method, params).map_err(|message| {
        Rejection::new(
            INVALID_PARAMS,
            format!("Invalid params for {method}: {message}"),
            id.clone(),
        )
    })?;
    Ok(Some(method))
}

/// Deserialises the params of the methods MCP defines into rmcp's own types, naming the
/// offending field. Other methods pass (rmcp answers unknown ones with -32601).
fn check_params(method: &str, params: Option<&Value>) -> Result<(), String> {
    match method {
        "initialize" => required::<InitializeRequestParams>(params),
        "tools/call" => required::<CallToolRequestParams>(params),
        "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => {
            optional::<PaginatedRequestParams>(params)
        }
        "resources/read" => required::<ReadResourceRequestParams>(params),
        "resources/subscribe" | "resources/unsubscribe" => {
            required::<SubscribeRequestParams>(params)
        }
        "prompts/get" => required::<GetPromptRequestParams>(params),
        "completion/complete" => required::<CompleteRequestParams>(params),
        "notifications/cancelled" => required::<CancelledNotificationParam>(params),
        "notifications/progress" => required::<ProgressNotificationParam>(params),
        _ => Ok(()),
    }
}

fn required<T: DeserializeOwned>(params: Option<&Value>) -> Result<(), String> {
    match params {
        None => Err("params is missing; this method needs a params object".into()),
        Some(params) => deserialize::<T>(params),
    }
}

fn optional<T: DeserializeOwned>(params: Option<&Value>) -> Result<(), String> {
    params.map_or(Ok(()), deserialize::<T>)
}

fn deserialize<T: DeserializeOwned>(params: &Value) -> Result<(), String> {
    match serde_path_to_error::deserialize::<_, T>(params) {
        Ok(_) => Ok(()),
        Err(error) => {
            let inner = error.inner().to_string();
            let path = error.path().to_string();
            Err(if path == "." {
                match inner.strip_prefix("missing field `") {
                    Some(rest) => format!(
                        "params.{} is missing",
                        rest.split('`').next().unwrap_or_default()
                    ),
                    None => format!("params: {inner}"),
                }
            } else {
                format!("params.{path}: {inner}")
            })
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(body: &str) -> Result<Inspected, (i32, String)> {
        inspect(body.as_bytes(), 64).map_err(|r| (r.code, r.message))
    }

    #[test]
    fn classifies_bad_messages() {
        assert_eq!(code("{bad").unwrap_err().0, PARSE_ERROR);
        assert_eq!(code("").unwrap_err().0, PARSE_ERROR);
        assert_eq!(code("5").unwrap_err().0, INVALID_REQUEST);
        assert_eq!(code("[]").unwrap_err().0, INVALID_REQUEST);
        assert_eq!(
            code(r#"{"id":1,"method":"ping"}"#).unwrap_err().0,
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#)
                .unwrap_err()
                .0,
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":7}"#)
                .unwrap_err()
                .0,
            INVALID_REQUEST
        );
        let (c, m) = code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#)
            .unwrap_err();
        assert_eq!(c, INVALID_PARAMS);
        assert!(m.contains("params.name"), "{m}");
        let (_, m) =
            code(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}"#)
                .unwrap_err();
        assert!(m.contains("params.protocolVersion is missing"), "{m}");
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":5}"#)
                .unwrap_err()
                .0,
            INVALID_PARAMS
        );
    }

    #[test]
    fn stateless_requests_leave_removed_methods_to_rmcp() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
        assert!(
            inspect(body, 64).is_err(),
            "a session-era initialize needs its params"
        );
        assert!(matches!(
            inspect_for(body, 64, true),
            Ok(Inspected::Single { method: Some(m) }) if m == "initialize"
        ));
    }

    #[test]
    fn accepts_good_messages() {
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#).unwrap(),
            Inspected::Single {
                method: Some("tools/list".into())
            }
        );
        assert!(code(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).is_ok());
        assert!(code(r#"{"jsonrpc":"2.0","method":"whatever/custom","params":{"a":[1]}}"#).is_ok());
        assert!(matches!(
            code(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            Ok(Inspected::Batch(_))
        ));
        let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":1},"_meta":{"k":1}}});
        assert!(inspect(call.to_string().as_bytes(), 64).is_ok());
    }

    #[test]
    fn depth_is_counted_outside_strings() {
        assert_eq!(too_deep(b"[[[]]]", 3), None);
        assert_eq!(too_deep(b"[[[[]]]]", 3), Some(4));
        assert_eq!(too_deep(br#"{"a":"[[[[[[\"[[["}"#, 2), None);
        let deep = "[".repeat(100_000);
        assert_eq!(code(&deep).unwrap_err().0, INVALID_REQUEST);
    }
}
