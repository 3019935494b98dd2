-- Executions: each revision's run through a pipeline, its stages' and
-- actions' runs, and the outbox that hands messages to RabbitMQ.
CREATE TABLE pipeline_executions (
    execution_id UUID PRIMARY KEY,
    pipeline_id UUID NOT NULL REFERENCES pipelines (pipeline_id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    pipeline_version INTEGER NOT NULL,
    -- Creation order within the pipeline: QUEUED runs in it, SUPERSEDED
    -- lets the newest win.
    seq BIGSERIAL NOT NULL,
    status TEXT NOT NULL,
    status_summary TEXT,
    -- {triggerType, triggerDetail}
    trigger JSONB NOT NULL,
    -- [{name, resolvedValue}]
    variables JSONB NOT NULL DEFAULT '[]'::jsonb,
    -- [{actionName, revisionId, revisionSummary}]
    source_revisions JSONB NOT NULL DEFAULT '[]'::jsonb,
    client_request_token TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (pipeline_id, client_request_token)
);
CREATE INDEX pipeline_executions_by_pipeline ON pipeline_executions (pipeline_id, seq DESC);
CREATE INDEX pipeline_executions_running ON pipeline_executions (pipeline_id) WHERE status IN ('InProgress', 'Stopping');

CREATE TABLE stage_executions (
    execution_id UUID NOT NULL REFERENCES pipeline_executions (execution_id) ON DELETE CASCADE,
    stage_index INTEGER NOT NULL,
    stage_name TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (execution_id, stage_index)
);

CREATE TABLE action_executions (
    action_execution_id UUID PRIMARY KEY,
    execution_id UUID NOT NULL REFERENCES pipeline_executions (execution_id) ON DELETE CASCADE,
    pipeline_id UUID NOT NULL,
    stage_index INTEGER NOT NULL,
    stage_name TEXT NOT NULL,
    action_index INTEGER NOT NULL,
    action_name TEXT NOT NULL,
    -- The stage attempt it belongs to (a retry makes new rows).
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    summary TEXT,
    error_code TEXT,
    error_message TEXT,
    external_url TEXT,
    -- An approval's token.
    token UUID,
    -- Deliveries of its job that claimed it, and how long the current one holds it.
    job_attempt INTEGER NOT NULL DEFAULT 0,
    lease_until TIMESTAMPTZ,
    input_artifacts JSONB NOT NULL DEFAULT '[]'::jsonb,
    output_artifacts JSONB NOT NULL DEFAULT '[]'::jsonb,
    output_variables JSONB NOT NULL DEFAULT '{}'::jsonb,
    resolved_configuration JSONB NOT NULL DEFAULT '{}'::jsonb,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    UNIQUE (execution_id, stage_index, action_index, attempt)
);
CREATE INDEX action_executions_by_pipeline ON action_executions (pipeline_id, started_at DESC);
CREATE INDEX action_executions_leased ON action_executions (lease_until) WHERE status = 'InProgress';

CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    routing_key TEXT NOT NULL,
    payload JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
