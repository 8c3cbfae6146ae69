-- erpos's own tables (PostgreSQL). Record tables (rec_*) are generated from DataItems.

-- The active definition of every DataItem, and a pending change awaiting its migration.
CREATE TABLE data_items (
    name        TEXT PRIMARY KEY,
    version     BIGINT NOT NULL,
    definition  JSONB NOT NULL,
    draft       JSONB,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Every applied version of every DataItem, with the plan that produced it.
CREATE TABLE data_item_versions (
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    definition  JSONB NOT NULL,
    plan        JSONB NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, version)
);

-- The audit trail of record writes: who changed what, when, from which value to which.
CREATE TABLE record_changes (
    seq         BIGSERIAL PRIMARY KEY,
    item        TEXT NOT NULL,
    record_id   UUID NOT NULL,
    version     BIGINT NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT,
    changes     JSONB NOT NULL,
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX ix_record_changes_record ON record_changes (item, record_id, seq);
