-- Charges (issue 14 §7): what a visit or a deposit cost and how it was paid. The reference
-- is unique, so a retried charge (after a timeout, a crash, a second click) finds the first
-- instead of charging twice; the money adds up (the CHECK refuses anything else):
-- receivable - discount = deposit + received + covered.
CREATE TABLE charges (
    id               TEXT PRIMARY KEY,
    reference        TEXT NOT NULL UNIQUE,
    holder           TEXT NOT NULL,
    purpose          TEXT NOT NULL,
    charge_type      TEXT NOT NULL,
    treatment        TEXT,
    booking          TEXT,
    process          INTEGER,
    receivable_cents INTEGER NOT NULL,
    discount_cents   INTEGER NOT NULL,
    deposit_cents    INTEGER NOT NULL,
    received_cents   INTEGER NOT NULL,
    covered_cents    INTEGER NOT NULL,
    account_id       TEXT,
    course_id        TEXT,
    method           TEXT,
    status           TEXT NOT NULL,
    note             TEXT,
    actor            TEXT NOT NULL,
    at_ms            INTEGER NOT NULL,
    voided_by        TEXT,
    voided_ms        INTEGER,
    void_reason      TEXT,
    CHECK (discount_cents >= 0 AND deposit_cents >= 0 AND received_cents >= 0 AND covered_cents >= 0),
    CHECK (receivable_cents - discount_cents = deposit_cents + received_cents + covered_cents)
) STRICT;
CREATE INDEX charges_by_holder ON charges (holder);
CREATE INDEX charges_by_booking ON charges (booking);
