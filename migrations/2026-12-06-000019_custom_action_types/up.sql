-- Custom action types (CreateCustomActionType): an account's own, owner
-- Custom; their definition as CodePipeline's fields.
CREATE TABLE custom_action_types (
    account_id TEXT NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    category TEXT NOT NULL,
    provider TEXT NOT NULL,
    version TEXT NOT NULL,
    definition JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, category, provider, version)
);
