//! `mcp_request_stats` and `mcp_request_latency` (migration 0009): hourly aggregates of the
//! ledger, updated in the transaction that stores the rows, so statistics over millions of
//! rows read thousands. Every update adds (`SET n = n + excluded.n`), so concurrent writers on
//! several replicas never lose one another's counts.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, DurationRound, Utc};
use rust_decimal::Decimal;

use super::{Money, Store, WritePool, WriteTx, on_pool};
use crate::store::request_row::{FAILED_SQL, LedgerRow};

/// Money in the aggregates: an integer count of 1e-10 USD ([`Money::STORED_SCALE`]).
pub fn cost_units(money: Money) -> i64 {
    // At most the stored places (every estimate the ledger writes): nothing to round, so the
    // units are the mantissa scaled up, without a decimal's rounding and rescaling.
    if let Some(places) = Money::STORED_SCALE.checked_sub(money.0.scale()) {
        // An estimate's mantissa fits 64 bits: multiplied as an `i64`, not an `i128`.
        if let Ok(mantissa) = i64::try_from(money.0.mantissa())
            && let Some(units) = mantissa.checked_mul(10_i64.pow(places))
        {
            return units;
        }
        let units = money.0.mantissa().checked_mul(10_i128.pow(places));
        return units
            .and_then(|u| i64::try_from(u).ok())
            .unwrap_or_else(|| beyond_i64(money.0.is_sign_negative()));
    }
    let mut d = money.stored().0;
    d.rescale(Money::STORED_SCALE);
    i64::try_from(d.mantissa()).unwrap_or_else(|_| beyond_i64(d.is_sign_negative()))
}

/// Units past what 64 bits hold stop at the end of their own side.
fn beyond_i64(negative: bool) -> i64 {
    if negative { i64::MIN } else { i64::MAX }
}

/// The hour a row's time falls in (truncated as the statistics key it), the last hour kept:
/// a batch's rows mostly share one.
#[derive(Default)]
pub(crate) struct Hours(Option<(DateTime<Utc>, DateTime<Utc>)>);

impl Hours {
    pub(crate) fn of(&mut self, at: DateTime<Utc>) -> DateTime<Utc> {
        if let Some((hour, end)) = self.0
            && hour <= at
            && at < end
        {
            return hour;
        }
        let Ok(hour) = at.duration_trunc(chrono::Duration::hours(1)) else {
            return at;
        };
        // Kept only where truncating works up to the hour's end (not at chrono's limits).
        self.0 = hour
            .checked_add_signed(chrono::Duration::hours(1))
            .filter(|end| end.timestamp_nanos_opt().is_some())
            .map(|end| (hour, end));
        hour
    }
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

/// Number of histogram buckets: [`latency_bucket`] of `i64::MAX` is the last.
pub const BUCKETS: usize = 960;

/// Requests per latency bucket (dense: index = bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram(pub Vec<u64>);

impl Default for Histogram {
    fn default() -> Self {
        Histogram(vec![0; BUCKETS])
    }
}

impl Histogram {
    pub fn add(&mut self, bucket: i64, n: u64) {
        let i = usize::try_from(bucket).unwrap_or(0).min(BUCKETS - 1);
        self.0[i] += n;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }

    /// `bucket:count,...` for the non-empty buckets.
    pub fn to_text(&self) -> String {
        // Digits through `itoa`, not `format!`: a `String` and a `fmt` call per bucket, for
        // every statistics row a ledger batch writes.
        let mut text = String::new();
        let mut digits = itoa::Buffer::new();
        for (bucket, n) in self.0.iter().enumerate().filter(|(_, n)| **n > 0) {
            if !text.is_empty() {
                text.push(',');
            }
            text.push_str(digits.format(bucket));
            text.push(':');
            text.push_str(digits.format(*n));
        }
        text
    }

    /// Adds the counts of a [`Histogram::to_text`] (in any order); a malformed entry is
    /// skipped and logged, so one damaged row cannot take the statistics down.
    pub fn add_text(&mut self, text: &str) {
        for entry in text.split(',').filter(|e| !e.is_empty()) {
            match entry
                .split_once(':')
                .and_then(|(b, n)| Some((b.parse().ok()?, n.parse().ok()?)))
            {
                Some((bucket, n)) => self.add(bucket, n),
                None => tracing::warn!(entry, "skipping a malformed latency histogram entry"),
            }
        }
    }
}

/// Key of one aggregate row: hour, method, tool ('' for none), client type.
pub(crate) type StatsKey<'a> = (DateTime<Utc>, &'a str, &'a str, &'a str);

/// How long a group of requests took, in microseconds: the sum (saturating) and the longest.
/// The `duration_us_total` and `duration_us_max` columns of `mcp_request_stats` and of the
/// hourly rollups (`mcp_request_rollups`), which add them up the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Durations {
    pub duration_us_total: i64,
    pub duration_us_max: i64,
}

impl Durations {
    /// One request's.
    pub fn of(us: i64) -> Durations {
        Durations {
            duration_us_total: us,
            duration_us_max: us,
        }
    }

    pub fn merge(&mut self, other: Durations) {
        self.duration_us_total = self
            .duration_us_total
            .saturating_add(other.duration_us_total);
        self.duration_us_max = self.duration_us_max.max(other.duration_us_max);
    }
}

/// The exact sums of one row of `mcp_request_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Sums {
    pub requests: i64,
    pub errors: i64,
    #[sqlx(flatten)]
    pub durations: Durations,
    pub tokens: i64,
    pub cost_units: i64,
}

impl Sums {
    /// Saturating, as [`Durations::merge`] is: a row's cost units already stop at `i64::MAX`
    /// (an absurd price), and a sum must not wrap into a negative total or panic.
    pub fn merge(&mut self, other: &Sums) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        self.durations.merge(other.durations);
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.cost_units = self.cost_units.saturating_add(other.cost_units);
    }
}

/// One row of `mcp_request_stats` in memory: its sums and its latency histogram.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aggregate {
    pub sums: Sums,
    pub latency: Histogram,
}

impl Aggregate {
    fn add(&mut self, row: &LedgerRow) {
        let us = row.duration.micros();
        self.sums.merge(&Sums {
            requests: 1,
            errors: i64::from(row.status.failed()),
            durations: Durations::of(us),
            tokens: i64::from(row.total_tokens.unwrap_or(0)),
            cost_units: row.estimated_cost_usd.map_or(0, cost_units),
        });
        self.latency.add(latency_bucket(us), 1);
    }

    pub fn merge(&mut self, other: &Aggregate) {
        self.sums.merge(&other.sums);
        self.latency.merge(&other.latency);
    }

    /// Adds a stored row.
    pub fn add_cell(&mut self, c: &StatsCell) {
        self.sums.merge(&c.sums);
        self.latency.add_text(&c.latency);
    }
}

/// A stored aggregate row, as read (the histogram still in its text form, so reading
/// thousands of rows never holds thousands of dense histograms).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StatsCell {
    pub hour: DateTime<Utc>,
    pub method: String,
    pub tool_name: String,
    pub client_type: String,
    #[sqlx(flatten)]
    pub sums: Sums,
    pub latency: String,
}

/// Client type by session id, for the sessions of a batch (looked up once per row: foldhash,
/// not the default SipHash).
pub(crate) type ClientTypes = HashMap<String, String, foldhash::fast::RandomState>;

/// The additions a batch of newly stored rows makes, in key order.
/// Keys borrow from the rows: a batch has hundreds of rows and a handful of keys.
pub(crate) fn deltas<'a>(
    rows: impl Iterator<Item = &'a LedgerRow>,
    client_types: &'a ClientTypes,
) -> BTreeMap<StatsKey<'a>, Aggregate> {
    let mut stats: BTreeMap<StatsKey<'a>, Aggregate> = BTreeMap::new();
    let mut hours = Hours::default();
    let keyed = rows.map(|row| {
        let hour = hours.of(row.timestamp);
        let client = row
            .session_id
            .as_ref()
            .and_then(|id| client_types.get(id))
            .map_or("unknown", String::as_str);
        let tool = row.tool_name.as_deref().unwrap_or_default();
        ((hour, row.method.as_str(), tool, client), row)
    });
    sum_by_key(
        &mut stats,
        keyed,
        |row| {
            let mut aggregate = Aggregate::default();
            aggregate.add(row);
            aggregate
        },
        |aggregate, row| aggregate.add(row),
    );
    stats
}

/// Sums `items` into `map` by key: `first` makes a key's value of its first item, `add` adds
/// each later one. Consecutive items mostly share a key (a batch's rows), so the last key's
/// value is kept and compared first: that costs less than finding it in the map again.
pub(crate) fn sum_by_key<K: Ord + Copy, V, T>(
    map: &mut BTreeMap<K, V>,
    items: impl IntoIterator<Item = (K, T)>,
    mut first: impl FnMut(T) -> V,
    mut add: impl FnMut(&mut V, T),
) {
    let mut last: Option<(K, &mut V)> = None;
    for (key, item) in items {
        let value = match last.take() {
            Some((kept, value)) if kept == key => {
                add(value, item);
                value
            }
            _ => match map.entry(key) {
                std::collections::btree_map::Entry::Occupied(entry) => {
                    let value = entry.into_mut();
                    add(value, item);
                    value
                }
                std::collections::btree_map::Entry::Vacant(entry) => entry.insert(first(item)),
            },
        };
        last = Some((key, value));
    }
}

/// Merges stored rows into `deltas` (the stored row for each key, where there is one).
pub(crate) fn merge_stored(deltas: &mut BTreeMap<StatsKey, Aggregate>, stored: Vec<StatsCell>) {
    for cell in stored {
        // (A borrowed key cannot be looked up with a shorter-lived one; batches have few keys.)
        let delta = deltas.iter_mut().find(|((hour, method, tool, client), _)| {
            (*hour, *method, *tool, *client)
                == (
                    cell.hour,
                    cell.method.as_str(),
                    cell.tool_name.as_str(),
                    cell.client_type.as_str(),
                )
        });
        if let Some((_, delta)) = delta {
            delta.add_cell(&cell);
        }
    }
}

pub(crate) const SELECT_STATS: &str = "SELECT hour, method, tool_name, client_type, requests, errors, \
    duration_us_total, duration_us_max, tokens, cost_units, latency FROM mcp_request_stats";
pub(crate) const UPSERT_STATS: &str = "INSERT INTO mcp_request_stats (hour, method, tool_name, client_type, \
    requests, errors, duration_us_total, duration_us_max, tokens, cost_units, latency) ";
pub(crate) const ON_CONFLICT_STATS: &str = " ON CONFLICT (hour, method, tool_name, client_type) DO UPDATE SET \
    requests = excluded.requests, errors = excluded.errors, duration_us_total = excluded.duration_us_total, \
    duration_us_max = excluded.duration_us_max, tokens = excluded.tokens, cost_units = excluded.cost_units, \
    latency = excluded.latency";

/// The statistics writers' PostgreSQL advisory lock: an arbitrary key, 0x5354_4557_4152_4432
/// ("STEWARD2", the same as earlier releases took, so replicas of both kinds take turns).
#[cfg(test)]
const STATS_LOCK_KEY: i64 = 0x5354_4557_4152_4432;

/// PostgreSQL's `BEGIN` of a ledger write with the statistics lock (`STATS_LOCK_KEY`) taken in
/// the same simple query (one round trip, not two; the key written out in decimal, as a simple
/// query binds nothing).
pub(crate) const LOCKED_BEGIN: &str = "BEGIN; SELECT pg_advisory_xact_lock(6004500444252095538)";

/// Opens the ledger's write transaction with the statistics writers serialised for the rest
/// of it, before anything else is done, so a read-merge-write of an aggregate row never loses
/// another replica's counts and every writer takes its locks in the same order: PostgreSQL's
/// transaction-scoped advisory lock, taken by [`LOCKED_BEGIN`]; on SQLite `BEGIN IMMEDIATE`
/// already holds the only write lock.
pub(crate) trait LedgerBegin: WritePool {
    fn begin_ledger(&self) -> impl Future<Output = WriteTx<Self::Db>> + Send;
}

impl LedgerBegin for sqlx::SqlitePool {
    fn begin_ledger(&self) -> impl Future<Output = WriteTx<Self::Db>> + Send {
        self.begin_write()
    }
}

impl LedgerBegin for sqlx::PgPool {
    fn begin_ledger(&self) -> impl Future<Output = WriteTx<Self::Db>> + Send {
        self.begin_with(LOCKED_BEGIN)
    }
}

/// Which of `rows` the INSERT stored (those whose id it returned).
pub(crate) fn stored<'a>(rows: &'a [LedgerRow], ids: &[super::Id]) -> Vec<&'a LedgerRow> {
    // `ids` are distinct ids of `rows`: as many means all of them (the usual case).
    if ids.len() == rows.len() {
        return rows.iter().collect();
    }
    let ids: HashSet<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
    rows.iter()
        .filter(|r| ids.contains(&r.request_id))
        .collect()
}

/// [`latency_bucket`] in SQL, of an integer column: SQLite has no `log()`, so one branch per
/// power of two finds the exponent, and a shift the 16 sub-buckets.
fn bucket_sql(column: &str) -> String {
    let mut sql = format!("CASE WHEN {column} < 16 THEN {column}");
    for exponent in 4..62 {
        sql.push_str(&format!(
            " WHEN {column} < {} THEN {} + ({column} >> {})",
            1_i64 << (exponent + 1),
            16 * (exponent - 3) - 16,
            exponent - 4
        ));
    }
    sql.push_str(&format!(
        " ELSE {} + ({column} >> 58) END",
        16 * (62 - 3) - 16
    ));
    sql
}

/// Aggregates of the ledger rows of one (method, tool, client type) in one latency bucket, for
/// a part of an hour the hourly rows cannot answer.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BucketCell {
    pub method: String,
    pub tool_name: String,
    pub client_type: String,
    pub bucket: i64,
    #[sqlx(flatten)]
    pub sums: Sums,
}

/// Requests and errors (anything but `success`) of one hour.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HourCount {
    pub hour: DateTime<Utc>,
    pub requests: i64,
    pub errors: i64,
}

impl Store {
    /// Calls `each` with every aggregate row of the hours in `[from, to)`, as they stream in.
    pub async fn for_each_stats_cell(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        mut each: impl FnMut(StatsCell),
    ) -> Result<(), sqlx::Error> {
        use futures::TryStreamExt;
        let sql = format!("{SELECT_STATS} WHERE hour >= $1 AND hour < $2");
        on_pool!(self, pool => {
            let mut rows = sqlx::query_as::<_, StatsCell>(&sql).bind(from).bind(to).fetch(pool);
            while let Some(cell) = rows.try_next().await? {
                each(cell);
            }
            Ok(())
        })
    }

    /// SQL summing a cost column as integer units of [`Money::STORED_SCALE`] (NULL when every
    /// value is NULL); read the result with [`money_from_units`].
    pub(crate) fn sum_cost_units(&self, column: &str) -> String {
        // Stored costs have 10 decimals: exact as integer units (through REAL on SQLite, which
        // has no decimal type; exact below 10^5 USD per request).
        match self {
            Store::Sqlite(_) => {
                format!("SUM(CAST(ROUND(CAST({column} AS REAL) * 10000000000) AS INTEGER))")
            }
            Store::Postgres(_) => format!("SUM({column} * 10000000000)"),
        }
    }

    /// The ledger rows in `[from, to)` aggregated in SQL by key and latency bucket: a partial
    /// hour costs one scan, not one decoded row per request.
    pub async fn bucket_cells(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BucketCell>, sqlx::Error> {
        let cost_units = self.sum_cost_units("r.estimated_cost_usd");
        let sql = format!(
            "SELECT r.method, COALESCE(r.tool_name, '') AS tool_name, COALESCE(s.client_type, 'unknown') AS client_type, \
             {bucket} AS bucket, COUNT(*) AS requests, \
             CAST(SUM(CASE WHEN {FAILED_SQL} THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
             CAST(SUM(r.duration_us) AS BIGINT) AS duration_us_total, MAX(r.duration_us) AS duration_us_max, \
             CAST(COALESCE(SUM(r.total_tokens), 0) AS BIGINT) AS tokens, CAST(COALESCE({cost_units}, 0) AS BIGINT) AS cost_units \
             FROM mcp_requests r LEFT JOIN mcp_sessions s ON s.session_id = r.session_id \
             WHERE r.timestamp >= $1 AND r.timestamp < $2 GROUP BY 1, 2, 3, 4",
            bucket = bucket_sql("r.duration_us"),
        );
        self.rows_in_period(&sql, from, to).await
    }

    /// Requests and errors per hour for the hours in `[from, to)`.
    pub async fn hour_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HourCount>, sqlx::Error> {
        let sql = "SELECT hour, CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(errors) AS BIGINT) AS errors \
                   FROM mcp_request_stats WHERE hour >= $1 AND hour < $2 GROUP BY hour ORDER BY hour";
        self.rows_in_period(sql, from, to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statistics sums stop at the largest value instead of wrapping or panicking.
    #[test]
    fn sums_stop_at_the_largest_value() {
        let big = Sums {
            requests: 1,
            errors: 1,
            tokens: i64::MAX - 1,
            cost_units: i64::MAX,
            ..Sums::default()
        };
        let mut sum = big;
        sum.merge(&big);
        assert_eq!(sum.requests, 2);
        assert_eq!(sum.errors, 2);
        assert_eq!(sum.tokens, i64::MAX);
        assert_eq!(sum.cost_units, i64::MAX);
    }

    #[test]
    fn the_ledger_s_begin_locks_the_statistics_writers_key() {
        // The simple query binds nothing, so the key is written out in it: the same number.
        let locked = format!("BEGIN; SELECT pg_advisory_xact_lock({STATS_LOCK_KEY})");
        assert_eq!(LOCKED_BEGIN, locked);
    }

    #[test]
    fn durations_add_up_saturating_and_keep_the_longest() {
        let mut durations = Durations::of(2_500);
        durations.merge(Durations::of(1_500));
        assert_eq!(
            durations,
            Durations {
                duration_us_total: 4_000,
                duration_us_max: 2_500
            }
        );
        durations.merge(Durations::of(i64::MAX));
        assert_eq!(
            durations,
            Durations {
                duration_us_total: i64::MAX,
                duration_us_max: i64::MAX
            }
        );
    }

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
    fn histograms_survive_their_text_form() {
        let mut h = Histogram::default();
        h.add(latency_bucket(1_234), 3);
        h.add(latency_bucket(5), 1);
        h.add(latency_bucket(i64::MAX), 2);
        let mut read = Histogram::default();
        read.add_text(&h.to_text());
        assert_eq!(read, h);
        // The stored form: `bucket:count` for each non-empty bucket, in bucket order.
        let mut exact = Histogram::default();
        exact.add(0, 12);
        exact.add(7, 1);
        exact.add(959, u64::MAX);
        assert_eq!(exact.to_text(), format!("0:12,7:1,959:{}", u64::MAX));
        assert_eq!(Histogram::default().to_text(), "");
        let mut damaged = Histogram::default();
        damaged.add_text("5:1,bad,7:x,");
        let mut only = Histogram::default();
        only.add(5, 1);
        assert_eq!(damaged, only);
    }

    #[test]
    fn hours_kept_from_the_last_row_are_the_ones_worked_out() {
        let mut hours = Hours::default();
        let start = "2026-12-05T10:59:59.999999Z"
            .parse::<DateTime<Utc>>()
            .unwrap();
        for step in 0..200 {
            let at = start + chrono::Duration::seconds(step * 37 - 3000);
            let truncated = at.duration_trunc(chrono::Duration::hours(1)).unwrap();
            assert_eq!(hours.of(at), truncated, "{at}");
        }
        // At chrono's limit the time is kept as it is, as before.
        let last = DateTime::<Utc>::MAX_UTC;
        assert_eq!(
            hours.of(last),
            last.duration_trunc(chrono::Duration::hours(1))
                .unwrap_or(last)
        );
    }

    /// The units of a cost at most the stored places are worked out without rounding: the same
    /// as rounding, rescaling and reading the mantissa, including past `i64`.
    #[test]
    fn cost_units_without_rounding_are_the_rounded_ones() {
        let rounded = |money: Money| {
            let mut d = money.stored().0;
            d.rescale(Money::STORED_SCALE);
            let beyond = if d.is_sign_negative() {
                i64::MIN
            } else {
                i64::MAX
            };
            i64::try_from(d.mantissa()).unwrap_or(beyond)
        };
        let values = [
            "0",
            "-0",
            "0.0000000001",
            "0.00000000005",
            "-0.00000000005",
            "0.0000186",
            "0.00001860",
            "-1.5",
            "922337203.6854775807",
            "922337203.6854775808",
            "-922337203.6854775808",
            "1000000000",
            "79228162514264337593543950335",
            "-79228162514264337593543950335",
            "7.9228162514264337593543950335",
            "0.0000000000000000000000000001",
            "0.12345678901234567890",
        ];
        for text in values {
            let money: Money = text.parse().unwrap();
            assert_eq!(cost_units(money), rounded(money), "{text}");
        }
        assert_eq!(cost_units("-1.5".parse().unwrap()), -15_000_000_000);
        assert_eq!(cost_units("0.00001860".parse().unwrap()), 186_000);
        // Past 64 bits, each side stops at its own end.
        let huge = "79228162514264337593543950335";
        assert_eq!(cost_units(huge.parse().unwrap()), i64::MAX);
        assert_eq!(cost_units(format!("-{huge}").parse().unwrap()), i64::MIN);
        assert_eq!(
            cost_units("-922337203.6854775809".parse().unwrap()),
            i64::MIN
        );
    }

    /// Rows whose keys come in runs and interleaved are added up per key as one by one.
    #[test]
    fn deltas_add_each_key_s_rows_however_they_interleave() {
        let start = "2026-12-05T10:59:58Z".parse::<DateTime<Utc>>().unwrap();
        let mut client_types = ClientTypes::default();
        client_types.insert("s1".into(), "Codex".into());
        let keys = [0, 0, 1, 0, 2, 2, 2, 1, 3, 0, 3];
        let rows: Vec<LedgerRow> = keys
            .iter()
            .enumerate()
            .map(|(n, key)| LedgerRow {
                session_id: Some(["s1", "s2"][key % 2].into()),
                method: "tools/call".into(),
                tool_name: (*key < 2).then(|| "find_tasks".into()),
                status: match n % 3 {
                    0 => crate::store::request_row::Status::Error,
                    _ => crate::store::request_row::Status::Success,
                },
                duration: crate::store::request_row::Micros::from_micros(n as u64 * 997),
                total_tokens: Some(n as i32),
                estimated_cost_usd: Some(format!("0.00{n}").parse().unwrap()),
                // Across an hour's end.
                timestamp: start + chrono::Duration::seconds(n as i64 % 4),
                ..LedgerRow::default()
            })
            .collect();
        let mut one_by_one: BTreeMap<(DateTime<Utc>, String, String, String), Aggregate> =
            BTreeMap::new();
        for row in &rows {
            let mut alone = deltas(std::iter::once(row), &client_types);
            let ((hour, method, tool, client), aggregate) = alone.pop_first().unwrap();
            let key = (
                hour,
                method.to_string(),
                tool.to_string(),
                client.to_string(),
            );
            one_by_one.entry(key).or_default().merge(&aggregate);
        }
        let together: Vec<_> = deltas(rows.iter(), &client_types)
            .into_iter()
            .map(|((hour, method, tool, client), aggregate)| {
                let key = (
                    hour,
                    method.to_string(),
                    tool.to_string(),
                    client.to_string(),
                );
                (key, aggregate)
            })
            .collect();
        assert_eq!(
            together.len(),
            7,
            "four keys, three of them on both sides of the hour"
        );
        assert_eq!(together, one_by_one.into_iter().collect::<Vec<_>>());
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
