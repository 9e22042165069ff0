//! What each session cost, from the ledger: requests, errors, estimated tokens and cost, and
//! when its first and last request came. `mcp_session_totals` keeps them per session (migration
//! 0021): every ledger write adds its newly stored rows in the same transaction, and retention's
//! pruning takes its rows out again, so a page of sessions reads its totals by primary key.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::request_row::{LedgerRow, Status};
use super::request_stats::{cost_units, money_from_units, sum_by_key};
use super::sessions::SessionRow;
use super::{Money, Store, on_pool};

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

/// The totals of a page of sessions (`session_id IN (`, the ids, `)`).
pub(crate) const SELECT_TOTALS: &str = "SELECT session_id, requests, errors, tokens, cost_units, \
    first_request_at, last_request_at FROM mcp_session_totals WHERE session_id IN (";

/// What some ledger rows of one session add to (or, pruned, take from) its totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delta {
    pub requests: i64,
    pub tool_calls: i64,
    pub errors: i64,
    pub tokens: i64,
    pub cost_units: i64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

impl Delta {
    /// A ledger row's part.
    pub(crate) fn of(row: &LedgerRow) -> Delta {
        Delta {
            requests: 1,
            tool_calls: i64::from(row.method == "tools/call"),
            errors: i64::from(is_error(row.status)),
            tokens: i64::from(row.total_tokens.unwrap_or(0)),
            cost_units: row.estimated_cost_usd.map_or(0, cost_units),
            first: row.timestamp,
            last: row.timestamp,
        }
    }

    /// Saturating, like the statistics' sums (`Sums::merge`).
    fn add(&mut self, other: &Delta) {
        self.requests = self.requests.saturating_add(other.requests);
        self.tool_calls = self.tool_calls.saturating_add(other.tool_calls);
        self.errors = self.errors.saturating_add(other.errors);
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.cost_units = self.cost_units.saturating_add(other.cost_units);
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
    }
}

/// Whether a row counts among its session's errors (`cancelled` is the client's choice).
fn is_error(status: Status) -> bool {
    matches!(status, Status::Error | Status::ToolError | Status::Timeout)
}

/// Rows' deltas summed by session, in session id order.
pub(crate) fn by_session<'a>(
    rows: impl IntoIterator<Item = (&'a str, Delta)>,
) -> Vec<(&'a str, Delta)> {
    let mut sums: BTreeMap<&str, Delta> = BTreeMap::new();
    sum_by_key(&mut sums, rows, |delta| delta, |sum, delta| sum.add(&delta));
    sums.into_iter().collect()
}

/// Ledger rows' deltas by session (a row of no session counts nowhere).
pub(crate) fn deltas<'a>(rows: impl IntoIterator<Item = &'a LedgerRow>) -> Vec<(&'a str, Delta)> {
    by_session(
        rows.into_iter()
            .filter_map(|row| Some((row.session_id.as_deref()?, Delta::of(row)))),
    )
}

pub(crate) const UPSERT_TOTALS: &str = "INSERT INTO mcp_session_totals (session_id, requests, \
    tool_calls, errors, tokens, cost_units, first_request_at, last_request_at) ";
/// `column = stored + added`, stopping at `i64::MAX` as [`Delta::add`] does: an overflowing `+`
/// is a REAL that SQLite's STRICT column refuses and an error on PostgreSQL, and the failed
/// batch would fail again at every retry. The sums are never negative, so `MAX - stored` is too.
macro_rules! saturating_sum {
    ($column:literal) => {
        concat!(
            $column,
            " = CASE WHEN excluded.",
            $column,
            " > 9223372036854775807 - mcp_session_totals.",
            $column,
            " THEN 9223372036854775807 ELSE mcp_session_totals.",
            $column,
            " + excluded.",
            $column,
            " END, "
        )
    };
}

pub(crate) const ON_CONFLICT_TOTALS: &str = concat!(
    " ON CONFLICT (session_id) DO UPDATE SET ",
    saturating_sum!("requests"),
    saturating_sum!("tool_calls"),
    saturating_sum!("errors"),
    saturating_sum!("tokens"),
    saturating_sum!("cost_units"),
    "first_request_at = CASE WHEN excluded.first_request_at < mcp_session_totals.first_request_at \
        THEN excluded.first_request_at ELSE mcp_session_totals.first_request_at END, \
    last_request_at = CASE WHEN excluded.last_request_at > mcp_session_totals.last_request_at \
        THEN excluded.last_request_at ELSE mcp_session_totals.last_request_at END"
);

/// Sessions per upsert: 8 values each, within both engines' bind limits.
pub(crate) const SESSIONS_PER_UPSERT: usize = 1000;

/// Takes pruned rows' deltas out of a session's totals (`$1`; the delta `$2..$6`). `$7` is the
/// newest pruned row's time: every row left is at least as new, so a session that keeps rows
/// finds its new first request from there (through the time index on SQLite). A session left
/// with none loses its totals row ([`DROP_EMPTY_TOTALS`]).
pub(crate) const SUBTRACT_TOTALS: &str = "UPDATE mcp_session_totals SET requests = requests - $2, \
    tool_calls = tool_calls - $3, errors = errors - $4, tokens = tokens - $5, \
    cost_units = cost_units - $6, first_request_at = COALESCE((SELECT r.timestamp FROM mcp_requests r \
        WHERE r.session_id = $1 AND r.timestamp >= $7 AND r.timestamp <= mcp_session_totals.last_request_at \
        ORDER BY r.timestamp LIMIT 1), first_request_at) \
    WHERE session_id = $1";
pub(crate) const DROP_EMPTY_TOTALS: &str =
    "DELETE FROM mcp_session_totals WHERE session_id = $1 AND requests <= 0";

impl Store {
    /// When a session's first and last ledger rows are, from its totals: every row of the session
    /// lies within them (the totals are written in the transaction that stores or prunes its
    /// rows). `None` when the session has no totals row, i.e. no ledger rows.
    pub(crate) async fn session_span(
        &self,
        session_id: &str,
    ) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, sqlx::Error> {
        let sql = "SELECT first_request_at, last_request_at FROM mcp_session_totals WHERE session_id = $1";
        on_pool!(self, pool => sqlx::query_as(sql).bind(session_id).fetch_optional(pool).await)
    }

    /// Totals of the sessions `ids`, by session id; a session with no ledger rows is absent.
    pub async fn session_totals(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, SessionTotals>, sqlx::Error> {
        let mut totals = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let rows: Vec<TotalsRow> = on_pool!(self, pool => {
                super::in_list(SELECT_TOTALS, chunk, ")")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A session's rows whose costs stop at the largest units (an absurd price) sum to the
    /// largest total, not a wrapped negative one, and do not panic.
    #[test]
    fn a_session_s_sums_stop_at_the_largest_value() {
        let row = LedgerRow {
            session_id: Some("s".into()),
            total_tokens: Some(i32::MAX),
            estimated_cost_usd: Some("922337203.6854775807".parse().unwrap()),
            ..LedgerRow::default()
        };
        let rows = [row.clone(), row.clone(), row];
        let summed = deltas(&rows);
        let [(session, sum)] = summed.as_slice() else {
            panic!("one session expected, got {summed:?}");
        };
        assert_eq!(*session, "s");
        assert_eq!(sum.requests, 3);
        assert_eq!(sum.cost_units, i64::MAX);
        assert_eq!(sum.tokens, 3 * i64::from(i32::MAX));
    }

    /// Rows of sessions in runs and interleaved are summed per session as one by one: every
    /// count, the cost's units and the first and last times.
    #[test]
    fn deltas_sum_each_session_s_rows_however_they_interleave() {
        let start = DateTime::from_timestamp(1_764_979_200, 0).unwrap();
        let sessions = ["b", "b", "a", "b", "c", "c", "a", "a", "b", "c"];
        let rows: Vec<LedgerRow> = sessions
            .iter()
            .enumerate()
            .map(|(n, session)| LedgerRow {
                session_id: Some(session.to_string()),
                method: if n % 3 == 0 {
                    "tools/call"
                } else {
                    "tools/list"
                }
                .into(),
                status: if n % 4 == 0 {
                    Status::Timeout
                } else {
                    Status::Success
                },
                total_tokens: Some(n as i32 * 10),
                estimated_cost_usd: Some(format!("0.000{n}").parse().unwrap()),
                // Not in time order, so the first and last are not the run's ends.
                timestamp: start + chrono::Duration::seconds((n as i64 * 7) % 5),
                ..LedgerRow::default()
            })
            .chain(std::iter::once(LedgerRow::default()))
            .collect();
        let summed = deltas(&rows);
        let sessions: Vec<&str> = summed.iter().map(|(session, _)| *session).collect();
        assert_eq!(sessions, ["a", "b", "c"]);
        for (session, sum) in summed {
            let mine: Vec<&LedgerRow> = rows
                .iter()
                .filter(|r| r.session_id.as_deref() == Some(session))
                .collect();
            let times = mine.iter().map(|r| r.timestamp);
            let expected = Delta {
                requests: mine.len() as i64,
                tool_calls: mine.iter().filter(|r| r.method == "tools/call").count() as i64,
                errors: mine.iter().filter(|r| is_error(r.status)).count() as i64,
                tokens: mine
                    .iter()
                    .map(|r| i64::from(r.total_tokens.unwrap_or(0)))
                    .sum(),
                cost_units: mine
                    .iter()
                    .filter_map(|r| r.estimated_cost_usd)
                    .map(cost_units)
                    .sum(),
                first: times.clone().min().unwrap(),
                last: times.max().unwrap(),
            };
            assert_eq!(sum, expected, "{session}");
        }
    }
}
