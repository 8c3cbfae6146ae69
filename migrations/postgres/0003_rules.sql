-- Events, ServiceRules, the outbox and users' notifications (PostgreSQL).

-- The event log: every event some enabled rule listens for, written in the transaction of
-- the change that caused it. `seq` is the order rules see them in (a gap left by a
-- rolled-back writer is skipped once it is old; see kernel/src/rules/worker.rs).
CREATE TABLE events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL,
    subject     TEXT,
    record_id   TEXT,
    pid         BIGINT,
    at_ms       BIGINT NOT NULL,
    depth       BIGINT NOT NULL,
    payload     JSONB NOT NULL
);
CREATE INDEX ix_events_kind ON events (kind, subject, seq);

CREATE TABLE rules (
    name        TEXT PRIMARY KEY,
    definition  JSONB NOT NULL,
    updated_at  BIGINT NOT NULL,
    evaluated   BIGINT NOT NULL DEFAULT 0,
    fired       BIGINT NOT NULL DEFAULT 0,
    failed      BIGINT NOT NULL DEFAULT 0,
    last_at     BIGINT,
    last_outcome TEXT,
    last_error  TEXT
);
CREATE TABLE rule_runs (
    rule        TEXT NOT NULL,
    event_seq   BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT,
    effects     JSONB NOT NULL,
    PRIMARY KEY (rule, event_seq)
);
CREATE TABLE rule_cursors (
    name        TEXT PRIMARY KEY,
    position    BIGINT NOT NULL
);

CREATE TABLE outbox (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          TEXT NOT NULL,
    payload       JSONB NOT NULL,
    state         TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_at_ms    BIGINT NOT NULL,
    claimed_at_ms BIGINT,
    last_error    TEXT,
    created_at_ms BIGINT NOT NULL,
    delivered_at_ms BIGINT,
    rule          TEXT,
    event_seq     BIGINT
);
CREATE INDEX ix_outbox_due ON outbox (next_at_ms, id) WHERE state = 'pending';

CREATE TABLE notifications (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     TEXT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    read_at_ms  BIGINT,
    outbox_id   BIGINT NOT NULL,
    UNIQUE (outbox_id, user_id)
);
CREATE INDEX ix_notifications_user ON notifications (user_id, id);
