-- When a built segment relative to now (within_last_days, more_than_days_ago) was last
-- checked, in epoch milliseconds: every member was evaluated at that instant or later.
-- The segment sweep checks again from there only the users time can have moved
-- (docs/segments.md), in any process and after a restart. NULL: never known (a segment
-- saved before this migration): the next sweep builds it again in full and sets it.
ALTER TABLE segments ADD COLUMN checked_ms bigint;
