//! Roles and AssumeRole across accounts, as the scenario has it.

use serde_json::{Value, json};

use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";

struct World {
    app: TestApp,
    a: String,
    a_root: String,
    b: String,
    bob: String,
    role_arn: String,
}

/// Account A has a read-only role `deployer` trusting account B when the
/// ExternalId is `ext-42`; B's user bob may assume it, B's user eve may not.
async fn world() -> World {
    let app = TestApp::spawn().await;
    let a = app.create_account(None, PASSWORD).await;
    let b = app.create_account(None, PASSWORD).await;
    let a_root = app.sign_in(&a, "root", PASSWORD).await;
    let b_root = app.sign_in(&b, "root", PASSWORD).await;

    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"PW": format!("arn:pw:iam::{b}:root")}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": "ext-42"}}}]});
    let created = app
        .call(
            "POST",
            "/v1/iam/roles",
            Some(&a_root),
            Some(json!({"roleName": "deployer", "assumeRolePolicyDocument": trust, "description": "CI from B"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let role_arn = created.body["role"]["arn"].as_str().unwrap().to_owned();
    assert_eq!(role_arn, format!("arn:pw:iam::{a}:role/deployer"));
    let attached = app
        .call(
            "POST",
            "/v1/iam/roles/deployer/attached-policies",
            Some(&a_root),
            Some(json!({"policyArn": "arn:pw:iam::pw:policy/IAMReadOnlyAccess"})),
        )
        .await;
    assert_eq!(attached.status, 200, "{}", attached.body);

    app.create_user(&b_root, "bob", PASSWORD, &[]).await;
    let may_assume = json!({"policyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}]}});
    assert_eq!(app.call("PUT", "/v1/iam/users/bob/policies/assume", Some(&b_root), Some(may_assume)).await.status, 200);
    app.create_user(&b_root, "eve", PASSWORD, &[]).await;
    let bob = app.sign_in(&b, "bob", PASSWORD).await;
    World { app, a, a_root, b, bob, role_arn }
}

async fn assume(app: &TestApp, token: &str, body: Value) -> crate::support::Answer {
    app.call("POST", "/v1/sts/assume-role", Some(token), Some(body)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_of_another_account_assumes_a_role_with_the_external_id_and_acts_within_it() {
    let w = world().await;
    let assumed =
        assume(&w.app, &w.bob, json!({"roleArn": w.role_arn, "roleSessionName": "ci-run", "externalId": "ext-42"}))
            .await;
    assert_eq!(assumed.status, 200, "{}", assumed.body);
    assert_eq!(assumed.body["assumedRoleUser"]["arn"], format!("arn:pw:sts::{}:assumed-role/deployer/ci-run", w.a));
    assert!(assumed.body["assumedRoleUser"]["assumedRoleId"].as_str().unwrap().starts_with("AROA"));
    let session = assumed.body["credentials"]["accessToken"].as_str().unwrap().to_owned();

    let me = w.app.call("GET", "/v1/auth/whoami", Some(&session), None).await;
    assert_eq!(me.body["account"], w.a.as_str());
    assert_eq!(me.body["arn"], format!("arn:pw:sts::{}:assumed-role/deployer/ci-run", w.a));

    // Within the role's policies, in account A.
    let users = w.app.call("GET", "/v1/iam/roles", Some(&session), None).await;
    assert_eq!(users.status, 200, "{}", users.body);
    assert_eq!(users.body["roles"][0]["roleName"], "deployer");
    let change = w.app.call("POST", "/v1/iam/users", Some(&session), Some(json!({"userName": "intruder"}))).await;
    assert_eq!(change.status, 403);
    assert_eq!(
        change.body["message"],
        format!(
            "Assumed role: arn:pw:sts::{a}:assumed-role/deployer/ci-run is not authorized to perform: iam:CreateUser on resource: arn:pw:iam::{a}:user/intruder because no identity-based policy allows the iam:CreateUser action",
            a = w.a
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_external_id_or_the_callers_own_permission_it_is_refused() {
    let w = world().await;
    for body in [
        json!({"roleArn": w.role_arn, "roleSessionName": "ci"}),
        json!({"roleArn": w.role_arn, "roleSessionName": "ci", "externalId": "ext-43"}),
    ] {
        let refused = assume(&w.app, &w.bob, body).await;
        assert_eq!(
            (refused.status, refused.body["code"].as_str()),
            (403, Some("AccessDeniedException")),
            "{}",
            refused.body
        );
    }
    let eve = w.app.sign_in(&w.b, "eve", PASSWORD).await;
    let refused =
        assume(&w.app, &eve, json!({"roleArn": w.role_arn, "roleSessionName": "ci", "externalId": "ext-42"})).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("User: arn:pw:iam::{}:user/eve is not authorized to perform: sts:AssumeRole", w.b))
    );
    // A role that does not exist is refused the same way: its existence is not told.
    let missing = assume(
        &w.app,
        &w.bob,
        json!({"roleArn": format!("arn:pw:iam::{}:role/nothing", w.a), "roleSessionName": "ci"}),
    )
    .await;
    assert_eq!(missing.status, 403);
    // Nor is its maximum duration: an untrusted caller learns the same either way.
    for role in ["deployer", "nothing"] {
        let probe = json!({"roleArn": format!("arn:pw:iam::{}:role/{role}", w.a), "roleSessionName": "ci", "durationSeconds": 7200});
        let answer = assume(&w.app, &eve, probe).await;
        assert_eq!(answer.status, 403, "{role}: {}", answer.body);
        assert!(answer.body["message"].as_str().unwrap().ends_with("do not both allow it"), "{}", answer.body);
    }
    let root = w.app.sign_in(&w.b, "root", PASSWORD).await;
    assert_eq!(
        assume(&w.app, &root, json!({"roleArn": w.role_arn, "roleSessionName": "ci", "externalId": "ext-42"}))
            .await
            .status,
        403
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn session_policies_narrow_durations_are_bounded_and_sessions_can_be_revoked() {
    let w = world().await;
    let narrow =
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*"}]});
    let assumed = assume(
        &w.app,
        &w.bob,
        json!({"roleArn": w.role_arn, "roleSessionName": "narrow", "externalId": "ext-42", "policy": narrow}),
    )
    .await;
    assert_eq!(assumed.status, 200, "{}", assumed.body);
    let session = assumed.body["credentials"]["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(w.app.call("GET", "/v1/iam/roles/deployer", Some(&session), None).await.status, 200);
    let listed = w.app.call("GET", "/v1/iam/roles", Some(&session), None).await;
    assert_eq!(listed.status, 403, "the session policy does not allow ListRoles: {}", listed.body);

    let too_long = assume(
        &w.app,
        &w.bob,
        json!({"roleArn": w.role_arn, "roleSessionName": "long", "externalId": "ext-42", "durationSeconds": 7200}),
    )
    .await;
    assert_eq!(too_long.status, 400, "{}", too_long.body);
    assert!(
        too_long.body["message"]
            .as_str()
            .unwrap()
            .contains("exceeds the role's maximum session duration (3600 seconds)"),
        "{}",
        too_long.body
    );
    let beyond =
        assume(&w.app, &w.bob, json!({"roleArn": w.role_arn, "roleSessionName": "long", "durationSeconds": 50000}))
            .await;
    assert!(beyond.body["message"].as_str().unwrap().contains("between 900 and 43200"), "{}", beyond.body);
    let bad_name = assume(&w.app, &w.bob, json!({"roleArn": w.role_arn, "roleSessionName": "no spaces"})).await;
    assert_eq!(bad_name.status, 400);
    let bad_arn = assume(&w.app, &w.bob, json!({"roleArn": "deployer", "roleSessionName": "ci"})).await;
    assert_eq!(bad_arn.status, 400);

    // Revoking the role's sessions ends this one at once.
    assert_eq!(w.app.call("POST", "/v1/iam/roles/deployer/revoke-sessions", Some(&w.a_root), None).await.status, 204);
    let after = w.app.call("GET", "/v1/iam/roles/deployer", Some(&session), None).await;
    assert_eq!(after.status, 401, "{}", after.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_session_may_chain_for_an_hour_at_most_and_same_account_trust_works() {
    let w = world().await;
    // A second role in A, trusting the deployer role's sessions directly.
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"PW": w.role_arn}, "Action": "sts:AssumeRole"}]});
    let created = w
        .app
        .call(
            "POST",
            "/v1/iam/roles",
            Some(&w.a_root),
            Some(json!({"roleName": "next", "assumeRolePolicyDocument": trust, "maxSessionDuration": 43200})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let first =
        assume(&w.app, &w.bob, json!({"roleArn": w.role_arn, "roleSessionName": "first", "externalId": "ext-42"}))
            .await;
    let session = first.body["credentials"]["accessToken"].as_str().unwrap().to_owned();
    let next_arn = format!("arn:pw:iam::{}:role/next", w.a);
    let long =
        assume(&w.app, &session, json!({"roleArn": next_arn, "roleSessionName": "second", "durationSeconds": 7200}))
            .await;
    assert_eq!(long.status, 400, "chained sessions last an hour at most: {}", long.body);
    let chained = assume(&w.app, &session, json!({"roleArn": next_arn, "roleSessionName": "second"})).await;
    assert_eq!(chained.status, 200, "{}", chained.body);
    assert_eq!(chained.body["assumedRoleUser"]["arn"], format!("arn:pw:sts::{}:assumed-role/next/second", w.a));

    let bad_trust = w.app
        .call("PUT", "/v1/iam/roles/next/trust-policy", Some(&w.a_root), Some(json!({"policyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}})))
        .await;
    assert_eq!((bad_trust.status, bad_trust.body["code"].as_str()), (400, Some("MalformedPolicyDocumentException")));
    let bad_duration = w
        .app
        .call(
            "POST",
            "/v1/iam/roles",
            Some(&w.a_root),
            Some(json!({"roleName": "x", "assumeRolePolicyDocument": trust, "maxSessionDuration": 60})),
        )
        .await;
    assert_eq!(bad_duration.status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_sessions_call_is_in_both_accounts_audit_logs_with_one_shared_event_id() {
    let w = world().await;
    let assumed =
        assume(&w.app, &w.bob, json!({"roleArn": w.role_arn, "roleSessionName": "audited", "externalId": "ext-42"}))
            .await;
    let session = assumed.body["credentials"]["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(w.app.call("GET", "/v1/iam/roles/deployer", Some(&session), None).await.status, 200);

    let b_root = w.app.sign_in(&w.b, "root", PASSWORD).await;
    let mut found = (Value::Null, Value::Null);
    for _ in 0..150 {
        let in_a = w.app.call("GET", "/v1/audit/events?eventName=GetRole", Some(&w.a_root), None).await;
        let in_b = w.app.call("GET", "/v1/audit/events?eventName=GetRole", Some(&b_root), None).await;
        found = (in_a.body["events"][0].clone(), in_b.body["events"][0].clone());
        if !found.0.is_null() && !found.1.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (a, b) = found;
    assert_eq!(a["recipientAccountId"], w.a.as_str(), "{a}");
    assert_eq!(b["recipientAccountId"], w.b.as_str(), "{b}");
    assert!(a["sharedEventId"].is_string() && a["sharedEventId"] == b["sharedEventId"], "{a} {b}");
    assert_ne!(a["eventId"], b["eventId"]);
    let identity = &a["userIdentity"];
    assert_eq!(identity["type"], "AssumedRole");
    assert_eq!(identity["arn"], format!("arn:pw:sts::{}:assumed-role/deployer/audited", w.a));
    assert_eq!(identity["sessionContext"]["sessionIssuer"]["arn"], w.role_arn.as_str());
    assert_eq!(identity["sourceAccount"], w.b.as_str());

    // AssumeRole itself is in both logs too: the role's account sees who assumed its role.
    let in_a = w.app.call("GET", "/v1/audit/events?eventName=AssumeRole", Some(&w.a_root), None).await;
    let in_b = w.app.call("GET", "/v1/audit/events?eventName=AssumeRole", Some(&b_root), None).await;
    let (a, b) = (&in_a.body["events"][0], &in_b.body["events"][0]);
    assert_eq!(a["userIdentity"]["arn"], format!("arn:pw:iam::{}:user/bob", w.b), "{a}");
    assert_eq!(a["resources"][0]["arn"], w.role_arn.as_str(), "{a}");
    assert!(a["sharedEventId"].is_string() && a["sharedEventId"] == b["sharedEventId"], "{a} {b}");
    assert_eq!(a["responseElements"]["credentials"]["accessToken"], "HIDDEN_DUE_TO_SECURITY_REASONS", "{a}");

    // The credentials AssumeRole answered with are nowhere in the table.
    let table = w.app.audit_table_text().await;
    assert!(table.contains("AssumeRole"), "the table holds the call");
    for secret in [session.as_str(), &w.bob, &w.a_root, &b_root, PASSWORD] {
        assert!(!table.contains(secret), "a secret reached the audit table");
    }
}
