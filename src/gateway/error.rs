//! Why an upstream did not answer, and the JSON-RPC error the client gets for it: it names the
//! upstream and the cause, and says the board and the other upstreams are not affected.

use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::ErrorCode;

use super::breaker::Refused;
use super::spec::UpstreamName;

/// The JSON-RPC error code of a request whose upstream could not be reached or did not speak
/// MCP (an implementation-defined server error, in JSON-RPC's reserved range).
pub const UPSTREAM_UNAVAILABLE: i32 = -32010;
/// The code of a request the client cancelled (it should not be waiting for the answer).
pub const REQUEST_CANCELLED: i32 = -32800;
/// The code Steward answers a timed-out request with (the ledger records it as `timeout`).
pub const REQUEST_TIMEOUT: i32 = crate::ledger::analyze::REQUEST_TIMEOUT;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot be reached: {0}")]
    Unreachable(String),
    #[error("did not answer within {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    #[error("answered something that is not MCP: {0}")]
    Protocol(String),
    #[error("is not running: {0}")]
    Down(String),
    /// Not sent: the upstream failed too often in a row (see [`super::breaker`]).
    #[error(
        "failed {} times in a row, so its circuit breaker is open: Steward is not calling it for the next {}",
        .0.failures,
        humantime::format_duration(Duration::from_secs(.0.retry_in.as_secs().max(1)))
    )]
    BreakerOpen(Refused),
    /// The client cancelled the request; the upstream was told to stop.
    #[error("was told to stop: the client cancelled the request")]
    Cancelled,
    /// The upstream answered with a JSON-RPC error of its own.
    #[error("{}", .0.message)]
    Rejected(ErrorData),
}

impl UpstreamError {
    /// Whether the upstream itself is unwell (as opposed to refusing this one request).
    pub fn is_outage(&self) -> bool {
        !matches!(self, UpstreamError::Rejected(_) | UpstreamError::Cancelled)
    }

    /// The error the client receives.
    pub fn to_error_data(&self, upstream: &UpstreamName) -> ErrorData {
        let data = Some(serde_json::json!({ "upstream": upstream.as_str() }));
        match self {
            UpstreamError::Rejected(error) => ErrorData::new(
                error.code,
                format!("upstream {upstream}: {}", error.message),
                error.data.clone().or(data),
            ),
            UpstreamError::TimedOut(_) => ErrorData::new(
                ErrorCode(REQUEST_TIMEOUT),
                format!(
                    "upstream {upstream} {self}; Steward stopped waiting (the upstream may still finish the call). The board and the other upstreams are not affected"
                ),
                data,
            ),
            UpstreamError::Cancelled => ErrorData::new(
                ErrorCode(REQUEST_CANCELLED),
                format!("upstream {upstream} {self}"),
                data,
            ),
            UpstreamError::BreakerOpen(refused) => ErrorData::new(
                ErrorCode(UPSTREAM_UNAVAILABLE),
                format!(
                    "upstream {upstream} {self}. The board and the other upstreams are not affected; see /health"
                ),
                Some(serde_json::json!({
                    "upstream": upstream.as_str(),
                    "breaker": "open",
                    "retry_after_ms": u64::try_from(refused.retry_in.as_millis()).unwrap_or(u64::MAX),
                })),
            ),
            _ => ErrorData::new(
                ErrorCode(UPSTREAM_UNAVAILABLE),
                format!(
                    "upstream {upstream} {self}. The board and the other upstreams are not affected; retry once it is back (see /health)"
                ),
                data,
            ),
        }
    }
}
