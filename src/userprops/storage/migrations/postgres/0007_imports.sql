-- Where each `userprops import` of a project stands: the same table as
-- sqlite/0005_imports.sql.
CREATE TABLE import_checkpoints (
    project_id bigint NOT NULL REFERENCES projects (id),
    name       text NOT NULL,
    lines_done bigint NOT NULL,
    digest     text NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (project_id, name)
);
