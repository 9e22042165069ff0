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
//! The state is owned by whoever owns the store's remembered answers (one per board, see
//! [`super::answer_memo::Answers`]): two boards in one process never share a round.

use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::Shared;
use tokio::sync::oneshot;

use super::{Store, on_pool};
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
        on_pool!(&self.store, pool => sqlx::query_scalar(VERSION).fetch_one(pool).await)
    }
}
