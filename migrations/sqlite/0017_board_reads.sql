-- Board reads that do not grow with the board (issue #23). Each listing gets an index that
-- serves its filter and its order (task_order DESC, created_at, id), so the first page reads
-- a page of index entries instead of sorting every live task; and the totals of the common
-- filters (project, status, assignee, open or done) come from per-(project, status, assignee)
-- counts that triggers keep in the same transaction as the change, instead of a COUNT(*)
-- over every matching row.
CREATE INDEX tasks_live_order ON tasks (archived, task_order DESC, created_at, id);
CREATE INDEX tasks_live_status_order ON tasks (archived, status, task_order DESC, created_at, id);
CREATE INDEX tasks_project_order ON tasks (project_id, archived, task_order DESC, created_at, id);
CREATE INDEX tasks_assignee_order ON tasks (assignee_key, archived, task_order DESC, created_at, id);
CREATE INDEX projects_newest ON projects (created_at DESC, id);
CREATE INDEX documents_newest ON documents (project_id, created_at DESC, id);

-- Live (unarchived) tasks by project, status and folded assignee.
CREATE TABLE task_counts (
    project_id   TEXT NOT NULL,
    status       TEXT NOT NULL,
    assignee_key TEXT NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (project_id, status, assignee_key)
) STRICT, WITHOUT ROWID;

INSERT INTO task_counts (project_id, status, assignee_key, n)
SELECT project_id, status, assignee_key, COUNT(*) FROM tasks WHERE archived = 0
GROUP BY project_id, status, assignee_key;

CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks WHEN NEW.archived = 0
BEGIN
    INSERT INTO task_counts (project_id, status, assignee_key, n)
    VALUES (NEW.project_id, NEW.status, NEW.assignee_key, 1)
    ON CONFLICT (project_id, status, assignee_key) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks WHEN OLD.archived = 0
BEGIN
    UPDATE task_counts SET n = n - 1
    WHERE project_id = OLD.project_id AND status = OLD.status AND assignee_key = OLD.assignee_key;
END;

-- An update moves a task from its old key to its new one only when a counted field changed:
-- update_task rewrites every column, and most writes change none of these.
CREATE TRIGGER task_counts_update_old AFTER UPDATE OF project_id, status, assignee_key, archived ON tasks
WHEN OLD.archived = 0 AND (NEW.archived <> 0 OR NEW.project_id <> OLD.project_id
    OR NEW.status <> OLD.status OR NEW.assignee_key <> OLD.assignee_key)
BEGIN
    UPDATE task_counts SET n = n - 1
    WHERE project_id = OLD.project_id AND status = OLD.status AND assignee_key = OLD.assignee_key;
END;

CREATE TRIGGER task_counts_update_new AFTER UPDATE OF project_id, status, assignee_key, archived ON tasks
WHEN NEW.archived = 0 AND (OLD.archived <> 0 OR NEW.project_id <> OLD.project_id
    OR NEW.status <> OLD.status OR NEW.assignee_key <> OLD.assignee_key)
BEGIN
    INSERT INTO task_counts (project_id, status, assignee_key, n)
    VALUES (NEW.project_id, NEW.status, NEW.assignee_key, 1)
    ON CONFLICT (project_id, status, assignee_key) DO UPDATE SET n = n + 1;
END;
