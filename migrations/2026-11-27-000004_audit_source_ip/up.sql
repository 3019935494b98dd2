-- LookupEvents by sourceIpAddress without scanning the account's events.
CREATE INDEX audit_events_source_ip ON audit_events (account_id, source_ip, event_time DESC);
