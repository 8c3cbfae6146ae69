-- The course sessions paid visits await (issue 14 §7): every deduction and every course
-- charge counts a course's pending charges, so they are found by course without reading
-- the whole charges table (a partial index: only charges whose session is pending).
CREATE INDEX charges_pending_sessions ON charges (course_id) WHERE session = 'pending';
