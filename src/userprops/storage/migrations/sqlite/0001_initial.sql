-- Projects (tenants), their API data sources, attribute definitions, users, identities
-- and one row per attribute value. Every user-data key starts with (project_id, euid).
CREATE TABLE projects (
    id          INTEGER PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    schema_mode TEXT NOT NULL CHECK (schema_mode IN ('auto', 'strict')),
    timezone    TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE datasources (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects (id),
    name        TEXT NOT NULL,
    api_key     TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE attributes (
    project_id INTEGER NOT NULL REFERENCES projects (id),
    name       TEXT NOT NULL,
    type       TEXT NOT NULL CHECK (type IN ('STRING', 'NUMBER', 'BOOL', 'DATETIME', 'LIST')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (project_id, name)
) WITHOUT ROWID;

CREATE TABLE users (
    euid       INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects (id),
    created_at TEXT NOT NULL
);

CREATE TABLE identities (
    project_id INTEGER NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    euid       INTEGER NOT NULL REFERENCES users (euid),
    PRIMARY KEY (project_id, name, value)
) WITHOUT ROWID;

CREATE INDEX identities_by_user ON identities (project_id, euid);

CREATE TABLE user_values (
    project_id INTEGER NOT NULL,
    euid       INTEGER NOT NULL,
    name       TEXT NOT NULL,
    type       TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, euid, name)
) WITHOUT ROWID;
