-- Contacts, event definitions, event property types, events, and the per-project event
-- retention. Every user-data key starts with project_id; user rows with (project_id, euid).
ALTER TABLE projects ADD COLUMN event_retention_days INTEGER
    CHECK (event_retention_days IS NULL OR event_retention_days > 0);

-- One value of a contact name belongs to at most one user of a project.
CREATE TABLE contacts (
    project_id INTEGER NOT NULL,
    euid       INTEGER NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, euid, name),
    UNIQUE (project_id, name, value)
) WITHOUT ROWID;

CREATE TABLE event_definitions (
    project_id INTEGER NOT NULL REFERENCES projects (id),
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (project_id, name)
) WITHOUT ROWID;

-- The type of an event property is fixed per (project, event, property).
CREATE TABLE event_properties (
    project_id INTEGER NOT NULL,
    event_name TEXT NOT NULL,
    name       TEXT NOT NULL,
    type       TEXT NOT NULL CHECK (type IN ('STRING', 'NUMBER', 'BOOL', 'DATETIME', 'LIST')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (project_id, event_name, name)
) WITHOUT ROWID;

-- properties: JSON object of name -> [TYPE, stored text].
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL,
    euid        INTEGER NOT NULL,
    event_name  TEXT NOT NULL,
    itime       INTEGER NOT NULL,
    random_id   TEXT,
    app_key     TEXT,
    properties  TEXT NOT NULL,
    received_at INTEGER NOT NULL
);

CREATE INDEX events_by_user ON events (project_id, euid, itime, id);
CREATE INDEX events_by_time ON events (project_id, itime);
-- NULLs are distinct: events without a random_id are never deduplicated.
CREATE UNIQUE INDEX events_random_id ON events (project_id, random_id);
