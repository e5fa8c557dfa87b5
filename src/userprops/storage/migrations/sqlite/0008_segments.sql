-- Segments (docs/segments.md): what makes conditions fast, and saved segments.
--
-- sort_key: each value as text that sorts like the value (userprops.keys): NUMBER as an
-- order-preserving form of the exact decimal, DATETIME as epoch microseconds in that form,
-- STRING its first 200 characters, BOOL its text; NULL for a LIST, whose elements are
-- rows of user_list_items instead. Filled here for existing values, by the write path
-- from now on. Two indexes serve conditions: by (attribute, key) for equalities, ranges
-- and prefixes, by (attribute, EUID) for probes of one user and scans in EUID order.
ALTER TABLE user_values ADD COLUMN sort_key TEXT;

-- Keys of existing values: STRING and BOOL directly; NUMBER, and DATETIME as its epoch
-- microseconds, first as canonical number text, then that text as a number key.
UPDATE user_values SET sort_key = CASE type
    WHEN 'STRING' THEN substr(value, 1, 200)
    WHEN 'BOOL' THEN value
    WHEN 'NUMBER' THEN value
    WHEN 'DATETIME' THEN CAST(unixepoch(substr(value, 1, 19)) * 1000000
        + CASE WHEN substr(value, 20, 1) = '.' THEN CAST(substr(value, 21, 6) AS INTEGER)
          ELSE 0 END AS TEXT)
    END;
UPDATE user_values SET sort_key = CASE WHEN substr(sort_key, 1, 1) = '-'
    THEN 'N' || char(84 - (CASE WHEN substr(ltrim(sort_key, '-'), 1, 1) = '0' THEN 0 WHEN instr(ltrim(sort_key, '-'), '.') > 0 THEN instr(ltrim(sort_key, '-'), '.') - 1 ELSE length(ltrim(sort_key, '-')) END)) || replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace((CASE WHEN substr(ltrim(sort_key, '-'), 1, 1) = '0' THEN substr(replace(ltrim(sort_key, '-'), '.', ''), 2) ELSE replace(ltrim(sort_key, '-'), '.', '') END), '0', 'a'), '1', 'b'), '2', 'c'), '3', 'd'), '4', 'e'), '5', 'f'), '6', 'g'), '7', 'h'), '8', 'i'), '9', 'j'), 'a', '9'), 'b', '8'), 'c', '7'), 'd', '6'), 'e', '5'), 'f', '4'), 'g', '3'), 'h', '2'), 'i', '1'), 'j', '0') || '~'
    ELSE 'P' || char(65 + (CASE WHEN substr(ltrim(sort_key, '-'), 1, 1) = '0' THEN 0 WHEN instr(ltrim(sort_key, '-'), '.') > 0 THEN instr(ltrim(sort_key, '-'), '.') - 1 ELSE length(ltrim(sort_key, '-')) END)) || (CASE WHEN substr(ltrim(sort_key, '-'), 1, 1) = '0' THEN substr(replace(ltrim(sort_key, '-'), '.', ''), 2) ELSE replace(ltrim(sort_key, '-'), '.', '') END) END
WHERE type IN ('NUMBER', 'DATETIME');

CREATE INDEX user_values_by_key ON user_values (project_id, name, sort_key, euid)
    WHERE sort_key IS NOT NULL;
CREATE INDEX user_values_by_user ON user_values (project_id, name, euid, sort_key)
    WHERE sort_key IS NOT NULL;

-- The elements of every LIST value, one row each.
CREATE TABLE user_list_items (
    project_id INTEGER NOT NULL,
    euid       INTEGER NOT NULL,
    name       TEXT NOT NULL,
    item       TEXT NOT NULL,
    PRIMARY KEY (project_id, euid, name, item)
) WITHOUT ROWID;
INSERT INTO user_list_items (project_id, euid, name, item)
    SELECT v.project_id, v.euid, v.name, j.value FROM user_values v, json_each(v.value) j
    WHERE v.type = 'LIST' ON CONFLICT DO NOTHING;
-- The users holding an element (euid follows, as the rest of the primary key).
CREATE INDEX user_list_items_by_item ON user_list_items (project_id, item, name);

-- Saved segments. Bumped on every change of a project's segments (definition, build
-- progress), so a writer knows when the segments it keeps in memory are stale.
ALTER TABLE projects ADD COLUMN segments_version INTEGER NOT NULL DEFAULT 0;

-- condition: the JSON of userprops.conditions.to_wire (DATETIME in UTC). Members are exact
-- for EUIDs up to built_to, for all when NULL; quiet while the first build runs (it
-- records no change).
CREATE TABLE segments (
    id         INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects (id),
    name       TEXT NOT NULL,
    condition  TEXT NOT NULL,
    built_to   INTEGER,
    quiet      INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE segment_members (
    project_id INTEGER NOT NULL,
    segment_id INTEGER NOT NULL REFERENCES segments (id),
    euid       INTEGER NOT NULL,
    PRIMARY KEY (project_id, segment_id, euid)
) WITHOUT ROWID;
CREATE INDEX segment_members_by_user ON segment_members (project_id, euid, segment_id);
