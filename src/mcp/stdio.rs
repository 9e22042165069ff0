//! `steward stdio`: the same tools over standard input/output.

use std::sync::Arc;

use rmcp::ServiceExt;

use super::{BoardServer, ServerContext};

/// Serves one stdio connection until the client closes it.
pub async fn serve(ctx: Arc<ServerContext>) -> anyhow::Result<()> {
    // stdio has no session header; give the connection an id so task history can name it.
    let session_id = format!("stdio-{}", uuid::Uuid::new_v4());
    tracing::info!(%session_id, "serving MCP on stdio");
    let service = BoardServer::new(ctx, Some(session_id))
        .serve(rmcp::transport::stdio())
        .await?;
    service.waiting().await?;
    Ok(())
}
