-- Contacts, event definitions, event property types, events, and the per-project event
-- retention (PostgreSQL; same tables as sqlite/0002_contacts_events.sql).
-- Every key and unique constraint starts with project_id, so on Citus the user-data tables
-- distribute by project_id (unique constraints must hold the distribution column), and
-- every statement on them is keyed by (project_id, euid) or (project_id, ...).
ALTER TABLE projects ADD COLUMN event_retention_days INTEGER
    CHECK (event_retention_days IS NULL OR event_retention_days > 0);

-- One value of a contact name belongs to at most one user of a project.
CREATE TABLE contacts (
    project_id BIGINT NOT NULL,
    euid       BIGINT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, euid, name),
    UNIQUE (project_id, name, value)
);

CREATE TABLE event_definitions (
    project_id BIGINT NOT NULL,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (project_id, name)
);

-- The type of an event property is fixed per (project, event, property).
CREATE TABLE event_properties (
    project_id BIGINT NOT NULL,
    event_name TEXT NOT NULL,
    name       TEXT NOT NULL,
    type       TEXT NOT NULL CHECK (type IN ('STRING', 'NUMBER', 'BOOL', 'DATETIME', 'LIST')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (project_id, event_name, name)
);

-- properties: JSON text of name -> [TYPE, stored text], the same text as on SQLite.
CREATE TABLE events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY,
    project_id  BIGINT NOT NULL,
    euid        BIGINT NOT NULL,
    event_name  TEXT NOT NULL,
    itime       BIGINT NOT NULL,
    random_id   TEXT,
    app_key     TEXT,
    properties  TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, euid, id)
);

CREATE INDEX events_by_user ON events (project_id, euid, itime, id);
CREATE INDEX events_by_time ON events (project_id, itime);
-- NULLs are distinct: events without a random_id are never deduplicated.
CREATE UNIQUE INDEX events_random_id ON events (project_id, random_id);
