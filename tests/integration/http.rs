//! The HTTP face with a plain HTTP client, as curl or a hand-written client sees it: the
//! session handshake, the rejections that must say what to fix, and `/health`. Every test
//! runs on SQLite and (when `STEWARD_TEST_POSTGRES_URL` is set) PostgreSQL.

use crate::common;

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::raw::{ACCEPT, Client, Reply, initialize_request};
use common::{Backend, InProcess};

const PROTOCOL: &str = "2025-06-18";
/// What curl sends as its user agent.
const CURL: (&str, &str) = ("user-agent", "curl/8.5.0");

/// One test's server, seen through a plain HTTP client.
struct Http {
    client: Client,
    backend: Backend,
}

impl Http {
    /// POSTs a JSON-RPC message to `/mcp` the way curl would, with `accept` (None: no Accept
    /// header) and the session id (and then the revision), if any.
    async fn post(
        &self,
        body: &Value,
        accept: Option<&str>,
        session: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let accept = ("accept", accept.unwrap_or_default());
        self.client
            .post_with(body.to_string(), session, &[CURL, accept])
            .await
    }

    /// `initialize` as curl.
    async fn initialize(&self) -> anyhow::Result<Reply> {
        let body = initialize_request(PROTOCOL, "curl", "8.5.0");
        self.client.post_with(body.to_string(), None, &[CURL]).await
    }

    /// A session that completed the handshake; returns its id.
    async fn open_session(&self) -> anyhow::Result<String> {
        let reply = self.initialize().await?;
        reply.result()?;
        let id = reply.session().context("no mcp-session-id header")?;
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let done = self.post(&initialized, Some(ACCEPT), Some(&id)).await?;
        assert_eq!(done.status, StatusCode::ACCEPTED, "{done:?}");
        Ok(id)
    }
}

fn tools_list() -> Value {
    json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" })
}

/// Checks a rejection: `status`, a JSON content type, and a JSON-RPC error body whose message
/// contains every one of `says` (what to fix).
fn assert_rejection(reply: &Reply, status: StatusCode, says: &[&str]) {
    assert_eq!(reply.status, status, "{reply:?}");
    let content_type = reply
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "{status}: content-type {content_type:?}"
    );
    assert_eq!(reply.message["jsonrpc"], "2.0", "{reply:?}");
    assert!(reply.error_code().is_some(), "{reply:?}");
    let message = reply.error_message();
    for needle in says {
        assert!(
            message.contains(needle),
            "{status}: {message:?} lacks {needle:?}"
        );
    }
}

/// Runs `story` against a fresh server on every configured engine.
async fn on_each_server(story: impl AsyncFn(&Http) -> anyhow::Result<()>) -> anyhow::Result<()> {
    common::on_each_backend(async |db| {
        let server = InProcess::start(&db).await?;
        let http = Http {
            client: Client::new(&server.mcp_url()).at_revision(PROTOCOL),
            backend: db.backend,
        };
        story(&http).await
    })
    .await
}

#[tokio::test]
async fn initialize_with_curl_headers_opens_a_session() -> anyhow::Result<()> {
    on_each_server(async |http| {
        let reply = http.initialize().await?;
        assert_eq!(reply.status, StatusCode::OK);
        let id = reply.session().context("no mcp-session-id header")?;
        assert!(
            id.len() >= 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "session id {id:?}"
        );
        let message = &reply.message;
        assert_eq!(message["id"], 0, "{message}");
        assert_eq!(
            message["result"]["serverInfo"]["name"], "steward",
            "{message}"
        );
        assert_eq!(message["result"]["protocolVersion"], PROTOCOL, "{message}");

        // The session works for the next requests.
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let reply = http.post(&initialized, Some(ACCEPT), Some(&id)).await?;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        let reply = http.post(&tools_list(), Some(ACCEPT), Some(&id)).await?;
        assert_eq!(reply.status, StatusCode::OK);
        let listed = &reply.message;
        let tools = listed["result"]["tools"].as_array().context("no tools")?;
        assert_eq!(tools.len(), 17, "{listed}");

        // Each initialize opens a session of its own.
        let other = http.initialize().await?.session().context("no session")?;
        assert_ne!(other, id);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_post_without_the_accept_header_is_406_naming_it() -> anyhow::Result<()> {
    on_each_server(async |http| {
        for accept in [None, Some("application/json")] {
            let init = initialize_request(PROTOCOL, "curl", "8.5.0");
            let reply = http.post(&init, accept, None).await?;
            assert_rejection(
                &reply,
                StatusCode::NOT_ACCEPTABLE,
                &["Accept", "text/event-stream"],
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_unknown_session_is_404() -> anyhow::Result<()> {
    on_each_server(async |http| {
        let unknown = "0123456789abcdef".repeat(4);
        let reply = http
            .post(&tools_list(), Some(ACCEPT), Some(&unknown))
            .await?;
        // Says how to recover.
        assert_rejection(&reply, StatusCode::NOT_FOUND, &["initialize"]);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_request_without_a_session_id_is_400() -> anyhow::Result<()> {
    on_each_server(async |http| {
        // A live session exists; the request just does not name it.
        http.open_session().await?;
        let reply = http.post(&tools_list(), Some(ACCEPT), None).await?;
        assert_rejection(&reply, StatusCode::BAD_REQUEST, &["Session ID"]);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_deleted_session_is_404_on_reuse() -> anyhow::Result<()> {
    on_each_server(async |http| {
        let id = http.open_session().await?;
        let reply = http.post(&tools_list(), Some(ACCEPT), Some(&id)).await?;
        assert_eq!(reply.status, StatusCode::OK, "the session works");
        let deleted = http.client.delete(&id).await?;
        assert!(deleted.status.is_success(), "DELETE: {deleted:?}");
        let reply = http.post(&tools_list(), Some(ACCEPT), Some(&id)).await?;
        assert_rejection(&reply, StatusCode::NOT_FOUND, &["Mcp-Session-Id"]);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn health_reports_ok_with_the_database() -> anyhow::Result<()> {
    on_each_server(async |http| {
        let (status, body) = http.client.get_json("/health").await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok", "{body}");
        assert_eq!(body["database"]["reachable"], true, "{body}");
        assert_eq!(body["database"]["engine"], http.backend.name(), "{body}");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"), "{body}");
        assert_eq!(body["problems"], json!([]), "{body}");
        Ok(())
    })
    .await
}
