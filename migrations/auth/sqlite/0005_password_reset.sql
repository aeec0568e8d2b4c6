-- Switchboard auth schema, version 5 (SQLite): password-reset tokens. (Version 4 is the job
-- queue's tables.)

-- A token is stored only as the SHA-256 of its string; the string itself leaves in the mail.
CREATE TABLE password_resets (
    hash       BLOB PRIMARY KEY,                 -- SHA-256 of the token string
    user_id    TEXT NOT NULL REFERENCES users (id),
    email      TEXT NOT NULL,                    -- the requested address, trimmed and lower-cased
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER                           -- NULL until spent (or voided by another reset)
);

-- The throttle counts the tokens made for an address in the last hour.
CREATE INDEX password_resets_email ON password_resets (email, created_at);
CREATE INDEX password_resets_user ON password_resets (user_id);
