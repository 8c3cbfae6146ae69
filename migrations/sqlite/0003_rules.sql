-- Events, ServiceRules, the outbox and users' notifications (SQLite).

-- The event log: every event some enabled rule listens for, written in the transaction of
-- the change that caused it. `seq` is the order rules see them in.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    subject     TEXT,
    record_id   TEXT,
    pid         INTEGER,
    at_ms       INTEGER NOT NULL,
    depth       INTEGER NOT NULL,
    payload     TEXT NOT NULL
) STRICT;
CREATE INDEX ix_events_kind ON events (kind, subject, seq);

-- ServiceRules as analysts defined them, and what evaluating them did.
CREATE TABLE rules (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    evaluated   INTEGER NOT NULL DEFAULT 0,
    fired       INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    last_at     INTEGER,
    last_outcome TEXT,
    last_error  TEXT
) STRICT;
-- One row per rule run that did something (or failed): written in the run's transaction,
-- so a run is never done twice for one event.
CREATE TABLE rule_runs (
    rule        TEXT NOT NULL,
    event_seq   INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT,
    effects     TEXT NOT NULL,
    PRIMARY KEY (rule, event_seq)
) STRICT;
-- How far the rules engine has read the event log, and each time rule's watermark.
CREATE TABLE rule_cursors (
    name        TEXT PRIMARY KEY,
    position    INTEGER NOT NULL
) STRICT;

-- Deliveries that must happen at least once: notifications, webhooks, process commands.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at_ms    INTEGER NOT NULL,
    claimed_at_ms INTEGER,
    last_error    TEXT,
    created_at_ms INTEGER NOT NULL,
    delivered_at_ms INTEGER,
    rule          TEXT,
    event_seq     INTEGER
) STRICT;
CREATE INDEX ix_outbox_due ON outbox (next_at_ms, id) WHERE state = 'pending';

-- Users' notification inbox: what `notify` delivers to.
CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    user_id     TEXT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    at_ms       INTEGER NOT NULL,
    read_at_ms  INTEGER,
    outbox_id   INTEGER NOT NULL,
    UNIQUE (outbox_id, user_id)
) STRICT;
CREATE INDEX ix_notifications_user ON notifications (user_id, id);
