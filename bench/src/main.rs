//! `steward-bench`: a load generator for Steward and the scenarios of BENCHMARKS.md.
//!
//! It starts the real release `steward serve` (and, for comparison, a bare axum server, a bare rmcp
//! server and the Python peer) on 127.0.0.1 ephemeral ports, opens MCP sessions, sends a bounded number of
//! validated `tools/call` requests with a fixed number in flight, and reports throughput,
//! latency percentiles, errors, the server's RSS and CPU per call, and ratios between
//! measurements of the same run.

mod analytics;
mod board;
mod board_seed;
mod client;
mod db;
mod gateway;
mod in_process;
mod instructions;
mod limit;
mod mappings;
mod peer;
mod proxy;
mod report;
mod rmcp_limit;
mod scenarios;
mod server;
mod sessions;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::report::Report;
use crate::scenarios::Ctx;
use crate::server::Engine;

#[derive(Parser, Debug)]
#[command(
    name = "steward-bench",
    about = "Load generator and benchmark scenarios for Steward (see BENCHMARKS.md)",
    after_help = "Memory by mapping (run, peer, sessions): while a measured run lasts, the server's \
/proc/PID/smaps is read every 250 ms and the sample with the highest resident total is kept, split \
into anon (anonymous mappings: the heap, the allocator's segments, thread stacks), code (the \
binary's executable r-xp mappings), rodata (the binary's read-only r--p mappings), libs (shared \
libraries, *.so) and other (the binary's writable data, other mapped files such as SQLite's -shm, \
[vdso]), in MiB: the table after the runs, `peak_by_mapping` in the JSON. For sessions the window is \
the first server's from opening the sessions to their first calls (its first-call row) and the \
restarted server's from the restore storm to the last cached call (its storm row).

Example: cargo run --release -p steward-bench -- all --postgres postgres://postgres@127.0.0.1:5432/postgres"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// The steward binary (default: $CARGO_TARGET_DIR/release/steward, else target/release/steward).
    #[arg(long, global = true, value_name = "PATH")]
    steward_bin: Option<PathBuf>,
    /// Do not run `cargo build --release -p steward` first (use the binary as it is).
    #[arg(long, global = true)]
    no_build: bool,
    /// Also run on PostgreSQL: a unique database is created on this server and dropped after.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "STEWARD_BENCH_POSTGRES"
    )]
    postgres: Option<String>,
    /// tools/call requests per measured run.
    #[arg(short = 'n', long, global = true, default_value_t = 20_000)]
    requests: usize,
    /// Requests in flight (one connection each).
    #[arg(short = 'c', long, global = true, default_value_t = 32)]
    concurrency: usize,
    /// MCP sessions the requests rotate over.
    #[arg(short = 's', long, global = true, default_value_t = 20)]
    sessions: usize,
    /// Unmeasured requests per server before measuring.
    #[arg(long, global = true, default_value_t = 1_000)]
    warmup: usize,
    /// Measured runs per variant, interleaved; the run with the median throughput is reported
    /// (`ledger` also reports the median of the rounds' async/off ratios, its verdict, with an
    /// interval for it from 6 rounds on, and runs every other round's variants in reverse
    /// order, each on a server of its own).
    #[arg(long, global = true, default_value_t = 1)]
    rounds: usize,
    /// Upper bound on one measured run, seconds (requests stop being started after it).
    #[arg(long, global = true, default_value_t = 120)]
    max_seconds: u64,
    /// Tool to call.
    #[arg(long, global = true, default_value = "find_tasks")]
    tool: String,
    /// The tool's arguments (JSON).
    #[arg(long, global = true, default_value = r#"{"per_page":10}"#)]
    args: String,
    /// Tasks seeded on the board before measuring.
    #[arg(long, global = true, default_value_t = 20)]
    tasks: usize,
    /// Short runs: at most 5,000 requests, 300 warm-up calls and 1,000 restored sessions.
    #[arg(long, global = true)]
    quick: bool,
    /// Print the report as JSON on stdout (progress stays on stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long, global = true, value_name = "PATH")]
    json_out: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct SessionArgs {
    /// Sessions stored in the database for the startup measurement.
    #[arg(long, default_value_t = 100_000)]
    stored_sessions: usize,
    /// Sessions opened, then restored after a restart (the issue asks for 10,000).
    #[arg(long, default_value_t = 2_000)]
    restore_sessions: usize,
    /// Starts per startup measurement (median reported).
    #[arg(long, default_value_t = 3)]
    starts: usize,
}

#[derive(Args, Debug, Clone)]
struct PeerArgs {
    /// Do not run bench/peer/setup.sh (the venv must exist).
    #[arg(long)]
    no_setup: bool,
    /// A Python with `mcp`, `aiosqlite` and `uvicorn` installed (skips the venv).
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Steward alone (SQLite, or PostgreSQL with --postgres) with one ledger durability.
    Run {
        #[arg(long, default_value = "async", value_parser = ["off", "async", "sync"])]
        ledger_durability: String,
    },
    /// Steward vs. a bare rmcp server (same text) and a bare axum server answering Steward's
    /// pre-serialised SSE bytes (the limit).
    Limit,
    /// find_tasks with the ledger off vs. async vs. sync, on SQLite and PostgreSQL: searches of
    /// a seeded 200-task board, each for another word and page size (--tool, --args and --tasks
    /// do not apply). Every round starts each variant's server anew on a new database (seeded,
    /// warmed up, measured, its ledger checked, stopped, dropped). Per variant: each round's
    /// throughput cost against that round's off server, their median (the verdict: async
    /// ≤ 5 %) and a distribution-free ≥ 95 % interval for that median (from 6 rounds on).
    Ledger {
        /// The bench's noise floor: a second off server ("null") measured exactly like the
        /// others, its cost against off reported beside async's and sync's; a quarter more
        /// time. Default: on, off with --quick.
        #[arg(long, value_parser = ["on", "off"])]
        null: Option<String>,
    },
    /// The same load from session clients (2025-11-25) and stateless clients (2026-07-28).
    Stateless,
    /// The dashboard's statistics (/api/stats) over a large ledger (1,000,000 rows; 100,000
    /// with --quick).
    Analytics {
        /// Ledger rows to seed (default: 1,000,000, or 100,000 with --quick).
        #[arg(long)]
        rows: Option<usize>,
    },
    /// The ledger's cost in instructions per message (valgrind callgrind), off vs. async:
    /// deterministic, unlike throughput on a shared machine. Every call is a find_tasks search of
    /// a 200-task board for another word and page size, so the ledger counts the tokens of new
    /// text as with varied traffic (--tool, --args and --tasks do not apply). Needs valgrind; a
    /// few minutes.
    Instructions {
        /// Keep the callgrind output files in this directory (for `callgrind_annotate
        /// --inclusive=yes`, to see where the instructions go).
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
        /// Also simulate the caches (valgrind's `--cache-sim=yes`, about twice as slow) and
        /// report cache misses per message: work that costs time without costing instructions.
        #[arg(long)]
        cache_sim: bool,
        /// Also simulate the branch predictors (valgrind's `--branch-sim=yes`) and report
        /// mispredicted branches per message: pipeline flushes, which cost time without
        /// costing instructions.
        #[arg(long)]
        branch_sim: bool,
        /// Count a gateway hop instead (SQLite): `tools/call`s of the `gateway` scenario's bare
        /// rmcp upstream through Steward's `--upstream`, ledger off and async; each call's
        /// arguments differ and the upstream echoes them, as in `gateway`.
        #[arg(long)]
        gateway: bool,
    },
    /// The cost of a hop: a bare rmcp server called directly vs. through a bare
    /// byte-forwarding proxy (the floor of any hop) vs. through Steward's gateway mode
    /// (`--upstream`, async ledger): added p50/p99 with one request in flight, throughput
    /// ratio with --concurrency in flight. Each call's arguments differ and the upstream
    /// echoes them in a ~1 KB answer, so the ledger counts every call anew (--tool and --args
    /// do not apply).
    Gateway,
    /// Startup with stored sessions, restore storm after a restart, memory per session.
    Sessions(SessionArgs),
    /// Steward vs. the Python mcp SDK's FastMCP server with per-call INSERT tracking, and vs.
    /// a bare rmcp server answering Steward's text (the SDK floor), in the same rounds.
    Peer(PeerArgs),
    /// Board reads (find_tasks with a text query, a status, project and assignee filter, the
    /// first page; find_projects, find_documents) on a 200-task board and a 100,000-task one
    /// (10,000 with --quick), seeded straight into the database: throughput ratio (target
    /// ≥ 0.80) and a single client's p50 on the large board (target ≤ 1 ms).
    Board {
        /// Tasks on the large board (default: 100,000, or 10,000 with --quick).
        #[arg(long)]
        large_tasks: Option<usize>,
    },
    /// Every scenario, one report (the board's at its --quick or full size).
    All {
        #[command(flatten)]
        sessions: SessionArgs,
        #[command(flatten)]
        peer: PeerArgs,
        /// Leave the Python peer out.
        #[arg(long)]
        no_peer: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("steward-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(errors) => {
            eprintln!("steward-bench: {errors} requests failed validation");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("steward-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<usize> {
    let mut c = cli.common.clone();
    if c.quick {
        c.requests = c.requests.min(5_000);
        c.warmup = c.warmup.min(300);
    }
    serde_json::from_str::<serde_json::Value>(&c.args).context("--args is not JSON")?;
    let bin = steward_bin(&c)?;
    let ctx_tmp = tempfile::Builder::new()
        .prefix("steward-bench-")
        .tempdir()?;
    let mut ctx = Ctx {
        bin: bin.clone(),
        tmp: ctx_tmp,
        postgres: c.postgres.clone(),
        requests: c.requests,
        concurrency: c.concurrency.max(1),
        sessions: c.sessions.max(1),
        warmup: c.warmup,
        rounds: c.rounds.max(1),
        max_time: Duration::from_secs(c.max_seconds),
        tool: c.tool.clone(),
        args_json: c.args.clone(),
        varied_args: None,
        tasks: c.tasks,
        ticks_per_s: server::clock_ticks(),
        report: Report::default(),
    };
    ctx.report.machine = machine(&bin);
    ctx.report.settings = json!({
        "scenario": format!("{:?}", cli.scenario),
        "requests": ctx.requests, "concurrency": ctx.concurrency, "sessions": ctx.sessions,
        "warmup": ctx.warmup, "rounds": ctx.rounds, "tool": ctx.tool, "args": ctx.args_json,
        "tasks": ctx.tasks, "postgres": c.postgres.as_ref().map(|u| redact(u)), "quick": c.quick,
    });
    let session_opts = |a: &SessionArgs| sessions::SessionOpts {
        stored: if c.quick {
            a.stored_sessions.min(100_000)
        } else {
            a.stored_sessions
        },
        restore: if c.quick {
            a.restore_sessions.min(1_000)
        } else {
            a.restore_sessions
        },
        starts: a.starts,
    };
    let peer_opts = |a: &PeerArgs| peer::PeerOpts {
        setup: !a.no_setup,
        python: a.python.clone(),
    };
    match &cli.scenario {
        Scenario::Run { ledger_durability } => {
            let d: &'static str = match ledger_durability.as_str() {
                "off" => "off",
                "sync" => "sync",
                _ => "async",
            };
            let engine = if c.postgres.is_some() {
                Engine::Postgres
            } else {
                Engine::Sqlite
            };
            scenarios::run_plain(&mut ctx, engine, d).await?;
        }
        Scenario::Limit => scenarios::limit(&mut ctx).await?,
        Scenario::Ledger { null } => {
            let null = null.as_deref().map_or(!c.quick, |n| n == "on");
            scenarios::ledger(&mut ctx, null).await?
        }
        Scenario::Stateless => scenarios::stateless(&mut ctx).await?,
        Scenario::Instructions {
            keep,
            cache_sim,
            branch_sim,
            gateway,
        } => {
            let opts = instructions::Opts {
                quick: c.quick,
                keep: keep.as_deref(),
                cache_sim: *cache_sim,
                branch_sim: *branch_sim,
                gateway: *gateway,
            };
            instructions::instructions(&mut ctx, &opts).await?
        }
        Scenario::Analytics { rows } => {
            let rows = rows.unwrap_or(analytics::default_rows(c.quick));
            analytics::analytics(&mut ctx, rows).await?
        }
        Scenario::Gateway => gateway::gateway(&mut ctx).await?,
        Scenario::Sessions(a) => sessions::sessions(&mut ctx, &session_opts(a)).await?,
        Scenario::Peer(a) => peer::peer(&mut ctx, &peer_opts(a)).await?,
        Scenario::Board { large_tasks } => {
            board::board(&mut ctx, &board::BoardOpts::new(*large_tasks, c.quick)).await?
        }
        Scenario::All {
            sessions: s,
            peer: p,
            no_peer,
        } => {
            scenarios::limit(&mut ctx).await?;
            scenarios::ledger(&mut ctx, !c.quick).await?;
            scenarios::stateless(&mut ctx).await?;
            gateway::gateway(&mut ctx).await?;
            analytics::analytics(&mut ctx, analytics::default_rows(c.quick)).await?;
            board::board(&mut ctx, &board::BoardOpts::new(None, c.quick)).await?;
            sessions::sessions(&mut ctx, &session_opts(s)).await?;
            if !no_peer {
                peer::peer(&mut ctx, &peer_opts(p)).await?;
            }
        }
    }
    ctx.report.machine["loadavg_end"] = json!(loadavg());
    if let Some(path) = &c.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&ctx.report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if c.json {
        println!("{}", serde_json::to_string_pretty(&ctx.report)?);
    } else {
        println!("\n{}", ctx.report.table());
    }
    if let Some(lost) = ctx.report.ledger_failure() {
        bail!(lost);
    }
    Ok(ctx.report.total_errors())
}

/// Finds (and unless --no-build, builds) the release steward binary.
fn steward_bin(c: &Common) -> Result<PathBuf> {
    if let Some(p) = &c.steward_bin {
        if !p.exists() {
            bail!("--steward-bin {} does not exist", p.display());
        }
        return Ok(p.clone());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .context("the bench crate has no parent directory")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("release/steward");
    if !c.no_build {
        eprintln!("building steward: cargo build --release -p steward (skip with --no-build)");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "steward", "--bin", "steward"])
            .current_dir(&root)
            .status()
            .context("running cargo build --release")?;
        if !status.success() {
            bail!(
                "cargo build --release -p steward failed ({status}); fix the build or pass --no-build"
            );
        }
    }
    if !bin.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release` (same CARGO_TARGET_DIR), or pass --steward-bin",
            bin.display()
        );
    }
    Ok(bin)
}

fn machine(bin: &std::path::Path) -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let git = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "steward_bin": bin.display().to_string(),
        "git": git,
        "loadavg_start": loadavg(),
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
