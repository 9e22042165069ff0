-- Which board task a request concerned (an opaque id the board's tools name; NULL for the
-- rest), so a task's activity is one indexed lookup. The index is partial: a request about no
-- task costs it nothing. (Per-session totals use mcp_requests_by_session, kept since 0002.)
ALTER TABLE mcp_requests ADD COLUMN subject_id UUID;
CREATE INDEX mcp_requests_by_subject ON mcp_requests (subject_id, timestamp) WHERE subject_id IS NOT NULL;
