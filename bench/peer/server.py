"""The Python peer for steward-bench.

What users run today instead of Steward: a server on the official `mcp` SDK's FastMCP (in mcp 2.x
it is `mcp.server.mcpserver.MCPServer`) over Streamable HTTP on uvicorn (one worker), with the same
two tools Steward is measured with (`find_tasks` reading a task board from SQLite, and
`health_check`) and Archon-style request tracking: every tool call awaits an INSERT of its row
before it answers.

Run by `steward-bench peer` after `bench/peer/setup.sh` made bench/.venv. It prints
`peer listening on http://127.0.0.1:PORT` on stdout once it accepts connections.
"""

import argparse
import asyncio
import json
import socket
import sys
import time
import uuid
from datetime import datetime, timezone
from collections.abc import Awaitable

import aiosqlite
import uvicorn
from mcp.server.mcpserver import Context, MCPServer

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, project_id TEXT NOT NULL, title TEXT NOT NULL, description TEXT NOT NULL,
    status TEXT NOT NULL, assignee TEXT NOT NULL, task_order INTEGER NOT NULL, feature TEXT,
    archived INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mcp_requests (
    request_id TEXT PRIMARY KEY, session_id TEXT, method TEXT NOT NULL, tool_name TEXT,
    status TEXT NOT NULL, duration_ms INTEGER NOT NULL, response_bytes INTEGER NOT NULL,
    timestamp TEXT NOT NULL);
"""

db: aiosqlite.Connection | None = None
mcp = MCPServer("archon-like-peer", log_level="WARNING")


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


async def track(ctx: Context, tool: str, work: Awaitable[str]) -> str:
    """Archon's way: time the tool, then await the INSERT of its request row, then answer."""
    start = time.perf_counter()
    status = "success"
    result = ""
    try:
        result = await work
        return result
    except Exception:
        status = "error"
        raise
    finally:
        headers = ctx.headers or {}
        assert db is not None
        await db.execute(
            "INSERT INTO mcp_requests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(uuid.uuid4()),
                headers.get("mcp-session-id"),
                "tools/call",
                tool,
                status,
                int((time.perf_counter() - start) * 1000),
                len(result),
                now(),
            ),
        )
        await db.commit()


async def _find_tasks(
    query: str | None = None,
    task_id: str | None = None,
    filter_by: str | None = None,
    filter_value: str | None = None,
    project_id: str | None = None,
    include_closed: bool = False,
    page: int = 1,
    per_page: int = 10,
) -> str:
    assert db is not None
    where, params = ["archived = 0"], []
    if task_id:
        where.append("id = ?")
        params.append(task_id)
    if not include_closed:
        where.append("status <> 'done'")
    if project_id:
        where.append("project_id = ?")
        params.append(project_id)
    if filter_by in ("status", "assignee", "project") and filter_value:
        where.append(f"{'project_id' if filter_by == 'project' else filter_by} = ?")
        params.append(filter_value)
    if query:
        where.append("(title LIKE ? OR description LIKE ?)")
        params += [f"%{query}%", f"%{query}%"]
    cond = " AND ".join(where)
    async with db.execute(f"SELECT COUNT(*) FROM tasks WHERE {cond}", params) as cur:
        (total,) = await cur.fetchone()
    async with db.execute(
        f"SELECT id, project_id, title, description, status, assignee, task_order, feature, "
        f"created_at, updated_at FROM tasks WHERE {cond} ORDER BY task_order DESC, created_at "
        f"LIMIT ? OFFSET ?",
        params + [per_page, (page - 1) * per_page],
    ) as cur:
        rows = await cur.fetchall()
    keys = ["id", "project_id", "title", "description", "status", "assignee", "task_order",
            "feature", "created_at", "updated_at"]
    tasks = [dict(zip(keys, r)) for r in rows]
    for t in tasks:
        t["archived"] = False
        t["description_truncated"] = False
    return json.dumps({
        "success": True, "tasks": tasks, "count": len(tasks), "total": total, "page": page,
        "per_page": per_page, "has_more": page * per_page < total,
    })


@mcp.tool(description="Find tasks: list, search and filter the task board.")
async def find_tasks(
    ctx: Context,
    query: str | None = None,
    task_id: str | None = None,
    filter_by: str | None = None,
    filter_value: str | None = None,
    project_id: str | None = None,
    include_closed: bool = False,
    page: int = 1,
    per_page: int = 10,
) -> str:
    return await track(ctx, "find_tasks", _find_tasks(query, task_id, filter_by, filter_value,
                                                      project_id, include_closed, page, per_page))


async def _health_check() -> str:
    assert db is not None
    async with db.execute("SELECT 1") as cur:
        await cur.fetchone()
    return json.dumps({"success": True, "status": "ok", "database": "ok"})


@mcp.tool(description="Server and database health.")
async def health_check(ctx: Context) -> str:
    return await track(ctx, "health_check", _health_check())


async def seed(n: int) -> None:
    assert db is not None
    await db.executescript(SCHEMA)
    async with db.execute("SELECT COUNT(*) FROM tasks") as cur:
        (have,) = await cur.fetchone()
    if have:
        return
    project = str(uuid.uuid4())
    statuses = ["todo", "doing", "review"]
    for i in range(n):
        await db.execute(
            "INSERT INTO tasks (id, project_id, title, description, status, assignee, task_order, "
            "feature, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(uuid.uuid4()), project, f"Task {i}: wire the ledger to the dashboard",
                f"Task {i} of the benchmark board. Acceptance: the numbers in BENCHMARKS.md come "
                "from a command in the repo, every response is validated, and the run reports "
                "throughput, latency percentiles, errors and the server's memory.",
                statuses[i % 3], "User" if i % 2 == 0 else "AI IDE Agent", (i * 5) % 101,
                "benchmarks", now(), now(),
            ),
        )
    await db.commit()


async def main() -> None:
    global db
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--db", default="peer.db")
    ap.add_argument("--tasks", type=int, default=20)
    args = ap.parse_args()

    db = await aiosqlite.connect(args.db)
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=NORMAL")
    await seed(args.tasks)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    app = mcp.streamable_http_app()
    # Access logs off: kinder to the peer than uvicorn's default.
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:
            await asyncio.sleep(0.01)
        print(f"peer listening on http://127.0.0.1:{port}", flush=True)

    announcer = asyncio.create_task(announce())  # keep a reference: tasks are weakly held
    await server.serve(sockets=[sock])
    announcer.cancel()
    await db.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
