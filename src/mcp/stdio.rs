//! `steward stdio`: the same tools over standard input/output, recorded in the ledger under a
//! logical session of kind `logical` (stdio has no session id of its own). The session ends
//! when the client closes standard input or the process is told to stop (SIGTERM, SIGINT,
//! SIGHUP): its row is marked `ended` and the task claims it held end with it
//! (`session_ended`), as an HTTP session's do on DELETE.

use std::sync::{Arc, Mutex};

use rmcp::ServiceExt;
use rmcp::transport::async_rw::AsyncRwTransport;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{BoardServer, ServerContext};
use crate::ledger::Ledger;
use crate::ledger::stdio::Tapped;
use crate::store::Store;
use crate::store::availability::Availability;
use crate::sync::lock;

/// Serves one stdio connection until the client closes it.
/// Stops when `shutdown` fires (a signal), so the ledger can still be flushed. While
/// `database` has not answered since start, the session's row waits for it; a stop before it
/// answers writes no row (the ledger's rows wait in the journal).
pub async fn serve(
    ctx: Arc<ServerContext>,
    ledger: Ledger,
    database: Arc<Availability>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let session_id = format!("stdio-{}", uuid::Uuid::new_v4());
    tracing::info!(%session_id, "serving MCP on stdio");
    let transport = AsyncRwTransport::new_server(tokio::io::stdin(), tokio::io::stdout());
    let store = ctx.store.clone();
    let ready = database.clone();
    // The row is written off the message path; the session's end waits for it.
    let recording: Arc<Mutex<Option<JoinHandle<()>>>> = Arc::default();
    let slot = recording.clone();
    let tapped =
        Tapped::new(transport, ledger, session_id.clone()).on_initialize(move |id, params| {
            let row = crate::sessions::logical_session_row(id, params);
            let (store, database) = (store.clone(), database.clone());
            *lock(&slot) = Some(tokio::spawn(async move {
                database.wait().await;
                if let Err(error) = store.insert_session(&row).await {
                    tracing::error!(%error, "could not record the stdio session");
                }
            }));
        });
    let service = BoardServer::new(ctx.clone(), Some(session_id.clone()))
        .serve(tapped)
        .await;
    let outcome = match service {
        Ok(service) => {
            let stop = service.cancellation_token();
            tokio::select! {
                outcome = service.waiting() => outcome.map(drop).map_err(anyhow::Error::from),
                _ = shutdown.cancelled() => {
                    tracing::info!("stopping stdio on a signal");
                    stop.cancel();
                    Ok(())
                }
            }
        }
        Err(error) => Err(error.into()),
    };
    let pending = lock(&recording).take();
    if !ready.is_ready() {
        // Waiting for the database would hold the stop for as long as it is down.
        if let Some(recording) = pending {
            recording.abort();
        }
        tracing::warn!(%session_id, "the database is unreachable: the stdio session's row is not written");
        return outcome;
    }
    if let Some(recorded) = pending
        && let Err(error) = recorded.await
    {
        tracing::warn!(%error, "recording the stdio session did not finish");
    }
    end_session(&ctx.store, &session_id).await;
    outcome
}

/// Marks the session `ended`, which ends the claims it holds.
async fn end_session(store: &Store, session_id: &str) {
    match store.end_session(session_id, "disconnected", "ended").await {
        Ok(Some(_)) => tracing::info!(%session_id, "stdio session ended"),
        Ok(None) => tracing::debug!(%session_id, "stdio session had no live row to end"),
        Err(error) => {
            tracing::error!(%error, %session_id, "could not end the stdio session; its claims end when their leases run out")
        }
    }
}
