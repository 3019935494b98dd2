DROP TABLE outbox;
DROP TABLE action_executions;
DROP TABLE stage_executions;
DROP TABLE pipeline_executions;
