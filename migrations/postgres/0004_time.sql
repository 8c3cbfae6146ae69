-- The time service (PostgreSQL): working calendars, and the deadline alarms already handled.

CREATE TABLE calendars (
    name        TEXT PRIMARY KEY,
    definition  JSONB NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE deadline_marks (
    pid          BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    deadline_ms  BIGINT NOT NULL,
    at_ms        BIGINT NOT NULL,
    PRIMARY KEY (pid, kind, deadline_ms)
);
