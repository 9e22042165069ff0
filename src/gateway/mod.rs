//! Gateway mode: Steward in front of other MCP servers ("upstreams"). Their tools join the
//! board's in one `tools/list`, each named `UPSTREAM__tool` ([`spec::SEPARATOR`]), and a
//! `tools/call` of such a name goes to that upstream; their resources, resource templates and
//! prompts likewise ([`kinds`]). Each upstream has its own timeout, and
//! its failure is answered with an error naming it, never touching the board or the other
//! upstreams. The ledger records every proxied call with the upstream's name, the tool as the
//! upstream knows it and the upstream's share of the duration.
//!
//! [`http`] keeps durable per-client-session upstream sessions; [`stdio`] supervises a child
//! process; [`relay`] carries what the upstream sends the client (notifications, requests)
//! and the client's cancellations. The MCP handler ([`crate::mcp`]) calls in here; this module knows nothing of the board.

mod answer;
pub mod breaker;
pub mod error;
pub mod http;
pub mod kinds;
mod pages;
pub mod parked;
pub mod raw;
pub mod relay;
pub mod spec;
pub mod stateless;
pub mod status;
pub mod stdio;
mod unanswered;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::ErrorData;
use rmcp::model::{InitializeRequestParams, PaginatedRequestParams, Tool};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::ledger::entry::Served;
use crate::store::Store;
use crate::tls::{ClientIdentity, ExtraRoots};
use answer::Answer;
use breaker::Breaker;
use error::UpstreamError;
use http::HttpUpstream;
use kinds::{Exchange, Listing};
use relay::{Audience, Relay};
use spec::{SEPARATOR, Target, UpstreamName, UpstreamSpec};
use status::{UpstreamReport, UpstreamStatus};
use stdio::{Launch, StdioUpstream};

/// The newest revision Steward asks for in an upstream's `initialize`. Sessions are for
/// session-era clients, and for 2026-07-28 clients of an upstream that does not speak
/// 2026-07-28 (Steward keeps the session for them); 2026-07-28 clients of one that does reach
/// it without a session ([`stateless`]).
const UPSTREAM_REVISION: &str = "2025-11-25";

/// Who is asking, as far as an upstream needs to know.
#[derive(Clone, Copy, Default)]
pub struct Caller<'a> {
    /// The client's session (HTTP), logical session (stateless) or connection (stdio).
    pub session: Option<&'a str>,
    /// What the client sent in its `initialize`.
    pub client: Option<&'a InitializeRequestParams>,
    /// Where the ledger learns that the request went to an upstream.
    pub served: Option<&'a Served>,
    /// The client's side of the request: where the upstream's notifications and requests
    /// go, and whether the client cancelled it.
    pub relay: Option<&'a Relay>,
    /// A 2026-07-28 client's request without a session: passed on as one to an upstream that
    /// speaks 2026-07-28 (its `_meta` and `Mcp-Param-*` headers unchanged).
    pub stateless: Option<stateless::Stateless<'a>>,
}

enum Link {
    Http(HttpUpstream),
    Stdio(StdioUpstream),
}

pub struct Upstream {
    spec: UpstreamSpec,
    tools: kinds::Tools,
    link: Link,
    status: Arc<UpstreamStatus>,
    breaker: Breaker,
    audience: Arc<Audience>,
}

pub struct Gateway {
    upstreams: Vec<Upstream>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// The HTTP client of the upstreams: one shared by all, and one of its own for each upstream
/// with a `ca_file` (whose roots it trusts besides the system's) or a client certificate.
fn http_client(
    roots: Option<&ExtraRoots>,
    identity: Option<&ClientIdentity>,
) -> Result<reqwest::Client, String> {
    // reqwest takes TLS from the process's provider, with or without extra roots.
    crate::tls::install();
    // The system's verifier comes as a whole rustls config that reqwest uses as it is, so a
    // client with extra roots or an identity builds its TLS from reqwest's own settings.
    let mut builder = match (roots, identity) {
        (None, None) => crate::tls::client_builder(),
        _ => reqwest::Client::builder(),
    };
    if let Some(roots) = roots {
        builder = builder.tls_certs_merge(roots.certificates()?);
    }
    if let Some(identity) = identity {
        builder = builder.identity(identity.identity()?);
    }
    let builder = builder.connect_timeout(Duration::from_secs(5));
    builder.build().map_err(|e| http::causes(&e))
}

impl Gateway {
    /// Connects nothing yet: HTTP upstreams are reached on first use, stdio processes start
    /// now and run until `stop`.
    pub fn start(
        specs: Vec<UpstreamSpec>,
        store: Store,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, String> {
        let client = http_client(None, None)
            .map_err(|e| format!("cannot build the HTTP client for upstreams: {e}"))?;
        let mut upstreams = Vec::with_capacity(specs.len());
        // Calls parked for 2026-07-28 clients' input are bounded over every upstream together.
        let capacity = Arc::new(parked::Capacity::default());
        for spec in specs {
            if upstreams
                .iter()
                .any(|u: &Upstream| u.spec.name == spec.name)
            {
                return Err(format!(
                    "two upstreams are named {}; names must differ",
                    spec.name
                ));
            }
            let status = Arc::new(UpstreamStatus::default());
            let audience = Arc::new(Audience::default());
            let link = match &spec.target {
                Target::Http {
                    url,
                    headers,
                    ca_file,
                    identity,
                } => Link::Http(
                    HttpUpstream::new(
                        spec.name.clone(),
                        url,
                        headers,
                        match (ca_file, identity) {
                            (None, None) => client.clone(),
                            (roots, identity) => http_client(roots.as_ref(), identity.as_ref())
                                .map_err(|e| match roots {
                                    Some(roots) if identity.is_none() => format!(
                                        "upstream {}: ca_file {}: {e}",
                                        spec.name,
                                        roots.path().display()
                                    ),
                                    _ => format!("upstream {}: {e}", spec.name),
                                })?,
                        },
                        store.clone(),
                        status.clone(),
                        audience.clone(),
                    )?
                    .closing_on(stop.clone())
                    .parking_for(spec.timeout, capacity.clone()),
                ),
                Target::Stdio { command, args, env } => Link::Stdio(
                    StdioUpstream::start(
                        Launch {
                            name: spec.name.clone(),
                            command: command.clone(),
                            args: args.clone(),
                            env: env.clone(),
                            // Starting an interpreter can take longer than answering a call.
                            timeout: spec.timeout.max(stdio::MIN_START_TIMEOUT),
                        },
                        status.clone(),
                        audience.clone(),
                        stop.clone(),
                    )
                    .parking_for(spec.timeout, capacity.clone()),
                ),
            };
            let breaker = Breaker::new(spec.breaker);
            upstreams.push(Upstream {
                spec,
                tools: kinds::Tools::default(),
                link,
                status,
                breaker,
                audience,
            });
        }
        Ok(Arc::new(Gateway { upstreams }))
    }

    pub fn names(&self) -> impl Iterator<Item = &UpstreamName> {
        self.upstreams.iter().map(|u| &u.spec.name)
    }

    /// The upstream a prefixed tool or prompt name belongs to, and the name there; a name no
    /// prefix claims belongs to the upstream without a namespace, if there is one.
    pub fn route<'n>(&self, name: &'n str) -> Option<(&Upstream, &'n str)> {
        name.split_once(SEPARATOR)
            .and_then(|(prefix, rest)| Some((self.upstream(prefix)?, rest)))
            .or_else(|| Some((self.unnamespaced()?, name)))
    }

    /// The upstream a resource URI of the gateway's form belongs to, and the URI there; as
    /// for names, the upstream without a namespace takes the others.
    pub fn route_uri<'u>(&self, uri: &'u str) -> Option<(&Upstream, &'u str)> {
        kinds::split_uri(uri)
            .and_then(|(name, rest)| Some((self.upstream(name)?, rest)))
            .or_else(|| Some((self.unnamespaced()?, uri)))
    }

    /// A namespaced upstream by name.
    fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams
            .iter()
            .find(|u| u.spec.namespaced && u.spec.name.as_str() == name)
    }

    /// The upstream mounted without a namespace (at most one: [`spec::check_namespaces`]).
    fn unnamespaced(&self) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| !u.spec.namespaced)
    }

    /// One page of a merged list: `board` first, then each upstream's items (see [`pages`]
    /// for the cursor). An upstream that cannot list them is left out (and logged), so one
    /// failure never hides the others' items.
    pub async fn list<L: Listing>(
        &self,
        caller: Caller<'_>,
        request: Option<PaginatedRequestParams>,
        board: Vec<L::Item>,
    ) -> Result<L, ErrorData> {
        let start = pages::Position::parse(request.and_then(|r| r.cursor).as_deref())?;
        let mut items = Vec::new();
        let mut source = start.source;
        let mut inner = start.inner;
        if source == 0 {
            items.extend(board);
            source = 1;
        }
        while let Some(upstream) = self.upstreams.get(source - 1) {
            match upstream.list_page::<L>(caller, inner.take()).await {
                Ok((page, next)) => {
                    items.extend(page);
                    if let Some(next) = next {
                        let cursor = pages::Position {
                            source,
                            inner: Some(next),
                        };
                        return Ok(L::from_page(items, Some(cursor.encode())));
                    }
                }
                Err(error) => upstream.left_out(L::METHOD, &error),
            }
            source += 1;
        }
        Ok(L::from_page(items, None))
    }

    /// Passes `request` to its upstream when it names an upstream's tool, prompt or resource
    /// (see [`kinds`]); gives `request` back when it names none.
    pub async fn pass<E: Exchange>(
        &self,
        caller: Caller<'_>,
        request: E,
    ) -> Result<Result<E::Response, ErrorData>, E> {
        let routed = match E::BY_URI {
            true => self.route_uri(request.target()),
            false => self.route(request.target()),
        };
        let Some((upstream, local)) = routed.map(|(u, local)| (u, local.to_string())) else {
            return Err(request);
        };
        Ok(upstream.send(&local, caller, request).await)
    }

    /// Passes `resources/subscribe` (`on`) or `resources/unsubscribe` of an upstream's
    /// resource to it, and remembers who subscribed, so its `notifications/resources/updated`
    /// reach that client; `None` when `uri` names no upstream's resource.
    pub async fn subscribe(
        &self,
        caller: Caller<'_>,
        uri: &str,
        on: bool,
    ) -> Option<Result<(), ErrorData>> {
        let (upstream, local) = self.route_uri(uri)?;
        let method = match on {
            true => "resources/subscribe",
            false => "resources/unsubscribe",
        };
        let outcome = upstream
            .timed(upstream.call(caller, method, raw::Params::Tree(json!({ "uri": local }))))
            .await;
        Some(match outcome {
            Ok(_) => {
                upstream.audience.subscribe(session_key(caller), local, on);
                Ok(())
            }
            Err(error) => Err(error.to_error_data(&upstream.spec.name)),
        })
    }

    /// An upstream's tool by the name the client knows, as its upstream last listed it (its
    /// input schema, for checking `Mcp-Param-*` headers); `None` before it was listed.
    pub fn tool(&self, name: &str) -> Option<Tool> {
        let (upstream, local) = self.route(name)?;
        let mut tool = upstream.tools.get(local)?;
        tool.name = name.to_string().into();
        Some(tool)
    }

    /// Every upstream's state, for `/health` and `/metrics`.
    pub fn report(&self) -> Vec<UpstreamReport> {
        self.upstreams.iter().map(Upstream::report).collect()
    }
}

impl Upstream {
    pub fn name(&self) -> &UpstreamName {
        &self.spec.name
    }

    /// Runs `work` within the upstream's timeout, unless its breaker is open, keeping its
    /// state and breaker up to date.
    async fn timed<T>(
        &self,
        work: impl Future<Output = Result<T, UpstreamError>>,
    ) -> Result<T, UpstreamError> {
        self.breaker.admit().map_err(UpstreamError::BreakerOpen)?;
        UpstreamStatus::count(&self.status.calls);
        let outcome = tokio::time::timeout(self.spec.timeout, work)
            .await
            .unwrap_or(Err(UpstreamError::TimedOut(self.spec.timeout)));
        // A slow call is a failure, but says nothing of whether the upstream is up.
        let failed = |error: &UpstreamError| {
            UpstreamStatus::count(&self.status.failures);
            if self.breaker.failed() {
                tracing::warn!(upstream = %self.spec.name, %error, "the upstream's circuit breaker opened: its calls fail at once until a probe succeeds");
            }
        };
        match &outcome {
            Err(error @ UpstreamError::TimedOut(_)) => failed(error),
            Err(error) if error.is_outage() => {
                self.status.down(error.to_string());
                failed(error);
            }
            _ => {
                self.status.up();
                self.breaker.succeeded();
            }
        }
        outcome
    }

    /// Sends `request` for `local` (its name or URI at the upstream), tells the ledger it did,
    /// and names what the answer holds for the client.
    async fn send<E: Exchange>(
        &self,
        local: &str,
        caller: Caller<'_>,
        mut request: E,
    ) -> Result<E::Response, ErrorData> {
        E::check(local, &self.spec)?;
        request.retarget(local);
        // Told before the call goes: a client that hangs up has its row written before the
        // answer comes, and that row names the upstream and tool too.
        if let Some(served) = caller.served {
            let tool = E::NAMES_TOOL.then(|| local.to_string());
            served.going_upstream(self.spec.name.to_string(), tool, Instant::now());
        }
        let outcome = self.timed(self.exchange(caller, request)).await;
        if let Some(served) = caller.served {
            served.came_back();
        }
        let mut response = outcome.map_err(|error| error.to_error_data(&self.spec.name))?;
        E::adopt(&mut response, &self.spec);
        Ok(response)
    }

    /// Why its items are missing from a merged list, in the log. An upstream without that
    /// kind of item (method not found), or whose breaker is open (logged when it opened),
    /// is not worth a warning each time.
    fn left_out(&self, method: &str, error: &UpstreamError) {
        let name = &self.spec.name;
        match error {
            UpstreamError::BreakerOpen(_) => {
                tracing::debug!(upstream = %name, %error, method, "a list left out an upstream whose breaker is open");
            }
            UpstreamError::Rejected(e) if e.code.0 == crate::protocol::METHOD_NOT_FOUND => {
                tracing::debug!(upstream = %name, method, "the upstream has no such list");
            }
            _ => {
                tracing::warn!(upstream = %name, %error, method, "a list left out an upstream that did not answer");
            }
        }
    }

    /// One page of this upstream's items, allow-listed and named for the client.
    async fn list_page<L: Listing>(
        &self,
        caller: Caller<'_>,
        cursor: Option<String>,
    ) -> Result<(Vec<L::Item>, Option<String>), UpstreamError> {
        let first = cursor.is_none();
        let page: L = self.timed(self.ask_list(caller, cursor)).await?;
        let (mut items, next) = page.into_page();
        L::remember(&items, &self.tools, first);
        items.retain_mut(|item| L::adopt(item, &self.spec));
        Ok((items, next))
    }

    async fn ask_list<L: Listing>(
        &self,
        caller: Caller<'_>,
        cursor: Option<String>,
    ) -> Result<L, UpstreamError> {
        let params = match &cursor {
            Some(cursor) => json!({ "cursor": cursor }),
            None => json!({}),
        };
        let params = raw::Params::Tree(params);
        self.call(caller, L::METHOD, params).await?.parse(L::METHOD)
    }

    async fn exchange<E: Exchange>(
        &self,
        caller: Caller<'_>,
        request: E,
    ) -> Result<E::Response, UpstreamError> {
        let params = serde_json::to_value(&request)
            .map_err(|e| UpstreamError::Protocol(format!("cannot encode the request: {e}")))?;
        let answer = self
            .call(caller, E::METHOD, raw::Params::Tree(params))
            .await?;
        match answer.input_required() {
            Ok(asked) => Ok(asked.into()),
            Err(answer) => Ok(answer.parse::<E::Result>(E::METHOD)?.into()),
        }
    }

    /// `method` with `params` at the upstream, for `caller`; its result.
    async fn call(
        &self,
        caller: Caller<'_>,
        method: &str,
        params: raw::Params<'_>,
    ) -> Result<Answer, UpstreamError> {
        if let Some(relay) = caller.relay {
            self.audience.seen(session_key(caller), relay);
        }
        // A 2026-07-28 client cannot be sent a request: what an upstream asks it outside a
        // call's stream reaches it only through that call's bridge (`http::outside`), so any
        // such request its call has not taken is refused by `Audience::ask`, never sent.
        let _serving = caller
            .relay
            .filter(|_| caller.stateless.is_none())
            .map(|relay| self.audience.serving(session_key(caller), relay));
        match &self.link {
            Link::Http(http) => {
                let init = || initialize_params(caller);
                let (session, stateless) = (session_key(caller), caller.stateless);
                // Boxed: the exchange's future is large, and every future above it here
                // (the timeout, the breaker's bookkeeping) would hold it inline and move it.
                Box::pin(http.request(session, init, stateless, method, params, caller.relay)).await
            }
            Link::Stdio(stdio) => {
                let params = params.into_tree()?;
                let session = session_key(caller);
                let bridge = caller
                    .stateless
                    .map(|_| parked::Bound::of(session, &self.spec.name, method, &params));
                stdio
                    .request(method, params, caller.relay, bridge)
                    .await
                    .map(Answer::Tree)
            }
        }
    }

    fn report(&self) -> UpstreamReport {
        let (state, since, last_error) = self.status.state();
        let (breaker, breaker_opened, short_circuited) = self.breaker.report();
        UpstreamReport {
            name: self.spec.name.to_string(),
            transport: match self.link {
                Link::Http(_) => "http",
                Link::Stdio(_) => "stdio",
            },
            location: self.spec.location(),
            state,
            since,
            last_error,
            calls: UpstreamStatus::read(&self.status.calls),
            calls_direct: UpstreamStatus::read(&self.status.direct),
            failures: UpstreamStatus::read(&self.status.failures),
            sessions_reinitialized: UpstreamStatus::read(&self.status.reinitialized),
            restarts: UpstreamStatus::read(&self.status.restarts),
            undelivered: UpstreamStatus::read(&self.status.undelivered),
            abandoned: UpstreamStatus::read(&self.status.abandoned),
            parking_refused: UpstreamStatus::read(&self.status.parking_refused),
            orphaned: UpstreamStatus::read(&self.status.orphaned),
            breaker,
            breaker_opened,
            short_circuited,
            timeout_ms: u64::try_from(self.spec.timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// Requests without a session of their own share one upstream session.
fn session_key<'a>(caller: Caller<'a>) -> &'a str {
    caller.session.unwrap_or("(no session)")
}

/// What Steward sends the upstream's `initialize`: the client's own name, revision (at most
/// [`UPSTREAM_REVISION`]) and the capabilities whose requests Steward relays to it (sampling,
/// elicitation, roots).
fn initialize_params(caller: Caller<'_>) -> Value {
    if let Some(stateless) = caller.stateless {
        return stateless_initialize_params(stateless);
    }
    let client_info = caller.client.map_or_else(
        || json!({ "name": "steward-gateway", "version": env!("CARGO_PKG_VERSION") }),
        |client| json!(client.client_info),
    );
    let asked = caller.client.map(|c| c.protocol_version.to_string());
    let revision = match asked.as_deref() {
        Some(asked) if asked < UPSTREAM_REVISION => asked,
        _ => UPSTREAM_REVISION,
    };
    let mut capabilities = json!({});
    if let Some(declared) = caller.client.map(|c| &c.capabilities) {
        for (name, set) in [
            ("sampling", declared.sampling.as_ref().map(|c| json!(c))),
            (
                "elicitation",
                declared.elicitation.as_ref().map(|c| json!(c)),
            ),
            ("roots", declared.roots.as_ref().map(|c| json!(c))),
        ] {
            if let Some(set) = set {
                capabilities[name] = set;
            }
        }
    }
    json!({ "protocolVersion": revision, "capabilities": capabilities, "clientInfo": client_info })
}

/// A 2026-07-28 client never sends `initialize`: what its request's `_meta` says of it stands
/// in (the session Steward opens for it, with an upstream that does not speak 2026-07-28, is
/// initialized with these).
fn stateless_initialize_params(client: stateless::Stateless<'_>) -> Value {
    let info = client.meta.client_info().map_or_else(
        || json!({ "name": "steward-gateway", "version": env!("CARGO_PKG_VERSION") }),
        |info| json!(info),
    );
    let capabilities = client
        .meta
        .client_capabilities()
        .map_or_else(|| json!({}), |c| json!(c));
    json!({ "protocolVersion": UPSTREAM_REVISION, "capabilities": capabilities, "clientInfo": info })
}
