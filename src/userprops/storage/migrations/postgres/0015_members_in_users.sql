-- Each user's memberships of saved segments, also kept in the users row (segment_ids,
-- ascending, NULL for none), which a write locks anyway. The read a write makes of the
-- memberships it checks is then a probe of a row it holds, and a move updates that row
-- on a page the lock already dirtied (fillfactor 75 leaves room for the new version on
-- the same page, so no index changes: a HOT update), where segment_members_by_user cost
-- an index entry on a page of its own for every move, as much as a value's change.
-- segment_members keeps its primary key (project, segment, EUID), which lists members.
-- PostgresTransaction.write_members and load_rows keep both in step
-- (docs/backends.md, "Segment membership on PostgreSQL").
ALTER TABLE users ADD COLUMN segment_ids bigint[];
ALTER TABLE users SET (fillfactor = 75);
UPDATE users AS u SET segment_ids = m.ids
FROM (SELECT project_id, euid, array_agg(segment_id ORDER BY segment_id) AS ids
      FROM segment_members GROUP BY project_id, euid) AS m
WHERE u.euid = m.euid AND u.project_id = m.project_id;
DROP INDEX segment_members_by_user;

-- As in 0013 (same arguments and rows), but members is now [[project_id, euid], ...]:
-- the users whose memberships the write checks, each read from its users row by primary
-- key, all of its segment ids as one row (the caller keeps those it asked about). A
-- statement after the locks, so with a snapshot that sees each locked row's last
-- committed version.
CREATE OR REPLACE FUNCTION userprops_lock_segment_values(
    users jsonb, pairs jsonb, projects jsonb, members jsonb)
RETURNS TABLE (p bigint, e bigint, n text, t text, v text, ts bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1936025972, ((r #>> '{}')::bigint % 2147483647)::int)
        FROM jsonb_array_elements(projects) WITH ORDINALITY AS a(r, i) ORDER BY a.i;
    RETURN QUERY
        SELECT x.id, NULL::bigint, NULL::text, 'version'::text, x.segments_version::text,
               NULL::bigint
        FROM (SELECT (r #>> '{}')::bigint AS kp FROM jsonb_array_elements(projects) AS r) AS k,
        LATERAL (SELECT projects.id, projects.segments_version FROM projects
                 WHERE projects.id = k.kp OFFSET 0) AS x;
    RETURN QUERY SELECT * FROM userprops_lock_values(users, pairs);
    RETURN QUERY
        SELECT k.kp, k.ke, NULL::text, 'member'::text, array_to_string(x.ids, ','),
               NULL::bigint
        FROM (SELECT (r->>0)::bigint AS kp, (r->>1)::bigint AS ke
              FROM jsonb_array_elements(members) AS r) AS k,
        LATERAL (SELECT users.segment_ids AS ids FROM users
                 WHERE users.euid = k.ke AND users.project_id = k.kp OFFSET 0) AS x
        WHERE x.ids IS NOT NULL;
END
$$;
