-- An event definition belongs to a project, as on SQLite (0002 left the foreign key out
-- here only): both backends now refuse one whose project does not exist.
ALTER TABLE event_definitions
    ADD CONSTRAINT event_definitions_project_id_fkey
    FOREIGN KEY (project_id) REFERENCES projects (id);
