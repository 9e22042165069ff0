//! A POSTed body, read once and parsed once into an [`Envelope`]: each message's method, id and
//! params (kept as the raw JSON text, not a tree), whether it is a batch, and the revision the
//! request claims. The security guard builds it and puts it in the request's extensions; the
//! layers after it (protocol rules, batches, the ledger, logical sessions) read it from there
//! instead of parsing the body again. rmcp still parses the body for itself.
//!
//! Malformed bodies are refused here with the error JSON-RPC defines and a message that says
//! what to fix; the params of the methods MCP defines are checked by `security::gate`.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::readable::Scan;
use super::{INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, error_body};

/// A JSON-RPC request id: MCP allows strings and integers only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Id {
    Number(i64),
    Text(String),
}

impl Id {
    pub fn to_value(&self) -> Value {
        match self {
            Id::Number(n) => Value::from(*n),
            Id::Text(text) => Value::from(text.as_str()),
        }
    }

    fn read(raw: &RawValue) -> Option<Id> {
        let text = raw.get();
        if text.starts_with('"') {
            serde_json::from_str(text).ok().map(Id::Text)
        } else {
            text.parse().ok().map(Id::Number)
        }
    }
}

/// One JSON-RPC message of an envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// None for a client's response to a server request.
    pub method: Option<String>,
    /// None for a notification (or a response whose id was not a valid request id).
    pub id: Option<Id>,
    /// Where the id lies in the body (its JSON text, for matching the reply's id byte for byte).
    id_span: Option<Range<usize>>,
    /// Where the params object lies in the body.
    params: Option<Range<usize>>,
    /// Where the whole message lies in the body.
    span: Range<usize>,
    /// A plain `tools/call`'s name and arguments, once the gate has read them.
    call: Option<CallSpans>,
}

/// Where a `tools/call`'s params hold their name and arguments, in the body, when they hold
/// nothing else: as the gate (`security::gate`) found them, so later readers need not parse
/// the params again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSpans {
    /// The name's JSON string.
    pub name: Range<usize>,
    /// The arguments' JSON object; None when absent or `null`.
    pub arguments: Option<Range<usize>>,
}

impl CallSpans {
    /// Reads `params` (a message's params object) as a plain call's: exactly a `name` that is
    /// a JSON string and, optionally, `arguments` that are an object (or null, read as none).
    /// None for any other params. The spans are offsets in `params`.
    pub fn read(params: &str) -> Option<CallSpans> {
        let call = serde_json::from_str::<PlainCall>(params).ok()?;
        let span = |raw: &RawValue| {
            let start = raw.get().as_ptr() as usize - params.as_ptr() as usize;
            start..start + raw.get().len()
        };
        let named = call.name.get().starts_with('"');
        let object = call.arguments.is_none_or(|a| a.get().starts_with('{'));
        (named && object).then(|| CallSpans {
            name: span(call.name),
            arguments: call.arguments.map(span),
        })
    }

    /// The same spans counted from another origin: an offset `from` becomes `to`.
    pub fn moved(&self, from: usize, to: usize) -> CallSpans {
        let moved = |range: &Range<usize>| range.start - from + to..range.end - from + to;
        CallSpans {
            name: moved(&self.name),
            arguments: self.arguments.as_ref().map(moved),
        }
    }
}

impl Message {
    /// Where the id's JSON text lies in the envelope's body.
    pub fn id_span(&self) -> Option<Range<usize>> {
        self.id_span.clone()
    }

    /// Where the params object lies in the envelope's body.
    pub fn params_span(&self) -> Option<Range<usize>> {
        self.params.clone()
    }

    /// A plain `tools/call`'s name and arguments (see [`CallSpans`]).
    pub fn call_spans(&self) -> Option<&CallSpans> {
        self.call.as_ref()
    }
}

/// A POSTed body that is one JSON-RPC message or a batch of them, each of the right shape.
#[derive(Clone, Debug)]
pub struct Envelope {
    body: Bytes,
    messages: Vec<Message>,
    batch: bool,
    revision: Option<String>,
}

impl Envelope {
    /// Parses `body` (whose nesting depth the caller has bounded). `revision` is the request's
    /// `MCP-Protocol-Version` header, if any.
    pub fn parse(body: Bytes, revision: Option<String>) -> Result<Envelope, Rejection> {
        Envelope::read(body, revision, true)
    }

    /// [`Envelope::parse`] of a body that [`scan`](super::scan) walked: its values are read
    /// one by one only when the scan found they need it.
    pub fn parse_scanned(
        body: Bytes,
        revision: Option<String>,
        scan: Scan,
    ) -> Result<Envelope, Rejection> {
        Envelope::read(body, revision, scan.values_need_reading)
    }

    fn read(
        body: Bytes,
        revision: Option<String>,
        read_values: bool,
    ) -> Result<Envelope, Rejection> {
        let text = std::str::from_utf8(&body).map_err(|e| parse_error(&e))?;
        let (messages, batch) = match text.trim_start().as_bytes().first() {
            Some(b'{') => (vec![read_message(text, text)?], false),
            Some(b'[') => (read_batch(text)?, true),
            _ => {
                serde_json::from_str::<IgnoredAny>(text).map_err(|e| parse_error(&e))?;
                return Err(not_an_object());
            }
        };
        if read_values {
            super::readable::check(text).map_err(|e| parse_error(&e))?;
        }
        Ok(Envelope {
            body,
            messages,
            batch,
            revision,
        })
    }

    /// The body as received.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The messages: one, or a batch's in order.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The message of a body that is not a batch.
    pub fn single(&self) -> Option<&Message> {
        (!self.batch).then(|| self.messages.first()).flatten()
    }

    pub fn is_batch(&self) -> bool {
        self.batch
    }

    /// The `MCP-Protocol-Version` the request carried.
    pub fn revision(&self) -> Option<&str> {
        self.revision.as_deref()
    }

    /// Records that message `index`'s params are a plain call's, laid out as `call` says
    /// (offsets in the params' text).
    pub fn note_plain_call(&mut self, index: usize, call: CallSpans) {
        if let Some(message) = self.messages.get_mut(index)
            && let Some(params) = &message.params
        {
            message.call = Some(call.moved(0, params.start));
        }
    }

    /// A message's params object as JSON text.
    pub fn params(&self, message: &Message) -> Option<&str> {
        let range = message.params.clone()?;
        std::str::from_utf8(self.body.get(range)?).ok()
    }

    /// A message on its own, as bytes that share the body.
    pub fn message_bytes(&self, message: &Message) -> Bytes {
        self.body.slice(message.span.clone())
    }

    /// One message of a batch as an envelope of its own (sharing the body, parsed no further).
    pub fn item(&self, message: &Message) -> Envelope {
        let start = message.span.start;
        let shift = |range: &Range<usize>| range.start - start..range.end - start;
        Envelope {
            body: self.message_bytes(message),
            messages: vec![Message {
                method: message.method.clone(),
                id: message.id.clone(),
                id_span: message.id_span.as_ref().map(shift),
                params: message.params.as_ref().map(shift),
                span: shift(&message.span),
                call: message.call.as_ref().map(|call| call.moved(start, 0)),
            }],
            batch: false,
            revision: self.revision.clone(),
        }
    }
}

/// A POST body as the security guard read it, put on the response for the ledger (which sits
/// outside the guard and records the request as received): parsed, or refused as malformed.
#[derive(Clone, Debug)]
pub enum Received {
    Parsed(Arc<Envelope>),
    Refused(Bytes),
}

impl Received {
    pub fn body(&self) -> &Bytes {
        match self {
            Received::Parsed(envelope) => envelope.body(),
            Received::Refused(body) => body,
        }
    }

    pub fn envelope(&self) -> Option<&Envelope> {
        match self {
            Received::Parsed(envelope) => Some(envelope),
            Received::Refused(_) => None,
        }
    }
}

/// [`CallSpans::read`]'s shape: exactly `name` and (optionally) `arguments`, left as text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainCall<'a> {
    #[serde(borrow)]
    name: &'a RawValue,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

/// The members of a message, each kept as raw JSON (so `"id": null` is told from no id),
/// borrowed from the body (`'de: 'a`); an absent member is `Member(None)`.
#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Wire<'a> {
    jsonrpc: Member<'a>,
    id: Member<'a>,
    method: Member<'a>,
    params: Member<'a>,
    result: Member<'a>,
    error: Member<'a>,
}

/// A member as present in the message, `null` included (an `Option` field would read `null`
/// as absent); None when absent.
#[derive(Default)]
struct Member<'a>(Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Member<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Member<'a>, D::Error> {
        <&RawValue>::deserialize(d).map(|raw| Member(Some(raw)))
    }
}

fn read_batch(text: &str) -> Result<Vec<Message>, Rejection> {
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| parse_error(&e))?;
    if items.is_empty() {
        return Err(Rejection::new(
            INVALID_REQUEST,
            "Invalid Request: an empty batch; send a JSON-RPC message object",
            None,
        ));
    }
    items
        .into_iter()
        .map(|item| match item.get().starts_with('{') {
            true => read_message(item.get(), text),
            false => Err(not_an_object()),
        })
        .collect()
}

/// Reads the message `json`, a slice of `body`.
fn read_message(json: &str, body: &str) -> Result<Message, Rejection> {
    let wire: Wire = serde_json::from_str(json).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Rejection::new(
            INVALID_REQUEST,
            format!("Invalid Request: {e}; send each member of the message once"),
            None,
        ),
        _ => parse_error(&e),
    })?;
    let Wire {
        jsonrpc: Member(jsonrpc),
        id: Member(raw_id),
        method: Member(raw_method),
        params: Member(params),
        result: Member(result),
        error: Member(error),
    } = wire;
    let offset = |raw: &str| raw.as_ptr() as usize - body.as_ptr() as usize;
    let id = match raw_id {
        None => None,
        Some(raw) => Some(Id::read(raw).ok_or_else(|| {
            Rejection::new(
                INVALID_REQUEST,
                format!(
                    "Invalid Request: id must be a string or an integer, got {}",
                    kind(raw)
                ),
                None,
            )
        })?),
    };
    let version = jsonrpc.and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
    if version.as_deref() != Some("2.0") {
        return Err(Rejection::new(
            INVALID_REQUEST,
            "Invalid Request: the member \"jsonrpc\" must be exactly \"2.0\"",
            id,
        ));
    }
    let method = match raw_method {
        Some(raw) => match serde_json::from_str::<String>(raw.get()) {
            Ok(method) => Some(method),
            Err(_) => {
                return Err(Rejection::new(
                    INVALID_REQUEST,
                    format!(
                        "Invalid Request: method must be a string, got {}",
                        kind(raw)
                    ),
                    id,
                ));
            }
        },
        None if id.is_some() && (result.is_some() || error.is_some()) => None,
        None => {
            return Err(Rejection::new(
                INVALID_REQUEST,
                "Invalid Request: no method; a request needs method and id, a notification needs method",
                id,
            ));
        }
    };
    if let Some(params) = params.filter(|p| !p.get().starts_with('{')) {
        return Err(Rejection::new(
            INVALID_PARAMS,
            format!(
                "Invalid params: params must be an object, got {}",
                kind(params)
            ),
            id,
        ));
    }
    let start = offset(json);
    let span = |raw: &RawValue| offset(raw.get())..offset(raw.get()) + raw.get().len();
    Ok(Message {
        method,
        id,
        id_span: raw_id.map(span),
        params: params.map(span),
        span: start..start + json.len(),
        call: None,
    })
}

/// What kind of JSON value `raw` is, for messages.
pub fn kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        _ => "a number",
    }
}

fn parse_error(error: &dyn std::fmt::Display) -> Rejection {
    Rejection::new(
        PARSE_ERROR,
        format!(
            "Parse error: the body is not valid UTF-8 JSON ({error}); send one JSON-RPC message as a JSON object"
        ),
        None,
    )
}

fn not_an_object() -> Rejection {
    Rejection::new(
        INVALID_REQUEST,
        "Invalid Request: a JSON-RPC message must be a JSON object with jsonrpc, method and (for a request) id",
        None,
    )
}

/// Why a body was refused: the JSON-RPC error, and the request id to echo when known.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub code: i32,
    pub message: String,
    pub id: Option<Id>,
}

impl Rejection {
    pub fn new(code: i32, message: impl Into<String>, id: Option<Id>) -> Self {
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
        error_body(self.code, &self.message, self.id.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Envelope, (i32, String)> {
        Envelope::parse(Bytes::copy_from_slice(body.as_bytes()), None)
            .map_err(|r| (r.code, r.message))
    }

    #[test]
    fn classifies_bad_bodies() {
        for (body, code, says) in [
            ("{bad", PARSE_ERROR, "Parse error"),
            ("", PARSE_ERROR, "Parse error"),
            (r#"{"jsonrpc":"2.0","id":1,"#, PARSE_ERROR, "line 1"),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#,
                PARSE_ERROR,
                "trailing",
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi\u{0}ng\"}",
                PARSE_ERROR,
                "control",
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"x\":\"\u{1}\",\"method\":\"a\"}",
                PARSE_ERROR,
                "control",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"x/y","params":{"a":"\udfff"}}"#,
                PARSE_ERROR,
                "surrogate",
            ),
            ("5", INVALID_REQUEST, "JSON object"),
            ("null", INVALID_REQUEST, "JSON object"),
            ("[]", INVALID_REQUEST, "empty batch"),
            ("[5]", INVALID_REQUEST, "JSON object"),
            (r#"{"id":1,"method":"ping"}"#, INVALID_REQUEST, "\"2.0\""),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                INVALID_REQUEST,
                "got null",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
                INVALID_REQUEST,
                "id must be",
            ),
            (
                r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
                INVALID_REQUEST,
                "an object",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
                INVALID_REQUEST,
                "a number",
            ),
            (r#"{"jsonrpc":"2.0","id":1}"#, INVALID_REQUEST, "no method"),
            (
                r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"a"}"#,
                INVALID_REQUEST,
                "duplicate",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"a","params":5}"#,
                INVALID_PARAMS,
                "a number",
            ),
        ] {
            let (c, m) = parse(body).expect_err(body);
            assert_eq!(c, code, "{body}: {m}");
            assert!(m.contains(says), "{body}: {m}");
        }
        let bad = Envelope::parse(Bytes::from_static(b"{\"a\":\"\xff\"}"), None);
        assert!(bad.is_err_and(|r| r.code == PARSE_ERROR && r.message.contains("UTF-8")));
    }

    #[test]
    fn reads_methods_ids_params_and_batches() {
        let body = r#" {"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}}"#;
        let envelope = parse(body).unwrap();
        let message = envelope.single().unwrap();
        assert_eq!(message.method.as_deref(), Some("tools/call"));
        assert_eq!(message.id, Some(Id::Text("a".into())));
        assert_eq!(envelope.params(message), Some(r#"{"name":"x"}"#));
        assert_eq!(&envelope.message_bytes(message)[..], body.as_bytes());
        let reply = parse(r#"{"jsonrpc":"2.0","id":3,"result":null}"#).unwrap();
        assert_eq!(reply.single().unwrap().method, None);
        let batch =
            parse(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, {"jsonrpc":"2.0","method":"n"}]"#)
                .unwrap();
        assert!(batch.is_batch() && batch.single().is_none());
        assert_eq!(batch.messages().len(), 2);
        assert_eq!(
            &batch.message_bytes(&batch.messages()[1])[..],
            br#"{"jsonrpc":"2.0","method":"n"}"#
        );
        let call = r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"y"}}]"#;
        let batch = parse(call).unwrap();
        let item = batch.item(&batch.messages()[1]);
        assert!(!item.is_batch());
        let message = item.single().unwrap();
        assert_eq!(item.params(message), Some(r#"{"name":"y"}"#));
        assert_eq!(message.id, Some(Id::Number(2)));
    }
}
