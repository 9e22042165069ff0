//! Scenario 4, analytics: the dashboard's statistics (`GET /api/stats`, what the dashboard's
//! overview loads) over a large ledger. The rows are seeded with Steward's own store code
//! (`Store::insert_requests`, which also keeps the hourly aggregates), spread over a week, then
//! a real `steward serve` answers the queries over HTTP.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use serde_json::{Value, json};
use steward::ledger::{LedgerRow, Micros, Status};
use steward::store::DatabaseUrl;
use steward::store::sessions::NewSession;
use steward::store::{Money, Store};

use crate::client::{Conn, Target};
use crate::scenarios::{Ctx, note_log_problems};

/// Timed loads per window; the median is reported.
const RUNS: usize = 7;
const CLIENTS: [&str; 3] = ["Claude Code", "Cursor", "VS Code"];

/// Ledger rows seeded when `--rows` is not given.
pub fn default_rows(quick: bool) -> usize {
    if quick { 100_000 } else { 1_000_000 }
}

pub async fn analytics(ctx: &mut Ctx, rows: usize) -> Result<()> {
    for engine in ctx.engines() {
        let e = engine.label();
        eprintln!("== analytics: {e}, /api/stats over {rows} ledger rows (a week)");
        let db = ctx.new_db(engine, &format!("analytics-{e}")).await?;
        let seeded = seed(&db.url, rows).await;
        let timed = match seeded {
            Ok(seconds) => {
                ctx.report.fact(
                    "analytics",
                    &format!("{e}: seeding {rows} ledger rows with Steward's store (bench side)"),
                    json!(format!("{seconds:.1}")),
                    "s",
                );
                time_stats(ctx, &db, e, rows).await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = db.drop_db().await {
            eprintln!("warning: {error:#}");
        }
        timed?;
    }
    Ok(())
}

/// Inserts `n` rows over the last 7 days (20 tools, 3 client types, 2% failures); seconds taken.
async fn seed(url: &str, n: usize) -> Result<f64> {
    let store = Store::open(&DatabaseUrl::parse(url)?)
        .await
        .context("opening the bench database with Steward's store")?;
    let now = Utc::now();
    for (i, client) in CLIENTS.iter().enumerate() {
        store
            .insert_session(&NewSession {
                session_id: format!("analytics-{i}"),
                kind: "session",
                protocol_version: Some("2025-11-25".into()),
                client_name: Some("steward-bench".into()),
                client_version: None,
                client_type: (*client).into(),
                client_capabilities: json!({}),
                initialize_params: None,
                principal: None,
                at: now - chrono::Duration::days(8),
            })
            .await?;
    }
    let start = Instant::now();
    let step_us = 7 * 86_400_000_000 / n.max(1) as i64;
    let mut batch = Vec::with_capacity(steward::store::requests::MAX_BATCH);
    for i in 0..n as i64 {
        batch.push(row(
            i,
            now - chrono::Duration::microseconds(i * step_us + 1),
        ));
        if batch.len() == batch.capacity() || i + 1 == n as i64 {
            store.insert_requests(&batch).await?;
            batch.clear();
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    store.close().await;
    Ok(seconds)
}

fn row(i: i64, at: chrono::DateTime<Utc>) -> LedgerRow {
    LedgerRow {
        request_id: sqlx::types::Uuid::new_v4(),
        session_id: Some(format!("analytics-{}", i % 3)),
        jsonrpc_id: Some(i.to_string()),
        method: "tools/call".into(),
        tool_name: Some(format!("tool_{:02}", i % 20)),
        status: if i % 50 == 0 {
            Status::ToolError
        } else {
            Status::Success
        },
        error_code: None,
        error_message: (i % 50 == 0).then(|| "the task does not exist".into()),
        duration: Micros::from_micros((200 + (i * 7919) % 400_000) as u64),
        request_bytes: 120,
        response_bytes: 2_400,
        args_tokens: Some(12),
        result_tokens: Some(600),
        total_tokens: Some(612),
        estimated_cost_usd: Some(Money(rust_decimal::Decimal::new(9_036 + i % 7, 9))),
        pricing_model: Some("claude-sonnet-4-5".into()),
        tokenizer: Some("o200k_base".into()),
        sanitized: false,
        timestamp: at,
        upstream: None,
        trace: Default::default(),
    }
}

/// Starts Steward on the seeded database and times `/api/stats` for the last hour, day, week.
async fn time_stats(
    ctx: &mut Ctx,
    db: &crate::server::BenchDb,
    e: &str,
    rows: usize,
) -> Result<()> {
    let proc = ctx.start_steward(db, &format!("analytics-{e}"))?;
    let label = format!("analytics-{e}");
    let log = proc.log.clone();
    let result = async {
        for window in ["1h", "24h", "7d"] {
            let mut times = Vec::new();
            let mut requests = 0;
            for _ in 0..RUNS {
                let t0 = Instant::now();
                let stats = get_json(proc.addr, &format!("/api/stats?since={window}")).await?;
                times.push(t0.elapsed());
                requests = stats
                    .pointer("/totals/count")
                    .and_then(Value::as_i64)
                    .unwrap_or(-1);
            }
            times.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            ctx.report.fact(
                "analytics",
                &format!("{e}: GET /api/stats?since={window} over {rows} rows, median / max of {RUNS} ({requests} requests in the window)"),
                json!(format!("{:.1} / {:.1}", ms(times[RUNS / 2]), ms(times[RUNS - 1]))),
                "ms",
            );
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let stopped = proc.stop();
    note_log_problems(ctx, &label, &log);
    result?;
    stopped.map(|_| ())
}

/// `GET path` on a fresh connection, its JSON body (an error unless 2xx).
async fn get_json(addr: std::net::SocketAddr, path: &str) -> Result<Value> {
    let mut conn = Conn::connect(&Target::new(addr, path)?).await?;
    let answer = conn.get(path).await?;
    if !answer.status.is_success() {
        bail!(
            "GET {path}: HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    Ok(serde_json::from_slice(&answer.body)?)
}
