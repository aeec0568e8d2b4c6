-- Switchboard auth schema, version 2 (PostgreSQL): account administration and session lists.

ALTER TABLE auth.users ADD COLUMN last_login_at BIGINT;   -- NULL until the first login

ALTER TABLE auth.sessions ADD COLUMN user_agent TEXT;       -- User-Agent of the login, cut to 256 bytes
ALTER TABLE auth.sessions ADD COLUMN last_seen_at BIGINT;   -- last login or refresh; NULL: created_at

-- Admin user list pages (keyset on id) skip tombstones; the "C" collation makes the order of
-- ids byte order, as in SQLite, so that uuid v7 ids sort by creation time.
CREATE INDEX users_live ON auth.users (id COLLATE "C") WHERE deleted_at IS NULL;
