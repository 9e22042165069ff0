//! Ledger retention: old rows fold into exact hourly rollups and leave the ledger, on both engines.

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::{TestDb, backends, open_store};
use rust_decimal::Decimal;
use steward::ledger::{LedgerRow, Micros, Status};
use steward::store::Money;

fn row(minutes_ago: i64, tool: &str, status: Status, cost: &str, duration_us: u64) -> LedgerRow {
    let at =
        Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap() + Duration::minutes(59 - minutes_ago);
    LedgerRow {
        status,
        duration: Micros::from_micros(duration_us),
        estimated_cost_usd: Some(Money(cost.parse().expect("decimal"))),
        ..common::ledger_row("s1", tool, at)
    }
}

#[tokio::test]
async fn old_rows_fold_into_exact_hourly_rollups() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = open_store(&db).await?;
        // Three rows in the 10:00 hour (two find_tasks successes, one failure), one recent row.
        let mut rows = vec![
            row(5, "find_tasks", Status::Success, "0.0000000001", 1_500),
            row(10, "find_tasks", Status::Success, "0.1000000002", 2_500),
            row(20, "find_tasks", Status::ToolError, "0.3", 900),
        ];
        let mut recent = row(0, "find_tasks", Status::Success, "1", 1);
        recent.timestamp = Utc::now();
        rows.push(recent);
        assert_eq!(store.insert_requests(&rows).await?, 4);

        let cutoff = Utc::now() - Duration::days(1);
        // A batch of 2 leaves one old row for the next batch: sums must still be exact.
        assert_eq!(store.prune_requests(cutoff, 2).await?, 2);
        assert_eq!(store.prune_requests(cutoff, 2).await?, 1);
        assert_eq!(store.prune_requests(cutoff, 2).await?, 0);
        assert_eq!(
            store.count_requests().await?,
            1,
            "{backend:?}: only the recent row stays"
        );

        let rollups = store.request_rollups().await?;
        assert_eq!(
            rollups.len(),
            2,
            "{backend:?}: one rollup per (hour, tool, status)"
        );
        let ok = rollups
            .iter()
            .find(|r| r.status == "success")
            .expect("success rollup");
        assert_eq!(ok.hour, Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap());
        assert_eq!(
            (
                ok.rollup.requests,
                ok.rollup.duration_us_total,
                ok.rollup.duration_us_max
            ),
            (2, 4_000, 2_500)
        );
        assert_eq!((ok.rollup.args_tokens, ok.rollup.result_tokens), (6, 10));
        assert_eq!(
            ok.rollup.estimated_cost_usd.0,
            Decimal::new(1000000003, 10),
            "{backend:?}: exact money"
        );
        let failed = rollups
            .iter()
            .find(|r| r.status == "tool_error")
            .expect("tool_error rollup");
        assert_eq!(failed.rollup.requests, 1);
    }
    Ok(())
}
