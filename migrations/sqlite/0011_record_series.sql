-- Record series (SQLite): the last number given in each series of a numbered field (its
-- DataItem, field and scope: prefix, and day when the series has a date part). Counted in
-- the transaction that creates the record, so the numbers are gap-free.
CREATE TABLE record_series (
    series TEXT PRIMARY KEY,
    last   INTEGER NOT NULL
) STRICT;
