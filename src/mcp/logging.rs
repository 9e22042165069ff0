//! `notifications/message`: log lines a client asked to see. Session-era clients choose a
//! threshold with `logging/setLevel`; 2026-07-28 requests carry it in
//! `_meta["io.modelcontextprotocol/logLevel"]`, and a request without it gets no log lines.
// rmcp marks logging deprecated (SEP-2577) but every revision up to 2026-07-28 still has it.
#![allow(deprecated)]

use std::sync::Mutex;

use rmcp::RoleServer;
use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam, ProtocolVersion};
use rmcp::service::RequestContext;
use serde_json::Value;

use crate::sync::lock;

/// Name in the `logger` field of every message.
const LOGGER: &str = "steward";

/// One connection's logging threshold.
#[derive(Debug, Default)]
pub struct ClientLog {
    level: Mutex<Option<LoggingLevel>>,
}

impl ClientLog {
    pub fn set_level(&self, level: LoggingLevel) {
        *lock(&self.level) = Some(level);
    }

    /// The lowest level this request's client wants, or `None` for no log lines at all.
    pub fn threshold(&self, request: &RequestContext<RoleServer>) -> Option<LoggingLevel> {
        if let Some(level) = request.meta.log_level() {
            return Some(level);
        }
        if is_stateless(request) {
            return None;
        }
        // Until the client picks a level, info and above: what a person watching wants.
        Some(lock(&self.level).unwrap_or(LoggingLevel::Info))
    }

    /// Sends `data` at `level` when the client wants it. A client that went away is not an
    /// error for the tool that logged.
    pub async fn log(
        &self,
        request: &RequestContext<RoleServer>,
        level: LoggingLevel,
        data: Value,
    ) {
        let Some(threshold) = self.threshold(request) else {
            return;
        };
        if severity(level) < severity(threshold) {
            return;
        }
        let message = LoggingMessageNotificationParam::new(level, data).with_logger(LOGGER);
        if let Err(error) = request.peer.notify_logging_message(message).await {
            tracing::debug!(%error, "could not send a log message to the client");
        }
    }
}

/// A 2026-07-28 request: no session, everything the server needs is in the request.
pub fn is_stateless(request: &RequestContext<RoleServer>) -> bool {
    request
        .meta
        .protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

/// RFC 5424 order, lowest first.
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_follow_rfc_5424() {
        assert!(severity(LoggingLevel::Debug) < severity(LoggingLevel::Info));
        assert!(severity(LoggingLevel::Warning) < severity(LoggingLevel::Emergency));
    }
}
