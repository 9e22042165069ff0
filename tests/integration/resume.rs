//! Resumable streams: a client that reconnects with `Last-Event-ID` after a crash and restart
//! gets the events it missed, replayed from the database.

use crate::common;

use common::{TestDb, TestServer, backends};
use reqwest::Client;

const ACCEPT: &str = "application/json, text/event-stream";

async fn post(
    http: &Client,
    url: &str,
    session: Option<&str>,
    body: &str,
) -> anyhow::Result<(Option<String>, String)> {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .body(body.to_string());
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let response = request.send().await?;
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((session, response.text().await?))
}

#[tokio::test]
async fn a_reconnecting_client_gets_missed_events_after_a_crash() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let http = Client::new();
        let server = TestServer::start_with(&db, &["--event-store", "database"]).await?;
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"resume-test","version":"1"}}}"#;
        let (session, _) = post(&http, &server.mcp_url(), None, init).await?;
        let session = session.expect("a session id");
        post(
            &http,
            &server.mcp_url(),
            Some(&session),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .await?;
        let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"find_projects","arguments":{}}}"#;
        let (_, stream) = post(&http, &server.mcp_url(), Some(&session), call).await?;
        // The priming event comes first; everything after it is what a client would miss.
        let priming = stream
            .lines()
            .find_map(|line| line.strip_prefix("id: "))
            .expect("event ids on the stream")
            .to_string();
        assert!(stream.contains(r#""id":7"#), "{backend:?}: {stream}");
        // Give the event writer (100 ms batches) time, then crash and restart.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if let Some(pid) = server.pid() {
            std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()?;
        }
        drop(server);
        let server = TestServer::start_with(&db, &["--event-store", "database"]).await?;
        let replay = http
            .get(server.mcp_url())
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .header("last-event-id", &priming)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await?;
        assert_eq!(replay.status(), 200, "{backend:?}");
        let body = replay.text().await.unwrap_or_default();
        assert!(
            body.contains(r#""id":7"#) && body.contains("success"),
            "{backend:?}: replay was {body}"
        );
    }
    Ok(())
}
