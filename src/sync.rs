//! Small synchronisation helpers shared by the layers.

use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Locks a mutex that guards plain data (maps, counters, a state value). A panic while it was
/// held cannot leave such data half-updated in a way that matters, so a poisoned lock is
/// still used rather than turning one panic into many.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `job` every `period`, the first time at once, until `shutdown`. A run is never cut
/// short by the shutdown, and a run that overruns delays the next instead of bunching them.
pub(crate) fn every<F, Fut>(
    period: Duration,
    shutdown: CancellationToken,
    mut job: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => job().await,
            }
        }
    })
}
