-- Record series (PostgreSQL): the last number given in each series of a numbered field
-- (its DataItem, field and scope: prefix, and day when the series has a date part).
-- Counted in the transaction that creates the record (the row's lock orders concurrent
-- creations), so the numbers are gap-free.
CREATE TABLE record_series (
    series TEXT PRIMARY KEY,
    last   BIGINT NOT NULL
);
