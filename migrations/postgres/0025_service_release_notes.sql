-- Version notes (issue 15 §2): an analyst publishing a service says what changed, and the
-- designer lists every version with who published it and why. Versions published before
-- have neither (NULL).
ALTER TABLE services ADD COLUMN notes TEXT;
ALTER TABLE services ADD COLUMN published_by TEXT;
