-- Switchboard hub schema, version 5 (PostgreSQL): the job queue (webhook deliveries of the hub's
-- events, enqueued in the transaction that causes the event). The tables are switchboard-jobs'
-- (jobs/sql/postgres.sql with schema `public`), copied as they were at this version; a test checks
-- that they still agree.

-- The ids of the hub's delivery jobs, zero-padded: taken while the event's room row is locked,
-- so a room's events are numbered (and, lane by lane, delivered) in commit order, whichever
-- node caused them (hub/src/store/postgres/mod.rs, `enqueue_events`).
CREATE SEQUENCE public.hub_event_ids;

-- The job queue (switchboard-jobs), PostgreSQL, in schema public. Times are milliseconds since
-- the Unix epoch. A component that causes jobs holds these tables in its own schema, so that a
-- job is inserted in the same transaction as the change that causes it. Ids and lanes compare
-- byte-wise (COLLATE "C"): their order is the queue order.

CREATE TABLE public.jobs (
    id           TEXT COLLATE "C" PRIMARY KEY,     -- uuid v7: queue order, and the delivery id
    kind         TEXT    NOT NULL,                 -- which handler runs it
    payload      TEXT    NOT NULL,                 -- JSON
    lane         TEXT COLLATE "C",                 -- jobs of one lane run one at a time, in id order
    state        TEXT    NOT NULL CHECK (state IN ('ready', 'running', 'done', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,       -- claims so far
    max_attempts INTEGER NOT NULL,
    run_at       BIGINT  NOT NULL,                 -- not claimed before (backoff)
    lease_until  BIGINT,                           -- running: claimable again after this
    leased_by    TEXT,                             -- running: the worker holding the lease
    last_error   TEXT,
    created_at   BIGINT  NOT NULL,
    finished_at  BIGINT                            -- done or dead
);

-- Claiming: due jobs.
CREATE INDEX jobs_due ON public.jobs (run_at) WHERE state IN ('ready', 'running');
-- Claiming: the head of each lane.
CREATE INDEX jobs_lane ON public.jobs (lane, id) WHERE state IN ('ready', 'running');
-- The admin list, and pruning finished jobs.
CREATE INDEX jobs_by_state ON public.jobs (state, id);

-- When each lane's next job may start: set when a job of the lane finishes, to its finish time
-- plus the lane's spacing, so the spacing holds for every node.
CREATE TABLE public.job_lanes (
    lane    TEXT COLLATE "C" PRIMARY KEY,
    next_at BIGINT NOT NULL
);
