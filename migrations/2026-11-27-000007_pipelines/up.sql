-- Pipelines: the current declaration of each, and every version it had.
CREATE TABLE pipelines (
    pipeline_id UUID PRIMARY KEY,
    account_id TEXT NOT NULL,
    -- Case-sensitive, as CodePipeline's names and ARNs are.
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    declaration JSONB NOT NULL,
    -- [{key, value}]
    tags JSONB NOT NULL DEFAULT '[]'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (account_id, name)
);

CREATE TABLE pipeline_versions (
    pipeline_id UUID NOT NULL REFERENCES pipelines (pipeline_id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    declaration JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, version)
);
