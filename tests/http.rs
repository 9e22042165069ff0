//! The HTTP face with a plain HTTP client, as curl or a hand-written client sees it: the
//! session handshake, the rejections that must say what to fix, and `/health`. Every test
//! runs on SQLite and (when `STEWARD_TEST_POSTGRES_URL` is set) PostgreSQL.

mod common;

use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::{Backend, TestDb, TestServer, backends};

/// What every MCP POST must accept.
const ACCEPT_BOTH: &str = "application/json, text/event-stream";
const PROTOCOL: &str = "2025-06-18";
/// Longest wait for a response body (an SSE stream that never closed would hang the test).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// One test's server, seen through a plain HTTP client.
struct Http {
    client: reqwest::Client,
    backend: Backend,
    base_url: String,
}

impl Http {
    fn mcp(&self) -> String {
        format!("{}/mcp", self.base_url)
    }

    /// POSTs a JSON-RPC message to `/mcp` the way curl would, with `accept` (None: no Accept
    /// header) and the session id, if any.
    async fn post(
        &self,
        body: &Value,
        accept: Option<&str>,
        session: Option<&str>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self
            .client
            .post(self.mcp())
            .header("user-agent", "curl/8.5.0")
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
        Ok(request.send().await?)
    }

    /// `initialize`; returns the response (its body unread).
    async fn initialize(&self) -> anyhow::Result<reqwest::Response> {
        self.post(&initialize_request(), Some(ACCEPT_BOTH), None)
            .await
    }

    /// A session that completed the handshake; returns its id.
    async fn open_session(&self) -> anyhow::Result<String> {
        let response = self.initialize().await?;
        assert_eq!(response.status(), StatusCode::OK);
        let id = session_header(&response)?;
        jsonrpc_result(response).await?;
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let response = self
            .post(&initialized, Some(ACCEPT_BOTH), Some(&id))
            .await?;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        Ok(id)
    }
}

fn initialize_request() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": { "name": "curl", "version": "8.5.0" },
        },
    })
}

fn tools_list() -> Value {
    json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" })
}

fn session_header(response: &reqwest::Response) -> anyhow::Result<String> {
    let value = response
        .headers()
        .get("mcp-session-id")
        .context("no mcp-session-id header")?;
    Ok(value.to_str()?.to_string())
}

/// The body, read with a timeout.
async fn body_text(response: reqwest::Response) -> anyhow::Result<String> {
    let text = tokio::time::timeout(BODY_TIMEOUT, response.text())
        .await
        .context("the response body did not end")??;
    Ok(text)
}

/// The JSON-RPC message of a response: the JSON body, or the first `data:` event of an SSE
/// body that holds one.
async fn jsonrpc_result(response: reqwest::Response) -> anyhow::Result<Value> {
    let is_sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let text = body_text(response).await?;
    if !is_sse {
        return Ok(serde_json::from_str(&text)?);
    }
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .find_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .with_context(|| format!("no JSON-RPC message in the event stream: {text:?}"))
}

/// Checks a rejection: `status`, a JSON content type, and a JSON-RPC error body whose message
/// contains every one of `says` (what to fix).
async fn assert_rejection(
    response: reqwest::Response,
    status: StatusCode,
    says: &[&str],
) -> anyhow::Result<()> {
    assert_eq!(response.status(), status);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{status}: content-type {content_type:?}"
    );
    let body: Value = serde_json::from_str(&body_text(response).await?)?;
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert!(body["error"]["code"].is_i64(), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    for needle in says {
        assert!(
            message.contains(needle),
            "{status}: {message:?} lacks {needle:?}"
        );
    }
    Ok(())
}

/// Runs `story` against a fresh server on every available engine.
async fn on_each_server(story: impl AsyncFn(&Http) -> anyhow::Result<()>) -> anyhow::Result<()> {
    for backend in backends() {
        eprintln!("--- http story on {}", backend.name());
        let db = TestDb::new(backend).await?;
        let server = TestServer::start(&db).await?;
        let http = Http {
            client: reqwest::Client::new(),
            backend,
            base_url: server.base_url.clone(),
        };
        story(&http)
            .await
            .with_context(|| format!("on {}", backend.name()))?;
        drop(http);
        // Killed, not stopped: graceful shutdown is not what these stories test, and it waits
        // for the request ledger to flush.
        drop(server);
    }
    Ok(())
}

#[tokio::test]
async fn initialize_with_curl_headers_opens_a_session() -> anyhow::Result<()> {
    on_each_server(async |http| {
        let response = http.initialize().await?;
        assert_eq!(response.status(), StatusCode::OK);
        let id = session_header(&response)?;
        assert!(
            id.len() >= 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "session id {id:?}"
        );
        let message = jsonrpc_result(response).await?;
        assert_eq!(message["id"], 1, "{message}");
        assert_eq!(
            message["result"]["serverInfo"]["name"], "steward",
            "{message}"
        );
        assert_eq!(message["result"]["protocolVersion"], PROTOCOL, "{message}");

        // The session works for the next requests.
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let response = http
            .post(&initialized, Some(ACCEPT_BOTH), Some(&id))
            .await?;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let response = http
            .post(&tools_list(), Some(ACCEPT_BOTH), Some(&id))
            .await?;
        assert_eq!(response.status(), StatusCode::OK);
        let listed = jsonrpc_result(response).await?;
        let tools = listed["result"]["tools"].as_array().context("no tools")?;
        assert_eq!(tools.len(), 17, "{listed}");

        // Each initialize opens a session of its own.
        let other = session_header(&http.initialize().await?)?;
        assert_ne!(other, id);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_post_without_the_accept_header_is_406_naming_it() -> anyhow::Result<()> {
    on_each_server(async |http| {
        for accept in [None, Some("application/json")] {
            let response = http.post(&initialize_request(), accept, None).await?;
            assert_rejection(
                response,
                StatusCode::NOT_ACCEPTABLE,
                &["Accept", "text/event-stream"],
            )
            .await
            .with_context(|| format!("Accept: {accept:?}"))?;
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_unknown_session_is_404() -> anyhow::Result<()> {
    on_each_server(async |http| {
        let unknown = "0123456789abcdef".repeat(4);
        let response = http
            .post(&tools_list(), Some(ACCEPT_BOTH), Some(&unknown))
            .await?;
        // Says how to recover.
        assert_rejection(response, StatusCode::NOT_FOUND, &["initialize"]).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_request_without_a_session_id_is_400() -> anyhow::Result<()> {
    on_each_server(async |http| {
        // A live session exists; the request just does not name it.
        http.open_session().await?;
        let response = http.post(&tools_list(), Some(ACCEPT_BOTH), None).await?;
        assert_rejection(response, StatusCode::BAD_REQUEST, &["Session ID"]).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_deleted_session_is_404_on_reuse() -> anyhow::Result<()> {
    on_each_server(async |http| {
        let id = http.open_session().await?;
        let response = http
            .post(&tools_list(), Some(ACCEPT_BOTH), Some(&id))
            .await?;
        assert_eq!(response.status(), StatusCode::OK, "the session works");
        let deleted = http
            .client
            .delete(http.mcp())
            .header("mcp-session-id", &id)
            .header("mcp-protocol-version", PROTOCOL)
            .send()
            .await?;
        assert!(
            deleted.status().is_success(),
            "DELETE: {}",
            deleted.status()
        );
        let response = http
            .post(&tools_list(), Some(ACCEPT_BOTH), Some(&id))
            .await?;
        assert_rejection(response, StatusCode::NOT_FOUND, &["Mcp-Session-Id"]).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn health_reports_ok_with_the_database() -> anyhow::Result<()> {
    on_each_server(async |http| {
        let response = http
            .client
            .get(format!("{}/health", http.base_url))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await?;
        assert_eq!(body["status"], "ok", "{body}");
        assert_eq!(body["database"]["reachable"], true, "{body}");
        assert_eq!(body["database"]["engine"], http.backend.name(), "{body}");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"), "{body}");
        assert_eq!(body["problems"], json!([]), "{body}");
        Ok(())
    })
    .await
}
