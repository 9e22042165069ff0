//! Resumable streams: a client that reconnects with `Last-Event-ID` after a crash and restart
//! gets the events it missed, replayed from the database.

use crate::common;

use common::raw::Client;
use common::{TestDb, TestServer, backends, kill_9};

#[tokio::test]
async fn a_reconnecting_client_gets_missed_events_after_a_crash() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let server = TestServer::start_with(&db, &["--event-store", "database"]).await?;
        let raw = Client::new(&server.mcp_url()).at_revision("2025-11-25");
        let session = raw.open_session("2025-11-25", "resume-test").await?;
        let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"find_projects","arguments":{}}}"#;
        let stream = raw.post_with(call, Some(&session), &[]).await?.text;
        // The priming event comes first; everything after it is what a client would miss.
        let priming = stream
            .lines()
            .find_map(|line| line.strip_prefix("id: "))
            .expect("event ids on the stream")
            .to_string();
        assert!(stream.contains(r#""id":7"#), "{backend:?}: {stream}");
        // Give the event writer (100 ms batches) time, then crash and restart.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        kill_9(server).await?;
        let server = TestServer::start_with(&db, &["--event-store", "database"]).await?;
        let replay = raw
            .http()
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
