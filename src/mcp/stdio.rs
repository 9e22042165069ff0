//! `steward stdio`: the same tools over standard input/output, recorded in the ledger under a
//! logical session of kind `logical` (stdio has no session id of its own).

use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::transport::async_rw::AsyncRwTransport;
use tokio_util::sync::CancellationToken;

use super::{BoardServer, ServerContext};
use crate::ledger::Ledger;
use crate::ledger::stdio::Tapped;

/// Serves one stdio connection until the client closes it.
/// Stops when `shutdown` fires (SIGTERM/SIGINT), so the ledger can still be flushed.
pub async fn serve(
    ctx: Arc<ServerContext>,
    ledger: Ledger,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let session_id = format!("stdio-{}", uuid::Uuid::new_v4());
    tracing::info!(%session_id, "serving MCP on stdio");
    let transport = AsyncRwTransport::new_server(tokio::io::stdin(), tokio::io::stdout());
    let store = ctx.store.clone();
    let tapped =
        Tapped::new(transport, ledger, session_id.clone()).on_initialize(move |id, params| {
            let row = crate::sessions::logical_session_row(id, params);
            let store = store.clone();
            tokio::spawn(async move {
                if let Err(error) = store.insert_session(&row).await {
                    tracing::error!(%error, "could not record the stdio session");
                }
            });
        });
    let service = BoardServer::new(ctx, Some(session_id))
        .serve(tapped)
        .await?;
    let stop = service.cancellation_token();
    tokio::select! {
        outcome = service.waiting() => {
            outcome?;
        }
        _ = shutdown.cancelled() => {
            tracing::info!("stopping stdio on a signal");
            stop.cancel();
        }
    }
    Ok(())
}
