//! One row of the `mcp_requests` ledger, as written and as kept in the spill file. The types
//! make the seed's bug impossible: durations are integer microseconds from a monotonic clock
//! ([`Micros`]), money is an exact decimal ([`Money`]).

use std::borrow::Cow;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Money;

/// A duration in whole microseconds, measured with a monotonic clock. There is no way to
/// build one from a float, and both stored columns (`duration_ms`, `duration_us`) are integers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Micros(u64);

impl Micros {
    /// Time elapsed since `start`.
    pub fn since(start: Instant) -> Self {
        Micros(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    pub fn from_micros(us: u64) -> Self {
        Micros(us)
    }

    /// For `duration_us`.
    pub fn micros(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    /// For `duration_ms`: whole milliseconds, rounded down.
    pub fn millis(self) -> i64 {
        self.micros() / 1000
    }
}

/// Final status of a request, as stored in `mcp_requests.status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Success,
    /// A JSON-RPC error (or a transport rejection).
    Error,
    /// The tool ran and reported failure (`isError: true`): not a success.
    ToolError,
    Cancelled,
    Timeout,
    /// Answered with a 2026-07-28 `InputRequiredResult`: the server asks the client for input
    /// first, and the client's retry (a request of its own, with its own row) completes the
    /// call. Neither done nor failed.
    InputRequired,
}

/// [`Status::failed`] in SQL, of `mcp_requests` as `r`.
pub const FAILED_SQL: &str = "r.status <> 'success' AND r.status <> 'input_required'";

impl Status {
    const ALL: [Status; 6] = [
        Status::Success,
        Status::Error,
        Status::ToolError,
        Status::Cancelled,
        Status::Timeout,
        Status::InputRequired,
    ];

    /// Whether it counts as an error in the statistics: anything but a success, or a call
    /// that asked for input (it goes on in the client's retry, whose row says how it ended).
    pub fn failed(self) -> bool {
        !matches!(self, Status::Success | Status::InputRequired)
    }

    /// The status stored as `text`, if it names one.
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
            Status::ToolError => "tool_error",
            Status::Cancelled => "cancelled",
            Status::Timeout => "timeout",
            Status::InputRequired => "input_required",
        }
    }
}

/// One row of `mcp_requests`, as written and as read back (see [`super::request_columns`] for
/// its columns). Serialisable so it can wait in the spill file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerRow {
    pub request_id: Uuid,
    pub session_id: Option<String>,
    pub jsonrpc_id: Option<String>,
    pub method: String,
    pub tool_name: Option<String>,
    pub status: Status,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
    pub duration: Micros,
    pub request_bytes: i64,
    pub response_bytes: i64,
    pub args_tokens: Option<i32>,
    pub result_tokens: Option<i32>,
    pub total_tokens: Option<i32>,
    pub estimated_cost_usd: Option<Money>,
    pub pricing_model: Option<String>,
    /// The tokenizer's name: a constant on every row the ledger writes (borrowed, not copied).
    pub tokenizer: Option<Cow<'static, str>>,
    /// Text was altered so the database would take the row (e.g. U+0000 replaced).
    pub sanitized: bool,
    pub timestamp: DateTime<Utc>,
    /// The server that answered for Steward, when Steward passed the request on (gateway mode).
    #[serde(default)]
    pub upstream: Option<UpstreamHop>,
    /// What the request concerned, as the layer that served it named it (the board's tools
    /// name a task): an opaque id, stored in `subject_id`.
    #[serde(default)]
    pub subject: Option<Uuid>,
    /// For trace export only; not a column of `mcp_requests`.
    #[serde(default)]
    pub trace: TraceContext,
}

/// A request Steward passed on to another server: which one, the tool as that server knows it,
/// and how long that server took (its share of the row's duration; the rest is Steward's own).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamHop {
    pub upstream: String,
    pub tool: Option<String>,
    pub duration: Micros,
}

/// What a trace exporter needs beyond the stored columns: the protocol revision and the W3C
/// trace context a client sent in `params._meta`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceContext {
    pub protocol_version: Option<String>,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl LedgerRow {
    /// The bytes it holds: its own size and its text's.
    pub fn held_bytes(&self) -> u64 {
        let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
        let hop = self
            .upstream
            .as_ref()
            .map_or(0, |h| h.upstream.len() + text(&h.tool));
        let trace = &self.trace;
        let texts = self.method.len()
            + [
                &self.session_id,
                &self.jsonrpc_id,
                &self.tool_name,
                &self.error_message,
                &self.pricing_model,
                &trace.protocol_version,
                &trace.traceparent,
                &trace.tracestate,
            ]
            .into_iter()
            .map(text)
            .sum::<usize>();
        (std::mem::size_of::<LedgerRow>() + texts + hop) as u64
    }

    /// OpenTelemetry's `error.type`: `tool_error` for a tool that reported failure, the
    /// JSON-RPC error code of a protocol error (`_OTHER` without one), `timeout`/`cancelled`.
    pub fn error_type(&self) -> Option<String> {
        match self.status {
            Status::Success | Status::InputRequired => None,
            Status::ToolError => Some("tool_error".into()),
            Status::Error => Some(
                self.error_code
                    .map_or_else(|| "_OTHER".to_string(), |c| c.to_string()),
            ),
            other => Some(other.as_str().to_string()),
        }
    }

    /// Replaces characters no engine can store (U+0000 in PostgreSQL text) and caps very long
    /// text, flagging the row. The rest of the row is untouched: nothing is dropped.
    pub fn sanitize(&mut self) {
        const MAX_TEXT: usize = 4096;
        let mut changed = false;
        let mut fix = |text: &mut String| {
            // One pass without an early exit (vector code): a row's texts are short, and the
            // `char` search's set-up cost more than the search.
            if text.bytes().fold(false, |nul, b| nul | (b == 0)) {
                *text = text.replace('\0', "\u{FFFD}");
                changed = true;
            }
            if text.len() > MAX_TEXT {
                let cut = (0..=MAX_TEXT)
                    .rev()
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                text.truncate(cut);
                changed = true;
            }
        };
        fix(&mut self.method);
        for field in [
            &mut self.session_id,
            &mut self.jsonrpc_id,
            &mut self.tool_name,
            &mut self.error_message,
            &mut self.pricing_model,
        ]
        .into_iter()
        .flatten()
        .chain(
            self.upstream
                .iter_mut()
                .flat_map(|hop| std::iter::once(&mut hop.upstream).chain(hop.tool.as_mut())),
        ) {
            fix(field);
        }
        self.sanitized |= changed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_are_integers_in_both_units() {
        let d = Micros::from_micros(12_345);
        assert_eq!((d.micros(), d.millis()), (12_345, 12));
        assert_eq!(Micros::from_micros(999).millis(), 0);
    }

    #[test]
    fn sanitize_replaces_nul_and_flags_the_row() {
        let mut row = LedgerRow {
            jsonrpc_id: Some("1".into()),
            method: "tools/call".into(),
            tool_name: Some("a\0b".into()),
            status: Status::Error,
            error_message: Some("x".repeat(10_000)),
            ..LedgerRow::default()
        };
        row.sanitize();
        assert_eq!(row.tool_name.as_deref(), Some("a\u{FFFD}b"));
        assert_eq!(row.error_message.as_ref().map(String::len), Some(4096));
        assert!(row.sanitized);
        // A NUL anywhere in a text, past a vector's width too; a clean row is left unflagged.
        let session = format!("{}\0", "s".repeat(40));
        let mut row = LedgerRow {
            session_id: Some(session),
            method: "tools/call".into(),
            ..LedgerRow::default()
        };
        row.sanitize();
        assert_eq!(row.session_id, Some(format!("{}\u{FFFD}", "s".repeat(40))));
        assert!(row.sanitized);
        let mut clean = LedgerRow {
            session_id: Some("s".repeat(41)),
            method: "tools/call".into(),
            ..LedgerRow::default()
        };
        clean.sanitize();
        assert!(!clean.sanitized);
    }
}
