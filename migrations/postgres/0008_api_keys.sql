-- API keys for `serve --auth api-key`. Only a SHA-256 hash of each key is kept: the key itself
-- is shown once by `steward keys create`. A key's name is the principal of its sessions, so a
-- revoked name is never reused.
CREATE TABLE api_keys (
    name        TEXT PRIMARY KEY,
    key_hash    TEXT NOT NULL UNIQUE,
    admin       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
-- Live sessions per principal are counted on every initialize.
CREATE INDEX mcp_sessions_by_principal ON mcp_sessions (principal, status);
