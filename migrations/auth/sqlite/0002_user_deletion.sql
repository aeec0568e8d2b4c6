-- Switchboard auth schema, version 2 (SQLite): account deletion.
-- A deleted user's row stays as a tombstone (username reserved, email and password hash wiped)
-- so that its sessions, and with them the revocations, survive the deletion and a restart.

ALTER TABLE users ADD COLUMN deleted_at INTEGER;  -- NULL while the account exists

-- Revoking every session of a user.
CREATE INDEX sessions_by_user ON sessions (user_id);
