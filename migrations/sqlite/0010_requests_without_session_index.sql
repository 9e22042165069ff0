-- SQLite never read mcp_requests_by_session: the ledger's one session filter is
-- `($1 IS NULL OR session_id = $1)`, which SQLite's planner cannot serve from an index on
-- session_id (it takes mcp_requests_by_time for every listing, count and export). Yet the index
-- was the ledger's most expensive write: rows of concurrent sessions interleave, so each one lands
-- in the middle of the index and splits pages there, where the time and primary-key (UUIDv7)
-- indexes grow at their end. Dropping it cut the async ledger's cost by ~5,400 instructions per
-- row (of ~56,000; steward-bench instructions, 20 sessions). PostgreSQL keeps it: its
-- per-execution plans drop the `IS NULL` arm and do use it.
DROP INDEX IF EXISTS mcp_requests_by_session;
