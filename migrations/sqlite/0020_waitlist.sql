-- The waitlist (SQLite): patients who want a treatment within a window that had no free
-- slot. When a booking is cancelled, marked no-show or moved, the first waiting patient
-- whose window a slot now opens in is offered it (state offered, the booking body in
-- offer); accepting books it like any booking.
CREATE TABLE waitlist (
    id             TEXT PRIMARY KEY,
    patient        TEXT NOT NULL,
    treatment      TEXT NOT NULL,
    practitioner   TEXT,
    from_ms        INTEGER NOT NULL,
    to_ms          INTEGER NOT NULL,
    state          TEXT NOT NULL,
    offer          TEXT,
    booking_id     TEXT,
    created_by     TEXT NOT NULL,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL
) STRICT;
CREATE INDEX waitlist_waiting ON waitlist (state, created_ms);
