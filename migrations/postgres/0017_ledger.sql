-- Prepaid accounts and their ledger (PostgreSQL). An account's balance is the sum of its
-- entries, kept with it and never negative (the CHECK refuses it too); an entry's
-- reference is unique in its account, so a retried charge finds the first one instead of
-- booking twice.
CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    holder         TEXT NOT NULL,
    label          TEXT,
    balance_cents  BIGINT NOT NULL CHECK (balance_cents >= 0),
    entries        BIGINT NOT NULL,
    created_ms     BIGINT NOT NULL,
    updated_ms     BIGINT NOT NULL
);
CREATE INDEX accounts_by_holder ON accounts (holder);

CREATE TABLE ledger_entries (
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    seq            BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    amount_cents   BIGINT NOT NULL,
    balance_cents  BIGINT NOT NULL,
    reference      TEXT NOT NULL,
    note           TEXT,
    actor          TEXT NOT NULL,
    at_ms          BIGINT NOT NULL,
    PRIMARY KEY (account_id, seq),
    UNIQUE (account_id, reference)
);
