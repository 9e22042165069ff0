//! `board`: the board reads (issue #23, item 1) on a small board shaped like the Python peer's
//! (200 tasks, 5 projects, 4-word titles, 24-word descriptions) and on a large one (100,000
//! tasks), same load on both: does a read keep its throughput as the board grows, and what is a
//! single client's median latency on the large board? Both boards are seeded straight into the
//! database (see `board_seed`), then a real `steward serve` answers.

use anyhow::Result;
use serde_json::json;

use crate::board_seed::migrate_and_seed;
use crate::client::{LoadOutcome, LoadSpec, Target, run_load};
use crate::report::Row;
use crate::scenarios::{Ctx, note_log_problems};
use crate::server::{BenchDb, Engine, ServerProc};

/// The issue's targets: large-board throughput over small-board throughput, and the single
/// client's p50 on the large board.
const MIN_RATIO: f64 = 0.80;
const MAX_P50_MS: f64 = 1.0;

pub struct BoardOpts {
    pub small: usize,
    pub large: usize,
    /// Calls per read per board, `concurrency` in flight.
    pub requests: usize,
    /// Calls per read from a single client on the large board.
    pub single: usize,
}

impl BoardOpts {
    pub fn new(large: Option<usize>, quick: bool) -> BoardOpts {
        BoardOpts {
            small: 200,
            large: large.unwrap_or(if quick { 10_000 } else { 100_000 }),
            requests: if quick { 1_000 } else { 4_000 },
            single: if quick { 200 } else { 1_000 },
        }
    }
}

/// One read: a label, the tool and its arguments (`{project}` stands for the first project).
struct Read {
    label: &'static str,
    tool: &'static str,
    args: &'static str,
}

const READS: [Read; 7] = [
    Read {
        label: "find_tasks query",
        tool: "find_tasks",
        args: r#"{"query":"cache"}"#,
    },
    Read {
        label: "find_tasks status",
        tool: "find_tasks",
        args: r#"{"filter_by":"status","filter_value":"doing"}"#,
    },
    Read {
        label: "find_tasks project",
        tool: "find_tasks",
        args: r#"{"filter_by":"project","filter_value":"{project}"}"#,
    },
    Read {
        label: "find_tasks assignee",
        tool: "find_tasks",
        args: r#"{"filter_by":"assignee","filter_value":"archon"}"#,
    },
    Read {
        label: "find_tasks first page",
        tool: "find_tasks",
        args: "{}",
    },
    Read {
        label: "find_projects",
        tool: "find_projects",
        args: "{}",
    },
    Read {
        label: "find_documents",
        tool: "find_documents",
        args: r#"{"project_id":"{project}"}"#,
    },
];

/// A seeded board and the server answering on it.
struct Board {
    tasks: usize,
    proc: ServerProc,
    target: Target,
    sessions: Vec<String>,
    project: String,
    db: BenchDb,
    next_id: u64,
}

impl Board {
    async fn start(ctx: &mut Ctx, engine: Engine, tasks: usize) -> Result<Board> {
        let name = format!("board-{}-{tasks}", engine.label());
        let db = ctx.new_db(engine, &name).await?;
        match Self::start_on(ctx, &db, &name, tasks).await {
            Ok((proc, target, sessions, project)) => Ok(Board {
                tasks,
                proc,
                target,
                sessions,
                project,
                db,
                next_id: 1,
            }),
            Err(error) => {
                if let Err(e) = db.drop_db().await {
                    eprintln!("warning: could not drop the bench database: {e:#}");
                }
                Err(error)
            }
        }
    }

    async fn start_on(
        ctx: &mut Ctx,
        db: &BenchDb,
        name: &str,
        tasks: usize,
    ) -> Result<(ServerProc, Target, Vec<String>, String)> {
        let seeded = migrate_and_seed(db, tasks).await?;
        ctx.report.fact(
            "board",
            &format!(
                "{}: seeding {tasks} tasks, {} projects",
                db.engine.label(),
                seeded.projects.len()
            ),
            json!(format!("{:.1}", seeded.seconds)),
            "s",
        );
        let proc = ctx.start_steward(db, name)?;
        let target = Target::new(proc.addr, "/mcp")?;
        let sessions = ctx.open_sessions(&target).await?;
        ctx.report.fact(
            "board",
            &format!(
                "{}: server RSS idle at {tasks} tasks ({} sessions open)",
                db.engine.label(),
                sessions.len()
            ),
            json!(format!("{:.1}", proc.stats().rss_kib as f64 / 1024.0)),
            "MiB",
        );
        Ok((proc, target, sessions, seeded.projects[0].to_string()))
    }

    async fn load(
        &mut self,
        ctx: &Ctx,
        read: &Read,
        requests: usize,
        concurrency: usize,
    ) -> LoadOutcome {
        let spec = LoadSpec {
            target: self.target.clone(),
            sessions: self.sessions.clone(),
            requests,
            concurrency,
            max_time: ctx.max_time,
            tool: read.tool.to_string(),
            args_json: read.args.replace("{project}", &self.project),
            varied_args: None,
            check_id: true,
            first_id: self.next_id,
            stateless: false,
        };
        self.next_id += requests as u64;
        run_load(&spec).await
    }

    /// A measured run with the server's CPU and memory.
    async fn measure(
        &mut self,
        ctx: &Ctx,
        read: &Read,
        requests: usize,
        concurrency: usize,
    ) -> Row {
        let before = self.proc.stats();
        let out = self.load(ctx, read, requests, concurrency).await;
        let after = self.proc.stats();
        let clients = if concurrency == 1 { ", 1 client" } else { "" };
        let label = format!(
            "{} {} tasks{clients}: {}",
            self.db.engine.label(),
            self.tasks,
            read.label
        );
        Row::new(
            "board",
            &label,
            &out,
            concurrency,
            Some((before, after)),
            ctx.ticks_per_s,
        )
    }

    async fn stop(self, ctx: &mut Ctx) -> Result<()> {
        let label = format!("board-{}-{}", self.db.engine.label(), self.tasks);
        let log = self.proc.log.clone();
        let stopped = self.proc.stop();
        note_log_problems(ctx, &label, &log);
        let dropped = self.db.drop_db().await;
        stopped?;
        dropped
    }
}

pub async fn board(ctx: &mut Ctx, opts: &BoardOpts) -> Result<()> {
    for engine in ctx.engines() {
        let e = engine.label();
        eprintln!("== board: {e}, {} vs {} tasks", opts.small, opts.large);
        let small = Board::start(ctx, engine, opts.small).await?;
        let large = match Board::start(ctx, engine, opts.large).await {
            Ok(large) => large,
            Err(error) => {
                small.stop(ctx).await?;
                return Err(error);
            }
        };
        let mut boards = [small, large];
        let measured = measure_reads(ctx, opts, &mut boards).await;
        let [small, large] = boards;
        let stopped = (small.stop(ctx).await, large.stop(ctx).await);
        measured?;
        stopped.0?;
        stopped.1?;
    }
    Ok(())
}

/// Each read on the small board, then the large one (interleaved, so a slower moment of the
/// shared machine hits both), then a single client on the large board.
async fn measure_reads(ctx: &mut Ctx, opts: &BoardOpts, boards: &mut [Board; 2]) -> Result<()> {
    let e = boards[0].db.engine.label();
    let warmup = (ctx.warmup / 10).max(20);
    for read in &READS {
        let mut rows = Vec::new();
        for board in boards.iter_mut() {
            let out = board.load(ctx, read, warmup, ctx.concurrency).await;
            if out.errors > 0 {
                anyhow::bail!("{e} {}: warm-up failed: {:?}", read.label, out.first_errors);
            }
            rows.push(
                board
                    .measure(ctx, read, opts.requests, ctx.concurrency)
                    .await,
            );
        }
        // A single client on both boards: the p50 the target is about, and the same read's
        // p50 on the small board (what the call costs apart from the board's size).
        let single_small = boards[0].measure(ctx, read, opts.single, 1).await;
        let single = boards[1].measure(ctx, read, opts.single, 1).await;
        let ratio = rows[1].rps / rows[0].rps.max(1e-9);
        ctx.report.ratio(
            "board",
            &format!(
                "{e}: {} req/s at {} / at {} tasks",
                read.label, opts.large, opts.small
            ),
            ratio,
            Some((&format!("≥ {MIN_RATIO:.2}"), ratio >= MIN_RATIO)),
        );
        ctx.report.ratio(
            "board",
            &format!(
                "{e}: {} single-client p50 ms at {} tasks",
                read.label, opts.large
            ),
            single.p50_ms,
            Some((&format!("≤ {MAX_P50_MS:.1}"), single.p50_ms <= MAX_P50_MS)),
        );
        ctx.report.ratio(
            "board",
            &format!(
                "{e}: {} single-client p50 at {} / at {} tasks",
                read.label, opts.large, opts.small
            ),
            single.p50_ms / single_small.p50_ms.max(1e-9),
            None,
        );
        for row in rows {
            ctx.report.row(row);
        }
        ctx.report.row(single_small);
        ctx.report.row(single);
    }
    for board in boards.iter() {
        let stats = board.proc.stats();
        ctx.report.fact(
            "board",
            &format!(
                "{e}: server RSS after every read at {} tasks / peak under the load",
                board.tasks
            ),
            json!(format!(
                "{:.1} / {:.1}",
                stats.rss_kib as f64 / 1024.0,
                stats.hwm_kib as f64 / 1024.0
            )),
            "MiB",
        );
    }
    Ok(())
}
