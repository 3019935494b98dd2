-- Digests seal ranges of each account's audit chain with an Ed25519
-- signature; each names its predecessor, so the digests form a chain too.
CREATE TABLE audit_digests (
    account_id TEXT NOT NULL,
    digest_seq BIGINT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    last_hash TEXT NOT NULL,
    prev_digest_hash TEXT NOT NULL,
    digest_hash TEXT NOT NULL,
    signature TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, digest_seq)
);
