//! What a 2026-07-28 request carries that a session used to (SEP-2575, SEP-2243): the client's
//! revision, identity and capabilities in its `_meta`, and `Mcp-Method`, `Mcp-Name` and
//! `Mcp-Param-*` headers that repeat the body for whatever routes on headers. Steward sends its
//! requests to an upstream that speaks 2026-07-28 this way, passing on what the client sent.

use base64::{Engine, prelude::BASE64_STANDARD};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rmcp::model::RequestMetaObject;
use rmcp::transport::common::http_header::{BASE64_HEADER_PREFIX, BASE64_HEADER_SUFFIX};
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
    let wrapped = value.starts_with(BASE64_HEADER_PREFIX) && value.ends_with(BASE64_HEADER_SUFFIX);
    match visible && !padded && !wrapped {
        true => value.to_string(),
        false => format!(
            "{BASE64_HEADER_PREFIX}{}{BASE64_HEADER_SUFFIX}",
            BASE64_STANDARD.encode(value)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_plain_ascii_travel_in_base64() {
        for (name, sent) in [
            ("test_simple_text", "test_simple_text"),
            ("file:///a b.txt", "file:///a b.txt"),
            ("café", "=?base64?Y2Fmw6k=?="),
            (" x", "=?base64?IHg=?="),
        ] {
            assert_eq!(header_text(name), sent, "{name}");
        }
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
