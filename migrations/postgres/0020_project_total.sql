-- Board reads at any board size (issue #23), fourth step: the number of projects. An unfiltered
-- find_projects counted every project for its total (a sequential scan: 0.45 ms at 2,500
-- projects, the bench's 100,000-task board, and growing with it); this one-row table holds the
-- count, kept by statement triggers in the same transaction as the change (a bulk insert or
-- delete changes the row once). Project writes are rare, so the one row they queue on is no
-- bottleneck.
CREATE TABLE project_total (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    n  BIGINT NOT NULL
);

INSERT INTO project_total (n) SELECT COUNT(*) FROM projects;

CREATE FUNCTION project_total_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE project_total SET n = n + (SELECT COUNT(*) FROM added);
    RETURN NULL;
END
$$;

CREATE FUNCTION project_total_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE project_total SET n = n - (SELECT COUNT(*) FROM removed);
    RETURN NULL;
END
$$;

CREATE TRIGGER project_total_insert AFTER INSERT ON projects
REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION project_total_insert();

CREATE TRIGGER project_total_delete AFTER DELETE ON projects
REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION project_total_delete();
