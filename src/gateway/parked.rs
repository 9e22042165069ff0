//! Calls held open for a 2026-07-28 client. That revision has no requests from server to
//! client: when a session-era upstream asks for sampling, elicitation or roots while serving
//! such a client's call, Steward answers the client with an `InputRequiredResult` carrying the
//! upstream's request and a `requestState` of its own, and keeps the upstream's call here until
//! the client retries with its answers and that state (SEP-2322). A call not resumed within the
//! upstream's timeout is taken off the shelf and its expiry action runs (the upstream is told to
//! stop).
//!
//! The state is sealed with rmcp's [`RequestStateCodec`] under a key of this process, bound to
//! the upstream and the request it answers; the call it names lives in this process's memory, so
//! another replica, or Steward after a restart, does not know it (the client calls again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::{RequestStateCodec, SealOptions};

use crate::sync::lock;

/// Before every `requestState` Steward issues, so it is told from one an upstream that speaks
/// 2026-07-28 issued (passed on unchanged).
pub const STATE_PREFIX: &str = "steward-gateway.";

type Slots<T> = Arc<Mutex<HashMap<u64, (String, T)>>>;

pub struct Shelf<T> {
    /// Boxed: it holds its key material inline, and an upstream holds a shelf.
    codec: Box<RequestStateCodec>,
    slots: Slots<T>,
    ttl: Duration,
}

impl<T: Send + 'static> Shelf<T> {
    /// Calls parked on it expire after `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Shelf {
            // A fresh key per process: a state outlives neither it nor its call.
            codec: Box::new(RequestStateCodec::new_unchecked(
                rand::random::<[u8; RequestStateCodec::MIN_KEY_LENGTH]>().to_vec(),
            )),
            slots: Arc::default(),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Parks `item` for `session`'s request `bound` (the upstream, method and name it answers)
    /// and returns the `requestState` that resumes it; `expire` gets it if nobody does within
    /// the shelf's time.
    pub fn park<F, Fut>(&self, session: &str, bound: &str, item: T, expire: F) -> String
    where
        F: FnOnce(T) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let id = rand::random::<u64>();
        lock(&self.slots).insert(id, (session.to_string(), item));
        let (slots, ttl) = (Arc::downgrade(&self.slots), self.ttl);
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            let left = slots.upgrade().and_then(|slots| lock(&slots).remove(&id));
            if let Some((_, item)) = left {
                expire(item).await;
            }
        });
        // No expiry of its own: the call's is the one that counts, and it is told apart.
        let options = SealOptions::new().associated_data(bound.as_bytes());
        format!(
            "{STATE_PREFIX}{}",
            self.codec.seal_with(&id.to_be_bytes(), &options)
        )
    }

    /// The call `state` parked for `session`'s request `bound`, taken off the shelf; or why
    /// there is none, for the client.
    pub fn take(&self, state: &str, session: &str, bound: &str) -> Result<T, ErrorData> {
        let id = state
            .strip_prefix(STATE_PREFIX)
            .and_then(|sealed| self.codec.open_with(sealed, bound.as_bytes()).ok())
            .and_then(|payload| <[u8; 8]>::try_from(payload.as_slice()).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| {
                invalid(
                    "requestState is not one Steward issued for this request: send it back exactly as received, with the same tool, or call again without it",
                )
            })?;
        let mut slots = lock(&self.slots);
        let Some((owner, item)) = slots.remove(&id) else {
            return Err(invalid(&format!(
                "requestState names a call Steward no longer holds: it was already resumed, not resumed within {}, or parked by another Steward replica or before a restart; call again without it",
                humantime::format_duration(self.ttl)
            )));
        };
        if owner != session {
            slots.insert(id, (owner, item));
            return Err(invalid(
                "requestState belongs to another session: only the client the input was asked of can answer it",
            ));
        }
        Ok(item)
    }
}

fn invalid(message: &str) -> ErrorData {
    ErrorData::invalid_params(message.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_state_resumes_its_own_call_once_and_only_for_its_session() {
        let shelf = Shelf::new(Duration::from_secs(60));
        let state = shelf.park("s1", "up/tools/call/ask", 7_u32, |_| async {});
        assert!(state.starts_with(STATE_PREFIX));
        let other = shelf.take(&state, "s2", "up/tools/call/ask").unwrap_err();
        assert!(other.message.contains("another session"), "{other:?}");
        let changed = shelf.take(&state, "s1", "up/tools/call/other").unwrap_err();
        assert!(
            changed.message.contains("not one Steward issued"),
            "{changed:?}"
        );
        assert_eq!(shelf.take(&state, "s1", "up/tools/call/ask").ok(), Some(7));
        let again = shelf.take(&state, "s1", "up/tools/call/ask").unwrap_err();
        assert!(again.message.contains("no longer holds"), "{again:?}");
    }

    #[tokio::test]
    async fn a_call_nobody_resumes_expires() {
        let shelf = Shelf::new(Duration::from_millis(20));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let state = shelf.park("s1", "b", 1_u32, move |item| async move {
            assert!(sender.send(item).is_ok(), "the test waits for it");
        });
        assert_eq!(receiver.await.ok(), Some(1));
        assert!(shelf.take(&state, "s1", "b").is_err());
    }
}
