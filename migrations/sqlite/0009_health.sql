-- Health (SQLite): one row `/healthz` rewrites to check that the database can really be
-- written now (a commit reaches the disk), not only read.
CREATE TABLE health_probe (
    id    INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL
) STRICT;
