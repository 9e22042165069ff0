-- Statistics at scale: hourly aggregates of the ledger kept up to date by every ledger write
-- (in the same transaction), so /api/stats reads a few thousand rows instead of millions.
-- Keyed by client type too (the dashboard groups by it), unlike mcp_request_rollups, which
-- holds only rows past retention. Money is an integer count of 1e-10 USD (the scale of every
-- stored cost), so sums stay exact in SQL on both engines.
CREATE TABLE mcp_request_stats (
    hour              TIMESTAMPTZ NOT NULL,
    method            TEXT NOT NULL,
    tool_name         TEXT NOT NULL DEFAULT '',
    client_type       TEXT NOT NULL,
    status            TEXT NOT NULL,
    requests          BIGINT NOT NULL,
    duration_us_total BIGINT NOT NULL,
    duration_us_max   BIGINT NOT NULL,
    tokens            BIGINT NOT NULL,
    cost_units        BIGINT NOT NULL,
    PRIMARY KEY (hour, method, tool_name, client_type, status)
);

-- Latency histogram per hour: log-linear buckets (16 per power of two, so a bucket spans at
-- most 1/16 of its value) for p50/p95/p99 without reading rows. The bucket formula is
-- steward::stats::latency_bucket.
CREATE TABLE mcp_request_latency (
    hour        TIMESTAMPTZ NOT NULL,
    method      TEXT NOT NULL,
    tool_name   TEXT NOT NULL DEFAULT '',
    client_type TEXT NOT NULL,
    bucket      BIGINT NOT NULL,
    requests    BIGINT NOT NULL,
    PRIMARY KEY (hour, method, tool_name, client_type, bucket)
);

-- Backfill from the rows already in the ledger. Bucket b < 16 starts at b µs, else at
-- (16 + b % 16) << (b / 16 - 1); the same scratch table as on SQLite keeps the engines alike.
CREATE TABLE latency_bounds_scratch (lower_us BIGINT PRIMARY KEY, bucket BIGINT NOT NULL);
WITH RECURSIVE b(bucket) AS (SELECT 0 UNION ALL SELECT bucket + 1 FROM b WHERE bucket < 959)
INSERT INTO latency_bounds_scratch (lower_us, bucket)
SELECT CASE WHEN bucket < 16 THEN bucket ELSE (16 + bucket % 16)::BIGINT << (bucket / 16 - 1) END, bucket FROM b;

INSERT INTO mcp_request_stats (hour, method, tool_name, client_type, status, requests,
    duration_us_total, duration_us_max, tokens, cost_units)
SELECT date_trunc('hour', r.timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', r.method,
       COALESCE(r.tool_name, ''), COALESCE(s.client_type, 'unknown'), r.status, COUNT(*),
       SUM(r.duration_us), MAX(r.duration_us), COALESCE(SUM(r.total_tokens), 0),
       COALESCE(SUM(r.estimated_cost_usd * 10000000000), 0)::BIGINT
FROM mcp_requests r LEFT JOIN mcp_sessions s ON s.session_id = r.session_id
GROUP BY 1, 2, 3, 4, 5;

INSERT INTO mcp_request_latency (hour, method, tool_name, client_type, bucket, requests)
SELECT hour, method, tool_name, client_type, bucket, COUNT(*) FROM (
    SELECT date_trunc('hour', r.timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, r.method,
           COALESCE(r.tool_name, '') AS tool_name, COALESCE(s.client_type, 'unknown') AS client_type,
           (SELECT b.bucket FROM latency_bounds_scratch b WHERE b.lower_us <= r.duration_us
            ORDER BY b.lower_us DESC LIMIT 1) AS bucket
    FROM mcp_requests r LEFT JOIN mcp_sessions s ON s.session_id = r.session_id
) x GROUP BY hour, method, tool_name, client_type, bucket;

DROP TABLE latency_bounds_scratch;
