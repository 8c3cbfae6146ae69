-- erpos's own tables (SQLite). Record tables (rec_*) are generated from DataItems.

-- The active definition of every DataItem, and a pending change awaiting its migration.
CREATE TABLE data_items (
    name        TEXT PRIMARY KEY,
    version     INTEGER NOT NULL,
    definition  TEXT NOT NULL,
    draft       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

-- Every applied version of every DataItem, with the plan that produced it.
CREATE TABLE data_item_versions (
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    definition  TEXT NOT NULL,
    plan        TEXT NOT NULL,
    applied_at  TEXT NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;

-- The audit trail of record writes: who changed what, when, from which value to which.
CREATE TABLE record_changes (
    seq         INTEGER PRIMARY KEY,
    item        TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT,
    changes     TEXT NOT NULL,
    at          TEXT NOT NULL
) STRICT;
CREATE INDEX ix_record_changes_record ON record_changes (item, record_id, seq);
