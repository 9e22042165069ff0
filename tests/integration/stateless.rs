//! Stateless 2026-07-28 clients: served without a session, grouped into a logical session
//! (`kind = logical`) that the ledger attributes their requests to.

use crate::common;

use std::time::Duration;

use common::{InProcess, TestDb, backends, open_store};
use serde_json::json;
use steward::store::requests::RequestFilter;
use steward::store::sessions::SessionFilter;

async fn stateless_call(
    http: &reqwest::Client,
    url: &str,
    id: u64,
    client: &str,
) -> anyhow::Result<(u16, String)> {
    let body = json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {
            "name": "health_check", "arguments": {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": { "name": client, "version": "2.3.0" },
            },
        },
    });
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "health_check")
        .body(body.to_string())
        .send()
        .await?;
    Ok((response.status().as_u16(), response.text().await?))
}

#[tokio::test]
async fn stateless_requests_share_a_logical_session() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = InProcess::start(&db).await?;
        let http = crate::common::http_client();
        for id in 1..=2 {
            let (status, body) = stateless_call(&http, &server.mcp_url(), id, "python-sdk").await?;
            assert_eq!(status, 200, "{backend:?}: {body}");
            assert!(body.contains(r#"\"success\":true"#), "{backend:?}: {body}");
        }
        let (status, _) = stateless_call(&http, &server.mcp_url(), 3, "other-client").await?;
        assert_eq!(status, 200);

        let store = open_store(&db).await?;
        let filter = SessionFilter {
            kind: Some("logical".into()),
            ..SessionFilter::default()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let (sessions, rows) = loop {
            let (sessions, _) = store.list_sessions(&filter, 10, 0).await?;
            let (rows, _) = store
                .list_requests(&RequestFilter::default(), 100, 0)
                .await?;
            if (sessions.len() >= 2 && rows.len() >= 3) || tokio::time::Instant::now() > deadline {
                break (sessions, rows);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            sessions.len(),
            2,
            "{backend:?}: one logical session per client: {sessions:?}"
        );
        let python = sessions
            .iter()
            .find(|s| s.client_name.as_deref() == Some("python-sdk"))
            .expect("python-sdk session");
        assert_eq!(python.protocol_version.as_deref(), Some("2026-07-28"));
        assert!(
            python.initialize_params.is_none(),
            "nothing to restore for a logical session"
        );
        let attributed = rows
            .iter()
            .filter(|r| r.session_id.as_deref() == Some(&python.session_id))
            .count();
        assert_eq!(
            attributed, 2,
            "{backend:?}: both python-sdk requests belong to its logical session"
        );
        assert!(
            rows.iter().all(|r| r.status.as_str() == "success"),
            "{backend:?}: {rows:?}"
        );
    }
    Ok(())
}
