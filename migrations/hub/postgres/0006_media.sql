-- The blob store (switchboard-media), PostgreSQL, in schema public. Blobs are immutable and
-- named by the SHA-256 of their bytes (64 lowercase hex characters); their bytes are cut into
-- chunks of 256 KiB, so a read or a range touches only the chunks it needs. Times are
-- milliseconds since the Unix epoch.

CREATE TABLE public.blobs (
    hash       TEXT COLLATE "C" PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),
    size       BIGINT NOT NULL CHECK (size >= 0),
    created_ts BIGINT NOT NULL                     -- the latest put (a GC's grace period)
);

-- The garbage-collection sweep: the oldest blobs first.
CREATE INDEX blobs_created ON public.blobs (created_ts);

-- Chunk n holds bytes [n * 262144, (n + 1) * 262144) of the blob. Committed in the same
-- transaction as the blob's row. `hash` may be an upload's staging key ('upload:<uuid>')
-- inside the transaction of a streamed put, renamed to the real hash before it commits, so no
-- foreign key and no hex check here.
CREATE TABLE public.blob_chunks (
    hash  TEXT COLLATE "C" NOT NULL,
    n     INTEGER NOT NULL CHECK (n >= 0),
    bytes BYTEA   NOT NULL,
    PRIMARY KEY (hash, n)
);

-- Stored out of line and uncompressed (media is compressed already): `substring` of a range
-- then reads only the pages it needs instead of decompressing the whole chunk.
ALTER TABLE public.blob_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;

-- Media (avatars, custom emoticons, attachments): who refers to which blob (the tables above).
-- A blob no row here names is garbage once its grace period has passed
-- (`hub/src/media/gc.rs`). Times are Unix milliseconds.

-- An uploaded avatar, re-encoded at two sizes. No row: the generated identicon.
CREATE TABLE avatars (
    user_id    TEXT PRIMARY KEY,
    small      TEXT COLLATE "C" NOT NULL,     -- the 64 px PNG
    large      TEXT COLLATE "C" NOT NULL,     -- the 256 px PNG
    updated_ts BIGINT NOT NULL
);
CREATE INDEX avatars_small ON avatars (small);
CREATE INDEX avatars_large ON avatars (large);

-- Custom emoticons: `:shortcode:` in a message body renders as the image.
CREATE TABLE emoticons (
    shortcode  TEXT COLLATE "C" PRIMARY KEY CHECK (shortcode ~ '^[a-z0-9_]{2,32}$'),
    hash       TEXT COLLATE "C" NOT NULL,
    created_by TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);
CREATE INDEX emoticons_hash ON emoticons (hash);

-- Files uploaded to a room. `seq` is the message that carries it, set in that message's append
-- transaction; NULL until sent. An attachment whose message is deleted or gone, or that was
-- never sent within the grace period, is removed by the sweep.
CREATE TABLE attachments (
    id           TEXT COLLATE "C" PRIMARY KEY,  -- random (128 bits), never sequential
    room         TEXT COLLATE "C" NOT NULL,
    uploader     TEXT NOT NULL,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    hash         TEXT COLLATE "C" NOT NULL,
    thumb        TEXT COLLATE "C",
    created_ts   BIGINT NOT NULL,
    seq          BIGINT
);
CREATE INDEX attachments_message ON attachments (room, seq);
CREATE INDEX attachments_hash ON attachments (hash);
CREATE INDEX attachments_thumb ON attachments (thumb);
CREATE INDEX attachments_unsent ON attachments (created_ts) WHERE seq IS NULL;
-- What a user uploaded lately (`--upload-bytes-per-day`).
CREATE INDEX attachments_uploader ON attachments (uploader, created_ts);
