//! Seeds a board straight into a migrated database with multi-row INSERTs: 100,000 tasks in
//! seconds, where 100,000 `manage_task` calls would take minutes. The rows are what Steward
//! itself would write (folded `search_text`, `assignee_key`, `feature_key`), so every index and
//! trigger a migration adds fires as it does for a tool call.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::types::Json;
use sqlx::{PgPool, QueryBuilder, SqliteConnection};
use steward::store::{DatabaseUrl, Id, Store};

use crate::db::Pool;
use crate::server::BenchDb;

/// Rows per multi-row INSERT (13 bound values each: under both engines' limits).
const BATCH: usize = 1_000;
/// Tasks per project (the Python peer's board: 200 tasks in 5 projects).
const TASKS_PER_PROJECT: usize = 40;
/// Documents per project.
const DOCUMENTS_PER_PROJECT: usize = 2;
const STATUSES: [&str; 4] = ["todo", "doing", "review", "done"];
const ASSIGNEES: [&str; 4] = ["User", "AI IDE Agent", "Archon", "Claude Code"];

/// Words titles and descriptions are drawn from; `cache` among them, so a text query for it
/// matches about one task in ten at any board size.
pub const WORDS: &[&str] = &[
    "cache",
    "ledger",
    "dashboard",
    "session",
    "request",
    "token",
    "board",
    "project",
    "task",
    "document",
    "gateway",
    "upstream",
    "replica",
    "index",
    "query",
    "filter",
    "status",
    "assignee",
    "feature",
    "claim",
    "lease",
    "blocker",
    "history",
    "version",
    "export",
    "import",
    "restore",
    "metric",
    "health",
    "check",
    "config",
    "server",
    "client",
    "stream",
    "event",
    "notify",
    "resource",
    "prompt",
    "tool",
    "schema",
    "table",
    "column",
    "migration",
    "engine",
    "pool",
    "connection",
    "timeout",
    "retry",
    "batch",
    "page",
    "cursor",
    "order",
    "sort",
    "count",
    "total",
    "search",
    "text",
    "title",
    "description",
    "summary",
    "report",
    "bench",
    "latency",
    "throughput",
    "memory",
    "disk",
    "network",
    "socket",
    "header",
    "body",
    "json",
    "serde",
    "value",
    "field",
    "record",
    "row",
    "key",
    "hash",
    "secret",
    "principal",
    "policy",
    "rule",
    "limit",
    "quota",
    "budget",
    "cost",
    "price",
    "model",
    "usage",
    "rollup",
    "hourly",
    "daily",
    "weekly",
    "cleanup",
    "prune",
    "archive",
    "delete",
    "update",
    "create",
    "read",
    "write",
    "lock",
    "transaction",
    "commit",
    "rollback",
    "journal",
    "spill",
    "flush",
    "buffer",
    "queue",
    "worker",
    "thread",
    "runtime",
    "future",
    "task_set",
    "signal",
    "shutdown",
    "startup",
    "warmup",
    "probe",
    "listener",
    "router",
    "handler",
    "middleware",
    "layer",
    "service",
    "trace",
    "span",
    "log",
    "warning",
    "error",
    "panic",
    "recover",
    "fallback",
    "default",
    "option",
    "flag",
    "argument",
    "command",
    "help",
    "docs",
    "readme",
    "openapi",
    "spec",
    "design",
    "note",
    "guide",
    "api",
    "wire",
    "parse",
    "encode",
    "decode",
    "compress",
    "split",
    "merge",
    "join",
    "group",
    "window",
    "chart",
    "graph",
    "node",
    "edge",
    "cycle",
    "parent",
    "child",
    "link",
    "source",
    "example",
    "snippet",
    "test",
    "fixture",
    "harness",
    "mock",
    "fake",
    "real",
    "replay",
    "fuzz",
    "corpus",
    "seed",
    "random",
    "stable",
    "fast",
    "slow",
    "small",
    "large",
    "empty",
    "full",
    "stale",
    "fresh",
    "old",
    "new",
    "first",
    "last",
    "next",
    "previous",
    "open",
    "closed",
    "done",
    "todo",
    "doing",
    "review",
    "agent",
    "user",
    "person",
    "team",
    "owner",
    "member",
    "role",
    "scope",
    "grant",
    "revoke",
    "rotate",
    "expire",
    "renew",
    "refresh",
    "poll",
    "push",
    "pull",
    "sync",
    "async",
    "await",
    "spawn",
    "join_set",
    "select",
    "channel",
    "mutex",
    "atomic",
    "arc",
    "vec",
    "map",
    "set",
    "list",
    "array",
    "string",
    "number",
    "integer",
    "decimal",
    "money",
    "currency",
    "time",
    "clock",
    "date",
    "zone",
    "utc",
    "offset",
    "format",
    "display",
    "render",
    "view",
    "widget",
    "button",
    "panel",
    "tab",
    "badge",
    "icon",
    "color",
    "theme",
    "layout",
    "grid",
];

/// What was seeded: the ids the reads filter by.
pub struct Seeded {
    pub projects: Vec<Id>,
    pub seconds: f64,
}

/// A deterministic word picker (xorshift64*): the same board on every run.
struct Words(u64);

impl Words {
    fn next(&mut self) -> &'static str {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        WORDS[(r >> 33) as usize % WORDS.len()]
    }

    fn sentence(&mut self, n: usize) -> String {
        let words: Vec<&str> = (0..n).map(|_| self.next()).collect();
        let mut text = words.join(" ");
        if let Some(first) = text.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        text
    }
}

struct TaskRow {
    id: Id,
    project: Id,
    title: String,
    description: String,
    status: &'static str,
    assignee: &'static str,
    order: i32,
    at: DateTime<Utc>,
}

/// Where the rows go: on SQLite one transaction for the whole board (each commit flushes a
/// segment of the FTS5 trigram index, which the next commits merge again); on PostgreSQL a
/// transaction per batch (one holding the whole board would update each of `task_totals`'
/// rows thousands of times, and each update walks the row's versions so far).
enum Sink<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c PgPool),
}

/// Creates Steward's schema in a new database with Steward's own migrations (so the rows meet
/// every index and trigger), then seeds it (see [`seed`]).
pub async fn migrate_and_seed(db: &BenchDb, tasks: usize) -> Result<Seeded> {
    let store = Store::open(&DatabaseUrl::parse(&db.url)?)
        .await
        .context("migrating the bench database with Steward's store")?;
    store.close().await;
    let pool = Pool::open(db).await?;
    let seeded = seed(&pool, tasks).await;
    pool.close().await;
    seeded
}

/// Inserts `tasks` tasks in `tasks / 40` projects (at least one) with 2 documents each.
pub async fn seed(pool: &Pool, tasks: usize) -> Result<Seeded> {
    let start = std::time::Instant::now();
    let projects = match pool {
        Pool::Sqlite(p) => {
            let mut tx = p.begin().await?;
            let projects = seed_into(&mut Sink::Sqlite(&mut tx), tasks).await?;
            tx.commit().await?;
            projects
        }
        Pool::Postgres(p) => {
            let projects = seed_into(&mut Sink::Postgres(p), tasks).await?;
            // What autovacuum (on by default, off on the bench machine) does to a board that
            // grew by tool calls: its analyze gathers statistics after the first 10% of
            // changes — without them the planner guesses that most tasks are claimed and
            // scans the table for the expired-claims count every `find_tasks` runs first — and
            // its vacuum clears the dead versions of the trigger-kept counts' few rows once
            // ~50 of them are dead (it looks every minute). Seeding updates those rows once per task: unvacuumed, every
            // total read 689 pages of dead versions (13 ms instead of 0.4 ms for the assignee
            // page at 100,000 tasks; BENCHMARKS.md, session 13).
            sqlx::raw_sql("VACUUM ANALYZE").execute(p).await?;
            projects
        }
    };
    Ok(Seeded {
        projects,
        seconds: start.elapsed().as_secs_f64(),
    })
}

async fn seed_into(sink: &mut Sink<'_>, tasks: usize) -> Result<Vec<Id>> {
    let now = Utc::now();
    let projects: Vec<Id> = (0..tasks.div_ceil(TASKS_PER_PROJECT).max(1))
        .map(|_| Id::new())
        .collect();
    insert_projects(sink, &projects, now).await?;
    insert_documents(sink, &projects, now).await?;
    let mut words = Words(0x9e37_79b9_7f4a_7c15);
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..tasks {
        batch.push(TaskRow {
            id: Id::new(),
            project: projects[i / TASKS_PER_PROJECT],
            title: words.sentence(4),
            description: format!("{}.", words.sentence(24)),
            status: STATUSES[i % STATUSES.len()],
            assignee: ASSIGNEES[(i / STATUSES.len()) % ASSIGNEES.len()],
            order: ((i * 37) % 101) as i32,
            at: now - chrono::Duration::milliseconds((tasks - i) as i64),
        });
        if batch.len() == BATCH || i + 1 == tasks {
            insert_tasks(sink, &batch).await?;
            batch.clear();
        }
    }
    Ok(projects)
}

async fn insert_tasks(sink: &mut Sink<'_>, rows: &[TaskRow]) -> Result<()> {
    macro_rules! insert {
        ($db:ty, $pool:expr) => {{
            let mut q = QueryBuilder::<$db>::new(
                "INSERT INTO tasks (id, project_id, title, description, status, assignee, task_order, \
                 feature, created_at, updated_at, search_text, assignee_key, feature_key) ",
            );
            q.push_values(rows, |mut r, t| {
                r.push_bind(t.id)
                    .push_bind(t.project)
                    .push_bind(&t.title)
                    .push_bind(&t.description)
                    .push_bind(t.status)
                    .push_bind(t.assignee)
                    .push_bind(t.order)
                    .push_bind("benchmarks")
                    .push_bind(t.at)
                    .push_bind(t.at)
                    .push_bind(format!("{}\n{}", t.title, t.description).to_lowercase())
                    .push_bind(t.assignee.to_lowercase())
                    .push_bind("benchmarks");
            });
            q.build().execute($pool).await?;
        }};
    }
    match sink {
        Sink::Sqlite(c) => insert!(sqlx::Sqlite, &mut **c),
        Sink::Postgres(p) => insert!(sqlx::Postgres, *p),
    }
    Ok(())
}

async fn insert_projects(sink: &mut Sink<'_>, ids: &[Id], now: DateTime<Utc>) -> Result<()> {
    for (b, chunk) in ids.chunks(BATCH).enumerate() {
        macro_rules! insert {
            ($db:ty, $pool:expr) => {{
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO projects (id, title, description, created_at, updated_at, search_text) ",
                );
                q.push_values(chunk.iter().enumerate(), |mut r, (j, id)| {
                    let n = b * BATCH + j;
                    let title = format!("Bench project {n}");
                    let description = "A project seeded by steward-bench's board scenario.";
                    let at = now - chrono::Duration::seconds(n as i64);
                    r.push_bind(*id)
                        .push_bind(title.clone())
                        .push_bind(description)
                        .push_bind(at)
                        .push_bind(at)
                        .push_bind(format!("{title}\n{description}").to_lowercase());
                });
                q.build().execute($pool).await?;
            }};
        }
        match sink {
            Sink::Sqlite(c) => insert!(sqlx::Sqlite, &mut **c),
            Sink::Postgres(p) => insert!(sqlx::Postgres, *p),
        }
    }
    Ok(())
}

async fn insert_documents(sink: &mut Sink<'_>, projects: &[Id], now: DateTime<Utc>) -> Result<()> {
    let docs: Vec<(Id, usize)> = projects
        .iter()
        .flat_map(|p| (0..DOCUMENTS_PER_PROJECT).map(move |k| (*p, k)))
        .collect();
    for chunk in docs.chunks(BATCH) {
        macro_rules! insert {
            ($db:ty, $pool:expr) => {{
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO documents (id, project_id, document_type, title, content, tags, author, \
                     created_at, updated_at, search_text) ",
                );
                q.push_values(chunk, |mut r, (project, k)| {
                    let title = format!("Design note {k}");
                    let at = now - chrono::Duration::seconds(*k as i64);
                    r.push_bind(Id::new())
                        .push_bind(*project)
                        .push_bind("note")
                        .push_bind(title.clone())
                        .push_bind(Json(json!({"body": "Seeded by steward-bench."})))
                        .push_bind(Json(json!(["bench"])))
                        .push_bind("steward-bench")
                        .push_bind(at)
                        .push_bind(at)
                        .push_bind(title.to_lowercase());
                });
                q.build().execute($pool).await?;
            }};
        }
        match sink {
            Sink::Sqlite(c) => insert!(sqlx::Sqlite, &mut **c),
            Sink::Postgres(p) => insert!(sqlx::Postgres, *p),
        }
    }
    Ok(())
}
