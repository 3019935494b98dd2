-- Notification rules (CodeStar Notifications) on pipelines. The targets'
-- addresses and secrets are sealed (a Slack URL is a secret); `targets`
-- holds them masked, as answered.
CREATE TABLE notification_rules (
    account_id TEXT NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    rule_id UUID NOT NULL UNIQUE,
    pipeline_id UUID NOT NULL REFERENCES pipelines (pipeline_id) ON DELETE CASCADE,
    resource TEXT NOT NULL,
    event_type_ids JSONB NOT NULL,
    targets JSONB NOT NULL,
    sealed_targets BYTEA NOT NULL,
    detail_type TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, name)
);
CREATE INDEX notification_rules_enabled ON notification_rules (pipeline_id) WHERE enabled;

-- State changes of pipelines that have an enabled rule, noted in the
-- change's own transaction; the worker turns them into deliveries.
CREATE TABLE notification_events (
    id BIGSERIAL PRIMARY KEY,
    pipeline_id UUID NOT NULL,
    execution_id UUID NOT NULL,
    kind TEXT NOT NULL,
    stage_name TEXT,
    action_name TEXT,
    status TEXT NOT NULL,
    previous TEXT,
    noted_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The delivery log: one row per event and target, with its attempts.
CREATE TABLE notification_deliveries (
    delivery_id UUID PRIMARY KEY,
    rule_id UUID NOT NULL REFERENCES notification_rules (rule_id) ON DELETE CASCADE,
    target_index INTEGER NOT NULL,
    event_type_id TEXT NOT NULL,
    payload JSONB NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_status_code INTEGER,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at) WHERE status = 'Pending';
CREATE INDEX notification_deliveries_of_rule ON notification_deliveries (rule_id, created_at DESC);

-- A row inserted is noted only as started: a stage retry copies the actions
-- that had succeeded as new rows, which are no news.
CREATE FUNCTION note_execution_state() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status
        OR TG_OP = 'INSERT' AND NEW.status <> 'InProgress' THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM notification_rules WHERE pipeline_id = NEW.pipeline_id AND enabled) THEN
        INSERT INTO notification_events (pipeline_id, execution_id, kind, status, previous)
        VALUES (NEW.pipeline_id, NEW.execution_id, 'pipeline', NEW.status,
                CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE FUNCTION note_stage_state() RETURNS trigger AS $$
DECLARE
    pipeline UUID;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status
        OR TG_OP = 'INSERT' AND NEW.status <> 'InProgress' THEN
        RETURN NULL;
    END IF;
    -- One lookup: the execution's pipeline, if it has an enabled rule.
    SELECT e.pipeline_id INTO pipeline FROM pipeline_executions e
        JOIN notification_rules r ON r.pipeline_id = e.pipeline_id AND r.enabled
        WHERE e.execution_id = NEW.execution_id LIMIT 1;
    IF pipeline IS NOT NULL THEN
        INSERT INTO notification_events (pipeline_id, execution_id, kind, stage_name, status, previous)
        VALUES (pipeline, NEW.execution_id, 'stage', NEW.stage_name, NEW.status,
                CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE FUNCTION note_action_state() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status
        OR TG_OP = 'INSERT' AND NEW.status <> 'InProgress' THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM notification_rules WHERE pipeline_id = NEW.pipeline_id AND enabled) THEN
        INSERT INTO notification_events (pipeline_id, execution_id, kind, stage_name, action_name, status, previous)
        VALUES (NEW.pipeline_id, NEW.execution_id, 'action', NEW.stage_name, NEW.action_name, NEW.status,
                CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER pipeline_executions_notify AFTER INSERT OR UPDATE OF status ON pipeline_executions
    FOR EACH ROW EXECUTE FUNCTION note_execution_state();
CREATE TRIGGER stage_executions_notify AFTER INSERT OR UPDATE OF status ON stage_executions
    FOR EACH ROW EXECUTE FUNCTION note_stage_state();
CREATE TRIGGER action_executions_notify AFTER INSERT OR UPDATE OF status ON action_executions
    FOR EACH ROW EXECUTE FUNCTION note_action_state();
