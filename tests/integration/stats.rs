//! Statistics at scale, on both engines: the hourly aggregates the ledger keeps (and migration
//! 0009 backfills) give the same counts, errors, tokens and exact cost as the rows themselves,
//! and percentiles within the histogram's ±1/32. Timings over a million rows: the `#[ignore]`d
//! `stats_over_a_million_rows` (see BENCHMARKS.md).

use crate::common;

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::{Backend, TestDb, backends, ledger_row, new_session, open_store};
use steward::ledger::{LedgerRow, Micros, Status};
use steward::stats::{Stats, load_with_limit};
use steward::store::{Id, Money, Store};

/// Rows over the last three hours and a bit: two client types, three tools, failures, durations
/// from 3 µs to 2 s, costs with ten decimals.
fn sample_rows(now: DateTime<Utc>) -> Vec<LedgerRow> {
    (0..900_i64)
        .map(|i| {
            let tool = ["find_tasks", "manage_task", "health_check"][(i % 3) as usize];
            let session = if i % 4 == 0 { "cursor-1" } else { "claude-1" };
            LedgerRow {
                status: if i % 17 == 0 {
                    Status::ToolError
                } else {
                    Status::Success
                },
                duration: Micros::from_micros(((i * 7919) % 2_000_000 + 3) as u64),
                total_tokens: Some((i % 50) as i32),
                estimated_cost_usd: Some(Money(rust_decimal::Decimal::new(i * 37 + 1, 10))),
                ..ledger_row(session, tool, now - Duration::seconds(i * 13 + 5))
            }
        })
        .collect()
}

async fn seed_sessions(store: &Store, now: DateTime<Utc>) -> anyhow::Result<()> {
    store
        .insert_session(&new_session(
            "claude-1",
            "Claude Code",
            now - Duration::hours(5),
        ))
        .await?;
    store
        .insert_session(&new_session("cursor-1", "Cursor", now - Duration::hours(5)))
        .await?;
    Ok(())
}

/// Each tool's name and percentiles.
fn percentiles(s: &Stats) -> Vec<(String, f64, f64, f64)> {
    s.tools
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.stats.p50_ms,
                t.stats.p95_ms,
                t.stats.p99_ms,
            )
        })
        .collect()
}

/// Asserts two answers agree: exactly on everything but percentiles, which may differ by the
/// histogram's resolution.
fn assert_agree(exact: &Stats, rolled: &Stats, what: &str) {
    assert_eq!(exact.percentiles, "exact", "{what}");
    assert_eq!(rolled.percentiles, "histogram", "{what}");
    let close = |a: f64, b: f64| (a - b).abs() <= a.abs() / 32.0 + 0.001;
    let pairs = std::iter::once((&exact.totals, &rolled.totals, "totals")).chain(
        exact
            .tools
            .iter()
            .chain(&exact.clients)
            .zip(rolled.tools.iter().chain(&rolled.clients))
            .map(|(a, b)| {
                assert_eq!(a.name, b.name, "{what}");
                (&a.stats, &b.stats, a.name.as_str())
            }),
    );
    for (a, b, name) in pairs {
        assert_eq!(
            (a.count, a.errors, a.tokens, a.estimated_cost_usd),
            (b.count, b.errors, b.tokens, b.estimated_cost_usd),
            "{what}: {name}"
        );
        assert_eq!(
            (a.max_ms, a.avg_ms, a.error_rate_percent),
            (b.max_ms, b.avg_ms, b.error_rate_percent),
            "{what}: {name}"
        );
        for (p, x, y) in [
            ("p50", a.p50_ms, b.p50_ms),
            ("p95", a.p95_ms, b.p95_ms),
            ("p99", a.p99_ms, b.p99_ms),
        ] {
            assert!(
                close(x, y),
                "{what}: {name} {p}: exact {x} ms, histogram {y} ms"
            );
        }
    }
    assert_eq!(exact.tools.len(), rolled.tools.len(), "{what}");
    assert_eq!(exact.clients.len(), rolled.clients.len(), "{what}");
    let hours = |s: &Stats| {
        s.hourly
            .iter()
            .map(|h| (h.hour, h.count, h.errors, h.tools.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(hours(exact), hours(rolled), "{what}");
    assert_eq!(
        exact.previous_period_requests, rolled.previous_period_requests,
        "{what}"
    );
}

#[tokio::test]
async fn hourly_aggregates_agree_with_the_rows() -> anyhow::Result<()> {
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = open_store(&db).await?;
        let now = Utc::now();
        seed_sessions(&store, now).await?;
        let rows = sample_rows(now);
        for chunk in rows.chunks(250) {
            store.insert_requests(chunk).await?;
        }
        // Replaying a batch stores nothing and counts nothing twice.
        assert_eq!(store.insert_requests(&rows[..250]).await?, 0);
        // A period starting mid-hour: the partial hour comes from rows, the rest from aggregates.
        let since = now - Duration::minutes(150);
        let exact = load_with_limit(&store, since, usize::MAX).await?;
        let rolled = load_with_limit(&store, since, 0).await?;
        assert!(
            exact.totals.count > 500,
            "{backend:?}: {}",
            exact.totals.count
        );
        assert_agree(&exact, &rolled, backend.name());
        let claude = exact.clients.iter().find(|c| c.name == "Claude Code");
        assert_eq!(claude.map(|c| c.stats.count > 0), Some(true), "{backend:?}");
        // A partial first hour is bucketed in SQL, whole hours were bucketed in Rust as they
        // were written: starting a microsecond after an hour boundary (no row sits on it) must
        // not change a count or a percentile.
        let boundary = (now - Duration::hours(2)).duration_trunc(Duration::hours(1))?;
        let whole = load_with_limit(&store, boundary, 0).await?;
        let partial = load_with_limit(&store, boundary + Duration::microseconds(1), 0).await?;
        assert_eq!(whole.totals, partial.totals, "{backend:?}");
        assert_eq!(percentiles(&whole), percentiles(&partial), "{backend:?}");
        // The period before (now - 300 min .. now - 150 min) holds the rest of the rows.
        assert_eq!(
            exact.previous_period_requests,
            900 - exact.totals.count as i64,
            "{backend:?}"
        );
        store.close().await;
    }
    Ok(())
}

/// Runs the migrations before 0009 only, as a database made by an older Steward would be.
async fn open_before_0009(db: &TestDb) -> anyhow::Result<Store> {
    let keep = |m: &mut sqlx::migrate::Migrator| {
        m.migrations = m
            .migrations
            .iter()
            .filter(|x| x.version < 9)
            .cloned()
            .collect::<Vec<_>>()
            .into();
    };
    Ok(match db.backend {
        Backend::Sqlite => {
            let options = db
                .url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()?
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await?;
            let mut m = sqlx::migrate!("./migrations/sqlite");
            keep(&mut m);
            m.run(&pool).await?;
            Store::Sqlite(pool)
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await?;
            let mut m = sqlx::migrate!("./migrations/postgres");
            keep(&mut m);
            m.run(&pool).await?;
            Store::Postgres(pool)
        }
    })
}

/// Stores rows the way Steward did before 0009: the ledger only.
async fn insert_ledger_only(store: &Store, rows: &[LedgerRow]) -> anyhow::Result<()> {
    let sql = "INSERT INTO mcp_requests (request_id, session_id, method, tool_name, status, duration_ms, \
               duration_us, total_tokens, estimated_cost_usd, timestamp) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    macro_rules! insert {
        ($pool:expr) => {{
            let mut tx = $pool.begin().await?;
            for r in rows {
                sqlx::query(sql)
                    .bind(Id(r.request_id))
                    .bind(&r.session_id)
                    .bind(&r.method)
                    .bind(&r.tool_name)
                    .bind(r.status.as_str())
                    .bind(r.duration.millis())
                    .bind(r.duration.micros())
                    .bind(r.total_tokens)
                    .bind(r.estimated_cost_usd)
                    .bind(r.timestamp)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }};
    }
    match store {
        Store::Sqlite(pool) => insert!(pool),
        Store::Postgres(pool) => insert!(pool),
    }
    Ok(())
}

#[tokio::test]
async fn migration_0009_backfills_the_aggregates_of_existing_rows() -> anyhow::Result<()> {
    for backend in backends() {
        let now = Utc::now();
        let rows = sample_rows(now);
        let since = now - Duration::minutes(150);

        let old = TestDb::new(backend).await?;
        let store = open_before_0009(&old).await?;
        seed_sessions(&store, now).await?;
        insert_ledger_only(&store, &rows).await?;
        store.close().await;
        let store = open_store(&old).await?; // applies 0009
        let backfilled = load_with_limit(&store, since, 0).await?;
        let exact = load_with_limit(&store, since, usize::MAX).await?;
        store.close().await;

        let fresh = TestDb::new(backend).await?;
        let store = open_store(&fresh).await?;
        seed_sessions(&store, now).await?;
        for chunk in rows.chunks(500) {
            store.insert_requests(chunk).await?;
        }
        let written = load_with_limit(&store, since, 0).await?;
        store.close().await;

        assert_agree(&exact, &backfilled, backend.name());
        // The backfill in SQL and the ledger writer in Rust bucket every latency alike.
        assert_eq!(
            percentiles(&backfilled),
            percentiles(&written),
            "{backend:?}"
        );
        assert_eq!(backfilled.totals, written.totals, "{backend:?}");
    }
    Ok(())
}

/// Seeds `n` ledger rows spread over the last 24 hours through the real write path (so the
/// aggregates are built as in production): 20 tools, 3 client types, 2% failures.
async fn seed_day(store: &Store, n: usize, now: DateTime<Utc>) -> anyhow::Result<()> {
    for (i, client) in ["Claude Code", "Cursor", "VS Code"].iter().enumerate() {
        store
            .insert_session(&new_session(
                &format!("bench-{i}"),
                client,
                now - Duration::days(2),
            ))
            .await?;
    }
    let step_us = 86_400_000_000 / n as i64;
    let rows: Vec<LedgerRow> = (0..n as i64)
        .map(|i| LedgerRow {
            status: if i % 50 == 0 {
                Status::ToolError
            } else {
                Status::Success
            },
            duration: Micros::from_micros((200 + (i * 7919) % 400_000) as u64),
            ..ledger_row(
                &format!("bench-{}", i % 3),
                &format!("tool_{:02}", i % 20),
                now - Duration::microseconds(i * step_us + 1),
            )
        })
        .collect();
    for chunk in rows.chunks(500) {
        store.insert_requests(chunk).await?;
    }
    Ok(())
}

/// Milliseconds of the fastest, median and slowest of `runs` loads since `since`.
async fn time_loads(
    store: &Store,
    since: DateTime<Utc>,
    runs: usize,
) -> anyhow::Result<(f64, f64, f64, u64)> {
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..runs {
        let start = std::time::Instant::now();
        let stats = steward::stats::load(store, since).await?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        count = stats.totals.count;
    }
    times.sort_by(f64::total_cmp);
    Ok((times[0], times[runs / 2], times[runs - 1], count))
}

/// `STEWARD_STATS_ROWS=1000000 cargo test --release --test stats -- --ignored --nocapture`
/// (BENCHMARKS.md): seeds the rows on each engine, then times `/api/stats`'s query for the
/// last hour, day and week. Prints timings; asserts nothing about them (machines differ).
#[tokio::test]
#[ignore = "seeds a million rows: a benchmark, run by hand"]
async fn stats_over_a_million_rows() -> anyhow::Result<()> {
    let n: usize = std::env::var("STEWARD_STATS_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    for backend in backends() {
        let db = TestDb::new(backend).await?;
        let store = open_store(&db).await?;
        let now = Utc::now();
        let start = std::time::Instant::now();
        seed_day(&store, n, now).await?;
        println!(
            "{}: seeded {n} rows in {:.1} s",
            backend.name(),
            start.elapsed().as_secs_f64()
        );
        if let Store::Postgres(pool) = &store {
            sqlx::query("VACUUM ANALYZE").execute(pool).await?;
        }
        for (label, back) in [
            ("1h", Duration::hours(1)),
            ("24h", Duration::hours(24)),
            ("7d", Duration::days(7)),
        ] {
            let (min, median, max, count) = time_loads(&store, Utc::now() - back, 7).await?;
            println!(
                "{}: stats since {label}: {count} requests, min {min:.1} ms, median {median:.1} ms, max {max:.1} ms",
                backend.name()
            );
        }
        // What /api/stats did before the aggregates: read (up to 200,000) rows, then compute.
        let start = std::time::Instant::now();
        let rows = store
            .stat_rows(Utc::now() - Duration::hours(24), None, 200_001)
            .await?;
        let counted = steward::stats::compute(&rows, now, 0).totals.count;
        println!(
            "{}: before (rows read and computed, capped at 200,000): {counted} rows in {:.1} ms",
            backend.name(),
            start.elapsed().as_secs_f64() * 1000.0
        );
        store.close().await;
    }
    Ok(())
}

/// What the ledger's writes leave in `mcp_request_stats` and `mcp_session_totals` (every row,
/// sorted), after `sample` was written as [`aggregates_of_a_ledger_written_in_batches`] writes it.
async fn aggregates_after_writing(
    backend: Backend,
    sample: &[LedgerRow],
    now: DateTime<Utc>,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let db = TestDb::new(backend).await?;
    let store = open_store(&db).await?;
    let start = now - Duration::hours(5);
    for (id, client_type) in [
        ("claude-1", "Claude Code"),
        ("cursor-1", "Cursor"),
        ("codex-1", "Codex"),
        ("other-1", "Gemini CLI"),
    ] {
        store
            .insert_session(&new_session(id, client_type, start))
            .await?;
    }
    // A stored statistics row of a key this sample's rows share but for its client type
    // (`other-1` writes nothing here): read beside the batch's own keys, it must stay as it is.
    store
        .insert_new_requests(&[ledger_row("other-1", "find_tasks", sample[0].timestamp)])
        .await?;
    let (first, rest) = sample.split_at(sample.len() / 3);
    assert_eq!(store.insert_new_requests(first).await?, first.len() as u64);
    for chunk in rest.chunks(97) {
        assert_eq!(store.insert_new_requests(chunk).await?, chunk.len() as u64);
    }
    // Replayed, with the stored rows skipped: nothing counted twice, new rows added.
    let again: Vec<LedgerRow> = sample[..40]
        .iter()
        .cloned()
        .chain(sample[..25].iter().map(|r| LedgerRow {
            request_id: uuid::Uuid::new_v4(),
            ..r.clone()
        }))
        .collect();
    assert_eq!(store.insert_requests(&again).await?, 25, "{backend:?}");
    let mut cells = Vec::new();
    store
        .for_each_stats_cell(start, now + Duration::hours(1), |c| {
            cells.push(format!(
                "{} {} {} {} {:?} {}",
                c.hour.to_rfc3339(),
                c.method,
                c.tool_name,
                c.client_type,
                c.sums,
                c.latency
            ))
        })
        .await?;
    cells.sort();
    let ids: Vec<String> = ["claude-1", "cursor-1", "codex-1", "other-1", "gone-1"]
        .map(String::from)
        .to_vec();
    let mut totals: Vec<String> = store
        .session_totals(&ids)
        .await?
        .into_iter()
        .map(|(id, t)| format!("{id} {t:?}"))
        .collect();
    totals.sort();
    store.close().await;
    Ok((cells, totals))
}

/// The statistics and session totals a ledger written in batches keeps are the same on both
/// engines (PostgreSQL adds them in fewer, merged statements): rows of three client types, of
/// a session not stored (`unknown`) and of none, over several hours, methods and tools, with
/// failures and durations across the histogram, written fresh and replayed.
#[tokio::test]
async fn aggregates_of_a_ledger_written_in_batches() -> anyhow::Result<()> {
    // Whole microseconds: PostgreSQL keeps no more.
    let now = Utc::now().duration_trunc(Duration::microseconds(1))?;
    let sessions = [
        Some("claude-1"),
        Some("cursor-1"),
        Some("codex-1"),
        Some("gone-1"),
        None,
    ];
    let sample: Vec<LedgerRow> = (0..400_i64)
        .map(|i| {
            let tool = ["find_tasks", "manage_task", "health_check"][(i % 3) as usize];
            let mut row = LedgerRow {
                status: [
                    Status::Success,
                    Status::ToolError,
                    Status::Error,
                    Status::Cancelled,
                ][(i % 4) as usize],
                duration: Micros::from_micros(((i * 7919) % 3_000_000) as u64),
                total_tokens: if i % 11 == 0 {
                    None
                } else {
                    Some((i % 50) as i32)
                },
                estimated_cost_usd: (i % 13 != 0)
                    .then(|| Money(rust_decimal::Decimal::new(i * 37 + 1, 10))),
                ..ledger_row("", tool, now - Duration::seconds(i * 41 + 5))
            };
            row.session_id = sessions[(i % 5) as usize].map(String::from);
            if i % 7 == 0 {
                row.method = "resources/read".into();
                row.tool_name = None;
            }
            row
        })
        .collect();
    let mut seen = Vec::new();
    for backend in backends() {
        let (cells, totals) = aggregates_after_writing(backend, &sample, now).await?;
        assert!(cells.len() > 30, "{backend:?}: {}", cells.len());
        assert!(cells.iter().any(|c| c.contains(" unknown ")), "{backend:?}");
        assert!(
            cells.iter().any(|c| c.contains(" Gemini CLI ")),
            "{backend:?}"
        );
        assert_eq!(totals.len(), 5, "{backend:?}: {totals:?}");
        seen.push((backend, cells, totals));
    }
    if let [(_, cells, totals), (other, other_cells, other_totals)] = &seen[..] {
        assert_eq!(cells, other_cells, "{other:?}");
        assert_eq!(totals, other_totals, "{other:?}");
    }
    Ok(())
}
