-- Hourly rollups of ledger rows past their retention, so long-range statistics stay cheap and
-- pruning never erases history. Money is exact decimal text, summed in Rust, never as REAL.
CREATE TABLE mcp_request_rollups (
    hour               TEXT NOT NULL,
    method             TEXT NOT NULL,
    tool_name          TEXT NOT NULL DEFAULT '',
    status             TEXT NOT NULL,
    requests           INTEGER NOT NULL,
    duration_us_total  INTEGER NOT NULL,
    duration_us_max    INTEGER NOT NULL,
    args_tokens        INTEGER NOT NULL,
    result_tokens      INTEGER NOT NULL,
    estimated_cost_usd TEXT NOT NULL,
    PRIMARY KEY (hour, method, tool_name, status)
) STRICT;
