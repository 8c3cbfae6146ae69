-- A charge's course session and its branch (issue 14 §7 and §9). `session` is what became
-- of the session a 项目疗程 / 年度套餐 charge pays with: `used` (deducted), `pending` (the
-- visit's payment step charged it and the treatment deducts it), `restored` (given back
-- when the charge was voided); NULL for money charges. `branch` is the branch the visit
-- stands in (its booking's, a walk-in's), so a branch's desk lists its own charges; NULL
-- for charges of no branch, which every branch sees. Charges made before this column
-- existed used their session at once, and take their booking's branch.
ALTER TABLE charges ADD COLUMN session TEXT;
ALTER TABLE charges ADD COLUMN branch TEXT;
UPDATE charges SET session = CASE WHEN status = 'void' THEN 'restored' ELSE 'used' END
    WHERE course_id IS NOT NULL;
UPDATE charges SET branch = (SELECT b.branch FROM bookings b WHERE CAST(b.id AS TEXT) = charges.booking)
    WHERE booking IS NOT NULL;
CREATE INDEX charges_by_branch ON charges (branch, id);
