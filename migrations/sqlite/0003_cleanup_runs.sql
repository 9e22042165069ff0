-- One row per run of the background session cleanup, so /health and the dashboard can show
-- when it last ran, what it changed, and whether it failed.
CREATE TABLE cleanup_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    idled        INTEGER NOT NULL DEFAULT 0,
    reactivated  INTEGER NOT NULL DEFAULT 0,
    timed_out    INTEGER NOT NULL DEFAULT 0,
    expired      INTEGER NOT NULL DEFAULT 0,
    error        TEXT
) STRICT;
CREATE INDEX cleanup_runs_by_time ON cleanup_runs (started_at);
CREATE INDEX mcp_sessions_by_disconnect ON mcp_sessions (disconnected_at);
