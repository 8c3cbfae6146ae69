-- Bookings (PostgreSQL): reservations of resources and operators over time (a visit's room,
-- device and practitioner, a device's maintenance). `booking_holds` has one row per holder
-- of an active booking; the database itself refuses two overlapping holds of one holder,
-- with an exclusion constraint over the held `tstzrange` (btree_gist gives `=` on text).
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE bookings (
    id            UUID PRIMARY KEY,
    state         TEXT NOT NULL,
    start_ms      BIGINT NOT NULL,
    end_ms        BIGINT NOT NULL,
    held_from_ms  BIGINT NOT NULL,
    held_to_ms    BIGINT NOT NULL,
    version       BIGINT NOT NULL,
    definition    JSONB NOT NULL,
    updated_ms    BIGINT NOT NULL
);
CREATE INDEX bookings_by_start ON bookings (start_ms, id);

CREATE TABLE booking_holds (
    booking_id    UUID NOT NULL REFERENCES bookings (id),
    holder        TEXT NOT NULL,
    held_from_ms  BIGINT NOT NULL,
    held_to_ms    BIGINT NOT NULL,
    held          TSTZRANGE GENERATED ALWAYS AS (
                      tstzrange(to_timestamp(held_from_ms / 1000.0), to_timestamp(held_to_ms / 1000.0), '[)')
                  ) STORED,
    PRIMARY KEY (booking_id, holder),
    CONSTRAINT booking_holds_never_overlap EXCLUDE USING gist (holder WITH =, held WITH &&)
);
CREATE INDEX booking_holds_by_holder ON booking_holds (holder, held_from_ms);

-- What happened to each booking, in order: booked, rescheduled, cancelled, no-show.
CREATE TABLE booking_history (
    booking_id    UUID NOT NULL REFERENCES bookings (id),
    seq           INTEGER NOT NULL,
    action        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    at_ms         BIGINT NOT NULL,
    detail        JSONB NOT NULL,
    PRIMARY KEY (booking_id, seq)
);

-- Treatments: what one visit needs (duration, buffers, a resource of each type, a
-- practitioner's skill); slot search reads them.
CREATE TABLE treatments (
    name          TEXT PRIMARY KEY,
    definition    JSONB NOT NULL,
    updated_ms    BIGINT NOT NULL
);
