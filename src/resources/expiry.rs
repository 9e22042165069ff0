//! Claims whose lease ran out end as events, not only when someone next looks: a sweep on
//! every replica ends them within one period of their `lease_until` — each end a history row
//! with reason `lease_expired` — and tells this replica's subscribers that the task changed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::changes::BoardChanges;
use crate::logs::LastError;
use crate::store::{Id, Store};
use crate::sync::lock;

/// Tells subscribers about each task whose claim ended.
pub fn publish_ended(changes: &BoardChanges, ended: &[(Id, Id)]) {
    changes.publish_tasks(ended);
}

/// Ends the ran-out leases once and tells subscribers. It first counts them (see
/// [`Store::end_expired_claims`]): a sweep that finds none, every period of an idle server,
/// takes no write lock (on SQLite, none that another writer waits for) and writes nothing.
pub async fn sweep(store: &Store, changes: &BoardChanges) -> Result<usize, sqlx::Error> {
    let ended = store.end_expired_claims().await?;
    publish_ended(changes, &ended);
    Ok(ended.len())
}

/// What the sweeps did, for `/health`, `/metrics` and `health_check`: a sweep that fails is
/// counted and shown until one succeeds, not only logged.
#[derive(Clone, Debug, Default)]
pub struct SweepHealth(Arc<Mutex<SweepReport>>);

/// The sweeps' record since start.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SweepReport {
    pub last_run: Option<DateTime<Utc>>,
    /// Sweeps that failed since start.
    pub failures: u64,
    /// Why the last sweep failed; `null` once one succeeds.
    pub last_error: LastError,
}

impl SweepHealth {
    pub fn report(&self) -> SweepReport {
        lock(&self.0).clone()
    }

    /// Records one sweep's outcome (an error logged once until it changes).
    fn record(&self, outcome: Result<usize, sqlx::Error>) {
        let mut state = lock(&self.0);
        state.last_run = Some(Utc::now());
        match outcome {
            Ok(ended) => {
                if ended > 0 {
                    tracing::debug!(ended, "claims whose lease ran out were ended");
                }
                if state.last_error.succeeded() {
                    tracing::info!("the lease sweep recovered");
                }
            }
            Err(error) => {
                if let Some(message) = state.last_error.failed(error.to_string()) {
                    tracing::error!(error = %message, "could not end the claims whose lease ran out; retrying");
                }
                state.failures += 1;
                metrics::counter!("steward_claim_sweep_failures_total").increment(1);
            }
        }
        metrics::gauge!("steward_claim_sweep_last_run_failed").set(
            if state.last_error.get().is_some() {
                1.0
            } else {
                0.0
            },
        );
    }
}

/// Sweeps every `period` until `shutdown`. A failed sweep is counted, shown in `health` and
/// tried again at the next tick: the leases it missed are still there, and reads end them on
/// the way meanwhile.
pub fn spawn_sweep(
    store: Store,
    changes: BoardChanges,
    health: SweepHealth,
    period: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let stop = shutdown.clone();
    crate::sync::every(period, shutdown, move || {
        let (store, changes, health) = (store.clone(), changes.clone(), health.clone());
        let stop = stop.clone();
        // Abandoned at a stop: against a database that does not answer, a sweep waits out the
        // pool's 5-s acquire timeout, and the stop would wait with it. Its transaction rolls
        // back; the next start's sweep ends the same leases.
        async move {
            tokio::select! {
                outcome = sweep(&store, &changes) => health.record(outcome),
                _ = stop.cancelled() => {}
            }
        }
    })
}
