//! Regressions for what a security review of the identity code found.

use serde_json::json;

use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread")]
async fn a_name_in_another_case_neither_finds_the_entity_nor_slips_past_a_deny() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    app.create_user(&root, "alice", PASSWORD, &[]).await;
    app.create_user(&root, "ops", PASSWORD, &["IAMFullAccess"]).await;
    let deny = json!({"policyDocument": {"Version": "2012-10-17", "Statement": {"Effect": "Deny", "Action": "iam:CreateAccessKey",
        "Resource": format!("arn:pw:iam::{account}:user/alice")}}});
    assert_eq!(app.call("PUT", "/v1/iam/users/ops/policies/protect-alice", Some(&root), Some(deny)).await.status, 200);
    let ops = app.sign_in(&account, "ops", PASSWORD).await;
    assert_eq!(app.call("POST", "/v1/iam/users/alice/access-keys", Some(&ops), None).await.status, 403);
    let other_case = app.call("POST", "/v1/iam/users/ALICE/access-keys", Some(&ops), None).await;
    assert_eq!(other_case.status, 404, "{}", other_case.body);
    assert_eq!(
        app.call("GET", "/v1/iam/users/alice/access-keys", Some(&root), None).await.body["accessKeyMetadata"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_policy_arn_condition_key_limits_what_may_be_attached() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    app.create_user(&root, "mallory", PASSWORD, &[]).await;
    let policy = json!({"policyDocument": {"Version": "2012-10-17", "Statement": {"Effect": "Allow",
        "Action": ["iam:AttachUserPolicy", "iam:DetachUserPolicy"], "Resource": "arn:pw:iam::*:user/${pw:username}",
        "Condition": {"ArnNotEquals": {"iam:PolicyARN": "arn:pw:iam::pw:policy/AdministratorAccess"}}}}});
    assert_eq!(
        app.call("PUT", "/v1/iam/users/mallory/policies/self-service", Some(&root), Some(policy)).await.status,
        200
    );
    let mallory = app.sign_in(&account, "mallory", PASSWORD).await;
    let admin = app
        .call(
            "POST",
            "/v1/iam/users/mallory/attached-policies",
            Some(&mallory),
            Some(json!({"policyArn": "arn:pw:iam::pw:policy/AdministratorAccess"})),
        )
        .await;
    assert_eq!(admin.status, 403, "{}", admin.body);
    let reader = app
        .call(
            "POST",
            "/v1/iam/users/mallory/attached-policies",
            Some(&mallory),
            Some(json!({"policyArn": "arn:pw:iam::pw:policy/IAMReadOnlyAccess"})),
        )
        .await;
    assert_eq!(reader.status, 200, "{}", reader.body);
    let detach = app
        .call(
            "DELETE",
            "/v1/iam/users/mallory/attached-policies?policyArn=arn:pw:iam::pw:policy/IAMReadOnlyAccess",
            Some(&mallory),
            None,
        )
        .await;
    assert_eq!(detach.status, 204, "{}", detach.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_out_also_ends_tokens_made_by_refreshing_and_a_reused_refresh_token_ends_the_session() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let sign_in = json!({"account": account, "userName": "root", "password": PASSWORD});
    let first = app.call("POST", "/v1/auth/sign-in", None, Some(sign_in.clone())).await;
    let token_a = first.body["accessToken"].as_str().unwrap().to_owned();
    let refresh = first.body["refreshToken"].as_str().unwrap().to_owned();
    let refreshed = app.call("POST", "/v1/auth/refresh", None, Some(json!({"refreshToken": refresh}))).await;
    let token_b = refreshed.body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(app.call("POST", "/v1/auth/sign-out", Some(&token_a), None).await.status, 204);
    assert_eq!(app.call("GET", "/v1/auth/whoami", Some(&token_b), None).await.status, 401);

    // A stolen refresh token used after its owner refreshed: the session ends.
    let second = app.call("POST", "/v1/auth/sign-in", None, Some(sign_in)).await;
    let stolen = second.body["refreshToken"].as_str().unwrap().to_owned();
    let owner = app.call("POST", "/v1/auth/refresh", None, Some(json!({"refreshToken": stolen}))).await;
    let owner_token = owner.body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(app.call("POST", "/v1/auth/refresh", None, Some(json!({"refreshToken": stolen}))).await.status, 401);
    assert_eq!(app.call("GET", "/v1/auth/whoami", Some(&owner_token), None).await.status, 401, "the session was ended");
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_a_password_needs_update_login_profile_and_ends_the_users_sessions() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    app.create_user(&root, "victim", PASSWORD, &[]).await;
    app.create_user(&root, "helpdesk", PASSWORD, &[]).await;
    let create_only = json!({"policyDocument": {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "iam:CreateLoginProfile", "Resource": "*"}}});
    assert_eq!(app.call("PUT", "/v1/iam/users/helpdesk/policies/p", Some(&root), Some(create_only)).await.status, 200);
    let helpdesk = app.sign_in(&account, "helpdesk", PASSWORD).await;
    let victim = app.sign_in(&account, "victim", PASSWORD).await;

    let reset = app
        .call("PUT", "/v1/iam/users/victim/login-profile", Some(&helpdesk), Some(json!({"password": "taken over now"})))
        .await;
    assert_eq!(reset.status, 403, "{}", reset.body);
    assert!(reset.body["message"].as_str().unwrap().contains("iam:UpdateLoginProfile"));

    assert_eq!(
        app.call(
            "PUT",
            "/v1/iam/users/victim/login-profile",
            Some(&root),
            Some(json!({"password": "a brand new one"}))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.call("GET", "/v1/auth/whoami", Some(&victim), None).await.status,
        401,
        "sessions from before the change end"
    );
    app.sign_in(&account, "victim", "a brand new one").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn control_characters_in_names_are_refused_not_a_server_error() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    // A NUL is refused at the edge, and its call recorded, escaped (a NUL
    // once failed the audit writer's whole batch, every tenant's events).
    let sign_in = app
        .call(
            "POST",
            "/v1/auth/sign-in",
            None,
            Some(json!({"account": "\u{0}", "userName": "ro\u{0}ot", "password": "x"})),
        )
        .await;
    assert_eq!((sign_in.status, sign_in.body["code"].as_str()), (400, Some("ValidationException")), "{}", sign_in.body);
    assert!(sign_in.body["message"].as_str().unwrap().contains("NUL"), "{}", sign_in.body);
    let recorded = app
        .sql_text(
            "SELECT coalesce(string_agg(request_parameters->>'userName' || ' ' || http_status, ','), '') \
             FROM audit_events WHERE event_name = 'SignIn'",
        )
        .await;
    assert!(recorded.contains("ro\\u0000ot 400"), "{recorded}");
    let tagged = app.call("GET", "/v1/pipelines?nextToken=a%00b", Some(&root), None).await;
    assert_eq!(tagged.status, 400, "{}", tagged.body);
    let user = app.call("GET", "/v1/iam/users/a%00b", Some(&root), None).await;
    assert_eq!(user.status, 400, "{}", user.body);
    let group = app.call("PUT", "/v1/iam/groups/x/users/a%00b", Some(&root), None).await;
    assert!(group.status == 400 || group.status == 404, "{}", group.body);
}
