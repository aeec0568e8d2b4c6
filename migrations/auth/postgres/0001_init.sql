-- Switchboard auth schema, version 1 (PostgreSQL). Everything lives in schema `auth`, so the auth
-- tables can share a database with the hub's (schema `public`) without clashing.
--
-- Applied by auth/src/store/postgres.rs inside one transaction that holds the auth migration
-- advisory lock and has already created schema `auth` and `auth.schema_migrations`.
-- Times are seconds since the Unix epoch. Ids are uuid v7 strings, kept as TEXT because they are
-- opaque strings everywhere else (tokens, the hub's tables).

CREATE TABLE auth.users (
    id            TEXT   PRIMARY KEY,               -- uuid v7
    username      TEXT   NOT NULL UNIQUE,           -- 3-32 of [a-z0-9_.-]; stays reserved after deletion
    email         TEXT   NOT NULL,                  -- '' once the user is deleted
    password_hash TEXT   NOT NULL,                  -- argon2id PHC string; '' once deleted
    role          TEXT   NOT NULL CHECK (role IN ('user', 'admin')),
    created_at    BIGINT NOT NULL,
    deleted_at    BIGINT                            -- NULL while the account exists
);

-- One row per login. A session is dead once revoked_at is set or its newest refresh token expires.
-- Rows outlive their user's deletion (the user row is a tombstone), so revocations still load at start.
CREATE TABLE auth.sessions (
    id         TEXT   PRIMARY KEY,                  -- uuid v7, the `sid` claim
    user_id    TEXT   NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    access_exp BIGINT NOT NULL,                     -- latest `exp` of any access token issued for it
    revoked_at BIGINT                               -- NULL while live
);

-- Loading the revoked sessions whose access tokens may still be alive, at start.
CREATE INDEX sessions_revoked ON auth.sessions (access_exp) WHERE revoked_at IS NOT NULL;
-- Revoking every session of a user (account deletion).
CREATE INDEX sessions_by_user ON auth.sessions (user_id);

-- Refresh tokens, stored only as SHA-256 hashes. A spent token (used_at set) is kept until it
-- expires so that presenting it again is recognised as reuse.
CREATE TABLE auth.refresh_tokens (
    hash       BYTEA  PRIMARY KEY CHECK (length(hash) = 32), -- sha256 of the whole token string
    session_id TEXT   NOT NULL REFERENCES auth.sessions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT                               -- NULL until spent by a refresh
);

CREATE INDEX refresh_tokens_session ON auth.refresh_tokens (session_id);
