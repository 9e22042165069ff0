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
//!
//! A request handed to a call that ends (answered, failed, given up) before asking its client
//! would leave the upstream waiting for an answer that never comes: when the call ends, each
//! request still queued for it is answered with an error saying so (see [`Refuse`]).

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

/// Sends the upstream the replies refusing the requests a call took but ended without asking
/// its client (called only when there are some).
pub(super) type Refuse = Box<dyn FnOnce(Vec<Value>) + Send + Sync>;

/// A 2026-07-28 client's call enlisted in its upstream session until dropped (answered, failed,
/// given up): what the upstream asks outside the call's stream arrives on `requests`; what is
/// still queued there when it is dropped goes to `refuse`.
pub(super) struct Enlisted {
    outside: Arc<Outside>,
    session: Arc<str>,
    id: u64,
    pub(super) requests: mpsc::Receiver<Value>,
    refuse: Option<Refuse>,
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
    /// Enlists a call in upstream session `session`; `refuse` answers what it leaves unasked.
    pub(super) fn enlist(self: &Arc<Self>, session: &Arc<str>, refuse: Refuse) -> Enlisted {
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
            refuse: Some(refuse),
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
    /// Takes the call off its session's list, which drops its sender: [`Outside::hand`] sends
    /// under the same lock, so a request is either queued before this (and refused here) or
    /// finds the call gone (and goes where a session-era client's would).
    fn drop(&mut self) {
        {
            let mut calls = lock(&self.outside.calls);
            if let Some(enlisted) = calls.get_mut(&self.session) {
                enlisted.retain(|(id, _)| *id != self.id);
                if enlisted.is_empty() {
                    calls.remove(&self.session);
                }
            }
        }
        let mut replies = Vec::new();
        while let Ok(request) = self.requests.try_recv() {
            replies.push(ended(&request));
        }
        if let (false, Some(refuse)) = (replies.is_empty(), self.refuse.take()) {
            refuse(replies);
        }
    }
}

/// The reply to `request`, handed to a call that ended before it asked its client.
fn ended(request: &Value) -> Value {
    let method = request["method"].as_str().unwrap_or_default();
    let message = format!(
        "the upstream sent {method} outside the stream of the call it serves, and that call ended (answered, failed or given up) before Steward could ask its 2026-07-28 client: send it on the call's own stream, as the SDKs do with a related request id, before the call's result"
    );
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    relay::reply(
        id,
        Err(ErrorData::new(ErrorCode::INVALID_REQUEST, message, None)),
    )
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
        let mut one = Some(outside.enlist(&session, Box::new(|_| {})));
        assert!(matches!(
            outside.hand(&session, roots.clone()),
            Handed::Taken
        ));
        assert_eq!(next(&mut one).await, Some(roots.clone()));
        let two = outside.enlist(&session, Box::new(|_| {}));
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

    #[test]
    fn a_request_queued_for_a_call_that_ends_is_refused_and_a_later_one_goes_elsewhere() {
        let outside = Arc::new(Outside::default());
        let session: Arc<str> = Arc::from("upstream-session");
        let (refused, replies) = std::sync::mpsc::channel();
        let call = outside.enlist(
            &session,
            Box::new(move |sent| {
                assert!(refused.send(sent).is_ok(), "the test waits for it");
            }),
        );
        let roots = json!({ "jsonrpc": "2.0", "id": 9, "method": "roots/list" });
        assert!(matches!(
            outside.hand(&session, roots.clone()),
            Handed::Taken
        ));
        drop(call);
        let sent = replies.try_recv().unwrap_or_default();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0]["id"], 9);
        let message = sent[0]["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("roots/list"), "{message}");
        assert!(message.contains("that call ended"), "{message}");
        assert!(matches!(outside.hand(&session, roots), Handed::Nobody(_)));
        // A call that ends with nothing queued refuses nothing.
        let (refused, replies) = std::sync::mpsc::channel();
        drop(outside.enlist(
            &session,
            Box::new(move |sent| {
                assert!(refused.send(sent).is_ok(), "the test waits for it");
            }),
        ));
        assert!(replies.try_recv().is_err());
    }
}
