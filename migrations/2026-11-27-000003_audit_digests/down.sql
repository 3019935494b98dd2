DROP TABLE audit_digests;
