-- The revision each polled source action was last seen at: a new one starts
-- an execution (once, whichever worker sees it first).
CREATE TABLE source_polls (
    pipeline_id UUID NOT NULL REFERENCES pipelines (pipeline_id) ON DELETE CASCADE,
    action_name TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, action_name)
);
CREATE INDEX pipelines_with_git_sources ON pipelines (pipeline_id)
    WHERE jsonb_path_exists(declaration, '$.stages[0].actions[*] ? (@.actionTypeId.provider == "Git")');
