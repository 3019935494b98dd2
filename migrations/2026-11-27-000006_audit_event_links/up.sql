-- Each event names the one before it (and the head names the last), so that
-- verify can say which event was deleted, not only where. An event's hash
-- covers the id it names.
ALTER TABLE audit_events ADD COLUMN prev_event_id UUID;
ALTER TABLE audit_chain_heads ADD COLUMN event_id UUID;
