//! A client that closes its POST's connection before the answer, without sending
//! `notifications/cancelled`: nobody will read the answer, so the request is cancelled as if the
//! client had said so (a gateway's call is then cancelled at its upstream too).
//!
//! Not at once: the specification lets a disconnection be a network blip after which the client
//! resumes the stream with `Last-Event-ID` (rmcp's priming event tells it to try again after 3
//! s). So the request's stream is read on after the client left, and the request is cancelled
//! only if its answer has not come within the grace (`--hangup-grace`, [`DEFAULT_GRACE`]) of
//! the hang-up, or of the session's latest resume since; reading on also means its id is still in flight when the cancellation is
//! sent, so it cannot name a later request that reused the id.

use std::pin::Pin;
use std::sync::Weak;
use std::time::Duration;

use futures::{Stream, StreamExt};
use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientJsonRpcMessage, ClientNotification,
    JsonRpcMessage, RequestId,
};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId};
use tokio::time::Instant;

use super::SessionManager;
use super::manager::SseStream;

/// How long a request whose client hung up waits for the client to come back (rmcp tells it to
/// retry after 3 s) before it is cancelled, unless configured otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// The longest grace that may be configured: a request held past it, after its client left,
/// only holds its work and its upstream's call for nobody.
pub const MAX_GRACE: Duration = Duration::from_secs(60 * 60);

type Boxed<S> = Pin<Box<S>>;

/// A request's reply stream, with what is needed to cancel the request if it is dropped
/// before the answer.
struct Watched<S: Stream<Item = ServerSseMessage> + Send + 'static> {
    stream: Option<Boxed<S>>,
    /// `None` once the answer passed (or rmcp ended the stream).
    request: Option<RequestId>,
    session: SessionId,
    manager: Weak<SessionManager>,
    grace: Duration,
}

/// `stream`, the replies to request `request` of `session`, cancelling the request if the
/// stream is dropped before its answer and the client does not come back within `grace` (see
/// the module's documentation).
pub(super) fn watch<S: SseStream>(
    stream: S,
    request: Option<RequestId>,
    session: &SessionId,
    manager: Weak<SessionManager>,
    grace: Duration,
) -> impl SseStream + use<S> {
    let watched = Watched {
        stream: Some(Box::pin(stream)),
        request,
        session: session.clone(),
        manager,
        grace,
    };
    futures::stream::unfold(watched, |mut watched| async move {
        let event = watched.stream.as_mut()?.next().await;
        let settled = match (&event, &watched.request) {
            (Some(event), Some(request)) => answers(event, request),
            _ => true,
        };
        if settled {
            watched.request = None;
        }
        event.map(|event| (event, watched))
    })
}

impl<S: Stream<Item = ServerSseMessage> + Send + 'static> Drop for Watched<S> {
    fn drop(&mut self) {
        let (Some(request), Some(stream)) = (self.request.take(), self.stream.take()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (session, manager) = (self.session.clone(), self.manager.clone());
        let grace = self.grace;
        runtime.spawn(cancel_unless_answered(
            stream, request, session, manager, grace,
        ));
    }
}

/// Whether `event` carries the answer to `request`.
fn answers(event: &ServerSseMessage, request: &RequestId) -> bool {
    match event.message.as_deref() {
        Some(JsonRpcMessage::Response(response)) => response.id == *request,
        Some(JsonRpcMessage::Error(error)) => error.id.as_ref() == Some(request),
        _ => false,
    }
}

/// Waits for `work` while a client that hung up may come back: true when it ended within
/// `grace` of the hang-up or of the session's latest resume since, false when the grace ran
/// out (or the session manager is gone). `work` is left as it stands, to be cancelled and run on.
pub async fn ended_within_grace<F: Future + Unpin>(
    work: &mut F,
    session: &SessionId,
    manager: &Weak<SessionManager>,
    grace: Duration,
) -> bool {
    let mut since = Instant::now();
    loop {
        if tokio::time::timeout_at(since + grace, &mut *work)
            .await
            .is_ok()
        {
            return true;
        }
        let Some(resumed) = manager.upgrade().map(|m| m.resumed(session)) else {
            return false;
        };
        match resumed {
            Some(at) if at > since => since = at,
            _ => return false,
        }
    }
}

/// Reads on until the answer comes (nothing to do) or the grace runs out, then cancels
/// `request` in `session` as the client's `notifications/cancelled` would.
async fn cancel_unless_answered<S>(
    mut stream: Boxed<S>,
    request: RequestId,
    session: SessionId,
    manager: Weak<SessionManager>,
    grace: Duration,
) where
    S: Stream<Item = ServerSseMessage> + Send + 'static,
{
    let answered = async {
        while let Some(event) = stream.next().await {
            if answers(&event, &request) {
                return;
            }
        }
        // rmcp closed it: the request ended or was cancelled already.
    };
    if ended_within_grace(&mut std::pin::pin!(answered), &session, &manager, grace).await {
        return;
    }
    let Some(manager) = manager.upgrade() else {
        return;
    };
    let reason = "the client closed its connection before the answer and did not come back";
    let cancelled = CancelledNotification::new(CancelledNotificationParam::new(
        Some(request.clone()),
        Some(reason.into()),
    ));
    let message = ClientJsonRpcMessage::notification(ClientNotification::from(cancelled));
    tracing::debug!(session_id = %session, request_id = %request, "the client hung up before the answer: the request is cancelled");
    if let Err(error) = manager.on_behalf(&session, message).await {
        tracing::debug!(session_id = %session, %error, "could not cancel the request of a client that hung up (its session is gone)");
    }
}
