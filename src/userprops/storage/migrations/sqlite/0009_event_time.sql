-- Event time (docs/bulk.md, "Event time"): ts is the epoch milliseconds a value became
-- true, the timestamp of the write that set it (the time of the write when it gave
-- none). A set or delete older than ts is not applied. Values already stored take the
-- time they were written (updated_at): they were writes without a timestamp, so "now"
-- when made, and a backfill of older facts does not overwrite them. A row inserted
-- without ts (a bulk load of its own) gets 0, older than any write.
ALTER TABLE user_values ADD COLUMN ts INTEGER NOT NULL DEFAULT 0;
UPDATE user_values SET ts = updated_at;
