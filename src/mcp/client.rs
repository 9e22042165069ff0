//! A deliberately plain MCP client over HTTP: raw JSON-RPC POSTs with the session header, and
//! the reply read as JSON or as an SSE stream. `steward check` and the integration tests use it
//! because they must also break the protocol rules on purpose and see what the server answers,
//! which a well-behaved SDK client never does.

use std::time::Duration;

use anyhow::{Context, ensure};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

/// The Accept header every MCP POST must send.
pub const ACCEPT: &str = "application/json, text/event-stream";
/// The session-era revision this client asks for unless told otherwise.
pub const PROTOCOL: &str = "2025-11-25";
/// How long one exchange may take, body included (an SSE stream that never ends would hang).
const TIMEOUT: Duration = Duration::from_secs(60);

/// What the server answered.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The whole body.
    pub text: String,
    /// The JSON-RPC message of the reply (the JSON body, or the SSE `data:` event carrying
    /// `result` or `error`); `Null` when there is none.
    pub message: Value,
}

impl Reply {
    /// The `Mcp-Session-Id` response header.
    pub fn session(&self) -> Option<String> {
        self.headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub fn error_code(&self) -> Option<i64> {
        self.message["error"]["code"].as_i64()
    }

    pub fn error_message(&self) -> String {
        self.message["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The JSON-RPC `result` of a 200 reply; an error quoting the reply otherwise.
    pub fn result(&self) -> anyhow::Result<&Value> {
        ensure!(
            self.status == StatusCode::OK,
            "expected 200, got {}: {}",
            self.status,
            self.text
        );
        self.message
            .get("result")
            .with_context(|| format!("no JSON-RPC result in: {}", self.text))
    }

    /// The first text content of a tool result, parsed as JSON (`{"success":...}`).
    pub fn tool_json(&self) -> Option<Value> {
        let text = self.message["result"]["content"][0]["text"].as_str()?;
        serde_json::from_str(text).ok()
    }

    pub fn is_tool_error(&self) -> bool {
        self.message["result"]["isError"] == true
    }
}

/// A plain HTTP client aimed at one MCP endpoint.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    key: Option<String>,
    revision: Option<String>,
}

impl Client {
    /// A client for the MCP endpoint at `url` (e.g. `http://127.0.0.1:8080/mcp`).
    pub fn new(url: &str) -> Client {
        let http = crate::tls::client_builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Client::with_http(url, http)
    }

    /// Like [`Client::new`] with a reqwest client of the caller's (e.g. another timeout).
    pub fn with_http(url: &str, http: reqwest::Client) -> Client {
        Client {
            http,
            url: url.trim_end_matches('/').to_string(),
            key: None,
            revision: None,
        }
    }

    /// The same client, sending `key` as a bearer token.
    pub fn with_key(&self, key: &str) -> Client {
        Client {
            key: Some(key.to_string()),
            ..self.clone()
        }
    }

    /// The same client, sending `MCP-Protocol-Version: revision` with every request in a
    /// session, as real clients do after `initialize`.
    pub fn at_revision(&self, revision: &str) -> Client {
        Client {
            revision: Some(revision.to_string()),
            ..self.clone()
        }
    }

    /// The bearer key this client sends, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The MCP endpoint.
    pub fn mcp_url(&self) -> &str {
        &self.url
    }

    /// The server's base URL (`http://host:port`), from the MCP URL.
    pub fn base_url(&self) -> &str {
        self.url.trim_end_matches("/mcp")
    }

    /// The underlying HTTP client (for requests this type does not model).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// POSTs `body` with the usual headers (Accept both, JSON, the key, the session and its
    /// revision), then `extra` headers, which replace the usual ones of the same name; an
    /// empty value removes one.
    pub async fn post_with(
        &self,
        body: impl Into<reqwest::Body>,
        session: Option<&str>,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static(ACCEPT));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if let Some(key) = &self.key {
            headers.insert("authorization", format!("Bearer {key}").parse()?);
        }
        if let Some(session) = session {
            headers.insert("mcp-session-id", session.parse()?);
            if let Some(revision) = &self.revision {
                headers.insert("mcp-protocol-version", revision.parse()?);
            }
        }
        for (name, value) in extra {
            let name: HeaderName = name.parse()?;
            if value.is_empty() {
                headers.remove(&name);
            } else {
                headers.insert(name, value.parse()?);
            }
        }
        let response = self
            .http
            .post(&self.url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {}", self.url))?;
        read(response).await
    }

    /// POSTs one JSON-RPC message (or batch) in `session`.
    pub async fn post(&self, body: &Value, session: Option<&str>) -> anyhow::Result<Reply> {
        self.post_with(body.to_string(), session, &[]).await
    }

    /// `initialize` at `protocol` as `client_name`, without the `initialized` notification.
    pub async fn initialize(&self, protocol: &str, client_name: &str) -> anyhow::Result<Reply> {
        let body = initialize_request(protocol, client_name, env!("CARGO_PKG_VERSION"));
        self.post(&body, None).await
    }

    /// `notifications/initialized` in `session`.
    pub async fn initialized(&self, session: &str) -> anyhow::Result<Reply> {
        let body = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        self.post(&body, Some(session)).await
    }

    /// `initialize` at `protocol` + `notifications/initialized`; returns the session id.
    pub async fn open_session(&self, protocol: &str, client_name: &str) -> anyhow::Result<String> {
        let reply = self.initialize(protocol, client_name).await?;
        reply.result().context("initialize")?;
        let session = reply
            .session()
            .context("initialize without Mcp-Session-Id")?;
        let done = self.at_revision(protocol).initialized(&session).await?;
        ensure!(
            done.status == StatusCode::ACCEPTED,
            "notifications/initialized: {} {}",
            done.status,
            done.text
        );
        Ok(session)
    }

    /// `tools/call` of `tool` with `arguments` in `session`.
    pub async fn call(
        &self,
        session: Option<&str>,
        id: u64,
        tool: &str,
        arguments: Value,
    ) -> anyhow::Result<Reply> {
        self.post(&tool_call_request(id, tool, arguments), session)
            .await
    }

    /// `DELETE` the session (saying its revision, if set).
    pub async fn delete(&self, session: &str) -> anyhow::Result<Reply> {
        let mut request = self
            .http
            .delete(&self.url)
            .header("mcp-session-id", session);
        if let Some(revision) = &self.revision {
            request = request.header("mcp-protocol-version", revision);
        }
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        read(request.send().await?).await
    }

    /// `GET` a path of the server (with the key as bearer, if any).
    pub async fn get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path}", self.base_url());
        let mut request = self.http.get(&url);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        request.send().await.with_context(|| format!("GET {url}"))
    }

    /// `GET` a path; its status and JSON body (`Null` when the body is not JSON).
    pub async fn get_json(&self, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        let response = self.get(path).await?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }
}

/// An `initialize` request (JSON-RPC id 0) asking for `protocol`.
pub fn initialize_request(protocol: &str, client_name: &str, client_version: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": protocol,
            "capabilities": {},
            "clientInfo": { "name": client_name, "version": client_version },
        },
    })
}

/// A `tools/call` request.
pub fn tool_call_request(id: impl Into<Value>, tool: &str, arguments: Value) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id.into(), "method": "tools/call",
        "params": { "name": tool, "arguments": arguments },
    })
}

/// Reads a whole response into a [`Reply`].
pub async fn read(response: reqwest::Response) -> anyhow::Result<Reply> {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.context("reading the reply body")?;
    let message = find_message(&text).unwrap_or(Value::Null);
    Ok(Reply {
        status,
        headers,
        text,
        message,
    })
}

/// The JSON-RPC message in a JSON body, or the first `data:` event of an SSE body carrying a
/// `result` or an `error` (SSE streams may carry notifications before it).
pub fn find_message(text: &str) -> Option<Value> {
    let trimmed = text.trim_start();
    if trimmed.starts_with(['{', '[']) {
        return serde_json::from_str(trimmed).ok();
    }
    trimmed
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_message_in_json_and_sse_bodies() {
        let json_body = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        assert_eq!(find_message(json_body).unwrap()["id"], 1);
        let sse = "id: 0\ndata:\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32602}}\n\n";
        assert_eq!(find_message(sse).unwrap()["error"]["code"], -32602);
        assert_eq!(find_message("Payload Too Large"), None);
    }
}
