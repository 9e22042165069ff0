//! `mcp_request_stats` and `mcp_request_latency` (migration 0009): hourly aggregates of the
//! ledger, updated in the transaction that stores the rows, so statistics over millions of
//! rows read thousands. Every update adds (`SET n = n + excluded.n`), so concurrent writers on
//! several replicas never lose one another's counts.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, DurationRound, Utc};
use rust_decimal::Decimal;

use super::{Money, Store, on_pool};
use crate::ledger::entry::LedgerRow;

/// Money in the aggregates: an integer count of 1e-10 USD ([`Money::STORED_SCALE`]).
pub fn cost_units(money: Money) -> i64 {
    let mut d = money.stored().0;
    d.rescale(Money::STORED_SCALE);
    i64::try_from(d.mantissa()).unwrap_or(i64::MAX)
}

/// The inverse of [`cost_units`].
pub fn money_from_units(units: i64) -> Money {
    Money(Decimal::new(units, Money::STORED_SCALE))
}

/// The latency histogram bucket of a duration: exact below 16 µs, then 16 buckets per power
/// of two, so a bucket is at most 1/16 as wide as the values in it. (Migration 0009 computes
/// the same from bounds; see [`bucket_bounds`].)
pub fn latency_bucket(us: i64) -> i64 {
    let us = u64::try_from(us).unwrap_or(0);
    if us < 16 {
        return us as i64;
    }
    let exponent = i64::from(63 - us.leading_zeros());
    let mantissa = (us >> (exponent - 4)) as i64 - 16;
    16 * (exponent - 3) + mantissa
}

/// `[lower, upper)` in µs of a bucket from [`latency_bucket`].
pub fn bucket_bounds(bucket: i64) -> (i64, i64) {
    let lower = |b: i64| {
        if b < 16 {
            b
        } else {
            // i128: the bucket after the last one starts at 2^63, past i64.
            let lower = i128::from(16 + b % 16) << (b / 16 - 1).clamp(0, 100);
            i64::try_from(lower).unwrap_or(i64::MAX)
        }
    };
    (lower(bucket), lower(bucket + 1))
}

/// Key of one aggregate row: hour, method, tool ('' for none), client type, status.
pub(crate) type StatsKey = (DateTime<Utc>, String, String, String, &'static str);
/// Key of one histogram row: hour, method, tool, client type, bucket.
pub(crate) type LatencyKey = (DateTime<Utc>, String, String, String, i64);

#[derive(Debug, Default)]
pub(crate) struct Delta {
    pub requests: i64,
    pub duration_us_total: i64,
    pub duration_us_max: i64,
    pub tokens: i64,
    pub cost_units: i64,
}

/// The additions a batch of newly stored rows makes, in key order (a fixed lock order, so two
/// writers on PostgreSQL never deadlock on each other's rows).
pub(crate) fn deltas<'a>(
    rows: impl Iterator<Item = &'a LedgerRow>,
    client_types: &HashMap<String, String>,
) -> (BTreeMap<StatsKey, Delta>, BTreeMap<LatencyKey, i64>) {
    let mut stats: BTreeMap<StatsKey, Delta> = BTreeMap::new();
    let mut latency: BTreeMap<LatencyKey, i64> = BTreeMap::new();
    for row in rows {
        let hour = row
            .timestamp
            .duration_trunc(chrono::Duration::hours(1))
            .unwrap_or(row.timestamp);
        let client = row
            .session_id
            .as_ref()
            .and_then(|id| client_types.get(id))
            .map_or("unknown", String::as_str);
        let tool = row.tool_name.clone().unwrap_or_default();
        let us = row.duration.micros();
        let key = (
            hour,
            row.method.clone(),
            tool.clone(),
            client.to_string(),
            row.status.as_str(),
        );
        let d = stats.entry(key).or_default();
        d.requests += 1;
        d.duration_us_total = d.duration_us_total.saturating_add(us);
        d.duration_us_max = d.duration_us_max.max(us);
        d.tokens += i64::from(row.total_tokens.unwrap_or(0));
        d.cost_units += row.estimated_cost_usd.map_or(0, cost_units);
        let key = (
            hour,
            row.method.clone(),
            tool,
            client.to_string(),
            latency_bucket(us),
        );
        *latency.entry(key).or_default() += 1;
    }
    (stats, latency)
}

pub(crate) const UPSERT_STATS: &str = "INSERT INTO mcp_request_stats (hour, method, tool_name, client_type, status, \
    requests, duration_us_total, duration_us_max, tokens, cost_units) ";
pub(crate) const ON_CONFLICT_STATS: &str = " ON CONFLICT (hour, method, tool_name, client_type, status) DO UPDATE SET \
    requests = mcp_request_stats.requests + excluded.requests, \
    duration_us_total = mcp_request_stats.duration_us_total + excluded.duration_us_total, \
    duration_us_max = CASE WHEN excluded.duration_us_max > mcp_request_stats.duration_us_max \
        THEN excluded.duration_us_max ELSE mcp_request_stats.duration_us_max END, \
    tokens = mcp_request_stats.tokens + excluded.tokens, \
    cost_units = mcp_request_stats.cost_units + excluded.cost_units";
pub(crate) const UPSERT_LATENCY: &str =
    "INSERT INTO mcp_request_latency (hour, method, tool_name, client_type, bucket, requests) ";
pub(crate) const ON_CONFLICT_LATENCY: &str = " ON CONFLICT (hour, method, tool_name, client_type, bucket) \
    DO UPDATE SET requests = mcp_request_latency.requests + excluded.requests";

/// Adds newly stored ledger rows to the hourly aggregates, inside the caller's transaction
/// (`$tx`, on either engine). `$rows` are only the rows the INSERT actually stored.
macro_rules! add_to_stats {
    ($tx:expr, $rows:expr) => {{
        let rows: Vec<&$crate::ledger::entry::LedgerRow> = $rows;
        let sessions: std::collections::HashSet<&str> = rows
            .iter()
            .filter_map(|r| r.session_id.as_deref())
            .collect();
        let mut client_types: std::collections::HashMap<String, String> =
            std::collections::HashMap::new();
        if !sessions.is_empty() {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT session_id, client_type FROM mcp_sessions WHERE session_id IN (",
            );
            let mut list = q.separated(", ");
            for id in &sessions {
                list.push_bind(*id);
            }
            q.push(")");
            client_types.extend(
                q.build_query_as::<(String, String)>()
                    .fetch_all(&mut *$tx)
                    .await?,
            );
        }
        let (stats, latency) =
            $crate::store::request_stats::deltas(rows.into_iter(), &client_types);
        if !stats.is_empty() {
            let mut q = sqlx::QueryBuilder::new($crate::store::request_stats::UPSERT_STATS);
            q.push_values(
                &stats,
                |mut b, ((hour, method, tool, client, status), d)| {
                    b.push_bind(*hour)
                        .push_bind(method)
                        .push_bind(tool)
                        .push_bind(client)
                        .push_bind(*status)
                        .push_bind(d.requests)
                        .push_bind(d.duration_us_total)
                        .push_bind(d.duration_us_max)
                        .push_bind(d.tokens)
                        .push_bind(d.cost_units);
                },
            );
            q.push($crate::store::request_stats::ON_CONFLICT_STATS);
            q.build().execute(&mut *$tx).await?;
            let mut q = sqlx::QueryBuilder::new($crate::store::request_stats::UPSERT_LATENCY);
            q.push_values(
                &latency,
                |mut b, ((hour, method, tool, client, bucket), n)| {
                    b.push_bind(*hour)
                        .push_bind(method)
                        .push_bind(tool)
                        .push_bind(client)
                        .push_bind(*bucket)
                        .push_bind(*n);
                },
            );
            q.push($crate::store::request_stats::ON_CONFLICT_LATENCY);
            q.build().execute(&mut *$tx).await?;
        }
    }};
}
pub(crate) use add_to_stats;

/// Which of `rows` the INSERT stored (those whose id it returned).
pub(crate) fn stored<'a>(rows: &'a [LedgerRow], ids: &[super::Id]) -> Vec<&'a LedgerRow> {
    let ids: HashSet<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
    rows.iter()
        .filter(|r| ids.contains(&r.request_id))
        .collect()
}

/// Aggregates of one (method, tool, client type, status) over a range of hours.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StatsCell {
    pub method: String,
    pub tool_name: String,
    pub client_type: String,
    pub status: String,
    pub requests: i64,
    pub duration_us_total: i64,
    pub duration_us_max: i64,
    pub tokens: i64,
    pub cost_units: i64,
}

/// Requests of one (method, tool, client type) in one latency bucket over a range of hours.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LatencyCell {
    pub method: String,
    pub tool_name: String,
    pub client_type: String,
    pub bucket: i64,
    pub requests: i64,
}

/// Requests and errors (anything but `success`) of one hour.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HourCount {
    pub hour: DateTime<Utc>,
    pub requests: i64,
    pub errors: i64,
}

impl Store {
    /// Aggregates of the hours in `[from, to)` (whole hours), summed in SQL.
    pub async fn stats_cells(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StatsCell>, sqlx::Error> {
        let sql = "SELECT method, tool_name, client_type, status, CAST(SUM(requests) AS BIGINT) AS requests, \
                   CAST(SUM(duration_us_total) AS BIGINT) AS duration_us_total, MAX(duration_us_max) AS duration_us_max, \
                   CAST(SUM(tokens) AS BIGINT) AS tokens, CAST(SUM(cost_units) AS BIGINT) AS cost_units \
                   FROM mcp_request_stats WHERE hour >= $1 AND hour < $2 \
                   GROUP BY method, tool_name, client_type, status";
        on_pool!(self, pool => sqlx::query_as::<_, StatsCell>(sql).bind(from).bind(to).fetch_all(pool).await)
    }

    /// Latency histograms of the hours in `[from, to)`.
    pub async fn latency_cells(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<LatencyCell>, sqlx::Error> {
        let sql = "SELECT method, tool_name, client_type, bucket, CAST(SUM(requests) AS BIGINT) AS requests \
                   FROM mcp_request_latency WHERE hour >= $1 AND hour < $2 \
                   GROUP BY method, tool_name, client_type, bucket";
        on_pool!(self, pool => sqlx::query_as::<_, LatencyCell>(sql).bind(from).bind(to).fetch_all(pool).await)
    }

    /// Requests and errors per hour for the hours in `[from, to)`.
    pub async fn hour_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HourCount>, sqlx::Error> {
        let sql = "SELECT hour, CAST(SUM(requests) AS BIGINT) AS requests, \
                   CAST(SUM(CASE WHEN status <> 'success' THEN requests ELSE 0 END) AS BIGINT) AS errors \
                   FROM mcp_request_stats WHERE hour >= $1 AND hour < $2 GROUP BY hour ORDER BY hour";
        on_pool!(self, pool => sqlx::query_as::<_, HourCount>(sql).bind(from).bind(to).fetch_all(pool).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_narrow_and_bounds_contain_their_values() {
        for us in [
            0,
            1,
            15,
            16,
            17,
            31,
            32,
            33,
            1_000,
            51_000,
            999_999,
            10_000_000_000,
        ] {
            let b = latency_bucket(us);
            let (lower, upper) = bucket_bounds(b);
            assert!(
                lower <= us && us < upper,
                "{us} µs in bucket {b} = [{lower}, {upper})"
            );
            assert!(
                (upper - lower) * 16 <= upper.max(16),
                "bucket {b} is narrow"
            );
        }
        assert_eq!(
            latency_bucket(-5),
            0,
            "a negative duration cannot happen; it is not a panic"
        );
    }

    #[test]
    fn cost_units_are_exact() {
        let m = Money("0.0000000123".parse().unwrap());
        assert_eq!(cost_units(m), 123);
        assert_eq!(
            money_from_units(123 + cost_units(Money("1.5".parse().unwrap()))).to_string(),
            "1.5000000123"
        );
    }
}
