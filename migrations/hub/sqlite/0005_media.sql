-- Media (avatars, custom emoticons, attachments): who refers to which blob. The blobs
-- themselves are in the blob store (files under `--data-dir`/media in this configuration),
-- named by the SHA-256 of their bytes (64 lowercase hex). A blob no row here names is garbage
-- once its grace period has passed (`hub/src/media/gc.rs`). Times are Unix milliseconds.

-- An uploaded avatar, re-encoded at two sizes. No row: the generated identicon.
CREATE TABLE avatars (
    user_id    TEXT PRIMARY KEY,
    small      TEXT NOT NULL,          -- the 64 px PNG
    large      TEXT NOT NULL,          -- the 256 px PNG
    updated_ts INTEGER NOT NULL
);
CREATE INDEX avatars_small ON avatars (small);
CREATE INDEX avatars_large ON avatars (large);

-- Custom emoticons: `:shortcode:` in a message body renders as the image.
CREATE TABLE emoticons (
    shortcode  TEXT PRIMARY KEY,       -- [a-z0-9_]{2,32}
    hash       TEXT NOT NULL,          -- the re-encoded PNG
    created_by TEXT NOT NULL,          -- username
    created_ts INTEGER NOT NULL
);
CREATE INDEX emoticons_hash ON emoticons (hash);

-- Files uploaded to a room. `seq` is the message that carries it, set in that message's append
-- transaction; NULL until sent. An attachment whose message is deleted or gone, or that was
-- never sent within the grace period, is removed by the sweep.
CREATE TABLE attachments (
    id           TEXT PRIMARY KEY,     -- random (128 bits), never sequential
    room         TEXT NOT NULL,
    uploader     TEXT NOT NULL,        -- user id
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,        -- sniffed from the bytes
    size         INTEGER NOT NULL,
    hash         TEXT NOT NULL,
    thumb        TEXT,                 -- a PNG thumbnail (images)
    created_ts   INTEGER NOT NULL,
    seq          INTEGER
);
CREATE INDEX attachments_message ON attachments (room, seq);
CREATE INDEX attachments_hash ON attachments (hash);
CREATE INDEX attachments_thumb ON attachments (thumb);
CREATE INDEX attachments_unsent ON attachments (created_ts) WHERE seq IS NULL;
-- What a user uploaded lately (`--upload-bytes-per-day`).
CREATE INDEX attachments_uploader ON attachments (uploader, created_ts);
