//! Calls held open for a 2026-07-28 client. That revision has no requests from server to
//! client: when a session-era upstream asks for sampling, elicitation or roots while serving
//! such a client's call, Steward answers the client with an `InputRequiredResult` carrying the
//! upstream's request and a `requestState` of its own, and keeps the upstream's call here until
//! the client retries with its answers and that state (SEP-2322). A call not resumed within the
//! upstream's timeout is taken off the shelf and its expiry action runs (the upstream is told to
//! stop).
//!
//! A client session may hold at most [`Capacity::PER_SESSION`] parked calls and the whole process
//! [`Capacity::TOTAL`] (every upstream's shelf shares one [`Capacity`]): each holds an upstream's
//! call open, so a client that never answers must not be able to pile them up. A call that
//! would go past either is refused with a JSON-RPC error and the upstream told to stop.
//!
//! The state is sealed with rmcp's [`RequestStateCodec`] under a key of this process, bound to
//! the upstream and the request it answers; the call it names lives in this process's memory, so
//! another replica, or Steward after a restart, does not know it (the client calls again).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::{
    ErrorCode, InputRequest, InputRequests, InputRequiredResult, RequestStateCodec, SealOptions,
};
use serde_json::{Value, json};

use super::spec::UpstreamName;
use crate::sync::lock;

/// Before every `requestState` Steward issues, so it is told from one an upstream that speaks
/// 2026-07-28 issued (passed on unchanged).
pub const STATE_PREFIX: &str = "steward-gateway.";

type Slots<T> = Arc<Mutex<HashMap<u64, (String, T)>>>;

/// How many calls may be parked: per client session, and in all (shared by every shelf).
#[derive(Debug)]
pub struct Capacity {
    per_session: usize,
    total: usize,
    parked: AtomicUsize,
}

impl Capacity {
    /// A client rarely has more than a few calls waiting for its user at once.
    pub const PER_SESSION: usize = 16;
    /// Each parked call holds an upstream's call (an open stream, or a pending request) open.
    pub const TOTAL: usize = 1024;

    #[cfg(test)]
    fn new(per_session: usize, total: usize) -> Arc<Self> {
        Arc::new(Capacity {
            per_session,
            total,
            ..Capacity::default()
        })
    }

    /// Calls parked now, on every shelf.
    #[cfg(test)]
    fn parked(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
    }
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            per_session: Self::PER_SESSION,
            total: Self::TOTAL,
            parked: AtomicUsize::new(0),
        }
    }
}

/// What a parked call's state belongs to: the client session, and the upstream, method and
/// tool, prompt or resource of the request it answers (a retry must name the same).
pub struct Bound<'a> {
    pub session: &'a str,
    key: String,
}

impl<'a> Bound<'a> {
    pub fn of(session: &'a str, upstream: &UpstreamName, method: &str, params: &Value) -> Self {
        let target = ["name", "uri"]
            .iter()
            .find_map(|key| params.get(*key).and_then(Value::as_str))
            .unwrap_or_default();
        Bound {
            session,
            key: format!("{upstream}\n{method}\n{target}"),
        }
    }
}

/// A 2026-07-28 client's retry: the `requestState` it sent back, if any.
pub fn state_of(params: &Value) -> Option<&str> {
    params.get("requestState")?.as_str()
}

/// An upstream's request the client is asked: its key in `inputRequests`, the request, and
/// where its answer goes (`R`: the upstream's JSON-RPC id, or a channel to the task that
/// waits for it).
pub struct Asked<R> {
    key: String,
    request: InputRequest,
    pub reply_to: R,
}

impl<R> Asked<R> {
    /// The upstream's request `id` (`method` with `params`) as one to ask the client, or why a
    /// 2026-07-28 client cannot be asked it.
    pub fn new(id: &Value, method: &Value, params: Value, reply_to: R) -> Result<Self, ErrorData> {
        let wire = json!({ "method": method, "params": params });
        let request = serde_json::from_value::<InputRequest>(wire).map_err(|error| {
            ErrorData::invalid_params(
                format!("Steward cannot pass this request on to a 2026-07-28 client: {error}"),
                None,
            )
        })?;
        let key = match id {
            Value::String(text) => format!("upstream-request-{text}"),
            other => format!("upstream-request-{other}"),
        };
        Ok(Asked {
            key,
            request,
            reply_to,
        })
    }

    /// Splits `asked` into those the client's retry (`params`) answered, each with its
    /// answer, and the rest.
    pub fn answered(asked: Vec<Self>, params: &Value) -> (Vec<(Self, Value)>, Vec<Self>) {
        let responses = params.get("inputResponses");
        let (mut answered, mut left) = (Vec::new(), Vec::new());
        for asked in asked {
            match responses.and_then(|r| r.get(&asked.key)).cloned() {
                Some(answer) => answered.push((asked, answer)),
                None => left.push(asked),
            }
        }
        (answered, left)
    }
}

/// A parked call: what it asked the client, and whatever resumes it.
pub struct Parked<T, R> {
    pub call: T,
    pub asked: Vec<Asked<R>>,
}

impl<T: Send + 'static, R: Send + 'static> Shelf<Parked<T, R>> {
    /// Parks `parked` for `bound` and returns the `InputRequiredResult` asking the client what
    /// it asked; `expire` gets it if nobody resumes it in time. Past the [`Capacity`] it comes
    /// back with the error the client gets.
    pub fn ask<F, Fut>(
        &self,
        bound: &Bound<'_>,
        parked: Parked<T, R>,
        expire: F,
    ) -> Result<Value, (Parked<T, R>, ErrorData)>
    where
        F: FnOnce(Parked<T, R>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let requests: InputRequests = parked
            .asked
            .iter()
            .map(|asked| (asked.key.clone(), asked.request.clone()))
            .collect();
        let state = self.park(bound.session, &bound.key, parked, expire)?;
        let asked = InputRequiredResult::new(Some(requests), Some(state));
        Ok(serde_json::to_value(asked).unwrap_or(Value::Null))
    }

    /// The parked call a retry with `state` resumes, taken off the shelf.
    pub fn resume(&self, state: &str, bound: &Bound<'_>) -> Result<Parked<T, R>, ErrorData> {
        self.take(state, bound.session, &bound.key)
    }
}

pub struct Shelf<T> {
    /// Boxed: it holds its key material inline, and an upstream holds a shelf.
    codec: Box<RequestStateCodec>,
    slots: Slots<T>,
    ttl: Duration,
    capacity: Arc<Capacity>,
}

impl<T: Send + 'static> Shelf<T> {
    /// Calls parked on it expire after `ttl`; `capacity` bounds them.
    pub fn new(ttl: Duration, capacity: Arc<Capacity>) -> Self {
        Shelf {
            // A fresh key per process: a state outlives neither it nor its call.
            codec: Box::new(RequestStateCodec::new_unchecked(
                rand::random::<[u8; RequestStateCodec::MIN_KEY_LENGTH]>().to_vec(),
            )),
            slots: Arc::default(),
            ttl,
            capacity,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Parks `item` for `session`'s request `bound` (the upstream, method and name it answers)
    /// and returns the `requestState` that resumes it; `expire` gets it if nobody does within
    /// the shelf's time. Past the capacity, `item` comes back with the client's error.
    pub fn park<F, Fut>(
        &self,
        session: &str,
        bound: &str,
        item: T,
        expire: F,
    ) -> Result<String, (T, ErrorData)>
    where
        F: FnOnce(T) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let id = rand::random::<u64>();
        {
            let mut slots = lock(&self.slots);
            if let Err(error) = self.admit(&slots, session) {
                return Err((item, error));
            }
            slots.insert(id, (session.to_string(), item));
        }
        let (slots, ttl) = (Arc::downgrade(&self.slots), self.ttl);
        let capacity = self.capacity.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            let left = slots.upgrade().and_then(|slots| lock(&slots).remove(&id));
            if let Some((_, item)) = left {
                capacity.parked.fetch_sub(1, Ordering::Relaxed);
                expire(item).await;
            }
        });
        // No expiry of its own: the call's is the one that counts, and it is told apart.
        let options = SealOptions::new().associated_data(bound.as_bytes());
        Ok(format!(
            "{STATE_PREFIX}{}",
            self.codec.seal_with(&id.to_be_bytes(), &options)
        ))
    }

    /// Counts a call about to be parked for `session` against the capacity, or refuses it.
    fn admit(&self, slots: &HashMap<u64, (String, T)>, session: &str) -> Result<(), ErrorData> {
        let capacity = &self.capacity;
        let mine = slots.values().filter(|(owner, _)| owner == session).count();
        if mine >= capacity.per_session {
            return Err(full(format!(
                "this client session already has {mine} calls waiting for its answers to an upstream's requests (at most {}): answer them, or let them expire, before calling again",
                capacity.per_session
            )));
        }
        let counted = capacity
            .parked
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < capacity.total).then_some(n + 1)
            });
        counted.map(|_| ()).map_err(|_| {
            full(format!(
                "Steward already holds {} calls waiting for clients' answers to upstreams' requests, its limit: try again later",
                capacity.total
            ))
        })
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
        self.capacity.parked.fetch_sub(1, Ordering::Relaxed);
        Ok(item)
    }
}

fn invalid(message: &str) -> ErrorData {
    ErrorData::invalid_params(message.to_string(), None)
}

fn full(message: String) -> ErrorData {
    ErrorData::new(ErrorCode::INVALID_REQUEST, message, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_state_resumes_its_own_call_once_and_only_for_its_session() {
        let shelf = Shelf::new(Duration::from_secs(60), Arc::default());
        let state = shelf
            .park("s1", "up/tools/call/ask", 7_u32, |_| async {})
            .unwrap_or_default();
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
        let capacity = Arc::new(Capacity::default());
        let shelf = Shelf::new(Duration::from_millis(20), capacity.clone());
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let state = shelf
            .park("s1", "b", 1_u32, move |item| async move {
                assert!(sender.send(item).is_ok(), "the test waits for it");
            })
            .unwrap_or_default();
        assert_eq!(capacity.parked(), 1);
        assert_eq!(receiver.await.ok(), Some(1));
        assert!(shelf.take(&state, "s1", "b").is_err());
        assert_eq!(capacity.parked(), 0);
    }

    #[tokio::test]
    async fn a_session_and_the_process_park_only_so_many_calls() {
        let capacity = Capacity::new(2, 3);
        let one = Shelf::new(Duration::from_secs(60), capacity.clone());
        let two = Shelf::new(Duration::from_secs(60), capacity.clone());
        let park = |shelf: &Shelf<u32>, session: &str| {
            shelf
                .park(session, "b", 0, |_| async {})
                .map_err(|(item, error)| (item, error.message.to_string()))
        };
        let first = park(&one, "s1").unwrap_or_default();
        assert!(park(&one, "s1").is_ok());
        let refused = park(&one, "s1").unwrap_err();
        assert!(refused.1.contains("already has 2 calls"), "{refused:?}");
        // The limit for all shelves together.
        assert!(park(&two, "s2").is_ok());
        let refused = park(&two, "s3").unwrap_err();
        assert!(refused.1.contains("already holds 3 calls"), "{refused:?}");
        assert_eq!(capacity.parked(), 3);
        // Resuming one frees its place.
        assert!(one.take(&first, "s1", "b").is_ok());
        assert!(park(&two, "s3").is_ok());
    }
}
