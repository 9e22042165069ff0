//! A `tools/call` of an HTTP upstream's tool answered with the upstream's result as the text it
//! sent, for a session-era client whose call `mcp::raw` serves outside rmcp. The result is
//! still parsed once (a malformed one is refused as on rmcp's path, and the parsed result is
//! what the replay store keeps), but not encoded again unless its shape must change for the
//! client's revision.

use std::time::Instant;

use rmcp::model::{CallToolRequestParams, CallToolResult, ServerResult};
use rmcp::service::Peer;
use rmcp::{ErrorData, RoleServer};
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

    /// Calls `name` with `arguments` for `caller` (a session-era client), as
    /// [`Gateway::pass`] would, answering with the result's text.
    pub async fn call_tool_raw(
        &self,
        caller: Caller<'_>,
        name: &str,
        arguments: Option<Map<String, Value>>,
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
        arguments: Option<Map<String, Value>>,
    ) -> Result<ToolAnswer, ErrorData> {
        CallToolRequestParams::check(local, &self.spec)?;
        let mut params = Map::new();
        params.insert("name".into(), Value::from(local));
        if let Some(arguments) = arguments {
            params.insert("arguments".into(), Value::Object(arguments));
        }
        UpstreamStatus::count(&self.status.direct);
        // Told before the call goes, as on rmcp's path (`Upstream::send`): a client that hangs
        // up has its row written before the answer comes, and that row names the upstream too.
        if let Some(served) = caller.served {
            let tool = Some(local.to_string());
            served.going_upstream(self.spec.name.to_string(), tool, Instant::now());
        }
        let call = self.call(caller, CallToolRequestParams::METHOD, Value::Object(params));
        let outcome = self.timed(call).await;
        if let Some(served) = caller.served {
            served.came_back();
        }
        let answer = outcome.map_err(|error| error.to_error_data(&self.spec.name))?;
        let answer = match answer.input_required() {
            Ok(_) => return Err(ErrorData::invalid_request(INPUT_REQUIRED_TOO_NEW, None)),
            Err(answer) => answer,
        };
        for_session_era(answer).map_err(|error| error.to_error_data(&self.spec.name))
    }
}

/// The result as a session-era client gets it from rmcp's path: `resultType` "complete"
/// dropped and non-object structured output moved into the content (what rmcp does for a
/// peer before 2026-07-28). Only a result that needs either is encoded again.
fn for_session_era(answer: Answer) -> Result<ToolAnswer, UpstreamError> {
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
    Ok(ToolAnswer { text, result })
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
        let answer = for_session_era(text(json)).expect("a result");
        assert_eq!(answer.text.get(), json);
        assert_eq!(answer.result.is_error, Some(false));
    }

    #[test]
    fn a_result_marked_complete_loses_the_mark_as_on_rmcp_s_path() {
        let json = r#"{"content":[],"resultType":"complete","structuredContent":[1,2]}"#;
        let answer = for_session_era(text(json)).expect("a result");
        let value: Value = serde_json::from_str(answer.text.get()).expect("JSON");
        assert!(value.get("resultType").is_none(), "{value}");
        assert!(value.get("structuredContent").is_none(), "{value}");
        assert_eq!(value["content"][0]["text"], "[1,2]");
    }

    #[test]
    fn a_malformed_result_is_refused() {
        let refused = for_session_era(text(r#"{"content":"not a list"}"#));
        assert!(
            matches!(refused, Err(UpstreamError::Protocol(m)) if m.starts_with("a malformed tools/call result"))
        );
    }
}
