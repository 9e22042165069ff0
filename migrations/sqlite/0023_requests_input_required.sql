-- A new status, `input_required`: the request was answered with a 2026-07-28
-- InputRequiredResult (the server asks the client for input, and the client's retry, another
-- request with its own row, completes the call). Neither a success (nothing was done yet) nor
-- an error. A CHECK cannot be changed in place, so the table is rebuilt as in 0022, the CHECK
-- still written as comparisons (see 0022 for why).
CREATE TABLE mcp_requests_rebuilt (
    request_id         TEXT PRIMARY KEY NOT NULL,
    session_id         TEXT,
    jsonrpc_id         TEXT,
    method             TEXT NOT NULL,
    tool_name          TEXT,
    status             TEXT NOT NULL CHECK (status = 'success' OR status = 'error'
                       OR status = 'tool_error' OR status = 'cancelled' OR status = 'timeout'
                       OR status = 'input_required'),
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
    timestamp          TEXT NOT NULL,
    subject_id         TEXT,
    upstream           TEXT,
    upstream_tool      TEXT,
    upstream_us        INTEGER CHECK (upstream_us >= 0)
) STRICT;

INSERT INTO mcp_requests_rebuilt (request_id, session_id, jsonrpc_id, method, tool_name, status,
    error_code, error_message, duration_ms, duration_us, request_bytes, response_bytes,
    args_tokens, result_tokens, total_tokens, estimated_cost_usd, pricing_model, tokenizer,
    sanitized, timestamp, subject_id, upstream, upstream_tool, upstream_us)
SELECT request_id, session_id, jsonrpc_id, method, tool_name, status,
    error_code, error_message, duration_ms, duration_us, request_bytes, response_bytes,
    args_tokens, result_tokens, total_tokens, estimated_cost_usd, pricing_model, tokenizer,
    sanitized, timestamp, subject_id, upstream, upstream_tool, upstream_us
FROM mcp_requests ORDER BY rowid;

DROP TABLE mcp_requests;
ALTER TABLE mcp_requests_rebuilt RENAME TO mcp_requests;
CREATE INDEX mcp_requests_by_time ON mcp_requests (timestamp);
CREATE INDEX mcp_requests_by_subject ON mcp_requests (subject_id, timestamp) WHERE subject_id IS NOT NULL;
