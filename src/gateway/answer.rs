//! An upstream's result as it arrived. An HTTP upstream's answer stays the text it sent, so the
//! typed result the client gets is parsed from it once, without first building a JSON tree of
//! it; a stdio upstream's arrives as a tree from rmcp.

use rmcp::model::InputRequiredResult;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use super::error::UpstreamError;

pub enum Answer {
    Text(Box<RawValue>),
    Tree(Value),
}

impl Answer {
    /// The result as `T`; `what` names it in the error.
    pub fn parse<T: DeserializeOwned>(self, what: &str) -> Result<T, UpstreamError> {
        match self {
            Answer::Text(text) => serde_json::from_str(text.get()),
            Answer::Tree(tree) => serde_json::from_value(tree),
        }
        .map_err(|e| UpstreamError::Protocol(format!("a malformed {what} result: {e}")))
    }

    /// The result as a 2026-07-28 `InputRequiredResult` (SEP-2322), when it is one: the answer
    /// goes back as it is otherwise. Only a result that mentions `input_required` at all is
    /// parsed twice.
    pub fn input_required(self) -> Result<InputRequiredResult, Answer> {
        let found = match &self {
            Answer::Text(text) => memchr::memmem::find(text.get().as_bytes(), b"input_required")
                .and_then(|_| serde_json::from_str(text.get()).ok()),
            Answer::Tree(tree) => tree
                .get("resultType")
                .filter(|kind| kind.as_str() == Some("input_required"))
                .and_then(|_| serde_json::from_value(tree.clone()).ok()),
        };
        found.ok_or(self)
    }
}

/// The parts of a JSON-RPC message from an upstream that say what it is, its result left as
/// text.
#[derive(Deserialize)]
pub struct Envelope<'a> {
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(default)]
    pub method: Option<Value>,
    #[serde(default, borrow)]
    pub result: Option<&'a RawValue>,
    #[serde(default)]
    pub error: Option<Value>,
}

impl Envelope<'_> {
    /// Whether it answers request `id` (a reply, not a request of the upstream's own).
    pub fn answers(&self, id: i64) -> bool {
        self.method.is_none() && self.id.as_ref().and_then(Value::as_i64) == Some(id)
    }

    /// The reply's result, or its error as [`UpstreamError::Rejected`].
    pub fn outcome(self) -> Result<Answer, UpstreamError> {
        if let Some(error) = self.error {
            let error = serde_json::from_value(error)
                .map_err(|e| UpstreamError::Protocol(format!("a malformed error: {e}")))?;
            return Err(UpstreamError::Rejected(error));
        }
        self.result
            .map(|result| Answer::Text(result.to_owned()))
            .ok_or_else(|| UpstreamError::Protocol("a reply with neither result nor error".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_keeps_its_result_as_the_upstream_wrote_it() {
        let data = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"a \"b\""}],"isError":false}}"#;
        let envelope: Envelope = serde_json::from_str(data).unwrap();
        assert!(envelope.answers(7));
        assert!(!envelope.answers(8));
        let Ok(Answer::Text(text)) = envelope.outcome() else {
            panic!("a reply with a result");
        };
        assert_eq!(
            text.get(),
            r#"{"content":[{"type":"text","text":"a \"b\""}],"isError":false}"#
        );
    }

    #[test]
    fn an_input_required_result_is_told_from_a_result_that_mentions_it() {
        let text = |json: &str| Answer::Text(RawValue::from_string(json.into()).unwrap());
        let asked = text(
            r#"{"resultType":"input_required","inputRequests":{"confirm":{"method":"roots/list","params":{}}},"requestState":"s1"}"#,
        );
        let asked = asked.input_required().ok().expect("an InputRequiredResult");
        assert_eq!(asked.request_state.as_deref(), Some("s1"));
        let mentions = text(r#"{"content":[{"type":"text","text":"input_required"}]}"#);
        assert!(mentions.input_required().is_err());
    }

    #[test]
    fn a_request_of_the_upstream_is_no_answer_and_an_error_is_rejected() {
        let request: Envelope =
            serde_json::from_str(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).unwrap();
        assert!(!request.answers(7));
        let error: Envelope = serde_json::from_str(
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"no such tool"}}"#,
        )
        .unwrap();
        assert!(
            matches!(error.outcome(), Err(UpstreamError::Rejected(e)) if e.message == "no such tool")
        );
    }
}
