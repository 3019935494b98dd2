-- The jobs of custom actions (CodePipeline's job API): each hands one run
-- of a custom action to an external job worker. An action has one open job
-- at a time; a job that succeeds with a continuationToken is followed by
-- another that carries it. The action's lease is the jobs' deadline.
CREATE TABLE jobs (
    job_id UUID PRIMARY KEY,
    action_execution_id UUID NOT NULL REFERENCES action_executions (action_execution_id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    category TEXT NOT NULL,
    provider TEXT NOT NULL,
    version TEXT NOT NULL,
    -- The resolved value of the type's queryable property (PollForJobs' queryParam).
    query_value TEXT,
    -- Queued, Dispatched, InProgress, Succeeded, Failed, TimedOut.
    status TEXT NOT NULL DEFAULT 'Queued',
    -- Made at each dispatch: AcknowledgeJob names it.
    nonce TEXT,
    dispatched_at TIMESTAMPTZ,
    -- What the job before gave (PutJobSuccessResult's continuationToken).
    continuation_token TEXT,
    -- The credential in the job's artifact URLs; made at each dispatch.
    artifact_token TEXT,
    -- Output artifacts the job worker uploaded: [{name, sha256, size}].
    outputs JSONB NOT NULL DEFAULT '[]',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX jobs_waiting ON jobs (account_id, category, provider, version, created_at)
    WHERE status IN ('Queued', 'Dispatched');
CREATE INDEX jobs_of_action ON jobs (action_execution_id);

-- A custom action's run waits for a job worker: no runner claims it.
ALTER TABLE action_executions ADD COLUMN job_worker BOOLEAN NOT NULL DEFAULT false;

-- The run's id in a job worker's system (PutJobSuccessResult's
-- executionDetails.externalExecutionId), shown as CodePipeline shows it.
ALTER TABLE action_executions ADD COLUMN external_execution_id TEXT;

-- A deleted custom type is kept, marked: its version cannot be made again
-- (as in CodePipeline), so that a new definition never unmasks the secret
-- values stored for the old one.
ALTER TABLE custom_action_types ADD COLUMN deleted_at TIMESTAMPTZ;
