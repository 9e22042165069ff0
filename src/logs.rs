//! Logging: to stderr (stdout belongs to the stdio transport), as text for people or as JSON
//! lines for log pipelines (`--log-format json`). `STEWARD_LOG` or `RUST_LOG` set the filter,
//! default [`DEFAULT_FILTER`].

use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (with `message`).
    Json,
}

/// Steward's own lines at info; rmcp's service loop only from error: at info it logs the whole
/// `InitializeRequestParams` of every session (and every notification), which floods an
/// assistant's MCP log, and at warn every error answered to a client with the client's id and
/// method name uncut (a client's mistakes are in the ledger, not warnings).
/// `STEWARD_LOG=info,rmcp=info` brings them back. PostgreSQL's notices only from warn: every
/// start, and every CLI command, runs the migrations, whose `IF NOT EXISTS` each answer a
/// NOTICE ("relation \"_sqlx_migrations\" already exists, skipping") that says nothing wrong.
pub const DEFAULT_FILTER: &str = "info,rmcp::service=error,sqlx::postgres::notice=warn";

impl LogFormat {
    /// Every format, by the name flags and the config file use.
    pub const NAMES: [(&str, LogFormat); 2] =
        [("text", LogFormat::Text), ("json", LogFormat::Json)];
}

/// Installs the process-wide subscriber.
pub fn init(format: LogFormat) {
    let filter = std::env::var("STEWARD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| DEFAULT_FILTER.to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// The error of something that runs again and again (a periodic job, a kind of write), kept
/// for health views until it next succeeds. A job failing on every tick would flood the log, so
/// the caller logs only what these methods return: each new error text once, and the first
/// success after one (the log lines keep the caller's module as their target). Serialised as
/// the message or `null`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LastError(Option<String>);

impl LastError {
    /// The kept error, if the last run failed.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Keeps `message`; returns it when it is not the error kept already (to be logged).
    pub fn failed(&mut self, message: String) -> Option<&str> {
        let new = self.get() != Some(&message);
        self.0 = Some(message);
        if new { self.get() } else { None }
    }

    /// Clears the kept error; returns whether there was one (a recovery, to be logged).
    pub fn succeeded(&mut self) -> bool {
        self.0.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::LastError;

    #[test]
    fn last_error_is_kept_until_a_success() {
        let mut last = LastError::default();
        assert_eq!(last.failed("disk full".into()), Some("disk full"));
        assert_eq!(last.failed("disk full".into()), None, "logged once");
        assert_eq!(last.get(), Some("disk full"));
        assert_eq!(serde_json::to_string(&last).unwrap(), r#""disk full""#);
        assert!(last.succeeded());
        assert!(!last.succeeded(), "a recovery is logged once");
        assert_eq!(last.get(), None);
        assert_eq!(serde_json::to_string(&last).unwrap(), "null");
    }
}
