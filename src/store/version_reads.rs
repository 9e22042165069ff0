//! One read of the board's answer version (`board_answers`, migration 0024) for every request
//! that arrives while the previous read runs. A remembered board answer costs one statement,
//! that read, and at many calls in flight those statements were most of the database's work
//! per call (each a round trip that wakes a backend).
//!
//! A request needs the version as a statement *started after the request arrived* reads it:
//! only that shows every write committed before the request (a client's own, made through
//! whichever replica, and every other writer's). So a request never joins a read already
//! running: it joins the next one, which starts when the running one ends and answers every
//! request that arrived meanwhile. At most one read per [`VersionReads`] is in flight; one
//! statement answers as many requests as arrive during a round trip. A request that finds no
//! read running reads itself, in its own task (a lone client pays no hand-off); a reader task
//! runs only while requests queue behind a read.
//!
//! On PostgreSQL the reads run on a connection of their own, kept out of the pool: a statement
//! run through the pool pays a checkout and, when the connection goes back, a task of sqlx's
//! that pings the backend (a second round trip, a second wake of the backend and of Steward)
//! before the connection is idle again. One read runs at a time, so one connection serves them.
//!
//! The state is owned by whoever owns the store's remembered answers (one per board, see
//! [`super::answer_memo::Answers`]): two boards in one process never share a round.

use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::Shared;
use sqlx::{PgConnection, PgPool};
use tokio::sync::oneshot;

use super::Store;
use crate::sync::lock;

const VERSION: &str = "SELECT version FROM board_answers";

/// What one read tells its requests: the version, or `None` when it failed (each request then
/// reads alone, so it reports its own error).
type Round = Shared<oneshot::Receiver<Option<i64>>>;

/// A read not started yet, which the requests arriving now wait for.
struct Next {
    answer: oneshot::Sender<Option<i64>>,
    round: Round,
}

impl Next {
    fn new() -> Next {
        let (answer, round) = oneshot::channel();
        Next {
            answer,
            round: round.shared(),
        }
    }
}

/// The version reads of one store's pool.
pub(super) struct VersionReads {
    store: Store,
    /// PostgreSQL: the connection the reads run on, between reads (taken out while one runs).
    held: Mutex<Option<PgConnection>>,
    /// `None`: no read runs. `Some(None)`: one runs and no request waits for the next yet.
    /// `Some(Some(next))`: the requests arriving now join `next`.
    pending: Mutex<Option<Option<Next>>>,
}

/// The task that reads round after round while requests wait.
struct Reader {
    reads: Arc<VersionReads>,
    stopped: bool,
}

impl Reader {
    async fn run(mut self) {
        while let Some(next) = self.take_next() {
            let version = self.reads.read().await.ok();
            // The calls that waited may all have been cancelled meanwhile.
            if next.answer.send(version).is_err() {
                tracing::debug!("no call waits for the board version read any more");
            }
        }
    }

    /// The round to read now, taken before its statement starts so that later requests wait
    /// for the one after; `None` once nobody waits, and then no read runs.
    fn take_next(&mut self) -> Option<Next> {
        let mut pending = lock(&self.reads.pending);
        let next = pending.as_mut().and_then(Option::take);
        if next.is_none() {
            *pending = None;
            self.stopped = true;
        }
        next
    }
}

impl Drop for Reader {
    /// A reader dropped mid-read (its runtime shut down) must not leave reads looking busy:
    /// the next request starts a reader again, and the waiting ones read alone.
    fn drop(&mut self) {
        if !self.stopped {
            *lock(&self.reads.pending) = None;
        }
    }
}

/// What a call does: lead (no read runs: it reads itself, so a lone client waits for no other
/// task) or join the next round.
enum Turn {
    Lead(Lead),
    Join(Round),
}

/// A call reading for itself while other calls may gather for the next round. Dropped before
/// its read ends (the call was cancelled), it frees the reads; whoever gathered then reads
/// alone.
struct Lead {
    reads: Arc<VersionReads>,
    done: bool,
}

impl Lead {
    async fn read(mut self) -> Result<i64, sqlx::Error> {
        let version = self.reads.read().await;
        self.hand_over();
        version
    }

    /// Calls that arrived during this read get a reader of their own; none: no read runs.
    fn hand_over(&mut self) {
        self.done = true;
        let mut pending = lock(&self.reads.pending);
        if matches!(*pending, Some(Some(_))) {
            drop(pending);
            let reader = Reader {
                reads: self.reads.clone(),
                stopped: false,
            };
            tokio::spawn(reader.run());
        } else {
            *pending = None;
        }
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        if !self.done {
            *lock(&self.reads.pending) = None;
        }
    }
}

impl VersionReads {
    /// No read running yet, for the board in `store`.
    pub(super) fn new(store: Store) -> VersionReads {
        VersionReads {
            store,
            held: Mutex::default(),
            pending: Mutex::default(),
        }
    }

    /// The board's answer version, read by a statement that started after this call: shared
    /// with the calls that arrive while the previous read runs (see the module's notes).
    pub(super) async fn version(self: &Arc<Self>) -> Result<i64, sqlx::Error> {
        match self.turn() {
            Turn::Lead(lead) => lead.read().await,
            Turn::Join(round) => match round.await {
                Ok(Some(version)) => Ok(version),
                _ => self.read().await,
            },
        }
    }

    /// Lead when no read runs, else join the next round.
    fn turn(self: &Arc<Self>) -> Turn {
        let mut pending = lock(&self.pending);
        match &mut *pending {
            None => {
                *pending = Some(None);
                Turn::Lead(Lead {
                    reads: self.clone(),
                    done: false,
                })
            }
            Some(next) => Turn::Join(next.get_or_insert_with(Next::new).round.clone()),
        }
    }

    /// One statement of this call's own.
    async fn read(&self) -> Result<i64, sqlx::Error> {
        match &self.store {
            Store::Postgres(pool) => self.read_held(pool).await,
            Store::Sqlite(pool) => sqlx::query_scalar(VERSION).fetch_one(pool).await,
        }
    }

    /// One statement on the held connection. A held connection that fails (the server
    /// restarted, say) is dropped and the statement runs once more on one from the pool, so a
    /// call fails only when a fresh connection does. A read that finds none held (the first,
    /// or a call reading alone while a round holds it) runs on one from the pool.
    async fn read_held(&self, pool: &PgPool) -> Result<i64, sqlx::Error> {
        let taken = lock(&self.held).take();
        if let Some(mut held) = taken
            && let Ok(version) = version_on(&mut held).await
        {
            self.keep(|| held);
            return Ok(version);
        }
        let mut connection = pool.acquire().await?;
        let version = version_on(&mut connection).await?;
        // Detached only if it is kept (the pool may open another in its place); else it goes
        // back to the pool when the closure is dropped.
        self.keep(|| connection.detach());
        Ok(version)
    }

    /// Holds the connection `take` gives for the next read, unless one is held already (then
    /// `take` is dropped unrun, and the connection it owns with it).
    fn keep(&self, take: impl FnOnce() -> PgConnection) {
        let mut held = lock(&self.held);
        if held.is_none() {
            *held = Some(take());
        }
    }
}

async fn version_on(connection: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(VERSION).fetch_one(connection).await
}
