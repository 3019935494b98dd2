ALTER TABLE action_executions DROP COLUMN job_worker;
DROP TABLE jobs;
