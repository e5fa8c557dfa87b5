-- Event time: the same column as sqlite/0009_event_time.sql. ts is the epoch milliseconds
-- a value became true, the timestamp of the write that set it (the time of the write when
-- it gave none). Values already stored take the time they were written (updated_at); a
-- row inserted without ts gets 0, older than any write.
ALTER TABLE user_values ADD COLUMN ts bigint NOT NULL DEFAULT 0;
UPDATE user_values SET ts = updated_at;

-- The group-commit reads of 0004 and 0010, now returning each value's ts (the write
-- compares it with the write's own). A function's result type cannot be changed in
-- place: both are made again, the second calling the first.
DROP FUNCTION userprops_lock_segment_values(jsonb, jsonb, jsonb, jsonb);
DROP FUNCTION userprops_lock_values(jsonb, jsonb);

-- users: [[project_id, euid], ...], locked in that order (the caller sorts them by
-- project id, then EUID); pairs: [[project_id, euid, name], ...]. One row per locked user
-- (name NULL), then one per value found. See 0004 for why two statements of a VOLATILE
-- function, and why LATERAL subqueries.
CREATE FUNCTION userprops_lock_values(users jsonb, pairs jsonb)
RETURNS TABLE (p bigint, e bigint, n text, t text, v text, ts bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
        SELECT u.project_id, u.euid, NULL::text, NULL::text, NULL::text, NULL::bigint
        FROM (SELECT (r->>0)::bigint AS kp, (r->>1)::bigint AS ke
              FROM jsonb_array_elements(users) AS r) AS k,
        LATERAL (SELECT users.project_id, users.euid FROM users
                 WHERE users.euid = k.ke AND users.project_id = k.kp FOR UPDATE) AS u;
    RETURN QUERY
        SELECT k.kp, k.ke, k.kn, x.type, x.value, x.ts
        FROM (SELECT (r->>0)::bigint AS kp, (r->>1)::bigint AS ke, r->>2 AS kn
              FROM jsonb_array_elements(pairs) AS r) AS k,
        LATERAL (SELECT user_values.type, user_values.value, user_values.ts FROM user_values
                 WHERE user_values.project_id = k.kp AND user_values.euid = k.ke
                 AND user_values.name = k.kn OFFSET 0) AS x;
END
$$;

-- As in 0010: the shared side of each project's segments lock and its segments version,
-- userprops_lock_values, then the memberships asked for.
CREATE FUNCTION userprops_lock_segment_values(
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
        SELECT k.kp, k.ke, NULL::text, 'member'::text, k.ks::text, NULL::bigint
        FROM (SELECT (r->>0)::bigint AS kp, (r->>1)::bigint AS ke, (r->>2)::bigint AS ks
              FROM jsonb_array_elements(members) AS r) AS k,
        LATERAL (SELECT 1 FROM segment_members
                 WHERE segment_members.project_id = k.kp AND segment_members.segment_id = k.ks
                 AND segment_members.euid = k.ke OFFSET 0) AS x;
END
$$;
