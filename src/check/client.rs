//! A deliberately plain MCP client over HTTP for `steward check`: raw requests, so the check can
//! also break the protocol rules on purpose and see what the server answers.

use reqwest::StatusCode;
use serde_json::{Value, json};

pub const ACCEPT: &str = "application/json, text/event-stream";
pub const PROTOCOL: &str = "2025-11-25";

/// What the server answered.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub session_id: Option<String>,
    /// The JSON-RPC message of the reply (from a JSON or an SSE body), if any.
    pub message: Option<Value>,
    pub text: String,
}

impl Reply {
    /// The parsed JSON text of a tool result (`{"success":...}`).
    pub fn tool_json(&self) -> Option<Value> {
        let text = self
            .message
            .as_ref()?
            .get("result")?
            .get("content")?
            .get(0)?
            .get("text")?
            .as_str()?;
        serde_json::from_str(text).ok()
    }

    pub fn is_tool_error(&self) -> bool {
        self.message
            .as_ref()
            .and_then(|m| m.get("result"))
            .and_then(|r| r.get("isError"))
            .and_then(Value::as_bool)
            == Some(true)
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    pub url: String,
}

impl Client {
    pub fn new(url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Client {
            http,
            url: url.to_string(),
        }
    }

    /// The server's base URL (`http://host:port`), from the MCP URL.
    pub fn base(&self) -> String {
        self.url
            .trim_end_matches('/')
            .trim_end_matches("/mcp")
            .to_string()
    }

    pub async fn post(
        &self,
        session: Option<&str>,
        accept: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<Reply> {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        if let Some(session) = session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", PROTOCOL);
        }
        let response = request.send().await?;
        let status = response.status();
        let session_id = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.text().await?;
        Ok(Reply {
            status,
            session_id,
            message: find_message(&text),
            text,
        })
    }

    pub async fn initialize(&self, client_name: &str) -> anyhow::Result<Reply> {
        let body = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": { "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": { "name": client_name, "version": env!("CARGO_PKG_VERSION") } },
        });
        let reply = self.post(None, Some(ACCEPT), &body).await?;
        if let Some(id) = &reply.session_id {
            self.post(
                Some(id),
                Some(ACCEPT),
                &json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
            )
            .await?;
        }
        Ok(reply)
    }

    pub async fn call(
        &self,
        session: &str,
        id: u64,
        tool: &str,
        arguments: Value,
    ) -> anyhow::Result<Reply> {
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": tool, "arguments": arguments } });
        self.post(Some(session), Some(ACCEPT), &body).await
    }

    pub async fn delete(&self, session: &str) -> anyhow::Result<StatusCode> {
        Ok(self
            .http
            .delete(&self.url)
            .header("mcp-session-id", session)
            .send()
            .await?
            .status())
    }

    pub async fn get_json(&self, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        let response = self
            .http
            .get(format!("{}{path}", self.base()))
            .send()
            .await?;
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }
}

/// The JSON-RPC message in a JSON body or in the `data:` lines of an SSE body.
fn find_message(text: &str) -> Option<Value> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(trimmed).ok();
    }
    trimmed
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
}
