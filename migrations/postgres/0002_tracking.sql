-- Sessions, the request ledger and model pricing (PostgreSQL). Same logical schema as
-- migrations/sqlite; behaviour lives in the sessions and ledger layers.

CREATE TABLE mcp_sessions (
    session_id          TEXT PRIMARY KEY,
    kind                TEXT NOT NULL DEFAULT 'session' CHECK (kind IN ('session', 'logical')),
    protocol_version    TEXT,
    client_name         TEXT,
    client_version      TEXT,
    client_type         TEXT NOT NULL DEFAULT 'unknown',
    client_capabilities JSONB NOT NULL DEFAULT '{}',
    initialize_params   JSONB,
    principal           TEXT,
    status              TEXT NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'idle', 'disconnected', 'revoked')),
    connected_at        TIMESTAMPTZ NOT NULL,
    last_activity       TIMESTAMPTZ NOT NULL,
    disconnected_at     TIMESTAMPTZ,
    disconnect_reason   TEXT CHECK (disconnect_reason IN
                        ('client_delete', 'timeout_no_activity', 'revoked', 'expired'))
);
CREATE INDEX mcp_sessions_by_status ON mcp_sessions (status, last_activity);

CREATE TABLE mcp_requests (
    request_id         UUID PRIMARY KEY,
    session_id         TEXT,
    jsonrpc_id         TEXT,
    method             TEXT NOT NULL,
    tool_name          TEXT,
    status             TEXT NOT NULL CHECK (status IN ('success', 'error', 'tool_error', 'cancelled', 'timeout')),
    error_code         INTEGER,
    error_message      TEXT,
    duration_ms        BIGINT NOT NULL CHECK (duration_ms >= 0),
    duration_us        BIGINT NOT NULL CHECK (duration_us >= 0),
    request_bytes      BIGINT NOT NULL DEFAULT 0,
    response_bytes     BIGINT NOT NULL DEFAULT 0,
    args_tokens        INTEGER,
    result_tokens      INTEGER,
    total_tokens       INTEGER,
    estimated_cost_usd NUMERIC(20, 10),
    pricing_model      TEXT,
    tokenizer          TEXT,
    sanitized          BOOLEAN NOT NULL DEFAULT FALSE,
    timestamp          TIMESTAMPTZ NOT NULL
);
CREATE INDEX mcp_requests_by_session ON mcp_requests (session_id, timestamp);
CREATE INDEX mcp_requests_by_time ON mcp_requests (timestamp);

CREATE TABLE llm_pricing (
    model          TEXT NOT NULL,
    provider       TEXT NOT NULL,
    input_per_1k   NUMERIC(20, 10) NOT NULL,
    output_per_1k  NUMERIC(20, 10) NOT NULL,
    effective_from TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (model, effective_from)
);
