-- Statistics at scale: hourly aggregates of the ledger kept up to date by every ledger write
-- (in the same transaction), so /api/stats reads a few thousand rows instead of millions.
-- Keyed by client type too (the dashboard groups by it), unlike mcp_request_rollups, which
-- holds only rows past retention. Money is an integer count of 1e-10 USD (the scale of every
-- stored cost), so sums stay exact in SQL on both engines.
CREATE TABLE mcp_request_stats (
    hour              TEXT NOT NULL,
    method            TEXT NOT NULL,
    tool_name         TEXT NOT NULL DEFAULT '',
    client_type       TEXT NOT NULL,
    status            TEXT NOT NULL,
    requests          INTEGER NOT NULL,
    duration_us_total INTEGER NOT NULL,
    duration_us_max   INTEGER NOT NULL,
    tokens            INTEGER NOT NULL,
    cost_units        INTEGER NOT NULL,
    PRIMARY KEY (hour, method, tool_name, client_type, status)
) STRICT;

-- Latency histogram per hour: log-linear buckets (16 per power of two, so a bucket spans at
-- most 1/16 of its value) for p50/p95/p99 without reading rows. The bucket formula is
-- steward::stats::latency_bucket.
CREATE TABLE mcp_request_latency (
    hour        TEXT NOT NULL,
    method      TEXT NOT NULL,
    tool_name   TEXT NOT NULL DEFAULT '',
    client_type TEXT NOT NULL,
    bucket      INTEGER NOT NULL,
    requests    INTEGER NOT NULL,
    PRIMARY KEY (hour, method, tool_name, client_type, bucket)
) STRICT;

-- Backfill from the rows already in the ledger. SQLite has no log(), so bucket bounds come
-- from a scratch table: bucket b < 16 starts at b µs, else at (16 + b % 16) << (b / 16 - 1).
CREATE TABLE latency_bounds_scratch (lower_us INTEGER PRIMARY KEY, bucket INTEGER NOT NULL) STRICT;
WITH RECURSIVE b(bucket) AS (SELECT 0 UNION ALL SELECT bucket + 1 FROM b WHERE bucket < 959)
INSERT INTO latency_bounds_scratch (lower_us, bucket)
SELECT CASE WHEN bucket < 16 THEN bucket ELSE (16 + bucket % 16) << (bucket / 16 - 1) END, bucket FROM b;

INSERT INTO mcp_request_stats (hour, method, tool_name, client_type, status, requests,
    duration_us_total, duration_us_max, tokens, cost_units)
SELECT substr(r.timestamp, 1, 13) || ':00:00+00:00', r.method, COALESCE(r.tool_name, ''),
       COALESCE(s.client_type, 'unknown'), r.status, COUNT(*), SUM(r.duration_us), MAX(r.duration_us),
       COALESCE(SUM(r.total_tokens), 0),
       -- stored costs have at most 10 decimals and well under 15 digits: exact through REAL
       COALESCE(SUM(CAST(ROUND(CAST(r.estimated_cost_usd AS REAL) * 10000000000) AS INTEGER)), 0)
FROM mcp_requests r LEFT JOIN mcp_sessions s ON s.session_id = r.session_id
GROUP BY 1, 2, 3, 4, 5;

INSERT INTO mcp_request_latency (hour, method, tool_name, client_type, bucket, requests)
SELECT hour, method, tool_name, client_type, bucket, COUNT(*) FROM (
    SELECT substr(r.timestamp, 1, 13) || ':00:00+00:00' AS hour, r.method AS method,
           COALESCE(r.tool_name, '') AS tool_name, COALESCE(s.client_type, 'unknown') AS client_type,
           (SELECT b.bucket FROM latency_bounds_scratch b WHERE b.lower_us <= r.duration_us
            ORDER BY b.lower_us DESC LIMIT 1) AS bucket
    FROM mcp_requests r LEFT JOIN mcp_sessions s ON s.session_id = r.session_id
) x GROUP BY hour, method, tool_name, client_type, bucket;

DROP TABLE latency_bounds_scratch;
