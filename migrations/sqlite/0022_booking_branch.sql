-- A booking's branch (issue 14 §9): the branch its rooms, devices and practitioners stand
-- in, NULL when it holds only what serves every branch. The lists of a branch's staff
-- filter by it; bookings made before it existed serve every branch.
ALTER TABLE bookings ADD COLUMN branch TEXT;
CREATE INDEX bookings_branch ON bookings (branch, start_ms);
