-- Accounts, IAM entities, access keys and sign-in sessions.
-- Names of users, groups, roles and policies are unique per account without
-- regard to case, as in IAM.

CREATE TABLE accounts (
    account_id TEXT PRIMARY KEY CHECK (account_id ~ '^[0-9]{12}$'),
    alias TEXT UNIQUE,
    root_password_hash TEXT NOT NULL,
    password_policy JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE iam_users (
    user_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    user_name TEXT NOT NULL,
    path TEXT NOT NULL DEFAULT '/',
    password_hash TEXT,
    password_changed_at TIMESTAMPTZ,
    tags JSONB NOT NULL DEFAULT '[]'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX iam_users_name ON iam_users (account_id, lower(user_name));

CREATE TABLE iam_groups (
    group_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    path TEXT NOT NULL DEFAULT '/',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX iam_groups_name ON iam_groups (account_id, lower(group_name));

CREATE TABLE iam_group_members (
    group_id TEXT NOT NULL REFERENCES iam_groups ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES iam_users ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX iam_group_members_user ON iam_group_members (user_id);

CREATE TABLE iam_roles (
    role_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    role_name TEXT NOT NULL,
    path TEXT NOT NULL DEFAULT '/',
    trust_policy TEXT NOT NULL,
    description TEXT,
    max_session_duration INTEGER NOT NULL DEFAULT 3600,
    tags JSONB NOT NULL DEFAULT '[]'::jsonb,
    sessions_revoked_before TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX iam_roles_name ON iam_roles (account_id, lower(role_name));

CREATE TABLE iam_policies (
    policy_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    policy_name TEXT NOT NULL,
    path TEXT NOT NULL DEFAULT '/',
    description TEXT,
    default_version_id TEXT NOT NULL,
    next_version INTEGER NOT NULL DEFAULT 2,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX iam_policies_name ON iam_policies (account_id, lower(policy_name));

CREATE TABLE iam_policy_versions (
    policy_id TEXT NOT NULL REFERENCES iam_policies ON DELETE CASCADE,
    version_id TEXT NOT NULL,
    document TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (policy_id, version_id)
);

-- Inline policies and attachments of users, groups and roles (owner_id is the
-- entity's id; deleting an entity that still has any is refused).
CREATE TABLE iam_inline_policies (
    owner_id TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    policy_name TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (owner_id, policy_name)
);

CREATE TABLE iam_attached_policies (
    owner_id TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    policy_arn TEXT NOT NULL,
    attached_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, policy_arn)
);
CREATE INDEX iam_attached_policies_arn ON iam_attached_policies (policy_arn);

CREATE TABLE iam_access_keys (
    access_key_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES iam_users ON DELETE CASCADE,
    account_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('Active', 'Inactive')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ
);
CREATE INDEX iam_access_keys_user ON iam_access_keys (user_id);

-- A sign-in: its refresh token (hashed) and whether it was signed out.
CREATE TABLE auth_sessions (
    session_id UUID PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts ON DELETE CASCADE,
    principal_arn TEXT NOT NULL,
    user_id TEXT,
    -- For an assumed-role session: the role, and the session policy if any.
    role_id TEXT,
    session_policy TEXT,
    refresh_hash TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
