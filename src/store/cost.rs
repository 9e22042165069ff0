//! Estimated cost and tokens over time and by client: per hour and per client type from the
//! hourly aggregates (`mcp_request_stats`, which outlive retention), per client name from the
//! ledger rows themselves (the aggregates do not key on it).

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::request_row::FAILED_SQL;
use super::{Store, on_pool};

/// One hour's or one client's sums (money as integer units of 1e-10 USD).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct CostSums {
    pub requests: i64,
    pub errors: i64,
    pub tokens: i64,
    pub cost_units: i64,
}

impl std::ops::AddAssign<&CostSums> for CostSums {
    fn add_assign(&mut self, other: &CostSums) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.tokens += other.tokens;
        self.cost_units += other.cost_units;
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CostHour {
    pub hour: DateTime<Utc>,
    #[sqlx(flatten)]
    pub sums: CostSums,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientCost {
    /// `unknown` for a client that gave no name (or a row of no known session).
    pub client_name: String,
    pub client_type: String,
    #[sqlx(flatten)]
    pub sums: CostSums,
}

/// What [`Store::period_cost`] finds for a period.
#[derive(Debug, Clone)]
pub struct PeriodCost {
    pub hours: Vec<CostHour>,
    /// Each with `client_name` `""`: the hourly aggregates do not key on it.
    pub client_types: Vec<ClientCost>,
    pub client_names: Vec<ClientCost>,
}

const SUMS: &str = "CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(errors) AS BIGINT) AS errors, \
                    CAST(SUM(tokens) AS BIGINT) AS tokens, CAST(SUM(cost_units) AS BIGINT) AS cost_units";

impl Store {
    /// The rows `sql` selects for the period `[from, to)`, bound as `$1` and `$2`.
    pub(crate) async fn rows_in_period<T>(
        &self,
        sql: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        on_pool!(self, pool => sqlx::query_as::<_, T>(sql).bind(from).bind(to).fetch_all(pool).await)
    }

    /// The sums of the period `[from, to)`: per whole hour that had requests (oldest first)
    /// and per client type (as `client_name` `""`) from the hourly aggregates; per client name
    /// (and type) from the ledger rows, one pass over the period's rows through the time index.
    pub async fn period_cost(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<PeriodCost, sqlx::Error> {
        let hours = format!(
            "SELECT hour, {SUMS} FROM mcp_request_stats WHERE hour >= $1 AND hour < $2 GROUP BY hour ORDER BY hour"
        );
        let client_types = format!(
            "SELECT '' AS client_name, client_type, {SUMS} FROM mcp_request_stats \
             WHERE hour >= $1 AND hour < $2 GROUP BY client_type"
        );
        let client_names = format!(
            "SELECT COALESCE(s.client_name, 'unknown') AS client_name, COALESCE(s.client_type, 'unknown') AS client_type, \
             COUNT(*) AS requests, \
             CAST(SUM(CASE WHEN {FAILED_SQL} THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
             CAST(COALESCE(SUM(r.total_tokens), 0) AS BIGINT) AS tokens, \
             CAST(COALESCE({cost}, 0) AS BIGINT) AS cost_units \
             FROM mcp_requests r LEFT JOIN mcp_sessions s ON s.session_id = r.session_id \
             WHERE r.timestamp >= $1 AND r.timestamp < $2 GROUP BY 1, 2",
            cost = self.sum_cost_units("r.estimated_cost_usd"),
        );
        Ok(PeriodCost {
            hours: self.rows_in_period(&hours, from, to).await?,
            client_types: self.rows_in_period(&client_types, from, to).await?,
            client_names: self.rows_in_period(&client_names, from, to).await?,
        })
    }
}
