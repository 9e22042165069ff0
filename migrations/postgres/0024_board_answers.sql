-- Whole answers of board reads remembered between board writes (issue #23 item 2). The store
-- keeps the text of a read's answer (`find_tasks`, `find_projects`, `find_documents`) in
-- memory, keyed by this version, and serves it again while the version is unchanged. Unlike
-- `board_version` (0019), which only count-changing task writes set, every write to a table a
-- board read shows sets a new random version in its own transaction: claims, orders, texts,
-- blockers, projects and documents too. Each read reads this row first, on any replica, so a
-- client always reads its own writes and sees every committed write in its next read.
CREATE TABLE board_answers (
    id      BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    version BIGINT NOT NULL
);

INSERT INTO board_answers (version) VALUES (board_version_next());

CREATE FUNCTION board_answers_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE board_answers SET version = board_version_next();
    RETURN NULL;
END
$$;

-- Once per statement: a bulk import is one bump per batch.
CREATE TRIGGER board_answers_tasks AFTER INSERT OR UPDATE OR DELETE ON tasks
FOR EACH STATEMENT EXECUTE FUNCTION board_answers_bump();
CREATE TRIGGER board_answers_task_dependencies AFTER INSERT OR UPDATE OR DELETE ON task_dependencies
FOR EACH STATEMENT EXECUTE FUNCTION board_answers_bump();
CREATE TRIGGER board_answers_projects AFTER INSERT OR UPDATE OR DELETE ON projects
FOR EACH STATEMENT EXECUTE FUNCTION board_answers_bump();
CREATE TRIGGER board_answers_documents AFTER INSERT OR UPDATE OR DELETE ON documents
FOR EACH STATEMENT EXECUTE FUNCTION board_answers_bump();
