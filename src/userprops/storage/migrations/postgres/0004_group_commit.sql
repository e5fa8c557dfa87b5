-- The group-commit read (PostgresTransaction.lock_values) as one statement: lock the
-- users of a batch, then read the values it wants.
--
-- users: [[project_id, euid], ...], locked in that order (the caller sorts them by
-- project id, then EUID);
-- pairs: [[project_id, euid, name], ...]. One row per locked user (name NULL), then one
-- per value found. The two queries are two statements of a VOLATILE function, so under
-- READ COMMITTED the read takes its snapshot after every lock is granted and sees what the
-- previous holders of those locks committed (one plain statement doing both would read
-- from a snapshot taken before it waited).
--
-- Each key is looked up in a LATERAL subquery the planner cannot flatten into a join, so
-- the only plan is a primary-key probe per key, whatever the planner believes of the
-- tables (docs/backends.md, "Statement plans").
CREATE FUNCTION userprops_lock_values(users jsonb, pairs jsonb)
RETURNS TABLE (p bigint, e bigint, n text, t text, v text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
        SELECT u.project_id, u.euid, NULL::text, NULL::text, NULL::text
        FROM (SELECT (r->>0)::bigint AS kp, (r->>1)::bigint AS ke
              FROM jsonb_array_elements(users) AS r) AS k,
        LATERAL (SELECT users.project_id, users.euid FROM users
                 WHERE users.euid = k.ke AND users.project_id = k.kp FOR UPDATE) AS u;
    RETURN QUERY
        SELECT k.kp, k.ke, k.kn, x.type, x.value
        FROM (SELECT (r->>0)::bigint AS kp, (r->>1)::bigint AS ke, r->>2 AS kn
              FROM jsonb_array_elements(pairs) AS r) AS k,
        LATERAL (SELECT user_values.type, user_values.value FROM user_values
                 WHERE user_values.project_id = k.kp AND user_values.euid = k.ke
                 AND user_values.name = k.kn OFFSET 0) AS x;
END
$$;

-- Room on every page for the new version of an updated value (a HOT update: no new
-- index entry). Pages written from now on keep 10 % free.
ALTER TABLE user_values SET (fillfactor = 90);
