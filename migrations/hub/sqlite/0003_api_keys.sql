-- API keys of the server API (`/v1/server/*`), made and revoked with `switchboard-hub api-key`.
-- A key is `sbk_<id>_<secret>`: `id` (16 hex digits) is not secret and finds the row; only the
-- SHA-256 of the whole key is stored, compared in constant time (hub/src/apikeys.rs). Revoking
-- deletes the row, so every node refuses the key at its next request.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    hash          BLOB NOT NULL,
    created_ts    INTEGER NOT NULL,
    last_used_ts  INTEGER            -- updated at most once a minute per key
);

-- The server API adds members by username (`POST /v1/server/rooms/{id}/members`); with a remote
-- auth node the hub finds the account among the users it has seen in rooms (`Store::known_user`).
CREATE INDEX members_by_username ON members (username);
