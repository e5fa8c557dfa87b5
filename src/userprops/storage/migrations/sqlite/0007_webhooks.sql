-- Webhook delivery (docs/history-and-webhooks.md): what the deliverer needs beyond the
-- tables of 0004_history.sql.

-- Attempts that failed in a row since the endpoint last answered 2xx (with failing_since,
-- when the first of them failed): an endpoint that keeps failing is disabled.
ALTER TABLE webhooks ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;

-- Due deliveries are claimed per endpoint, oldest next_at first. A delivery waiting for
-- an earlier change of its user has next_at 2^62 (never due until that one is done).
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (webhook_id, next_at) WHERE status = 'pending';

-- The history retention sweep keeps every change a pending or dead delivery still needs.
CREATE INDEX deliveries_by_change ON deliveries (project_id, seq) WHERE status <> 'delivered';
