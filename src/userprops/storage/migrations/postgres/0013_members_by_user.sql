-- The memberships a write checks, read by user: one range of segment_members_by_user
-- (project, EUID, segment) per user, instead of one probe of the primary key (project,
-- segment, EUID) per user and segment, each on a page of its own. A set touching six
-- saved segments read six pages of the primary key for them; now one. Same signature and
-- rows as 0011's; only the members part changes. The subquery on (project, EUID) alone
-- cannot use the primary key, which leads with the segment; OFFSET 0 keeps the segment
-- filter out of it.
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
        SELECT k.kp, k.ke, NULL::text, 'member'::text, x.sid::text, NULL::bigint
        FROM (SELECT (r->>0)::bigint AS kp, (r->>1)::bigint AS ke,
                     array_agg((r->>2)::bigint) AS sids
              FROM jsonb_array_elements(members) AS r GROUP BY 1, 2) AS k,
        LATERAL (SELECT segment_members.segment_id AS sid FROM segment_members
                 WHERE segment_members.project_id = k.kp AND segment_members.euid = k.ke
                 OFFSET 0) AS x
        WHERE x.sid = ANY(k.sids);
END
$$;
