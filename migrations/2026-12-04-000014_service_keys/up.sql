-- The keys every api process shares (access tokens' HMAC keys, the audit
-- digests' Ed25519 seeds), sealed under the installation's secrets key and
-- bound to their purpose and id. The newest key whose signs_from has come
-- signs; older ones verify until verifies_until (never, for audit keys).
CREATE TABLE service_keys (
    purpose TEXT NOT NULL CHECK (purpose IN ('jwt', 'audit')),
    key_id TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    signs_from TIMESTAMPTZ NOT NULL,
    verifies_until TIMESTAMPTZ,
    PRIMARY KEY (purpose, key_id)
);

-- The key a digest was signed with (NULL: signed before keys had ids).
ALTER TABLE audit_digests ADD COLUMN key_id TEXT;
