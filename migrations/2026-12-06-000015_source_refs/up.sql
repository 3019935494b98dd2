-- Polling looks at every ref a source's trigger may run (several branches,
-- tags), not one: the commit each ref was last seen at, and since when the
-- source is watched (refs seen at the first look start nothing; a ref that
-- appears later, a new branch, does).
CREATE TABLE source_watches (
    pipeline_id UUID NOT NULL REFERENCES pipelines (pipeline_id) ON DELETE CASCADE,
    action_name TEXT NOT NULL,
    -- What is looked at (`refs/heads/main`, `refs/heads/*`, with
    -- `refs/tags/*`): when a trigger changes it, the refs then found are
    -- taken as seen, not as new.
    looks_at TEXT NOT NULL,
    since TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, action_name)
);
CREATE TABLE source_refs (
    pipeline_id UUID NOT NULL,
    action_name TEXT NOT NULL,
    ref_name TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, action_name, ref_name),
    FOREIGN KEY (pipeline_id) REFERENCES pipelines (pipeline_id) ON DELETE CASCADE
);
-- (Triggers had no filters before: one branch was looked at.)
INSERT INTO source_watches (pipeline_id, action_name, looks_at, since)
    SELECT s.pipeline_id, s.action_name, 'refs/heads/' || coalesce((
               SELECT a -> 'configuration' ->> 'branch'
               FROM pipelines p, jsonb_array_elements(p.declaration -> 'stages' -> 0 -> 'actions') a
               WHERE p.pipeline_id = s.pipeline_id AND a ->> 'name' = s.action_name
               LIMIT 1), 'main'), s.seen_at
    FROM source_polls s;
INSERT INTO source_refs (pipeline_id, action_name, ref_name, revision_id, seen_at)
    SELECT s.pipeline_id, s.action_name,
           'refs/heads/' || coalesce((
               SELECT a -> 'configuration' ->> 'branch'
               FROM pipelines p, jsonb_array_elements(p.declaration -> 'stages' -> 0 -> 'actions') a
               WHERE p.pipeline_id = s.pipeline_id AND a ->> 'name' = s.action_name
               LIMIT 1), 'main'),
           s.revision_id, s.seen_at
    FROM source_polls s;
DROP TABLE source_polls;
