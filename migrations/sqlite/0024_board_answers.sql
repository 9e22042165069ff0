-- Whole answers of board reads remembered between board writes (issue #23 item 2). The store
-- keeps the text of a read's answer (`find_tasks`, `find_projects`, `find_documents`) in
-- memory, keyed by this version, and serves it again while the version is unchanged. Unlike
-- `board_version` (0019), which only count-changing task writes set, every write to a table a
-- board read shows sets a new random version in its own transaction: claims, orders, texts,
-- blockers, projects and documents too. Each read reads this row first, on any replica, so a
-- client always reads its own writes and sees every committed write in its next read.
CREATE TABLE board_answers (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;

INSERT INTO board_answers (id, version) VALUES (1, random());

CREATE TRIGGER board_answers_tasks_insert AFTER INSERT ON tasks
BEGIN
    UPDATE board_answers SET version = random();
END;

CREATE TRIGGER board_answers_tasks_update AFTER UPDATE ON tasks
BEGIN
    UPDATE board_answers SET version = random();
END;

CREATE TRIGGER board_answers_tasks_delete AFTER DELETE ON tasks
BEGIN
    UPDATE board_answers SET version = random();
END;

CREATE TRIGGER board_answers_task_dependencies_insert AFTER INSERT ON task_dependencies
BEGIN
    UPDATE board_answers SET version = random();
END;

CREATE TRIGGER board_answers_task_dependencies_update AFTER UPDATE ON task_dependencies
BEGIN
    UPDATE board_answers SET version = random();
END;

CREATE TRIGGER board_answers_task_dependencies_delete AFTER DELETE ON task_dependencies
BEGIN
    UPDATE board_answers SET version = random();
END;

CREATE TRIGGER board_answers_projects_insert AFTER INSERT ON projects
BEGIN
    UPDATE board_answers SET version = random();
END;

CREATE TRIGGER board_answers_projects_update AFTER UPDATE ON projects
BEGIN
    UPDATE board_answers SET version = random();
END;

CREATE TRIGGER board_answers_projects_delete AFTER DELETE ON projects
BEGIN
    UPDATE board_answers SET version = random();
END;

CREATE TRIGGER board_answers_documents_insert AFTER INSERT ON documents
BEGIN
    UPDATE board_answers SET version = random();
END;

CREATE TRIGGER board_answers_documents_update AFTER UPDATE ON documents
BEGIN
    UPDATE board_answers SET version = random();
END;

CREATE TRIGGER board_answers_documents_delete AFTER DELETE ON documents
BEGIN
    UPDATE board_answers SET version = random();
END;
