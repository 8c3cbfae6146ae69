-- Courses and packages (PostgreSQL): N sessions of a treatment until a day. Sessions used stay
-- between 0 and those bought (the CHECK refuses anything else); a use's reference is unique
-- per course and kind, so a retried deduction, or a retried void, happens once.
CREATE TABLE courses (
    id             TEXT PRIMARY KEY,
    holder         TEXT NOT NULL,
    treatment      TEXT NOT NULL,
    charge_type    TEXT NOT NULL,
    sessions       BIGINT NOT NULL,
    used           BIGINT NOT NULL,
    uses           BIGINT NOT NULL,
    expires_on     TEXT NOT NULL,
    expires_ms     BIGINT NOT NULL,
    created_ms     BIGINT NOT NULL,
    CHECK (used >= 0 AND used <= sessions)
);
CREATE INDEX courses_by_holder ON courses (holder);

CREATE TABLE course_uses (
    course_id      TEXT NOT NULL REFERENCES courses (id),
    seq            BIGINT NOT NULL,
    reference      TEXT NOT NULL,
    kind           TEXT NOT NULL,
    used           BIGINT NOT NULL,
    actor          TEXT NOT NULL,
    at_ms          BIGINT NOT NULL,
    PRIMARY KEY (course_id, seq),
    UNIQUE (course_id, reference, kind)
);
