-- Switchboard auth schema, version 1 (SQLite). Times are seconds since the Unix epoch.

CREATE TABLE users (
    id            TEXT    PRIMARY KEY NOT NULL,  -- uuid v7
    username      TEXT    NOT NULL UNIQUE,       -- 3-32 of [a-z0-9_.-]
    email         TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,              -- argon2id PHC string
    role          TEXT    NOT NULL,              -- 'user' or 'admin'
    created_at    INTEGER NOT NULL
) STRICT;

-- One row per login. A session is dead once revoked_at is set or its newest refresh token expires.
CREATE TABLE sessions (
    id         TEXT    PRIMARY KEY NOT NULL,     -- uuid v7, the `sid` claim
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    access_exp INTEGER NOT NULL,                 -- latest `exp` of any access token issued for it
    revoked_at INTEGER                           -- NULL while live
) STRICT;

-- Loading the revoked sessions whose access tokens may still be alive, at start.
CREATE INDEX sessions_revoked ON sessions (access_exp) WHERE revoked_at IS NOT NULL;

-- Refresh tokens, stored only as SHA-256 hashes. A spent token (used_at set) is kept until it
-- expires so that presenting it again is recognised as reuse.
CREATE TABLE refresh_tokens (
    hash       BLOB    PRIMARY KEY NOT NULL,     -- sha256 of the whole token string
    session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER                           -- NULL until spent by a refresh
) STRICT;

CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
