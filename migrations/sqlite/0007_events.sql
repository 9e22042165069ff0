-- Server-sent events kept for a short while so a client that reconnects with Last-Event-ID
-- (even after a restart, or on another replica) gets what it missed.
CREATE TABLE mcp_events (
    event_id   TEXT PRIMARY KEY NOT NULL,
    stream_id  TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    message    TEXT,
    retry_ms   INTEGER,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX mcp_events_by_stream ON mcp_events (stream_id, seq);
CREATE INDEX mcp_events_by_time ON mcp_events (created_at);
