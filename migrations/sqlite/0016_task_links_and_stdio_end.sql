-- Archon's task and project fields that Steward kept dropping, and a session end for stdio
-- (SQLite). Same logical schema as migrations/postgres/0016_task_links_and_stdio_end.sql.

-- The task this one is part of (same project; checked by the store, not by the schema).
ALTER TABLE tasks ADD COLUMN parent_task_id TEXT REFERENCES tasks(id) ON DELETE SET NULL;
-- Archon's `sources` and `code_examples`: JSON lists, bounded by the tools that write them.
ALTER TABLE tasks ADD COLUMN sources TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN code_examples TEXT NOT NULL DEFAULT '[]';
CREATE INDEX tasks_by_parent ON tasks (parent_task_id) WHERE parent_task_id IS NOT NULL;

ALTER TABLE projects ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0, 1));

-- `ended`: a stdio session whose client closed standard input or stopped the process. SQLite
-- cannot change a CHECK constraint in place, so the table is rebuilt (nothing references it).
CREATE TABLE mcp_sessions_0016 (
    session_id          TEXT PRIMARY KEY NOT NULL,
    kind                TEXT NOT NULL DEFAULT 'session' CHECK (kind IN ('session', 'logical')),
    protocol_version    TEXT,
    client_name         TEXT,
    client_version      TEXT,
    client_type         TEXT NOT NULL DEFAULT 'unknown',
    client_capabilities TEXT NOT NULL DEFAULT '{}',
    initialize_params   TEXT,
    principal           TEXT,
    status              TEXT NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'idle', 'disconnected', 'revoked')),
    connected_at        TEXT NOT NULL,
    last_activity       TEXT NOT NULL,
    disconnected_at     TEXT,
    disconnect_reason   TEXT CHECK (disconnect_reason IN
                        ('client_delete', 'timeout_no_activity', 'revoked', 'expired', 'ended'))
) STRICT;
INSERT INTO mcp_sessions_0016 (session_id, kind, protocol_version, client_name, client_version,
    client_type, client_capabilities, initialize_params, principal, status, connected_at,
    last_activity, disconnected_at, disconnect_reason)
SELECT session_id, kind, protocol_version, client_name, client_version, client_type,
    client_capabilities, initialize_params, principal, status, connected_at, last_activity,
    disconnected_at, disconnect_reason FROM mcp_sessions;
DROP TABLE mcp_sessions;
ALTER TABLE mcp_sessions_0016 RENAME TO mcp_sessions;
CREATE INDEX mcp_sessions_by_status ON mcp_sessions (status, last_activity);
CREATE INDEX mcp_sessions_by_disconnect ON mcp_sessions (disconnected_at);
CREATE INDEX mcp_sessions_by_principal ON mcp_sessions (principal, status);
