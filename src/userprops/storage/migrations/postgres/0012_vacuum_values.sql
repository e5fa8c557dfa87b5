-- Segment queries read user_values' indexes alone (index-only scans) only on pages the
-- visibility map marks all-visible; a page a write changed since the last vacuum sends
-- every entry on it back to the table. After 90,000 random writes on 1,000,000 users a
-- two-leaf count went from 130 ms to 360-600 ms that way (86,000 heap fetches;
-- docs/performance.md). PostgreSQL's default waits for 20 % of the table to change
-- before it vacuums (4,000,000 rows of 20,000,000): here 1 % (200,000), and 1 % of new
-- rows, so the map keeps up with a steady stream of writes.
ALTER TABLE user_values SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02
);
ALTER TABLE user_list_items SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.01
);
ALTER TABLE segment_members SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_insert_scale_factor = 0.01
);
