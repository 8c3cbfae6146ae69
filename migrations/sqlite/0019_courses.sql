-- Courses and packages (SQLite): N sessions of a treatment until a day. Sessions used stay
-- between 0 and those bought (the CHECK refuses anything else); a use's reference is unique
-- per course and kind, so a retried deduction, or a retried void, happens once.
CREATE TABLE courses (
    id             TEXT PRIMARY KEY,
    holder         TEXT NOT NULL,
    treatment      TEXT NOT NULL,
    charge_type    TEXT NOT NULL,
    sessions       INTEGER NOT NULL,
    used           INTEGER NOT NULL,
    uses           INTEGER NOT NULL,
    expires_on     TEXT NOT NULL,
    expires_ms     INTEGER NOT NULL,
    created_ms     INTEGER NOT NULL,
    CHECK (used >= 0 AND used <= sessions)
) STRICT;
CREATE INDEX courses_by_holder ON courses (holder);

CREATE TABLE course_uses (
    course_id      TEXT NOT NULL REFERENCES courses (id),
    seq            INTEGER NOT NULL,
    reference      TEXT NOT NULL,
    kind           TEXT NOT NULL,
    used           INTEGER NOT NULL,
    actor          TEXT NOT NULL,
    at_ms          INTEGER NOT NULL,
    PRIMARY KEY (course_id, seq),
    UNIQUE (course_id, reference, kind)
) STRICT;
