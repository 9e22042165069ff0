-- Case-insensitive search with the same folding on both engines: a folded copy of the
-- searchable text, computed in Rust (full Unicode lowercase) on every write.
ALTER TABLE projects ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
ALTER TABLE documents ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE projects SET search_text = LOWER(title) || chr(10) || LOWER(description);
UPDATE tasks SET search_text = LOWER(title) || chr(10) || LOWER(description);
UPDATE documents SET search_text = LOWER(title);
