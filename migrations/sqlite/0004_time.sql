-- The time service (SQLite): working calendars, and the deadline alarms already handled.

CREATE TABLE calendars (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

-- One row per deadline alarm handled (warning or passed, for one visit of a step, named by
-- its deadline): written with the alarm's event and escalation, so each fires once.
CREATE TABLE deadline_marks (
    pid          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    deadline_ms  INTEGER NOT NULL,
    at_ms        INTEGER NOT NULL,
    PRIMARY KEY (pid, kind, deadline_ms)
) STRICT;
