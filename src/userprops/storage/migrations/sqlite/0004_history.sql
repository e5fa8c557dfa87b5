-- The history of changes and the feed (docs/history-and-webhooks.md): one row per change
-- of a stored value, numbered per project in commit order by feed_heads; webhook
-- endpoints and their deliveries (the outbox); history retention per project.
ALTER TABLE projects ADD COLUMN history_retention_days INTEGER
    CHECK (history_retention_days IS NULL OR history_retention_days > 0);

-- The last seq handed out in each project. A write takes its project's row just before
-- it commits, so seqs are handed out in commit order.
CREATE TABLE feed_heads (
    project_id INTEGER PRIMARY KEY REFERENCES projects (id),
    last_seq   INTEGER NOT NULL DEFAULT 0
);
INSERT INTO feed_heads (project_id) SELECT id FROM projects;

-- type is the attribute's type (BOOL for segment changes), NULL when the change carries
-- no value (user.deleted); old and new are stored texts (schema.encode), NULL for absent.
CREATE TABLE changes (
    project_id INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    euid       INTEGER NOT NULL,
    property   TEXT NOT NULL,
    op         TEXT NOT NULL,
    type       TEXT,
    old        TEXT,
    new        TEXT,
    source     TEXT NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (project_id, seq)
) WITHOUT ROWID;

CREATE INDEX changes_by_user ON changes (project_id, euid, seq);
CREATE INDEX changes_by_time ON changes (project_id, at);

-- fanned_seq: the last seq whose deliveries were made for this endpoint; properties: a
-- JSON array of attribute names, or NULL for every change.
CREATE TABLE webhooks (
    id              INTEGER PRIMARY KEY,
    project_id      INTEGER NOT NULL REFERENCES projects (id),
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,
    properties      TEXT,
    enabled         INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    fanned_seq      INTEGER NOT NULL,
    failing_since   INTEGER,
    created_at      TEXT NOT NULL
);

-- One delivery per (endpoint, change). status: pending, delivered or dead.
CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY,
    webhook_id    INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    project_id    INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    euid          INTEGER NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    lease_until   INTEGER NOT NULL DEFAULT 0,
    last_status   INTEGER,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    UNIQUE (webhook_id, seq)
);

CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_user ON deliveries (webhook_id, euid, seq) WHERE status = 'pending';
CREATE INDEX deliveries_finished ON deliveries (finished_at) WHERE status <> 'pending';
