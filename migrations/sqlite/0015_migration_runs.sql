-- Migration runs (SQLite): a DataItem migration too large for one transaction runs in
-- batches, each committed with its cursor here, so a crash resumes where it stopped and
-- `GET /api/v1/data-items/{name}/migration/progress` shows how far it is. One row per
-- DataItem: its running migration, or the last one that ended (done or failed).
CREATE TABLE migration_runs (
    item         TEXT PRIMARY KEY,
    version      INTEGER NOT NULL,
    state        TEXT NOT NULL,
    pass         INTEGER NOT NULL,
    after_id     TEXT,
    done         INTEGER NOT NULL,
    total        INTEGER NOT NULL,
    plan         TEXT NOT NULL,
    request      TEXT NOT NULL,
    actor        TEXT NOT NULL,
    after_switch TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    error        TEXT
) STRICT;
