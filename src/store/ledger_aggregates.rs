//! What a batch of newly stored ledger rows adds to the aggregates kept beside the ledger: its
//! sessions' totals (`mcp_session_totals`) and the hourly statistics (`mcp_request_stats`), in
//! the transaction that stores the rows, after [`LedgerBegin`] took the statistics writers'
//! lock.
//!
//! SQLite runs one statement after another (each is a call into the library). On PostgreSQL
//! each statement is a round trip, and the writer's backend spent about as much CPU on a
//! batch's statements besides `COPY` and `COMMIT` (and the socket waits between them) as on a
//! third of its rows: so the batch takes two statements there, each of one fixed text (the
//! values in arrays, `unnest`ed), prepared once per connection whatever the batch holds:
//!
//! 1. [`TOTALS_TYPES_AND_STATS`] adds the sessions' totals and reads, in the same statement,
//!    the sessions' client types and the stored statistics rows of the batch's hours, methods
//!    and tools for those client types and `unknown` (a superset of the keys the batch
//!    touches: the client types are what decides the keys, and they come back with the rows);
//! 2. [`UPSERT_STATS_ARRAYS`] writes the merged statistics rows back.
//!
//! The merge itself (sums and latency histograms) is the same Rust as on SQLite, and so are the
//! values written: only the number of round trips differs.
//!
//! [`LedgerBegin`]: super::request_stats::LedgerBegin

use std::collections::BTreeSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder, Sqlite, SqliteConnection, Transaction};

use super::request_row::LedgerRow;
use super::request_stats::{
    self as rs, ClientTypes, Hours, ON_CONFLICT_STATS, StatsCell, Sums, UPSERT_STATS,
};
use super::session_totals::{self as st, ON_CONFLICT_TOTALS, UPSERT_TOTALS};
use super::{Stamp, in_list};

/// Adds newly stored ledger rows to their sessions' totals and to the hourly statistics.
pub(crate) trait Aggregates {
    /// `rows`: the rows the transaction stored (a replayed row already stored is not among
    /// them, so nothing is counted twice).
    async fn add_to_aggregates(&mut self, rows: Vec<&LedgerRow>) -> Result<(), sqlx::Error>;
}

impl Aggregates for Transaction<'static, Sqlite> {
    async fn add_to_aggregates(&mut self, rows: Vec<&LedgerRow>) -> Result<(), sqlx::Error> {
        let totals = st::deltas(rows.iter().copied());
        add_to_session_totals(self, &totals).await?;
        // The totals are by session, in order: their ids are the batch's sessions, whose
        // client types the statistics read (collected from the rows again, every row's id was
        // sorted).
        let sessions = totals.iter().map(|(session, _)| *session);
        add_to_stats(self, rows, sessions).await
    }
}

/// SQLite: adds the sessions' `deltas` to their totals, [`st::SESSIONS_PER_UPSERT`] sessions a
/// statement.
async fn add_to_session_totals(
    conn: &mut SqliteConnection,
    deltas: &[(&str, st::Delta)],
) -> Result<(), sqlx::Error> {
    for chunk in deltas.chunks(st::SESSIONS_PER_UPSERT) {
        let mut q = QueryBuilder::new(UPSERT_TOTALS);
        q.push_values(chunk, |mut b, (session, d)| {
            b.push_bind(*session)
                .push_bind(d.requests)
                .push_bind(d.tool_calls)
                .push_bind(d.errors)
                .push_bind(d.tokens)
                .push_bind(d.cost_units)
                .push_bind(Stamp(d.first))
                .push_bind(Stamp(d.last));
        });
        q.push(ON_CONFLICT_TOTALS);
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// SQLite: reads the client types of the rows' `sessions` (each once), then the stored
/// statistics rows of the keys the rows touch, merges the rows into them in Rust and writes
/// them back.
async fn add_to_stats<'a>(
    conn: &mut SqliteConnection,
    rows: Vec<&LedgerRow>,
    sessions: impl ExactSizeIterator<Item = &'a str>,
) -> Result<(), sqlx::Error> {
    let mut client_types = ClientTypes::default();
    if sessions.len() > 0 {
        let sql = "SELECT session_id, client_type FROM mcp_sessions WHERE session_id IN (";
        client_types.extend(
            in_list(sql, sessions, ")")
                .build_query_as::<(String, String)>()
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    let mut deltas = rs::deltas(rows.into_iter(), &client_types);
    let mut q = QueryBuilder::new(rs::SELECT_STATS);
    q.push(" WHERE ");
    for (i, (hour, method, tool, client)) in deltas.keys().enumerate() {
        q.push(if i == 0 { "(hour = " } else { " OR (hour = " });
        q.push_bind(*hour)
            .push(" AND method = ")
            .push_bind(*method)
            .push(" AND tool_name = ")
            .push_bind(*tool)
            .push(" AND client_type = ")
            .push_bind(*client)
            .push(")");
    }
    let stored: Vec<StatsCell> = q.build_query_as().fetch_all(&mut *conn).await?;
    rs::merge_stored(&mut deltas, stored);
    for chunk in deltas.into_iter().collect::<Vec<_>>().chunks(1000) {
        let mut q = QueryBuilder::new(UPSERT_STATS);
        q.push_values(chunk, |mut b, ((hour, method, tool, client), a)| {
            b.push_bind(*hour)
                .push_bind(method)
                .push_bind(tool)
                .push_bind(client)
                .push_bind(a.sums.requests)
                .push_bind(a.sums.errors)
                .push_bind(a.sums.durations.duration_us_total)
                .push_bind(a.sums.durations.duration_us_max)
                .push_bind(a.sums.tokens)
                .push_bind(a.sums.cost_units)
                .push_bind(a.latency.to_text());
        });
        q.push(ON_CONFLICT_STATS);
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Adds the sessions' totals (`$1`..`$8`, one array element per session, as
/// [`st::ON_CONFLICT_TOTALS`] adds them), then answers with the sessions' client types (rows
/// with a `session_id`) and the stored statistics rows (rows without) of the hours, methods and
/// tools `$9`..`$11` whose client type is one of those sessions' or `unknown`. Statistics rows
/// are found through their primary key's first three columns, one index search per key.
static TOTALS_TYPES_AND_STATS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH totals AS ({UPSERT_TOTALS}SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], \
         $4::int8[], $5::int8[], $6::int8[], $7::timestamptz[], $8::timestamptz[]){ON_CONFLICT_TOTALS}), \
         types AS (SELECT session_id, client_type FROM mcp_sessions WHERE session_id = ANY($1::text[])) \
         SELECT session_id, client_type, NULL::timestamptz AS hour, NULL::text AS method, \
         NULL::text AS tool_name, NULL::int8 AS requests, NULL::int8 AS errors, \
         NULL::int8 AS duration_us_total, NULL::int8 AS duration_us_max, NULL::int8 AS tokens, \
         NULL::int8 AS cost_units, NULL::text AS latency FROM types \
         UNION ALL \
         SELECT NULL, s.client_type, s.hour, s.method, s.tool_name, s.requests, s.errors, \
         s.duration_us_total, s.duration_us_max, s.tokens, s.cost_units, s.latency \
         FROM unnest($9::timestamptz[], $10::text[], $11::text[]) AS k(hour, method, tool_name) \
         JOIN mcp_request_stats s ON s.hour = k.hour AND s.method = k.method AND s.tool_name = k.tool_name \
         WHERE s.client_type = 'unknown' OR s.client_type IN (SELECT client_type FROM types)"
    )
});

/// Writes statistics rows back (`$1`..`$11`, one array element per row, in
/// [`UPSERT_STATS`]'s column order), each replacing the stored row it was merged with.
static UPSERT_STATS_ARRAYS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{UPSERT_STATS}SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], \
         $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::text[]){ON_CONFLICT_STATS}"
    )
});

/// A row of [`TOTALS_TYPES_AND_STATS`]: a session's client type, or a stored statistics row.
#[derive(sqlx::FromRow)]
struct Found {
    session_id: Option<String>,
    client_type: String,
    hour: Option<DateTime<Utc>>,
    method: Option<String>,
    tool_name: Option<String>,
    requests: Option<i64>,
    errors: Option<i64>,
    duration_us_total: Option<i64>,
    duration_us_max: Option<i64>,
    tokens: Option<i64>,
    cost_units: Option<i64>,
    latency: Option<String>,
}

impl Found {
    /// A statistics row (`None` for a session's client type).
    fn cell(self) -> Option<StatsCell> {
        Some(StatsCell {
            hour: self.hour?,
            method: self.method?,
            tool_name: self.tool_name?,
            client_type: self.client_type,
            sums: Sums {
                requests: self.requests?,
                errors: self.errors?,
                durations: rs::Durations {
                    duration_us_total: self.duration_us_total?,
                    duration_us_max: self.duration_us_max?,
                },
                tokens: self.tokens?,
                cost_units: self.cost_units?,
            },
            latency: self.latency?,
        })
    }
}

/// The distinct (hour, method, tool) of `rows`, keyed as [`rs::deltas`] keys them.
fn hour_method_tool<'a>(rows: &[&'a LedgerRow]) -> BTreeSet<(DateTime<Utc>, &'a str, &'a str)> {
    let mut hours = Hours::default();
    let mut keys = BTreeSet::new();
    // A batch's rows mostly repeat the key before them: that one is not looked up again
    // (collected, every row's key was sorted).
    let mut last = None;
    for row in rows {
        let tool = row.tool_name.as_deref().unwrap_or_default();
        let key = (hours.of(row.timestamp), row.method.as_str(), tool);
        if last != Some(key) {
            keys.insert(key);
            last = Some(key);
        }
    }
    keys
}

impl Aggregates for Transaction<'static, Postgres> {
    async fn add_to_aggregates(&mut self, rows: Vec<&LedgerRow>) -> Result<(), sqlx::Error> {
        let totals = st::deltas(rows.iter().copied());
        let mut sessions = Vec::with_capacity(totals.len());
        let mut counts: [Vec<i64>; 5] = Default::default();
        let (mut firsts, mut lasts) = (Vec::new(), Vec::new());
        for (session, d) in &totals {
            sessions.push(*session);
            let values = [d.requests, d.tool_calls, d.errors, d.tokens, d.cost_units];
            for (column, value) in counts.iter_mut().zip(values) {
                column.push(value);
            }
            firsts.push(d.first);
            lasts.push(d.last);
        }
        let keys = hour_method_tool(&rows);
        let [requests, tool_calls, errors, tokens, cost_units] = counts;
        let found: Vec<Found> = sqlx::query_as(TOTALS_TYPES_AND_STATS.as_str())
            .bind(&sessions)
            .bind(requests)
            .bind(tool_calls)
            .bind(errors)
            .bind(tokens)
            .bind(cost_units)
            .bind(firsts)
            .bind(lasts)
            .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
            .fetch_all(&mut **self)
            .await?;
        let mut client_types = ClientTypes::default();
        let mut stored = Vec::new();
        for row in found {
            match row.session_id {
                Some(session) => {
                    client_types.insert(session, row.client_type);
                }
                None => stored.extend(row.cell()),
            }
        }
        let mut deltas = rs::deltas(rows.into_iter(), &client_types);
        rs::merge_stored(&mut deltas, stored);
        let n = deltas.len();
        let (mut hours, mut methods, mut tools, mut clients) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut sums: [Vec<i64>; 6] = Default::default();
        let mut latencies = Vec::with_capacity(n);
        for ((hour, method, tool, client), a) in &deltas {
            hours.push(*hour);
            methods.push(*method);
            tools.push(*tool);
            clients.push(*client);
            let s = &a.sums;
            let values = [
                s.requests,
                s.errors,
                s.durations.duration_us_total,
                s.durations.duration_us_max,
                s.tokens,
                s.cost_units,
            ];
            for (column, value) in sums.iter_mut().zip(values) {
                column.push(value);
            }
            latencies.push(a.latency.to_text());
        }
        let [requests, errors, total, max, tokens, cost_units] = sums;
        sqlx::query(UPSERT_STATS_ARRAYS.as_str())
            .bind(hours)
            .bind(methods)
            .bind(tools)
            .bind(clients)
            .bind(requests)
            .bind(errors)
            .bind(total)
            .bind(max)
            .bind(tokens)
            .bind(cost_units)
            .bind(latencies)
            .execute(&mut **self)
            .await?;
        Ok(())
    }
}
