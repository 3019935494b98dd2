//! Walks every operation of the OpenAPI document: without credentials each
//! (but sign-up and sign-in) answers 401; called by another account's
//! administrator with this account's names, none answers this account's data.

use serde_json::{Value, json};

use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";

/// A body an operation accepts, so that the call gets as far as it can.
fn body_for(operation: &str) -> Option<Value> {
    Some(match operation {
        "CreateUser" => json!({"userName": "alice"}),
        "CreateLoginProfile" => json!({"password": "another password"}),
        "PutUserPolicy" => {
            json!({"policyDocument": {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}}})
        }
        "AttachUserPolicy" | "AttachRolePolicy" => json!({"policyArn": "arn:pw:iam::pw:policy/IAMReadOnlyAccess"}),
        "PutRolePolicy" => {
            json!({"policyDocument": {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*"}}})
        }
        "CreateRole" => {
            json!({"roleName": "deployer", "assumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}}})
        }
        "UpdateAssumeRolePolicy" => {
            json!({"policyDocument": {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}}})
        }
        "UpdateAccessKey" => json!({"status": "Inactive"}),
        "UpdateEventDataStore" => json!({"retentionPeriod": 30}),
        "DisableStageTransition" => json!({"reason": "freeze"}),
        "StartPipelineExecution" => json!({}),
        "StopPipelineExecution" => json!({"reason": "x"}),
        "RetryStageExecution" => {
            json!({"pipelineExecutionId": "00000000-0000-0000-0000-000000000000", "retryMode": "FAILED_ACTIONS"})
        }
        "PutApprovalResult" => {
            json!({"token": "00000000-0000-0000-0000-000000000000", "result": {"status": "Approved", "summary": "x"}})
        }
        "CreatePipeline" => json!({"pipeline": crate::pipelines::four_stages("web")}),
        "UpdatePipeline" => {
            let mut pipeline = crate::pipelines::four_stages("web");
            pipeline["version"] = json!(1);
            json!({"pipeline": pipeline})
        }
        "GetTokenForAccessKey" => json!({"accessKeyId": "AKIAEXAMPLEEXAMPLEEX", "secretAccessKey": "wrong"}),
        "SignIn" => json!({"account": "000000000000", "userName": "root", "password": "wrong password"}),
        "RefreshSession" => json!({"refreshToken": "not-a-token"}),
        "CreateAccount" => json!({"rootPassword": "correct horse battery"}),
        "SimulateCustomPolicy" => json!({"policyInputList": [], "actionNames": ["iam:GetUser"]}),
        "SimulatePrincipalPolicy" => {
            json!({"policySourceArn": "arn:pw:iam::000000000000:user/alice", "actionNames": ["iam:GetUser"]})
        }
        "CreatePolicy" => {
            json!({"policyName": "shared", "policyDocument": {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}}})
        }
        "CreatePolicyVersion" => {
            json!({"policyDocument": {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}}})
        }
        "SetDefaultPolicyVersion" => json!({"versionId": "v1"}),
        "CreateGroup" => json!({"groupName": "team"}),
        "AttachGroupPolicy" => json!({"policyArn": "arn:pw:iam::pw:policy/IAMReadOnlyAccess"}),
        "PutGroupPolicy" => {
            json!({"policyDocument": {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "iam:GetGroup", "Resource": "*"}}})
        }
        "AssumeRole" => json!({"roleArn": "arn:pw:iam::000000000000:role/deployer", "roleSessionName": "probe"}),
        _ => return None,
    })
}

fn operations(document: &Value) -> Vec<(String, String, String, bool)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, operation) in item.as_object().expect("an item") {
            let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            let authorization = &operation["x-pw-authorization"];
            assert!(authorization.is_object(), "{id} does not say how it is authorised");
            let public = authorization["action"].is_null();
            found.push((method.to_uppercase(), path.clone(), id.to_owned(), public));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_needs_credentials_and_no_account_sees_another() {
    let app = TestApp::spawn().await;
    let document: Value = app.get("/openapi.json").await.json().await.unwrap();
    let operations = operations(&document);
    assert!(operations.len() >= 40, "{operations:?}");

    // Account A, with a user that has a password, an inline and an attached policy.
    let a = app.create_account(None, PASSWORD).await;
    let a_root = app.sign_in(&a, "root", PASSWORD).await;
    app.create_user(&a_root, "alice", PASSWORD, &["IAMReadOnlyAccess"]).await;
    let secret = json!({"policyDocument": {"Version": "2012-10-17", "Statement": {"Sid": "TopSecretMarker", "Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}}});
    assert_eq!(
        app.call("PUT", "/v1/iam/users/alice/policies/secret-policy", Some(&a_root), Some(secret)).await.status,
        200
    );
    let alice = app.call("GET", "/v1/iam/users/alice", Some(&a_root), None).await;
    let alice_id = alice.body["user"]["userId"].as_str().unwrap().to_owned();
    let trust = json!({"Version": "2012-10-17", "Statement": {"Sid": "TrustMarker", "Effect": "Allow", "Principal": {"PW": a}, "Action": "sts:AssumeRole"}});
    let role = app
        .call(
            "POST",
            "/v1/iam/roles",
            Some(&a_root),
            Some(json!({"roleName": "deployer", "assumeRolePolicyDocument": trust})),
        )
        .await;
    assert_eq!(role.status, 201, "{}", role.body);
    let role_id = role.body["role"]["roleId"].as_str().unwrap().to_owned();
    let group = app.call("POST", "/v1/iam/groups", Some(&a_root), Some(json!({"groupName": "team"}))).await;
    let group_id = group.body["group"]["groupId"].as_str().unwrap().to_owned();
    assert_eq!(app.call("PUT", "/v1/iam/groups/team/users/alice", Some(&a_root), None).await.status, 200);
    let doc = json!({"Version": "2012-10-17", "Statement": {"Sid": "ManagedMarker", "Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}});
    let managed = app
        .call("POST", "/v1/iam/policies", Some(&a_root), Some(json!({"policyName": "shared", "policyDocument": doc})))
        .await;
    assert_eq!(managed.status, 201, "{}", managed.body);
    let policy_id = managed.body["policy"]["policyId"].as_str().unwrap().to_owned();
    let key = app.call("POST", "/v1/iam/users/alice/access-keys", Some(&a_root), None).await;
    let key_id = key.body["accessKey"]["accessKeyId"].as_str().unwrap().to_owned();
    let mut pipeline = crate::pipelines::four_stages("web");
    pipeline["variables"][0]["description"] = json!("PipelineMarker");
    let created = app.call("POST", "/v1/pipelines", Some(&a_root), Some(json!({"pipeline": pipeline}))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    // One B never has: the live stream of one B had would not end.
    let only_a = json!({"pipeline": crate::pipelines::four_stages("a-only")});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&a_root), Some(only_a)).await.status, 201);

    // Account B's administrator.
    let b = app.create_account(None, PASSWORD).await;
    let b_root = app.sign_in(&b, "root", PASSWORD).await;
    app.create_user(&b_root, "admin", PASSWORD, &["AdministratorAccess"]).await;
    let b_admin = app.sign_in(&b, "admin", PASSWORD).await;

    for (method, template, id, public) in &operations {
        let path = template
            .replace("{userName}", "alice")
            .replace("{policyName}", "secret-policy")
            .replace("{roleName}", "deployer")
            .replace("{groupName}", "team")
            .replace("{versionId}", "v1")
            .replace("{accessKeyId}", &key_id)
            .replace("{name}", if id == "GetPipelineStateEvents" { "a-only" } else { "web" })
            .replace("{stage}", "Deploy")
            .replace("{action}", if id == "PutSourceRevision" { "Checkout" } else { "Release" })
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{artifact}", "BuildOut");
        // Another account's ARNs are refused by name (the refusal would show
        // A's id): B asks about the same name in its own account.
        let b_pipeline = format!("arn:pw:codepipeline:local:{b}:web");
        let path = if id.starts_with("Detach") {
            format!("{path}?policyArn=arn:pw:iam::pw:policy/IAMReadOnlyAccess")
        } else if id == "UntagResource" {
            format!("{path}?resourceArn={b_pipeline}&tagKeys=team")
        } else if id == "ListTagsForResource" {
            format!("{path}?resourceArn={b_pipeline}")
        } else {
            path
        };
        let body = if id == "TagResource" {
            Some(json!({"resourceArn": b_pipeline, "tags": [{"key": "team", "value": "blue"}]}))
        } else {
            body_for(id)
        };

        if !public {
            let anonymous = app.call(method, &path, None, body.clone()).await;
            assert_eq!(anonymous.status, 401, "{id} ({method} {path}) without credentials: {}", anonymous.body);
            assert_eq!(anonymous.body["code"], "MissingAuthenticationTokenException", "{id}");
        }

        // Signing out would end the session the rest of the walk uses.
        let token = if id == "SignOut" { app.sign_in(&b, "admin", PASSWORD).await } else { b_admin.clone() };
        let other = app.call(method, &path, Some(&token), body).await;
        // (Public operations answer 401 for their own bad credentials.)
        assert!(
            *public || other.status != 401,
            "{id} ({method} {path}): the walk's credentials must stay valid: {}",
            other.body
        );
        let text = other.body.to_string();
        for leak in [
            a.as_str(),
            alice_id.as_str(),
            role_id.as_str(),
            group_id.as_str(),
            policy_id.as_str(),
            "ManagedMarker",
            "TopSecretMarker",
            "TrustMarker",
            "PipelineMarker",
        ] {
            assert!(!text.contains(leak), "{id} ({method} {path}) from another account shows {leak}: {text}");
        }
        assert!(other.status < 500, "{id} ({method} {path}): {text}");
    }

    // A's data is intact and still A's.
    let still = app.call("GET", "/v1/iam/users/alice/policies/secret-policy", Some(&a_root), None).await;
    assert_eq!(still.status, 200);
    assert_eq!(still.body["policyDocument"]["Statement"]["Sid"], "TopSecretMarker");
}
