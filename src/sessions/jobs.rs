//! The session layer's background jobs. Each stops when the shutdown token fires; a failed run
//! is counted and shown in `/health`, never just logged.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Sessions;
use crate::sync::lock;

/// Replicas' clocks may disagree a little; look back this much further for ended sessions.
const CLOCK_SKEW_MARGIN: chrono::Duration = chrono::Duration::seconds(10);
/// Longest a stop waits for its last activity write: a database that answers takes
/// milliseconds; one that does not would hold the stop for the pool's acquire timeout (5 s).
const STOP_FLUSH_LIMIT: Duration = Duration::from_secs(1);

impl Sessions {
    /// Starts the activity flusher, the lifecycle cleanup and the revocation watcher. A run in
    /// progress when `shutdown` fires is abandoned rather than awaited: against a database
    /// that does not answer it would hold the stop for the pool's 5-s acquire timeout. Each
    /// leaves nothing half-done (activity is put back, a transaction rolls back).
    pub fn spawn_jobs(self: &Arc<Self>, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
        let s = self.settings.clone();
        vec![
            self.every(s.activity_flush, &shutdown, |me, stop| async move {
                me.write_activity(stop.cancelled()).await;
            }),
            self.every(s.cleanup_interval, &shutdown, |me, stop| async move {
                // Flush first so a session used a moment ago is not timed out on stale data.
                me.write_activity(stop.cancelled()).await;
                tokio::select! {
                    _ = me.apply_lifecycle() => {}
                    _ = stop.cancelled() => {}
                }
            }),
            watch_ended(self.clone(), s.revocation_poll, shutdown),
        ]
    }

    /// At a stop: the last write of the activity noted since the last flush, unless the
    /// database has not answered since start (`database_ready` false), and for no longer than
    /// [`STOP_FLUSH_LIMIT`]. What is not written is the activity of requests whose ledger rows
    /// wait in the journal while the database is down: the next start replays them and moves
    /// `last_activity` to them (see `ledger::recovery`). Returns whether it was written.
    pub async fn flush_activity_at_stop(&self, database_ready: bool) -> bool {
        let written = database_ready
            && self
                .write_activity(tokio::time::sleep(STOP_FLUSH_LIMIT))
                .await;
        let unwritten = match written {
            true => 0,
            false => self.manager.take_activity().len(),
        };
        if unwritten > 0 {
            tracing::warn!(
                sessions = unwritten,
                "session activity not written at stop: the database does not answer; the next start takes last_activity from the ledger rows waiting in the journal"
            );
        }
        unwritten == 0
    }

    /// Writes the activity noted since the last flush, unless `give_up` comes first; on
    /// failure (or giving up) keeps it for the next try. True when nothing is left unwritten.
    async fn write_activity(&self, give_up: impl std::future::Future<Output = ()>) -> bool {
        let activity = self.manager.take_activity();
        if activity.is_empty() {
            return true;
        }
        // The newest activity of the batch stands for all of it (they are within a flush
        // interval of each other).
        let at = activity
            .iter()
            .map(|(_, at)| *at)
            .max()
            .unwrap_or_else(Utc::now);
        let ids: Vec<String> = activity.iter().map(|(id, _)| id.clone()).collect();
        let outcome = tokio::select! {
            biased;
            outcome = self.store.touch_sessions(&ids, at) => outcome,
            _ = give_up => {
                self.manager.restore_activity(activity);
                return false;
            }
        };
        match outcome {
            Ok(_) => {
                self.write_succeeded();
                true
            }
            Err(error) => {
                self.write_failed("recording session activity", &error);
                self.manager.restore_activity(activity);
                false
            }
        }
    }

    /// Applies the lifecycle once and records the run (or its failure).
    async fn apply_lifecycle(&self) {
        let lifecycle = self.settings.lifecycle();
        match self.store.run_session_cleanup(&lifecycle).await {
            // A run that reached the database clears an earlier write failure: without this,
            // a cleanup that failed during an outage kept `/health` degraded after recovery
            // until some session happened to write.
            Ok(Some((counts, ended))) => {
                self.write_succeeded();
                tracing::debug!(?counts, "session cleanup ran");
                crate::metrics::record_cleanup("ok");
                for session in &ended {
                    crate::metrics::record_session_lifetime(session.lifetime(), session.reason);
                }
            }
            Ok(None) => {
                self.write_succeeded();
                tracing::debug!("session cleanup skipped: another replica is running it");
                crate::metrics::record_cleanup("skipped");
            }
            Err(error) => {
                tracing::error!(%error, "session cleanup failed");
                crate::metrics::record_cleanup("failed");
                if let Err(record_error) = self
                    .store
                    .record_failed_cleanup(lifecycle.now, &error.to_string())
                    .await
                {
                    self.write_failed("recording a failed cleanup run", &record_error);
                }
                self.write_failed("session cleanup", &error);
            }
        }
        match self.store.last_cleanup_run().await {
            Ok(run) => *lock(&self.health.last_cleanup) = run,
            Err(error) => tracing::warn!(%error, "could not read the last cleanup run"),
        }
    }

    /// Closes, on this replica, every session that any replica ended since `since`. With no
    /// session held here every session the read returned would be passed over, so the
    /// database is not read (the next poll looks back `CLOCK_SKEW_MARGIN` further anyway).
    /// Each periodic read takes a pool connection and sqlx hands out idle ones first in,
    /// first out: this poll and the lease sweep (same period) would keep two SQLite
    /// connections (a thread and its heap each) from ever staying idle long enough to close.
    pub async fn close_ended_since(
        &self,
        since: chrono::DateTime<Utc>,
    ) -> Result<usize, sqlx::Error> {
        if self.manager.cached().await == 0 {
            return Ok(0);
        }
        let ended = self.store.ended_since(since - CLOCK_SKEW_MARGIN).await?;
        let mut closed = 0;
        for id in ended {
            if self.manager.has_cached(&id).await {
                self.forget_locally(&id).await;
                tracing::info!(session_id = %id, "session ended elsewhere: closed on this replica");
                closed += 1;
            }
        }
        Ok(closed)
    }

    /// Runs `job` on these sessions every `period` until `shutdown` fires; the job is handed
    /// the token, to give up a run in progress.
    fn every<F, Fut>(
        self: &Arc<Self>,
        period: Duration,
        shutdown: &CancellationToken,
        job: F,
    ) -> JoinHandle<()>
    where
        F: Fn(Arc<Sessions>, CancellationToken) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let (sessions, stop) = (self.clone(), shutdown.clone());
        crate::sync::every(period, shutdown.clone(), move || {
            job(sessions.clone(), stop.clone())
        })
    }
}

fn watch_ended(
    sessions: Arc<Sessions>,
    period: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut since = Utc::now();
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {
                    let started = Utc::now();
                    let checked = tokio::select! {
                        checked = sessions.close_ended_since(since) => checked,
                        _ = shutdown.cancelled() => break,
                    };
                    match checked {
                        Ok(_) => since = started,
                        Err(error) => tracing::warn!(%error, "could not check for sessions ended elsewhere; retrying"),
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::SessionSettings;
    use crate::store::{DatabaseUrl, Store};
    use rmcp::transport::streamable_http_server::session::SessionManager as _;

    #[tokio::test]
    async fn the_revocation_poll_reads_the_database_only_while_sessions_are_held()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("steward.db");
        let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display()))?;
        let store = Store::open(&url).await?;
        let sessions = Sessions::new(store.clone(), SessionSettings::default(), None);
        // A closed pool fails every read, so an `Ok` means the poll did not read.
        store.close().await;
        assert_eq!(sessions.close_ended_since(Utc::now()).await?, 0);

        let (_id, _transport) = sessions.manager.create_session().await?;
        assert!(
            sessions.close_ended_since(Utc::now()).await.is_err(),
            "with a session held, the poll reads the database"
        );
        Ok(())
    }
}
