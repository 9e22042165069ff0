//! One read of the board's answer version (`board_answers`, migration 0024) for every request
//! that arrives while the previous read runs. A remembered board answer costs one statement,
//! that read, and at many calls in flight those statements were most of the database's work
//! per call (each a round trip that wakes a backend).
//!
//! A request needs the version as a statement *started after the request arrived* reads it:
//! only that shows every write committed before the request (a client's own, made through
//! whichever replica, and every other writer's). So a request never joins a read already
//! running: it joins the next one, which starts when the running one ends and answers every
//! request that arrived meanwhile. At most one read per pool is in flight; one statement
//! answers as many requests as arrive during a round trip. A request that finds its pool idle
//! reads itself, in its own task (a lone client pays no hand-off); a reader task runs only while
//! requests queue behind a read.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::LazyLock;
use std::sync::Mutex;

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

/// By pool (see [`Store::identity`]), while a reader runs for it: the read requests arriving
/// now join, if one has joined since the running read started.
static PENDING: LazyLock<Mutex<HashMap<usize, Option<Next>>>> = LazyLock::new(Mutex::default);

/// The task that reads for one pool, round after round, while requests wait.
struct Reader {
    store: Store,
    pool: usize,
    stopped: bool,
}

impl Reader {
    async fn run(mut self) {
        while let Some(next) = self.take_next() {
            let version = self.store.read_version().await.ok();
            // The calls that waited may all have been cancelled meanwhile.
            if next.answer.send(version).is_err() {
                tracing::debug!("no call waits for the board version read any more");
            }
        }
    }

    /// The round to read now, taken before its statement starts so that later requests wait
    /// for the one after; `None` once nobody waits, and then the pool is idle.
    fn take_next(&mut self) -> Option<Next> {
        let mut pending = lock(&PENDING);
        let next = pending.get_mut(&self.pool).and_then(Option::take);
        if next.is_none() {
            pending.remove(&self.pool);
            self.stopped = true;
        }
        next
    }
}

impl Drop for Reader {
    /// A reader dropped mid-read (its runtime shut down) must not leave its pool looking busy:
    /// the next request starts a reader again, and the waiting ones read alone.
    fn drop(&mut self) {
        if !self.stopped {
            lock(&PENDING).remove(&self.pool);
        }
    }
}

/// What a call does: lead (no read runs for its pool: it reads itself, so a lone client waits
/// for no other task) or join the next round.
enum Turn {
    Lead(Lead),
    Join(Round),
}

/// A call reading for itself while other calls may gather for the next round. Dropped before
/// its read ends (the call was cancelled), it frees the pool; whoever gathered then reads alone.
struct Lead {
    pool: usize,
    done: bool,
}

impl Lead {
    async fn read(mut self, store: &Store) -> Result<i64, sqlx::Error> {
        let version = store.read_version().await;
        self.hand_over(store);
        version
    }

    /// Calls that arrived during this read get a reader of their own; none: the pool is idle.
    fn hand_over(&mut self, store: &Store) {
        self.done = true;
        let mut pending = lock(&PENDING);
        if matches!(pending.get(&self.pool), Some(Some(_))) {
            drop(pending);
            let reader = Reader {
                store: store.clone(),
                pool: self.pool,
                stopped: false,
            };
            tokio::spawn(reader.run());
        } else {
            pending.remove(&self.pool);
        }
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        if !self.done {
            lock(&PENDING).remove(&self.pool);
        }
    }
}

impl Store {
    /// The board's answer version, read by a statement that started after this call: shared
    /// with the calls that arrive while the previous read runs (see the module's notes).
    pub(super) async fn board_answers_version(&self) -> Result<i64, sqlx::Error> {
        match self.turn() {
            Turn::Lead(lead) => lead.read(self).await,
            Turn::Join(round) => match round.await {
                Ok(Some(version)) => Ok(version),
                _ => self.read_version().await,
            },
        }
    }

    /// Lead when the pool is idle, else join its next round.
    fn turn(&self) -> Turn {
        let pool = self.identity();
        let mut pending = lock(&PENDING);
        match pending.entry(pool) {
            Entry::Vacant(entry) => {
                entry.insert(None);
                Turn::Lead(Lead { pool, done: false })
            }
            Entry::Occupied(mut entry) => {
                let next = entry.get_mut().get_or_insert_with(Next::new);
                Turn::Join(next.round.clone())
            }
        }
    }

    /// One statement of this call's own.
    async fn read_version(&self) -> Result<i64, sqlx::Error> {
        on_pool!(self, pool => sqlx::query_scalar(VERSION).fetch_one(pool).await)
    }

    /// Which pool this is: the address of its shared state, the same for every clone. While a
    /// reader runs it holds a clone, so no other pool can be given that address meanwhile.
    fn identity(&self) -> usize {
        on_pool!(self, pool => std::ptr::from_ref(pool.options()).addr())
    }
}
