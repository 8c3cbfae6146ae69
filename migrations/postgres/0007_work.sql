-- Work items (PostgreSQL): delegations, the periods a user's new work items go to a deputy.
-- Work items themselves live in each PCB (and so in every history snapshot).
CREATE TABLE delegations (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       TEXT NOT NULL,
    deputy        TEXT NOT NULL,
    from_ms       BIGINT NOT NULL,
    to_ms         BIGINT NOT NULL,
    services      JSONB NOT NULL,
    created_by    TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX delegations_user ON delegations (user_id);
