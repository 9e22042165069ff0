//! Request statistics for the API, the dashboard and `steward stats`: per tool and per client
//! type, counts, errors, latency percentiles, estimated tokens and cost, and an hourly trend.
//! Aggregated in Rust so money stays exact on both engines.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, Utc};
use serde::Serialize;

use crate::store::Money;
use crate::store::requests::StatRow;

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
    #[serde(flatten)]
    pub stats: Group,
}

#[derive(Debug, Clone, Serialize)]
pub struct HourBucket {
    pub hour: DateTime<Utc>,
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
    /// Requests in the period of the same length just before `since`.
    pub previous_period_requests: i64,
    /// Set when the period held more rows than were read.
    pub truncated: bool,
    pub note: &'static str,
}

fn is_error(status: &str) -> bool {
    status != "success"
}

/// Nearest-rank percentile of sorted durations (µs), in milliseconds.
fn percentile_ms(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64 / 1000.0
}

fn round2(x: f64) -> f64 {
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
            stats: group(rows),
        })
        .collect();
    named.sort_by(|a, b| b.stats.count.cmp(&a.stats.count).then(a.name.cmp(&b.name)));
    named
}

/// Everything the statistics views show, from the rows of one period.
pub fn compute(
    rows: &[StatRow],
    since: DateTime<Utc>,
    previous_period_requests: i64,
    truncated: bool,
) -> Stats {
    let mut hourly: BTreeMap<DateTime<Utc>, (u64, u64)> = BTreeMap::new();
    for row in rows {
        let hour = row
            .timestamp
            .duration_trunc(chrono::Duration::hours(1))
            .unwrap_or(row.timestamp);
        let bucket = hourly.entry(hour).or_default();
        bucket.0 += 1;
        bucket.1 += u64::from(is_error(&row.status));
    }
    Stats {
        since,
        totals: group(rows),
        tools: by(rows, |r| {
            r.tool_name.clone().unwrap_or_else(|| r.method.clone())
        }),
        clients: by(rows, |r| {
            r.client_type.clone().unwrap_or_else(|| "unknown".into())
        }),
        hourly: hourly
            .into_iter()
            .map(|(hour, (count, errors))| HourBucket {
                hour,
                count,
                errors,
            })
            .collect(),
        previous_period_requests,
        truncated,
        note: "tokens and costs are estimates",
    }
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
        let stats = compute(&rows, Utc::now(), 7, false);
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
    }

    #[test]
    fn empty_periods_are_zero() {
        let stats = compute(&[], Utc::now(), 0, false);
        assert_eq!(stats.totals, Group::default());
        assert!(stats.tools.is_empty() && stats.hourly.is_empty());
    }
}
