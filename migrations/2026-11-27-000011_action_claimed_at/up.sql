-- When a runner first took the action (its start, for the transition figures).
ALTER TABLE action_executions ADD COLUMN claimed_at TIMESTAMPTZ;
