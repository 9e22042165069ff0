//! Requests a session-era upstream sends on its session's GET stream, outside the stream of the
//! call they serve (the Python SDK's `list_roots()`, which names no related request, for one).
//! A 2026-07-28 client cannot be sent requests, so such a request is handed to that client's
//! call in flight in the upstream session, which parks and asks the client in an
//! `InputRequiredResult` exactly as for a request on its own stream ([`super::bridge`]).
//!
//! Streamable HTTP carries no link from a request on the GET stream to the call it serves (an
//! SDK that knows the related request sends on that request's stream instead), so the request
//! is tied to a call only when exactly one of the client's calls is in flight or parked in that
//! upstream session; with several, guessing could show one call's question to the user as
//! another's, so it is refused, saying why.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::ErrorData;
use rmcp::model::ErrorCode;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::gateway::relay;
use crate::sync::lock;

/// Requests waiting for a call to take them: an upstream that sends more than this many at once
/// outside any stream, without waiting for answers, has the rest refused.
const QUEUED: usize = 16;

type Calls = HashMap<Arc<str>, Vec<(u64, mpsc::Sender<Value>)>>;

/// The 2026-07-28 clients' calls in flight or parked, by upstream session id.
#[derive(Default)]
pub(super) struct Outside {
    calls: Mutex<Calls>,
    next: AtomicU64,
}

/// A 2026-07-28 client's call enlisted in its upstream session until dropped (answered, failed,
/// given up): what the upstream asks outside the call's stream arrives on `requests`.
pub(super) struct Enlisted {
    outside: Arc<Outside>,
    session: Arc<str>,
    id: u64,
    pub(super) requests: mpsc::Receiver<Value>,
}

/// What became of a request the upstream sent outside a call's stream.
pub(super) enum Handed {
    /// The one 2026-07-28 call in flight in the session took it.
    Taken,
    /// No such call: the request goes where a session-era client's would.
    Nobody(Value),
    /// It cannot be tied to one call: the reply refusing it, for the upstream.
    Refused(Value),
}

impl Outside {
    /// Enlists a call in upstream session `session`.
    pub(super) fn enlist(self: &Arc<Self>, session: &Arc<str>) -> Enlisted {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, requests) = mpsc::channel(QUEUED);
        lock(&self.calls)
            .entry(session.clone())
            .or_default()
            .push((id, sender));
        Enlisted {
            outside: self.clone(),
            session: session.clone(),
            id,
            requests,
        }
    }

    /// Hands `request`, sent on upstream session `session`'s GET stream, to the one call
    /// enlisted there.
    pub(super) fn hand(&self, session: &str, request: Value) -> Handed {
        let calls = lock(&self.calls);
        let (several, outcome) = match calls.get(session).map(Vec::as_slice) {
            None | Some([]) => return Handed::Nobody(request),
            Some([(_, call)]) => (1, call.try_send(request)),
            Some(several) => (several.len(), Err(mpsc::error::TrySendError::Full(request))),
        };
        let request = match outcome {
            Ok(()) => return Handed::Taken,
            // The call ended between enlisting and now.
            Err(mpsc::error::TrySendError::Closed(request)) => return Handed::Nobody(request),
            Err(mpsc::error::TrySendError::Full(request)) => request,
        };
        let method = request["method"].as_str().unwrap_or_default();
        let message = match several {
            1 => format!(
                "Steward already holds {QUEUED} of the upstream's requests for this call's client: it refuses {method} until the client answers them"
            ),
            n => format!(
                "the upstream sent {method} outside the stream of the call it serves, and this 2026-07-28 client has {n} calls in flight with it: Steward cannot tell which one to ask it for (send it on the call's own stream, as the SDKs do with a related request id)"
            ),
        };
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let error = ErrorData::new(ErrorCode::INVALID_REQUEST, message, None);
        Handed::Refused(relay::reply(id, Err(error)))
    }
}

impl Drop for Enlisted {
    fn drop(&mut self) {
        let mut calls = lock(&self.outside.calls);
        if let Some(enlisted) = calls.get_mut(&self.session) {
            enlisted.retain(|(id, _)| *id != self.id);
            if enlisted.is_empty() {
                calls.remove(&self.session);
            }
        }
    }
}

/// The next request handed to `enlisted`; never, for a call that is not enlisted.
pub(super) async fn next(enlisted: &mut Option<Enlisted>) -> Option<Value> {
    match enlisted {
        Some(enlisted) => enlisted.requests.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_request_goes_to_the_one_call_in_flight_and_is_refused_among_several() {
        let outside = Arc::new(Outside::default());
        let session: Arc<str> = Arc::from("upstream-session");
        let roots = json!({ "jsonrpc": "2.0", "id": 3, "method": "roots/list" });
        assert!(matches!(
            outside.hand(&session, roots.clone()),
            Handed::Nobody(_)
        ));
        let mut one = Some(outside.enlist(&session));
        assert!(matches!(
            outside.hand(&session, roots.clone()),
            Handed::Taken
        ));
        assert_eq!(next(&mut one).await, Some(roots.clone()));
        let two = outside.enlist(&session);
        let Handed::Refused(reply) = outside.hand(&session, roots.clone()) else {
            panic!("a request two calls could serve must be refused");
        };
        assert_eq!(reply["id"], 3);
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("2 calls in flight"), "{reply}");
        drop(one);
        drop(two);
        assert!(matches!(outside.hand(&session, roots), Handed::Nobody(_)));
        assert!(lock(&outside.calls).is_empty());
    }
}
