-- API keys of the server API (`/v1/server/*`): the table of
-- migrations/hub/sqlite/0003_api_keys.sql with PostgreSQL types.
CREATE TABLE api_keys (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT COLLATE "C" NOT NULL UNIQUE,
    hash          BYTEA NOT NULL,
    created_ts    BIGINT NOT NULL,
    last_used_ts  BIGINT             -- updated at most once a minute per key
);

-- The server API adds members by username (`POST /v1/server/rooms/{id}/members`); with a remote
-- auth node the hub finds the account among the users it has seen in rooms (`Store::known_user`).
CREATE INDEX members_by_username ON members (username);
