-- Server-sent events kept for a short while so a client that reconnects with Last-Event-ID
-- (even after a restart, or on another replica) gets what it missed.
CREATE TABLE mcp_events (
    event_id   TEXT PRIMARY KEY,
    stream_id  TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    message    JSONB,
    retry_ms   BIGINT,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX mcp_events_by_stream ON mcp_events (stream_id, seq);
CREATE INDEX mcp_events_by_time ON mcp_events (created_at);
