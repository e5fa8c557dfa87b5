-- Webhook delivery: the same columns and indexes as sqlite/0005_webhooks.sql.

-- Attempts that failed in a row since the endpoint last answered 2xx.
ALTER TABLE webhooks ADD COLUMN failures integer NOT NULL DEFAULT 0;

-- Due deliveries are claimed per endpoint, oldest next_at first (FOR UPDATE SKIP LOCKED).
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (webhook_id, next_at) WHERE status = 'pending';

CREATE INDEX deliveries_by_change ON deliveries (project_id, seq) WHERE status <> 'delivered';
