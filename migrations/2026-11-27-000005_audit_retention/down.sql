DROP TABLE audit_settings;
ALTER TABLE audit_chain_heads DROP COLUMN purged_seq, DROP COLUMN purged_hash;
