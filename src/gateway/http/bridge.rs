//! A session-era upstream's requests (sampling, elicitation, roots) for a 2026-07-28 client,
//! which cannot be sent requests: the upstream's call is parked ([`super::super::parked`]) and
//! the client answered with an `InputRequiredResult` carrying the request and a `requestState`
//! of Steward's; the client's retry with its answers and that state delivers them to the
//! upstream and reads on to the upstream's result (or its next request, asked the same way).

use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{InputRequest, InputRequests, InputRequiredResult};
use rmcp::transport::streamable_http_client::StreamableHttpPostResponse;
use serde_json::{Value, json};

use super::{ANSWER_FAILED, Call, Held, HttpUpstream};
use crate::gateway::answer::Answer;
use crate::gateway::error::UpstreamError;
use crate::gateway::parked::STATE_PREFIX;
use crate::gateway::relay::{self, Relay};
use crate::gateway::status::UpstreamStatus;
use crate::gateway::unanswered::Unanswered;

/// An upstream's request the client is asked: its key in `inputRequests`, its JSON-RPC id at
/// the upstream, and the request.
pub(super) struct Asked {
    key: String,
    id: Value,
    request: InputRequest,
}

/// A call waiting for the client's answers: the upstream's event stream of the call, the
/// call's id there, the upstream session it runs in, and what the client was asked.
pub(super) struct Parked {
    response: StreamableHttpPostResponse,
    id: i64,
    held: Arc<Held>,
    asked: Vec<Asked>,
}

impl Parked {
    pub(super) fn new(
        response: StreamableHttpPostResponse,
        id: i64,
        held: &Arc<Held>,
        asked: Asked,
    ) -> Self {
        Parked {
            response,
            id,
            held: held.clone(),
            asked: vec![asked],
        }
    }
}

/// What a parked call's state belongs to: the client session, and the upstream, method and
/// tool, prompt or resource of the request it answers.
pub(super) struct Bridge<'a> {
    session: &'a str,
    bound: String,
}

/// The bridge of a 2026-07-28 client's call; `None` for a client that can be asked directly.
pub(super) fn of<'a>(upstream: &HttpUpstream, call: &Call<'a>) -> Option<Bridge<'a>> {
    call.stateless?;
    let target = ["name", "uri"]
        .iter()
        .find_map(|key| call.params.get(*key).and_then(Value::as_str))
        .unwrap_or_default();
    Some(Bridge {
        session: call.session,
        bound: format!("{}\n{}\n{target}", upstream.name, call.method),
    })
}

/// A 2026-07-28 client's retry that resumes a parked call: its bridge and `requestState`. A
/// state Steward issued is Steward's; so is any state sent to an upstream Steward holds a
/// session-era session with (it issues none).
pub(super) fn resumes<'a>(
    upstream: &HttpUpstream,
    call: &Call<'a>,
    held: &Held,
) -> Option<(Bridge<'a>, &'a str)> {
    let state = call.params.get("requestState")?.as_str()?;
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
    ) -> Option<Asked> {
        if let Some(reply) = relay.answer_here(&message) {
            self.endpoint.tell(reply, held, ANSWER_FAILED).await;
            return None;
        }
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        let params = message.get("params").cloned().unwrap_or_else(|| json!({}));
        let wire = json!({ "method": message["method"], "params": params });
        match serde_json::from_value::<InputRequest>(wire) {
            Ok(request) => {
                let key = match &id {
                    Value::String(text) => format!("upstream-request-{text}"),
                    other => format!("upstream-request-{other}"),
                };
                Some(Asked { key, id, request })
            }
            Err(error) => {
                let error = ErrorData::invalid_params(
                    format!("Steward cannot pass this request on to a 2026-07-28 client: {error}"),
                    None,
                );
                self.endpoint
                    .tell(relay::reply(id, Err(error)), held, ANSWER_FAILED)
                    .await;
                None
            }
        }
    }

    /// Parks the call and returns the `InputRequiredResult` that asks the client. A call
    /// nobody resumes in time is given up: counted, and the upstream told to stop.
    pub(super) fn park(&self, parked: Parked, bridge: &Bridge<'_>) -> Answer {
        let requests: InputRequests = parked
            .asked
            .iter()
            .map(|asked| (asked.key.clone(), asked.request.clone()))
            .collect();
        let (endpoint, status) = (self.endpoint.clone(), self.status.clone());
        let ttl = self.parked.ttl();
        let give_up = move |parked: Parked| async move {
            UpstreamStatus::count(&status.abandoned);
            tracing::info!(upstream = %endpoint.name, ?ttl, "a 2026-07-28 client did not answer the upstream's request in time: the call is given up and the upstream told to stop");
            let reason = "the client did not answer the request in time";
            endpoint.cancel(parked.id, &parked.held, reason).await;
        };
        let state = self
            .parked
            .park(bridge.session, &bridge.bound, parked, give_up);
        let asked = InputRequiredResult::new(Some(requests), Some(state));
        Answer::Tree(serde_json::to_value(asked).unwrap_or(Value::Null))
    }

    /// Delivers the client's answers to the call `state` parked and reads on to the upstream's
    /// result; asks again for what the client left unanswered.
    pub(super) async fn resume(
        &self,
        bridge: Bridge<'_>,
        state: &str,
        call: &Call<'_>,
    ) -> Result<Answer, UpstreamError> {
        let parked = self
            .parked
            .take(state, bridge.session, &bridge.bound)
            .map_err(UpstreamError::Rejected)?;
        let Parked {
            response,
            id,
            held,
            asked,
        } = parked;
        let responses = call.params.get("inputResponses");
        let mut unanswered = Vec::new();
        for asked in asked {
            match responses.and_then(|r| r.get(&asked.key)) {
                Some(answer) => {
                    let reply = relay::reply(asked.id, Ok(answer.clone()));
                    self.endpoint.tell(reply, &held, ANSWER_FAILED).await;
                }
                None => unanswered.push(asked),
            }
        }
        if !unanswered.is_empty() {
            let parked = Parked {
                response,
                id,
                held,
                asked: unanswered,
            };
            return Ok(self.park(parked, &bridge));
        }
        let (endpoint, dropped) = (self.endpoint.clone(), held.clone());
        let waiting = Unanswered::new(move || async move {
            let reason = "Steward stopped waiting for the answer";
            endpoint.cancel(id, &dropped, reason).await;
        });
        let outcome = self
            .answer(response, id, &held, call.relay, Some(&bridge))
            .await;
        waiting.settled();
        outcome
    }
}
