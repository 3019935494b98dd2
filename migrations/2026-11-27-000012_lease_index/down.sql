DROP INDEX action_executions_leased;
CREATE INDEX action_executions_leased ON action_executions (lease_until) WHERE status = 'InProgress';
