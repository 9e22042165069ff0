-- Who each replayable stream belongs to: `Last-Event-ID` replays a stream only to a request in
-- the session that received it (and so to that session's principal).
CREATE TABLE mcp_event_streams (
    stream_id  TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    principal  TEXT,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX mcp_event_streams_by_time ON mcp_event_streams (created_at);
