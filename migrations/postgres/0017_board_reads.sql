-- Board reads that do not grow with the board (issue #23). Each listing gets an index that
-- serves its filter and its order (task_order DESC, created_at, id), so the first page reads
-- a page of index entries instead of sorting every live task; and the totals of the common
-- filters (project, status, assignee, open or done) come from per-(project, status, assignee)
-- counts that a trigger keeps in the same transaction as the change, instead of a COUNT(*)
-- over every matching row.
CREATE INDEX tasks_live_order ON tasks (archived, task_order DESC, created_at, id);
CREATE INDEX tasks_live_status_order ON tasks (archived, status, task_order DESC, created_at, id);
CREATE INDEX tasks_project_order ON tasks (project_id, archived, task_order DESC, created_at, id);
CREATE INDEX tasks_assignee_order ON tasks (assignee_key, archived, task_order DESC, created_at, id);
CREATE INDEX projects_newest ON projects (created_at DESC, id);
CREATE INDEX documents_newest ON documents (project_id, created_at DESC, id);

-- Live (unarchived) tasks by project, status and folded assignee.
CREATE TABLE task_counts (
    project_id   UUID NOT NULL,
    status       TEXT NOT NULL,
    assignee_key TEXT NOT NULL,
    n            BIGINT NOT NULL,
    PRIMARY KEY (project_id, status, assignee_key)
);

INSERT INTO task_counts (project_id, status, assignee_key, n)
SELECT project_id, status, assignee_key, COUNT(*) FROM tasks WHERE NOT archived
GROUP BY project_id, status, assignee_key;

-- An update moves a task from its old key to its new one only when a counted field changed:
-- update_task rewrites every column, and most writes change none of these.
CREATE FUNCTION task_counts_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moved BOOLEAN := TG_OP <> 'UPDATE';
BEGIN
    IF TG_OP = 'UPDATE' THEN
        moved := NEW.archived <> OLD.archived OR NEW.project_id <> OLD.project_id
            OR NEW.status <> OLD.status OR NEW.assignee_key <> OLD.assignee_key;
    END IF;
    IF NOT moved THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' AND NOT OLD.archived THEN
        UPDATE task_counts SET n = n - 1
        WHERE project_id = OLD.project_id AND status = OLD.status AND assignee_key = OLD.assignee_key;
    END IF;
    IF TG_OP <> 'DELETE' AND NOT NEW.archived THEN
        INSERT INTO task_counts (project_id, status, assignee_key, n)
        VALUES (NEW.project_id, NEW.status, NEW.assignee_key, 1)
        ON CONFLICT (project_id, status, assignee_key) DO UPDATE SET n = task_counts.n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER task_counts_change AFTER INSERT OR DELETE OR UPDATE OF project_id, status, assignee_key, archived
ON tasks FOR EACH ROW EXECUTE FUNCTION task_counts_change();

-- Text search (`search_text LIKE '%…%'`) through a trigram index. pg_trgm ships with
-- PostgreSQL's contrib packages and is a trusted extension (a database owner may create it);
-- where it is missing or not allowed, the migration still applies, text search scans the
-- table as before, and the warning below is in PostgreSQL's log (docs/configuration.md says
-- how to tell).
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX tasks_search_trgm ON tasks USING gin (search_text gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'pg_trgm is not available (%): text search over tasks scans the table', SQLERRM;
END
$$;
