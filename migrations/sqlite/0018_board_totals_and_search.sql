-- Board reads at any board size (issue #23), second step.
--
-- 1. Board-wide totals. `task_counts` (0017) holds one row per (project, status, assignee), so a
--    total over the whole board summed 16 rows per project: 40,000 rows at 100,000 tasks. This
--    table holds one row per (status, assignee) for the whole board, kept by the same kind of
--    triggers in the same transaction as the change, so the unfiltered, status and assignee
--    totals read a handful of rows at any board size.
CREATE TABLE task_totals (
    status       TEXT NOT NULL,
    assignee_key TEXT NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (status, assignee_key)
) STRICT, WITHOUT ROWID;

INSERT INTO task_totals (status, assignee_key, n)
SELECT status, assignee_key, COUNT(*) FROM tasks WHERE archived = 0 GROUP BY status, assignee_key;

CREATE TRIGGER task_totals_insert AFTER INSERT ON tasks WHEN NEW.archived = 0
BEGIN
    INSERT INTO task_totals (status, assignee_key, n) VALUES (NEW.status, NEW.assignee_key, 1)
    ON CONFLICT (status, assignee_key) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER task_totals_delete AFTER DELETE ON tasks WHEN OLD.archived = 0
BEGIN
    UPDATE task_totals SET n = n - 1 WHERE status = OLD.status AND assignee_key = OLD.assignee_key;
END;

CREATE TRIGGER task_totals_update_old AFTER UPDATE OF status, assignee_key, archived ON tasks
WHEN OLD.archived = 0 AND (NEW.archived <> 0 OR NEW.status <> OLD.status OR NEW.assignee_key <> OLD.assignee_key)
BEGIN
    UPDATE task_totals SET n = n - 1 WHERE status = OLD.status AND assignee_key = OLD.assignee_key;
END;

CREATE TRIGGER task_totals_update_new AFTER UPDATE OF status, assignee_key, archived ON tasks
WHEN NEW.archived = 0 AND (OLD.archived <> 0 OR NEW.status <> OLD.status OR NEW.assignee_key <> OLD.assignee_key)
BEGIN
    INSERT INTO task_totals (status, assignee_key, n) VALUES (NEW.status, NEW.assignee_key, 1)
    ON CONFLICT (status, assignee_key) DO UPDATE SET n = n + 1;
END;

-- 2. Text search through a trigram index. `search_text LIKE '%q%'` read every task; an FTS5
--    table with the trigram tokenizer finds the tasks holding every 3-character piece of q in
--    order, which is a superset of the substring matches (case_sensitive 1: no folding of its
--    own, `search_text` is already folded in Rust), so the store still checks `LIKE` on the
--    few rows it returns and the results are exactly those of the scan. Queries shorter than
--    3 characters have no trigram and keep the scan. External content: the index holds no
--    copy of the text, it is keyed by the tasks' rowid (which only a VACUUM could renumber;
--    `INSERT INTO tasks_fts(tasks_fts) VALUES('rebuild')` rebuilds it from `tasks`).
CREATE VIRTUAL TABLE tasks_fts USING fts5(
    search_text, content = 'tasks', content_rowid = 'rowid', tokenize = 'trigram case_sensitive 1'
);
INSERT INTO tasks_fts (tasks_fts) VALUES ('rebuild');

CREATE TRIGGER tasks_fts_insert AFTER INSERT ON tasks
BEGIN
    INSERT INTO tasks_fts (rowid, search_text) VALUES (NEW.rowid, NEW.search_text);
END;

CREATE TRIGGER tasks_fts_delete AFTER DELETE ON tasks
BEGIN
    INSERT INTO tasks_fts (tasks_fts, rowid, search_text) VALUES ('delete', OLD.rowid, OLD.search_text);
END;

-- update_task rewrites every column: re-index only when the text changed.
CREATE TRIGGER tasks_fts_update AFTER UPDATE OF search_text ON tasks
WHEN NEW.search_text <> OLD.search_text
BEGIN
    INSERT INTO tasks_fts (tasks_fts, rowid, search_text) VALUES ('delete', OLD.rowid, OLD.search_text);
    INSERT INTO tasks_fts (rowid, search_text) VALUES (NEW.rowid, NEW.search_text);
END;
