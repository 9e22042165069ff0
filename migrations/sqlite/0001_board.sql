-- Steward's task board (SQLite). STRICT tables make SQLite enforce column types the way
-- PostgreSQL does: a float can never slip into an INTEGER column unnoticed (the Archon seed bug).
-- Ids are UUIDs stored as hyphenated text; times are UTC RFC 3339 text; JSON is text.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY NOT NULL,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    github_repo TEXT,
    features    TEXT NOT NULL DEFAULT '[]',
    data        TEXT NOT NULL DEFAULT '[]',
    prd         TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

CREATE TABLE tasks (
    id          TEXT PRIMARY KEY NOT NULL,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'doing', 'review', 'done')),
    assignee    TEXT NOT NULL DEFAULT 'User',
    task_order  INTEGER NOT NULL DEFAULT 0 CHECK (task_order BETWEEN 0 AND 100),
    feature     TEXT,
    archived    INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    archived_at TEXT,
    archived_by TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
CREATE INDEX tasks_by_project ON tasks (project_id, archived, status);

CREATE TABLE task_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    field       TEXT NOT NULL,
    old_value   TEXT,
    new_value   TEXT,
    changed_at  TEXT NOT NULL,
    session_id  TEXT,
    client_name TEXT
) STRICT;
CREATE INDEX task_history_by_task ON task_history (task_id, id);

CREATE TABLE documents (
    id            TEXT PRIMARY KEY NOT NULL,
    project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    document_type TEXT NOT NULL CHECK (document_type IN ('spec', 'design', 'note', 'prp', 'api', 'guide')),
    title         TEXT NOT NULL,
    content       TEXT NOT NULL DEFAULT '{}',
    tags          TEXT NOT NULL DEFAULT '[]',
    author        TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;
CREATE INDEX documents_by_project ON documents (project_id, created_at);

CREATE TABLE versions (
    id             TEXT PRIMARY KEY NOT NULL,
    project_id     TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    field_name     TEXT NOT NULL CHECK (field_name IN ('docs', 'features', 'data', 'prd')),
    version_number INTEGER NOT NULL CHECK (version_number > 0),
    content        TEXT NOT NULL,
    change_summary TEXT NOT NULL DEFAULT '',
    change_type    TEXT NOT NULL CHECK (change_type IN ('create', 'restore')),
    document_id    TEXT,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    UNIQUE (project_id, field_name, version_number)
) STRICT;
