//! Action types: the built-in ones and an account's custom ones
//! (CreateCustomActionType, GetActionType, ListActionTypes,
//! DeleteCustomActionType); a custom one is usable in its account's
//! pipelines only, its secret properties masked as a built-in type's.

use serde_json::json;

use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_action_type_is_made_read_listed_only_in_its_account_and_deleted() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let other = app.create_account(None, PASSWORD).await;
    let other_root = app.sign_in(&other, "root", PASSWORD).await;

    let scan = json!({"category": "Test", "provider": "Scan", "version": "1",
        "settings": {"entityUrlTemplate": "https://scanner.example.com/projects/{Config:Project}"},
        "configurationProperties": [
            {"name": "Project", "required": true, "key": true, "secret": false, "queryable": true, "type": "String"},
            {"name": "ApiKey", "required": false, "key": false, "secret": true, "type": "String"}],
        "inputArtifactDetails": {"minimumCount": 1, "maximumCount": 1},
        "outputArtifactDetails": {"minimumCount": 0, "maximumCount": 1}});
    let made = app.call("POST", "/v1/action-types", Some(&root), Some(scan.clone())).await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(
        made.body["actionType"]["id"],
        json!({"category": "Test", "owner": "Custom", "provider": "Scan", "version": "1"})
    );
    let again = app.call("POST", "/v1/action-types", Some(&root), Some(scan.clone())).await;
    assert_eq!(again.status, 409, "{}", again.body);
    let mut two_queryable = scan.clone();
    two_queryable["configurationProperties"][1] =
        json!({"name": "Other", "required": true, "key": true, "secret": false, "queryable": true});
    let refused = app.call("POST", "/v1/action-types", Some(&root), Some(two_queryable)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body["message"].as_str().unwrap().contains("queryable"), "{}", refused.body);

    let custom = app.call("GET", "/v1/action-types?actionOwnerFilter=Custom", Some(&root), None).await;
    assert_eq!(custom.body["actionTypes"].as_array().unwrap().len(), 1, "{}", custom.body);
    let all = app.call("GET", "/v1/action-types", Some(&root), None).await;
    let ids: Vec<String> = all.body["actionTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"]["provider"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&"Shell".to_owned()) && ids.contains(&"Scan".to_owned()), "{ids:?}");
    let elsewhere = app.call("GET", "/v1/action-types?actionOwnerFilter=Custom", Some(&other_root), None).await;
    assert_eq!(elsewhere.body["actionTypes"], json!([]), "another account's custom types are not listed");
    assert_eq!(app.call("GET", "/v1/action-types/Custom/Test/Scan/1", Some(&other_root), None).await.status, 404);

    let got = app.call("GET", "/v1/action-types/Custom/Test/Scan/1", Some(&root), None).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["actionType"]["actionConfigurationProperties"][1]["secret"], true);
    let shell = app.call("GET", "/v1/action-types/Pipewright/Build/Shell/1", Some(&root), None).await;
    assert_eq!(shell.body["actionType"]["actionConfigurationProperties"][0]["name"], "commands", "{}", shell.body);
    assert_eq!(app.call("GET", "/v1/action-types/Custom/Test/Nope/1", Some(&root), None).await.status, 404);

    // Usable in the account's pipelines, its secret masked; not in another's.
    let pipeline = json!({"name": "scanned", "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": crate::executions::kind("Source", "Upload"), "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Scan", "actions": [{"name": "Scan", "actionTypeId": {"category": "Test", "owner": "Custom", "provider": "Scan", "version": "1"},
            "configuration": {"Project": "web", "ApiKey": "s3cret-key"}, "inputArtifacts": [{"name": "Src"}]}]}]});
    let created = app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": pipeline.clone()}))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let read = app.call("GET", "/v1/pipelines/scanned", Some(&root), None).await;
    let configuration = &read.body["pipeline"]["stages"][1]["actions"][0]["configuration"];
    assert_eq!(configuration["ApiKey"], "****", "{}", read.body);
    assert_eq!(configuration["Project"], "web", "{}", read.body);
    assert!(!app.audit_table_text().await.contains("s3cret-key"), "a custom secret stays out of the audit log");
    let refused = app.call("POST", "/v1/pipelines", Some(&other_root), Some(json!({"pipeline": pipeline}))).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let problem = &refused.body["errors"][0];
    assert_eq!(
        (problem["path"].as_str(), problem["rule"].as_str()),
        (Some("stages[1].actions[0].actionTypeId"), Some("UnknownActionType")),
        "{}",
        refused.body
    );
    let mut builtin_name = scan.clone();
    builtin_name["provider"] = json!("Git");
    let refused = app.call("POST", "/v1/action-types", Some(&root), Some(builtin_name)).await;
    assert_eq!(refused.status, 400, "a built-in provider's name is refused: {}", refused.body);

    assert_eq!(app.call("DELETE", "/v1/action-types/Custom/Test/Scan/1", Some(&root), None).await.status, 204);
    assert_eq!(app.call("DELETE", "/v1/action-types/Custom/Test/Scan/1", Some(&root), None).await.status, 404);
    assert_eq!(app.call("DELETE", "/v1/action-types/Pipewright/Build/Shell/1", Some(&root), None).await.status, 400);
    // A type deleted while a pipeline uses it: every value of its actions is
    // masked, and its version is not made again (a new definition that
    // called ApiKey public would unmask the stored one).
    let read = app.call("GET", "/v1/pipelines/scanned", Some(&root), None).await;
    assert_eq!(read.body["pipeline"]["stages"][1]["actions"][0]["configuration"]["Project"], "****", "{}", read.body);
    let mut public = scan.clone();
    public["configurationProperties"][1]["secret"] = json!(false);
    let remade = app.call("POST", "/v1/action-types", Some(&root), Some(public.clone())).await;
    assert_eq!(remade.status, 409, "{}", remade.body);
    public["version"] = json!("2");
    assert_eq!(app.call("POST", "/v1/action-types", Some(&root), Some(public)).await.status, 201);
    let read = app.call("GET", "/v1/pipelines/scanned", Some(&root), None).await;
    assert_eq!(read.body["pipeline"]["stages"][1]["actions"][0]["configuration"]["ApiKey"], "****", "{}", read.body);

    // A secret value that is not of its type is refused without being said back.
    let pinned = json!({"category": "Deploy", "provider": "Vault", "version": "1",
        "configurationProperties": [{"name": "Pin", "required": true, "key": false, "secret": true, "type": "Number"}],
        "inputArtifactDetails": {"minimumCount": 0, "maximumCount": 0},
        "outputArtifactDetails": {"minimumCount": 0, "maximumCount": 0}});
    assert_eq!(app.call("POST", "/v1/action-types", Some(&root), Some(pinned)).await.status, 201);
    let vaulted = json!({"name": "vaulted", "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": crate::executions::kind("Source", "Upload"), "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Open", "actions": [{"name": "Open", "actionTypeId": {"category": "Deploy", "owner": "Custom", "provider": "Vault", "version": "1"},
            "configuration": {"Pin": "hunter2-pin"}}]}]});
    let refused = app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": vaulted}))).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(!refused.body.to_string().contains("hunter2-pin"), "{}", refused.body);
    assert!(!app.audit_table_text().await.contains("hunter2-pin"));
}
