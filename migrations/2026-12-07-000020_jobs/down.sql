ALTER TABLE custom_action_types DROP COLUMN deleted_at;
ALTER TABLE action_executions DROP COLUMN external_execution_id;
ALTER TABLE action_executions DROP COLUMN job_worker;
DROP TABLE jobs;
