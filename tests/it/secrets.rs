//! Secrets: kept sealed, never answered, read by an action under its
//! pipeline's role (which trusts `codepipeline.pw` and may read the
//! secret), passed by whoever names it, and masked in the log.

use serde_json::{Value, json};

use crate::executions::{action, kind, log_of, state_until};
use crate::isolation::upload;
use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";
const VALUE: &str = "tok-9f8e7d6c5b4a-SECRET";

/// A role the service may assume, allowed to read `secret` (when given).
async fn deploy_role(app: &TestApp, root: &str, name: &str, secret: Option<&str>) -> String {
    let trust = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "codepipeline.pw"}, "Action": "sts:AssumeRole"}]});
    let created = app
        .call("POST", "/v1/iam/roles", Some(root), Some(json!({"roleName": name, "assumeRolePolicyDocument": trust})))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    if let Some(secret) = secret {
        let policy = json!({"policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret}]}});
        let put =
            app.call("PUT", &format!("/v1/iam/roles/{name}/policies/read-secret"), Some(root), Some(policy)).await;
        assert_eq!(put.status, 200, "{}", put.body);
    }
    created.body["role"]["arn"].as_str().unwrap().to_owned()
}

/// Source(Upload) → Deploy (Shell, reads TOKEN from the secret).
fn deploy_pipeline(name: &str, role: Option<&str>, secret: &str) -> Value {
    let environment = json!([{"name": "TOKEN", "type": "SECRETS_MANAGER", "value": secret},
        {"name": "STAGE", "value": "prod"}])
    .to_string();
    let commands = "echo \"deploying to $STAGE with $TOKEN\"\ntest \"${TOKEN%-SECRET}\" = 'tok-9f8e7d6c5b4a'\n\
                    echo \"LEAK=$TOKEN\" >> \"$PW_OUTPUT_VARIABLES\"";
    let mut pipeline = json!({"name": name, "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": kind("Source", "Upload"),
            "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Deploy", "actions": [{"name": "Ship", "actionTypeId": kind("Deploy", "Shell"), "namespace": "Ship",
            "configuration": {"commands": commands, "environmentVariables": environment},
            "inputArtifacts": [{"name": "Src"}]}]}]});
    if let Some(role) = role {
        pipeline["roleArn"] = json!(role);
    }
    pipeline
}

/// An account, its root's token, and the ARN of its secret
/// `prod/deploy-token` (holding [`VALUE`]).
async fn account_with_secret(app: &TestApp) -> (String, String, String) {
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let created = app
        .call("POST", "/v1/secrets", Some(&root), Some(json!({"name": "prod/deploy-token", "secretString": VALUE})))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let arn = created.body["arn"].as_str().unwrap().to_owned();
    (account, root, arn)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_is_never_answered_and_its_value_stays_out_of_the_audit_log() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let body = json!({"name": "prod/deploy-token", "secretString": VALUE, "description": "the deploy key",
        "tags": [{"key": "team", "value": "web"}]});
    let created = app.call("POST", "/v1/secrets", Some(&root), Some(body.clone())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let arn = format!("arn:pw:secretsmanager:{}:{account}:secret:prod/deploy-token", app.config.region);
    assert_eq!(created.body["arn"], arn.as_str(), "{}", created.body);
    let first_version = created.body["versionId"].as_str().unwrap().to_owned();
    let again = app.call("POST", "/v1/secrets", Some(&root), Some(body)).await;
    assert_eq!((again.status, again.body["code"].as_str()), (409, Some("ResourceExistsException")), "{}", again.body);

    // A name holding `/` is sent encoded, as generated clients do.
    let described = app.call("GET", "/v1/secrets/prod%2Fdeploy-token", Some(&root), None).await;
    assert_eq!(described.status, 200, "{}", described.body);
    assert_eq!(described.body["name"], "prod/deploy-token");
    assert_eq!(described.body["description"], "the deploy key");
    assert_eq!(described.body["tags"][0]["key"], "team");
    let listed = app.call("GET", "/v1/secrets", Some(&root), None).await;
    assert_eq!(listed.body["secretList"].as_array().map(Vec::len), Some(1), "{}", listed.body);

    let put = app
        .call("PUT", "/v1/secrets/prod%2Fdeploy-token/value", Some(&root), Some(json!({"secretString": "v2-SECRET"})))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_ne!(put.body["versionId"], first_version.as_str());
    let missing = app.call("GET", "/v1/secrets/nope", Some(&root), None).await;
    assert_eq!(missing.body["code"], "ResourceNotFoundException", "{}", missing.body);
    // A value that is not text is refused without being echoed.
    let number =
        app.call("POST", "/v1/secrets", Some(&root), Some(json!({"name": "n", "secretString": 987_654_321}))).await;
    assert_eq!(number.status, 400, "{}", number.body);
    assert!(number.body["message"].as_str().unwrap().contains("secretString must be a string"), "{}", number.body);
    assert!(!number.body.to_string().contains("987654321"), "{}", number.body);
    let bad = app.call("POST", "/v1/secrets", Some(&root), Some(json!({"name": "a b", "secretString": "x"}))).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body["message"].as_str().unwrap().contains("letters, digits and /_+=.@-"), "{}", bad.body);

    // Another account sees none of it.
    let other = app.create_account(None, PASSWORD).await;
    let other_root = app.sign_in(&other, "root", PASSWORD).await;
    let theirs = app.call("GET", "/v1/secrets/prod%2Fdeploy-token", Some(&other_root), None).await;
    assert_eq!(theirs.status, 404, "{}", theirs.body);

    let everything =
        [created.body, described.body, listed.body, put.body].iter().map(Value::to_string).collect::<String>();
    assert!(!everything.contains("SECRET"), "a value was answered: {everything}");
    let audit = app.audit_table_text().await;
    assert!(audit.contains("CreateSecret") && audit.contains("PutSecretValue"), "the calls are recorded");
    assert!(
        !audit.contains(VALUE) && !audit.contains("v2-SECRET") && !audit.contains("987654321"),
        "a value reached the audit log"
    );
    // Nor is it kept in clear.
    let stored = app.sql_text("SELECT coalesce(string_agg(encode(sealed, 'escape'), ''), '') FROM secrets").await;
    assert!(!stored.is_empty() && !stored.contains("SECRET"), "kept in clear: {stored}");

    let deleted = app.call("DELETE", "/v1/secrets/prod%2Fdeploy-token", Some(&root), None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_reads_its_secret_under_the_pipelines_role_and_its_log_shows_stars() {
    let app = TestApp::spawn_with_worker().await;
    let (_, root, secret_arn) = account_with_secret(&app).await;

    // Without a role the declaration is refused, saying what to give.
    let refused = app
        .call(
            "POST",
            "/v1/pipelines",
            Some(&root),
            Some(json!({"pipeline": deploy_pipeline("d", None, "prod/deploy-token")})),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["errors"][0]["rule"], "RoleRequired", "{}", refused.body);

    let role = deploy_role(&app, &root, "deployer", Some(&secret_arn)).await;
    let pipeline = deploy_pipeline("deploy", Some(&role), "prod/deploy-token");
    let made = app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": pipeline}))).await;
    assert_eq!(made.status, 201, "{}", made.body);
    upload(&app, &root, "deploy").await;
    let done = state_until(&app, &root, "deploy", "the deploy ends", |s| {
        let status = &action(s, "Deploy", "Ship")["status"];
        status == "Succeeded" || status == "Failed"
    })
    .await;
    let ship = action(&done, "Deploy", "Ship");
    assert_eq!(ship["status"], "Succeeded", "{done:#}");
    let id = ship["actionExecutionId"].as_str().unwrap().to_owned();
    let log = log_of(&app, &root, "deploy", &id).await.text().await.unwrap();
    assert!(log.contains("deploying to prod with ***"), "{log}");
    assert!(!log.contains(VALUE), "{log}");

    // Nowhere else either: the declaration, the state, the history, the audit log.
    let seen = [
        app.call("GET", "/v1/pipelines/deploy", Some(&root), None).await.body,
        app.call("GET", "/v1/pipelines/deploy/state", Some(&root), None).await.body,
        app.call("GET", "/v1/pipelines/deploy/action-executions", Some(&root), None).await.body,
    ];
    let history = seen[2].to_string();
    assert!(history.contains("LEAK"), "the output variable is listed: {history}");
    for body in &seen {
        assert!(!body.to_string().contains(VALUE), "{body}");
    }
    let audit = app.audit_table_text().await;
    assert!(!audit.contains(VALUE), "the value reached the audit log");
    // The read is recorded, under the role's session, by the service.
    let read = audit.lines().find(|l| l.contains(",GetSecretValue,")).unwrap_or_default();
    assert!(read.contains("assumed-role/deployer/codepipeline.pw") && read.contains("prod/deploy-token"), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_must_be_passed_and_allowed_before_an_action_reads_a_secret() {
    let app = TestApp::spawn_with_worker().await;
    let (account, root, secret_arn) = account_with_secret(&app).await;
    let strong = deploy_role(&app, &root, "strong", Some(&secret_arn)).await;
    let weak = deploy_role(&app, &root, "weak", None).await;

    // A user who may make pipelines but not pass the role cannot borrow it.
    app.create_user(&root, "dev", PASSWORD, &["PipewrightFullAccess"]).await;
    let dev = app.sign_in(&account, "dev", PASSWORD).await;
    let borrowed = app
        .call(
            "POST",
            "/v1/pipelines",
            Some(&dev),
            Some(json!({"pipeline": deploy_pipeline("b", Some(&strong), "prod/deploy-token")})),
        )
        .await;
    assert_eq!(borrowed.status, 403, "{}", borrowed.body);
    let message = borrowed.body["message"].as_str().unwrap();
    assert!(message.contains("iam:PassRole") && message.contains(&strong), "{message}");
    // Nor name a role of another account.
    let foreign = deploy_pipeline("f", Some("arn:pw:iam::999999999999:role/x"), "prod/deploy-token");
    let refused = app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": foreign}))).await;
    assert_eq!(refused.status, 400, "{}", refused.body);

    // A role that may not read the secret: the action fails, saying why.
    let pipeline = deploy_pipeline("weak", Some(&weak), "prod/deploy-token");
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": pipeline}))).await.status, 201);
    upload(&app, &root, "weak").await;
    let done =
        state_until(&app, &root, "weak", "the deploy fails", |s| action(s, "Deploy", "Ship")["status"] == "Failed")
            .await;
    let details = &action(&done, "Deploy", "Ship")["errorDetails"];
    assert_eq!(details["code"], "SecretAccessDenied", "{done:#}");
    let message = details["message"].as_str().unwrap();
    assert!(message.contains("secretsmanager:GetSecretValue") && message.contains(&weak), "{message}");
    let audit = app.audit_table_text().await;
    let refused = audit.lines().find(|l| l.contains(",GetSecretValue,")).unwrap_or_default();
    assert!(refused.contains("AccessDeniedException") && refused.contains("assumed-role/weak"), "{audit}");
}
