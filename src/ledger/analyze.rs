//! Turns an [`Observation`] into a [`LedgerRow`]: what was asked, how it truly ended (a tool
//! that failed is not a success), and the estimated tokens. Runs on the writer, never on the
//! request path.

use serde_json::Value;

use super::entry::{Ending, LedgerRow, Observation, Status, TraceContext};
use super::tokens;

/// JSON-RPC error code for a request the server gave up on (the MCP SDKs' `RequestTimeout`).
pub const REQUEST_TIMEOUT: i32 = -32001;

/// Longest error message kept in a row.
const MAX_ERROR_MESSAGE: usize = 1000;

/// Analyses one observation. Pricing is applied later by the writer (it needs the session's
/// client type).
pub fn analyze(obs: &Observation) -> LedgerRow {
    let request: Value = serde_json::from_slice(&obs.request).unwrap_or(Value::Null);
    let method = match request.get("method").and_then(Value::as_str) {
        Some(method) => method.to_string(),
        None if request.is_array() => "(batch)".to_string(),
        None if request.is_null() => "(invalid json)".to_string(),
        None => "(not a request)".to_string(),
    };
    let id = request.get("id").filter(|id| !id.is_null());
    let params = request.get("params");
    let tool_name = (method == "tools/call")
        .then(|| {
            params
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .flatten();
    let reply = find_reply(&obs.response, id);
    let (status, error_code, error_message) = status_of(obs, reply.as_ref(), id.is_some());

    let args_text = match (method.as_str(), params) {
        ("tools/call", Some(p)) => p.get("arguments").map(Value::to_string).unwrap_or_default(),
        (_, Some(p)) => p.to_string(),
        (_, None) => String::new(),
    };
    let result_text = reply
        .as_ref()
        .map(|r| model_visible_result(&method, r))
        .unwrap_or_default();
    let args_tokens = tokens::count(&args_text);
    let result_tokens = tokens::count(&result_text);

    let mut row = LedgerRow {
        request_id: obs.request_id,
        session_id: obs.session_id.clone(),
        jsonrpc_id: id.map(id_text),
        method,
        tool_name,
        status,
        error_code,
        error_message,
        duration: obs.duration,
        request_bytes: i64::try_from(obs.request.len()).unwrap_or(i64::MAX),
        response_bytes: i64::try_from(obs.response_len).unwrap_or(i64::MAX),
        args_tokens: Some(to_i32(args_tokens)),
        result_tokens: Some(to_i32(result_tokens)),
        total_tokens: Some(to_i32(args_tokens.saturating_add(result_tokens))),
        estimated_cost_usd: None,
        pricing_model: None,
        tokenizer: Some(tokens::TOKENIZER.to_string()),
        sanitized: false,
        timestamp: obs.timestamp,
        trace: trace_context(obs, params),
    };
    row.sanitize();
    row
}

/// The protocol revision (the request's header, or what an initialize asks for) and the W3C
/// trace context a client may send in `params._meta` (as OpenTelemetry's MCP conventions say).
fn trace_context(obs: &Observation, params: Option<&Value>) -> TraceContext {
    // Real values are short; a huge one is not worth carrying to the exporter.
    let text = |value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .filter(|s| s.len() <= 512)
            .map(str::to_string)
    };
    let meta = params.and_then(|p| p.get("_meta"));
    TraceContext {
        protocol_version: obs
            .protocol_version
            .clone()
            .or_else(|| text(params.and_then(|p| p.get("protocolVersion")))),
        traceparent: text(meta.and_then(|m| m.get("traceparent"))),
        tracestate: text(meta.and_then(|m| m.get("tracestate"))),
    }
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The JSON-RPC reply in a JSON or SSE body: the message answering `id`, else the first
/// message with a `result` or an `error`.
fn find_reply(body: &[u8], id: Option<&Value>) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?.trim_start();
    let messages: Vec<Value> = if text.starts_with('{') {
        serde_json::from_str(text).ok().into_iter().collect()
    } else {
        sse_data(text)
            .filter_map(|data| serde_json::from_str(&data).ok())
            .collect()
    };
    let is_reply = |m: &&Value| m.get("result").is_some() || m.get("error").is_some();
    let answers = |m: &&Value| id.is_some_and(|id| m.get("id") == Some(id));
    messages
        .iter()
        .filter(is_reply)
        .find(answers)
        .or_else(|| messages.iter().find(is_reply))
        .cloned()
}

/// The `data` of each SSE event (multi-line data joined with newlines).
fn sse_data(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split("\n\n").filter_map(|event| {
        let lines: Vec<&str> = event
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|data| data.strip_prefix(' ').unwrap_or(data))
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    })
}

fn status_of(
    obs: &Observation,
    reply: Option<&Value>,
    expects_reply: bool,
) -> (Status, Option<i32>, Option<String>) {
    match obs.ending {
        // A client may hang up right after reading the whole reply: then the reply decides.
        Ending::Cancelled if reply.is_none() => {
            return (
                Status::Cancelled,
                None,
                Some("the client went away before the reply was complete".into()),
            );
        }
        Ending::TimedOut => return (Status::Timeout, None, Some("the request timed out".into())),
        _ => {}
    }
    if let Some(error) = reply.and_then(|r| r.get("error")) {
        let code = error
            .get("code")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok());
        let message = error.get("message").and_then(Value::as_str).map(cut);
        // The MCP SDKs' "request timed out" code: the handler was given up on.
        let status = if code == Some(REQUEST_TIMEOUT) {
            Status::Timeout
        } else {
            Status::Error
        };
        return (status, code, message);
    }
    if let Some(result) = reply.and_then(|r| r.get("result")) {
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            return (Status::ToolError, None, Some(cut(&content_text(result))));
        }
        return (Status::Success, None, None);
    }
    match obs.http_status {
        Some(code) if code >= 400 => {
            let body = String::from_utf8_lossy(&obs.response);
            let json_error = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").cloned());
            let rpc_code = json_error
                .as_ref()
                .and_then(|e| e.get("code"))
                .and_then(Value::as_i64)
                .and_then(|c| i32::try_from(c).ok());
            let message = json_error
                .as_ref()
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(cut)
                .unwrap_or_else(|| cut(&format!("HTTP {code}: {body}")));
            (Status::Error, rpc_code, Some(message))
        }
        _ if !expects_reply => (Status::Success, None, None),
        _ => (Status::Error, None, Some("no reply was sent".into())),
    }
}

/// What the model reads of a reply: a tool's text content, or the whole result otherwise
/// (for `tools/list`, the definitions every session pays for).
fn model_visible_result(method: &str, reply: &Value) -> String {
    if let Some(result) = reply.get("result") {
        if method == "tools/call" {
            return content_text(result);
        }
        return result.to_string();
    }
    reply.get("error").map(Value::to_string).unwrap_or_default()
}

/// The text of a tool result's content blocks (structured content when there is no text).
fn content_text(result: &Value) -> String {
    let texts: Vec<&str> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if texts.is_empty() {
        return result
            .get("structuredContent")
            .map(Value::to_string)
            .unwrap_or_default();
    }
    texts.join("\n")
}

fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_ERROR_MESSAGE {
        return text.to_string();
    }
    text.chars().take(MAX_ERROR_MESSAGE).collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::ledger::entry::Micros;

    fn observe(request: &str, status: u16, response: &str) -> Observation {
        Observation {
            request_id: Uuid::new_v4(),
            session_id: Some("s".into()),
            timestamp: Utc::now(),
            duration: Micros::from_micros(1500),
            request: Bytes::from(request.to_string()),
            http_status: Some(status),
            response: Bytes::from(response.to_string()),
            response_len: response.len() as u64,
            ending: Ending::Complete,
            protocol_version: None,
        }
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"find_tasks","arguments":{"query":"hello world"}}}"#;

    #[test]
    fn a_tool_success_in_sse() {
        let sse = "data: \nid: 0\nretry: 3000\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"success\\\":true}\"}],\"isError\":false}}\nid: 1\n\n";
        let row = analyze(&observe(CALL, 200, sse));
        assert_eq!(row.status, Status::Success);
        assert_eq!(row.method, "tools/call");
        assert_eq!(row.tool_name.as_deref(), Some("find_tasks"));
        assert_eq!(row.jsonrpc_id.as_deref(), Some("7"));
        assert_eq!(row.duration.millis(), 1);
        assert!(row.args_tokens.unwrap() > 0 && row.result_tokens.unwrap() > 0);
    }

    #[test]
    fn a_failed_tool_is_a_tool_error() {
        let body = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"boom"}],"isError":true}}"#;
        let row = analyze(&observe(CALL, 200, body));
        assert_eq!(row.status, Status::ToolError);
        assert_eq!(row.error_message.as_deref(), Some("boom"));
    }

    #[test]
    fn json_rpc_errors_keep_code_and_message() {
        let body =
            r#"data: {"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"tool not found"}}"#;
        let row = analyze(&observe(CALL, 200, body));
        assert_eq!((row.status, row.error_code), (Status::Error, Some(-32602)));
        assert_eq!(row.error_message.as_deref(), Some("tool not found"));
    }

    #[test]
    fn transport_rejections_are_errors() {
        let body = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Not Found: Session not found"}}"#;
        let row = analyze(&observe(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            404,
            body,
        ));
        assert_eq!((row.status, row.error_code), (Status::Error, Some(-32600)));
        let row = analyze(&observe("{not json", 400, "Bad Request: parse error"));
        assert_eq!(
            (row.status, row.method.as_str()),
            (Status::Error, "(invalid json)")
        );
    }

    #[test]
    fn notifications_accepted_are_successes() {
        let row = analyze(&observe(
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            202,
            "",
        ));
        assert_eq!(
            (row.status, row.jsonrpc_id.clone()),
            (Status::Success, None)
        );
    }

    #[test]
    fn cancelled_requests_say_so() {
        let mut obs = observe(CALL, 200, "");
        obs.ending = Ending::Cancelled;
        assert_eq!(analyze(&obs).status, Status::Cancelled);
    }

    #[test]
    fn a_reply_read_in_full_decides_even_if_the_client_hung_up() {
        let body = r#"data: {"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":false}}"#;
        let mut obs = observe(CALL, 200, body);
        obs.ending = Ending::Cancelled;
        assert_eq!(analyze(&obs).status, Status::Success);
    }
}
