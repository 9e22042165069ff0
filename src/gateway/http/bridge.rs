//! A session-era upstream's requests (sampling, elicitation, roots) for a 2026-07-28 client,
//! which cannot be sent requests: the upstream's call is parked ([`super::super::parked`]) and
//! the client answered with an `InputRequiredResult` carrying the request and a `requestState`
//! of Steward's; the client's retry with its answers and that state delivers them to the
//! upstream and reads on to the upstream's result (or its next request, asked the same way).

use std::sync::Arc;

use rmcp::transport::streamable_http_client::StreamableHttpPostResponse;
use serde_json::{Value, json};

use super::outside::Enlisted;
use super::{ANSWER_FAILED, Call, Held, HttpUpstream};
use crate::gateway::answer::Answer;
use crate::gateway::error::UpstreamError;
use crate::gateway::parked::{self, Asked, Bound, STATE_PREFIX};
use crate::gateway::relay::{self, Relay};
use crate::gateway::status::UpstreamStatus;
use crate::gateway::unanswered::Unanswered;

/// A call waiting for the client's answers: the upstream's event stream of the call, the
/// call's id there, the upstream session it runs in and its place among that session's calls
/// (it still takes the requests the upstream sends outside its stream, asked when it resumes);
/// each request asked is answered to its JSON-RPC id at the upstream.
pub(super) struct Waiting {
    response: StreamableHttpPostResponse,
    id: i64,
    held: Arc<Held>,
    enlisted: Option<Enlisted>,
}

pub(super) type Parked = parked::Parked<Waiting, Value>;

pub(super) fn waiting(
    response: StreamableHttpPostResponse,
    id: i64,
    held: &Arc<Held>,
    asked: Asked<Value>,
    enlisted: Option<Enlisted>,
) -> Parked {
    let call = Waiting {
        response,
        id,
        held: held.clone(),
        enlisted,
    };
    Parked {
        call,
        asked: vec![asked],
    }
}

/// The bridge of a 2026-07-28 client's call; `None` for a client that can be asked directly.
pub(super) fn of<'a>(upstream: &HttpUpstream, call: &Call<'a>) -> Option<Bound<'a>> {
    call.stateless?;
    Some(Bound::of(
        call.session,
        &upstream.name,
        call.method,
        call.params.tree()?,
    ))
}

/// A 2026-07-28 client's retry that resumes a parked call: its bridge and `requestState`. A
/// state Steward issued is Steward's; so is any state sent to an upstream Steward holds a
/// session-era session with (it issues none).
pub(super) fn resumes<'a>(
    upstream: &HttpUpstream,
    call: &Call<'a>,
    held: &Held,
) -> Option<(Bound<'a>, &'a str)> {
    let state = parked::state_of(call.params.tree()?)?;
    let session_era = !crate::protocol::is_stateless(&held.row.protocol_version);
    let bridge = of(upstream, call)?;
    (state.starts_with(STATE_PREFIX) || session_era).then_some((bridge, state))
}

impl HttpUpstream {
    /// The upstream's request `message` as one to ask the client in an `InputRequiredResult`;
    /// `None` when Steward answered it itself (a ping, a capability the client did not
    /// declare, a request that revision cannot carry).
    pub(super) async fn input_request(
        &self,
        message: Value,
        relay: &Relay,
        held: &Held,
    ) -> Option<Asked<Value>> {
        if let Some(reply) = relay.answer_here(&message) {
            self.endpoint.tell(reply, held, ANSWER_FAILED).await;
            return None;
        }
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        let params = message.get("params").cloned().unwrap_or_else(|| json!({}));
        match Asked::new(&id, &message["method"], params, id.clone()) {
            Ok(asked) => Some(asked),
            Err(error) => {
                self.endpoint
                    .tell(relay::reply(id, Err(error)), held, ANSWER_FAILED)
                    .await;
                None
            }
        }
    }

    /// Parks the call and returns the `InputRequiredResult` that asks the client. A call
    /// nobody resumes in time is given up: counted, and the upstream told to stop; so is one
    /// past the shelf's capacity, at once, and the client told why.
    pub(super) async fn park(
        &self,
        parked: Parked,
        bridge: &Bound<'_>,
    ) -> Result<Answer, UpstreamError> {
        let (endpoint, status) = (self.endpoint.clone(), self.status.clone());
        let ttl = self.parked.ttl();
        let give_up = move |parked: Parked| async move {
            UpstreamStatus::count(&status.abandoned);
            tracing::info!(upstream = %endpoint.name, ?ttl, "a 2026-07-28 client did not answer the upstream's request in time: the call is given up and the upstream told to stop");
            let reason = "the client did not answer the request in time";
            endpoint
                .cancel(parked.call.id, &parked.call.held, reason)
                .await;
        };
        match self.parked.ask(bridge, parked, give_up) {
            Ok(asked) => Ok(Answer::Tree(asked)),
            Err((parked, error)) => {
                UpstreamStatus::count(&self.status.parking_refused);
                let reason = "Steward cannot hold more calls for the client's answers";
                let Waiting { id, held, .. } = parked.call;
                self.endpoint.cancel(id, &held, reason).await;
                Err(UpstreamError::Rejected(error))
            }
        }
    }

    /// Delivers the client's answers to the call `state` parked and reads on to the upstream's
    /// result; asks again for what the client left unanswered.
    pub(super) async fn resume(
        &self,
        bridge: Bound<'_>,
        state: &str,
        call: &Call<'_>,
    ) -> Result<Answer, UpstreamError> {
        let parked = self
            .parked
            .resume(state, &bridge)
            .map_err(UpstreamError::Rejected)?;
        // Only a tree's params resume a call (see `resumes`).
        let params = call.params.tree().ok_or_else(|| {
            UpstreamError::Protocol("a resumed call's params are not a JSON tree".into())
        })?;
        let (answered, unanswered) = Asked::answered(parked.asked, params);
        let Waiting {
            response,
            id,
            held,
            enlisted,
        } = parked.call;
        for (asked, answer) in answered {
            let reply = relay::reply(asked.reply_to, Ok(answer));
            self.endpoint.tell(reply, &held, ANSWER_FAILED).await;
        }
        if !unanswered.is_empty() {
            let call = Waiting {
                response,
                id,
                held,
                enlisted,
            };
            let parked = Parked {
                call,
                asked: unanswered,
            };
            return self.park(parked, &bridge).await;
        }
        let (endpoint, dropped) = (self.endpoint.clone(), held.clone());
        let waiting = Unanswered::new(move || async move {
            let reason = "Steward stopped waiting for the answer";
            endpoint.cancel(id, &dropped, reason).await;
        });
        let outcome = self
            .answer(response, id, &held, call.relay, Some(&bridge), enlisted)
            .await;
        waiting.settled();
        outcome
    }
}
