DROP INDEX audit_events_source_ip;
