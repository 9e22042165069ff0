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
/// short by the shutdown (a job that must not hold a stop selects on it itself), a stop never
/// starts another (a run that overran has its next tick ready at once: the stop goes first), and
/// a run that overruns delays the next instead of bunching them.
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
                biased;
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => job().await,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A run that overruns its period has its next tick ready when it ends; a stop that came
    /// during the run must win over that tick (with an even pick, 16 stops in a row would all
    /// win once in 65,536 tries).
    #[tokio::test]
    async fn a_stop_during_a_run_starts_no_other() {
        for _ in 0..16 {
            let (runs, shutdown) = (Arc::new(AtomicUsize::new(0)), CancellationToken::new());
            let job = every(Duration::from_millis(1), shutdown.clone(), {
                let (runs, shutdown) = (runs.clone(), shutdown.clone());
                move || {
                    let (runs, shutdown) = (runs.clone(), shutdown.clone());
                    async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        shutdown.cancel();
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            });
            job.await.expect("the job's task");
            assert_eq!(
                runs.load(Ordering::SeqCst),
                1,
                "a run started after the stop"
            );
        }
    }
}
