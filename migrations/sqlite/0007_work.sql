-- Work items (SQLite): delegations, the periods a user's new work items go to a deputy.
-- Work items themselves live in each PCB (and so in every history snapshot).
CREATE TABLE delegations (
    id            INTEGER PRIMARY KEY,
    user_id       TEXT NOT NULL,
    deputy        TEXT NOT NULL,
    from_ms       INTEGER NOT NULL,
    to_ms         INTEGER NOT NULL,
    services      TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX delegations_user ON delegations (user_id);
