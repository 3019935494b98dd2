ALTER TABLE action_executions DROP COLUMN claimed_at;
