-- The secret an Invoke/HTTP action's callback is signed with: a column of
-- its own, never answered (an approval's token is shown to those who may
-- read the pipeline's state).
ALTER TABLE action_executions ADD COLUMN callback_secret UUID;
