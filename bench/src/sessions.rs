//! `sessions`: startup with many stored sessions, a restore storm after a restart, and memory per
//! active session.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::client::{Conn, LoadSpec, Target, open_sessions, run_load};
use crate::db::Pool;
use crate::mappings::Sampler;
use crate::report::{Row, mib};
use crate::scenarios::{Ctx, note_log_problems, seed_board};
use crate::server::{BenchDb, Engine};

/// Calls made before the memory baseline: Steward keeps the last 10,000 SSE events (two per
/// tools/call) in memory, so 6,000 calls bring that ring to its steady size first and the RSS
/// delta is the sessions' own.
const STEADY_WARMUP: usize = 6_000;

pub struct SessionOpts {
    /// Sessions stored in the database for the startup measurement.
    pub stored: usize,
    /// Sessions opened, then restored after a restart.
    pub restore: usize,
    /// Starts measured per configuration (the median is reported).
    pub starts: usize,
}

pub async fn sessions(ctx: &mut Ctx, opts: &SessionOpts) -> Result<()> {
    for engine in ctx.engines() {
        let db = ctx
            .new_db(engine, &format!("startup-{}", engine.label()))
            .await?;
        let r = startup(ctx, engine, &db, opts).await;
        let d = db.drop_db().await;
        r?;
        d?;
        let db = ctx
            .new_db(engine, &format!("storm-{}", engine.label()))
            .await?;
        let r = storm(ctx, engine, &db, opts).await;
        let d = db.drop_db().await;
        r?;
        d?;
    }
    Ok(())
}

/// Median startup (spawn → listening line) over `n` starts.
fn median_startup(
    ctx: &Ctx,
    db: &BenchDb,
    name: &str,
    n: usize,
) -> Result<(Duration, Vec<Duration>)> {
    let mut times = Vec::new();
    for i in 0..n.max(1) {
        let p = ctx.start_steward(db, &format!("{name}-{i}"))?;
        times.push(p.startup);
        p.stop()?;
    }
    let mut sorted = times.clone();
    sorted.sort();
    Ok((sorted[sorted.len() / 2], times))
}

/// (a) Startup time with `stored` sessions in the database vs. none.
async fn startup(ctx: &mut Ctx, engine: Engine, db: &BenchDb, opts: &SessionOpts) -> Result<()> {
    let e = engine.label();
    eprintln!(
        "== sessions (a): startup with {} stored sessions on {e}",
        opts.stored
    );
    // First start creates the schema; it is not what is measured.
    let first = ctx.start_steward(db, &format!("startup-{e}-migrate"))?;
    let migrate_time = first.startup;
    first.stop()?;
    let (empty, _) = median_startup(ctx, db, &format!("startup-{e}-empty"), opts.starts)?;

    let pool = Pool::open(db).await?;
    let t0 = Instant::now();
    let tag = u64::from(std::process::id()) << 32 | u64::from(rand_u32());
    let ids = pool.insert_sessions(opts.stored, tag).await?;
    let insert_time = t0.elapsed();
    let stored = pool.count_sessions().await?;
    pool.close().await;

    let (full, all) = median_startup(ctx, db, &format!("startup-{e}-full"), opts.starts)?;

    // A stored session works on the server that just started: restore a few.
    let p = ctx.start_steward(db, &format!("startup-{e}-restore"))?;
    let rss = p.stats();
    let target = Target::new(p.addr, "/mcp")?;
    let mut conn = Conn::connect(&target).await?;
    let mut restore_ms = Vec::new();
    for (k, id) in ids
        .iter()
        .step_by((ids.len() / 20).max(1))
        .take(20)
        .enumerate()
    {
        let t = Instant::now();
        conn.call_tool(Some(id), k as u64 + 1, "health_check", &json!({}))
            .await
            .with_context(|| format!("restoring a stored session on {e}"))?;
        restore_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    drop(conn);
    note_log_problems(ctx, &format!("steward {e} with stored sessions"), &p.log);
    p.stop()?;
    restore_ms.sort_by(f64::total_cmp);

    let s = "sessions";
    ctx.report.fact(
        s,
        &format!("{e}: first start (creates the schema)"),
        ms(migrate_time),
        "ms",
    );
    ctx.report.fact(
        s,
        &format!("{e}: startup, empty database (median of {})", opts.starts),
        ms(empty),
        "ms",
    );
    ctx.report.fact(
        s,
        &format!(
            "{e}: startup, {stored} stored sessions (median of {})",
            opts.starts
        ),
        ms(full),
        "ms",
    );
    ctx.report.fact(
        s,
        &format!("{e}: startup, {stored} stored sessions, every start"),
        json!(all.iter().map(|d| ms(*d)).collect::<Vec<_>>()),
        "ms",
    );
    ctx.report.fact(
        s,
        &format!("{e}: inserting {} session rows (bench side)", opts.stored),
        ms(insert_time),
        "ms",
    );
    ctx.report.fact(
        s,
        &format!(
            "{e}: restore of a stored session, one at a time (median / max of {})",
            restore_ms.len()
        ),
        json!(format!(
            "{:.2} / {:.2}",
            restore_ms.get(restore_ms.len() / 2).copied().unwrap_or(0.0),
            restore_ms.last().copied().unwrap_or(0.0)
        )),
        "ms",
    );
    ctx.report.fact(
        s,
        &format!("{e}: RSS right after startup with {stored} stored sessions"),
        round1(mib(rss.rss_kib)),
        "MiB",
    );
    ctx.report.ratio(
        s,
        &format!("{e}: startup with {stored} stored sessions, seconds"),
        full.as_secs_f64(),
        Some(("< 1 s", full < Duration::from_secs(1))),
    );
    ctx.report.ratio(
        s,
        &format!("{e}: startup with {stored} stored / empty"),
        full.as_secs_f64() / empty.as_secs_f64(),
        None,
    );
    Ok(())
}

/// (b) restore storm and (c) memory per active session.
async fn storm(ctx: &mut Ctx, engine: Engine, db: &BenchDb, opts: &SessionOpts) -> Result<()> {
    let e = engine.label();
    let n = opts.restore;
    let s = "sessions";
    eprintln!("== sessions (b, c): {n} sessions, restart, restore storm on {e}");
    let a = ctx.start_steward(db, &format!("storm-{e}-a"))?;
    let target = Target::new(a.addr, "/mcp")?;
    // JSON-RPC messages sent to this database's servers: each must become one ledger row.
    let mut messages = seed_board(&target, ctx.tasks).await?;
    // Warm the process (token tables, pools) with one session's calls before the baseline.
    let warm = open_sessions(&target, 1, 1, "bench-warm").await?;
    let warm_out = run_load(&LoadSpec {
        concurrency: ctx.concurrency,
        ..ctx.spec(&target, &warm, STEADY_WARMUP, 1)
    })
    .await;
    if warm_out.errors > 0 {
        bail!("warm-up failed: {:?}", warm_out.first_errors);
    }
    messages += 2 + warm_out.sent as u64;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Memory by mapping from here until the first calls on the new sessions are answered.
    let sampler = Sampler::start(a.pid());
    let before = a.stats();
    let t0 = Instant::now();
    let ids = open_sessions(&target, n, ctx.concurrency, "bench").await?;
    let open_time = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let opened = a.stats();
    let fresh = run_load(&LoadSpec {
        requests: n,
        ..ctx.spec(&target, &ids, n, 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let called = a.stats();
    let mut row = Row::new(
        s,
        &format!("steward {e}: first call on {n} new sessions"),
        &fresh,
        ctx.concurrency,
        Some((opened, called)),
        ctx.ticks_per_s,
    );
    row.peak_by_mapping = sampler.stop();
    ctx.report.row(row);
    ctx.report.fact(
        s,
        &format!(
            "{e}: opening {n} sessions (initialize + initialized), {} in flight",
            ctx.concurrency
        ),
        json!(format!(
            "{:.0} sessions/s",
            n as f64 / open_time.as_secs_f64()
        )),
        "",
    );
    // Steward keeps at most DEFAULT_MAX_CACHED sessions in memory (the rest are evicted and
    // restored from their rows on their next request), so the delta is shared by those held.
    let held = n.min(steward::sessions::manager::DEFAULT_MAX_CACHED);
    let per_open = (opened.rss_kib as f64 - before.rss_kib as f64) * 1024.0 / held as f64;
    let per_called = (called.rss_kib as f64 - before.rss_kib as f64) * 1024.0 / held as f64;
    ctx.report.fact(
        s,
        &format!("{e}: RSS before / after opening / after one call each ({n} sessions)"),
        json!(format!(
            "{:.1} / {:.1} / {:.1}",
            mib(before.rss_kib),
            mib(opened.rss_kib),
            mib(called.rss_kib)
        )),
        "MiB",
    );
    ctx.report.fact(
        s,
        &format!("{e}: memory per open session held in memory (RSS delta / {held} held of {n})"),
        round1(per_open / 1024.0),
        "KiB",
    );
    ctx.report.fact(
        s,
        &format!(
            "{e}: memory per active session held in memory after one call (RSS delta / {held} held of {n})"
        ),
        round1(per_called / 1024.0),
        "KiB",
    );

    note_log_problems(ctx, &format!("steward {e} (storm, first run)"), &a.log);
    let stop_time = a.stop()?;
    ctx.report.fact(
        s,
        &format!("{e}: SIGTERM → exit with {n} live sessions"),
        ms(stop_time),
        "ms",
    );

    let b = ctx.start_steward(db, &format!("storm-{e}-b"))?;
    ctx.report.fact(
        s,
        &format!(
            "{e}: restart with {} stored sessions (spawn → listening)",
            n + 2
        ),
        ms(b.startup),
        "ms",
    );
    let target = Target::new(b.addr, "/mcp")?;
    // Memory by mapping from the restore storm to the last cached call.
    let sampler = Sampler::start(b.pid());
    let b0 = b.stats();
    // Every old session sends one call, with its old id and no initialize: first a few one at
    // a time (the restore's own latency), then the rest with C in flight (the storm).
    let seq_n = (n / 10).clamp(1, 200).min(n);
    let (seq_ids, storm_ids) = ids.split_at(seq_n);
    let one = |sessions: &[String], first_id: u64| LoadSpec {
        concurrency: 1,
        ..ctx.spec(&target, sessions, sessions.len(), first_id)
    };
    let seq_restored = run_load(&one(seq_ids, 3_000_000)).await;
    let restored = run_load(&ctx.spec(&target, storm_ids, storm_ids.len(), 1_000_000)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b1 = b.stats();
    let cached = run_load(&ctx.spec(&target, &ids, n, 2_000_000)).await;
    let b2 = b.stats();
    let seq_cached = run_load(&one(seq_ids, 4_000_000)).await;
    let peak = sampler.stop();
    let row = |label: String, out: &crate::client::LoadOutcome, c: usize, st| {
        Row::new(s, &label, out, c, st, ctx.ticks_per_s)
    };
    let sr_row = row(
        format!("steward {e}: restored, first call, 1 at a time ({seq_n})"),
        &seq_restored,
        1,
        None,
    );
    let r_row = Row {
        peak_by_mapping: peak,
        ..row(
            format!(
                "steward {e}: restored, first call, storm ({} sessions)",
                storm_ids.len()
            ),
            &restored,
            ctx.concurrency,
            Some((b0, b1)),
        )
    };
    let c_row = row(
        format!("steward {e}: same sessions, second call (cached)"),
        &cached,
        ctx.concurrency,
        Some((b1, b2)),
    );
    let sc_row = row(
        format!("steward {e}: cached, 1 at a time ({seq_n})"),
        &seq_cached,
        1,
        None,
    );
    let failed = restored.errors + seq_restored.errors;
    if failed > 0 {
        ctx.report.note(format!(
            "{e}: {failed} of {n} restored sessions failed their first call: {:?} {:?}",
            seq_restored.first_errors, restored.first_errors
        ));
    }
    ctx.report.ratio(
        s,
        &format!("{e}: restored first-call p99, ms, one at a time ({seq_n} sessions)"),
        sr_row.p99_ms,
        Some(("< 5 ms", sr_row.p99_ms < 5.0)),
    );
    ctx.report.ratio(
        s,
        &format!(
            "{e}: restored first-call p99, ms, storm ({} sessions, {} in flight)",
            storm_ids.len(),
            ctx.concurrency
        ),
        r_row.p99_ms,
        Some(("< 5 ms", r_row.p99_ms < 5.0)),
    );
    ctx.report.ratio(
        s,
        &format!("{e}: restored / cached p50, one at a time"),
        sr_row.p50_ms / sc_row.p50_ms,
        None,
    );
    ctx.report.ratio(
        s,
        &format!("{e}: restored / cached p50, storm"),
        r_row.p50_ms / c_row.p50_ms,
        None,
    );
    ctx.report.ratio(
        s,
        &format!("{e}: restored / cached p99, storm"),
        r_row.p99_ms / c_row.p99_ms,
        None,
    );
    ctx.report.fact(
        s,
        &format!(
            "{e}: RSS after restart / after the restore storm (includes the SSE event ring filling)"
        ),
        json!(format!("{:.1} / {:.1}", mib(b0.rss_kib), mib(b1.rss_kib))),
        "MiB",
    );
    ctx.report.row(sr_row);
    ctx.report.row(r_row);
    ctx.report.row(c_row);
    ctx.report.row(sc_row);
    messages += 2 * n as u64
        + (fresh.sent + seq_restored.sent + restored.sent + cached.sent + seq_cached.sent) as u64;
    note_log_problems(ctx, &format!("steward {e} (storm, restarted)"), &b.log);
    b.stop()?;
    // Nothing lost: every message of both runs is in the ledger once (spilled rows included).
    let pool = Pool::open(db).await?;
    let counts = pool.ledger_counts().await?;
    pool.close().await;
    let rows: i64 = counts
        .as_object()
        .map(|m| m.values().filter_map(serde_json::Value::as_i64).sum())
        .unwrap_or(0);
    ctx.report.fact(
        s,
        &format!("{e}: ledger rows / messages sent, both runs of the storm"),
        json!(format!("{rows} / {messages}")),
        "",
    );
    if rows != messages as i64 {
        ctx.report.incomplete_ledger(format!(
            "{e}: the ledger holds {rows} rows for {messages} messages sent ({counts})"
        ));
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    round1(d.as_secs_f64() * 1000.0)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// A little entropy for session ids without another dependency.
fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.subsec_nanos() ^ (t.as_secs() as u32).rotate_left(16)
}
