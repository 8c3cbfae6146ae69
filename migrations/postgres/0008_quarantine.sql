-- The rules worker's safety net (see kernel/src/rules/mod.rs): an event whose processing
-- keeps failing (a write that fails, a row that does not decode, a crash of the process)
-- is set aside after a few attempts instead of blocking every rule behind it for good.

-- The event at the head of the cursor being attempted, written before the round that
-- processes it and removed when the cursor passes it. A row found at start means the last
-- round did not finish: the worker then goes one event at a time up to `upto` (the last
-- event of that round) to find the culprit.
CREATE TABLE rule_attempts (
    name        TEXT PRIMARY KEY,
    event_seq   BIGINT NOT NULL,
    upto        BIGINT NOT NULL,
    attempts    BIGINT NOT NULL,
    error       TEXT,
    at_ms       BIGINT NOT NULL
);

-- Events set aside: which rules wanted them, the last error, how often it was tried.
-- Listed by GET /api/v1/rules/quarantine and run again by POST …/{seq}/retry.
CREATE TABLE rule_quarantine (
    event_seq   BIGINT PRIMARY KEY,
    rules       TEXT NOT NULL,
    error       TEXT,
    attempts    BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL,
    retried_at_ms BIGINT
);
