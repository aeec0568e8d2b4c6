-- The blob store (switchboard-media), PostgreSQL, in schema {schema}. Blobs are immutable and
-- named by the SHA-256 of their bytes (64 lowercase hex characters); their bytes are cut into
-- chunks of 256 KiB, so a read or a range touches only the chunks it needs. Times are
-- milliseconds since the Unix epoch.

CREATE TABLE {schema}.blobs (
    hash       TEXT COLLATE "C" PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),
    size       BIGINT NOT NULL CHECK (size >= 0),
    created_ts BIGINT NOT NULL                     -- the latest put (a GC's grace period)
);

-- The garbage-collection sweep: the oldest blobs first.
CREATE INDEX blobs_created ON {schema}.blobs (created_ts);

-- Chunk n holds bytes [n * 262144, (n + 1) * 262144) of the blob. Committed in the same
-- transaction as the blob's row. `hash` may be an upload's staging key ('upload:<uuid>')
-- inside the transaction of a streamed put, renamed to the real hash before it commits, so no
-- foreign key and no hex check here.
CREATE TABLE {schema}.blob_chunks (
    hash  TEXT COLLATE "C" NOT NULL,
    n     INTEGER NOT NULL CHECK (n >= 0),
    bytes BYTEA   NOT NULL,
    PRIMARY KEY (hash, n)
);

-- Stored out of line and uncompressed (media is compressed already): `substring` of a range
-- then reads only the pages it needs instead of decompressing the whole chunk.
ALTER TABLE {schema}.blob_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;
