-- Answers to requests sent with an Idempotency-Key, written in the same transaction as
-- the request's effects. Keys are scoped per data source; rows expire (expires_at, epoch
-- milliseconds) and are swept by the server.
CREATE TABLE idempotency_keys (
    datasource_id INTEGER NOT NULL REFERENCES datasources (id),
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    result        BLOB NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (datasource_id, key)
) WITHOUT ROWID;

CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
