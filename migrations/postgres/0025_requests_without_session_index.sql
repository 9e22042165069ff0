-- The ledger's dearest index goes, as on SQLite (migrations/sqlite/0010): rows of concurrent
-- sessions interleave, so each row lands inside mcp_requests_by_session (64-character ids,
-- ~90 entries a page) and splits pages there, where the time and primary-key (UUIDv7) indexes
-- grow at their end. It was ~2 µs of the ~5 µs of backend CPU a `COPY`ed ledger row costs
-- (BENCHMARKS.md, issue #25). Listings filtered by session read the time index instead, over
-- the span mcp_session_totals records for that session (its first to its last request); pruning
-- already finds a session's new first request through the time index.
DROP INDEX IF EXISTS mcp_requests_by_session;
