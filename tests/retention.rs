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

/// The writer's batches come in every size (SQLite stores them in fixed-size chunks, PostgreSQL
/// as one array per column): every row lands once, with its values, and a replayed batch that
/// overlaps stored rows adds only the new ones.
#[tokio::test]
async fn ledger_batches_of_any_size_store_every_row_exactly_once() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = open_store(&db).await?;
        let mut rows: Vec<LedgerRow> = (0..237)
            .map(|i| {
                row(
                    i % 50,
                    "find_tasks",
                    Status::Success,
                    "0.0000012345",
                    1_000 + i as u64,
                )
            })
            .collect();
        rows[7].session_id = None;
        rows[8].error_message = Some("quote ' and comma , kept".into());
        rows[9].status = Status::ToolError;
        assert_eq!(store.insert_requests(&rows[..3]).await?, 3, "{backend:?}");
        assert_eq!(
            store.insert_requests(&rows).await?,
            234,
            "{backend:?}: the 3 stored rows are skipped"
        );
        assert_eq!(store.count_requests().await?, 237, "{backend:?}");
        // The writer's first try of fresh rows skips reading back ids; rows that turn out to be
        // stored already make it refuse the whole batch rather than count them twice.
        let fresh: Vec<LedgerRow> = (0..41)
            .map(|i| row(i % 50, "find_tasks", Status::Success, "0.0000012345", 500))
            .collect();
        assert_eq!(store.insert_new_requests(&fresh).await?, 41, "{backend:?}");
        assert!(
            store.insert_new_requests(&fresh[40..]).await.is_err(),
            "{backend:?}: a stored row offered as new is refused"
        );
        assert_eq!(store.insert_requests(&fresh).await?, 0, "{backend:?}");
        assert_eq!(store.count_requests().await?, 278, "{backend:?}");
        let (stored, total) = store.list_requests(&Default::default(), 500, 0).await?;
        assert_eq!(total, 278, "{backend:?}");
        let by_id = |id: uuid::Uuid| stored.iter().find(|r| r.request_id.0 == id);
        let eight = by_id(rows[8].request_id).expect("row 8");
        assert_eq!(
            eight.error_message.as_deref(),
            Some("quote ' and comma , kept")
        );
        assert_eq!(
            by_id(rows[9].request_id).expect("row 9").status,
            "tool_error"
        );
        assert_eq!(by_id(rows[7].request_id).expect("row 7").session_id, None);
        let last = by_id(rows[236].request_id).expect("row 236");
        assert_eq!((last.duration_us, last.duration_ms), (1_236, 1));
        assert_eq!(
            last.estimated_cost_usd.map(|m| m.0.to_string()).as_deref(),
            Some("0.0000012345")
        );
    }
    Ok(())
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
