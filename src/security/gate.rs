//! The JSON-RPC gate: every POSTed body is checked here before rmcp sees it, so malformed
//! input gets the error JSON-RPC defines, with a message that says what to fix. It parses the
//! body once, into the [`Envelope`] the later layers read.
//!
//! rmcp alone answers a parse error with HTTP 415 and plain text, and a known method with
//! malformed params with -32601 (it treats it as an unknown custom method). Pure functions,
//! so the fuzz target (`fuzz/`) drives exactly this code.

use bytes::Bytes;
use rmcp::model::{
    CallToolRequestParams, CancelledNotificationParam, CompleteRequestParams,
    GetPromptRequestParams, InitializeRequestParams, PaginatedRequestParams,
    ProgressNotificationParam, ReadResourceRequestParams, SubscribeRequestParams,
};
use serde::de::DeserializeOwned;

use crate::protocol::{
    self, CallSpans, Envelope, INVALID_PARAMS, INVALID_REQUEST, Message, Rejection,
};

/// Methods the stateless revision (2026-07-28) removed. rmcp answers them 404 with -32601,
/// which tells a stateless client more than a complaint about their params would.
const REMOVED_WHEN_STATELESS: &[&str] =
    &["initialize", "resources/subscribe", "resources/unsubscribe"];

/// Checks a POSTed body: nesting depth, JSON syntax, JSON-RPC shape, and the params of the
/// methods MCP defines. `revision` is the request's `MCP-Protocol-Version`; a `stateless`
/// request (2026-07-28 or later, no session) leaves the methods that revision removed to rmcp.
pub fn inspect(
    body: Bytes,
    max_depth: usize,
    revision: Option<String>,
    stateless: bool,
) -> Result<Envelope, Rejection> {
    // One walk finds both: the depth is reported before any parse, even of malformed JSON.
    let scan = protocol::scan(&body, max_depth);
    if let Some(depth) = scan.too_deep {
        return Err(Rejection::new(
            INVALID_REQUEST,
            format!(
                "Invalid Request: the JSON nests deeper than {max_depth} levels (found {depth}); send flatter arguments"
            ),
            None,
        ));
    }
    let mut envelope = Envelope::parse_scanned(body, revision, scan)?;
    let stateless = stateless && !envelope.is_batch();
    let mut plain = Vec::new();
    for (index, message) in envelope.messages().iter().enumerate() {
        if let Some(call) = check_message(&envelope, message, stateless)? {
            plain.push((index, call));
        }
    }
    // What the check read of plain calls, so the ledger need not read their params again.
    for (index, call) in plain {
        envelope.note_plain_call(index, call);
    }
    Ok(envelope)
}

/// Checks a message's params; a plain `tools/call`'s name and arguments as [`plain_call`]
/// found them.
fn check_message(
    envelope: &Envelope,
    message: &Message,
    stateless: bool,
) -> Result<Option<CallSpans>, Rejection> {
    let Some(method) = message.method.as_deref() else {
        return Ok(None);
    };
    if stateless && REMOVED_WHEN_STATELESS.contains(&method) {
        return Ok(None);
    }
    check_params(method, envelope.params(message)).map_err(|problem| {
        Rejection::new(
            INVALID_PARAMS,
            format!("Invalid params for {method}: {problem}"),
            message.id.clone(),
        )
    })
}

/// Deserialises the params of the methods MCP defines into rmcp's own types, naming the
/// offending field. Other methods pass (rmcp answers unknown ones with -32601). A plain
/// `tools/call` gives where its name and arguments lie in its params.
fn check_params(method: &str, params: Option<&str>) -> Result<Option<CallSpans>, String> {
    if method == "tools/call" {
        if let Some(call) = params.and_then(plain_call) {
            return Ok(Some(call));
        }
        return required::<CallToolRequestParams>(params).map(|()| None);
    }
    check_others(method, params).map(|()| None)
}

/// [`check_params`] for every method but `tools/call`.
fn check_others(method: &str, params: Option<&str>) -> Result<(), String> {
    match method {
        "initialize" => required::<InitializeRequestParams>(params),
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

/// The params of most calls: a name and arguments, nothing else. What rmcp's
/// `CallToolRequestParams` accepts of them is checked without building its arguments' map (or
/// keeping serde_path_to_error's path): a string name and an object (or null) of arguments
/// ([`CallSpans::read`]). The envelope has already made sure every value of the body reads as
/// `Value` would read it (`protocol::readable`), so the arguments are only skipped over. `None` sends the
/// params to the full check, which names what is wrong; a `None` never refuses anything.
fn plain_call(params: &str) -> Option<CallSpans> {
    CallSpans::read(params)
}

fn required<T: DeserializeOwned>(params: Option<&str>) -> Result<(), String> {
    match params {
        None => Err("params is missing; this method needs a params object".into()),
        Some(params) => deserialize::<T>(params),
    }
}

fn optional<T: DeserializeOwned>(params: Option<&str>) -> Result<(), String> {
    params.map_or(Ok(()), deserialize::<T>)
}

fn deserialize<T: DeserializeOwned>(params: &str) -> Result<(), String> {
    let mut json = serde_json::Deserializer::from_str(params);
    match serde_path_to_error::deserialize::<_, T>(&mut json) {
        Ok(_) => Ok(()),
        Err(error) => {
            let inner = without_position(error.inner());
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

/// serde_json's message without " at line L column C": the path already says where.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&position).unwrap_or(&text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::PARSE_ERROR;
    use serde_json::json;

    fn code(body: &str) -> Result<Envelope, (i32, String)> {
        inspect(Bytes::copy_from_slice(body.as_bytes()), 64, None, false)
            .map_err(|r| (r.code, r.message))
    }

    #[test]
    fn classifies_bad_messages() {
        assert_eq!(code("{bad").unwrap_err().0, PARSE_ERROR);
        assert_eq!(code("5").unwrap_err().0, INVALID_REQUEST);
        let (c, m) = code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#)
            .unwrap_err();
        assert_eq!(c, INVALID_PARAMS);
        assert!(m.contains("params.name") && !m.contains("line 1"), "{m}");
        let (_, m) =
            code(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}"#)
                .unwrap_err();
        assert!(m.contains("params.protocolVersion is missing"), "{m}");
        let (c, m) = code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#).unwrap_err();
        assert_eq!(c, INVALID_PARAMS);
        assert!(m.contains("params is missing"), "{m}");
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":5}}]"#;
        assert!(code(batch).unwrap_err().1.contains("params.cursor"));
    }

    #[test]
    fn stateless_requests_leave_removed_methods_to_rmcp() {
        let body =
            Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#);
        assert!(
            inspect(body.clone(), 64, None, false).is_err(),
            "a session-era initialize needs its params"
        );
        let envelope = inspect(body, 64, None, true).expect("left to rmcp");
        assert_eq!(
            envelope.single().and_then(|m| m.method.as_deref()),
            Some("initialize")
        );
    }

    #[test]
    fn accepts_good_messages() {
        let envelope = code(r#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#).unwrap();
        assert_eq!(
            envelope.single().and_then(|m| m.method.as_deref()),
            Some("tools/list")
        );
        assert!(code(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).is_ok());
        assert!(code(r#"{"jsonrpc":"2.0","method":"whatever/custom","params":{"a":[1]}}"#).is_ok());
        assert!(code(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).is_ok_and(|e| e.is_batch()));
        let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":1},"_meta":{"k":1}}});
        assert!(code(&call.to_string()).is_ok());
    }

    #[test]
    fn a_plain_call_is_refused_as_before() {
        let call = |params: &str| {
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#)
        };
        let plain = r#"{"name":"x","arguments":{"a":[1,-2,3.5,"\\n",null,true,{"b":{}}]}}"#;
        assert!(plain_call(plain).is_some());
        assert!(code(&call(plain)).is_ok());
        let spans = plain_call(r#"{"arguments":null,"name":"x"}"#);
        assert_eq!(spans.map(|s| (s.name, s.arguments)), Some((25..28, None)));
        // Anything else goes to the full check, which accepts what rmcp accepts...
        let with_meta = r#"{"name":"x","_meta":{"progressToken":1}}"#;
        assert!(plain_call(with_meta).is_none());
        assert!(code(&call(with_meta)).is_ok());
        // ...and names what it refuses, as before.
        for (params, named) in [
            (r#"{"name":"x","arguments":[1]}"#, "params.arguments"),
            (r#"{"name":"x","arguments":"a"}"#, "params.arguments"),
            (
                r#"{"name":"x","arguments":{"a":1},"name":"y"}"#,
                "duplicate field `name`",
            ),
            (r#"{"name":7}"#, "params.name"),
            (r#"{"arguments":{}}"#, "params.name is missing"),
        ] {
            assert!(plain_call(params).is_none(), "{params}");
            let (code, message) = code(&call(params)).expect_err(params);
            assert_eq!(code, INVALID_PARAMS, "{params}");
            assert!(message.contains(named), "{params}: {message}");
        }
        // Values no `Value` can hold are refused by the envelope, before the params' check.
        for params in [
            r#"{"name":"x","arguments":{"a":1e400}}"#,
            r#"{"name":"x","arguments":{"a":"\ud800"}}"#,
        ] {
            assert_eq!(code(&call(params)).unwrap_err().0, PARSE_ERROR, "{params}");
        }
    }

    #[test]
    fn a_plain_call_s_name_and_arguments_are_where_the_gate_read_them() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x\"y","arguments":{"a":1}}}"#;
        let envelope = code(body).unwrap();
        let message = envelope.single().unwrap();
        let call = message.call_spans().unwrap();
        assert_eq!(&body[call.name.clone()], r#""x\"y""#);
        let arguments = call.arguments.clone().map(|a| &body[a]);
        assert_eq!(arguments, Some(r#"{"a":1}"#));
        // A batch's item keeps them, where its own body has them.
        let batch = format!(r#"[{{"jsonrpc":"2.0","id":2,"method":"ping"}}, {body}]"#);
        let envelope = code(&batch).unwrap();
        assert_eq!(envelope.messages()[0].call_spans(), None);
        let item = envelope.item(&envelope.messages()[1]);
        assert_eq!(item.single().and_then(Message::call_spans), Some(call));
        // Params that are not a plain call's have none.
        let with_meta =
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{}}}"#;
        assert_eq!(
            code(with_meta).unwrap().single().unwrap().call_spans(),
            None
        );
    }

    /// How deep is counted is `protocol::readable`'s to test; here, that the gate refuses a
    /// body too deep for a recursive parser before parsing it.
    #[test]
    fn a_body_too_deep_is_refused_before_it_is_parsed() {
        let deep = "[".repeat(100_000);
        let (code, message) = code(&deep).unwrap_err();
        assert_eq!(code, INVALID_REQUEST);
        assert!(
            message.contains("deeper than 64 levels (found 65)"),
            "{message}"
        );
    }
}
