-- Board reads at any board size (issue #23), fourth step: the number of projects, kept in one
-- row by triggers in the same transaction as the change, so an unfiltered find_projects reads
-- its total instead of counting every project. Same logical schema as
-- migrations/postgres/0020_project_total.sql (row triggers here: SQLite has no statement
-- triggers, and updates the row in place).
CREATE TABLE project_total (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);

INSERT INTO project_total (id, n) SELECT 1, COUNT(*) FROM projects;

CREATE TRIGGER project_total_insert AFTER INSERT ON projects
BEGIN
    UPDATE project_total SET n = n + 1;
END;

CREATE TRIGGER project_total_delete AFTER DELETE ON projects
BEGIN
    UPDATE project_total SET n = n - 1;
END;
