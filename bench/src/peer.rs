//! `peer`: Steward against the Python server users run today — the official `mcp` SDK's FastMCP
//! (`MCPServer` in mcp 2.x) on uvicorn, with the same two tools and Archon-style tracking (an
//! awaited INSERT per call). Installed into bench/.venv by bench/peer/setup.sh. The same rounds
//! measure the SDK floor, a bare rmcp server answering Steward's text, so every ratio of issue
//! #23 item 2 comes from one invocation.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::client::{LoadSpec, Target, run_load};
use crate::mappings::Sampler;
use crate::report::Row;
use crate::rmcp_limit::Floor;
use crate::scenarios::{Ctx, Instance, median_row};
use crate::server::{Engine, ServerProc};

pub struct PeerOpts {
    pub setup: bool,
    pub python: Option<PathBuf>,
}

fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs bench/peer/setup.sh; `Ok(None)` when Python is not there.
fn ensure_venv(opts: &PeerOpts) -> Result<Option<PathBuf>> {
    if let Some(p) = &opts.python {
        return Ok(Some(p.clone()));
    }
    let python = bench_dir().join(".venv/bin/python");
    if opts.setup {
        let status = Command::new("bash")
            .arg(bench_dir().join("peer/setup.sh"))
            .status()
            .context("running bench/peer/setup.sh")?;
        match status.code() {
            Some(0) => {}
            Some(3) => return Ok(None),
            _ => bail!("bench/peer/setup.sh failed ({status})"),
        }
    }
    if !python.exists() {
        bail!("{} is missing: run bench/peer/setup.sh", python.display());
    }
    Ok(Some(python))
}

fn start_peer(ctx: &Ctx, python: &Path) -> Result<ServerProc> {
    let mut cmd = Command::new(python);
    cmd.arg(bench_dir().join("peer/server.py"))
        .args(["--port", "0"])
        .arg("--db")
        .arg(ctx.tmp.path().join("peer.db"))
        .args(["--tasks", &ctx.tasks.to_string()])
        .current_dir(ctx.tmp.path());
    ServerProc::spawn(
        "python peer",
        cmd,
        "peer listening on",
        &ctx.tmp.path().join("peer.log"),
    )
}

pub async fn peer(ctx: &mut Ctx, opts: &PeerOpts) -> Result<()> {
    eprintln!(
        "== peer: steward vs. the Python mcp SDK (FastMCP/MCPServer + awaited INSERT per call)"
    );
    let Some(python) = ensure_venv(opts)? else {
        ctx.report.note("peer: python3 not found, scenario skipped");
        return Ok(());
    };
    let peer = start_peer(ctx, &python)?;
    let target = Target::new(peer.addr, "/mcp")?;
    let sessions = ctx.open_sessions(&target).await?;
    let warm = run_load(&ctx.spec(&target, &sessions, ctx.warmup.min(1_000), 1)).await;
    if warm.errors > 0 {
        bail!("the peer failed its warm-up: {:?}", warm.first_errors);
    }
    let mut insts = Vec::new();
    for engine in ctx.engines() {
        let name = format!("peer-steward-{}", engine.label());
        match Instance::start(ctx, engine, "async", &name).await {
            Ok(i) => insts.push(i),
            Err(e) => {
                for i in insts {
                    crate::scenarios::drop_instance(i).await;
                }
                return Err(e);
            }
        }
    }
    let mut floor = match floor_of(ctx, &mut insts).await {
        Ok(floor) => floor,
        Err(e) => {
            for i in insts {
                crate::scenarios::drop_instance(i).await;
            }
            return Err(e);
        }
    };
    // The peer is ~20-40x slower: send it fewer requests, bounded by the same time limit.
    let peer_requests = (ctx.requests / 4).max(1_000).min(ctx.requests);
    let mut peer_rows = Vec::new();
    let mut steward_rows: Vec<Vec<Row>> = vec![Vec::new(); insts.len()];
    let mut floor_rows = Vec::new();
    let mut next_id = 1_000_000;
    for _ in 0..ctx.rounds {
        let sampler = Sampler::start(peer.pid());
        let before = peer.stats();
        let out = run_load(&LoadSpec {
            requests: peer_requests,
            ..ctx.spec(&target, &sessions, peer_requests, next_id)
        })
        .await;
        next_id += peer_requests as u64;
        let after = peer.stats();
        let mut row = Row::new(
            "peer",
            "python mcp 2.x MCPServer + aiosqlite INSERT",
            &out,
            ctx.concurrency,
            Some((before, after)),
            ctx.ticks_per_s,
        );
        row.peak_by_mapping = sampler.stop();
        peer_rows.push(row);
        for (i, inst) in insts.iter_mut().enumerate() {
            steward_rows[i].push(inst.measure_mapped(ctx, "peer").await);
        }
        floor_rows.push(floor.measure(ctx, "peer").await);
    }
    floor.stop();
    let floor = median_row(floor_rows);
    let p = median_row(peer_rows);
    let peer_hwm = peer.stats().hwm_kib;
    crate::scenarios::note_log_problems(ctx, "python peer", &peer.log);
    if let Err(e) = peer.stop() {
        ctx.report.note(format!("peer: {e:#}"));
    }
    for (inst, rows) in insts.iter().zip(steward_rows) {
        let s = median_row(rows);
        let e = if inst.db.engine == Engine::Postgres {
            "postgres"
        } else {
            "sqlite"
        };
        let tput = s.rps / p.rps;
        let p99 = p.p99_ms / s.p99_ms;
        ctx.report.ratio(
            "peer",
            &format!("{e}: steward req/s / peer req/s"),
            tput,
            Some(("≥ 25", tput >= 25.0)),
        );
        ctx.report.ratio(
            "peer",
            &format!("{e}: peer p99 / steward p99"),
            p99,
            Some(("≥ 20", p99 >= 20.0)),
        );
        if let (Some(sr), Some(pr)) = (s.rss_mib, p.rss_mib) {
            ctx.report.ratio(
                "peer",
                &format!("{e}: peer RSS / steward RSS"),
                pr / sr,
                Some(("≥ 4", pr / sr >= 4.0)),
            );
        }
        if let (Some(sc), Some(pc)) = (s.server_cpu_ms_per_call, p.server_cpu_ms_per_call) {
            ctx.report.ratio(
                "peer",
                &format!("{e}: peer CPU per call / steward CPU per call"),
                pc / sc,
                None,
            );
            // The peer keeps its tasks and its request rows in its own process (aiosqlite);
            // Steward's PostgreSQL works in processes of its own, counted with it.
            if let Some(dc) = s.database_cpu_ms_per_call {
                let ratio = pc / (sc + dc);
                ctx.report.ratio(
                    "peer",
                    &format!("{e}: peer CPU per call / (steward + database) CPU per call"),
                    ratio,
                    Some(("≥ 15", ratio >= 15.0)),
                );
            }
        }
        let of_floor = s.rps / floor.rps;
        ctx.report.ratio(
            "peer",
            &format!("{e}: steward req/s / bare-rmcp req/s"),
            of_floor,
            Some(("≥ 0.60", of_floor >= 0.6)),
        );
        ctx.report.row(s);
    }
    ctx.report.row(floor);
    ctx.report.fact(
        "peer",
        "peer peak RSS (VmHWM)",
        (peer_hwm as f64 / 1024.0 * 10.0).round() / 10.0,
        "MiB",
    );
    ctx.report.row(p);
    for inst in insts {
        inst.finish(ctx, "peer", true).await?;
    }
    Ok(())
}

/// The SDK floor, answering the text the first Steward answers for the measured call.
async fn floor_of(ctx: &Ctx, insts: &mut [Instance]) -> Result<Floor> {
    let Some(first) = insts.first_mut() else {
        bail!("no Steward to take the answer's text from");
    };
    let (_, text) = first.answer(ctx).await?;
    Floor::start(ctx, text).await
}
