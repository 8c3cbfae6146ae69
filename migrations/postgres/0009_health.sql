-- Health (PostgreSQL): one row `/healthz` rewrites to check that the database can really
-- be written now (a commit is accepted), not only read.
CREATE TABLE health_probe (
    id    BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL
);
