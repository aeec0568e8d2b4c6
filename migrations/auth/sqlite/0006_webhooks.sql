-- Switchboard auth schema, version 6 (SQLite): webhook endpoints. The auth store is the control
-- plane of webhooks: hubs learn the endpoints from it (in-process, or from the auth node).

CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,            -- [a-z0-9_-]{1,64}
    url             TEXT NOT NULL,               -- http(s), at most 2048 bytes, checked by the URL policy
    secret          TEXT NOT NULL,               -- the HMAC key (16 to 256 bytes)
    events          TEXT NOT NULL,               -- comma-separated wire names (message.created,...)
    enabled         INTEGER NOT NULL DEFAULT 1,  -- 0 once a receiver answered 410 or an admin disabled it
    disabled_reason TEXT,                        -- why it is disabled (NULL while enabled)
    source          TEXT NOT NULL CHECK (source IN ('config', 'api')),
    created_ts      INTEGER NOT NULL,            -- ms since the Unix epoch
    updated_ts      INTEGER NOT NULL
);
