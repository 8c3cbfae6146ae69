-- Authentication (PostgreSQL): passwords, sessions, app tokens and the signatures they used.

-- A user's password as an argon2id PHC string (salt and parameters inside); never the
-- password itself.
CREATE TABLE credentials (
    user_id        TEXT PRIMARY KEY,
    password_hash  TEXT NOT NULL,
    updated_ms     BIGINT NOT NULL
);

-- Login sessions, by the hex SHA-256 of their bearer token (the token is never stored).
CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL
);
CREATE INDEX ix_sessions_user ON sessions (user_id);
CREATE INDEX ix_sessions_expires ON sessions (expires_ms);

-- App tokens of calling systems. The secret signs requests (HMAC), so the kernel must be
-- able to read it; the API shows it once, when it is created.
CREATE TABLE app_tokens (
    name        TEXT PRIMARY KEY,
    secret      TEXT NOT NULL,
    definition  JSONB NOT NULL,
    created_ms  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    revoked_ms  BIGINT,
    revoked_by  TEXT
);

-- Signatures seen within the accepted clock window: a replayed request is refused.
CREATE TABLE app_signatures (
    app        TEXT NOT NULL,
    signature  TEXT NOT NULL,
    at_ms      BIGINT NOT NULL,
    PRIMARY KEY (app, signature)
);
CREATE INDEX ix_app_signatures_at ON app_signatures (at_ms);

-- Who changed definitions, the organisation and access (records and processes keep their
-- own history with the actor): one row per accepted change, written right after it.
CREATE TABLE audit_log (
    seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms    BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT NOT NULL
);
