//! Request statistics for the API, the dashboard and `steward stats`: per tool and per client
//! type, counts, errors, latency percentiles, estimated tokens and cost, hourly and daily trends.
//!
//! Two ways to the same answer ([`load`]): a period of up to [`EXACT_LIMIT`] requests is read
//! row by row (exact percentiles); a bigger one comes from the hourly aggregates the ledger keeps
//! (`mcp_request_stats`), plus the rows of the partial first hour aggregated in SQL by latency
//! bucket, so a million rows answer in milliseconds. There, percentiles come from a latency
//! histogram whose buckets are at most 1/16 of their value wide (the midpoint is reported:
//! within ±1/32). Counts, errors, tokens, cost, average and maximum are exact either way; money
//! is summed as integer units of 1e-10 USD, never as a float.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, DurationRound, Utc};
use serde::Serialize;

use crate::store::request_row::Status;
use crate::store::request_stats::{
    Aggregate, BucketCell, HourCount, StatsCell, bucket_bounds, money_from_units,
};
use crate::store::requests::StatRow;
use crate::store::{Money, Store, end_of_time};

/// Periods with at most this many requests are computed from the rows themselves.
pub const EXACT_LIMIT: usize = 10_000;

/// Aggregates of one group of requests.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Group {
    pub count: u64,
    pub errors: u64,
    /// Errors / count, in percent with two decimals.
    pub error_rate_percent: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub avg_ms: f64,
    pub max_ms: f64,
    /// Estimated.
    pub tokens: i64,
    /// Estimated.
    pub estimated_cost_usd: Money,
}

#[derive(Debug, Clone, Serialize)]
pub struct Named {
    pub name: String,
    /// For the per-tool list: whether `name` is a tool or a JSON-RPC method without a tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<NameKind>,
    #[serde(flatten)]
    pub stats: Group,
}

/// What a per-tool statistics row groups: calls of a tool, or requests of a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NameKind {
    Tool,
    Method,
}

/// Marks each per-tool row as a tool (some request named it as its tool) or a method.
fn label_kinds(named: &mut [Named], tools: &HashSet<String>) {
    for n in named {
        n.kind = Some(if tools.contains(&n.name) {
            NameKind::Tool
        } else {
            NameKind::Method
        });
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HourBucket {
    pub hour: DateTime<Utc>,
    pub count: u64,
    pub errors: u64,
    /// Requests per tool (or method) in this hour, for per-tool charts.
    pub tools: BTreeMap<String, u64>,
    /// Unsuccessful requests per tool (or method) in this hour; tools without errors are absent.
    pub tool_errors: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayBucket {
    /// The UTC day.
    pub day: chrono::NaiveDate,
    pub count: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub since: DateTime<Utc>,
    pub totals: Group,
    pub tools: Vec<Named>,
    pub clients: Vec<Named>,
    pub hourly: Vec<HourBucket>,
    /// The hourly trend summed per UTC day.
    pub daily: Vec<DayBucket>,
    /// Requests in the period of the same length just before `since`.
    pub previous_period_requests: i64,
    /// `exact` (from the rows) or `histogram` (from hourly aggregates, within ±1/32).
    pub percentiles: &'static str,
    pub note: &'static str,
}

fn is_error(status: &str) -> bool {
    Status::parse(status).is_none_or(Status::failed)
}

/// Nearest-rank percentile of sorted durations (µs), in milliseconds.
pub fn percentile_ms(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64 / 1000.0
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Aggregates a group of rows.
pub fn group<'a>(rows: impl IntoIterator<Item = &'a StatRow>) -> Group {
    let mut durations = Vec::new();
    let mut g = Group::default();
    for row in rows {
        g.count += 1;
        g.errors += u64::from(is_error(&row.status));
        g.tokens += i64::from(row.total_tokens.unwrap_or(0));
        g.estimated_cost_usd += row.estimated_cost_usd.unwrap_or_default();
        durations.push(row.duration_us);
    }
    if g.count == 0 {
        return g;
    }
    durations.sort_unstable();
    let total: i64 = durations.iter().sum();
    g.error_rate_percent = round2(g.errors as f64 * 100.0 / g.count as f64);
    g.p50_ms = percentile_ms(&durations, 50.0);
    g.p95_ms = percentile_ms(&durations, 95.0);
    g.p99_ms = percentile_ms(&durations, 99.0);
    g.avg_ms = round2(total as f64 / durations.len() as f64 / 1000.0);
    g.max_ms = durations.last().copied().unwrap_or(0) as f64 / 1000.0;
    g
}

fn by<F: Fn(&StatRow) -> String>(rows: &[StatRow], key: F) -> Vec<Named> {
    let mut groups: BTreeMap<String, Vec<&StatRow>> = BTreeMap::new();
    for row in rows {
        groups.entry(key(row)).or_default().push(row);
    }
    let mut named: Vec<Named> = groups
        .into_iter()
        .map(|(name, rows)| Named {
            name,
            kind: None,
            stats: group(rows),
        })
        .collect();
    named.sort_by(|a, b| b.stats.count.cmp(&a.stats.count).then(a.name.cmp(&b.name)));
    named
}

/// Everything the statistics views show, from the rows of one period.
pub fn compute(rows: &[StatRow], since: DateTime<Utc>, previous_period_requests: i64) -> Stats {
    let mut hourly = Hourly::new();
    for row in rows {
        add_hour(&mut hourly, row);
    }
    let mut tools = by(rows, |r| {
        display_name(&r.method, r.tool_name.as_deref().unwrap_or(""))
    });
    let tool_names: HashSet<String> = rows
        .iter()
        .filter_map(|r| r.tool_name.clone().filter(|t| !t.is_empty()))
        .collect();
    label_kinds(&mut tools, &tool_names);
    Stats {
        since,
        totals: group(rows),
        tools,
        clients: by(rows, |r| {
            r.client_type.clone().unwrap_or_else(|| "unknown".into())
        }),
        daily: daily(&hourly),
        hourly: hourly_buckets(hourly),
        previous_period_requests,
        percentiles: "exact",
        note: "tokens and costs are estimates",
    }
}

/// Requests, errors and requests per tool, per hour.
type Hourly = BTreeMap<DateTime<Utc>, HourTally>;

#[derive(Debug, Default)]
struct HourTally {
    count: u64,
    errors: u64,
    tools: BTreeMap<String, u64>,
    tool_errors: BTreeMap<String, u64>,
}

impl HourTally {
    /// Counts `requests` of `name`, `errors` of them unsuccessful, in the per-tool tallies.
    fn add_tool(&mut self, name: String, requests: u64, errors: u64) {
        if errors > 0 {
            *self.tool_errors.entry(name.clone()).or_default() += errors;
        }
        *self.tools.entry(name).or_default() += requests;
    }
}

fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(chrono::Duration::hours(1)).unwrap_or(t)
}

fn add_hour(hourly: &mut Hourly, row: &StatRow) {
    let tally = hourly.entry(hour_of(row.timestamp)).or_default();
    tally.count += 1;
    let errors = u64::from(is_error(&row.status));
    tally.errors += errors;
    let name = display_name(&row.method, row.tool_name.as_deref().unwrap_or(""));
    tally.add_tool(name, 1, errors);
}

fn hourly_buckets(hourly: Hourly) -> Vec<HourBucket> {
    hourly
        .into_iter()
        .map(|(hour, t)| HourBucket {
            hour,
            count: t.count,
            errors: t.errors,
            tools: t.tools,
            tool_errors: t.tool_errors,
        })
        .collect()
}

fn daily(hourly: &Hourly) -> Vec<DayBucket> {
    let mut days: BTreeMap<chrono::NaiveDate, (u64, u64)> = BTreeMap::new();
    for (hour, t) in hourly {
        let day = days.entry(hour.date_naive()).or_default();
        day.0 += t.count;
        day.1 += t.errors;
    }
    days.into_iter()
        .map(|(day, (count, errors))| DayBucket { day, count, errors })
        .collect()
}

/// A [`Group`] from aggregates: exact counts, sums and maximum; percentiles from the histogram.
fn group_of(a: &Aggregate) -> Group {
    if a.sums.requests <= 0 {
        return Group::default();
    }
    let count = a.sums.requests as f64;
    Group {
        count: a.sums.requests as u64,
        errors: u64::try_from(a.sums.errors).unwrap_or(0),
        error_rate_percent: round2(a.sums.errors as f64 * 100.0 / count),
        p50_ms: histogram_percentile_ms(a, 50.0),
        p95_ms: histogram_percentile_ms(a, 95.0),
        p99_ms: histogram_percentile_ms(a, 99.0),
        avg_ms: round2(a.sums.durations.duration_us_total as f64 / count / 1000.0),
        max_ms: a.sums.durations.duration_us_max as f64 / 1000.0,
        tokens: a.sums.tokens,
        estimated_cost_usd: money_from_units(a.sums.cost_units),
    }
}

/// Nearest-rank percentile: the midpoint of the bucket holding that rank, never above the
/// maximum seen.
fn histogram_percentile_ms(a: &Aggregate, p: f64) -> f64 {
    let total: u64 = a.latency.0.iter().sum();
    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (bucket, n) in a.latency.0.iter().enumerate() {
        seen += n;
        if seen >= rank {
            let (lower, upper) = bucket_bounds(bucket as i64);
            let mid = lower + (upper - 1 - lower) / 2;
            return mid.min(a.sums.durations.duration_us_max) as f64 / 1000.0;
        }
    }
    a.sums.durations.duration_us_max as f64 / 1000.0
}

/// A period assembled from hourly aggregates and the rows of its partial first hour.
#[derive(Debug, Default)]
pub struct Rolled {
    /// By (tool or method, client type).
    cells: HashMap<(String, String), Aggregate>,
    hourly: Hourly,
    /// Names that came from a request's tool (the rest of the per-tool names are methods).
    tool_names: HashSet<String>,
}

/// The name statistics group a request under: its tool, or its method when it has none.
fn display_name(method: &str, tool: &str) -> String {
    if tool.is_empty() { method } else { tool }.to_string()
}

impl Rolled {
    fn cell(&mut self, method: &str, tool: &str, client: &str) -> &mut Aggregate {
        if !tool.is_empty() && !self.tool_names.contains(tool) {
            self.tool_names.insert(tool.to_string());
        }
        self.cells
            .entry((display_name(method, tool), client.to_string()))
            .or_default()
    }

    /// An hour's aggregates (its trend entry comes from [`Rolled::add_hour`]).
    pub fn add_cell(&mut self, c: &StatsCell) {
        self.cell(&c.method, &c.tool_name, &c.client_type)
            .add_cell(c);
        let name = display_name(&c.method, &c.tool_name);
        let tally = self.hourly.entry(c.hour).or_default();
        tally.add_tool(
            name,
            u64::try_from(c.sums.requests).unwrap_or(0),
            u64::try_from(c.sums.errors).unwrap_or(0),
        );
    }

    pub fn add_hour(&mut self, h: &HourCount) {
        let tally = self.hourly.entry(h.hour).or_default();
        tally.count += u64::try_from(h.requests).unwrap_or(0);
        tally.errors += u64::try_from(h.errors).unwrap_or(0);
    }

    /// Ledger rows of `hour` outside the whole hours the aggregates cover, by latency bucket.
    pub fn add_bucket_cell(&mut self, hour: DateTime<Utc>, c: &BucketCell) {
        let a = self.cell(&c.method, &c.tool_name, &c.client_type);
        a.sums.merge(&c.sums);
        a.latency
            .add(c.bucket, u64::try_from(c.sums.requests).unwrap_or(0));
        let tally = self.hourly.entry(hour).or_default();
        let n = u64::try_from(c.sums.requests).unwrap_or(0);
        let errors = u64::try_from(c.sums.errors).unwrap_or(0);
        tally.count += n;
        tally.errors += errors;
        tally.add_tool(display_name(&c.method, &c.tool_name), n, errors);
    }

    pub fn into_stats(self, since: DateTime<Utc>, previous_period_requests: i64) -> Stats {
        let mut totals = Aggregate::default();
        let mut tools: BTreeMap<&str, Aggregate> = BTreeMap::new();
        let mut clients: BTreeMap<&str, Aggregate> = BTreeMap::new();
        for ((tool, client), a) in &self.cells {
            totals.merge(a);
            tools.entry(tool).or_default().merge(a);
            clients.entry(client).or_default().merge(a);
        }
        let mut tools = named(tools);
        label_kinds(&mut tools, &self.tool_names);
        Stats {
            since,
            totals: group_of(&totals),
            tools,
            clients: named(clients),
            daily: daily(&self.hourly),
            hourly: hourly_buckets(self.hourly),
            previous_period_requests,
            percentiles: "histogram",
            note: "tokens and costs are estimates",
        }
    }
}

fn named(groups: BTreeMap<&str, Aggregate>) -> Vec<Named> {
    let mut named: Vec<Named> = groups
        .into_iter()
        .map(|(name, agg)| Named {
            name: name.to_string(),
            kind: None,
            stats: group_of(&agg),
        })
        .collect();
    named.sort_by(|a, b| b.stats.count.cmp(&a.stats.count).then(a.name.cmp(&b.name)));
    named
}

fn next_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    let hour = hour_of(t);
    if hour == t {
        t
    } else {
        hour + chrono::Duration::hours(1)
    }
}

/// Statistics since `since` (the API, the dashboard and `steward stats`).
pub async fn load(store: &Store, since: DateTime<Utc>) -> Result<Stats, sqlx::Error> {
    load_with_limit(store, since, EXACT_LIMIT).await
}

/// [`load`], computing exactly from rows up to `exact_limit` requests (tests lower it to
/// compare both ways on the same data).
pub async fn load_with_limit(
    store: &Store,
    since: DateTime<Utc>,
    exact_limit: usize,
) -> Result<Stats, sqlx::Error> {
    let now = Utc::now();
    let previous = count_between(store, since - (now - since), since).await?;
    let whole_hours = next_hour(since);
    let hours = store.hour_counts(whole_hours, end_of_time()).await?;
    let in_hours: i64 = hours.iter().map(|h| h.requests).sum();
    if usize::try_from(in_hours).unwrap_or(usize::MAX) <= exact_limit {
        let limit = i64::try_from(exact_limit)
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        let rows = store.stat_rows(since, None, limit).await?;
        if rows.len() <= exact_limit {
            return Ok(compute(&rows, since, previous));
        }
    }
    let mut rolled = Rolled::default();
    for cell in store.bucket_cells(since, whole_hours).await? {
        rolled.add_bucket_cell(hour_of(since), &cell);
    }
    store
        .for_each_stats_cell(whole_hours, end_of_time(), |cell| rolled.add_cell(&cell))
        .await?;
    for hour in &hours {
        rolled.add_hour(hour);
    }
    Ok(rolled.into_stats(since, previous))
}

/// Requests in `[from, to)`: whole hours from the aggregates, the partial hours at either end
/// from the ledger (an index range of at most an hour each).
pub async fn count_between(
    store: &Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let (first, last) = (next_hour(from), hour_of(to));
    if first >= last {
        return store.count_requests_between(from, to).await;
    }
    let whole: i64 = store
        .hour_counts(first, last)
        .await?
        .iter()
        .map(|h| h.requests)
        .sum();
    Ok(store.count_requests_between(from, first).await?
        + whole
        + store.count_requests_between(last, to).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tool: &str, status: &str, us: i64, cost: &str) -> StatRow {
        StatRow {
            method: "tools/call".into(),
            tool_name: Some(tool.into()),
            status: status.into(),
            duration_us: us,
            total_tokens: Some(10),
            estimated_cost_usd: Some(Money(cost.parse().unwrap())),
            client_type: Some("Claude Code".into()),
            timestamp: Utc::now(),
        }
    }

    #[test]
    fn groups_count_errors_percentiles_and_exact_cost() {
        let mut rows: Vec<StatRow> = (1..=100)
            .map(|i| row("find_tasks", "success", i * 1000, "0.1"))
            .collect();
        rows.push(row("find_tasks", "tool_error", 500_000, "0.2"));
        rows.push(row("health_check", "success", 100, "0.0000000001"));
        let stats = compute(&rows, Utc::now(), 7);
        let find = stats.tools.iter().find(|t| t.name == "find_tasks").unwrap();
        assert_eq!((find.stats.count, find.stats.errors), (101, 1));
        assert_eq!(find.stats.p50_ms, 51.0);
        assert_eq!(find.stats.max_ms, 500.0);
        assert_eq!(find.stats.error_rate_percent, 0.99);
        assert_eq!(
            stats.totals.estimated_cost_usd.0.to_string(),
            "10.2000000001"
        );
        assert_eq!(stats.clients[0].name, "Claude Code");
        assert_eq!(stats.previous_period_requests, 7);
        let hourly_errors = |name: &str| -> u64 {
            stats
                .hourly
                .iter()
                .map(|b| b.tool_errors.get(name).copied().unwrap_or(0))
                .sum()
        };
        assert_eq!(hourly_errors("find_tasks"), 1);
        assert_eq!(find.kind, Some(NameKind::Tool));
        assert!(
            stats
                .hourly
                .iter()
                .all(|b| !b.tool_errors.contains_key("health_check"))
        );
    }

    #[test]
    fn empty_periods_are_zero() {
        let stats = compute(&[], Utc::now(), 0);
        assert_eq!(stats.totals, Group::default());
        assert!(stats.tools.is_empty() && stats.hourly.is_empty());
    }
}
