ALTER TABLE audit_chain_heads DROP COLUMN event_id;
ALTER TABLE audit_events DROP COLUMN prev_event_id;
