-- Board reads at any board size (issue #23), third step: a version of what task counts see.
-- The exact total of a text or feature query is a COUNT over thousands of matching tasks at
-- 100,000 tasks; the store keeps the totals it counted in memory, keyed by this version, and
-- counts again only once it changed. Every write that can change a count sets a new random
-- version in its own transaction, so the next read on any replica (they all read this row)
-- sees the change and counts again: a client always reads its own writes. Random rather than
-- a counter, so two databases (or a database and its restored copy) do not share versions.
CREATE TABLE board_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;

INSERT INTO board_version (id, version) VALUES (1, random());

CREATE TRIGGER board_version_insert AFTER INSERT ON tasks
BEGIN
    UPDATE board_version SET version = random();
END;

CREATE TRIGGER board_version_delete AFTER DELETE ON tasks
BEGIN
    UPDATE board_version SET version = random();
END;

-- Claims, leases, orders and texts other than search_text change no count: they keep the
-- version (and the totals counted for it).
CREATE TRIGGER board_version_update
AFTER UPDATE OF search_text, status, archived, project_id, assignee_key, feature_key ON tasks
WHEN NEW.search_text IS NOT OLD.search_text OR NEW.status IS NOT OLD.status
    OR NEW.archived IS NOT OLD.archived OR NEW.project_id IS NOT OLD.project_id
    OR NEW.assignee_key IS NOT OLD.assignee_key OR NEW.feature_key IS NOT OLD.feature_key
BEGIN
    UPDATE board_version SET version = random();
END;
