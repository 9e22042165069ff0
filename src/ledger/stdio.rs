//! Ledger capture for stdio: a transport wrapper that sees each JSON-RPC message rmcp reads
//! and writes, and pairs requests with their replies by id.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rmcp::RoleServer;
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, GetExtensions, InitializeRequestParams, JsonRpcMessage,
    ServerJsonRpcMessage,
};
use rmcp::transport::Transport;

use super::Ledger;
use super::entry::{Ending, Micros, Observation, Served, new_request_id};

/// A request waiting for its reply.
struct Waiting {
    started: Instant,
    timestamp: DateTime<Utc>,
    request: Bytes,
    served: Served,
}

/// Wraps a server transport and records every exchange in the ledger under `session_id`.
pub struct Tapped<T> {
    inner: T,
    ledger: Ledger,
    session_id: String,
    waiting: HashMap<String, Waiting>,
    on_initialize: Option<InitializeHook>,
}

/// Called with the session id and the client's `initialize` parameters.
pub type InitializeHook = Box<dyn Fn(&str, &InitializeRequestParams) + Send + Sync>;

impl<T> Tapped<T> {
    pub fn new(inner: T, ledger: Ledger, session_id: String) -> Self {
        Tapped {
            inner,
            ledger,
            session_id,
            waiting: HashMap::new(),
            on_initialize: None,
        }
    }

    /// Lets the session layer record the connection when the client introduces itself.
    pub fn on_initialize(
        mut self,
        hook: impl Fn(&str, &InitializeRequestParams) + Send + Sync + 'static,
    ) -> Self {
        self.on_initialize = Some(Box::new(hook));
        self
    }

    fn observe(&self, waiting: Waiting, response: Bytes, ending: Ending) -> Observation {
        let (subject, upstream) = waiting.served.facts();
        Observation {
            request_id: new_request_id(),
            session_id: Some(self.session_id.clone()),
            timestamp: waiting.timestamp,
            duration: Micros::since(waiting.started),
            request: waiting.request,
            http_status: None,
            response_len: response.len() as u64,
            response,
            ending,
            // Known from the initialize request itself (see `analyze`).
            protocol_version: None,
            stream_get: None,
            upstream,
            subject,
        }
    }
}

fn to_bytes<M: serde::Serialize>(message: &M) -> Bytes {
    serde_json::to_vec(message)
        .map(Bytes::from)
        .unwrap_or_default()
}

impl<T: Transport<RoleServer>> Transport<RoleServer> for Tapped<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let id = match &item {
            JsonRpcMessage::Response(response) => Some(response.id.to_string()),
            JsonRpcMessage::Error(error) => error.id.as_ref().map(ToString::to_string),
            _ => None,
        };
        if let Some(waiting) = id.and_then(|id| self.waiting.remove(&id)) {
            let observation = self.observe(waiting, to_bytes(&item), Ending::Complete);
            self.ledger.record(observation);
        }
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        let mut message = self.inner.receive().await;
        // The message's JSON: `JsonRpcMessage` is untagged, so its variant's is the same.
        let now = |request: Bytes| Waiting {
            started: Instant::now(),
            timestamp: Utc::now(),
            request,
            served: Served::default(),
        };
        match &mut message {
            Some(JsonRpcMessage::Request(request)) => {
                if let (ClientRequest::InitializeRequest(init), Some(hook)) =
                    (&request.request, &self.on_initialize)
                {
                    hook(&self.session_id, &init.params);
                }
                let waiting = now(to_bytes(&*request));
                // The serving layer says here what only it knows (see `Served`).
                request
                    .request
                    .extensions_mut()
                    .insert(waiting.served.clone());
                self.waiting.insert(request.id.to_string(), waiting);
            }
            Some(JsonRpcMessage::Notification(notification)) => {
                let waiting = now(to_bytes(&*notification));
                let observation = self.observe(waiting, Bytes::new(), Ending::Complete);
                self.ledger.record(observation);
            }
            _ => {}
        }
        message
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        // Requests still waiting when the client hangs up were never answered.
        for (_, waiting) in std::mem::take(&mut self.waiting) {
            let observation = self.observe(waiting, Bytes::new(), Ending::Cancelled);
            self.ledger.record(observation);
        }
        self.inner.close().await
    }
}
