-- Claims as leases, task dependencies and case-folded filter keys (PostgreSQL). Same logical
-- schema as migrations/sqlite/0011_claims.sql.
ALTER TABLE tasks ADD COLUMN claimed_by TEXT;
ALTER TABLE tasks ADD COLUMN claimed_client TEXT;
ALTER TABLE tasks ADD COLUMN claimed_principal TEXT;
ALTER TABLE tasks ADD COLUMN claim_token UUID;
ALTER TABLE tasks ADD COLUMN claimed_at TIMESTAMPTZ;
ALTER TABLE tasks ADD COLUMN lease_until TIMESTAMPTZ;
ALTER TABLE tasks ADD COLUMN assignee_key TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN feature_key TEXT;
UPDATE tasks SET assignee_key = LOWER(assignee), feature_key = LOWER(feature);
CREATE INDEX tasks_by_holder ON tasks (claimed_by) WHERE claimed_by IS NOT NULL;

ALTER TABLE task_history ADD COLUMN reason TEXT;

CREATE TABLE task_dependencies (
    task_id    UUID NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    blocker_id UUID NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, blocker_id),
    CHECK (task_id <> blocker_id)
);
CREATE INDEX task_dependencies_by_blocker ON task_dependencies (blocker_id);
