-- Switchboard hub schema, SQLite (embedded mode). Applied in order by hub/src/store/migrate.rs;
-- each file runs once, in one transaction, and is recorded in schema_migrations.

CREATE TABLE rooms (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    public      INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('group', 'direct')),
    created_by  TEXT NOT NULL,            -- username of the creator
    created_ts  INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL DEFAULT 0, -- seq of the newest message; the room's seq counter
    last_ts     INTEGER NOT NULL,           -- last activity, for ordering room lists
    direct_key  TEXT UNIQUE                 -- "<user id>:<user id>" (sorted) for direct rooms
);

CREATE TABLE members (
    room_id    TEXT NOT NULL REFERENCES rooms (id),
    user_id    TEXT NOT NULL,
    username   TEXT NOT NULL,
    joined_ts  INTEGER NOT NULL,
    read_seq   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id);

CREATE TABLE messages (
    room_id        TEXT NOT NULL REFERENCES rooms (id),
    seq            INTEGER NOT NULL,
    sender_id      TEXT NOT NULL,
    sender_name    TEXT NOT NULL,
    body           TEXT NOT NULL,
    ts             INTEGER NOT NULL,
    client_msg_id  TEXT,
    edited_ts      INTEGER,
    deleted        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, seq)
);
CREATE UNIQUE INDEX messages_idempotency
    ON messages (room_id, sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
