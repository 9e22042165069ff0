//! Gateway mode: Steward in front of other MCP servers ("upstreams"). Their tools join the
//! board's in one `tools/list`, each named `UPSTREAM__tool` ([`spec::SEPARATOR`]), and a
//! `tools/call` of such a name goes to that upstream. Each upstream has its own timeout, and
//! its failure is answered with an error naming it, never touching the board or the other
//! upstreams. The ledger records every proxied call with the upstream's name, the tool as the
//! upstream knows it and the upstream's share of the duration.
//!
//! [`http`] keeps durable per-client-session upstream sessions; [`stdio`] supervises a child
//! process. The MCP handler ([`crate::mcp`]) calls in here; this module knows nothing of the board.

pub mod breaker;
pub mod error;
pub mod http;
mod pages;
pub mod spec;
pub mod status;
pub mod stdio;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::ErrorData;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, InitializeRequestParams,
    ListToolsResult, PaginatedRequestParams, Tool,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::ledger::entry::{Micros, Served, UpstreamHop};
use crate::store::Store;
use breaker::Breaker;
use error::UpstreamError;
use http::HttpUpstream;
use spec::{SEPARATOR, Target, UpstreamName, UpstreamSpec};
use status::{UpstreamReport, UpstreamStatus};
use stdio::{Launch, StdioUpstream};

/// The newest revision Steward asks an upstream for: session-era, so a 2026-07-28 client can
/// use a session-era upstream (Steward keeps the session for it).
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
}

enum Link {
    Http(HttpUpstream),
    Stdio(StdioUpstream),
}

pub struct Upstream {
    spec: UpstreamSpec,
    link: Link,
    status: Arc<UpstreamStatus>,
    breaker: Breaker,
}

pub struct Gateway {
    upstreams: Vec<Upstream>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Gateway {
    /// Connects nothing yet: HTTP upstreams are reached on first use, stdio processes start
    /// now and run until `stop`.
    pub fn start(
        specs: Vec<UpstreamSpec>,
        store: Store,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build the HTTP client for upstreams: {e}"))?;
        let mut upstreams = Vec::with_capacity(specs.len());
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
            let link = match &spec.target {
                Target::Http { url, headers } => Link::Http(HttpUpstream::new(
                    spec.name.clone(),
                    url,
                    headers,
                    client.clone(),
                    store.clone(),
                    status.clone(),
                )?),
                Target::Stdio { command, args, env } => Link::Stdio(StdioUpstream::start(
                    Launch {
                        name: spec.name.clone(),
                        command: command.clone(),
                        args: args.clone(),
                        env: env.clone(),
                        // Starting an interpreter can take longer than answering a call.
                        timeout: spec.timeout.max(stdio::MIN_START_TIMEOUT),
                    },
                    status.clone(),
                    stop.clone(),
                )),
            };
            let breaker = Breaker::new(spec.breaker);
            upstreams.push(Upstream {
                spec,
                link,
                status,
                breaker,
            });
        }
        Ok(Arc::new(Gateway { upstreams }))
    }

    pub fn names(&self) -> impl Iterator<Item = &UpstreamName> {
        self.upstreams.iter().map(|u| &u.spec.name)
    }

    /// The upstream a prefixed tool name belongs to, and the tool's own name there.
    pub fn route<'n>(&self, tool: &'n str) -> Option<(&Upstream, &'n str)> {
        let (prefix, rest) = tool.split_once(SEPARATOR)?;
        let upstream = self
            .upstreams
            .iter()
            .find(|u| u.spec.name.as_str() == prefix)?;
        Some((upstream, rest))
    }

    /// One page of the merged tool list: `board` first, then each upstream's tools (see
    /// [`pages`] for the cursor). An upstream that cannot list its tools is left out (and
    /// logged), so one failure never hides the others' tools.
    pub async fn list_tools(
        &self,
        caller: Caller<'_>,
        request: Option<PaginatedRequestParams>,
        board: Vec<Tool>,
    ) -> Result<ListToolsResult, ErrorData> {
        let start = pages::Position::parse(request.and_then(|r| r.cursor).as_deref())?;
        let mut tools = Vec::new();
        let mut source = start.source;
        let mut inner = start.inner;
        if source == 0 {
            tools.extend(board);
            source = 1;
        }
        while let Some(upstream) = self.upstreams.get(source - 1) {
            match upstream.list_page(caller, inner.take()).await {
                Ok(page) => {
                    tools.extend(page.tools);
                    if let Some(next) = page.next_cursor {
                        let cursor = pages::Position {
                            source,
                            inner: Some(next),
                        }
                        .encode();
                        return Ok(ListToolsResult {
                            tools,
                            next_cursor: Some(cursor),
                            ..Default::default()
                        });
                    }
                }
                // Its breaker opening was logged once; each list need not say it again.
                Err(error @ UpstreamError::BreakerOpen(_)) => {
                    tracing::debug!(upstream = %upstream.spec.name, %error, "tools/list left out an upstream whose breaker is open");
                }
                Err(error) => {
                    tracing::warn!(upstream = %upstream.spec.name, %error, "tools/list left out an upstream that did not answer");
                }
            }
            source += 1;
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    /// Calls `tool` (its name at the upstream) on `upstream` with the client's arguments.
    pub async fn call_tool(
        &self,
        upstream: &Upstream,
        tool: &str,
        caller: Caller<'_>,
        mut request: CallToolRequestParams,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = &upstream.spec.name;
        if !upstream.offers(tool) {
            return Err(ErrorData::invalid_params(
                format!(
                    "tool {name}{SEPARATOR}{tool} is not offered: upstream {name}'s tool allow-list leaves it out; see tools/list"
                ),
                None,
            ));
        }
        request.name = tool.to_string().into();
        let started = Instant::now();
        let outcome = upstream.timed(upstream.call(caller, request)).await;
        if let Some(served) = caller.served {
            served.went_upstream(UpstreamHop {
                upstream: name.to_string(),
                tool: Some(tool.to_string()),
                duration: Micros::since(started),
            });
        }
        outcome.map_err(|error| error.to_error_data(name))
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

    fn offers(&self, tool: &str) -> bool {
        self.spec
            .tools
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|t| t == tool))
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

    /// One page of this upstream's tools, allow-listed and prefixed with its name.
    async fn list_page(
        &self,
        caller: Caller<'_>,
        cursor: Option<String>,
    ) -> Result<ListToolsResult, UpstreamError> {
        let mut page = self.timed(self.list(caller, cursor)).await?;
        page.tools.retain(|tool| self.offers(&tool.name));
        for tool in &mut page.tools {
            tool.name = format!("{}{SEPARATOR}{}", self.spec.name, tool.name).into();
        }
        Ok(page)
    }

    async fn list(
        &self,
        caller: Caller<'_>,
        cursor: Option<String>,
    ) -> Result<ListToolsResult, UpstreamError> {
        match &self.link {
            Link::Http(http) => {
                let params = json!({ "cursor": cursor });
                let params = if cursor.is_none() { json!({}) } else { params };
                let result = http
                    .request(
                        session_key(caller),
                        &initialize_params(caller),
                        "tools/list",
                        params,
                    )
                    .await?;
                serde_json::from_value(result).map_err(|e| {
                    UpstreamError::Protocol(format!("a malformed tools/list result: {e}"))
                })
            }
            Link::Stdio(stdio) => {
                let params = PaginatedRequestParams::default().with_cursor(cursor);
                stdio
                    .peer()
                    .await?
                    .list_tools(Some(params))
                    .await
                    .map_err(service_error)
            }
        }
    }

    async fn call(
        &self,
        caller: Caller<'_>,
        request: CallToolRequestParams,
    ) -> Result<CallToolResponse, UpstreamError> {
        match &self.link {
            Link::Http(http) => {
                let params = serde_json::to_value(&request)
                    .map_err(|e| UpstreamError::Protocol(format!("cannot encode the call: {e}")))?;
                let result = http
                    .request(
                        session_key(caller),
                        &initialize_params(caller),
                        "tools/call",
                        params,
                    )
                    .await?;
                serde_json::from_value::<CallToolResult>(result)
                    .map(Into::into)
                    .map_err(|e| {
                        UpstreamError::Protocol(format!("a malformed tools/call result: {e}"))
                    })
            }
            Link::Stdio(stdio) => stdio
                .peer()
                .await?
                .call_tool_once(request)
                .await
                .map_err(service_error),
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
            failures: UpstreamStatus::read(&self.status.failures),
            sessions_reinitialized: UpstreamStatus::read(&self.status.reinitialized),
            restarts: UpstreamStatus::read(&self.status.restarts),
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

/// What Steward sends the upstream's `initialize`: the client's own name and revision (at most
/// [`UPSTREAM_REVISION`]) and no capabilities, since requests from the upstream to the client
/// (sampling, elicitation, roots) are not relayed yet.
fn initialize_params(caller: Caller<'_>) -> Value {
    let client_info = caller.client.map_or_else(
        || json!({ "name": "steward-gateway", "version": env!("CARGO_PKG_VERSION") }),
        |client| json!(client.client_info),
    );
    let asked = caller.client.map(|c| c.protocol_version.to_string());
    let revision = match asked.as_deref() {
        Some(asked) if asked < UPSTREAM_REVISION => asked,
        _ => UPSTREAM_REVISION,
    };
    json!({ "protocolVersion": revision, "capabilities": {}, "clientInfo": client_info })
}

fn service_error(error: rmcp::ServiceError) -> UpstreamError {
    match error {
        rmcp::ServiceError::McpError(error) => UpstreamError::Rejected(error),
        rmcp::ServiceError::Timeout { timeout } => UpstreamError::TimedOut(timeout),
        rmcp::ServiceError::TransportClosed | rmcp::ServiceError::TransportSend(_) => {
            UpstreamError::Down(error.to_string())
        }
        other => UpstreamError::Protocol(other.to_string()),
    }
}
