//! What a 2026-07-28 request carries that a session used to (SEP-2575, SEP-2243): the client's
//! revision, identity and capabilities in its `_meta`, and `Mcp-Method`, `Mcp-Name` and
//! `Mcp-Param-*` headers that repeat the body for whatever routes on headers. Steward sends its
//! requests to an upstream that speaks 2026-07-28 this way, passing on what the client sent.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rmcp::model::RequestMetaObject;
use serde_json::{Map, Value, json};

/// A 2026-07-28 client's request without a session, as it reached Steward.
#[derive(Clone, Copy)]
pub struct Stateless<'a> {
    /// Its `_meta`: revision, client info and capabilities, log level.
    pub meta: &'a RequestMetaObject,
    /// Its HTTP headers, whose `Mcp-Param-*` values travel on unchanged.
    pub headers: Option<&'a HeaderMap>,
}

const META_PREFIX: &str = "io.modelcontextprotocol/";
const PARAM_PREFIX: &str = "mcp-param-";
const BASE64_START: &str = "=?base64?";
const BASE64_END: &str = "?=";

/// The `_meta` of a request to the upstream: the client's own when it sent one (`client`),
/// else one made from the `initialize` parameters recorded for the session; with `revision`.
pub fn meta(initialize: &Value, client: Option<&RequestMetaObject>, revision: &str) -> Value {
    let mut meta = match client {
        Some(client) => client.0.0.clone(),
        None => {
            let mut meta = Map::new();
            meta.insert(
                format!("{META_PREFIX}clientInfo"),
                initialize.get("clientInfo").cloned().unwrap_or(json!({})),
            );
            meta.insert(
                format!("{META_PREFIX}clientCapabilities"),
                initialize.get("capabilities").cloned().unwrap_or(json!({})),
            );
            meta
        }
    };
    // The upstream's progress token is Steward's own (see `Relay::notify`).
    meta.remove("progressToken");
    meta.insert(format!("{META_PREFIX}protocolVersion"), json!(revision));
    Value::Object(meta)
}

/// The headers that repeat `method` and its name or URI, and the client's `Mcp-Param-*`
/// headers of a tool call (the tool's input schema is the same at Steward and upstream).
pub fn headers(
    method: &str,
    params: &Value,
    client: Option<Stateless<'_>>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    if let Ok(value) = HeaderValue::from_str(method) {
        headers.push((HeaderName::from_static("mcp-method"), value));
    }
    let named = match method {
        "tools/call" | "prompts/get" => params.get("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => params.get("uri"),
        _ => None,
    };
    if let Some(value) = named
        .and_then(Value::as_str)
        .and_then(|name| HeaderValue::from_str(&header_text(name)).ok())
    {
        headers.push((HeaderName::from_static("mcp-name"), value));
    }
    if method == "tools/call"
        && let Some(client) = client.and_then(|c| c.headers)
    {
        headers.extend(
            client
                .iter()
                .filter(|(name, _)| name.as_str().starts_with(PARAM_PREFIX))
                .map(|(name, value)| (name.clone(), value.clone())),
        );
    }
    headers
}

/// A header value as SEP-2243 writes it: as it is when it is visible ASCII without spaces
/// around it (and does not look Base64-wrapped), else `=?base64?…?=`.
fn header_text(value: &str) -> String {
    let visible = value.chars().all(|c| (' '..='~').contains(&c));
    let padded = value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']);
    let wrapped = value.starts_with(BASE64_START) && value.ends_with(BASE64_END);
    match visible && !padded && !wrapped {
        true => value.to_string(),
        false => format!("{BASE64_START}{}{BASE64_END}", base64(value.as_bytes())),
    }
}

/// Standard Base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            match i <= chunk.len() {
                true => out.push(char::from(ALPHABET[(n >> shift & 63) as usize])),
                false => out.push('='),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_plain_ascii_travel_in_base64() {
        assert_eq!(base64(b"Hello"), "SGVsbG8=");
        assert_eq!(base64(b"Hi"), "SGk=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(header_text("test_simple_text"), "test_simple_text");
        assert_eq!(header_text("file:///a b.txt"), "file:///a b.txt");
        assert_eq!(header_text("café"), "=?base64?Y2Fmw6k=?=");
        assert_eq!(header_text(" x"), "=?base64?IHg=?=");
    }

    #[test]
    fn a_tool_call_names_its_method_and_tool_and_the_revision_is_steward_s() {
        let params = json!({ "name": "echo", "arguments": {} });
        let headers = headers("tools/call", &params, None);
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap().to_string())
        };
        assert_eq!(find("mcp-method").as_deref(), Some("tools/call"));
        assert_eq!(find("mcp-name").as_deref(), Some("echo"));
        let made = meta(
            &json!({ "clientInfo": { "name": "c", "version": "1" }, "capabilities": {} }),
            None,
            "2026-07-28",
        );
        assert_eq!(
            made["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert_eq!(made["io.modelcontextprotocol/clientInfo"]["name"], "c");
    }
}
