//! The security middleware: [`guard_mcp`] in front of `/mcp`, [`guard_admin`] in front of
//! `/api/` and the dashboard, and the login routes.
//!
//! `guard_mcp` runs named steps, cheapest and least revealing first: hosts and origins
//! (421/403), authentication from the headers (401), the rate limit (429), session ownership
//! (404); then, for a POST, the body is read once (413) and parsed once into the
//! [`Envelope`] later layers read (the JSON-RPC shape: -32700/-32600/-32602), and the
//! live-session cap applies to `initialize` (429). Every rejection is JSON (a JSON-RPC error),
//! so the ledger, which sits outside this layer, records it as what it is.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::SecuritySettings;
use super::admin::{self, CSRF_HEADER, Logins};
use super::auth::{Auth, AuthError, Principal};
use super::gate;
use super::limits::RateLimiter;
use crate::protocol::envelope::Received;
use crate::protocol::{
    self, Envelope, INTERNAL_ERROR, INVALID_REQUEST, PROTOCOL_VERSION, Rejection, SESSION_ID,
};
use crate::sessions::Sessions;

/// What the security middleware shares.
pub struct Guard {
    pub settings: SecuritySettings,
    pub auth: Auth,
    limiter: Option<RateLimiter>,
    pub logins: Logins,
    sessions: Arc<Sessions>,
}

/// How long a POST body may take to arrive once its headers have.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A step's refusal: the response to send instead of going on (boxed: a `Response` is large
/// for the `Err` of a `Result` that is almost always `Ok`).
type Refused = Box<Response>;

impl Guard {
    pub fn new(settings: SecuritySettings, auth: Auth, sessions: Arc<Sessions>) -> Arc<Self> {
        Arc::new(Guard {
            limiter: RateLimiter::new(settings.rate_limit, settings.rate_burst),
            settings,
            auth,
            logins: Logins::default(),
            sessions,
        })
    }

    /// Host and Origin against the allow-lists.
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        match host {
            Some(host) if self.settings.allowed_hosts.allows_host(host) => {}
            _ => {
                let shown = host.map_or("(none)".to_string(), printable);
                tracing::warn!(host = %shown, "refused a request for a host not in the allow-list (possible DNS rebinding)");
                return Err((
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                        "Misdirected Request: Host {shown} is not one of this server's names ({}); if it is, add it with --allowed-hosts",
                        self.settings.allowed_hosts
                    ),
                ));
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let text = origin.to_str().unwrap_or("(not text)");
            if !self.settings.allowed_origins.allows_origin(text) {
                let shown = printable(text);
                tracing::warn!(origin = %shown, "refused a request from a browser origin not in the allow-list");
                return Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "Forbidden: Origin {shown} may not call this server; to allow that web page, add it with --allowed-origins"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Step 1: hosts and origins.
    fn hosts_and_origins(&self, request: &Request) -> Result<(), Refused> {
        self.check_origin(request.headers())
            .map_err(|(status, message)| {
                Box::new(rpc_error(status, INVALID_REQUEST, &message, None))
            })
    }

    /// Step 2: who is this, from the headers alone. The key has done its job then: nothing
    /// further in (rmcp, handlers, their logs) sees it.
    async fn authenticate(&self, request: &mut Request) -> Result<Principal, Refused> {
        let principal = self
            .auth
            .authenticate(request.headers())
            .await
            .map_err(|error| Box::new(unauthorized(&error, true)))?;
        request.headers_mut().remove(header::AUTHORIZATION);
        Ok(principal)
    }

    /// Step 3: one token of the principal's bucket.
    fn rate_limit(&self, principal: &Principal) -> Result<(), Refused> {
        match &self.limiter {
            Some(limiter) => limiter
                .check(principal.label())
                .map_err(|wait| Box::new(too_many_requests(wait))),
            None => Ok(()),
        }
    }

    /// Step 3, for a request that failed authentication: a token of its peer address's
    /// bucket, so guessing keys or flooding 401s is throttled like any principal. (Key names
    /// have no spaces, so a peer's bucket is never a principal's.)
    fn rate_limit_peer(&self, request: &Request) -> Result<(), Refused> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_string(), |info| info.0.ip().to_string());
        limiter
            .check(&format!("peer {peer}"))
            .map_err(|wait| Box::new(too_many_requests(wait)))
    }

    /// Step 4: another principal's session answers exactly like an unknown one.
    async fn session_ownership(
        &self,
        session: Option<&str>,
        principal: &Principal,
    ) -> Result<(), Refused> {
        let Some(session) = session.filter(|_| self.auth.is_on()) else {
            return Ok(());
        };
        match self.sessions.owner_of(session).await {
            Ok(Some(owner)) if owner.as_deref() != principal.name() => {
                tracing::warn!(
                    ?principal,
                    "refused a request for another principal's session"
                );
                Err(Box::new(rpc_error(
                    StatusCode::NOT_FOUND,
                    INVALID_REQUEST,
                    crate::protocol::SESSION_NOT_FOUND,
                    None,
                )))
            }
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::error!(%error, "cannot check who owns a session");
                Err(Box::new(rpc_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    INTERNAL_ERROR,
                    "the session store cannot be read right now (database unavailable); retry shortly and see /health",
                    None,
                )))
            }
        }
    }

    /// Step 5: the body, read once, no further than the limit and for no longer than
    /// [`BODY_READ_TIMEOUT`] (a stalled upload must not hold its buffer).
    async fn read_body(&self, body: Body) -> Result<Bytes, Refused> {
        let limit = self.settings.max_body_bytes;
        let (status, message) = match tokio::time::timeout(BODY_READ_TIMEOUT, to_bytes(body, limit))
            .await
        {
            Ok(Ok(bytes)) => return Ok(bytes),
            Ok(Err(error)) if super::connections::stalled(&error) => (
                StatusCode::REQUEST_TIMEOUT,
                format!("Request Timeout: {error}; send the body at once"),
            ),
            Ok(Err(_)) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "Payload Too Large: the request body exceeds {limit} bytes; send smaller arguments"
                ),
            ),
            Err(_) => (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "Request Timeout: the request body did not arrive within {} s; send it at once",
                    BODY_READ_TIMEOUT.as_secs()
                ),
            ),
        };
        let mut response = rpc_error(status, INVALID_REQUEST, &message, None);
        // The rest of the body was never read: the connection cannot carry another request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        Err(Box::new(response))
    }

    /// Step 6: the JSON-RPC shape, parsing the body once into the envelope.
    fn json_rpc_shape(
        &self,
        headers: &HeaderMap,
        has_session: bool,
        body: Bytes,
    ) -> Result<Envelope, Rejection> {
        let revision = headers
            .get(PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let stateless = !has_session && revision.as_deref().is_some_and(protocol::is_stateless);
        gate::inspect(body, self.settings.max_json_depth, revision, stateless)
    }

    /// Step 7: a new session must fit under the principal's cap.
    async fn session_cap(&self, principal: &Principal) -> Result<(), Refused> {
        let limit = self.settings.max_sessions;
        if limit == 0 {
            return Ok(());
        }
        match self.sessions.live_count(principal.name()).await {
            Ok(live) if live >= i64::from(limit) => Err(Box::new(rpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                INVALID_REQUEST,
                &format!(
                    "Too Many Sessions: {} already has {live} live sessions (limit {limit}); end unused ones with DELETE /mcp or `steward sessions revoke ID`, or raise --max-sessions-per-principal",
                    principal.label()
                ),
                None,
            ))),
            Ok(_) => Ok(()),
            // The database is down: creating the session would fail to record it anyway; let
            // rmcp and the session layer report that.
            Err(error) => {
                tracing::warn!(%error, "cannot count live sessions; not enforcing the per-principal cap");
                Ok(())
            }
        }
    }

    /// Steps 3 to 7 for an authenticated request: the request to pass on, with the principal
    /// (and, for a POST, the envelope) in its extensions.
    async fn admit(
        &self,
        principal: &Principal,
        request: Request,
        received: &mut Option<Received>,
    ) -> Result<Request, Refused> {
        self.rate_limit(principal)?;
        let session = request
            .headers()
            .get(SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.session_ownership(session.as_deref(), principal)
            .await?;
        let has_session = session.is_some();
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(principal.clone());
        if parts.method != Method::POST {
            return Ok(Request::from_parts(parts, body));
        }
        let bytes = self.read_body(body).await?;
        let envelope = match self.json_rpc_shape(&parts.headers, has_session, bytes.clone()) {
            Ok(envelope) => Arc::new(envelope),
            Err(rejection) => {
                *received = Some(Received::Refused(bytes));
                let status = StatusCode::from_u16(rejection.http_status())
                    .unwrap_or(StatusCode::BAD_REQUEST);
                return Err(Box::new(json_response(status, &rejection.to_json())));
            }
        };
        *received = Some(Received::Parsed(envelope.clone()));
        let initialize = envelope
            .single()
            .is_some_and(|m| m.method.as_deref() == Some("initialize"));
        if !has_session && initialize {
            self.session_cap(principal).await?;
        }
        parts.extensions.insert(envelope);
        Ok(Request::from_parts(parts, Body::from(bytes)))
    }
}

/// In front of `/mcp`. What the request turned out to be (who sent it, the body it carried)
/// rides out on the response too, for the ledger outside this layer.
pub async fn guard_mcp(
    State(guard): State<Arc<Guard>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Err(refused) = guard.hosts_and_origins(&request) {
        return *refused;
    }
    let principal = match guard.authenticate(&mut request).await {
        Ok(principal) => principal,
        Err(refused) => return *guard.rate_limit_peer(&request).err().unwrap_or(refused),
    };
    let mut received = None;
    let mut response = match guard.admit(&principal, request, &mut received).await {
        Ok(request) => next.run(request).await,
        Err(refused) => *refused,
    };
    let extensions = response.extensions_mut();
    extensions.insert(principal);
    if let Some(received) = received {
        extensions.insert(received);
    }
    response
}

/// On a batch message whose rate-limit token the batch's POST already took.
#[derive(Clone, Copy, Debug)]
pub struct Prepaid;

/// In front of each message of a batch (which passed [`guard_mcp`] as a whole): its own
/// rate-limit token, and who sent it and what it was left on the response for the ledger.
pub async fn guard_batch_item(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let extensions = request.extensions();
    let principal = extensions.get::<Principal>().cloned();
    let envelope = extensions.get::<Arc<Envelope>>().cloned();
    let prepaid = extensions.get::<Prepaid>().is_some();
    let limited = match &principal {
        Some(principal) if !prepaid => guard.rate_limit(principal),
        _ => Ok(()),
    };
    let mut response = match limited {
        Ok(()) => next.run(request).await,
        Err(refused) => *refused,
    };
    let extensions = response.extensions_mut();
    if let Some(principal) = principal {
        extensions.insert(principal);
    }
    if let Some(envelope) = envelope {
        extensions.insert(Received::Parsed(envelope));
    }
    response
}

/// In front of `/api/` and the dashboard.
pub async fn guard_admin(
    State(guard): State<Arc<Guard>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let is_api = path.starts_with("/api/") || path == "/api";
    if let Err((status, message)) = guard.check_origin(request.headers()) {
        return api_error(status, &message);
    }
    let Auth::ApiKeys(keys) = &guard.auth else {
        return next.run(request).await;
    };
    if path == "/login" || path == "/logout" {
        return next.run(request).await;
    }
    let from_cookie =
        admin::login_token(request.headers()).and_then(|token| guard.logins.key_hash(token));
    let verified = match (super::auth::bearer(request.headers()), from_cookie.clone()) {
        (Some(key), _) => keys.verify(key).await,
        (None, Some(hash)) => keys.verify_hash(hash).await,
        (None, None) => Err(AuthError::Missing),
    };
    let principal = match verified {
        Ok(principal) => principal,
        Err(_) if !is_api => return redirect("login"),
        Err(error) => return unauthorized(&error, false),
    };
    if !principal.is_admin() {
        return api_error(
            StatusCode::FORBIDDEN,
            &format!(
                "Forbidden: {} is not an admin key; the API and dashboard need one (`steward keys create NAME --admin`)",
                principal.label()
            ),
        );
    }
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe
        && from_cookie.is_some()
        && super::auth::bearer(request.headers()).is_none()
        && !request.headers().contains_key(CSRF_HEADER)
    {
        return api_error(
            StatusCode::FORBIDDEN,
            &format!(
                "Forbidden: a state-changing request from the browser must carry the {CSRF_HEADER} header"
            ),
        );
    }
    request
        .extensions_mut()
        .insert(admin::AdminName(principal.label().to_string()));
    next.run(request).await
}

/// `GET /login`.
pub async fn login_form() -> Response {
    html(StatusCode::OK, admin::login_page(None))
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    key: String,
}

/// `POST /login`: an admin key in, a cookie out.
pub async fn login(
    State(guard): State<Arc<Guard>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let Auth::ApiKeys(keys) = &guard.auth else {
        return redirect("./");
    };
    let problem = match keys.verify(form.key.trim()).await {
        Ok(principal) if principal.is_admin() => {
            let token = guard.logins.open(super::auth::hash_key(form.key.trim()));
            let mut response = redirect("./");
            if let Ok(cookie) = HeaderValue::from_str(&admin::login_cookie(&token, &headers)) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            return response;
        }
        Ok(_) => "That key is not an admin key.",
        Err(AuthError::Unavailable) => "The key store cannot be read right now; try again shortly.",
        Err(_) => "That key is wrong or revoked.",
    };
    html(StatusCode::UNAUTHORIZED, admin::login_page(Some(problem)))
}

/// `POST /logout`.
pub async fn logout(State(guard): State<Arc<Guard>>, headers: HeaderMap) -> Response {
    if let Some(token) = admin::login_token(&headers) {
        guard.logins.close(token);
    }
    let mut response = redirect("login");
    if let Ok(cookie) = HeaderValue::from_str(&admin::logout_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Header values are shown in messages and logs only as printable ASCII, cut short.
fn printable(text: &str) -> String {
    text.chars()
        .take(100)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub fn rpc_error(
    status: StatusCode,
    code: i32,
    message: &str,
    id: Option<&protocol::Id>,
) -> Response {
    json_response(status, &protocol::error_body(code, message, id))
}

fn api_error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": { "message": message } }))
}

fn unauthorized(error: &AuthError, jsonrpc: bool) -> Response {
    let status = match error {
        AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
    };
    let mut response = if jsonrpc {
        rpc_error(status, INVALID_REQUEST, error.message(), None)
    } else {
        api_error(status, error.message())
    };
    if status == StatusCode::UNAUTHORIZED {
        let challenge = match error {
            AuthError::Invalid => "Bearer realm=\"steward\", error=\"invalid_token\"",
            _ => "Bearer realm=\"steward\"",
        };
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}

fn too_many_requests(wait: Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = rpc_error(
        StatusCode::TOO_MANY_REQUESTS,
        INVALID_REQUEST,
        &format!(
            "Too Many Requests: this principal's (or, unauthenticated, this address's) rate limit is used up; retry after {seconds} s (see --rate-limit)"
        ),
        None,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                crate::dashboard::CONTENT_SECURITY_POLICY,
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Bytes::from(body),
    )
        .into_response()
}
