-- Services, resources, operators and processes (SQLite).

-- Service definitions: the editable draft, and every published (frozen) version.
CREATE TABLE service_drafts (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
CREATE TABLE services (
    name          TEXT NOT NULL,
    version       INTEGER NOT NULL,
    definition    TEXT NOT NULL,
    published_at  TEXT NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;

-- Resource types (material, equipment, facility, capital, knowledge) and instances.
CREATE TABLE resource_types (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    definition  TEXT NOT NULL
) STRICT;
CREATE TABLE resources (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL REFERENCES resource_types (name),
    definition  TEXT NOT NULL
) STRICT;

-- People (and agents) who handle steps; issue 5 extends them into the organisation.
CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    definition  TEXT NOT NULL
) STRICT;

-- One row per process control block: its searchable columns and the whole PCB as JSON.
CREATE TABLE processes (
    pid          INTEGER PRIMARY KEY,
    service      TEXT NOT NULL,
    version      INTEGER NOT NULL,
    state        TEXT NOT NULL,
    step         TEXT,
    operator     TEXT,
    wait_kind    TEXT,
    parent       INTEGER,
    record_item  TEXT,
    record_id    TEXT,
    pcb          TEXT NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX ix_processes_state ON processes (state, service);
CREATE INDEX ix_processes_parent ON processes (parent) WHERE parent IS NOT NULL;

-- Every change of every process, written in the same transaction as the PCB row.
CREATE TABLE process_history (
    pid         INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    pcb         TEXT NOT NULL,
    gseq        INTEGER NOT NULL,
    PRIMARY KEY (pid, seq)
) STRICT;
-- The global order of changes: WebSocket clients resume from it without gaps.
CREATE UNIQUE INDEX ux_process_history_gseq ON process_history (gseq);
