ALTER TABLE audit_digests DROP COLUMN key_id;
DROP TABLE service_keys;
