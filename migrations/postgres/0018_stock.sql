-- Stock (issue 14 §8, PostgreSQL). A lot's on hand is the sum of its movements, kept with it and
-- never negative (the CHECK refuses it too); every operation — a receipt, a consumption
-- taken FEFO over several lots, an adjustment, a write-off — is one row of stock_operations
-- under the caller's reference, so a retry finds the first instead of moving stock twice.
CREATE TABLE stock_materials (
    name           TEXT PRIMARY KEY,
    definition     JSONB NOT NULL,
    updated_ms     BIGINT NOT NULL
);

CREATE TABLE stock_lots (
    id             TEXT PRIMARY KEY,
    material       TEXT NOT NULL REFERENCES stock_materials (name),
    branch         TEXT NOT NULL,
    lot_number     TEXT NOT NULL,
    expires_on     TEXT NOT NULL,
    expires_ms     BIGINT NOT NULL,
    opened_ms      BIGINT,
    usable_ms      BIGINT NOT NULL,
    on_hand        BIGINT NOT NULL CHECK (on_hand >= 0),
    movements      BIGINT NOT NULL,
    created_ms     BIGINT NOT NULL,
    UNIQUE (material, branch, lot_number)
);
CREATE INDEX stock_lots_fefo ON stock_lots (material, branch, usable_ms);
CREATE INDEX stock_lots_by_expiry ON stock_lots (usable_ms);

CREATE TABLE stock_operations (
    reference      TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    material       TEXT NOT NULL,
    branch         TEXT NOT NULL,
    quantity       BIGINT NOT NULL,
    actor          TEXT NOT NULL,
    at_ms          BIGINT NOT NULL
);

CREATE TABLE stock_movements (
    lot_id         TEXT NOT NULL REFERENCES stock_lots (id),
    seq            BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    quantity       BIGINT NOT NULL,
    on_hand        BIGINT NOT NULL,
    reference      TEXT NOT NULL REFERENCES stock_operations (reference),
    line           BIGINT NOT NULL,
    note           TEXT,
    actor          TEXT NOT NULL,
    at_ms          BIGINT NOT NULL,
    PRIMARY KEY (lot_id, seq)
);
CREATE INDEX stock_movements_by_reference ON stock_movements (reference);
