//! Estimated cost and tokens over time (per hour or per UTC day) and by client type and client
//! name, for `GET /api/cost` and the dashboard's overview. Money is summed as integer units of
//! 1e-10 USD, never as a float.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, Utc};
use serde::Serialize;

use crate::store::cost::{ClientCost, CostSums};
use crate::store::request_stats::money_from_units;
use crate::store::{Money, Store};

/// The width of one point of the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    /// As `bucket=` names it.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }

    fn width(self) -> chrono::Duration {
        match self {
            Bucket::Hour => chrono::Duration::hours(1),
            Bucket::Day => chrono::Duration::days(1),
        }
    }

    /// The most points one answer has: 31 days of hours, or a year and a day of days.
    pub fn max_points(self) -> i64 {
        match self {
            Bucket::Hour => 31 * 24,
            Bucket::Day => 366,
        }
    }

    /// The start of the bucket holding `t`.
    pub fn start_of(self, t: DateTime<Utc>) -> DateTime<Utc> {
        t.duration_trunc(self.width()).unwrap_or(t)
    }
}

/// Sums of one point or one group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sums {
    pub requests: i64,
    pub errors: i64,
    pub tokens: i64,
    pub estimated_cost_usd: Money,
}

impl From<&CostSums> for Sums {
    fn from(s: &CostSums) -> Self {
        Sums {
            requests: s.requests,
            errors: s.errors,
            tokens: s.tokens,
            estimated_cost_usd: money_from_units(s.cost_units).stored(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub start: DateTime<Utc>,
    #[serde(flatten)]
    pub sums: Sums,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientSums {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    pub client_type: String,
    #[serde(flatten)]
    pub sums: Sums,
}

/// The cost report of one period.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// The start of the first bucket (the period's start, rounded down to its bucket).
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub bucket: Bucket,
    /// Every bucket of the period, oldest first, empty ones included.
    pub series: Vec<Point>,
    pub totals: Sums,
    /// By client type, most expensive first.
    pub client_types: Vec<ClientSums>,
    /// By client name (and type), most expensive first.
    pub client_names: Vec<ClientSums>,
    pub note: &'static str,
}

/// Why a period cannot be reported.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error(
        "the period has {points} {name} buckets; at most {max} fit one answer: use a later since or bucket=day",
        name = .bucket.name()
    )]
    TooLong {
        points: i64,
        bucket: Bucket,
        max: i64,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The series of `bucket`s from `since` to `until` (both rounded to their buckets), each
/// hour's sums added to the bucket it falls in.
pub fn series(
    hours: &[(DateTime<Utc>, CostSums)],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket: Bucket,
) -> Vec<Point> {
    let mut points: BTreeMap<DateTime<Utc>, CostSums> = BTreeMap::new();
    let mut at = bucket.start_of(since);
    while at < until {
        points.insert(at, CostSums::default());
        at += bucket.width();
    }
    for (hour, sums) in hours {
        *points.entry(bucket.start_of(*hour)).or_default() += sums;
    }
    points
        .into_iter()
        .map(|(start, sums)| Point {
            start,
            sums: Sums::from(&sums),
        })
        .collect()
}

fn by_cost(rows: Vec<ClientCost>, named: bool) -> Vec<ClientSums> {
    let mut rows: Vec<(i64, ClientSums)> = rows
        .into_iter()
        .map(|r| {
            let sums = ClientSums {
                client_name: named.then_some(r.client_name),
                client_type: r.client_type,
                sums: Sums::from(&r.sums),
            };
            (r.sums.cost_units, sums)
        })
        .collect();
    rows.sort_by(|(a, x), (b, y)| {
        b.cmp(a)
            .then(y.sums.requests.cmp(&x.sums.requests))
            .then(x.client_name.cmp(&y.client_name))
            .then(x.client_type.cmp(&y.client_type))
    });
    rows.into_iter().map(|(_, sums)| sums).collect()
}

/// The report from `since` until now, in `bucket`s.
pub async fn load(store: &Store, since: DateTime<Utc>, bucket: Bucket) -> Result<Cost, CostError> {
    let now = Utc::now();
    let since = bucket.start_of(since.min(now));
    let until = bucket.start_of(now) + bucket.width();
    let points = (until - since).num_seconds() / bucket.width().num_seconds();
    if points > bucket.max_points() {
        return Err(CostError::TooLong {
            points,
            bucket,
            max: bucket.max_points(),
        });
    }
    let period = store.period_cost(since, until).await?;
    let hours: Vec<_> = period.hours.into_iter().map(|h| (h.hour, h.sums)).collect();
    let mut totals = CostSums::default();
    for (_, sums) in &hours {
        totals += sums;
    }
    Ok(Cost {
        since,
        until,
        bucket,
        series: series(&hours, since, until, bucket),
        totals: Sums::from(&totals),
        client_types: by_cost(period.client_types, false),
        client_names: by_cost(period.client_names, true),
        note: "tokens and costs are estimates; client names come from the ledger's rows, which retention prunes (the series and client types outlive it)",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::hours(h)
    }

    fn sums(requests: i64, cost_units: i64) -> CostSums {
        CostSums {
            requests,
            errors: 0,
            tokens: requests * 10,
            cost_units,
        }
    }

    #[test]
    fn hours_fold_into_days_and_empty_buckets_are_kept() {
        let hours = [
            (at(1), sums(2, 5)),
            (at(23), sums(1, 1)),
            (at(49), sums(4, 10)),
        ];
        let days = series(&hours, at(3), at(72), Bucket::Day);
        let counts: Vec<i64> = days.iter().map(|p| p.sums.requests).collect();
        assert_eq!(counts, [3, 0, 4], "since is rounded down to its day");
        assert_eq!(days[0].sums.estimated_cost_usd.to_string(), "0.0000000006");
        assert_eq!(days[1].sums.tokens, 0);
        let hourly = series(&hours[..1], at(0), at(3), Bucket::Hour);
        let counts: Vec<i64> = hourly.iter().map(|p| p.sums.requests).collect();
        assert_eq!(counts, [0, 2, 0]);
    }
}
