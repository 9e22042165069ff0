//! `mcp_requests`: the request ledger's rows.

use sqlx::QueryBuilder;

use super::{Id, Store, on_pool};
use crate::ledger::entry::LedgerRow;

/// Rows per INSERT statement: 20 columns × 500 rows stays under both engines' bind limits.
pub const MAX_BATCH: usize = 500;

const INSERT: &str = "INSERT INTO mcp_requests (request_id, session_id, jsonrpc_id, method, tool_name, status, \
    error_code, error_message, duration_ms, duration_us, request_bytes, response_bytes, args_tokens, \
    result_tokens, total_tokens, estimated_cost_usd, pricing_model, tokenizer, sanitized, timestamp) ";

impl Store {
    /// Inserts ledger rows in one statement (at most [`MAX_BATCH`]). A row whose `request_id`
    /// is already stored is skipped, so replaying a batch never records a request twice.
    /// Returns the number of rows newly stored.
    pub async fn insert_requests(&self, rows: &[LedgerRow]) -> Result<u64, sqlx::Error> {
        if rows.is_empty() {
            return Ok(0);
        }
        on_pool!(self, pool => {
            let mut query = QueryBuilder::new(INSERT);
            query.push_values(rows, |mut b, row| {
                b.push_bind(Id(row.request_id))
                    .push_bind(&row.session_id)
                    .push_bind(&row.jsonrpc_id)
                    .push_bind(&row.method)
                    .push_bind(&row.tool_name)
                    .push_bind(row.status.as_str())
                    .push_bind(row.error_code)
                    .push_bind(&row.error_message)
                    .push_bind(row.duration.millis())
                    .push_bind(row.duration.micros())
                    .push_bind(row.request_bytes)
                    .push_bind(row.response_bytes)
                    .push_bind(row.args_tokens)
                    .push_bind(row.result_tokens)
                    .push_bind(row.total_tokens)
                    .push_bind(row.estimated_cost_usd)
                    .push_bind(&row.pricing_model)
                    .push_bind(&row.tokenizer)
                    .push_bind(row.sanitized)
                    .push_bind(row.timestamp);
            });
            query.push(" ON CONFLICT (request_id) DO NOTHING");
            query.build().execute(pool).await.map(|r| r.rows_affected())
        })
    }

    /// Number of ledger rows (for health and tests).
    pub async fn count_requests(&self) -> Result<i64, sqlx::Error> {
        on_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM mcp_requests").fetch_one(pool).await)
    }
}
