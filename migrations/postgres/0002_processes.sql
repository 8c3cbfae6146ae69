-- Services, resources, operators and processes (PostgreSQL).

CREATE TABLE service_drafts (
    name        TEXT PRIMARY KEY,
    definition  JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE TABLE services (
    name          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    definition    JSONB NOT NULL,
    published_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE resource_types (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    definition  JSONB NOT NULL
);
CREATE TABLE resources (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL REFERENCES resource_types (name),
    definition  JSONB NOT NULL
);

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    definition  JSONB NOT NULL
);

CREATE TABLE processes (
    pid          BIGINT PRIMARY KEY,
    service      TEXT NOT NULL,
    version      BIGINT NOT NULL,
    state        TEXT NOT NULL,
    step         TEXT,
    operator     TEXT,
    wait_kind    TEXT,
    parent       BIGINT,
    record_item  TEXT,
    record_id    TEXT,
    pcb          JSONB NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX ix_processes_state ON processes (state, service);
CREATE INDEX ix_processes_parent ON processes (parent) WHERE parent IS NOT NULL;

CREATE TABLE process_history (
    pid         BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    pcb         JSONB NOT NULL,
    gseq        BIGINT NOT NULL,
    PRIMARY KEY (pid, seq)
);
-- The global order of changes: WebSocket clients resume from it without gaps.
CREATE UNIQUE INDEX ux_process_history_gseq ON process_history (gseq);
