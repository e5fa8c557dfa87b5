-- Where each `userprops import` of a project stands (docs/bulk.md): the lines committed
-- and a digest of their bytes, written in the transaction of each chunk, so an
-- interrupted import resumes after the last committed line and never applies one twice.
CREATE TABLE import_checkpoints (
    project_id INTEGER NOT NULL REFERENCES projects (id),
    name       TEXT NOT NULL,
    lines_done INTEGER NOT NULL,
    digest     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, name)
);
