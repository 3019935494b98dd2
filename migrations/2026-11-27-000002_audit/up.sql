-- The audit log: one row per API call per account it concerns, hash-chained
-- per account (seq, prev_hash, hash).

CREATE TABLE audit_chain_heads (
    account_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TABLE audit_events (
    event_id UUID PRIMARY KEY,
    -- The account whose log holds the event ('anonymous' for calls that name none).
    account_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    event_time TIMESTAMPTZ NOT NULL,
    event_source TEXT NOT NULL,
    event_name TEXT NOT NULL,
    read_only BOOLEAN NOT NULL,
    user_identity JSONB NOT NULL,
    principal_arn TEXT,
    user_name TEXT,
    source_ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    request_parameters JSONB,
    response_elements JSONB,
    error_code TEXT,
    error_message TEXT,
    http_status INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    resources JSONB NOT NULL DEFAULT '[]'::jsonb,
    -- Every resource ARN and each of its /-prefixes, so that a pipeline's
    -- ARN also finds its stages' and actions' events.
    resource_keys TEXT[] NOT NULL DEFAULT '{}',
    shared_event_id UUID,
    UNIQUE (account_id, seq)
);
CREATE INDEX audit_events_time ON audit_events (account_id, event_time DESC, event_id DESC);
CREATE INDEX audit_events_name ON audit_events (account_id, event_name, event_time DESC);
CREATE INDEX audit_events_principal ON audit_events (account_id, principal_arn, event_time DESC);
CREATE INDEX audit_events_user ON audit_events (account_id, user_name, event_time DESC);
CREATE INDEX audit_events_error ON audit_events (account_id, error_code, event_time DESC);
CREATE INDEX audit_events_resources ON audit_events USING GIN (resource_keys);
