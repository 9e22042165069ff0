//! `GET /api/upstreams`: each upstream of gateway mode as the operator needs to see it. Counts,
//! errors, latency percentiles, sessions re-established and the last error come from the
//! ledger (so they survive restarts and cover every replica); up/down, the breaker and child
//! restarts are this replica's live view ([`crate::gateway::status`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiError, ApiQuery, bad_request, parse_time};
use crate::gateway::Gateway;
use crate::gateway::status::UpstreamReport;
use crate::stats::{percentile_ms, round2};
use crate::store::Store;
use crate::store::upstream_calls::{MAX_CALLS, UpstreamCall};

/// What `/api/upstreams` reads: the ledger and, when Steward runs as a gateway, the live state.
#[derive(Clone)]
pub struct UpstreamsState {
    pub store: Store,
    pub gateway: Option<Arc<Gateway>>,
}

#[derive(Debug, Deserialize)]
pub struct UpstreamsQuery {
    /// RFC 3339 time or a duration back from now; default 24h.
    since: Option<String>,
}

/// Nearest-rank percentiles, in milliseconds.
#[derive(Debug, Default, Serialize)]
struct Latency {
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

impl Latency {
    fn of(mut micros: Vec<i64>) -> Self {
        micros.sort_unstable();
        let at = |p| round2(percentile_ms(&micros, p));
        Latency {
            p50_ms: at(50.0),
            p95_ms: at(95.0),
            p99_ms: at(99.0),
        }
    }
}

/// The most recent failure, and where Steward learned of it.
#[derive(Debug, Serialize)]
struct LastError {
    message: String,
    at: Option<DateTime<Utc>>,
    /// `ledger` (a request that failed) or `live` (this replica's last contact).
    source: &'static str,
}

/// One upstream's calls in the window, from the ledger.
#[derive(Debug, Default)]
struct Calls {
    calls: u64,
    /// `error` and `timeout`: the upstream did not answer.
    errors: u64,
    /// `tool_error`: the upstream answered that its tool failed.
    tool_errors: u64,
    upstream_us: Vec<i64>,
    total_us: Vec<i64>,
    last_error: Option<(String, DateTime<Utc>)>,
    last_call_at: Option<DateTime<Utc>>,
}

impl Calls {
    /// Adds one call; `calls` come newest first, so the first error seen is the last one.
    fn add(&mut self, call: UpstreamCall) {
        self.calls += 1;
        self.last_call_at.get_or_insert(call.timestamp);
        match call.status.as_str() {
            "error" | "timeout" => {
                self.errors += 1;
                if self.last_error.is_none() {
                    let message = call.error_message.unwrap_or_else(|| call.status.clone());
                    self.last_error = Some((message, call.timestamp));
                }
            }
            "tool_error" => self.tool_errors += 1,
            _ => {}
        }
        self.upstream_us.extend(call.upstream_us);
        self.total_us.push(call.duration_us);
    }
}

/// One upstream in `/api/upstreams`.
#[derive(Debug, Serialize)]
struct UpstreamView {
    name: String,
    /// Whether this server runs with it (`false`: known only from the ledger).
    configured: bool,
    /// `http` or `stdio`; `None` when not configured here.
    transport: Option<&'static str>,
    /// The URL without credentials or query, or `stdio:COMMAND` without arguments or environment.
    location: Option<String>,
    /// `up`, `down` or `unknown` (no contact yet, or not configured here).
    state: crate::gateway::status::State,
    since: Option<DateTime<Utc>>,
    breaker: Option<crate::gateway::breaker::BreakerState>,
    breaker_opened: u64,
    short_circuited: u64,
    /// Cancellations and answers to the upstream's requests this replica could not deliver.
    undelivered: u64,
    /// Calls parked for a 2026-07-28 client's input that it never resumed (this replica).
    abandoned: u64,
    /// Calls refused because as many were parked for clients' input as allowed (this replica).
    parking_refused: u64,
    /// Requests sent on its GET stream for a call that ended before its client was asked,
    /// answered with an error (this replica).
    orphaned: u64,
    timeout_ms: Option<u64>,
    calls: u64,
    errors: u64,
    tool_errors: u64,
    /// The upstream's share of each call.
    upstream_latency: Latency,
    /// Each call as the client saw it (the upstream's share plus Steward's own overhead).
    total_latency: Latency,
    /// Sessions re-established after the upstream forgot them (it restarted), every replica.
    sessions_reestablished: i64,
    /// Times this replica started a stdio upstream's process again (`None` for HTTP).
    child_restarts: Option<u64>,
    last_error: Option<LastError>,
    last_call_at: Option<DateTime<Utc>>,
}

fn view(
    name: String,
    live: Option<&UpstreamReport>,
    calls: Calls,
    reestablished: i64,
) -> UpstreamView {
    let from_ledger = calls
        .last_error
        .map(|(message, at)| (message, Some(at), "ledger"));
    let from_live = live.and_then(|l| Some((l.last_error.clone()?, l.since, "live")));
    // The newer of the two; a live error with no time loses to a dated ledger row.
    let last_error = match (from_ledger, from_live) {
        (Some(ledger), Some(live)) if live.1 > ledger.1 => Some(live),
        (ledger, live) => ledger.or(live),
    }
    .map(|(message, at, source)| LastError {
        message,
        at,
        source,
    });
    UpstreamView {
        name,
        configured: live.is_some(),
        transport: live.map(|l| l.transport),
        location: live.map(|l| l.location.clone()),
        state: live.map(|l| l.state.clone()).unwrap_or_default(),
        since: live.and_then(|l| l.since),
        breaker: live.map(|l| l.breaker),
        breaker_opened: live.map_or(0, |l| l.breaker_opened),
        short_circuited: live.map_or(0, |l| l.short_circuited),
        undelivered: live.map_or(0, |l| l.undelivered),
        abandoned: live.map_or(0, |l| l.abandoned),
        parking_refused: live.map_or(0, |l| l.parking_refused),
        orphaned: live.map_or(0, |l| l.orphaned),
        timeout_ms: live.map(|l| l.timeout_ms),
        calls: calls.calls,
        errors: calls.errors,
        tool_errors: calls.tool_errors,
        upstream_latency: Latency::of(calls.upstream_us),
        total_latency: Latency::of(calls.total_us),
        sessions_reestablished: reestablished,
        child_restarts: live.filter(|l| l.transport == "stdio").map(|l| l.restarts),
        last_error,
        last_call_at: calls.last_call_at,
    }
}

/// `GET /api/upstreams?since=24h`: every configured upstream, and every one the ledger or the
/// upstream sessions name (an upstream removed from the configuration, or another replica's).
pub async fn list_upstreams(
    State(UpstreamsState { store, gateway }): State<UpstreamsState>,
    ApiQuery(q): ApiQuery<UpstreamsQuery>,
) -> Result<Response, ApiError> {
    let since = parse_time("since", q.since.as_deref().unwrap_or("24h")).map_err(bad_request)?;
    let rows = store.upstream_calls(since).await?;
    let capped = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= MAX_CALLS;
    let reestablished: BTreeMap<String, i64> = store
        .upstream_sessions_reestablished()
        .await?
        .into_iter()
        .collect();
    let reports = gateway.as_ref().map(|g| g.report()).unwrap_or_default();
    let mut calls: BTreeMap<String, Calls> = BTreeMap::new();
    for report in &reports {
        calls.entry(report.name.clone()).or_default();
    }
    for name in reestablished.keys() {
        calls.entry(name.clone()).or_default();
    }
    for row in rows {
        calls.entry(row.upstream.clone()).or_default().add(row);
    }
    // Configured ones first, in configuration order; then the others by name.
    let mut upstreams = Vec::with_capacity(calls.len());
    for report in &reports {
        if let Some(c) = calls.remove(&report.name) {
            let again = reestablished.get(&report.name).copied().unwrap_or(0);
            upstreams.push(view(report.name.clone(), Some(report), c, again));
        }
    }
    for (name, c) in calls {
        let again = reestablished.get(&name).copied().unwrap_or(0);
        upstreams.push(view(name, None, c, again));
    }
    Ok(axum::Json(json!({
        "gateway": gateway.is_some(),
        "since": since,
        "upstreams": upstreams,
        "calls_capped": capped.then_some(MAX_CALLS),
        "note": "calls, errors, latencies and last errors from the ledger since `since`; state, breaker and child restarts are this replica's live view",
    }))
    .into_response())
}
