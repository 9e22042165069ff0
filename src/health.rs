//! What is wrong with the server, one line a problem: `/health`, `/api/sessions/health` and
//! `health_check` report the same list.

use crate::ledger::LedgerReport;
use crate::resources::expiry::SweepReport;
use crate::sessions::SessionReport;

/// What is wrong with the sessions, their cleanup job, the ledger and the lease sweep, one line
/// each (empty when all is well). `/health` and `/api/sessions/health` report the same list.
pub fn problems(
    sessions: &SessionReport,
    ledger: &LedgerReport,
    sweep: &SweepReport,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(error) = &sessions.last_error {
        problems.push(format!("sessions: {error}"));
    }
    if let Some(error) = sessions.cleanup.as_ref().and_then(|run| run.error.as_ref()) {
        problems.push(format!("cleanup: last run failed: {error}"));
    }
    if let Some(error) = ledger.retention.last_error.get() {
        problems.push(format!("ledger retention: {error}"));
    }
    if let Some(error) = sweep.last_error.get() {
        problems.push(format!(
            "lease sweep: last run failed ({} failures since start): {error}",
            sweep.failures
        ));
    }
    if let Some(reason) = &ledger.reason {
        problems.push(format!(
            "ledger: {reason} ({} requests waiting)",
            ledger.pending
        ));
    }
    problems
}
