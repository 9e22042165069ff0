-- Case-insensitive search that works beyond ASCII: SQLite's LOWER() folds ASCII only, so Steward
-- keeps a folded copy of the searchable text, computed in Rust (full Unicode lowercase) on
-- every write. Existing rows are backfilled with LOWER() (ASCII folding) once.
ALTER TABLE projects ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
ALTER TABLE documents ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE projects SET search_text = LOWER(title) || char(10) || LOWER(description);
UPDATE tasks SET search_text = LOWER(title) || char(10) || LOWER(description);
UPDATE documents SET search_text = LOWER(title);
