-- Steward's task board (PostgreSQL). Same logical schema as migrations/sqlite.

CREATE TABLE projects (
    id          UUID PRIMARY KEY,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    github_repo TEXT,
    features    JSONB NOT NULL DEFAULT '[]',
    data        JSONB NOT NULL DEFAULT '[]',
    prd         JSONB NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE tasks (
    id          UUID PRIMARY KEY,
    project_id  UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'doing', 'review', 'done')),
    assignee    TEXT NOT NULL DEFAULT 'User',
    task_order  INTEGER NOT NULL DEFAULT 0 CHECK (task_order BETWEEN 0 AND 100),
    feature     TEXT,
    archived    BOOLEAN NOT NULL DEFAULT FALSE,
    archived_at TIMESTAMPTZ,
    archived_by TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX tasks_by_project ON tasks (project_id, archived, status);

CREATE TABLE task_history (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     UUID NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    field       TEXT NOT NULL,
    old_value   TEXT,
    new_value   TEXT,
    changed_at  TIMESTAMPTZ NOT NULL,
    session_id  TEXT,
    client_name TEXT
);
CREATE INDEX task_history_by_task ON task_history (task_id, id);

CREATE TABLE documents (
    id            UUID PRIMARY KEY,
    project_id    UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    document_type TEXT NOT NULL CHECK (document_type IN ('spec', 'design', 'note', 'prp', 'api', 'guide')),
    title         TEXT NOT NULL,
    content       JSONB NOT NULL DEFAULT '{}',
    tags          JSONB NOT NULL DEFAULT '[]',
    author        TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX documents_by_project ON documents (project_id, created_at);

CREATE TABLE versions (
    id             UUID PRIMARY KEY,
    project_id     UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    field_name     TEXT NOT NULL CHECK (field_name IN ('docs', 'features', 'data', 'prd')),
    version_number INTEGER NOT NULL CHECK (version_number > 0),
    content        JSONB NOT NULL,
    change_summary TEXT NOT NULL DEFAULT '',
    change_type    TEXT NOT NULL CHECK (change_type IN ('create', 'restore')),
    document_id    UUID,
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, field_name, version_number)
);
