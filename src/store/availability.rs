//! Whether the database has answered since start. `steward serve` starts even while PostgreSQL
//! is unreachable (a database restarted with the server, a network not up yet): the store then
//! connects on first use, a task keeps trying to connect and migrate, and until it has
//! succeeded `/health` answers 503 with the reason, MCP requests get a JSON-RPC error, and the
//! ledger's writer (with the journal a crashed run left) waits for it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{DatabaseUrl, OpenError, Store};
use crate::sync::lock;

/// First wait between attempts, doubled up to [`MAX_RETRY`].
const MIN_RETRY: Duration = Duration::from_millis(250);
/// Longest wait between attempts: how long after the database is back Steward may still
/// refuse requests (plus one connection attempt).
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Whether the store is usable yet, and if not, why.
#[derive(Debug)]
pub struct Availability {
    ready: watch::Sender<bool>,
    problem: Mutex<Option<String>>,
}

impl Availability {
    /// A store that opened (and migrated) at start.
    pub fn available() -> Arc<Availability> {
        Arc::new(Availability {
            ready: watch::Sender::new(true),
            problem: Mutex::new(None),
        })
    }

    fn waiting(problem: String) -> Arc<Availability> {
        Arc::new(Availability {
            ready: watch::Sender::new(false),
            problem: Mutex::new(Some(problem)),
        })
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Returns once the store is usable (at once if it already is).
    pub async fn wait(&self) {
        let mut ready = self.ready.subscribe();
        // The sender lives in `self`: the channel cannot close while this waits, so this
        // only returns once the store is ready.
        if ready.wait_for(|ready| *ready).await.is_err() {
            tracing::debug!("the database readiness channel closed");
        }
    }

    /// Why the store is not usable yet, for `/health` and MCP replies; `None` once it is.
    pub fn problem(&self) -> Option<String> {
        if self.is_ready() {
            return None;
        }
        lock(&self.problem).clone()
    }

    fn set_problem(&self, problem: String) {
        *lock(&self.problem) = Some(problem);
    }

    fn mark_ready(&self) {
        *lock(&self.problem) = None;
        self.ready.send_replace(true);
    }
}

/// Opens the store. If the PostgreSQL server cannot be reached at all, returns a store that
/// connects on first use instead, and keeps connecting (and migrating) in the background
/// until it succeeds or `stop` is cancelled. Any other failure (bad credentials, a schema
/// this version cannot migrate, a SQLite file that will not open) is returned: retrying would
/// not fix it.
pub async fn open_or_retry(
    url: &DatabaseUrl,
    stop: CancellationToken,
) -> Result<(Store, Arc<Availability>), OpenError> {
    let error = match Store::open(url).await {
        Ok(store) => return Ok((store, Availability::available())),
        Err(error @ OpenError::Unreachable { .. }) => error,
        Err(error) => return Err(error),
    };
    let store = Store::open_lazy(url)?;
    let problem = format!("database unreachable: {error}");
    tracing::error!(database = %url.redacted(), %error, "the database is unreachable; serving 503 and retrying until it answers");
    let availability = Availability::waiting(problem);
    tokio::spawn(connect_until_ready(
        store.clone(),
        availability.clone(),
        stop,
    ));
    Ok((store, availability))
}

async fn connect_until_ready(
    store: Store,
    availability: Arc<Availability>,
    stop: CancellationToken,
) {
    let mut wait = MIN_RETRY;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match store.migrate().await {
            Ok(()) => {
                availability.mark_ready();
                tracing::info!("the database answers again: serving requests");
                return;
            }
            Err(error) => {
                availability.set_problem(format!("database unreachable: {error}"));
                wait = (wait * 2).min(MAX_RETRY);
            }
        }
    }
}
