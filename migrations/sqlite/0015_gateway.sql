-- Gateway mode. Ledger rows of requests passed on to another server name it, with the tool as
-- that server knows it and its share of the duration (the rest is Steward's own overhead).
ALTER TABLE mcp_requests ADD COLUMN upstream TEXT;
ALTER TABLE mcp_requests ADD COLUMN upstream_tool TEXT;
ALTER TABLE mcp_requests ADD COLUMN upstream_us INTEGER CHECK (upstream_us >= 0);

-- For each client session and upstream server, the session Steward holds with that server:
-- reused after a restart of Steward (or by another replica), re-initialized with the same
-- parameters when the upstream has forgotten it.
CREATE TABLE mcp_upstream_sessions (
    session_id          TEXT NOT NULL,
    upstream            TEXT NOT NULL,
    upstream_session_id TEXT,
    protocol_version    TEXT NOT NULL,
    capabilities        TEXT NOT NULL DEFAULT '{}',
    initialize_params   TEXT NOT NULL,
    reinitialized       INTEGER NOT NULL DEFAULT 0 CHECK (reinitialized >= 0),
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    PRIMARY KEY (session_id, upstream)
) STRICT;
