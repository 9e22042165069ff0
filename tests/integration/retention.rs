//! Ledger retention: old rows fold into exact hourly rollups and leave the ledger, on both engines.

use crate::common;

use chrono::{Duration, SubsecRound, TimeZone, Utc};
use common::{TestDb, backends, open_store};
use rust_decimal::Decimal;
use steward::ledger::{LedgerRow, Micros, Status};
use steward::store::Money;
use steward::store::request_row::UpstreamHop;

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
        let by_id = |id: uuid::Uuid| stored.iter().find(|r| r.request_id == id);
        let eight = by_id(rows[8].request_id).expect("row 8");
        assert_eq!(
            eight.error_message.as_deref(),
            Some("quote ' and comma , kept")
        );
        assert_eq!(
            by_id(rows[9].request_id).expect("row 9").status.as_str(),
            "tool_error"
        );
        assert_eq!(by_id(rows[7].request_id).expect("row 7").session_id, None);
        let last = by_id(rows[236].request_id).expect("row 236");
        assert_eq!((last.duration.micros(), last.duration.millis()), (1_236, 1));
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
                ok.rollup.durations.duration_us_total,
                ok.rollup.durations.duration_us_max
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

/// Rows that stress the fresh-row path (PostgreSQL: `COPY`'s binary format; SQLite: multi-row
/// INSERT): characters COPY's text format would escape, nulls, extremes, sub-microsecond
/// times, a cost past the stored scale, a gateway hop and a subject.
fn awkward_rows() -> Vec<LedgerRow> {
    let at = Utc.timestamp_opt(1_795_000_000, 123_456_789).unwrap();
    let plain = common::ledger_row("s1", "find_tasks", at);
    let awkward = LedgerRow {
        request_id: uuid::Uuid::now_v7(),
        session_id: None,
        jsonrpc_id: Some("a\"b\\c\td\ne\rf \\N \u{e9}\u{1f600}".into()),
        method: "weird/method\\".into(),
        tool_name: None,
        status: Status::ToolError,
        error_code: Some(-32_602),
        error_message: Some("tab\there, newline\nthere, backslash \\ and \\N".into()),
        duration: Micros::from_micros(u64::from(u32::MAX) * 4),
        request_bytes: i64::MAX,
        response_bytes: 0,
        args_tokens: None,
        result_tokens: Some(i32::MAX),
        total_tokens: None,
        // Past the column's 10 places: rounded half away from zero, as when bound.
        estimated_cost_usd: Some(Money(Decimal::new(-123_456_789_015, 21))),
        pricing_model: None,
        tokenizer: None,
        sanitized: true,
        timestamp: Utc.timestamp_opt(1_795_000_001, 999_999_999).unwrap(),
        upstream: Some(UpstreamHop {
            upstream: "git\thub".into(),
            tool: Some("log\\".into()),
            duration: Micros::from_micros(u64::from(u32::MAX) + 7),
        }),
        subject: Some(uuid::Uuid::new_v4()),
        ..plain.clone()
    };
    let cheap = LedgerRow {
        request_id: uuid::Uuid::now_v7(),
        estimated_cost_usd: Some(Money(Decimal::ZERO)),
        ..plain.clone()
    };
    vec![plain, awkward, cheap]
}

/// Fresh rows are stored by each engine's bulk path; every column must hold exactly what
/// binding the same value (as every other write does) would store.
#[tokio::test]
async fn fresh_rows_are_stored_exactly_as_bound_values() -> anyhow::Result<()> {
    use sqlx::Row;
    use steward::store::{Id, Store};
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = open_store(&db).await?;
        let rows = awkward_rows();
        assert_eq!(store.insert_new_requests(&rows).await?, 3, "{backend:?}");
        for row in &rows {
            let id = Id(row.request_id);
            // The bound value, compared in the column's own terms on each engine.
            macro_rules! same {
                ($pool:expr, $sql:expr, $value:expr) => {
                    sqlx::query($sql)
                        .bind(id)
                        .bind($value)
                        .fetch_one($pool)
                        .await?
                        .get::<bool, _>(0)
                };
            }
            macro_rules! check {
                ($column:literal, $value:expr) => {
                    let same = match &store {
                        Store::Sqlite(pool) => same!(
                            pool,
                            concat!(
                                "SELECT typeof(",
                                $column,
                                ") = typeof($2) AND hex(",
                                $column,
                                ") = hex($2) FROM mcp_requests WHERE request_id = $1"
                            ),
                            $value
                        ),
                        Store::Postgres(pool) => same!(
                            pool,
                            concat!(
                                "SELECT ",
                                $column,
                                " IS NOT DISTINCT FROM $2 FROM mcp_requests WHERE request_id = $1"
                            ),
                            $value
                        ),
                    };
                    assert!(same, "{backend:?}: {} of {row:?}", $column);
                };
            }
            check!("request_id", id);
            check!("session_id", &row.session_id);
            check!("jsonrpc_id", &row.jsonrpc_id);
            check!("method", &row.method);
            check!("tool_name", &row.tool_name);
            check!("status", row.status.as_str());
            check!("error_code", row.error_code);
            check!("error_message", &row.error_message);
            check!("duration_ms", row.duration.millis());
            check!("duration_us", row.duration.micros());
            check!("request_bytes", row.request_bytes);
            check!("response_bytes", row.response_bytes);
            check!("args_tokens", row.args_tokens);
            check!("result_tokens", row.result_tokens);
            check!("total_tokens", row.total_tokens);
            check!("estimated_cost_usd", row.estimated_cost_usd);
            check!("pricing_model", &row.pricing_model);
            check!("tokenizer", &row.tokenizer);
            check!("sanitized", row.sanitized);
            check!("timestamp", row.timestamp);
            let hop = row.upstream.as_ref();
            check!("upstream", hop.map(|h| h.upstream.as_str()));
            check!("upstream_tool", hop.and_then(|h| h.tool.as_deref()));
            check!("upstream_us", hop.map(|h| h.duration.micros()));
            check!("subject_id", row.subject.map(Id));
            if let Store::Postgres(pool) = &store {
                // The cost's text too: the column's scale, as a bound value is stored.
                let sql = "SELECT estimated_cost_usd::text IS NOT DISTINCT FROM \
                           $2::numeric(20, 10)::text FROM mcp_requests WHERE request_id = $1";
                let same: bool = sqlx::query_scalar(sql)
                    .bind(id)
                    .bind(row.estimated_cost_usd)
                    .fetch_one(pool)
                    .await?;
                assert!(same, "cost text of {row:?}");
            }
        }
        // A fresh batch holding a stored row is refused whole; the deduplicating form then
        // stores the rest once.
        let mut again = awkward_rows();
        again[1].request_id = rows[1].request_id;
        assert!(
            store.insert_new_requests(&again).await.is_err(),
            "{backend:?}"
        );
        assert_eq!(store.count_requests().await?, 3, "{backend:?}");
        assert_eq!(store.insert_requests(&again).await?, 2, "{backend:?}");
        assert_eq!(store.count_requests().await?, 5, "{backend:?}");
    }
    Ok(())
}

/// The totals `rows` add up to for `session`, as the store should report them (`None`: the
/// session has no rows).
fn totals_of(rows: &[LedgerRow], session: &str) -> Option<(i64, i64, i64, Decimal, i64)> {
    let mine: Vec<&LedgerRow> = rows
        .iter()
        .filter(|r| r.session_id.as_deref() == Some(session))
        .collect();
    let errors = mine
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                Status::Error | Status::ToolError | Status::Timeout
            )
        })
        .count();
    let tokens: i64 = mine
        .iter()
        .filter_map(|r| r.total_tokens)
        .map(i64::from)
        .sum();
    let cost: Decimal = mine
        .iter()
        .filter_map(|r| r.estimated_cost_usd)
        .map(|m| m.0)
        .sum();
    let tool_calls = mine.iter().filter(|r| r.method == "tools/call").count();
    (!mine.is_empty()).then_some((
        mine.len() as i64,
        errors as i64,
        tokens,
        cost,
        tool_calls as i64,
    ))
}

/// Per-session totals are kept in their own table by the ledger's writes: every stored row
/// counts once (a replayed or re-offered row does not count again, on both write paths), and
/// pruned rows leave them, a session's first request moving to its oldest row left.
#[tokio::test]
async fn session_totals_follow_stored_replayed_and_pruned_rows() -> anyhow::Result<()> {
    let sessions = ["s1", "s2", "s3"];
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = open_store(&db).await?;
        let mut rows: Vec<LedgerRow> = (0..60)
            .map(|i| {
                let status = [Status::Success, Status::ToolError, Status::Cancelled][i % 3];
                let cost = ["0.0000000001", "0.25", "3"][i % 3];
                let mut r = row(59 - (i as i64), "find_tasks", status, cost, 700);
                r.session_id = Some(sessions[i % 3].into());
                // Whole seconds and fractions of several widths sort as times on both engines.
                r.timestamp += Duration::microseconds([0, 120_000, 123_456][i % 3]);
                r.total_tokens = Some(i as i32);
                if i % 7 == 0 {
                    r.method = "resources/read".into();
                }
                r
            })
            .collect();
        rows[4].session_id = None;
        // Rows of s2 are all old; s1 and s3 also have recent ones.
        // (Whole microseconds: PostgreSQL keeps no more.)
        let recent = Utc::now().trunc_subsecs(6) - Duration::minutes(1);
        for r in rows
            .iter_mut()
            .filter(|r| r.session_id.as_deref() != Some("s2"))
            .take(6)
        {
            r.timestamp = recent;
        }
        assert_eq!(store.insert_requests(&rows[..10]).await?, 10);
        assert_eq!(
            store.insert_requests(&rows).await?,
            50,
            "the 10 stored rows are skipped"
        );
        let fresh: Vec<LedgerRow> = rows[..5]
            .iter()
            .map(|r| LedgerRow {
                request_id: uuid::Uuid::new_v4(),
                ..r.clone()
            })
            .collect();
        assert_eq!(store.insert_new_requests(&fresh).await?, 5, "{backend:?}");
        assert!(
            store.insert_new_requests(&fresh).await.is_err(),
            "{backend:?}"
        );
        rows.extend(fresh);

        let ids: Vec<String> = sessions.iter().map(|s| s.to_string()).collect();
        let check = |stored: &[LedgerRow], what: &str| {
            let stored = stored.to_vec();
            let store = store.clone();
            let ids = ids.clone();
            let what = format!("{backend:?}, {what}");
            async move {
                let totals = store.session_totals(&ids).await?;
                for session in sessions {
                    let expected = totals_of(&stored, session);
                    let shown = totals.get(session);
                    let activity = store.session_activity(session).await?;
                    let Some((requests, errors, tokens, cost, tool_calls)) = expected else {
                        anyhow::ensure!(
                            shown.is_none(),
                            "{what}: {session} has no rows: {shown:?}"
                        );
                        anyhow::ensure!(activity.tool_calls == 0, "{what}: {session}");
                        continue;
                    };
                    let shown =
                        shown.ok_or_else(|| anyhow::anyhow!("{what}: no totals of {session}"))?;
                    let mine = stored
                        .iter()
                        .filter(|r| r.session_id.as_deref() == Some(session));
                    let times: Vec<_> = mine.map(|r| r.timestamp).collect();
                    assert_eq!(
                        (
                            shown.requests,
                            shown.errors,
                            shown.estimated_tokens,
                            shown.estimated_cost_usd.0
                        ),
                        (requests, errors, tokens, cost),
                        "{what}: {session}"
                    );
                    assert_eq!(
                        shown.first_request_at,
                        times.iter().min().copied(),
                        "{what}: {session}"
                    );
                    assert_eq!(
                        shown.last_request_at,
                        times.iter().max().copied(),
                        "{what}: {session}"
                    );
                    assert_eq!(activity.tool_calls, tool_calls, "{what}: {session}");
                }
                anyhow::Ok(())
            }
        };
        check(&rows, "stored").await?;

        // Prune in small batches (a batch may end between rows of the same instant).
        let cutoff = Utc::now() - Duration::days(1);
        assert_eq!(store.prune_requests(cutoff, 7).await?, 7);
        let left: Vec<LedgerRow> = {
            let (records, _) = store.list_requests(&Default::default(), 500, 0).await?;
            records.into_iter().map(|r| r.0).collect()
        };
        check(&left, "after pruning 7 rows").await?;
        while store.prune_requests(cutoff, 7).await? > 0 {}
        let left: Vec<LedgerRow> = rows
            .iter()
            .filter(|r| r.timestamp >= cutoff)
            .cloned()
            .collect();
        assert_eq!(
            store.count_requests().await?,
            left.len() as i64,
            "{backend:?}"
        );
        assert!(totals_of(&left, "s2").is_none() && totals_of(&left, "s1").is_some());
        check(&left, "after pruning every old row").await?;
    }
    Ok(())
}
