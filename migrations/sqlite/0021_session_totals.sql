-- Per-session totals (requests, tool calls, errors, tokens, cost, first and last request),
-- kept up to date by every ledger write in the same transaction and by retention's pruning,
-- like mcp_request_stats: a page of sessions reads its totals by primary key. They were summed
-- from mcp_requests through mcp_requests_by_session_id (0013), and that index was the ledger's
-- dearest write on SQLite: rows of concurrent sessions interleave, so each row lands in the
-- middle of it and splits pages there (~5,700 of ~28,000 instructions per stored row in a
-- model of 20 sessions and 300-row batches; the table and its other indexes grow at their end).
-- A batch adds one upsert per session instead. Money is an integer count of 1e-10 USD, as in
-- mcp_request_stats. The ledger's listings filtered by session keep taking the time index.
CREATE TABLE mcp_session_totals (
    session_id       TEXT PRIMARY KEY NOT NULL,
    requests         INTEGER NOT NULL,
    tool_calls       INTEGER NOT NULL,
    errors           INTEGER NOT NULL,
    tokens           INTEGER NOT NULL,
    cost_units       INTEGER NOT NULL,
    first_request_at TEXT NOT NULL,
    last_request_at  TEXT NOT NULL
) STRICT;

-- Stored costs have at most 10 decimals and well under 15 digits: exact through REAL.
INSERT INTO mcp_session_totals (session_id, requests, tool_calls, errors, tokens, cost_units,
    first_request_at, last_request_at)
SELECT session_id, COUNT(*),
       SUM(CASE WHEN method = 'tools/call' THEN 1 ELSE 0 END),
       SUM(CASE WHEN status IN ('error', 'tool_error', 'timeout') THEN 1 ELSE 0 END),
       COALESCE(SUM(total_tokens), 0),
       COALESCE(SUM(CAST(ROUND(CAST(estimated_cost_usd AS REAL) * 10000000000) AS INTEGER)), 0),
       MIN(timestamp), MAX(timestamp)
FROM mcp_requests WHERE session_id IS NOT NULL GROUP BY session_id;

DROP INDEX IF EXISTS mcp_requests_by_session_id;
