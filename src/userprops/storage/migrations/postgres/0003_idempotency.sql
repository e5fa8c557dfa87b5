-- Answers to requests sent with an Idempotency-Key, written in the same transaction as
-- the request's effects. Keys are scoped per data source; rows expire (expires_at, epoch
-- milliseconds) and are swept by the server.
CREATE TABLE idempotency_keys (
    datasource_id BIGINT NOT NULL REFERENCES datasources (id),
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    result        BYTEA NOT NULL,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (datasource_id, key)
);

CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
