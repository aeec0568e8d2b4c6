-- Switchboard hub schema, version 4 (SQLite): the job queue (webhook deliveries of the hub's
-- events, enqueued in the transaction that causes the event). The tables are switchboard-jobs'
-- (jobs/sql/sqlite.sql), copied as they were at this version; a test checks that they still agree.

-- The job queue (switchboard-jobs), SQLite. Times are milliseconds since the Unix epoch.
-- A component that causes jobs holds these tables in its own database, so that a job is
-- inserted in the same transaction as the change that causes it.

CREATE TABLE jobs (
    id           TEXT    PRIMARY KEY NOT NULL,   -- uuid v7: queue order, and the delivery id
    kind         TEXT    NOT NULL,               -- which handler runs it
    payload      TEXT    NOT NULL,               -- JSON
    lane         TEXT,                           -- jobs of one lane run one at a time, in id order
    state        TEXT    NOT NULL CHECK (state IN ('ready', 'running', 'done', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,     -- claims so far
    max_attempts INTEGER NOT NULL,
    run_at       INTEGER NOT NULL,               -- not claimed before (backoff)
    lease_until  INTEGER,                        -- running: claimable again after this
    leased_by    TEXT,                           -- running: the worker holding the lease
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER                         -- done or dead
) STRICT;

-- Claiming: due jobs.
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('ready', 'running');
-- Claiming: the head of each lane.
CREATE INDEX jobs_lane ON jobs (lane, id) WHERE state IN ('ready', 'running');
-- The admin list, and pruning finished jobs.
CREATE INDEX jobs_by_state ON jobs (state, id);

-- When each lane's next job may start: set when a job of the lane finishes, to its finish time
-- plus the lane's spacing, so the spacing holds for every node.
CREATE TABLE job_lanes (
    lane    TEXT    PRIMARY KEY NOT NULL,
    next_at INTEGER NOT NULL
) STRICT;
