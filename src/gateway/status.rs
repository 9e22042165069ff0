//! How each upstream is doing, from what Steward last saw of it: for `/health` and `/metrics`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::breaker::BreakerState;
use crate::sync::lock;

/// Up or down as of the last contact; `unknown` before the first.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Unknown,
    Up,
    Down,
}

#[derive(Debug, Default)]
pub struct UpstreamStatus {
    state: Mutex<(State, Option<DateTime<Utc>>, Option<String>)>,
    pub calls: AtomicU64,
    /// Of `calls`, the `tools/call`s answered in front of rmcp (see `mcp::raw`).
    pub direct: AtomicU64,
    pub failures: AtomicU64,
    /// Sessions the upstream forgot (it restarted) and Steward initialized again.
    pub reinitialized: AtomicU64,
    /// Times a stdio upstream's process was started again after it ended.
    pub restarts: AtomicU64,
    /// Messages to the upstream that nobody waits on (a cancellation, the client's answer to
    /// the upstream's request) that could not be delivered.
    pub undelivered: AtomicU64,
    /// Calls parked for a 2026-07-28 client's input that it never resumed.
    pub abandoned: AtomicU64,
    /// Calls that would have been parked for a 2026-07-28 client's input past the limits.
    pub parking_refused: AtomicU64,
    /// Requests the upstream sent outside a 2026-07-28 client's call's stream, handed to that
    /// call, that it ended without asking its client: each answered with an error.
    pub orphaned: AtomicU64,
}

/// One upstream in `/health`.
#[derive(Debug, Serialize)]
pub struct UpstreamReport {
    pub name: String,
    pub transport: &'static str,
    pub location: String,
    pub state: State,
    pub since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub calls: u64,
    /// Of `calls`, the tool calls of session-era clients answered without rmcp's session
    /// machinery (the upstream's result passed on as it sent it).
    pub calls_direct: u64,
    pub failures: u64,
    pub sessions_reinitialized: u64,
    pub restarts: u64,
    /// Cancellations and answers to the upstream's requests that could not be delivered.
    pub undelivered: u64,
    /// Calls parked for a 2026-07-28 client's input (sampling, elicitation, roots the
    /// upstream asked for) that the client never resumed; each was cancelled upstream.
    pub abandoned: u64,
    /// Calls whose upstream asked a 2026-07-28 client for input when that client's session
    /// (or Steward as a whole) already had as many calls parked as it may: each answered with
    /// an error and cancelled upstream.
    pub parking_refused: u64,
    /// Requests the upstream sent on its GET stream for a 2026-07-28 client's call that ended
    /// (answered, failed, given up) before its client was asked: each answered with an error
    /// saying so, so the upstream does not wait for an answer that never comes.
    pub orphaned: u64,
    /// `closed`, `open` (calls fail at once) or `half_open` (the next call is a probe).
    pub breaker: BreakerState,
    /// Times the breaker opened.
    pub breaker_opened: u64,
    /// Calls answered at once with an error because the breaker was open.
    pub short_circuited: u64,
    pub timeout_ms: u64,
}

impl UpstreamStatus {
    pub fn up(&self) {
        let mut state = lock(&self.state);
        if state.0 != State::Up {
            *state = (State::Up, Some(Utc::now()), None);
        }
    }

    pub fn down(&self, cause: String) {
        let mut state = lock(&self.state);
        let since = match state.0 {
            State::Down => state.1,
            _ => Some(Utc::now()),
        };
        *state = (State::Down, since, Some(cause));
    }

    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The state, when it began, and the last error.
    pub fn state(&self) -> (State, Option<DateTime<Utc>>, Option<String>) {
        lock(&self.state).clone()
    }

    pub fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
