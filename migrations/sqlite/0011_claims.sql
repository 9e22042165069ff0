-- Claims as leases, task dependencies and case-folded filter keys (SQLite).
-- A claim is held by one MCP session (and its principal) until `lease_until`; `claim_token`
-- is a fresh UUID per claim, so a writer holding a stale claim is told apart (fencing).
ALTER TABLE tasks ADD COLUMN claimed_by TEXT;
ALTER TABLE tasks ADD COLUMN claimed_client TEXT;
ALTER TABLE tasks ADD COLUMN claimed_principal TEXT;
ALTER TABLE tasks ADD COLUMN claim_token TEXT;
ALTER TABLE tasks ADD COLUMN claimed_at TEXT;
ALTER TABLE tasks ADD COLUMN lease_until TEXT;
-- Folded copies of assignee and feature (computed in Rust, full Unicode lowercase), so their
-- filters fold case the same way on both engines. Existing rows are backfilled with LOWER().
ALTER TABLE tasks ADD COLUMN assignee_key TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN feature_key TEXT;
UPDATE tasks SET assignee_key = LOWER(assignee), feature_key = LOWER(feature);
CREATE INDEX tasks_by_holder ON tasks (claimed_by) WHERE claimed_by IS NOT NULL;

-- Why a history row was written, when the change itself does not say (a claim's end).
ALTER TABLE task_history ADD COLUMN reason TEXT;

-- `task_id` cannot start while `blocker_id` is open (not done and not archived).
CREATE TABLE task_dependencies (
    task_id    TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    blocker_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, blocker_id),
    CHECK (task_id <> blocker_id)
) STRICT;
CREATE INDEX task_dependencies_by_blocker ON task_dependencies (blocker_id);
