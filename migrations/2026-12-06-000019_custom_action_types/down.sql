DROP TABLE custom_action_types;
