-- SQLite never read mcp_requests_by_session: the ledger's one session filter is
-- `($1 IS NULL OR session_id = $1)`, which SQLite's planner cannot serve from an index on
-- session_id (it takes mcp_requests_by_time for every listing, count and export). Yet the index
-- was the ledger's most expensive write: rows of concurrent sessions interleave, so each one lands
-- in the middle of the index and splits pages there (~9,000 instructions per row against ~2,000
-- for the time and primary-key indexes, which grow at their end). PostgreSQL keeps it: its
-- per-execution plans drop the `IS NULL` arm and do use it.
DROP INDEX IF EXISTS mcp_requests_by_session;
