-- Retention: each account keeps its events for a number of days; older ones
-- are purged a whole digested range at a time. The head remembers where the
-- log was cut (the last purged event and its hash) so that verify still
-- checks the chain from there.
ALTER TABLE audit_chain_heads
    ADD COLUMN purged_seq BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN purged_hash TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000';

CREATE TABLE audit_settings (
    account_id TEXT PRIMARY KEY,
    retention_days INTEGER NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
