-- Webhooks (PutWebhook): the URL's id is random and stays when the
-- definition is replaced; the secret is sealed (AES-256-GCM, the secrets
-- key), since a delivery's HMAC is computed with it.
CREATE TABLE webhooks (
    account_id TEXT NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    webhook_id TEXT NOT NULL UNIQUE,
    definition JSONB NOT NULL,
    sealed_secret BYTEA,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_triggered TIMESTAMPTZ,
    PRIMARY KEY (account_id, name)
);
