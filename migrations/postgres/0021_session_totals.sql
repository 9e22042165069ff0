-- Per-session totals (requests, tool calls, errors, tokens, cost, first and last request),
-- kept up to date by every ledger write in the same transaction and by retention's pruning,
-- like mcp_request_stats: a page of sessions reads its totals by primary key instead of
-- summing its ledger rows. The same table as on SQLite, where it replaced the ledger's
-- dearest index (see migrations/sqlite/0021). PostgreSQL keeps mcp_requests_by_session: its
-- listings filtered by session use it, and pruning finds a session's new first request with it.
-- Money is an integer count of 1e-10 USD, as in mcp_request_stats.
CREATE TABLE mcp_session_totals (
    session_id       TEXT PRIMARY KEY,
    requests         BIGINT NOT NULL,
    tool_calls       BIGINT NOT NULL,
    errors           BIGINT NOT NULL,
    tokens           BIGINT NOT NULL,
    cost_units       BIGINT NOT NULL,
    first_request_at TIMESTAMPTZ NOT NULL,
    last_request_at  TIMESTAMPTZ NOT NULL
);

INSERT INTO mcp_session_totals (session_id, requests, tool_calls, errors, tokens, cost_units,
    first_request_at, last_request_at)
SELECT session_id, COUNT(*),
       COUNT(*) FILTER (WHERE method = 'tools/call'),
       COUNT(*) FILTER (WHERE status IN ('error', 'tool_error', 'timeout')),
       COALESCE(SUM(total_tokens), 0),
       COALESCE(SUM(estimated_cost_usd * 10000000000), 0)::BIGINT,
       MIN(timestamp), MAX(timestamp)
FROM mcp_requests WHERE session_id IS NOT NULL GROUP BY session_id;
