DROP TRIGGER action_executions_notify ON action_executions;
DROP TRIGGER stage_executions_notify ON stage_executions;
DROP TRIGGER pipeline_executions_notify ON pipeline_executions;
DROP FUNCTION note_action_state();
DROP FUNCTION note_stage_state();
DROP FUNCTION note_execution_state();
DROP TABLE notification_deliveries;
DROP TABLE notification_events;
DROP TABLE notification_rules;
