-- Board reads at any board size (issue #23), third step: a version of what task counts see.
-- The exact total of a text or feature query is a COUNT over thousands of matching tasks at
-- 100,000 tasks; the store keeps the totals it counted in memory, keyed by this version, and
-- counts again only once it changed. Every write that can change a count sets a new random
-- version in its own transaction, so the next read on any replica (they all read this row)
-- sees the change once it is committed and counts again: a client always reads its own
-- writes. Random rather than a counter, so two databases (or a database and its restored
-- copy) do not share versions.
CREATE TABLE board_version (
    id      BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    version BIGINT NOT NULL
);

CREATE FUNCTION board_version_next() RETURNS BIGINT LANGUAGE sql VOLATILE AS $$
    SELECT (floor(random() * 4294967296)::bigint << 32) | floor(random() * 4294967296)::bigint
$$;

INSERT INTO board_version (version) VALUES (board_version_next());

CREATE FUNCTION board_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE board_version SET version = board_version_next();
    RETURN NULL;
END
$$;

-- Once per statement for inserts and deletes (a bulk import is one statement per batch).
CREATE TRIGGER board_version_insert_delete AFTER INSERT OR DELETE ON tasks
FOR EACH STATEMENT EXECUTE FUNCTION board_version_bump();

-- Claims, leases, orders and texts other than search_text change no count: they keep the
-- version (and the totals counted for it).
CREATE TRIGGER board_version_update
AFTER UPDATE OF search_text, status, archived, project_id, assignee_key, feature_key ON tasks
FOR EACH ROW
WHEN (NEW.search_text IS DISTINCT FROM OLD.search_text OR NEW.status IS DISTINCT FROM OLD.status
    OR NEW.archived IS DISTINCT FROM OLD.archived OR NEW.project_id IS DISTINCT FROM OLD.project_id
    OR NEW.assignee_key IS DISTINCT FROM OLD.assignee_key
    OR NEW.feature_key IS DISTINCT FROM OLD.feature_key)
EXECUTE FUNCTION board_version_bump();
