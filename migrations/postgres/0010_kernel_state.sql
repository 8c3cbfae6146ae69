-- Kernel state (PostgreSQL): small named values the kernel keeps about its own data, e.g.
-- the version of the pinyin search keys the records' `_search` documents were built with (a
-- newer erpos rebuilds them once at start).
CREATE TABLE kernel_state (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
