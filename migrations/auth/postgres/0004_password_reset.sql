-- Switchboard auth schema, version 4 (PostgreSQL): password-reset tokens. (Version 3 is the job
-- queue's tables.)

-- A token is stored only as the SHA-256 of its string; the string itself leaves in the mail.
CREATE TABLE auth.password_resets (
    hash       BYTEA PRIMARY KEY,                -- SHA-256 of the token string
    user_id    TEXT NOT NULL REFERENCES auth.users (id),
    email      TEXT NOT NULL,                    -- the requested address, trimmed and lower-cased
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT                            -- NULL until spent (or voided by another reset)
);

-- The throttle counts the tokens made for an address in the last hour.
CREATE INDEX password_resets_email ON auth.password_resets (email, created_at);
CREATE INDEX password_resets_user ON auth.password_resets (user_id);
