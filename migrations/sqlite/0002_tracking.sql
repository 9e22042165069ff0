-- Sessions, the request ledger and model pricing (SQLite). Their behaviour lives in the
-- sessions and ledger layers; the tables exist from the start so every engine has one schema.

CREATE TABLE mcp_sessions (
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
                        ('client_delete', 'timeout_no_activity', 'revoked', 'expired'))
) STRICT;
CREATE INDEX mcp_sessions_by_status ON mcp_sessions (status, last_activity);

CREATE TABLE mcp_requests (
    request_id         TEXT PRIMARY KEY NOT NULL,
    session_id         TEXT,
    jsonrpc_id         TEXT,
    method             TEXT NOT NULL,
    tool_name          TEXT,
    status             TEXT NOT NULL CHECK (status IN ('success', 'error', 'tool_error', 'cancelled', 'timeout')),
    error_code         INTEGER,
    error_message      TEXT,
    duration_ms        INTEGER NOT NULL CHECK (duration_ms >= 0),
    duration_us        INTEGER NOT NULL CHECK (duration_us >= 0),
    request_bytes      INTEGER NOT NULL DEFAULT 0,
    response_bytes     INTEGER NOT NULL DEFAULT 0,
    args_tokens        INTEGER,
    result_tokens      INTEGER,
    total_tokens       INTEGER,
    -- exact decimal as text: SQLite has no decimal type, and money is never a float
    estimated_cost_usd TEXT,
    pricing_model      TEXT,
    tokenizer          TEXT,
    sanitized          INTEGER NOT NULL DEFAULT 0 CHECK (sanitized IN (0, 1)),
    timestamp          TEXT NOT NULL
) STRICT;
CREATE INDEX mcp_requests_by_session ON mcp_requests (session_id, timestamp);
CREATE INDEX mcp_requests_by_time ON mcp_requests (timestamp);

CREATE TABLE llm_pricing (
    model          TEXT NOT NULL,
    provider       TEXT NOT NULL,
    input_per_1k   TEXT NOT NULL,
    output_per_1k  TEXT NOT NULL,
    effective_from TEXT NOT NULL,
    PRIMARY KEY (model, effective_from)
) STRICT;
