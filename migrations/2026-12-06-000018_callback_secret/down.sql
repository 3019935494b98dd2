ALTER TABLE action_executions DROP COLUMN callback_secret;
