//! Direct database access for what the bench cannot do over MCP quickly: inserting 100,000
//! stored sessions, and counting the ledger's rows afterwards.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::types::Json;
use sqlx::{PgPool, QueryBuilder, SqlitePool};

use crate::server::{BenchDb, Engine};

/// Rows per multi-row INSERT (11 bound values each: well under both engines' limits).
const BATCH: usize = 1_000;

pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    pub async fn open(db: &BenchDb) -> Result<Pool> {
        Ok(match db.engine {
            Engine::Sqlite => {
                let opts =
                    SqliteConnectOptions::from_str(&db.url)?.busy_timeout(Duration::from_secs(10));
                Pool::Sqlite(
                    sqlx::pool::PoolOptions::new()
                        .max_connections(1)
                        .connect_with(opts)
                        .await
                        .with_context(|| format!("opening {}", db.url))?,
                )
            }
            Engine::Postgres => Pool::Postgres(
                sqlx::pool::PoolOptions::new()
                    .max_connections(1)
                    .connect(&db.url)
                    .await
                    .with_context(|| format!("opening {}", db.url))?,
            ),
        })
    }

    pub async fn close(self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    /// Inserts `n` active session rows with recent activity, as an `initialize` would have
    /// left them. Ids are 64 hex characters like Steward's, unique per bench run.
    pub async fn insert_sessions(&self, n: usize, tag: u64) -> Result<Vec<String>> {
        let now = Utc::now();
        let params = json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"}
        });
        let caps = json!({});
        let ids: Vec<String> = (0..n as u64)
            .map(|i| format!("{tag:016x}{:048x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        for (b, chunk) in ids.chunks(BATCH).enumerate() {
            let rows: Vec<(&str, DateTime<Utc>)> = chunk
                .iter()
                .enumerate()
                .map(|(j, id)| {
                    // spread over the last two minutes: recent, so not idle or timed out
                    let age = ((b * BATCH + j) % 120) as i64;
                    (id.as_str(), now - chrono::Duration::seconds(age))
                })
                .collect();
            macro_rules! insert {
                ($db:ty, $pool:expr) => {{
                    let mut q = QueryBuilder::<$db>::new(
                        "INSERT INTO mcp_sessions (session_id, kind, protocol_version, client_name, \
                         client_version, client_type, client_capabilities, initialize_params, status, \
                         connected_at, last_activity) ",
                    );
                    q.push_values(&rows, |mut r, (id, at)| {
                        r.push_bind(*id)
                            .push_bind("session")
                            .push_bind("2025-11-25")
                            .push_bind("bench")
                            .push_bind("1")
                            .push_bind("unknown")
                            .push_bind(Json(&caps))
                            .push_bind(Json(&params))
                            .push_bind("active")
                            .push_bind(*at)
                            .push_bind(*at);
                    });
                    q.build().execute($pool).await?;
                }};
            }
            match self {
                Pool::Sqlite(p) => insert!(sqlx::Sqlite, p),
                Pool::Postgres(p) => insert!(sqlx::Postgres, p),
            }
        }
        Ok(ids)
    }

    /// Ledger rows by method.
    pub async fn ledger_counts(&self) -> Result<Value> {
        let sql = "SELECT method, COUNT(*) AS n FROM mcp_requests GROUP BY method ORDER BY method";
        let rows: Vec<(String, i64)> = match self {
            Pool::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await?,
            Pool::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await?,
        };
        Ok(Value::Object(
            rows.into_iter().map(|(m, n)| (m, Value::from(n))).collect(),
        ))
    }

    /// The mean response bytes and result tokens of the ledger's `tools/call` rows.
    pub async fn tool_call_sizes(&self) -> Result<(f64, f64)> {
        let sql = "SELECT CAST(AVG(response_bytes) AS DOUBLE PRECISION), \
                   CAST(AVG(result_tokens) AS DOUBLE PRECISION) \
                   FROM mcp_requests WHERE method = 'tools/call'";
        let sizes: (Option<f64>, Option<f64>) = match self {
            Pool::Sqlite(p) => sqlx::query_as(sql).fetch_one(p).await?,
            Pool::Postgres(p) => sqlx::query_as(sql).fetch_one(p).await?,
        };
        Ok((sizes.0.unwrap_or(0.0), sizes.1.unwrap_or(0.0)))
    }

    pub async fn count_sessions(&self) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM mcp_sessions";
        Ok(match self {
            Pool::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
            Pool::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
        })
    }
}
