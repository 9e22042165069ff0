//! `/metrics` in Prometheus text, with the OpenTelemetry MCP semantic-convention names where
//! they exist (`mcp_server_operation_duration_seconds`, labels `mcp_method_name`,
//! `gen_ai_tool_name`, `error_type`) and `steward_`-prefixed series for Steward's own state.
//!
//! Per-request series are recorded by the ledger writer (off the request path); state gauges
//! are read at scrape time.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::request_row::{LedgerRow, Status};

pub const OPERATION_DURATION: &str = "mcp_server_operation_duration_seconds";
pub const SESSION_DURATION: &str = "mcp_server_session_duration_seconds";
pub const UPSTREAM_DURATION: &str = "steward_upstream_duration_seconds";
/// Sessions last from seconds to days.
const SESSION_BUCKETS: &[f64] = &[
    1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 28800.0, 86400.0, 604800.0,
];
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
/// The tools the server has: only these names become `gen_ai_tool_name` labels. Tool names come
/// from clients, and a made-up one (even in a refused request) must not make a series.
static TOOLS: OnceLock<HashSet<String>> = OnceLock::new();

/// Names the server's tools (once, at startup); any other tool name is labelled `other`.
pub fn register_tools(names: impl IntoIterator<Item = String>) {
    if TOOLS.set(names.into_iter().collect()).is_err() {
        tracing::debug!("the metric labels for tools were registered already");
    }
}

/// The upstreams of gateway mode: only these names become `upstream` labels.
static UPSTREAMS: OnceLock<HashSet<String>> = OnceLock::new();

/// Names the gateway's upstreams (once, at startup).
pub fn register_upstreams(names: impl IntoIterator<Item = String>) {
    if UPSTREAMS.set(names.into_iter().collect()).is_err() {
        tracing::debug!("the metric labels for upstreams were registered already");
    }
}

fn upstream_label(name: &str) -> String {
    match UPSTREAMS.get() {
        Some(known) if known.contains(name) => name.to_string(),
        _ => "other".to_string(),
    }
}

/// A request passed on to an upstream: counted per upstream and status, with the upstream's
/// share of the duration (the rest of `mcp_server_operation_duration_seconds` is Steward's).
fn record_upstream(row: &LedgerRow) {
    let Some(hop) = &row.upstream else { return };
    let upstream = upstream_label(&hop.upstream);
    let status = row.status.as_str();
    metrics::counter!("steward_upstream_requests_total", "upstream" => upstream.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(UPSTREAM_DURATION, "upstream" => upstream)
        .record(hop.duration.micros() as f64 / 1_000_000.0);
}

/// One upstream's state at scrape time.
pub struct UpstreamGauges<'a> {
    pub name: &'a str,
    pub up: bool,
    /// Sessions it forgot and Steward initialized again.
    pub reinitialized: u64,
    /// Restarts of its process.
    pub restarts: u64,
    /// Its circuit breaker is open or half-open.
    pub breaker_open: bool,
    pub breaker_opened: u64,
    pub short_circuited: u64,
    /// Cancellations and answers to its requests that could not be delivered.
    pub undelivered: u64,
    /// Calls parked for a 2026-07-28 client's input that it never resumed.
    pub abandoned: u64,
    /// Calls refused because too many were parked for clients' input already.
    pub parking_refused: u64,
    /// Its requests for a call that ended before its client was asked, answered with an error.
    pub orphaned: u64,
}

/// One upstream's state at scrape time: up (1) or not (0), sessions it forgot and Steward
/// initialized again, restarts of its process, and its circuit breaker.
pub fn record_upstream_state(gauges: &UpstreamGauges<'_>) {
    let upstream = upstream_label(gauges.name);
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    metrics::gauge!("steward_upstream_breaker_open", "upstream" => upstream.clone())
        .set(flag(gauges.breaker_open));
    metrics::gauge!("steward_upstream_breaker_opened", "upstream" => upstream.clone())
        .set(gauges.breaker_opened as f64);
    metrics::gauge!("steward_upstream_short_circuited", "upstream" => upstream.clone())
        .set(gauges.short_circuited as f64);
    let (up, reinitialized, restarts) = (gauges.up, gauges.reinitialized, gauges.restarts);
    metrics::gauge!("steward_upstream_up", "upstream" => upstream.clone()).set(if up {
        1.0
    } else {
        0.0
    });
    metrics::gauge!("steward_upstream_sessions_reinitialized", "upstream" => upstream.clone())
        .set(reinitialized as f64);
    metrics::gauge!("steward_upstream_undelivered", "upstream" => upstream.clone())
        .set(gauges.undelivered as f64);
    metrics::gauge!("steward_upstream_abandoned", "upstream" => upstream.clone())
        .set(gauges.abandoned as f64);
    metrics::gauge!("steward_upstream_parking_refused", "upstream" => upstream.clone())
        .set(gauges.parking_refused as f64);
    metrics::gauge!("steward_upstream_orphaned", "upstream" => upstream.clone())
        .set(gauges.orphaned as f64);
    metrics::gauge!("steward_upstream_restarts", "upstream" => upstream).set(restarts as f64);
}

/// Installs the process-wide recorder (once). Returns `None` if another recorder was installed.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(OPERATION_DURATION.into()), BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(SESSION_DURATION.into()), SESSION_BUCKETS)
                })
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(UPSTREAM_DURATION.into()), BUCKETS));
            match builder.and_then(|b| b.install_recorder()) {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "cannot install the metrics recorder; /metrics will be empty");
                    None
                }
            }
        })
        .as_ref()
}

/// How often histogram samples are folded into their summaries (see [`spawn_upkeep`]).
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The recorder keeps every histogram sample (one per request) until upkeep folds them into
/// the histogram's buckets; a recorder installed without the exporter's own HTTP listener must
/// run upkeep itself, or a server nobody scrapes grows by every request it ever served. Runs
/// upkeep every few seconds until `stop`.
pub fn spawn_upkeep(stop: tokio_util::sync::CancellationToken) {
    let Some(handle) = install() else { return };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(UPKEEP_EVERY) => handle.run_upkeep(),
            }
        }
    });
}

/// The methods MCP defines (any revision) and the ledger's names for what is not a request.
/// A client chooses the method it sends: only these become label values, anything else counts
/// as `other`, so a client cannot make `/metrics` grow a series per made-up name.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "roots/list",
    "sampling/createMessage",
    "elicitation/create",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/tasks/status",
    "(batch)",
    "(GET stream)",
    "(GET replay)",
    "(invalid json)",
    "(not a request)",
];

fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("other")
}

/// Borrowed from the registered names (which live as long as the process), so a row's labels
/// cost no allocation.
fn tool_label(tool: &str) -> &'static str {
    TOOLS
        .get()
        .and_then(|known| known.get(tool))
        .map_or("other", String::as_str)
}

/// The series one kind of request is counted in; built once per kind, not per request
/// (building a labelled key allocates and hashes every label).
#[derive(Clone)]
struct Series {
    duration: metrics::Histogram,
    requests: metrics::Counter,
}

/// Method label, tool label, status and JSON-RPC error code: everything the labels derive from.
type SeriesKey = (&'static str, &'static str, Status, Option<i32>);

/// Kinds remembered; past this (error codes are not bounded) the cache starts over.
const MAX_SERIES: usize = 4096;
// foldhash, not the default SipHash: this map is looked up for every kind of row.
static SERIES: OnceLock<
    Mutex<std::collections::HashMap<SeriesKey, Series, foldhash::fast::FixedState>>,
> = OnceLock::new();

/// Records stored ledger rows' requests. The series of a run of rows of one kind (the same
/// method, tool, status and error code) is looked up once: a batch's rows are mostly the same
/// call.
pub fn record_requests<'a>(rows: impl IntoIterator<Item = &'a LedgerRow>) {
    let mut run: Option<(&LedgerRow, Series)> = None;
    for row in rows {
        if !run.as_ref().is_some_and(|(first, _)| same_kind(first, row)) {
            run = Some((row, series_of(row)));
        }
        let Some((_, series)) = &run else { continue };
        series
            .duration
            .record(row.duration.micros() as f64 / 1_000_000.0);
        series.requests.increment(1);
        record_upstream(row);
    }
}

/// Whether two rows are counted in the same series (see [`SeriesKey`]).
fn same_kind(a: &LedgerRow, b: &LedgerRow) -> bool {
    (&a.method, &a.tool_name, a.status, a.error_code)
        == (&b.method, &b.tool_name, b.status, b.error_code)
}

/// The series `row`'s request is counted in.
fn series_of(row: &LedgerRow) -> Series {
    let method = method_label(&row.method);
    let tool = row.tool_name.as_deref().map(tool_label).unwrap_or_default();
    let key: SeriesKey = (method, tool, row.status, row.error_code);
    let mut series = crate::sync::lock(SERIES.get_or_init(Default::default));
    if series.len() >= MAX_SERIES && !series.contains_key(&key) {
        series.clear();
    }
    let entry = series.entry(key).or_insert_with_key(|(method, tool, status, _)| {
        let error_type = row.error_type().unwrap_or_default();
        Series {
            duration: metrics::histogram!(OPERATION_DURATION, "mcp_method_name" => *method, "gen_ai_tool_name" => *tool, "error_type" => error_type),
            requests: metrics::counter!("steward_requests_total", "mcp_method_name" => *method, "gen_ai_tool_name" => *tool, "status" => status.as_str()),
        }
    });
    entry.clone()
}

/// A session this replica ended (client DELETE, revocation), by how long it lasted.
pub fn record_session_end(connected_at: chrono::DateTime<chrono::Utc>, reason: &'static str) {
    let lifetime = (chrono::Utc::now() - connected_at)
        .to_std()
        .unwrap_or_default();
    record_session_lifetime(lifetime, reason);
}

/// `mcp.server.session.duration`, labelled with why the session ended.
pub fn record_session_lifetime(lifetime: std::time::Duration, reason: &'static str) {
    metrics::histogram!(SESSION_DURATION, "disconnect_reason" => reason)
        .record(lifetime.as_secs_f64());
}

/// Live sessions per client type. A type that has no live session any more reads 0, not its
/// last count.
pub fn record_live_sessions(counts: Vec<(String, i64)>) {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut seen = crate::sync::lock(SEEN.get_or_init(Default::default));
    let current: HashSet<String> = counts.iter().map(|(t, _)| t.clone()).collect();
    for gone in seen.difference(&current) {
        metrics::gauge!("steward_sessions_live", "client_type" => gone.clone()).set(0.0);
    }
    for (client_type, n) in counts {
        seen.insert(client_type.clone());
        metrics::gauge!("steward_sessions_live", "client_type" => client_type).set(n as f64);
    }
}

/// One run of the session lifecycle: `ok`, `skipped` (another replica ran it) or `failed`.
pub fn record_cleanup(outcome: &'static str) {
    metrics::counter!("steward_cleanup_runs_total", "outcome" => outcome).increment(1);
}

/// Resident memory of this process, from `/proc/self/status` (Linux; 0 elsewhere).
pub fn resident_memory_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The exposition text.
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}
