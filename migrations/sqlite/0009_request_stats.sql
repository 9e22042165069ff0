-- Statistics at scale: hourly aggregates of the ledger per (method, tool, client type), kept up
-- to date by every ledger write in the same transaction, so /api/stats reads a few thousand
-- rows instead of millions. (mcp_request_rollups holds only rows past retention and has no
-- client type.) Money is an integer count of 1e-10 USD, the scale of every stored cost, so
-- sums stay exact. `latency` is a histogram, "bucket:count,..." with log-linear buckets (16 per
-- power of two; see steward::store::request_stats::latency_bucket), for p50/p95/p99 without
-- reading rows: one row per hour and key keeps it compact however spread latencies are.
CREATE TABLE mcp_request_stats (
    hour              TEXT NOT NULL,
    method            TEXT NOT NULL,
    tool_name         TEXT NOT NULL DEFAULT '',
    client_type       TEXT NOT NULL,
    requests          INTEGER NOT NULL,
    errors            INTEGER NOT NULL,
    duration_us_total INTEGER NOT NULL,
    duration_us_max   INTEGER NOT NULL,
    tokens            INTEGER NOT NULL,
    cost_units        INTEGER NOT NULL,
    latency           TEXT NOT NULL,
    PRIMARY KEY (hour, method, tool_name, client_type)
) STRICT;

-- Backfill from the rows already in the ledger. SQLite has no log(), so bucket bounds come
-- from a scratch table: bucket b < 16 starts at b µs, else at (16 + b % 16) << (b / 16 - 1).
CREATE TABLE latency_bounds_scratch (lower_us INTEGER PRIMARY KEY, bucket INTEGER NOT NULL) STRICT;
WITH RECURSIVE b(bucket) AS (SELECT 0 UNION ALL SELECT bucket + 1 FROM b WHERE bucket < 959)
INSERT INTO latency_bounds_scratch (lower_us, bucket)
SELECT CASE WHEN bucket < 16 THEN bucket ELSE (16 + bucket % 16) << (bucket / 16 - 1) END, bucket FROM b;

CREATE TABLE rows_scratch AS
SELECT substr(r.timestamp, 1, 13) || ':00:00+00:00' AS hour, r.method AS method,
       COALESCE(r.tool_name, '') AS tool_name, COALESCE(s.client_type, 'unknown') AS client_type,
       r.status AS status, r.duration_us AS duration_us, r.total_tokens AS total_tokens,
       -- stored costs have at most 10 decimals and well under 15 digits: exact through REAL
       CAST(ROUND(CAST(r.estimated_cost_usd AS REAL) * 10000000000) AS INTEGER) AS cost_units,
       (SELECT b.bucket FROM latency_bounds_scratch b WHERE b.lower_us <= r.duration_us
        ORDER BY b.lower_us DESC LIMIT 1) AS bucket
FROM mcp_requests r LEFT JOIN mcp_sessions s ON s.session_id = r.session_id;

INSERT INTO mcp_request_stats (hour, method, tool_name, client_type, requests, errors,
    duration_us_total, duration_us_max, tokens, cost_units, latency)
SELECT a.hour, a.method, a.tool_name, a.client_type, a.requests, a.errors, a.duration_us_total,
       a.duration_us_max, a.tokens, a.cost_units, l.latency
FROM (SELECT hour, method, tool_name, client_type, COUNT(*) AS requests,
             SUM(CASE WHEN status <> 'success' THEN 1 ELSE 0 END) AS errors,
             SUM(duration_us) AS duration_us_total, MAX(duration_us) AS duration_us_max,
             COALESCE(SUM(total_tokens), 0) AS tokens, COALESCE(SUM(cost_units), 0) AS cost_units
      FROM rows_scratch GROUP BY hour, method, tool_name, client_type) a
JOIN (SELECT hour, method, tool_name, client_type, group_concat(bucket || ':' || n, ',') AS latency
      FROM (SELECT hour, method, tool_name, client_type, bucket, COUNT(*) AS n FROM rows_scratch
            GROUP BY hour, method, tool_name, client_type, bucket)
      GROUP BY hour, method, tool_name, client_type) l
  ON l.hour = a.hour AND l.method = a.method AND l.tool_name = a.tool_name AND l.client_type = a.client_type;

DROP TABLE rows_scratch;
DROP TABLE latency_bounds_scratch;
