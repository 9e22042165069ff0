//! A `tools/call` of an HTTP upstream's tool answered with the upstream's result as the text it
//! sent, for a session-era client whose call `mcp::raw` serves outside rmcp. The result is
//! still parsed once (a malformed one is refused as on rmcp's path, and the parsed result is
//! what the replay store keeps), but not encoded again unless its shape must change for the
//! client's revision.

use std::time::Instant;

use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, ServerResult};
use rmcp::service::Peer;
use rmcp::{ErrorData, RoleServer};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::answer::Answer;
use super::error::UpstreamError;
use super::kinds::Exchange;
use super::status::UpstreamStatus;
use super::{Caller, Gateway, Link, Upstream};

/// What rmcp answers a session-era client for an `InputRequiredResult`.
const INPUT_REQUIRED_TOO_NEW: &str =
    "InputRequiredResult requires negotiated protocol version 2026-07-28 or newer";

/// A request's params for an upstream: a JSON tree, or a plain `tools/call`'s as the client
/// wrote it, passed on without being parsed or encoded again.
pub enum Params<'a> {
    Tree(Value),
    Call {
        /// The tool's name at the upstream.
        name: &'a str,
        /// The arguments' JSON object as the client wrote it; `None` when it sent none.
        arguments: Option<&'a str>,
    },
}

impl Params<'_> {
    /// The params as a JSON tree (a call's arguments parsed): for the paths that change or
    /// inspect them.
    pub fn to_tree(&self) -> Result<Value, UpstreamError> {
        match self {
            Params::Tree(tree) => Ok(tree.clone()),
            Params::Call { name, arguments } => {
                let mut params = Map::new();
                params.insert("name".into(), Value::from(*name));
                if let Some(arguments) = arguments {
                    let arguments = serde_json::from_str(arguments).map_err(|e| {
                        UpstreamError::Protocol(format!("cannot read the call's arguments: {e}"))
                    })?;
                    params.insert("arguments".into(), arguments);
                }
                Ok(Value::Object(params))
            }
        }
    }

    pub fn into_tree(self) -> Result<Value, UpstreamError> {
        match self {
            Params::Tree(tree) => Ok(tree),
            call => call.to_tree(),
        }
    }

    /// The JSON tree, when the params are one.
    pub fn tree(&self) -> Option<&Value> {
        match self {
            Params::Tree(tree) => Some(tree),
            Params::Call { .. } => None,
        }
    }

    /// Request `id` of `method` with these params, as JSON: the bytes rmcp writes for the same
    /// request, but a call's arguments are the client's own text.
    pub fn request(&self, id: i64, method: &str) -> Result<Vec<u8>, UpstreamError> {
        let encode = |e: serde_json::Error| {
            UpstreamError::Protocol(format!("cannot encode the request: {e}"))
        };
        let arguments = match self {
            Params::Call {
                arguments: Some(arguments),
                ..
            } => arguments.len(),
            _ => 0,
        };
        let mut out = Vec::with_capacity(96 + method.len() + arguments);
        out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        out.extend_from_slice(br#","method":"#);
        serde_json::to_writer(&mut out, method).map_err(encode)?;
        out.extend_from_slice(br#","params":"#);
        match self {
            Params::Tree(tree) => serde_json::to_writer(&mut out, tree).map_err(encode)?,
            Params::Call { name, arguments } => {
                out.extend_from_slice(br#"{"name":"#);
                serde_json::to_writer(&mut out, name).map_err(encode)?;
                if let Some(arguments) = arguments {
                    out.extend_from_slice(br#","arguments":"#);
                    out.extend_from_slice(arguments.as_bytes());
                }
                out.push(b'}');
            }
        }
        out.push(b'}');
        Ok(out)
    }
}

/// An upstream's tool result: its text for the client, and the same parsed.
pub struct ToolAnswer {
    pub text: Box<RawValue>,
    pub result: CallToolResult,
}

impl Gateway {
    /// The connection of client `session` that last called an upstream, when `name` is a tool
    /// of an HTTP upstream and that connection is still open: what a call served outside rmcp
    /// relays the upstream's requests and notifications through. `None` otherwise (the call
    /// then goes through rmcp, which makes the connection known).
    pub fn raw_peer(&self, name: &str, session: &str) -> Option<Peer<RoleServer>> {
        let (upstream, _) = self.route(name)?;
        match upstream.link {
            Link::Http(_) => upstream.audience.peer(session),
            Link::Stdio(_) => None,
        }
    }

    /// Calls `name` with `arguments` (a JSON object's text, passed on as it is) for `caller`
    /// (a session-era client), as [`Gateway::pass`] would, answering with the result's text.
    pub async fn call_tool_raw(
        &self,
        caller: Caller<'_>,
        name: &str,
        arguments: Option<&str>,
    ) -> Result<ToolAnswer, ErrorData> {
        let Some((upstream, local)) = self.route(name) else {
            return Err(ErrorData::invalid_params(
                format!("tool {name} names no upstream"),
                None,
            ));
        };
        upstream.call_tool_raw(local, caller, arguments).await
    }
}

impl Upstream {
    /// [`Upstream::send`] of a `tools/call`, its result kept as text.
    async fn call_tool_raw(
        &self,
        local: &str,
        caller: Caller<'_>,
        arguments: Option<&str>,
    ) -> Result<ToolAnswer, ErrorData> {
        CallToolRequestParams::check(local, &self.spec)?;
        let params = Params::Call {
            name: local,
            arguments,
        };
        UpstreamStatus::count(&self.status.direct);
        // Told before the call goes, as on rmcp's path (`Upstream::send`): a client that hangs
        // up has its row written before the answer comes, and that row names the upstream too.
        if let Some(served) = caller.served {
            let tool = Some(local.to_string());
            served.going_upstream(self.spec.name.to_string(), tool, Instant::now());
        }
        // Boxed before `timed` takes it: its timeout and bookkeeping would hold the call's
        // future inline and move it with every future around it.
        let call = Box::pin(self.call(caller, CallToolRequestParams::METHOD, params));
        let outcome = self.timed(call).await;
        if let Some(served) = caller.served {
            served.came_back();
        }
        let answer = outcome.map_err(|error| error.to_error_data(&self.spec.name))?;
        match for_session_era(answer) {
            Ok(Some(answer)) => Ok(answer),
            Ok(None) => Err(ErrorData::invalid_request(INPUT_REQUIRED_TOO_NEW, None)),
            Err(error) => Err(error.to_error_data(&self.spec.name)),
        }
    }
}

/// The result as a session-era client gets it from rmcp's path: `resultType` "complete"
/// dropped and non-object structured output moved into the content (what rmcp does for a
/// peer before 2026-07-28). Only a result that needs either is encoded again. `None` for an
/// `InputRequiredResult`, which such a client cannot be sent.
fn for_session_era(answer: Answer) -> Result<Option<ToolAnswer>, UpstreamError> {
    // Text blocks only, the shape most results have, is read first: such a result has no
    // `resultType`, which an `InputRequiredResult` must have, so it is not searched for one.
    let answer = match answer {
        Answer::Text(text) => match serde_json::from_str::<TextResult>(text.get()) {
            Ok(plain) => {
                let result = plain.into();
                return Ok(Some(ToolAnswer { text, result }));
            }
            Err(_) => Answer::Text(text),
        },
        tree => tree,
    };
    let answer = match answer.input_required() {
        Ok(_) => return Ok(None),
        Err(answer) => answer,
    };
    let malformed = |e: serde_json::Error| {
        UpstreamError::Protocol(format!("a malformed tools/call result: {e}"))
    };
    let (text, result): (Option<Box<RawValue>>, CallToolResult) = match answer {
        Answer::Text(text) => {
            let result = serde_json::from_str(text.get()).map_err(malformed)?;
            (Some(text), result)
        }
        Answer::Tree(tree) => (None, serde_json::from_value(tree).map_err(malformed)?),
    };
    let reshaped = result.result_type.is_some()
        || result
            .structured_content
            .as_ref()
            .is_some_and(|value| !value.is_object());
    let (text, result) = match (text, reshaped) {
        (Some(text), false) => (text, result),
        _ => {
            let mut shaped = ServerResult::CallToolResult(result);
            shaped.strip_result_type_for_legacy_peer();
            shaped.strip_non_object_output_for_legacy_peer();
            let ServerResult::CallToolResult(result) = shaped else {
                return Err(UpstreamError::Protocol("its result changed kind".into()));
            };
            let text = serde_json::value::to_raw_value(&result)
                .map_err(|e| UpstreamError::Protocol(format!("cannot encode the result: {e}")))?;
            (text, result)
        }
    };
    Ok(Some(ToolAnswer { text, result }))
}

/// The shape most tool results have: text blocks and `isError`, nothing else. Read as
/// this, such a result costs a fraction of reading it as rmcp's `CallToolResult`, whose
/// content blocks (an internally tagged enum) are each buffered before they are read; any
/// other shape, or a malformed one, is read (or refused) by rmcp's type as before.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextResult {
    content: Vec<TextBlock>,
    #[serde(rename = "isError", default)]
    is_error: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBlock {
    #[serde(rename = "type")]
    _kind: TextKind,
    text: String,
}

#[derive(Deserialize)]
enum TextKind {
    #[serde(rename = "text")]
    Text,
}

impl From<TextResult> for CallToolResult {
    /// What rmcp reads from the same text.
    fn from(plain: TextResult) -> Self {
        let content = plain
            .content
            .into_iter()
            .map(|b| ContentBlock::text(b.text));
        let mut result = CallToolResult::success(content.collect());
        result.result_type = None;
        result.is_error = plain.is_error;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(json: &str) -> Answer {
        Answer::Text(RawValue::from_string(json.into()).expect("JSON"))
    }

    #[test]
    fn a_plain_result_keeps_the_upstream_s_text() {
        let json = r#"{"content":[{"type":"text","text":"hi"}],"isError":false,"extra":1}"#;
        let answer = for_session_era(text(json))
            .expect("a result")
            .expect("no input asked");
        assert_eq!(answer.text.get(), json);
        assert_eq!(answer.result.is_error, Some(false));
    }

    #[test]
    fn a_result_marked_complete_loses_the_mark_as_on_rmcp_s_path() {
        let json = r#"{"content":[],"resultType":"complete","structuredContent":[1,2]}"#;
        let answer = for_session_era(text(json))
            .expect("a result")
            .expect("no input asked");
        let value: Value = serde_json::from_str(answer.text.get()).expect("JSON");
        assert!(value.get("resultType").is_none(), "{value}");
        assert!(value.get("structuredContent").is_none(), "{value}");
        assert_eq!(value["content"][0]["text"], "[1,2]");
    }

    #[test]
    fn a_tree_s_request_is_the_bytes_rmcp_writes() {
        use rmcp::model::{ClientJsonRpcMessage, ClientRequest, CustomRequest, NumberOrString};
        let tree = serde_json::json!({"name": "echo", "arguments": {"q": "a \"b\"\n", "n": [1, 2.5]}, "_meta": {"progressToken": 3}});
        for (id, method) in [
            (7, "tools/call"),
            (-1, "resources/read"),
            (0, "a \"method\""),
        ] {
            let request = CustomRequest::new(method, Some(tree.clone()));
            let message = ClientJsonRpcMessage::request(
                ClientRequest::CustomRequest(request),
                NumberOrString::Number(id),
            );
            let rmcp = serde_json::to_vec(&message).expect("JSON");
            let ours = Params::Tree(tree.clone())
                .request(id, method)
                .expect("JSON");
            assert_eq!(String::from_utf8(ours), String::from_utf8(rmcp));
        }
    }

    #[test]
    fn a_call_s_request_carries_the_arguments_as_written() {
        let arguments = r#"{ "z":1,"a" : "\u00e9\"\\/\n","big":123456789012345678901234567890,"f":1.0E+2,"n":{"y":[{},[],null],"x":-0},"a":2 }"#;
        let params = Params::Call {
            name: "a \"tool\"",
            arguments: Some(arguments),
        };
        let body = params.request(5, "tools/call").expect("JSON");
        let text = std::str::from_utf8(&body).expect("UTF-8");
        #[derive(serde::Deserialize)]
        struct Sent<'a> {
            #[serde(borrow)]
            params: Sent2<'a>,
        }
        #[derive(serde::Deserialize)]
        struct Sent2<'a> {
            name: String,
            #[serde(borrow)]
            arguments: &'a RawValue,
        }
        let sent: Sent = serde_json::from_str(text).expect("a request");
        assert_eq!(sent.params.arguments.get(), arguments);
        assert_eq!(sent.params.name, "a \"tool\"");
        let value: Value = serde_json::from_str(text).expect("JSON");
        assert_eq!(value["jsonrpc"], "2.0");
        assert_eq!(value["id"], 5);
        assert_eq!(value["method"], "tools/call");
        // As a tree, for the paths that change the params: the same call.
        let tree = params.to_tree().expect("a tree");
        assert_eq!(tree["arguments"]["n"]["y"][0], serde_json::json!({}));
        assert_eq!(tree["name"], "a \"tool\"");
        let bare = Params::Call {
            name: "t",
            arguments: None,
        };
        assert_eq!(
            bare.request(1, "tools/call").expect("JSON"),
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#
        );
    }

    #[test]
    fn a_text_result_is_read_as_rmcp_reads_it() {
        for json in [
            r#"{"content":[{"type":"text","text":"a \"b\"\n\u00e9"}],"isError":false}"#,
            r#"{"isError":true,"content":[{"text":"x","type":"text"},{"type":"text","text":""}]}"#,
            r#"{"content":[]}"#,
            r#"{"content":[{"type":"text","text":"t"}],"isError":null}"#,
            // Read by rmcp's type: another kind of block, more members.
            r#"{"content":[{"type":"image","data":"AA==","mimeType":"image/png"}]}"#,
            r#"{"content":[{"type":"text","text":"t","annotations":{"priority":1}}]}"#,
            r#"{"content":[{"type":"text","text":"t"}],"_meta":{"a":1},"extra":2}"#,
            r#"{"isError":false}"#,
        ] {
            let rmcp: CallToolResult = serde_json::from_str(json).expect(json);
            let ours = for_session_era(text(json)).expect(json).expect(json);
            assert_eq!(ours.result, rmcp, "{json}");
        }
        for refused in [
            r#"{"content":[{"type":"text","text":"t"}],"content":[]}"#,
            r#"{"content":[{"type":"text"}]}"#,
            r#"{"content":null}"#,
            r#"{}"#,
        ] {
            assert!(
                serde_json::from_str::<CallToolResult>(refused).is_err(),
                "{refused}"
            );
            assert!(for_session_era(text(refused)).is_err(), "{refused}");
        }
    }

    #[test]
    fn only_an_input_required_result_is_taken_for_one() {
        let asked = r#"{"resultType":"input_required","inputRequests":{"confirm":{"method":"roots/list","params":{}}},"requestState":"s1"}"#;
        assert!(matches!(for_session_era(text(asked)), Ok(None)));
        // Text blocks that mention it, read as text blocks first: the client gets them.
        for mentions in [
            r#"{"content":[{"type":"text","text":"resultType: input_required"}]}"#,
            r#"{"content":[{"type":"text","text":"{\"resultType\":\"input_required\"}"}],"isError":true}"#,
        ] {
            let answer = for_session_era(text(mentions)).expect(mentions);
            let answer = answer.expect("a result, not a request for input");
            assert_eq!(answer.text.get(), mentions);
            let rmcp: CallToolResult = serde_json::from_str(mentions).expect(mentions);
            assert_eq!(answer.result, rmcp);
        }
    }

    #[test]
    fn a_malformed_result_is_refused() {
        let refused = for_session_era(text(r#"{"content":"not a list"}"#));
        assert!(
            matches!(refused, Err(UpstreamError::Protocol(m)) if m.starts_with("a malformed tools/call result"))
        );
    }
}
