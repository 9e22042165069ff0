//! One restore at a time per session id, on this replica.
//!
//! rmcp restores a session it does not hold once per burst of requests: the first request
//! that finds it absent restores it while the others wait for that restore. But a request
//! that found the session absent and is paused before it asks for the restore (a loaded
//! machine can stall a thread there) asks only after that restore has ended; rmcp then
//! restores a second time, its session manager says the session is already present, and
//! rmcp answers 500 ("restore_session returned AlreadyPresent unexpectedly"). Nothing in
//! rmcp's restore API can turn that answer into success: it wants a fresh worker, and the
//! session's worker already serves the first request. So requests for a session that is not
//! live here take turns before they reach rmcp: the first restores it, the others then find
//! it live and never ask for a restore.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::transport::streamable_http_server::session::SessionId;
use tokio::sync::OwnedMutexGuard;

use crate::sync::lock;

type Turns = Arc<Mutex<HashMap<SessionId, Arc<tokio::sync::Mutex<()>>>>>;

/// The queues of requests waiting to bring a session into memory, one per session id, kept
/// only while some request holds or awaits a turn.
#[derive(Default)]
pub struct RestoreTurns {
    turns: Turns,
}

/// A request's turn at session `id`: the next request for it waits until this one is dropped.
pub struct RestoreTurn {
    turns: Turns,
    id: SessionId,
    /// Released after `drop` has looked at the queue (fields drop after it).
    _guard: OwnedMutexGuard<()>,
}

impl RestoreTurns {
    /// Waits until no other request holds a turn at session `id`, then holds it.
    pub async fn take(&self, id: &str) -> RestoreTurn {
        let id: SessionId = Arc::from(id);
        let queue = lock(&self.turns).entry(id.clone()).or_default().clone();
        RestoreTurn {
            turns: self.turns.clone(),
            id,
            _guard: queue.lock_owned().await,
        }
    }

    /// Sessions with a request holding or awaiting a turn.
    pub fn len(&self) -> usize {
        lock(&self.turns).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for RestoreTurn {
    fn drop(&mut self) {
        let mut turns = lock(&self.turns);
        // References to the queue: the map's, this turn's, and one per request awaiting it
        // (taken under this same lock). Only the first two: nobody waits, forget the queue.
        if let Some(queue) = turns.get(&self.id)
            && Arc::strong_count(queue) <= 2
        {
            turns.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_request_waits_for_the_first_turn_to_end() {
        let turns = Arc::new(RestoreTurns::default());
        let first = turns.take("s").await;
        let waiting = tokio::spawn({
            let turns = turns.clone();
            async move { turns.take("s").await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "took a turn another request holds");
        let other = turns.take("t").await;
        drop(other);
        drop(first);
        let second = waiting.await.expect("the waiting request gets its turn");
        assert_eq!(turns.len(), 1);
        drop(second);
        assert!(turns.is_empty(), "an idle session's queue is forgotten");
    }
}
