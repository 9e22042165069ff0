//! An upstream's result as it arrived. An HTTP upstream's answer stays the text it sent, so the
//! typed result the client gets is parsed from it once, without first building a JSON tree of
//! it; a stdio upstream's arrives as a tree from rmcp.

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
