-- Which board task a request concerned (an opaque id the board's tools name; NULL for the
-- rest), so a task's activity is one indexed lookup. The index is partial: a request about no
-- task costs it nothing.
ALTER TABLE mcp_requests ADD COLUMN subject_id TEXT;
CREATE INDEX mcp_requests_by_subject ON mcp_requests (subject_id, timestamp) WHERE subject_id IS NOT NULL;

-- Per-session totals (`session_id IN (...)`, a page of sessions at a time) scanned the whole
-- ledger once 0010 dropped the session index. This one serves that query only; the listings'
-- `($1 IS NULL OR session_id = $1)` filter still takes the time index.
CREATE INDEX mcp_requests_by_session_id ON mcp_requests (session_id) WHERE session_id IS NOT NULL;
