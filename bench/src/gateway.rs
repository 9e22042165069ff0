//! `gateway`: the cost of a hop through Steward's gateway mode. A bare rmcp server
//! ([`rmcp_limit`]) is the upstream; the same `tools/call` load goes to it directly, through a
//! bare byte-forwarding proxy ([`proxy`]: the floor of any hop on these cores) and through
//! Steward (`--upstream up=…`, async ledger, SQLite), interleaved in one invocation. Latency is
//! measured with one request in flight (what a hop adds to a call, without queueing on the
//! shared cores); throughput with `--concurrency` in flight.
//!
//! Each call's arguments differ ([`args`]) and the upstream echoes them in its answer, so
//! neither is a text the ledger has seen before: one repeated call would be counted once and
//! its verdict remembered, leaving the ledger's counting cost of a hop out.

use anyhow::Result;
use serde_json::json;

use crate::board_seed;
use crate::client::{LoadOutcome, LoadSpec, Target, run_load};
use crate::proxy;
use crate::report::Row;
use crate::rmcp_limit;
use crate::scenarios::{Ctx, Instance, median_row};
use crate::server::{Engine, StewardOpts, start_steward};

/// The upstream's name in Steward, so its tool is `up__echo`.
pub const UPSTREAM: &str = "up";
const TOOL: &str = "echo";
/// The issue's targets (item 8).
const MAX_ADDED_P50_MS: f64 = 0.2;
const MAX_ADDED_P99_MS: f64 = 1.0;
const MIN_THROUGHPUT_RATIO: f64 = 0.8;

/// One way to reach the upstream's tool: directly, through the bare proxy or through Steward.
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
            args_json: String::new(),
            varied_args: Some(args),
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
        "== gateway: a bare rmcp server called directly vs. through a bare proxy vs. through steward (sqlite, ledger=async)"
    );
    let upstream = rmcp_limit::start(upstream_answer())?;
    let upstream_url = format!("http://{}/mcp", upstream.addr);
    let upstream_target = Target::new(upstream.addr, "/mcp")?;
    let proxy = proxy::start(&upstream_url)?;
    let proxy_target = Target::new(proxy.addr, "/mcp")?;
    let db = ctx.new_db(Engine::Sqlite, "gateway").await?;
    let opts = StewardOpts {
        durability: "async",
        extra_args: vec!["--upstream".into(), format!("{UPSTREAM}={upstream_url}")],
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
    let measured = measure(ctx, &mut inst, &upstream_target, &proxy_target).await;
    proxy.stop();
    upstream.stop();
    let finished = inst.finish(ctx, "gateway", true).await;
    measured?;
    finished
}

/// Which of [`measure`]'s paths (direct, bare proxy, Steward) is Steward's.
const STEWARD: usize = 2;

async fn measure(
    ctx: &mut Ctx,
    inst: &mut Instance,
    upstream: &Target,
    proxy: &Target,
) -> Result<()> {
    let mut paths = [
        Path {
            label: "bare rmcp upstream, direct",
            target: upstream.clone(),
            sessions: ctx.open_sessions(upstream).await?,
            tool: TOOL.into(),
            next_id: 1,
        },
        Path {
            label: "the same through a bare byte-forwarding proxy",
            target: proxy.clone(),
            sessions: ctx.open_sessions(proxy).await?,
            tool: TOOL.into(),
            next_id: 1,
        },
        Path {
            label: "the same through steward (gateway)",
            target: inst.target.clone(),
            sessions: ctx.open_sessions(&inst.target).await?,
            tool: upstream_tool(),
            next_id: 1,
        },
    ];
    inst.messages += 2 * paths[STEWARD].sessions.len() as u64;
    // Warm-up opens each session's upstream session too (its first call initializes it).
    for path in &mut paths {
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
    // Per path: the runs with one request in flight, then with --concurrency.
    let mut rows: [[Vec<Row>; 2]; 3] = Default::default();
    for _ in 0..ctx.rounds {
        for (i, path) in paths.iter_mut().enumerate() {
            for (j, (requests, concurrency)) in [(serial, 1), (ctx.requests, ctx.concurrency)]
                .into_iter()
                .enumerate()
            {
                let stats = (i == STEWARD).then(|| inst.proc.stats());
                let out = path.load(ctx, requests, concurrency).await;
                let steward = stats.map(|s| (s, &*inst));
                rows[i][j].push(row(ctx, path.label, &out, concurrency, steward));
            }
        }
        inst.messages += (serial + ctx.requests) as u64;
    }
    let [direct, proxy, steward] = rows.map(|runs| runs.map(median_row));
    report(ctx, "steward", &direct, &steward, true);
    report(ctx, "bare proxy", &direct, &proxy, false);
    for r in [direct, proxy, steward].into_iter().flatten() {
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

/// What the hop through `via` adds to the direct calls (`[1 in flight, --concurrency]` each);
/// judged against the issue's targets for Steward (`targets`), reported alone for the proxy.
fn report(ctx: &mut Ctx, via: &str, direct: &[Row; 2], hop: &[Row; 2], targets: bool) {
    let p50 = hop[0].p50_ms - direct[0].p50_ms;
    let p99 = hop[0].p99_ms - direct[0].p99_ms;
    let ratio = hop[1].rps / direct[1].rps;
    let r = &mut ctx.report;
    let target = |text: &'static str, met: bool| targets.then_some((text, met));
    r.ratio(
        "gateway",
        &format!("{via}: added p50, ms (1 in flight)"),
        p50,
        target("≤ 0.2", p50 <= MAX_ADDED_P50_MS),
    );
    r.ratio(
        "gateway",
        &format!("{via}: added p99, ms (1 in flight)"),
        p99,
        target("≤ 1", p99 <= MAX_ADDED_P99_MS),
    );
    r.ratio(
        "gateway",
        &format!("{via}: req/s / direct req/s"),
        ratio,
        target("≥ 0.80", ratio >= MIN_THROUGHPUT_RATIO),
    );
    r.fact(
        "gateway",
        &format!("{via}: added p50 / p99 at full concurrency"),
        json!(format!(
            "{:.3} / {:.3}",
            hop[1].p50_ms - direct[1].p50_ms,
            hop[1].p99_ms - direct[1].p99_ms
        )),
        "ms",
    );
}

/// The upstream's tool as Steward's clients call it.
pub fn upstream_tool() -> String {
    format!("{UPSTREAM}__{TOOL}")
}

/// The arguments of the call with JSON-RPC id `id`: a short argument, as most tool calls
/// carry, another for every id.
pub fn args(id: u64) -> String {
    let word = board_seed::WORDS[id as usize % board_seed::WORDS.len()];
    format!(r#"{{"text":"a short argument, as most tool calls carry: {word}, call {id}"}}"#)
}

/// What the upstream's tool answers: the call's arguments around a paragraph, ~1 KB in all,
/// the size of a typical tool result.
pub fn upstream_answer() -> rmcp_limit::Answer {
    let paragraph = "The upstream's answer: a paragraph of text of the size most tool results \
                     have, so the hop's cost is measured on a realistic body rather than on an \
                     empty one. "
        .repeat(6);
    rmcp_limit::Answer::Echo(paragraph.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::CallToolRequestParams;

    /// What the upstream answers the call with JSON-RPC id `id`.
    fn answer(id: u64) -> String {
        let args = serde_json::from_str(&args(id)).expect("the arguments are a JSON object");
        let request = CallToolRequestParams::new(TOOL).with_arguments(args);
        upstream_answer().text(&request)
    }

    #[test]
    fn every_call_is_answered_with_new_text_of_a_typical_size() {
        let (first, second) = (answer(1), answer(2));
        assert_ne!(first, second);
        assert!(first.contains("call 1\"}"), "{first}");
        assert!((900..1_300).contains(&first.len()), "{} bytes", first.len());
    }
}
