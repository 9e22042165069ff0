-- One row per run of the background session cleanup, so /health and the dashboard can show
-- when it last ran, what it changed, and whether it failed.
CREATE TABLE cleanup_runs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL,
    idled        BIGINT NOT NULL DEFAULT 0,
    reactivated  BIGINT NOT NULL DEFAULT 0,
    timed_out    BIGINT NOT NULL DEFAULT 0,
    expired      BIGINT NOT NULL DEFAULT 0,
    error        TEXT
);
CREATE INDEX cleanup_runs_by_time ON cleanup_runs (started_at);
CREATE INDEX mcp_sessions_by_disconnect ON mcp_sessions (disconnected_at);
