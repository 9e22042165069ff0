//! Scenarios: a plain run, the limit, the ledger's cost. (Sessions and the Python peer have
//! their own modules.) Every comparison runs its variants interleaved in the same invocation.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::client::{Conn, LoadOutcome, LoadSpec, PROTOCOL_VERSION, Target, run_load};
use crate::db::Pool;
use crate::limit;
use crate::mappings::Sampler;
use crate::report::{Report, Row};
use crate::rmcp_limit;
use crate::server::{BenchDb, Engine, ServerProc, StewardOpts, start_steward};

/// What every scenario shares.
pub struct Ctx {
    pub bin: PathBuf,
    pub tmp: tempfile::TempDir,
    pub postgres: Option<String>,
    pub requests: usize,
    pub concurrency: usize,
    pub sessions: usize,
    pub warmup: usize,
    pub rounds: usize,
    pub max_time: Duration,
    pub tool: String,
    pub args_json: String,
    /// The tool's arguments made for each request from its id (instead of `args_json`).
    pub varied_args: Option<fn(u64) -> String>,
    pub tasks: usize,
    pub ticks_per_s: f64,
    pub report: Report,
}

impl Ctx {
    /// Steward with the async ledger on `db`, as it is: no board seeded, no sessions, no load.
    pub fn start_steward(&self, db: &BenchDb, name: &str) -> Result<ServerProc> {
        let opts = StewardOpts {
            durability: "async",
            ..StewardOpts::default()
        };
        start_steward(&self.bin, db, &opts, self.tmp.path(), name)
    }

    pub fn engines(&self) -> Vec<Engine> {
        let mut e = vec![Engine::Sqlite];
        if self.postgres.is_some() {
            e.push(Engine::Postgres);
        }
        e
    }

    pub async fn new_db(&self, engine: Engine, name: &str) -> Result<BenchDb> {
        match engine {
            Engine::Sqlite => Ok(BenchDb::sqlite(self.tmp.path(), name)),
            Engine::Postgres => {
                let url = self
                    .postgres
                    .as_deref()
                    .context("PostgreSQL needs --postgres URL")?;
                BenchDb::postgres(url, name).await
            }
        }
    }

    /// The scenario's sessions on `target`: `--sessions` of them, opened with up to
    /// `--concurrency` handshakes in flight.
    pub async fn open_sessions(&self, target: &Target) -> Result<Vec<String>> {
        let in_flight = self.concurrency.min(self.sessions);
        crate::client::open_sessions(target, self.sessions, in_flight, "bench").await
    }

    pub fn spec(
        &self,
        target: &Target,
        sessions: &[String],
        requests: usize,
        first_id: u64,
    ) -> LoadSpec {
        LoadSpec {
            target: target.clone(),
            sessions: sessions.to_vec(),
            requests,
            concurrency: self.concurrency,
            max_time: self.max_time,
            tool: self.tool.clone(),
            args_json: self.args_json.clone(),
            varied_args: self.varied_args,
            check_id: true,
            first_id,
            stateless: false,
        }
    }
}

/// A Steward process with a seeded board and open sessions.
pub struct Instance {
    pub label: String,
    pub proc: ServerProc,
    pub target: Target,
    pub sessions: Vec<String>,
    pub db: BenchDb,
    pub next_id: u64,
    /// JSON-RPC messages the bench sent to this process (each must be one ledger row).
    pub messages: u64,
}

impl Instance {
    /// Starts Steward on a new database, seeds a project with tasks, opens the sessions and
    /// warms up.
    pub async fn start(
        ctx: &Ctx,
        engine: Engine,
        durability: &'static str,
        name: &str,
    ) -> Result<Instance> {
        let opts = StewardOpts {
            durability,
            ..StewardOpts::default()
        };
        Self::start_with(ctx, engine, opts, name).await
    }

    /// [`Instance::start`] with every server option.
    pub async fn start_with(
        ctx: &Ctx,
        engine: Engine,
        opts: StewardOpts,
        name: &str,
    ) -> Result<Instance> {
        Self::start_seeded(ctx, engine, opts, name, 0).await
    }

    /// [`Instance::start_with`] on a database that also holds a board of `board_tasks` tasks
    /// seeded straight into it before the server starts (`board_seed`; none for 0).
    pub async fn start_seeded(
        ctx: &Ctx,
        engine: Engine,
        opts: StewardOpts,
        name: &str,
        board_tasks: usize,
    ) -> Result<Instance> {
        let db = ctx.new_db(engine, name).await?;
        let seeded = match board_tasks {
            0 => Ok(()),
            tasks => crate::board_seed::migrate_and_seed(&db, tasks)
                .await
                .map(drop),
        };
        let started = match seeded {
            Ok(()) => Self::start_on(ctx, db, &opts, name).await,
            Err(error) => Err((error, db)),
        };
        match started {
            Ok(i) => Ok(i),
            Err((error, db)) => {
                if let Err(e) = db.drop_db().await {
                    eprintln!("warning: could not drop the bench database: {e:#}");
                }
                Err(error)
            }
        }
    }

    async fn start_on(
        ctx: &Ctx,
        db: BenchDb,
        opts: &StewardOpts,
        name: &str,
    ) -> Result<Instance, (anyhow::Error, BenchDb)> {
        let durability = opts.durability;
        let proc = match start_steward(&ctx.bin, &db, opts, ctx.tmp.path(), name) {
            Ok(p) => p,
            Err(e) => return Err((e, db)),
        };
        let target = match Target::new(proc.addr, "/mcp") {
            Ok(t) => t,
            Err(e) => return Err((e, db)),
        };
        let mut inst = Instance {
            label: format!("steward {} ledger={durability}", db.engine.label()),
            proc,
            target,
            sessions: Vec::new(),
            db,
            next_id: 1,
            messages: 0,
        };
        if let Err(e) = inst.prepare(ctx).await {
            let log = inst.proc.log.clone();
            let e = e.context(format!("preparing {} (log: {})", inst.label, log.display()));
            drop(inst.proc);
            return Err((e, inst.db));
        }
        Ok(inst)
    }

    async fn prepare(&mut self, ctx: &Ctx) -> Result<()> {
        self.messages += seed_board(&self.target, ctx.tasks).await?;
        self.sessions = ctx.open_sessions(&self.target).await?;
        self.messages += 2 * self.sessions.len() as u64;
        if ctx.warmup > 0 {
            let out = self.load(ctx, ctx.warmup).await;
            if out.errors > 0 {
                bail!("warm-up failed: {:?}", out.first_errors);
            }
        }
        Ok(())
    }

    /// Runs `requests` tool calls over this instance's sessions.
    pub async fn load(&mut self, ctx: &Ctx, requests: usize) -> LoadOutcome {
        self.load_as(ctx, requests, false).await
    }

    /// [`Instance::load`], from session clients or from stateless (2026-07-28) ones.
    async fn load_as(&mut self, ctx: &Ctx, requests: usize, stateless: bool) -> LoadOutcome {
        let mut spec = ctx.spec(&self.target, &self.sessions, requests, self.next_id);
        spec.stateless = stateless;
        self.next_id += requests as u64;
        let out = run_load(&spec).await;
        self.messages += out.sent as u64;
        out
    }

    /// A measured run: the load plus the server's CPU time and memory.
    pub async fn measure(&mut self, ctx: &Ctx, scenario: &str) -> Row {
        self.measure_as(ctx, scenario, false).await
    }

    /// [`Instance::measure`] with the server's resident memory sampled by mapping while the
    /// load runs (see [`crate::mappings`]).
    pub async fn measure_mapped(&mut self, ctx: &Ctx, scenario: &str) -> Row {
        let sampler = Sampler::start(self.proc.pid());
        let mut row = self.measure(ctx, scenario).await;
        row.peak_by_mapping = sampler.stop();
        row
    }

    /// [`Instance::measure`], with sessions or stateless (2026-07-28).
    pub async fn measure_as(&mut self, ctx: &Ctx, scenario: &str, stateless: bool) -> Row {
        let database = self.db.postgres_name().map(str::to_string);
        let db_ticks = |db: &String| crate::server::postgres_cpu_ticks(db);
        let db_before = database.as_ref().map(db_ticks);
        let before = self.proc.stats();
        let out = self.load_as(ctx, ctx.requests, stateless).await;
        let after = self.proc.stats();
        let db_ticks = database
            .as_ref()
            .zip(db_before)
            .map(|(db, before)| db_ticks(db).saturating_sub(before));
        let label = match stateless {
            true => format!("{} stateless 2026-07-28", self.label),
            false => format!("{} sessions {PROTOCOL_VERSION}", self.label),
        };
        let mut row = Row::new(
            scenario,
            &label,
            &out,
            ctx.concurrency,
            Some((before, after)),
            ctx.ticks_per_s,
        );
        row.database_cpu_ms_per_call =
            db_ticks.map(|t| crate::report::ms_per_call(t, ctx.ticks_per_s, out.sent));
        row
    }

    /// One call of the measured tool: Steward's whole response body (SSE) and the text of its
    /// answer, for the references that serve the same bytes or the same text.
    pub async fn answer(&mut self, ctx: &Ctx) -> Result<(bytes::Bytes, String)> {
        let mut conn = Conn::connect(&self.target).await?;
        let body = crate::client::tool_call_body(self.next_id, &ctx.tool, &ctx.args_json);
        let session = self.sessions.first().context("no session is open")?;
        let answer = conn.post(Some(session), body).await?;
        self.next_id += 1;
        self.messages += 1;
        let result = crate::client::check_tool_answer(&answer, None)?;
        let text = result
            .pointer("/content/0/text")
            .and_then(Value::as_str)
            .context("Steward's answer has no text content")?
            .to_string();
        Ok((answer.body, text))
    }

    /// The rows in this instance's ledger, in all and by method.
    pub async fn ledger_rows(&self) -> Result<(i64, Value)> {
        ledger_rows(&self.db).await
    }

    /// SIGTERM, then the ledger's row count against the messages sent, then drop the database.
    pub async fn finish(self, ctx: &mut Ctx, scenario: &str, check_ledger: bool) -> Result<()> {
        let label = self.label.clone();
        if let Some(count) = self.stop_and_count(ctx, check_ledger).await? {
            ctx.report.fact(
                scenario,
                &format!("{label}: ledger rows / messages sent"),
                json!(format!("{} / {}", count.rows, count.messages)),
                "",
            );
            if !count.complete() && !label.ends_with("ledger=off") {
                ctx.report.incomplete_ledger(count.to_string());
            }
        }
        Ok(())
    }

    /// SIGTERM, then (with `check_ledger`) the ledger's rows against the messages sent, then
    /// drop the database.
    pub async fn stop_and_count(
        self,
        ctx: &mut Ctx,
        check_ledger: bool,
    ) -> Result<Option<LedgerCount>> {
        let log = self.proc.log.clone();
        let stopped = self.proc.stop();
        note_log_problems(ctx, &self.label, &log);
        let result = async {
            stopped?;
            if !check_ledger {
                return Ok(None);
            }
            let (rows, by_method) = ledger_rows(&self.db).await?;
            Ok::<_, anyhow::Error>(Some(LedgerCount {
                label: self.label,
                rows,
                messages: self.messages,
                by_method,
            }))
        }
        .await;
        let dropped = self.db.drop_db().await;
        let count = result?;
        dropped?;
        Ok(count)
    }
}

/// A stopped instance's ledger against what the bench sent it: every message is one row.
pub struct LedgerCount {
    label: String,
    rows: i64,
    messages: u64,
    by_method: Value,
}

impl LedgerCount {
    fn complete(&self) -> bool {
        self.rows == self.messages as i64
    }
}

impl std::fmt::Display for LedgerCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the ledger holds {} rows for {} messages sent ({})",
            self.label, self.rows, self.messages, self.by_method
        )
    }
}

/// The rows in a bench database's ledger, in all and by method.
async fn ledger_rows(db: &BenchDb) -> Result<(i64, Value)> {
    let pool = Pool::open(db).await?;
    let counts = pool.ledger_counts().await;
    pool.close().await;
    let counts = counts?;
    let total = counts
        .as_object()
        .map(|m| m.values().filter_map(Value::as_i64).sum())
        .unwrap_or(0);
    Ok((total, counts))
}

/// Creates a project and `tasks` tasks over MCP (manage_project, manage_task) from a session of
/// its own; returns the number of JSON-RPC messages sent.
pub async fn seed_board(target: &Target, tasks: usize) -> Result<u64> {
    let mut conn = Conn::connect(target).await?;
    let session = conn.open_session("bench-seed").await?;
    let project = conn
        .call_tool(
            Some(&session),
            1,
            "manage_project",
            &json!({
                "action": "create",
                "title": "Benchmark project",
                "description": "A project seeded by steward-bench: a board with tasks in every open status.",
                "github_repo": "https://github.com/example/bench"
            }),
        )
        .await
        .context("manage_project create")?;
    let project_id = project
        .get("project_id")
        .and_then(Value::as_str)
        .with_context(|| format!("no project_id in {project}"))?
        .to_string();
    let statuses = ["todo", "doing", "review"];
    for i in 0..tasks {
        conn.call_tool(
            Some(&session),
            2 + i as u64,
            "manage_task",
            &json!({
                "action": "create",
                "project_id": project_id,
                "title": format!("Task {i}: wire the ledger to the dashboard"),
                "description": format!(
                    "Task {i} of the benchmark board. Acceptance: the numbers in BENCHMARKS.md come \
                     from a command in the repo, every response is validated, and the run reports \
                     throughput, latency percentiles, errors and the server's memory."
                ),
                "status": statuses[i % statuses.len()],
                "assignee": if i % 2 == 0 { "User" } else { "AI IDE Agent" },
                "task_order": (i * 5) % 101,
                "feature": "benchmarks"
            }),
        )
        .await
        .with_context(|| format!("manage_task create #{i}"))?;
    }
    Ok(2 + 1 + tasks as u64)
}

/// The run of a list of measurements whose throughput is the median.
pub fn median_row(mut rows: Vec<Row>) -> Row {
    rows.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let mid = rows.len() / 2;
    rows.swap_remove(mid)
}

/// `run`: Steward alone, one engine, one durability.
pub async fn run_plain(ctx: &mut Ctx, engine: Engine, durability: &'static str) -> Result<()> {
    eprintln!(
        "== run: steward on {} with ledger={durability}",
        engine.label()
    );
    let mut inst =
        Instance::start(ctx, engine, durability, &format!("run-{}", engine.label())).await?;
    let mut rows = Vec::new();
    for _ in 0..ctx.rounds {
        rows.push(inst.measure_mapped(ctx, "run").await);
    }
    ctx.report.row(median_row(rows));
    inst.finish(ctx, "run", durability != "off").await
}

/// `limit`: Steward vs. a bare axum server answering Steward's own bytes.
pub async fn limit(ctx: &mut Ctx) -> Result<()> {
    eprintln!(
        "== limit: steward (sqlite, ledger=async) vs. a bare axum server answering pre-serialised SSE"
    );
    let mut inst = Instance::start(ctx, Engine::Sqlite, "async", "limit").await?;
    // The limit answers exactly the bytes Steward sends for this call.
    let (body, text) = inst.answer(ctx).await?;
    ctx.report.fact(
        "limit",
        "tools/call response body (SSE) served by both",
        body.len(),
        "bytes",
    );
    let bare = limit::start(body)?;
    let bare_target = Target::new(bare.addr, "/mcp")?;
    let warm = LoadSpec {
        check_id: false,
        ..ctx.spec(&bare_target, &inst.sessions, ctx.warmup, 1)
    };
    run_load(&warm).await;
    // The second reference: bare rmcp with the same text, real sessions.
    let mut rmcp = rmcp_limit::Floor::start(ctx, text).await?;
    let (mut steward_rows, mut bare_rows, mut rmcp_rows) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ctx.rounds {
        steward_rows.push(inst.measure(ctx, "limit").await);
        rmcp_rows.push(rmcp.measure(ctx, "limit").await);
        let spec = LoadSpec {
            check_id: false,
            ..ctx.spec(&bare_target, &inst.sessions, ctx.requests, 1)
        };
        let out = run_load(&spec).await;
        bare_rows.push(Row::new(
            "limit",
            "bare axum, pre-serialised SSE (in-process)",
            &out,
            ctx.concurrency,
            None,
            ctx.ticks_per_s,
        ));
    }
    bare.stop();
    rmcp.stop();
    let (s, b, r) = (
        median_row(steward_rows),
        median_row(bare_rows),
        median_row(rmcp_rows),
    );
    ctx.report.ratio(
        "limit",
        "steward req/s / bare-rmcp req/s",
        s.rps / r.rps,
        None,
    );
    ctx.report.ratio(
        "limit",
        "bare-rmcp req/s / bare-axum req/s",
        r.rps / b.rps,
        None,
    );
    ctx.report.ratio(
        "limit",
        "steward req/s / bare-axum req/s",
        s.rps / b.rps,
        Some(("≥ 0.50", s.rps / b.rps >= 0.5)),
    );
    ctx.report
        .latency_ratios("limit", "steward", &s, "bare-axum", &b);
    ctx.report.row(s);
    ctx.report.row(r);
    ctx.report.row(b);
    inst.finish(ctx, "limit", true).await
}

/// `ledger`: the same load with the ledger off, async and sync, per engine: find_tasks
/// searches of a seeded 200-task board, each for another word and page size (as
/// `instructions` counts them), so each answer is new text whose tokens the ledger counts; one
/// repeated call would be counted once and remembered, hiding that cost. With `null`, a second
/// off server is measured the same way: its "cost" against off is the bench's own noise.
pub async fn ledger(ctx: &mut Ctx, null: bool) -> Result<()> {
    let kept = (
        std::mem::replace(&mut ctx.tool, "find_tasks".into()),
        ctx.varied_args.replace(crate::instructions::search_args),
        std::mem::take(&mut ctx.tasks),
    );
    ctx.report.note(format!(
        "ledger: every call is a find_tasks search of a {}-task board for another of its words \
         with another page size (--tool, --args and --tasks do not apply); every round starts \
         each variant's server anew on a new database",
        crate::instructions::BOARD_TASKS
    ));
    let measured = ledger_on_varied_searches(ctx, null).await;
    (ctx.tool, ctx.varied_args, ctx.tasks) = kept;
    measured
}

/// One server configuration of `ledger`.
#[derive(Clone, Copy)]
struct Variant {
    /// The name in the report.
    name: &'static str,
    durability: &'static str,
}

const OFF: Variant = Variant {
    name: "off",
    durability: "off",
};
const NULL: Variant = Variant {
    name: "null",
    durability: "off",
};
/// The variants in the order the report lists them; `off` first, the base of every cost.
const VARIANTS: [Variant; 3] = [
    OFF,
    Variant {
        name: "async",
        durability: "async",
    },
    Variant {
        name: "sync",
        durability: "sync",
    },
];

/// The confidence of the interval reported around each median cost.
const INTERVAL_LEVEL: f64 = 0.95;

async fn ledger_on_varied_searches(ctx: &mut Ctx, null: bool) -> Result<()> {
    let mut variants = VARIANTS.to_vec();
    if null {
        variants.push(NULL);
    }
    // The measuring order: null, off, async, sync, so that null and async each run next to
    // off and their costs drift alike. Every other round reverses it: a load that rises or
    // falls during the invocation favours none.
    let mut order: Vec<usize> = (0..variants.len()).collect();
    if null {
        order.rotate_right(1);
    }
    for engine in ctx.engines() {
        let e = engine.label();
        let names: Vec<&str> = variants.iter().map(|v| v.name).collect();
        eprintln!(
            "== ledger: {e} with {} ({} rounds, every round on new servers)",
            names.join(" | "),
            ctx.rounds
        );
        let started = std::time::Instant::now();
        let mut rows: Vec<Vec<Row>> = vec![Vec::new(); variants.len()];
        let mut stored: Vec<(i64, u64)> = vec![(0, 0); variants.len()];
        for round in 0..ctx.rounds {
            let mut order = order.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let (row, count) = measure_fresh(ctx, engine, variants[i], round).await?;
                rows[i].push(row);
                if let Some((total, messages)) = count {
                    stored[i].0 += total;
                    stored[i].1 += messages;
                }
            }
        }
        for ((v, (total, messages)), rounds) in variants.iter().zip(&stored).zip(&rows) {
            let rps: Vec<String> = rounds.iter().map(|r| format!("{:.0}", r.rps)).collect();
            ctx.report.fact(
                "ledger",
                &format!("{e}: {} req/s per round", v.name),
                json!(rps.join(", ")),
                "req/s",
            );
            if v.durability != "off" {
                ctx.report.fact(
                    "ledger",
                    &format!("{e}: {} ledger rows / messages sent, all rounds", v.name),
                    json!(format!("{total} / {messages}")),
                    "",
                );
            }
        }
        // CPU per call over every round (throughput is the median round's): steadier.
        let cpu: Vec<CpuPerCall> = rows.iter().map(|r| CpuPerCall::mean(r)).collect();
        let mut verdicts = Vec::new();
        for (i, v) in variants.iter().enumerate().skip(1) {
            verdicts.push(report_round_costs(ctx, e, v.name, &rows[0], &rows[i]));
        }
        ctx.report.fact(
            "ledger",
            &format!("{e}: median throughput cost vs off [{INTERVAL_LABEL}]"),
            json!(verdicts.join("; ")),
            "%",
        );
        let med: Vec<Row> = rows.into_iter().map(median_row).collect();
        let off = &med[0];
        for (i, v) in variants.iter().enumerate().skip(1) {
            let what = format!("{e}: {}", v.name);
            ctx.report
                .latency_ratios("ledger", &what, &med[i], "off", off);
            cpu[i].report(ctx, &what, &cpu[0]);
        }
        for row in med {
            ctx.report.row(row);
        }
        ctx.report.fact(
            "ledger",
            &format!("{e}: time taken"),
            json!(started.elapsed().as_secs()),
            "s",
        );
    }
    Ok(())
}

/// One measured run of `variant` on a server of its own: a new database with the seeded
/// board, the server, its sessions and warm-up, the run, then the stop, the ledger's count
/// (rows, messages sent) and the database dropped. A server per round, not one for the whole
/// invocation: whatever makes one process faster or slower (its memory layout, where its
/// threads land, its database's pages and size) then varies from round to round instead of
/// favouring one variant in every round.
async fn measure_fresh(
    ctx: &mut Ctx,
    engine: Engine,
    variant: Variant,
    round: usize,
) -> Result<(Row, Option<(i64, u64)>)> {
    let opts = StewardOpts {
        durability: variant.durability,
        ..StewardOpts::default()
    };
    let name = format!("ledger-{}-{}-r{round}", engine.label(), variant.name);
    let board = crate::instructions::BOARD_TASKS;
    let mut inst = Instance::start_seeded(ctx, engine, opts, &name, board).await?;
    if variant.name != variant.durability {
        inst.label = format!("{} ({})", inst.label, variant.name);
    }
    let row = inst.measure(ctx, "ledger").await;
    let check = variant.durability != "off";
    let count = inst.stop_and_count(ctx, check).await?;
    if let Some(c) = &count
        && !c.complete()
    {
        ctx.report
            .incomplete_ledger(format!("round {}: {c}", round + 1));
    }
    Ok((row, count.map(|c| (c.rows, c.messages))))
}

/// A variant's cost against `off`, round by round: each round's pair was measured a minute or
/// two apart at most, so the median of the per-round ratios is a verdict a load that changes
/// between rounds does not sway (the ratio of the median rounds mixed rounds from different
/// loads). The `async` throughput cost carries the ≤ 5 % target; the median's interval says
/// whether the rounds resolve it. Returns the median and its interval, for the summary line.
fn report_round_costs(
    ctx: &mut Ctx,
    engine: &str,
    mode: &str,
    off: &[Row],
    variant: &[Row],
) -> String {
    let costs: Vec<f64> = off
        .iter()
        .zip(variant)
        .map(|(o, v)| (1.0 - v.rps / o.rps) * 100.0)
        .collect();
    let cpu: Vec<f64> = off
        .iter()
        .zip(variant)
        .filter_map(|(o, v)| {
            Some((v.server_cpu_ms_per_call? / o.server_cpu_ms_per_call? - 1.0) * 100.0)
        })
        .collect();
    let list = |v: &[f64]| {
        v.iter()
            .map(|c| format!("{c:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    ctx.report.fact(
        "ledger",
        &format!("{engine}: {mode} throughput cost vs off per round, %"),
        json!(list(&costs)),
        "%",
    );
    let interval = median_interval(&costs, INTERVAL_LEVEL);
    let cost = median(costs);
    let target = (mode == "async").then_some(("≤ 5%", cost <= 5.0));
    ctx.report.ratio(
        "ledger",
        &format!("{engine}: {mode} throughput cost vs off, median of rounds, %"),
        cost,
        target,
    );
    let summary = match interval {
        Some(i) => {
            ctx.report.fact(
                "ledger",
                &format!("{engine}: {mode} throughput cost vs off, {}", i.label()),
                json!(format!("{:.1} … {:.1}", i.low, i.high)),
                "%",
            );
            if mode == "async" {
                ctx.report.fact(
                    "ledger",
                    &format!("{engine}: async ≤ 5 % resolved by the interval"),
                    json!(i.against(5.0)),
                    "",
                );
            }
            format!("{mode} {cost:.1} [{:.1}, {:.1}]", i.low, i.high)
        }
        None => format!(
            "{mode} {cost:.1} [needs ≥ {} rounds]",
            rounds_for(INTERVAL_LEVEL)
        ),
    };
    if !cpu.is_empty() {
        ctx.report.fact(
            "ledger",
            &format!("{engine}: {mode} server CPU per call vs off per round, % more"),
            json!(list(&cpu)),
            "%",
        );
        ctx.report.ratio(
            "ledger",
            &format!("{engine}: {mode} server CPU per call vs off, median of rounds, % more"),
            median(cpu),
            None,
        );
    }
    summary
}

/// How the summary line names its intervals.
const INTERVAL_LABEL: &str = "median's ≥ 95 % interval, order statistics of the rounds";

/// A distribution-free confidence interval for a median: the `k`-th smallest and `k`-th
/// largest of `n` values, which hold the true median between them with probability
/// `coverage` = 1 − 2·P(Binomial(n, ½) < k), whatever the values' distribution (each value
/// falls below the median with chance ½, independently).
#[derive(Clone, Copy, Debug, PartialEq)]
struct MedianInterval {
    low: f64,
    high: f64,
    /// Which order statistic bounds it (1: the smallest and the largest).
    k: usize,
    n: usize,
    coverage: f64,
}

impl MedianInterval {
    fn label(&self) -> String {
        format!(
            "median's {:.1} % interval (order statistics {} and {} of {} rounds)",
            self.coverage * 100.0,
            self.k,
            self.n + 1 - self.k,
            self.n
        )
    }

    /// Whether the interval settles "≤ `limit`": all of it at or below, all above, or across.
    fn against(&self, limit: f64) -> &'static str {
        if self.high <= limit {
            "yes: met (the whole interval is at or below)"
        } else if self.low > limit {
            "yes: NOT met (the whole interval is above)"
        } else {
            "no: the interval holds the limit"
        }
    }
}

/// The narrowest order-statistic interval for the median of `values` whose coverage is at
/// least `level`; None when even the smallest and largest do not reach it (too few values).
fn median_interval(values: &[f64], level: f64) -> Option<MedianInterval> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    // P(Binomial(n, ½) ≤ j) for j = 0, 1, …, summed in log space (no overflow for any n).
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0;
    let mut below = 0.0;
    let mut best = None;
    for k in 1..=n.div_ceil(2) {
        // `below` becomes P(Binomial(n, ½) ≤ k − 1).
        let j = k - 1;
        if j > 0 {
            ln_choose += ((n - j + 1) as f64).ln() - (j as f64).ln();
        }
        below += (ln_choose + ln_half_n).exp();
        let coverage = 1.0 - 2.0 * below;
        if coverage < level {
            break;
        }
        best = Some(MedianInterval {
            low: sorted[k - 1],
            high: sorted[n - k],
            k,
            n,
            coverage,
        });
    }
    best
}

/// The fewest values whose smallest and largest bound the median with `level` (6 for 95 %).
fn rounds_for(level: f64) -> usize {
    (1..64)
        .find(|&n| 1.0 - 2.0 * 0.5f64.powi(n as i32) >= level)
        .unwrap_or(64)
}

/// The median (the mean of the middle two of an even count); NaN for none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Mean CPU time per call of one variant's rounds (ms): Steward's, its kernel part, and the
/// local PostgreSQL server's (None on SQLite).
#[derive(Clone, Copy, Debug, Default)]
struct CpuPerCall {
    server: f64,
    kernel: f64,
    database: Option<f64>,
}

impl CpuPerCall {
    fn mean(rounds: &[Row]) -> CpuPerCall {
        let n = rounds.len().max(1) as f64;
        let mean = |f: fn(&Row) -> Option<f64>| rounds.iter().filter_map(f).sum::<f64>() / n;
        CpuPerCall {
            server: mean(|r| r.server_cpu_ms_per_call),
            kernel: mean(|r| r.server_sys_ms_per_call),
            database: rounds
                .iter()
                .all(|r| r.database_cpu_ms_per_call.is_some())
                .then(|| mean(|r| r.database_cpu_ms_per_call)),
        }
    }

    /// Steward's and the database's CPU together: all the work a call costs the machine.
    fn total(&self) -> f64 {
        self.server + self.database.unwrap_or(0.0)
    }

    /// What this variant adds to `off`'s CPU per call, in ms and in %.
    fn report(&self, ctx: &mut Ctx, what: &str, off: &CpuPerCall) {
        let ms = |v: f64| json!(format!("{v:.4}"));
        let more = |a: f64, o: f64| (a / o - 1.0) * 100.0;
        ctx.report.fact(
            "ledger",
            &format!("{what} ledger: server CPU added per call (of it in the kernel)"),
            json!(format!(
                "{:.4} ({:.4})",
                self.server - off.server,
                self.kernel - off.kernel
            )),
            "ms",
        );
        ctx.report.ratio(
            "ledger",
            &format!("{what} server CPU per call vs off, % more (all rounds)"),
            more(self.server, off.server),
            None,
        );
        if let (Some(db), Some(db_off)) = (self.database, off.database) {
            ctx.report.fact(
                "ledger",
                &format!("{what} ledger: PostgreSQL's CPU added per call"),
                ms(db - db_off),
                "ms",
            );
            ctx.report.ratio(
                "ledger",
                &format!("{what} Steward + PostgreSQL CPU per call vs off, % more (all rounds)"),
                more(self.total(), off.total()),
                None,
            );
        }
    }
}

/// `stateless`: the same load from session clients (2025-11-25) and from stateless clients
/// (2026-07-28: no session, `_meta` on every request, grouped into logical sessions by the
/// server), on one server, interleaved.
pub async fn stateless(ctx: &mut Ctx) -> Result<()> {
    for engine in ctx.engines() {
        let e = engine.label();
        eprintln!("== stateless: {e}, ledger=async, session clients vs. stateless clients");
        let mut inst = Instance::start(ctx, engine, "async", &format!("stateless-{e}")).await?;
        let mut rows: [Vec<Row>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..ctx.rounds {
            rows[0].push(inst.measure_as(ctx, "stateless", false).await);
            rows[1].push(inst.measure_as(ctx, "stateless", true).await);
        }
        let [with, without] = rows.map(median_row);
        ctx.report.ratio(
            "stateless",
            &format!("{e}: stateless req/s / session req/s"),
            without.rps / with.rps,
            None,
        );
        ctx.report.latency_ratios(
            "stateless",
            &format!("{e}: stateless"),
            &without,
            "session",
            &with,
        );
        if let (Some(a), Some(b)) = (without.server_cpu_ms_per_call, with.server_cpu_ms_per_call) {
            ctx.report.ratio(
                "stateless",
                &format!("{e}: stateless server CPU per call / session"),
                a / b,
                None,
            );
        }
        ctx.report.row(with);
        ctx.report.row(without);
        inst.finish(ctx, "stateless", true).await?;
    }
    Ok(())
}

pub async fn drop_instance(inst: Instance) {
    if let Err(e) = inst.proc.stop() {
        eprintln!("warning: {e:#}");
    }
    if let Err(e) = inst.db.drop_db().await {
        eprintln!("warning: {e:#}");
    }
}

/// Puts a server's logged warnings and errors into the report (as a note).
pub fn note_log_problems(ctx: &mut Ctx, label: &str, log: &std::path::Path) {
    let (count, first) = crate::server::log_problems(log);
    if count > 0 {
        ctx.report.note(format!(
            "{label}: the server logged {count} warnings/errors, e.g. {first:?}"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::{median, median_interval, rounds_for};

    /// The ledger's verdict is this median of per-round costs: one outlier round (a build
    /// starting mid-run) must not move it, and an even count takes the middle two's mean.
    #[test]
    fn median_of_round_costs() {
        assert_eq!(median(vec![-14.2, 9.6, 0.5, 9.1, 1.2]), 1.2);
        assert_eq!(median(vec![40.0, 3.0, 5.0, 4.0]), 4.5);
        assert_eq!(median(vec![7.0]), 7.0);
        assert!(median(Vec::new()).is_nan());
    }

    /// The interval around the ledger's median cost: the k-th smallest and largest of the
    /// rounds, k as large as the level allows. Coverages are 1 − 2·P(Binomial(n, ½) < k),
    /// worked out by hand: n = 6, k = 1: 1 − 2/64; n = 10, k = 2: 1 − 2·11/1024; n = 20,
    /// k = 6: 1 − 2·21,700/1,048,576.
    #[test]
    fn median_interval_takes_the_order_statistics_the_level_allows() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;

        let i = median_interval(&[3.0, -1.0, 9.0, 4.0, 0.5, 2.0], 0.95).unwrap();
        assert_eq!((i.low, i.high, i.k, i.n), (-1.0, 9.0, 1, 6));
        assert!(close(i.coverage, 1.0 - 2.0 / 64.0));

        // Ten rounds: the second smallest and second largest (k = 3 covers only 89 %).
        let ten = [5.0, -9.6, 15.8, 2.1, -20.2, -17.2, 1.0, 7.5, 3.3, -2.0];
        let i = median_interval(&ten, 0.95).unwrap();
        assert_eq!((i.low, i.high, i.k), (-17.2, 7.5, 2));
        assert!(close(i.coverage, 1.0 - 2.0 * 11.0 / 1024.0));
        let i = median_interval(&ten, 0.85).unwrap();
        assert_eq!((i.low, i.high, i.k), (-9.6, 5.0, 3));
        assert!(close(i.coverage, 1.0 - 2.0 * 56.0 / 1024.0));

        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        let i = median_interval(&twenty, 0.95).unwrap();
        assert_eq!((i.low, i.high, i.k), (6.0, 15.0, 6));
        assert!(close(i.coverage, 1.0 - 2.0 * 21_700.0 / 1_048_576.0));

        // Five rounds reach 93.75 % at most: no 95 % interval, and 6 are needed.
        assert_eq!(median_interval(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.95), None);
        let i = median_interval(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.9).unwrap();
        assert_eq!((i.low, i.high, i.k), (1.0, 5.0, 1));
        assert!(close(i.coverage, 0.9375));
        assert_eq!(median_interval(&[1.0], 0.95), None);
        assert_eq!(median_interval(&[], 0.95), None);
        assert_eq!(rounds_for(0.95), 6);
        assert_eq!(rounds_for(0.99), 8);

        // Many rounds: the binomial sums stay finite (no 2^n overflow).
        let many: Vec<f64> = (0..2_000).map(f64::from).collect();
        let i = median_interval(&many, 0.95).unwrap();
        assert!(i.coverage >= 0.95 && i.k > 900 && i.low < 1_000.0 && i.high > 999.0);
    }
}
