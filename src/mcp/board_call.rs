//! A session-era client's plain `tools/call` of a board tool, answered in front of rmcp (the
//! machinery is [`super::fast`]): the call goes to rmcp's own dispatch of the session's
//! handler (`Service::handle_request`, so every check and conversion rmcp makes of a call's
//! result is made), without rmcp's second parse of the request and its five tasks.
//!
//! A session is served here once rmcp has completed its handshake on this replica
//! (`notifications/initialized`, also the one rmcp replays when it restores a session): that is
//! when its connection ([`Connection`], the counts `session_info` reports) and its peer (the
//! client's `initialize`, which `session_info` and task history read) are noted in
//! [`LiveSessions`]. Until then, and for the conformance fixtures' tools and the upstreams',
//! calls go to rmcp.
//!
//! A session whose requests after its handshake (new, or replayed by a restore) are tool calls
//! of the board needs nothing else of rmcp: it is made dormant (`SessionManager::rest`), its
//! worker dropped, and its calls are answered here with the connection and peer noted at its
//! handshake (the peer can no longer reach the client: what a call would send it without a
//! stream open is dropped either way). Its first request that needs rmcp restores it.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use axum::http::request::Parts;
use chrono::Utc;
use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest, ServerResult};
use rmcp::service::{Peer, RequestContext};
use rmcp::{RoleServer, Service};
use tokio_util::sync::CancellationToken;

use super::fast::{Answered, Plain, ToolCall, request_id, session_era};
use super::tools::ANSWERED;
use super::{BoardServer, Connection, ServerContext};
use crate::bounded::Bounded;
use crate::protocol::Id;
use crate::sessions::SessionManager;
use crate::store::answer_memo::AnswerStamp;
use crate::sync::lock;

/// The sessions rmcp serves on this replica, by id, once their handshake is done; and how many
/// board calls were answered here.
#[derive(Default)]
pub struct LiveSessions {
    sessions: Mutex<Sessions>,
    answered: AtomicU64,
    /// The HTTP sessions' manager: which sessions are dormant, held without their service.
    manager: OnceLock<Weak<SessionManager>>,
}

/// Sessions whose service ended stay until the next sweep, which comes when the map has
/// doubled since the last one: each handshake pays O(1) on average, not a walk of every
/// session.
#[derive(Default)]
struct Sessions {
    by_id: HashMap<String, Live>,
    /// The size at which the next handshake sweeps.
    sweep_at: usize,
}

/// The fewest sessions a sweep waits for.
const FIRST_SWEEP: usize = 64;

impl Sessions {
    fn enter(&mut self, id: &str, live: Live, manager: Option<&SessionManager>) {
        if self.by_id.len() >= self.sweep_at {
            self.by_id.retain(|id, live| serves(live, id, manager));
            self.sweep_at = (2 * self.by_id.len()).max(FIRST_SWEEP);
        }
        self.by_id.insert(id.to_string(), live);
    }
}

/// Whether session `id`, noted as `live`, is still served: its service runs, or it is dormant.
fn serves(live: &Live, id: &str, manager: Option<&SessionManager>) -> bool {
    !live.peer.is_transport_closed() || manager.is_some_and(|manager| manager.is_dormant(id))
}

impl std::fmt::Debug for LiveSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSessions")
            .field("sessions", &lock(&self.sessions).by_id.len())
            .field("answered", &self.answered())
            .finish()
    }
}

/// A session as its rmcp handler sees it.
#[derive(Clone)]
pub(super) struct Live {
    connection: Arc<Connection>,
    peer: Peer<RoleServer>,
}

impl LiveSessions {
    /// Notes session `id`'s connection and peer (a restored session's replace the old ones).
    /// Sessions whose service ended (closed, dropped from memory) are forgotten as new ones
    /// come (see [`Sessions`]), not on every call.
    pub(super) fn enter(&self, id: &str, connection: Arc<Connection>, peer: Peer<RoleServer>) {
        let manager = self.manager();
        lock(&self.sessions).enter(id, Live { connection, peer }, manager.as_deref());
    }

    /// Notes the HTTP sessions' manager (once; later ones are ignored).
    pub(super) fn attach(&self, manager: &Arc<SessionManager>) {
        if self.manager.set(Arc::downgrade(manager)).is_err() {
            tracing::trace!("the sessions' manager was attached before");
        }
    }

    /// Says session `id`'s board calls can be answered here without its service (see the
    /// module's documentation).
    pub(super) fn rest(&self, id: &str) {
        if let Some(manager) = self.manager() {
            manager.rest(id);
        }
    }

    /// Says session `id` made a request only its service answers: it keeps it.
    pub(super) fn keep(&self, id: &str) {
        if let Some(manager) = self.manager() {
            manager.keep(id);
        }
    }

    fn manager(&self) -> Option<Arc<SessionManager>> {
        self.manager.get().and_then(Weak::upgrade)
    }

    fn get(&self, id: &str) -> Option<Live> {
        let live = lock(&self.sessions).by_id.get(id).cloned()?;
        if !live.peer.is_transport_closed() {
            return Some(live);
        }
        self.manager()?.is_dormant(id).then_some(live)
    }

    /// The board calls answered in front of rmcp since start.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

/// The session `plain` is made in, when it calls a board tool and is served here.
pub(super) fn live(ctx: &ServerContext, plain: &Plain) -> Option<Live> {
    if !BoardServer::has_board_tool(&plain.name) {
        return None;
    }
    let live = ctx.live.get(&plain.session)?;
    session_era(live.peer.peer_info().as_deref()).then_some(live)
}

/// The key of a call's written answer (see [`WrittenAnswers`]): the client's revision (rmcp
/// shapes a result by it) and the call's params as the client sent them. `None` for a call
/// that names a task: rmcp's path tells the ledger it concerns that task.
pub(super) fn asked(live: &Live, call: &ToolCall, params: &str) -> Option<String> {
    if call
        .arguments
        .as_ref()
        .is_some_and(|args| args.contains_key("task_id"))
    {
        return None;
    }
    let client = live.peer.peer_info()?;
    Some(format!("{}\n{params}", client.protocol_version.as_str()))
}

/// The board's answer to request `id`, as rmcp's service makes it (or as it made it before,
/// see [`WrittenAnswers`]); `None` when the client cancelled the call first (no answer, as
/// on rmcp's path, where the call still runs to its end: so it does here).
pub(super) async fn call(
    ctx: Arc<ServerContext>,
    live: Live,
    id: Id,
    call: ToolCall,
    parts: Parts,
    token: CancellationToken,
    asked: Option<String>,
) -> Option<Answered> {
    ctx.live.answered.fetch_add(1, Ordering::Relaxed);
    let context_token = token.clone();
    let mut handled = Box::pin(async move {
        if let Some(written) = ctx.written.recall(&ctx, asked.as_deref()).await {
            // As the handler counts every call it is given.
            live.connection.requests.fetch_add(1, Ordering::Relaxed);
            return Answered::written(written.result.clone(), &written.json, &id);
        }
        let Live { connection, peer } = live;
        let server = BoardServer::of_session(ctx.clone(), connection);
        let mut params = CallToolRequestParams::new(call.name);
        if let Some(arguments) = call.arguments {
            params = params.with_arguments(arguments);
        }
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        // As rmcp makes a request's context: the HTTP request's parts in its extensions (the
        // session id, the principal, the ledger's note).
        let mut context = RequestContext::new(request_id(&id), peer);
        context.ct = context_token;
        context.extensions.insert(parts);
        let (outcome, stamp) = ANSWERED
            .scope(Cell::new(None), async move {
                let outcome = Service::handle_request(&server, request, context).await;
                (outcome, ANSWERED.with(Cell::take))
            })
            .await;
        if let (Some(asked), Some(stamp), Ok(result)) = (asked, stamp, &outcome) {
            ctx.written.remember(asked, stamp, result);
        }
        Answered::of(outcome, &id)
    });
    tokio::select! {
        answered = &mut handled => Some(answered),
        () = token.cancelled() => {
            tokio::spawn(handled);
            None
        }
    }
}

/// Most written answers kept, and most bytes of them: past either, they start over (as the
/// answers they are made of, `store::answer_memo`).
const WRITTEN_ENTRIES: usize = 512;
const WRITTEN_BYTES: usize = 4 << 20;

/// Remembered board answers as rmcp's path wrote them, by what the call asked (see [`asked`]):
/// a call asking again while the answer holds (the board's version unchanged and no lease it
/// saw run out, as `store::answer_memo` decides) is answered with those bytes, without rmcp's
/// dispatch, the tool's validation of the same arguments and the answer's serialisation. The
/// version is read for the call as the tool would read it, so a call sees every write
/// answered before it, whichever replica made it.
pub struct WrittenAnswers(Mutex<Bounded<String, Arc<WrittenAnswer>>>);

impl Default for WrittenAnswers {
    fn default() -> WrittenAnswers {
        // The JSON is counted twice: the result it was made from is kept beside it.
        let size =
            |asked: &String, answer: &Arc<WrittenAnswer>| asked.len() + 2 * answer.json.len();
        WrittenAnswers(Mutex::new(Bounded::new(
            WRITTEN_ENTRIES,
            WRITTEN_BYTES,
            size,
        )))
    }
}

impl std::fmt::Debug for WrittenAnswers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrittenAnswers")
            .field("entries", &lock(&self.0).len())
            .finish()
    }
}

/// A result as rmcp made it (kept for the replay store) and its JSON text, under the stamp of
/// the remembered answer it holds.
struct WrittenAnswer {
    stamp: AnswerStamp,
    result: ServerResult,
    json: String,
}

impl WrittenAnswers {
    /// The answer written before for `asked`, if it still holds now.
    async fn recall(&self, ctx: &ServerContext, asked: Option<&str>) -> Option<Arc<WrittenAnswer>> {
        let written = lock(&self.0).get(asked?).cloned()?;
        // A failed read goes the tool's way, which reports it.
        let version = ctx.answers.version().await.ok()?;
        written.stamp.holds(version, Utc::now()).then_some(written)
    }

    /// Keeps `result`, the answer to `asked` remembered under `stamp` (a tool error is not an
    /// answer the board remembers, and is never given here).
    fn remember(&self, asked: String, stamp: AnswerStamp, result: &ServerResult) {
        let ServerResult::CallToolResult(tool) = result else {
            return;
        };
        if tool.is_error == Some(true) {
            return;
        }
        let Ok(json) = serde_json::to_string(result) else {
            return;
        };
        let answer = Arc::new(WrittenAnswer {
            stamp,
            result: result.clone(),
            json,
        });
        lock(&self.0).insert(asked, answer);
    }
}
