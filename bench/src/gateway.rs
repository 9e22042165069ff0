//! `gateway`: the cost of a hop through Steward's gateway mode. A bare rmcp server
//! ([`RmcpServer`]) is the upstream; the same `tools/call` load goes to it directly and through
//! Steward (`--upstream up=…`, async ledger, SQLite), interleaved in one invocation. Latency is
//! measured with one request in flight (what a hop adds to a call, without queueing on the
//! shared cores); throughput with `--concurrency` in flight.

use anyhow::Result;
use serde_json::json;

use crate::client::{LoadOutcome, LoadSpec, Target, open_sessions, run_load};
use crate::report::Row;
use crate::rmcp_limit::RmcpServer;
use crate::scenarios::{Ctx, Instance, median_row};
use crate::server::{Engine, StewardOpts, start_steward};

/// The upstream's name in Steward, so its tool is `up__echo`.
const UPSTREAM: &str = "up";
const TOOL: &str = "echo";
const ARGS: &str = r#"{"text":"a short argument, as most tool calls carry"}"#;
/// The issue's targets (item 8).
const MAX_ADDED_P50_MS: f64 = 0.2;
const MAX_ADDED_P99_MS: f64 = 1.0;
const MIN_THROUGHPUT_RATIO: f64 = 0.8;

/// One way to reach the upstream's tool: directly or through Steward.
struct Path {
    label: &'static str,
    target: Target,
    sessions: Vec<String>,
    tool: String,
    next_id: u64,
}

impl Path {
    fn spec(&self, ctx: &Ctx, requests: usize, concurrency: usize) -> LoadSpec {
        LoadSpec {
            target: self.target.clone(),
            sessions: self.sessions.clone(),
            requests,
            concurrency,
            max_time: ctx.max_time,
            tool: self.tool.clone(),
            args_json: ARGS.to_string(),
            check_id: true,
            first_id: self.next_id,
            stateless: false,
        }
    }

    async fn load(&mut self, ctx: &Ctx, requests: usize, concurrency: usize) -> LoadOutcome {
        let out = run_load(&self.spec(ctx, requests, concurrency)).await;
        self.next_id += requests as u64;
        out
    }
}

pub async fn gateway(ctx: &mut Ctx) -> Result<()> {
    eprintln!(
        "== gateway: a bare rmcp server called directly vs. through steward (sqlite, ledger=async)"
    );
    let upstream = RmcpServer::start(answer_text())?;
    let upstream_target = Target::new(upstream.addr, "/mcp")?;
    let db = ctx.new_db(Engine::Sqlite, "gateway").await?;
    let opts = StewardOpts {
        durability: "async",
        extra_args: vec![
            "--upstream".into(),
            format!("{UPSTREAM}=http://{}/mcp", upstream.addr),
        ],
        ..StewardOpts::default()
    };
    let proc = start_steward(&ctx.bin, &db, &opts, ctx.tmp.path(), "gateway")?;
    let target = Target::new(proc.addr, "/mcp")?;
    let mut inst = Instance {
        label: "steward gateway (sqlite, ledger=async)".into(),
        proc,
        target,
        sessions: Vec::new(),
        db,
        next_id: 1,
        messages: 0,
    };
    let measured = measure(ctx, &mut inst, &upstream_target).await;
    upstream.stop();
    let finished = inst.finish(ctx, "gateway", true).await;
    measured?;
    finished
}

async fn measure(ctx: &mut Ctx, inst: &mut Instance, upstream: &Target) -> Result<()> {
    let open = |target: &Target| {
        let target = target.clone();
        let (n, c) = (ctx.sessions, ctx.concurrency.min(ctx.sessions));
        async move { open_sessions(&target, n, c, "bench").await }
    };
    let mut direct = Path {
        label: "bare rmcp upstream, direct",
        target: upstream.clone(),
        sessions: open(upstream).await?,
        tool: TOOL.into(),
        next_id: 1,
    };
    let mut hop = Path {
        label: "the same through steward (gateway)",
        target: inst.target.clone(),
        sessions: open(&inst.target).await?,
        tool: format!("{UPSTREAM}__{TOOL}"),
        next_id: 1,
    };
    inst.messages += 2 * hop.sessions.len() as u64;
    // Warm-up opens each session's upstream session too (its first call initializes it).
    for path in [&mut direct, &mut hop] {
        let out = path.load(ctx, ctx.warmup, ctx.concurrency).await;
        anyhow::ensure!(
            out.errors == 0,
            "{} warm-up failed: {:?}",
            path.label,
            out.first_errors
        );
    }
    inst.messages += ctx.warmup as u64;
    // Latency runs are serial, so fewer requests give the same percentiles' precision.
    let serial = (ctx.requests / 4).max(100);
    let mut rows: [Vec<Row>; 4] = Default::default();
    for _ in 0..ctx.rounds {
        for (i, path) in [&mut direct, &mut hop].into_iter().enumerate() {
            let stats = (i == 1).then(|| inst.proc.stats());
            let out = path.load(ctx, serial, 1).await;
            rows[i].push(row(ctx, path.label, &out, 1, stats.map(|s| (s, &*inst))));
            let stats = (i == 1).then(|| inst.proc.stats());
            let out = path.load(ctx, ctx.requests, ctx.concurrency).await;
            let c = ctx.concurrency;
            rows[2 + i].push(row(ctx, path.label, &out, c, stats.map(|s| (s, &*inst))));
        }
        inst.messages += (serial + ctx.requests) as u64;
    }
    let [d1, h1, dn, hn] = rows.map(median_row);
    report(ctx, &d1, &h1, &dn, &hn);
    for r in [d1, h1, dn, hn] {
        ctx.report.row(r);
    }
    Ok(())
}

/// A measured run's row; through Steward with its CPU time and memory.
fn row(
    ctx: &Ctx,
    label: &str,
    out: &LoadOutcome,
    concurrency: usize,
    steward: Option<(crate::server::ProcStats, &Instance)>,
) -> Row {
    let stats = steward.map(|(before, inst)| (before, inst.proc.stats()));
    let label = format!("{label}, {concurrency} in flight");
    Row::new("gateway", &label, out, concurrency, stats, ctx.ticks_per_s)
}

fn report(ctx: &mut Ctx, direct1: &Row, hop1: &Row, direct: &Row, hop: &Row) {
    let p50 = hop1.p50_ms - direct1.p50_ms;
    let p99 = hop1.p99_ms - direct1.p99_ms;
    let ratio = hop.rps / direct.rps;
    let r = &mut ctx.report;
    r.ratio(
        "gateway",
        "added p50, ms (1 in flight)",
        p50,
        Some(("≤ 0.2", p50 <= MAX_ADDED_P50_MS)),
    );
    r.ratio(
        "gateway",
        "added p99, ms (1 in flight)",
        p99,
        Some(("≤ 1", p99 <= MAX_ADDED_P99_MS)),
    );
    r.ratio(
        "gateway",
        "through steward req/s / direct req/s",
        ratio,
        Some(("≥ 0.80", ratio >= MIN_THROUGHPUT_RATIO)),
    );
    r.fact(
        "gateway",
        "added p50 / p99 at full concurrency",
        json!(format!(
            "{:.3} / {:.3}",
            hop.p50_ms - direct.p50_ms,
            hop.p99_ms - direct.p99_ms
        )),
        "ms",
    );
}

/// What the upstream's tool answers: a paragraph, the size of a typical tool result.
fn answer_text() -> String {
    "The upstream's answer: a paragraph of text of the size most tool results have, so the \
     hop's cost is measured on a realistic body rather than on an empty one. "
        .repeat(4)
}
