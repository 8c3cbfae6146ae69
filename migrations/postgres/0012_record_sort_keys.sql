-- Pinyin sort keys (PostgreSQL): per record and searchable text field, the key that field
-- sorts by in pinyin order (erpos_design::naming::sort_key, surname readings included),
-- compared bytewise ("C"), the same order SQLite gives. Lists sorted by such a field join
-- it; the index serves the order and the keyset of the next page.
CREATE TABLE record_sort_keys (
    item     TEXT NOT NULL,
    field    TEXT NOT NULL,
    id       TEXT NOT NULL,
    sort_key TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (item, field, id)
);
CREATE INDEX record_sort_keys_order ON record_sort_keys (item, field, sort_key, id);
