-- Switchboard hub schema, PostgreSQL (scaled-out mode): the tables of
-- migrations/hub/sqlite/0001_init.sql with PostgreSQL types, in the database's `public` schema.
-- Applied in order by hub/src/store/postgres/migrate.rs under an advisory lock; each file runs
-- once, in one transaction, and is recorded in schema_migrations.
--
-- Identifiers and usernames use the "C" collation: byte order, as SQLite compares them, so
-- orderings (room lists, member lists) are the same in both stores and independent of the
-- server's locale.

CREATE TABLE rooms (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    public      BOOLEAN NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('group', 'direct')),
    created_by  TEXT COLLATE "C" NOT NULL,   -- username of the creator
    created_ts  BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL DEFAULT 0,   -- seq of the newest message; the room's seq counter
    last_ts     BIGINT NOT NULL,             -- last activity, for ordering room lists
    direct_key  TEXT COLLATE "C" UNIQUE      -- "<user id>:<user id>" (sorted) for direct rooms
);

CREATE TABLE members (
    room_id    TEXT COLLATE "C" NOT NULL REFERENCES rooms (id),
    user_id    TEXT COLLATE "C" NOT NULL,
    username   TEXT COLLATE "C" NOT NULL,
    joined_ts  BIGINT NOT NULL,
    read_seq   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id);

CREATE TABLE messages (
    room_id        TEXT COLLATE "C" NOT NULL REFERENCES rooms (id),
    seq            BIGINT NOT NULL,
    sender_id      TEXT COLLATE "C" NOT NULL,
    sender_name    TEXT NOT NULL,
    body           TEXT NOT NULL,
    ts             BIGINT NOT NULL,
    client_msg_id  TEXT COLLATE "C",
    edited_ts      BIGINT,
    deleted        BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (room_id, seq)
);
CREATE UNIQUE INDEX messages_idempotency
    ON messages (room_id, sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
