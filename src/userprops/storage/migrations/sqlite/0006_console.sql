-- The admin console (docs/console.md): operators (people, not API data sources) with
-- their argon2 password hashes, their sessions, the key that signs the console's cookies,
-- and the audit log of every administrative action.
CREATE TABLE operators (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

-- id: the SHA-256 of the session's token (the cookie carries the token itself, signed).
-- A row lives until logout, its expiry, or its operator's deletion or new password.
CREATE TABLE console_sessions (
    id          TEXT PRIMARY KEY,
    operator_id INTEGER NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX console_sessions_by_operator ON console_sessions (operator_id);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);

-- Server keys made once, on first use, so every server process on the database agrees.
CREATE TABLE console_keys (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;

-- actor: an operator's name, or `cli`; details: a JSON object (never a secret).
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    details TEXT NOT NULL
);
