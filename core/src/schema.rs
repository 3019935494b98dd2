//! The database schema, as the migrations make it (written by hand; keep in
//! step with `migrations/`).

diesel::table! {
    accounts (account_id) {
        account_id -> Text,
        alias -> Nullable<Text>,
        root_password_hash -> Text,
        password_policy -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    iam_users (user_id) {
        user_id -> Text,
        account_id -> Text,
        user_name -> Text,
        path -> Text,
        password_hash -> Nullable<Text>,
        password_changed_at -> Nullable<Timestamptz>,
        tags -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    iam_groups (group_id) {
        group_id -> Text,
        account_id -> Text,
        group_name -> Text,
        path -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    iam_group_members (group_id, user_id) {
        group_id -> Text,
        user_id -> Text,
    }
}

diesel::table! {
    iam_roles (role_id) {
        role_id -> Text,
        account_id -> Text,
        role_name -> Text,
        path -> Text,
        trust_policy -> Text,
        description -> Nullable<Text>,
        max_session_duration -> Int4,
        tags -> Jsonb,
        sessions_revoked_before -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    iam_policies (policy_id) {
        policy_id -> Text,
        account_id -> Text,
        policy_name -> Text,
        path -> Text,
        description -> Nullable<Text>,
        default_version_id -> Text,
        next_version -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    iam_policy_versions (policy_id, version_id) {
        policy_id -> Text,
        version_id -> Text,
        document -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    iam_inline_policies (owner_id, policy_name) {
        owner_id -> Text,
        account_id -> Text,
        policy_name -> Text,
        document -> Text,
    }
}

diesel::table! {
    iam_attached_policies (owner_id, policy_arn) {
        owner_id -> Text,
        account_id -> Text,
        policy_arn -> Text,
        attached_at -> Timestamptz,
    }
}

diesel::table! {
    iam_access_keys (access_key_id) {
        access_key_id -> Text,
        user_id -> Text,
        account_id -> Text,
        secret_hash -> Text,
        status -> Text,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        sealed_secret -> Nullable<Bytea>,
    }
}

diesel::table! {
    auth_sessions (session_id) {
        session_id -> Uuid,
        account_id -> Text,
        principal_arn -> Text,
        user_id -> Nullable<Text>,
        role_id -> Nullable<Text>,
        session_policy -> Nullable<Text>,
        refresh_hash -> Nullable<Text>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(iam_users -> accounts (account_id));
diesel::joinable!(iam_group_members -> iam_groups (group_id));
diesel::joinable!(iam_group_members -> iam_users (user_id));
diesel::joinable!(iam_policy_versions -> iam_policies (policy_id));

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    iam_users,
    iam_groups,
    iam_group_members,
    iam_roles,
    iam_policies,
    iam_policy_versions,
    iam_inline_policies,
    iam_attached_policies,
    iam_access_keys,
    auth_sessions,
);

diesel::table! {
    audit_chain_heads (account_id) {
        account_id -> Text,
        seq -> Int8,
        hash -> Text,
        purged_seq -> Int8,
        purged_hash -> Text,
        event_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    audit_settings (account_id) {
        account_id -> Text,
        retention_days -> Int4,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    audit_events (event_id) {
        event_id -> Uuid,
        account_id -> Text,
        seq -> Int8,
        prev_hash -> Text,
        hash -> Text,
        event_time -> Timestamptz,
        event_source -> Text,
        event_name -> Text,
        read_only -> Bool,
        user_identity -> Jsonb,
        principal_arn -> Nullable<Text>,
        user_name -> Nullable<Text>,
        source_ip -> Text,
        user_agent -> Text,
        request_parameters -> Nullable<Jsonb>,
        response_elements -> Nullable<Jsonb>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        http_status -> Int4,
        request_id -> Text,
        resources -> Jsonb,
        resource_keys -> Array<Text>,
        shared_event_id -> Nullable<Uuid>,
        prev_event_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    audit_digests (account_id, digest_seq) {
        account_id -> Text,
        digest_seq -> Int8,
        first_seq -> Int8,
        last_seq -> Int8,
        last_hash -> Text,
        prev_digest_hash -> Text,
        digest_hash -> Text,
        signature -> Text,
        created_at -> Timestamptz,
        key_id -> Nullable<Text>,
    }
}

diesel::table! {
    service_keys (purpose, key_id) {
        purpose -> Text,
        key_id -> Text,
        sealed -> Bytea,
        created_at -> Timestamptz,
        signs_from -> Timestamptz,
        verifies_until -> Nullable<Timestamptz>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(audit_chain_heads, audit_settings);

diesel::table! {
    pipelines (pipeline_id) {
        pipeline_id -> Uuid,
        account_id -> Text,
        name -> Text,
        version -> Int4,
        declaration -> Jsonb,
        tags -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    pipeline_versions (pipeline_id, version) {
        pipeline_id -> Uuid,
        version -> Int4,
        declaration -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(pipeline_versions -> pipelines (pipeline_id));
diesel::allow_tables_to_appear_in_same_query!(pipelines, pipeline_versions);

diesel::table! {
    stage_transitions (pipeline_id, stage_name) {
        pipeline_id -> Uuid,
        stage_name -> Text,
        enabled -> Bool,
        disabled_reason -> Nullable<Text>,
        last_changed_by -> Text,
        last_changed_at -> Timestamptz,
    }
}

diesel::table! {
    pipeline_executions (execution_id) {
        execution_id -> Uuid,
        pipeline_id -> Uuid,
        account_id -> Text,
        pipeline_name -> Text,
        pipeline_version -> Int4,
        seq -> Int8,
        status -> Text,
        status_summary -> Nullable<Text>,
        trigger -> Jsonb,
        variables -> Jsonb,
        source_revisions -> Jsonb,
        client_request_token -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    stage_executions (execution_id, stage_index) {
        execution_id -> Uuid,
        stage_index -> Int4,
        stage_name -> Text,
        attempt -> Int4,
        status -> Text,
        started_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    action_executions (action_execution_id) {
        action_execution_id -> Uuid,
        execution_id -> Uuid,
        pipeline_id -> Uuid,
        stage_index -> Int4,
        stage_name -> Text,
        action_index -> Int4,
        action_name -> Text,
        attempt -> Int4,
        status -> Text,
        summary -> Nullable<Text>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        external_url -> Nullable<Text>,
        token -> Nullable<Uuid>,
        job_attempt -> Int4,
        lease_until -> Nullable<Timestamptz>,
        input_artifacts -> Jsonb,
        output_artifacts -> Jsonb,
        output_variables -> Jsonb,
        resolved_configuration -> Jsonb,
        started_at -> Timestamptz,
        updated_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        claimed_at -> Nullable<Timestamptz>,
        callback_secret -> Nullable<Uuid>,
        job_worker -> Bool,
        external_execution_id -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        routing_key -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(pipelines, pipeline_executions, stage_executions, action_executions);
diesel::joinable!(stage_executions -> pipeline_executions (execution_id));

diesel::table! {
    source_watches (pipeline_id, action_name) {
        pipeline_id -> Uuid,
        action_name -> Text,
        looks_at -> Text,
        since -> Timestamptz,
    }
}

diesel::table! {
    source_refs (pipeline_id, action_name, ref_name) {
        pipeline_id -> Uuid,
        action_name -> Text,
        ref_name -> Text,
        revision_id -> Text,
        seen_at -> Timestamptz,
    }
}
diesel::allow_tables_to_appear_in_same_query!(pipeline_executions, pipeline_versions);

diesel::table! {
    secrets (account_id, name) {
        account_id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        tags -> Jsonb,
        version_id -> Uuid,
        sealed -> Bytea,
        created_at -> Timestamptz,
        changed_at -> Timestamptz,
        accessed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhooks (account_id, name) {
        account_id -> Text,
        name -> Text,
        webhook_id -> Text,
        definition -> Jsonb,
        sealed_secret -> Nullable<Bytea>,
        created_at -> Timestamptz,
        last_triggered -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    notification_rules (account_id, name) {
        account_id -> Text,
        name -> Text,
        rule_id -> Uuid,
        pipeline_id -> Uuid,
        resource -> Text,
        event_type_ids -> Jsonb,
        targets -> Jsonb,
        sealed_targets -> Bytea,
        detail_type -> Text,
        enabled -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    notification_events (id) {
        id -> Int8,
        pipeline_id -> Uuid,
        execution_id -> Uuid,
        kind -> Text,
        stage_name -> Nullable<Text>,
        action_name -> Nullable<Text>,
        status -> Text,
        previous -> Nullable<Text>,
        noted_at -> Timestamptz,
    }
}

diesel::table! {
    notification_deliveries (delivery_id) {
        delivery_id -> Uuid,
        rule_id -> Uuid,
        target_index -> Int4,
        event_type_id -> Text,
        payload -> Jsonb,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_status_code -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    custom_action_types (account_id, category, provider, version) {
        account_id -> Text,
        category -> Text,
        provider -> Text,
        version -> Text,
        definition -> Jsonb,
        created_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    jobs (job_id) {
        job_id -> Uuid,
        action_execution_id -> Uuid,
        account_id -> Text,
        category -> Text,
        provider -> Text,
        version -> Text,
        query_value -> Nullable<Text>,
        status -> Text,
        nonce -> Nullable<Text>,
        dispatched_at -> Nullable<Timestamptz>,
        continuation_token -> Nullable<Text>,
        artifact_token -> Nullable<Text>,
        outputs -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(jobs -> action_executions (action_execution_id));
diesel::allow_tables_to_appear_in_same_query!(jobs, action_executions);
