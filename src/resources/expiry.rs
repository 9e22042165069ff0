//! Claims whose lease ran out end as events, not only when someone next looks: a sweep on
//! every replica ends them within one period of their `lease_until` — each end a history row
//! with reason `lease_expired` — and tells this replica's subscribers that the task changed.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::changes::{BoardChanges, Change};
use crate::store::{Id, Store};

/// Tells subscribers about each task whose claim ended.
pub fn publish_ended(changes: &BoardChanges, ended: &[(Id, Id)]) {
    for &(project_id, task_id) in ended {
        changes.publish(Change::Task {
            project_id,
            task_id,
        });
    }
}

/// Ends the ran-out leases once (see [`Store::sweep_expired_claims`]) and tells subscribers.
pub async fn sweep(store: &Store, changes: &BoardChanges) -> Result<usize, sqlx::Error> {
    let ended = store.sweep_expired_claims().await?;
    publish_ended(changes, &ended);
    Ok(ended.len())
}

/// Sweeps every `period` until `shutdown`. A failed sweep is logged and tried again at the
/// next tick: the leases it missed are still there, and reads end them on the way meanwhile.
pub fn spawn_sweep(
    store: Store,
    changes: BoardChanges,
    period: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    crate::sync::every(period, shutdown, move || {
        sweep_logged(store.clone(), changes.clone())
    })
}

async fn sweep_logged(store: Store, changes: BoardChanges) {
    match sweep(&store, &changes).await {
        Ok(0) => {}
        Ok(ended) => tracing::debug!(ended, "claims whose lease ran out were ended"),
        Err(error) => {
            tracing::warn!(%error, "could not end the claims whose lease ran out; retrying")
        }
    }
}
