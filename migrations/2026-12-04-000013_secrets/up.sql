-- An account's secrets. The value is sealed (AES-256-GCM, nonce first)
-- under the installation's secrets key, bound to account, name and version.
CREATE TABLE secrets (
    account_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    tags JSONB NOT NULL DEFAULT '[]',
    version_id UUID NOT NULL,
    sealed BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    accessed_at TIMESTAMPTZ,
    PRIMARY KEY (account_id, name)
);
