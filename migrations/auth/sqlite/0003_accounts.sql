-- Switchboard auth schema, version 3 (SQLite): account administration and session lists.

ALTER TABLE users ADD COLUMN last_login_at INTEGER;   -- NULL until the first login

ALTER TABLE sessions ADD COLUMN user_agent TEXT;       -- User-Agent of the login, cut to 256 bytes
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER;  -- last login or refresh; NULL: created_at

-- Admin user list pages (keyset on id) skip tombstones.
CREATE INDEX users_live ON users (id) WHERE deleted_at IS NULL;
