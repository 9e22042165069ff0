//! MCP over plain HTTP, byte for byte, for tests that send what no well-behaved client would.

use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// A plain HTTP client aimed at one server, optionally with an API key.
#[derive(Clone)]
pub struct Raw {
    pub client: reqwest::Client,
    pub base_url: String,
    pub key: Option<String>,
}

/// A reply: status, headers and the JSON-RPC message (JSON body or first SSE `data:` message).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub message: Value,
}

impl Reply {
    pub fn error_code(&self) -> Option<i64> {
        self.message["error"]["code"].as_i64()
    }
    pub fn error_message(&self) -> String {
        self.message["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    pub fn session(&self) -> Option<String> {
        self.headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

impl Raw {
    pub fn new(base_url: &str) -> Self {
        Raw {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("a reqwest client"),
            base_url: base_url.to_string(),
            key: None,
        }
    }

    pub fn with_key(&self, key: &str) -> Self {
        Raw {
            key: Some(key.to_string()),
            ..self.clone()
        }
    }

    pub fn mcp(&self) -> String {
        format!("{}/mcp", self.base_url)
    }

    /// A POST to /mcp with the usual headers (Accept both, JSON), then `extra` headers
    /// (which replace the usual ones of the same name; an empty value removes it).
    pub async fn post_bytes(
        &self,
        body: impl Into<reqwest::Body>,
        session: Option<&str>,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("accept", ACCEPT_BOTH.parse()?);
        headers.insert("content-type", "application/json".parse()?);
        if let Some(key) = &self.key {
            headers.insert("authorization", format!("Bearer {key}").parse()?);
        }
        if let Some(session) = session {
            headers.insert("mcp-session-id", session.parse()?);
        }
        for (name, value) in extra {
            let name: reqwest::header::HeaderName = name.parse()?;
            if value.is_empty() {
                headers.remove(&name);
            } else {
                headers.insert(name, value.parse()?);
            }
        }
        let response = self
            .client
            .post(self.mcp())
            .headers(headers)
            .body(body)
            .send()
            .await?;
        read(response).await
    }

    pub async fn post(&self, body: &Value, session: Option<&str>) -> anyhow::Result<Reply> {
        self.post_bytes(body.to_string(), session, &[]).await
    }

    /// initialize + notifications/initialized at `protocol`; returns the session id.
    pub async fn open_session_at(&self, protocol: &str) -> anyhow::Result<String> {
        let reply = self.post(&initialize_request(protocol), None).await?;
        anyhow::ensure!(reply.status == StatusCode::OK, "initialize: {reply:?}");
        let id = reply.session().context("no mcp-session-id")?;
        let done = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let reply = self
            .post_bytes(
                done.to_string(),
                Some(&id),
                &[("mcp-protocol-version", protocol)],
            )
            .await?;
        anyhow::ensure!(
            reply.status == StatusCode::ACCEPTED,
            "initialized: {reply:?}"
        );
        Ok(id)
    }

    pub async fn open_session(&self) -> anyhow::Result<String> {
        self.open_session_at("2025-11-25").await
    }

    /// tools/list on `session`.
    pub async fn tools_list(&self, session: &str) -> anyhow::Result<Reply> {
        let body = json!({ "jsonrpc": "2.0", "id": "list", "method": "tools/list" });
        self.post_bytes(
            body.to_string(),
            Some(session),
            &[("mcp-protocol-version", "2025-11-25")],
        )
        .await
    }

    /// The server still does its normal work: a tools/list on `session` lists the 17 tools.
    pub async fn still_serves(&self, session: &str) -> anyhow::Result<()> {
        let reply = self.tools_list(session).await?;
        anyhow::ensure!(
            reply.status == StatusCode::OK,
            "tools/list afterwards: {reply:?}"
        );
        let tools = reply.message["result"]["tools"].as_array().map(Vec::len);
        anyhow::ensure!(
            tools == Some(17),
            "tools/list afterwards: {:?}",
            reply.message
        );
        Ok(())
    }

    /// GET a path (with the key as bearer, if any).
    pub async fn get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let mut request = self.client.get(format!("{}{path}", self.base_url));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        Ok(request.send().await?)
    }
}

pub fn initialize_request(protocol: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": protocol,
            "capabilities": {},
            "clientInfo": { "name": "hostile-test", "version": "1.0" },
        },
    })
}

pub async fn read(response: reqwest::Response) -> anyhow::Result<Reply> {
    let status = response.status();
    let headers = response.headers().clone();
    let text = tokio::time::timeout(BODY_TIMEOUT, response.text())
        .await
        .context("the response body did not end")??;
    let message = serde_json::from_str::<Value>(text.trim()).ok().or_else(|| {
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
    });
    Ok(Reply {
        status,
        headers,
        message: message.unwrap_or(Value::String(text)),
    })
}

/// Polls `/api/requests?{query}` until a row matches `pred` (the ledger writes in batches).
pub async fn ledger_row(
    raw: &Raw,
    query: &str,
    pred: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    for _ in 0..100 {
        let response = raw
            .get(&format!("/api/requests?per_page=1000&{query}"))
            .await?;
        let body: Value = response.json().await?;
        if let Some(row) = body["requests"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| pred(r)))
        {
            return Ok(row.clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("no ledger row for {query} matched")
}
