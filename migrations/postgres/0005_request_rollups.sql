-- Hourly rollups of ledger rows past their retention, so long-range statistics stay cheap and
-- pruning never erases history.
CREATE TABLE mcp_request_rollups (
    hour               TIMESTAMPTZ NOT NULL,
    method             TEXT NOT NULL,
    tool_name          TEXT NOT NULL DEFAULT '',
    status             TEXT NOT NULL,
    requests           BIGINT NOT NULL,
    duration_us_total  BIGINT NOT NULL,
    duration_us_max    BIGINT NOT NULL,
    args_tokens        BIGINT NOT NULL,
    result_tokens      BIGINT NOT NULL,
    estimated_cost_usd NUMERIC(24, 10) NOT NULL,
    PRIMARY KEY (hour, method, tool_name, status)
);
