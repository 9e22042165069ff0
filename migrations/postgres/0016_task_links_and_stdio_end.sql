-- Archon's task and project fields that Steward kept dropping, and a session end for stdio
-- (PostgreSQL). Same logical schema as migrations/sqlite/0016_task_links_and_stdio_end.sql.
ALTER TABLE tasks ADD COLUMN parent_task_id UUID REFERENCES tasks(id) ON DELETE SET NULL;
ALTER TABLE tasks ADD COLUMN sources JSONB NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN code_examples JSONB NOT NULL DEFAULT '[]';
CREATE INDEX tasks_by_parent ON tasks (parent_task_id) WHERE parent_task_id IS NOT NULL;

ALTER TABLE projects ADD COLUMN pinned BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE mcp_sessions DROP CONSTRAINT mcp_sessions_disconnect_reason_check;
ALTER TABLE mcp_sessions ADD CONSTRAINT mcp_sessions_disconnect_reason_check CHECK (disconnect_reason IN
    ('client_delete', 'timeout_no_activity', 'revoked', 'expired', 'ended'));
