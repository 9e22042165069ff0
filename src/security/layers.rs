//! The security middleware: [`guard_mcp`] in front of `/mcp`, [`guard_admin`] in front of
//! `/api/` and the dashboard, and the login routes.
//!
//! Order in `guard_mcp`, cheapest and least revealing first: Host/Origin (421/403), API key
//! (401), rate limit (429), session ownership (404), then the body: size (413), the JSON-RPC
//! gate (-32700/-32600/-32602), batches, and the live-session cap on `initialize` (429).
//! Every rejection is JSON (a JSON-RPC error on `/mcp`), so the ledger, which sits outside
//! this layer, records it as what it is.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::admin::{self, CSRF_HEADER, Logins};
use super::auth::{Auth, AuthError, Principal};
use super::gate::{self, INVALID_REQUEST, Inspected};
use super::limits::RateLimiter;
use super::{SecuritySettings, batch};
use crate::ledger::http::{Caller, ReadBody};
use crate::protocol;
use crate::sessions::{Owner, Sessions};

/// The principal name rate limits use when authentication is off.
const ANONYMOUS: &str = "(anonymous)";

/// What the security middleware shares.
pub struct Guard {
    pub settings: SecuritySettings,
    pub auth: Auth,
    limiter: Option<RateLimiter>,
    pub logins: Logins,
    sessions: Arc<Sessions>,
}

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
}

/// In front of `/mcp`. The second state element is the MCP service itself, for batches.
pub async fn guard_mcp(
    State((guard, inner)): State<(Arc<Guard>, Router)>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Err((status, message)) = guard.check_origin(request.headers()) {
        return rpc_error(status, INVALID_REQUEST, &message, None);
    }
    let principal = match guard.auth.authenticate(request.headers()).await {
        Ok(principal) => principal,
        Err(error) => return unauthorized(&error, true),
    };
    // The key has done its job: nothing further in (rmcp, handlers, their logs) sees it.
    request.headers_mut().remove(header::AUTHORIZATION);
    let name = principal.as_ref().map(|p| p.name.clone());
    if let Some(caller) = request.extensions().get::<Caller>() {
        caller.set(name.clone());
    }
    if let Some(name) = &name {
        request.extensions_mut().insert(Owner(name.clone()));
    }
    if let Some(limiter) = &guard.limiter
        && let Err(wait) = limiter.check(name.as_deref().unwrap_or(ANONYMOUS))
    {
        return too_many_requests(wait);
    }
    let session = request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let (Some(session), true) = (&session, guard.auth.is_on())
        && let Err(response) = check_owner(&guard.sessions, session, principal.as_ref()).await
    {
        return response;
    }
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let limit = guard.settings.max_body_bytes;
    let read = match parts.extensions.remove::<ReadBody>() {
        // The ledger outside this layer has read the body already.
        Some(ReadBody(bytes)) => (bytes.len() <= limit).then_some(bytes).ok_or(()),
        None => to_bytes(body, limit).await.map_err(drop),
    };
    let Ok(bytes) = read else {
        let mut response = rpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            INVALID_REQUEST,
            &format!(
                "Payload Too Large: the request body exceeds {limit} bytes; send smaller arguments"
            ),
            None,
        );
        // The rest of the body was never read: the connection cannot carry another request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    };
    let stateless = session.is_none()
        && parts
            .headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v >= crate::sessions::logical::STATELESS_REVISION);
    match gate::inspect_for(&bytes, guard.settings.max_json_depth, stateless) {
        Err(rejection) => {
            let status =
                StatusCode::from_u16(rejection.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            json_response(status, &rejection.to_json())
        }
        Ok(Inspected::Batch(items)) => {
            let revision =
                batch::revision(&parts.headers, session.as_deref(), &guard.sessions).await;
            batch::answer(inner, parts, items, &revision).await
        }
        Ok(Inspected::Single { method }) => {
            if method.as_deref() == Some(protocol::DISCOVER) {
                let revision =
                    batch::revision(&parts.headers, session.as_deref(), &guard.sessions).await;
                if let Some(message) = protocol::discover_refusal(&revision) {
                    let id = gate::id_of(&bytes);
                    return rpc_error(
                        StatusCode::BAD_REQUEST,
                        protocol::METHOD_NOT_FOUND,
                        &message,
                        id,
                    );
                }
            }
            if session.is_none()
                && method.as_deref() == Some("initialize")
                && let Err(response) = check_session_cap(&guard, name.as_deref()).await
            {
                return response;
            }
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

/// Another principal's session answers exactly like an unknown one.
async fn check_owner(
    sessions: &Sessions,
    session: &str,
    principal: Option<&Principal>,
) -> Result<(), Response> {
    match sessions.owner_of(session).await {
        Ok(Some(owner)) if owner.as_deref() != principal.map(|p| p.name.as_str()) => {
            tracing::warn!(principal = ?principal, "refused a request for another principal's session");
            Err(rpc_error(
                StatusCode::NOT_FOUND,
                INVALID_REQUEST,
                "Not Found: Session not found: this Mcp-Session-Id is unknown, expired or was closed. Start a new session with initialize",
                None,
            ))
        }
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::error!(%error, "cannot check who owns a session");
            Err(rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                -32603,
                "the session store cannot be read right now (database unavailable); retry shortly and see /health",
                None,
            ))
        }
    }
}

async fn check_session_cap(guard: &Guard, owner: Option<&str>) -> Result<(), Response> {
    let limit = guard.settings.max_sessions;
    if limit == 0 {
        return Ok(());
    }
    match guard.sessions.live_count(owner).await {
        Ok(live) if live >= i64::from(limit) => Err(rpc_error(
            StatusCode::TOO_MANY_REQUESTS,
            INVALID_REQUEST,
            &format!(
                "Too Many Sessions: {} already has {live} live sessions (limit {limit}); end unused ones with DELETE /mcp or `steward sessions revoke ID`, or raise --max-sessions-per-principal",
                owner.unwrap_or(ANONYMOUS)
            ),
            None,
        )),
        Ok(_) => Ok(()),
        // The database is down: creating the session would fail to record it anyway; let
        // rmcp and the session layer report that.
        Err(error) => {
            tracing::warn!(%error, "cannot count live sessions; not enforcing the per-principal cap");
            Ok(())
        }
    }
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
    if !principal.admin {
        return api_error(
            StatusCode::FORBIDDEN,
            &format!(
                "Forbidden: {} is not an admin key; the API and dashboard need one (`steward keys create NAME --admin`)",
                principal.name
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
        .insert(admin::AdminName(principal.name));
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
        Ok(principal) if principal.admin => {
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

pub fn rpc_error(status: StatusCode, code: i32, message: &str, id: Option<Value>) -> Response {
    json_response(
        status,
        &json!({
            "jsonrpc": "2.0",
            "id": id.unwrap_or(Value::Null),
            "error": { "code": code, "message": message },
        }),
    )
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
            "Too Many Requests: this principal's rate limit is used up; retry after {seconds} s (see --rate-limit)"
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
