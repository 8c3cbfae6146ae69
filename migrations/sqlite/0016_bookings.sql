-- Bookings (SQLite): reservations of resources and operators over time (a visit's room,
-- device and practitioner, a device's maintenance). `booking_holds` has one row per holder
-- of an active booking; two holds of one holder never overlap — checked by the kernel in
-- the same write transaction (BEGIN IMMEDIATE serialises writers), and again in memory.
CREATE TABLE bookings (
    id            TEXT PRIMARY KEY,
    state         TEXT NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    held_from_ms  INTEGER NOT NULL,
    held_to_ms    INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    definition    TEXT NOT NULL,
    updated_ms    INTEGER NOT NULL
) STRICT;
CREATE INDEX bookings_by_start ON bookings (start_ms, id);

CREATE TABLE booking_holds (
    booking_id    TEXT NOT NULL REFERENCES bookings (id),
    holder        TEXT NOT NULL,
    held_from_ms  INTEGER NOT NULL,
    held_to_ms    INTEGER NOT NULL,
    PRIMARY KEY (booking_id, holder)
) STRICT;
CREATE INDEX booking_holds_by_holder ON booking_holds (holder, held_from_ms);

-- What happened to each booking, in order: booked, rescheduled, cancelled, no-show.
CREATE TABLE booking_history (
    booking_id    TEXT NOT NULL REFERENCES bookings (id),
    seq           INTEGER NOT NULL,
    action        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    at_ms         INTEGER NOT NULL,
    detail        TEXT NOT NULL,
    PRIMARY KEY (booking_id, seq)
) STRICT;

-- Treatments: what one visit needs (duration, buffers, a resource of each type, a
-- practitioner's skill); slot search reads them.
CREATE TABLE treatments (
    name          TEXT PRIMARY KEY,
    definition    TEXT NOT NULL,
    updated_ms    INTEGER NOT NULL
) STRICT;
