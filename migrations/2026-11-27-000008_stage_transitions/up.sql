-- The inbound transition of a pipeline's stage, when someone changed it
-- (no row: enabled).
CREATE TABLE stage_transitions (
    pipeline_id UUID NOT NULL REFERENCES pipelines (pipeline_id) ON DELETE CASCADE,
    stage_name TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    last_changed_by TEXT NOT NULL,
    last_changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, stage_name)
);
