-- Search grams (SQLite): per record, every suffix of every word of its search document
-- (erpos_design::naming::search_grams), so a search for `zl` is a range of this index —
-- the grams from 'zl' up to 'zl' followed by the highest character — instead of a
-- `LIKE '%zl%'` scan of every record. Compared bytewise (BINARY), as PostgreSQL's "C".
CREATE TABLE record_search_grams (
    item TEXT NOT NULL,
    gram TEXT NOT NULL,
    id   TEXT NOT NULL,
    PRIMARY KEY (item, gram, id)
) STRICT;
CREATE INDEX record_search_grams_by_record ON record_search_grams (item, id);
