-- The coordinator's state: agents and their keys, operator keys, bundles,
-- work items and reports. Applied at start-up by Ferry's own engine.

CREATE TABLE operator_keys (
    key_id      TEXT PRIMARY KEY,
    public_key  BYTEA NOT NULL UNIQUE CHECK (length(public_key) = 32),
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('read', 'operator', 'approver')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    agent_id        TEXT PRIMARY KEY,
    public_key      BYTEA NOT NULL UNIQUE CHECK (length(public_key) = 32),
    key_id          TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'accepted', 'rejected', 'revoked')),
    environment     TEXT NOT NULL,
    project         TEXT NOT NULL DEFAULT '',
    version         TEXT NOT NULL DEFAULT '',
    server_version  TEXT NOT NULL DEFAULT '',
    address         TEXT NOT NULL DEFAULT '',
    first_seen      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen       TIMESTAMPTZ NOT NULL DEFAULT now(),
    state_changed   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_bundle_sequence BIGINT NOT NULL DEFAULT 0,
    last_bundle_digest   TEXT NOT NULL DEFAULT '',
    last_schema_digest   TEXT NOT NULL DEFAULT '',
    last_outcome         TEXT NOT NULL DEFAULT ''
);

CREATE TABLE bundles (
    digest      TEXT PRIMARY KEY,          -- hex SHA-256 of the file
    data        BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE work_items (
    work_id       TEXT PRIMARY KEY,
    agent_id      TEXT NOT NULL REFERENCES agents (agent_id),
    kind          TEXT NOT NULL CHECK (kind IN ('apply', 'status')),
    bundle_digest TEXT REFERENCES bundles (digest),
    rollout_id    TEXT NOT NULL DEFAULT '',
    dispatch_id   TEXT NOT NULL DEFAULT '',  -- the client's, for retries
    approvals     BYTEA NOT NULL DEFAULT '',   -- a WorkItem holding only approvals
    state         TEXT NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'delivered', 'done', 'failed')),
    deliveries    INTEGER NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at  TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ
);
CREATE INDEX work_items_open ON work_items (agent_id, created_at)
    WHERE state IN ('queued', 'delivered');
CREATE INDEX work_items_dispatch ON work_items (dispatch_id)
    WHERE dispatch_id <> '';

CREATE TABLE reports (
    report_id       TEXT PRIMARY KEY,
    work_id         TEXT NOT NULL UNIQUE REFERENCES work_items (work_id),
    agent_id        TEXT NOT NULL REFERENCES agents (agent_id),
    outcome         TEXT NOT NULL,
    detail          TEXT NOT NULL DEFAULT '',
    exit_code       INTEGER NOT NULL DEFAULT 0,
    started_at      TIMESTAMPTZ,
    duration_us     BIGINT NOT NULL DEFAULT 0,
    bundle_sequence BIGINT NOT NULL DEFAULT 0,
    schema_digest   TEXT NOT NULL DEFAULT '',
    payload         BYTEA NOT NULL,        -- the ReportRequest as received
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE audit (
    id      BIGSERIAL PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor   TEXT NOT NULL,                 -- key id
    action  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
