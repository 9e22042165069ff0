//! What each session cost, from the ledger: requests, errors, estimated tokens and cost, and
//! when its first and last request came, for a page of sessions in one grouped query.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::request_stats::money_from_units;
use super::sessions::SessionRow;
use super::{Money, Store, on_pool};

/// Statuses that count as errors in a session's totals (`cancelled` is the client's choice).
const ERROR_STATUSES: &str = "('error', 'tool_error', 'timeout')";

/// Bound parameters per statement: a page of sessions is at most a few hundred ids.
const IDS_PER_QUERY: usize = 500;

/// A session's totals over its ledger rows (rows pruned by retention no longer count).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SessionTotals {
    pub requests: i64,
    /// Requests whose status is `error`, `tool_error` or `timeout`.
    pub errors: i64,
    /// Sum of the rows' `total_tokens`.
    pub estimated_tokens: i64,
    /// Sum of the rows' `estimated_cost_usd`, exact.
    pub estimated_cost_usd: Money,
    pub first_request_at: Option<DateTime<Utc>>,
    pub last_request_at: Option<DateTime<Utc>>,
}

/// A session row with its totals, as `/api/sessions` and `steward sessions` show it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionWithTotals {
    #[serde(flatten)]
    pub session: SessionRow,
    pub totals: SessionTotals,
}

#[derive(sqlx::FromRow)]
struct TotalsRow {
    session_id: String,
    requests: i64,
    errors: i64,
    tokens: i64,
    cost_units: i64,
    first_request_at: Option<DateTime<Utc>>,
    last_request_at: Option<DateTime<Utc>>,
}

impl From<TotalsRow> for SessionTotals {
    fn from(r: TotalsRow) -> Self {
        SessionTotals {
            requests: r.requests,
            errors: r.errors,
            estimated_tokens: r.tokens,
            estimated_cost_usd: money_from_units(r.cost_units).stored(),
            first_request_at: r.first_request_at,
            last_request_at: r.last_request_at,
        }
    }
}

impl Store {
    /// Totals of the sessions `ids`, by session id; a session with no ledger rows is absent.
    pub async fn session_totals(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, SessionTotals>, sqlx::Error> {
        let head = format!(
            "SELECT session_id, COUNT(*) AS requests, \
             CAST(COALESCE(SUM(CASE WHEN status IN {ERROR_STATUSES} THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
             CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT) AS tokens, \
             CAST(COALESCE({cost}, 0) AS BIGINT) AS cost_units, \
             MIN(timestamp) AS first_request_at, MAX(timestamp) AS last_request_at \
             FROM mcp_requests WHERE session_id IN (",
            cost = self.sum_cost_units("estimated_cost_usd"),
        );
        let mut totals = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let rows: Vec<TotalsRow> = on_pool!(self, pool => {
                super::in_list(&head, chunk, ") GROUP BY session_id")
                    .build_query_as::<TotalsRow>().fetch_all(pool).await?
            });
            totals.extend(rows.into_iter().map(|r| (r.session_id.clone(), r.into())));
        }
        Ok(totals)
    }

    /// `sessions` with their totals, in the same order.
    pub async fn with_totals(
        &self,
        sessions: Vec<SessionRow>,
    ) -> Result<Vec<SessionWithTotals>, sqlx::Error> {
        let ids: Vec<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
        let mut totals = self.session_totals(&ids).await?;
        Ok(sessions
            .into_iter()
            .map(|session| SessionWithTotals {
                totals: totals.remove(&session.session_id).unwrap_or_default(),
                session,
            })
            .collect())
    }
}
