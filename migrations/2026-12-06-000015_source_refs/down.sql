CREATE TABLE source_polls (
    pipeline_id UUID NOT NULL REFERENCES pipelines (pipeline_id) ON DELETE CASCADE,
    action_name TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, action_name)
);
INSERT INTO source_polls (pipeline_id, action_name, revision_id, seen_at)
    SELECT DISTINCT ON (pipeline_id, action_name) pipeline_id, action_name, revision_id, seen_at
    FROM source_refs ORDER BY pipeline_id, action_name, seen_at DESC;
DROP TABLE source_refs;
DROP TABLE source_watches;
