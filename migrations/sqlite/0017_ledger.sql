-- Prepaid accounts and their ledger (SQLite). An account's balance is the sum of its
-- entries, kept with it and never negative (the CHECK refuses it too); an entry's
-- reference is unique in its account, so a retried charge finds the first one instead of
-- booking twice.
CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    holder         TEXT NOT NULL,
    label          TEXT,
    balance_cents  INTEGER NOT NULL CHECK (balance_cents >= 0),
    entries        INTEGER NOT NULL,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL
) STRICT;
CREATE INDEX accounts_by_holder ON accounts (holder);

CREATE TABLE ledger_entries (
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    seq            INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    amount_cents   INTEGER NOT NULL,
    balance_cents  INTEGER NOT NULL,
    reference      TEXT NOT NULL,
    note           TEXT,
    actor          TEXT NOT NULL,
    at_ms          INTEGER NOT NULL,
    PRIMARY KEY (account_id, seq),
    UNIQUE (account_id, reference)
) STRICT;
