//! Ledger retention: rows older than `--ledger-retention` are folded into hourly rollups
//! (`mcp_request_rollups`) and pruned, on the cleanup interval.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::store::Store;
use crate::store::availability::Availability;
use crate::sync::lock;

/// Rows folded per transaction, and most transactions per run: keeps each run short.
const BATCH: i64 = 5_000;
const MAX_BATCHES_PER_RUN: usize = 20;

/// Runs one pass: prunes (in batches) every row older than `retention`. Returns rows pruned.
pub async fn prune_once(store: &Store, retention: Duration) -> Result<u64, sqlx::Error> {
    let before =
        Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let mut total = 0;
    for _ in 0..MAX_BATCHES_PER_RUN {
        let pruned = store.prune_requests(before, BATCH).await?;
        total += pruned;
        if pruned < BATCH as u64 {
            break;
        }
    }
    Ok(total)
}

/// Starts the periodic pruning; failures are counted and shown in `/health`.
/// The first pass waits for the database (see [`Availability`]).
pub fn spawn(
    store: Store,
    database: Arc<Availability>,
    shared: Arc<Shared>,
    retention: Duration,
    every: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = database.wait() => {}
        }
        let passes = crate::sync::every(every, shutdown, move || {
            let (store, shared) = (store.clone(), shared.clone());
            async move { prune_and_record(&store, &shared, retention).await }
        });
        if let Err(error) = passes.await {
            tracing::warn!(%error, "ledger retention ended abnormally");
        }
    })
}

/// One pass, with its outcome recorded for `/health` (an error logged once until it changes).
async fn prune_and_record(store: &Store, shared: &Shared, retention: Duration) {
    let outcome = prune_once(store, retention).await;
    let mut state = lock(&shared.retention);
    state.last_run = Some(Utc::now());
    match outcome {
        Ok(pruned) => {
            state.pruned += pruned;
            if state.last_error.succeeded() {
                tracing::info!("ledger retention recovered");
            }
        }
        Err(error) => {
            if let Some(message) = state.last_error.failed(error.to_string()) {
                tracing::error!(error = %message, "ledger retention failed");
            }
        }
    }
}
