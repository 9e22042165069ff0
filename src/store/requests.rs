//! `mcp_requests`: the request ledger's rows.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sqlx::{Arguments, Database, Transaction};

use super::ledger_aggregates::Aggregates;
use super::ledger_copy::BulkLoad;
use super::request_stats::{Durations, LedgerBegin, stored};
use super::session_totals;
use super::{Id, Money, Stamp, Store, WritePool, on_pool};
pub use crate::store::request_columns::RequestRecord;
use crate::store::request_columns::{COLUMN_COUNT, Column, Shape, Slot};
use crate::store::request_row::LedgerRow;

/// Rows per call of [`Store::insert_requests`] (one transaction).
pub const MAX_BATCH: usize = 500;

/// Rows per INSERT statement, largest first. A batch is cut into statements of these sizes
/// only, so each is prepared once per connection and then reused from the statement cache:
/// preparing a statement with a different number of rows every time (thousands of
/// placeholders) cost more than the rows themselves. Every power of two up to the largest, so a
/// batch's tail takes at most one statement of each size (each execution costs a round trip to
/// sqlx's SQLite thread). No larger than 32 rows: a prepared statement's memory grows with its
/// rows, and the writer's connection keeps every size of both shapes prepared (BENCHMARKS.md,
/// branch `mem6`).
const CHUNKS: [usize; 6] = [32, 16, 8, 4, 2, 1];
const _: () = assert!(CHUNKS[0] * COLUMN_COUNT < 32_766);

/// The INSERT for a chunk of `rows` rows (one of [`CHUNKS`]) of this `shape`, reading back the
/// stored ids or not. Built once: writing out thousands of placeholders for every chunk cost a
/// tenth of the ledger's work per row. PostgreSQL numbers its placeholders (`$1`); SQLite gets
/// plain `?`, because it finds a numbered parameter's name by walking a list (sqlx asks for
/// every parameter's name at every execution: quadratic in the thousands of parameters).
fn insert_sql(
    rows: usize,
    shape: Shape,
    returning: bool,
    numbered: bool,
) -> Result<&'static str, sqlx::Error> {
    static SQL: LazyLock<Vec<[[String; 4]; 2]>> = LazyLock::new(|| {
        CHUNKS
            .iter()
            .map(|&rows| [Shape::Full, Shape::Lean].map(|shape| statements(rows, shape)))
            .collect()
    });
    let size = CHUNKS
        .iter()
        .position(|&n| n == rows)
        .ok_or_else(|| sqlx::Error::Protocol(format!("no ledger INSERT for {rows} rows")))?;
    let variant = usize::from(!returning) * 2 + usize::from(numbered);
    Ok(&SQL[size][usize::from(shape == Shape::Lean)][variant])
}

/// The INSERTs of `rows` rows of `shape`: with `RETURNING` (`?`, then `$n` placeholders),
/// then without.
///
/// SQLite's (`?`) is `INSERT OR FAIL`: a statement of several rows whose constraints may
/// *abort* it makes SQLite open a statement journal and copy every page the statement first
/// changes into it, so the statement can be undone alone (~500 instructions a row, BENCHMARKS.md,
/// branch `ledger12`). The ledger never keeps part of a batch: any error ends the transaction,
/// which is rolled back whole, so undoing one statement alone buys nothing. A row already
/// stored is still skipped (`ON CONFLICT ... DO NOTHING` decides for that constraint).
fn statements(rows: usize, shape: Shape) -> [String; 4] {
    let build = |numbered: bool| {
        let verb = if numbered { "INSERT" } else { "INSERT OR FAIL" };
        let mut sql = format!("{verb} INTO mcp_requests ({}) VALUES ", shape.column_list());
        let mut bound = 0;
        for row in 0..rows {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            let listed = shape.slots().iter().filter(|slot| **slot != Slot::Left);
            for (column, slot) in listed.enumerate() {
                if column > 0 {
                    sql.push_str(", ");
                }
                match (slot, numbered) {
                    (Slot::Written(value), _) => sql.push_str(value),
                    (_, true) => {
                        bound += 1;
                        sql.push_str(&format!("${bound}"));
                    }
                    (_, false) => sql.push('?'),
                }
            }
            sql.push(')');
        }
        sql.push_str(" ON CONFLICT (request_id) DO NOTHING");
        sql
    };
    let (plain, numbered) = (build(false), build(true));
    let returning = |sql: &str| format!("{sql} RETURNING request_id");
    [returning(&plain), returning(&numbered), plain, numbered]
}

/// The argument list for a chunk of ledger rows: each row's values of the columns `shape`
/// binds, in [`LedgerRow::columns`]'s order, text borrowed from the rows. Built directly with
/// room for all of them: binding one value at a time through `Query::bind` moves the query and
/// regrows the list at every value.
macro_rules! row_arguments {
    ($tx:expr, $rows:expr, $shape:expr) => {{
        let rows: &[LedgerRow] = $rows;
        let shape: Shape = $shape;
        let mut args = arguments_for(&$tx, rows.len() * shape.width());
        let mut add_rows = || -> Result<(), sqlx::error::BoxDynError> {
            for row in rows {
                for ((_, value), bound) in row.columns().into_iter().zip(shape.bound()) {
                    if !bound {
                        continue;
                    }
                    match value {
                        Column::Id(v) => args.add(v.map(Id))?,
                        Column::Text(v) => args.add(v)?,
                        Column::Int(v) => args.add(v)?,
                        Column::BigInt(v) => args.add(v)?,
                        Column::Money(v) => args.add(v)?,
                        Column::Flag(v) => args.add(v)?,
                        Column::Time(v) => args.add(Stamp(v))?,
                    }
                }
            }
            Ok(())
        };
        add_rows().map(|()| args).map_err(sqlx::Error::Encode)
    }};
}

/// An empty argument list for `tx`'s engine, with room for `values` values.
fn arguments_for<'q, DB: Database>(_tx: &Transaction<'_, DB>, values: usize) -> DB::Arguments<'q> {
    let mut args = DB::Arguments::default();
    args.reserve(values, values * 8);
    args
}

/// Cuts `rows` into statement-sized chunks (see [`CHUNKS`]).
fn chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = CHUNKS.into_iter().find(|size| rows.len() >= *size)?;
        let (chunk, rest) = rows.split_at(size);
        rows = rest;
        Some(chunk)
    })
}

/// The ids of `offered` fresh rows, once the database reports `stored` of them stored: all, or
/// some were there already and the transaction must not count them (see
/// [`Store::insert_new_requests`]).
fn fresh_ids(
    offered: &[LedgerRow],
    stored: u64,
) -> Result<impl Iterator<Item = Id> + '_, sqlx::Error> {
    if stored != offered.len() as u64 {
        return Err(sqlx::Error::Protocol(format!(
            "{} of {} new ledger rows were already stored; storing them again with duplicates skipped",
            offered.len() as u64 - stored,
            offered.len(),
        )));
    }
    Ok(offered.iter().map(|r| Id(r.request_id)))
}

impl Store {
    /// Inserts ledger rows (at most [`MAX_BATCH`]) and adds them to the hourly statistics, in
    /// one transaction. A row whose `request_id` is already stored is skipped, so replaying a
    /// batch never records (or counts) a request twice. Returns the number of rows newly stored.
    pub async fn insert_requests(&self, rows: &[LedgerRow]) -> Result<u64, sqlx::Error> {
        self.insert_rows(rows, false).await
    }

    /// [`Store::insert_requests`] for rows never offered to the database before (fresh request
    /// ids): none can be stored already, so the statements need not report which rows they
    /// stored. Should one be there all the same, the transaction is refused and nothing is
    /// written; [`Store::insert_requests`] then stores the rest.
    pub async fn insert_new_requests(&self, rows: &[LedgerRow]) -> Result<u64, sqlx::Error> {
        self.insert_rows(rows, true).await
    }

    async fn insert_rows(&self, rows: &[LedgerRow], all_new: bool) -> Result<u64, sqlx::Error> {
        if rows.is_empty() {
            return Ok(0);
        }
        let numbered = matches!(self, Store::Postgres(_));
        on_pool!(self, pool => {
            // With the statistics lock taken first, so every writer takes the locks in the same
            // order.
            let mut tx = pool.begin_ledger().await?;
            let mut ids: Vec<Id> = Vec::with_capacity(rows.len());
            let loaded = match all_new {
                true => tx.bulk_load(rows).await?,
                false => None,
            };
            if let Some(stored) = loaded {
                ids.extend(fresh_ids(rows, stored)?);
            }
            for chunk in chunks(rows).filter(|_| loaded.is_none()) {
                let shape = Shape::of(chunk);
                let args = row_arguments!(tx, chunk, shape)?;
                if all_new {
                    // Reading back every stored id costs a result row per row.
                    let sql = insert_sql(chunk.len(), shape, false, numbered)?;
                    let stored = sqlx::query_with(sql, args).execute(&mut *tx).await?;
                    ids.extend(fresh_ids(chunk, stored.rows_affected())?);
                } else {
                    let sql = insert_sql(chunk.len(), shape, true, numbered)?;
                    let query = sqlx::query_scalar_with::<_, Id, _>(sql, args);
                    ids.extend(query.fetch_all(&mut *tx).await?);
                }
            }
            if !ids.is_empty() {
                tx.add_to_aggregates(stored(rows, &ids)).await?;
            }
            tx.commit().await?;
            Ok(ids.len() as u64)
        })
    }

    /// Number of ledger rows (for health and tests).
    pub async fn count_requests(&self) -> Result<i64, sqlx::Error> {
        on_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM mcp_requests").fetch_one(pool).await)
    }
}

/// One hourly rollup row.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Rollup {
    pub requests: i64,
    #[sqlx(flatten)]
    pub durations: Durations,
    pub args_tokens: i64,
    pub result_tokens: i64,
    pub estimated_cost_usd: Money,
}

type RollupKey = (DateTime<Utc>, String, String, String);

impl Rollup {
    fn add(&mut self, row: &LedgerRow) {
        self.requests += 1;
        self.durations.merge(Durations::of(row.duration.micros()));
        self.args_tokens += i64::from(row.args_tokens.unwrap_or(0));
        self.result_tokens += i64::from(row.result_tokens.unwrap_or(0));
        self.estimated_cost_usd += row.estimated_cost_usd.unwrap_or_default();
    }

    fn merge(&mut self, other: &Rollup) {
        self.requests += other.requests;
        self.durations.merge(other.durations);
        self.args_tokens += other.args_tokens;
        self.result_tokens += other.result_tokens;
        self.estimated_cost_usd += other.estimated_cost_usd;
    }
}

fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(chrono::Duration::hours(1)).unwrap_or(t)
}

impl Store {
    /// Folds up to `batch` ledger rows older than `before` into hourly rollups and deletes
    /// them, in one transaction (so a row is either in the ledger or in a rollup, never
    /// neither or both). Sums are exact: money is added as decimals in Rust on both engines.
    /// Returns the number of rows pruned.
    pub async fn prune_requests(
        &self,
        before: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, sqlx::Error> {
        let select = "SELECT * FROM mcp_requests WHERE timestamp < $1 ORDER BY timestamp LIMIT $2";
        let existing = "SELECT requests, duration_us_total, duration_us_max, args_tokens, result_tokens, \
                        estimated_cost_usd FROM mcp_request_rollups \
                        WHERE hour = $1 AND method = $2 AND tool_name = $3 AND status = $4";
        let upsert = "INSERT INTO mcp_request_rollups (hour, method, tool_name, status, requests, \
                      duration_us_total, duration_us_max, args_tokens, result_tokens, estimated_cost_usd) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                      ON CONFLICT (hour, method, tool_name, status) DO UPDATE SET requests = excluded.requests, \
                      duration_us_total = excluded.duration_us_total, duration_us_max = excluded.duration_us_max, \
                      args_tokens = excluded.args_tokens, result_tokens = excluded.result_tokens, \
                      estimated_cost_usd = excluded.estimated_cost_usd";
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let rows = sqlx::query_as::<_, RequestRecord>(select).bind(before).bind(batch).fetch_all(&mut *tx).await?;
            if rows.is_empty() {
                return Ok(0);
            }
            let mut groups: HashMap<RollupKey, Rollup> = HashMap::new();
            for row in rows.iter().map(|r| &r.0) {
                let key = (hour_of(row.timestamp), row.method.clone(), row.tool_name.clone().unwrap_or_default(), row.status.as_str().to_string());
                groups.entry(key).or_default().add(row);
            }
            for ((hour, method, tool, status), mut rollup) in groups {
                let old = sqlx::query_as::<_, Rollup>(existing)
                    .bind(hour).bind(&method).bind(&tool).bind(&status)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(old) = old {
                    rollup.merge(&old);
                }
                sqlx::query(upsert)
                    .bind(hour).bind(&method).bind(&tool).bind(&status)
                    .bind(rollup.requests)
                    .bind(rollup.durations.duration_us_total)
                    .bind(rollup.durations.duration_us_max)
                    .bind(rollup.args_tokens)
                    .bind(rollup.result_tokens)
                    .bind(rollup.estimated_cost_usd)
                    .execute(&mut *tx)
                    .await?;
            }
            let sql = "DELETE FROM mcp_requests WHERE request_id IN (";
            let deleted = super::in_list(sql, rows.iter().map(|row| Id(row.request_id)), ")")
                .build().execute(&mut *tx).await?.rows_affected();
            // Rows come oldest first: every row left is at least as new as the last one.
            let newest = rows.last().map_or(before, |row| row.timestamp);
            // What the pruned rows take from their sessions' totals: what writing them added.
            for (session, d) in session_totals::deltas(rows.iter().map(|r| &r.0)) {
                sqlx::query(session_totals::SUBTRACT_TOTALS)
                    .bind(session).bind(d.requests).bind(d.tool_calls).bind(d.errors)
                    .bind(d.tokens).bind(d.cost_units).bind(Stamp(newest))
                    .execute(&mut *tx).await?;
                sqlx::query(session_totals::DROP_EMPTY_TOTALS).bind(session).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(deleted)
        })
    }
}

/// A stored rollup with its key (for statistics and tests).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RollupRow {
    pub hour: DateTime<Utc>,
    pub method: String,
    pub tool_name: String,
    pub status: String,
    #[sqlx(flatten)]
    pub rollup: Rollup,
}

impl Store {
    /// Every hourly rollup, oldest first.
    pub async fn request_rollups(&self) -> Result<Vec<RollupRow>, sqlx::Error> {
        let sql = "SELECT * FROM mcp_request_rollups ORDER BY hour, method, tool_name, status";
        on_pool!(self, pool => sqlx::query_as::<_, RollupRow>(sql).fetch_all(pool).await)
    }
}

/// Which ledger rows to list; every `Some` narrows the result.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub session_id: Option<String>,
    pub tool_name: Option<String>,
    pub method: Option<String>,
    pub status: Option<String>,
    /// Rows at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Rows before this time.
    pub until: Option<DateTime<Utc>>,
    /// Text to find (case-insensitive for ASCII) in the method, tool, error message or session id.
    pub text: Option<String>,
    /// Only rows of sessions whose client announced this name (`mcp_sessions.client_name`).
    pub client_name: Option<String>,
}

/// The filter's condition; it takes `$1..$8` (see [`bind_filter`]). The time range is always
/// bound (open ends as [`super::end_of_time`] and co.) so the index serves it on SQLite too.
/// The text pattern is bound inside an expression: SQLite plans a statement with a bare
/// parameter right of `LIKE` for the parameter's value and so prepares it again on every
/// binding.
const FILTER: &str = "($1 IS NULL OR session_id = $1) AND ($2 IS NULL OR tool_name = $2) \
    AND ($3 IS NULL OR method = $3) AND ($4 IS NULL OR status = $4) AND timestamp >= $5 AND timestamp < $6 \
    AND ($7 IS NULL OR LOWER(method || ' ' || COALESCE(tool_name, '') || ' ' || COALESCE(error_message, '') \
    || ' ' || COALESCE(session_id, '')) LIKE ($7 || '') ESCAPE '\\') \
    AND ($8 IS NULL OR session_id IN (SELECT s.session_id FROM mcp_sessions s WHERE s.client_name = $8))";

/// One page of [`FILTER`]'s matches: the filter takes $1..$8, the page $9 (limit) and $10 (offset).
fn list_sql() -> String {
    format!(
        "SELECT * FROM mcp_requests WHERE {FILTER} ORDER BY timestamp DESC, request_id LIMIT $9 OFFSET $10"
    )
}

/// The number of [`FILTER`]'s matches.
fn count_sql() -> String {
    format!("SELECT COUNT(*) FROM mcp_requests WHERE {FILTER}")
}

/// Binds a [`RequestFilter`] as `$1..$8` of [`FILTER`] (the same on both engines' queries).
macro_rules! bind_filter {
    ($query:expr, $filter:expr, $pattern:expr) => {
        $query
            .bind(&$filter.session_id)
            .bind(&$filter.tool_name)
            .bind(&$filter.method)
            .bind(&$filter.status)
            .bind(
                $filter
                    .since
                    .unwrap_or_else(crate::store::beginning_of_time),
            )
            .bind($filter.until.unwrap_or_else(crate::store::end_of_time))
            .bind($pattern)
            .bind(&$filter.client_name)
    };
}

/// Where an export stopped: the last row sent, in (timestamp, request id) order.
#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    pub timestamp: DateTime<Utc>,
    pub request_id: Id,
}

/// `filter` with its time range narrowed to `span`, the first and last request of its session:
/// no row of the session lies outside it, and neither engine indexes the ledger by session, so
/// the time index then reads the session's lifetime only, not the whole ledger.
fn narrowed_to(filter: &RequestFilter, span: (DateTime<Utc>, DateTime<Utc>)) -> RequestFilter {
    let (first, last) = span;
    // `until` excludes its instant; the session's last row is included.
    let end = last.checked_add_signed(TimeDelta::microseconds(1));
    RequestFilter {
        since: Some(filter.since.map_or(first, |since| since.max(first))),
        until: match (filter.until, end) {
            (Some(until), Some(end)) => Some(until.min(end)),
            (until, end) => until.or(end),
        },
        ..filter.clone()
    }
}

impl Store {
    /// [`narrowed_to`] the span of the filter's session, when it names one with ledger rows.
    /// A session without totals is left as asked: its listing finds what is there, if slowly.
    async fn within_session<'f>(
        &self,
        filter: &'f RequestFilter,
    ) -> Result<Cow<'f, RequestFilter>, sqlx::Error> {
        let Some(session) = filter.session_id.as_deref() else {
            return Ok(Cow::Borrowed(filter));
        };
        Ok(match self.session_span(session).await? {
            Some(span) => Cow::Owned(narrowed_to(filter, span)),
            None => Cow::Borrowed(filter),
        })
    }

    /// Ledger rows, newest first, with the total number of matches.
    pub async fn list_requests(
        &self,
        filter: &RequestFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<RequestRecord>, i64), sqlx::Error> {
        let filter = &*self.within_session(filter).await?;
        let (list, count) = (list_sql(), count_sql());
        let pattern = filter.text.as_deref().map(super::like_pattern);
        on_pool!(self, pool => {
            let rows = bind_filter!(sqlx::query_as::<_, RequestRecord>(&list), filter, &pattern)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let total: i64 = bind_filter!(sqlx::query_scalar(&count), filter, &pattern)
                .fetch_one(pool)
                .await?;
            Ok((rows, total))
        })
    }

    /// One page of an export: up to `limit` matching rows after `after`, newest first, by
    /// keyset (timestamp, request id) so each page costs the same however deep the export is.
    pub async fn export_requests_page(
        &self,
        filter: &RequestFilter,
        after: Option<Cursor>,
        limit: i64,
    ) -> Result<Vec<RequestRecord>, sqlx::Error> {
        // `timestamp <= $9` bounds the index range; the rest breaks ties at the cursor's instant.
        let sql = format!(
            "SELECT * FROM mcp_requests WHERE {FILTER} AND timestamp <= $9 \
             AND (timestamp < $9 OR request_id < $10) ORDER BY timestamp DESC, request_id DESC LIMIT $11"
        );
        let after = after.unwrap_or(Cursor {
            timestamp: super::end_of_time(),
            request_id: Id(uuid::Uuid::max()),
        });
        let filter = &*self.within_session(filter).await?;
        let pattern = filter.text.as_deref().map(super::like_pattern);
        on_pool!(self, pool => bind_filter!(sqlx::query_as::<_, RequestRecord>(&sql), filter, &pattern)
            .bind(after.timestamp)
            .bind(after.request_id)
            .bind(limit)
            .fetch_all(pool)
            .await)
    }

    /// Ledger rows since `since` whose session id names no known session.
    pub async fn orphan_requests_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<RequestRecord>, sqlx::Error> {
        let sql = "SELECT * FROM mcp_requests r WHERE r.timestamp >= $1 AND r.session_id IS NOT NULL \
                   AND NOT EXISTS (SELECT 1 FROM mcp_sessions s WHERE s.session_id = r.session_id)";
        on_pool!(self, pool => sqlx::query_as::<_, RequestRecord>(sql).bind(since).fetch_all(pool).await)
    }
}

/// What statistics need of one ledger row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StatRow {
    pub method: String,
    pub tool_name: Option<String>,
    pub status: String,
    pub duration_us: i64,
    pub total_tokens: Option<i32>,
    pub estimated_cost_usd: Option<Money>,
    pub client_type: Option<String>,
    pub timestamp: DateTime<Utc>,
}

impl Store {
    /// Rows since `since` and before `until` (at most `limit`, newest first) with their
    /// session's client type.
    pub async fn stat_rows(
        &self,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<StatRow>, sqlx::Error> {
        let sql = "SELECT r.method, r.tool_name, r.status, r.duration_us, r.total_tokens, r.estimated_cost_usd, \
                   s.client_type, r.timestamp FROM mcp_requests r \
                   LEFT JOIN mcp_sessions s ON s.session_id = r.session_id \
                   WHERE r.timestamp >= $1 AND r.timestamp < $2 ORDER BY r.timestamp DESC LIMIT $3";
        let until = until.unwrap_or_else(super::end_of_time);
        on_pool!(self, pool => sqlx::query_as::<_, StatRow>(sql).bind(since).bind(until).bind(limit).fetch_all(pool).await)
    }

    /// Number of ledger rows in `[from, to)`.
    pub async fn count_requests_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<i64, sqlx::Error> {
        let sql = "SELECT COUNT(*) FROM mcp_requests WHERE timestamp >= $1 AND timestamp < $2";
        on_pool!(self, pool => sqlx::query_scalar(sql).bind(from).bind(to).fetch_one(pool).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    #[test]
    fn each_chunk_size_has_one_insert_with_its_placeholders() {
        let eight = insert_sql(8, Shape::Full, false, true).unwrap();
        assert!(eight.contains("$192)") && !eight.contains("$193"));
        assert!(eight.ends_with("DO NOTHING"));
        let sqlite = insert_sql(8, Shape::Full, true, false).unwrap();
        assert_eq!(sqlite.matches('?').count(), 192);
        assert!(sqlite.ends_with("RETURNING request_id") && !sqlite.contains('$'));
        let lean = insert_sql(8, Shape::Lean, false, true).unwrap();
        assert!(lean.contains("$110, 'success', $111") && !lean.contains("$121"));
        assert!(lean.contains("$119, 'o200k_base', FALSE, $120)"), "{lean}");
        assert!(!lean.contains("subject_id"));
        let sqlite = insert_sql(8, Shape::Lean, true, false).unwrap();
        assert_eq!(sqlite.matches('?').count(), 120);
        assert!(
            insert_sql(3, Shape::Full, false, false).is_err(),
            "only the chunk sizes"
        );
    }

    /// A session's span narrows the range asked to where its rows can be, never past it, and
    /// keeps the instant of its last row (`until` excludes its own).
    #[test]
    fn a_session_s_span_narrows_the_range_asked_and_keeps_its_last_row() {
        let t = |s: i64| DateTime::<Utc>::from_timestamp(1_800_000_000 + s, 0).unwrap_or_default();
        let span = (t(10), t(20));
        let end = t(20) + TimeDelta::microseconds(1);
        let asked = |since, until| RequestFilter {
            session_id: Some("a".into()),
            since,
            until,
            ..RequestFilter::default()
        };
        let range = |f: RequestFilter| (f.since, f.until);
        assert_eq!(
            range(narrowed_to(&asked(None, None), span)),
            (Some(t(10)), Some(end))
        );
        assert_eq!(
            range(narrowed_to(&asked(Some(t(12)), Some(t(15))), span)),
            (Some(t(12)), Some(t(15)))
        );
        assert_eq!(
            range(narrowed_to(&asked(Some(t(0)), Some(t(30))), span)),
            (Some(t(10)), Some(end))
        );
        let narrowed = narrowed_to(&asked(None, None), span);
        assert_eq!(narrowed.session_id.as_deref(), Some("a"));
    }

    #[test]
    fn batches_are_cut_into_the_fixed_statement_sizes_only() {
        let rows: Vec<u32> = (0..300).collect();
        let sizes: Vec<usize> = chunks(&rows).map(<[u32]>::len).collect();
        assert_eq!(sizes, [32, 32, 32, 32, 32, 32, 32, 32, 32, 8, 4]);
        let sizes: Vec<usize> = chunks(&rows[..63]).map(<[u32]>::len).collect();
        assert_eq!(sizes, [32, 16, 8, 4, 2, 1]);
        let back: Vec<u32> = chunks(&rows).flatten().copied().collect();
        assert_eq!(back, rows, "every row once, in order");
        assert_eq!(chunks::<u32>(&[]).count(), 0);
    }

    /// A fresh SQLite store in `dir`, migrated.
    async fn sqlite_in(dir: &tempfile::TempDir) -> anyhow::Result<Store> {
        let path = dir.path().join("steward.db");
        let url = crate::store::DatabaseUrl::parse(&format!("sqlite://{}", path.display()))?;
        Ok(Store::open(&url).await?)
    }

    /// The query plan SQLite chooses, one step a line.
    async fn plan_of<'q>(
        pool: &sqlx::SqlitePool,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> anyhow::Result<String> {
        let rows = query.fetch_all(pool).await?;
        let plan: Vec<String> = rows.iter().map(|row| row.get("detail")).collect();
        Ok(plan.join("\n"))
    }

    /// Every index of the SQLite ledger costs each row a B-tree insertion, so it must be one
    /// the queries read: a listing filtered by session is served by the time index (migration
    /// 0010 dropped the session index SQLite never used there), a task's activity by the
    /// (partial) subject index; per-session totals are kept in their own table (0021 dropped
    /// the session index that summed them), whose pruning finds a session's new first request
    /// through the time index; and nothing scans the whole table.
    #[tokio::test]
    async fn sqlite_ledger_indexes_are_the_ones_its_queries_use() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let Store::Sqlite(pool) = sqlite_in(&dir).await? else {
            unreachable!("a sqlite:// URL opens SQLite");
        };
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'mcp_requests' ORDER BY name",
        )
        .fetch_all(&pool)
        .await?;
        assert_eq!(
            indexes,
            [
                "mcp_requests_by_subject",
                "mcp_requests_by_time",
                "sqlite_autoindex_mcp_requests_1"
            ]
        );
        let filter = RequestFilter {
            session_id: Some("a-session".into()),
            ..RequestFilter::default()
        };
        for (sql, paged) in [(list_sql(), true), (count_sql(), false)] {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut query = bind_filter!(sqlx::query(&explain), filter, None::<String>);
            if paged {
                query = query.bind(50_i64).bind(0_i64);
            }
            let plan = plan_of(&pool, query).await?;
            assert!(
                plan.contains("USING INDEX mcp_requests_by_time"),
                "{sql}:\n{plan}"
            );
            assert!(!plan.contains("SCAN mcp_requests"), "{sql}:\n{plan}");
        }
        let totals = format!("{}$1, $2)", session_totals::SELECT_TOTALS);
        let subtract = session_totals::SUBTRACT_TOTALS;
        let activity = "SELECT session_id, COUNT(*), SUM(total_tokens) FROM mcp_requests \
                        WHERE subject_id = $1 GROUP BY session_id";
        for (sql, index, binds) in [
            (totals.as_str(), "mcp_session_totals", 2),
            (subtract, "mcp_requests_by_time", 7),
            (activity, "mcp_requests_by_subject", 1),
        ] {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let query = (0..binds).fold(sqlx::query(&explain), |query, _| query.bind("a"));
            let plan = plan_of(&pool, query).await?;
            assert!(plan.contains(index), "{sql}:\n{plan}");
            let scans = plan.lines().filter(|step| step.starts_with("SCAN"));
            assert_eq!(scans.count(), 0, "{sql}:\n{plan}");
        }
        pool.close().await;
        Ok(())
    }

    /// SQLite checks an `IN (...)` list of more than two constants by building a temporary
    /// B-tree of them, and a CHECK did so for every ledger row (migration 0022 writes the
    /// `status` check as comparisons, as 0023 does). The ledger's INSERT builds no temporary
    /// table, none of its constraints aborts the statement (see [`statements`]), and a row
    /// whose status is none of the ledger's is still refused.
    #[tokio::test]
    async fn sqlite_ledger_insert_checks_its_row_without_a_temporary_table() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = sqlite_in(&dir).await?;
        let Store::Sqlite(pool) = &store else {
            unreachable!("a sqlite:// URL opens SQLite");
        };
        for shape in [Shape::Full, Shape::Lean] {
            let insert = insert_sql(8, shape, false, false)?;
            let program = sqlx::query(&format!("EXPLAIN {insert}"))
                .fetch_all(pool)
                .await?;
            let opcodes: Vec<String> = program.iter().map(|op| op.get("opcode")).collect();
            assert!(opcodes.iter().any(|op| op == "Insert"), "{opcodes:?}");
            assert!(
                !opcodes.iter().any(|op| op == "OpenEphemeral"),
                "{shape:?}: {opcodes:?}"
            );
            // A constraint that would abort the statement (P2 = 2, SQLite's OE_Abort) makes
            // SQLite keep a statement journal for it; the ledger's constraints fail it instead.
            let halts: Vec<(String, i64, i64)> = program
                .iter()
                .map(|op| (op.get("opcode"), op.get("p1"), op.get("p2")))
                .filter(|(op, error, _): &(String, i64, i64)| op.starts_with("Halt") && *error != 0)
                .collect();
            assert!(!halts.is_empty(), "{shape:?}: {opcodes:?}");
            assert!(
                halts.iter().all(|(_, _, action)| *action != 2),
                "{shape:?}: {halts:?}"
            );
        }
        let row = LedgerRow {
            request_id: uuid::Uuid::now_v7(),
            method: "tools/call".into(),
            timestamp: Utc::now(),
            ..LedgerRow::default()
        };
        assert_eq!(store.insert_new_requests(&[row]).await?, 1);
        let bogus = "INSERT INTO mcp_requests (request_id, method, status, duration_ms, duration_us, timestamp) \
                     VALUES ('x', 'tools/call', 'succeeded', 0, 0, '2026-12-04T00:00:00Z')";
        let refused = sqlx::query(bogus).execute(pool).await;
        assert!(
            matches!(&refused, Err(sqlx::Error::Database(e)) if e.kind() == sqlx::error::ErrorKind::CheckViolation),
            "{refused:?}"
        );
        assert_eq!(store.count_requests().await?, 1);
        pool.close().await;
        Ok(())
    }
}

/// What the ledger holds about one session's requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionActivity {
    /// Its `tools/call` rows.
    pub tool_calls: i64,
}

impl Store {
    /// The session's tool calls, from the ledger's per-session totals (the truth across
    /// restarts and replicas, unlike any one process's counters).
    pub async fn session_activity(&self, session_id: &str) -> Result<SessionActivity, sqlx::Error> {
        let sql = "SELECT tool_calls FROM mcp_session_totals WHERE session_id = $1";
        let tool_calls: Option<i64> = on_pool!(self, pool =>
            sqlx::query_scalar(sql).bind(session_id).fetch_optional(pool).await)?;
        Ok(SessionActivity {
            tool_calls: tool_calls.unwrap_or(0),
        })
    }
}
