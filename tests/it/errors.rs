use serde_json::Value;

use crate::support::TestApp;

async fn error_body(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    (status, id, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_path_is_a_json_404_with_code_message_and_request_id() {
    let app = TestApp::spawn().await;
    let (status, id, body) = error_body(app.get("/v1/nothing-here").await).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "UnknownOperationException");
    assert_eq!(body["requestId"], id.as_str());
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("GET /v1/nothing-here"), "{message}");
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_known_path_with_the_wrong_method_is_a_405_naming_the_allowed_ones() {
    let app = TestApp::spawn().await;
    let response = app.client.delete(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "GET");
    let (status, id, body) = error_body(response).await;
    assert_eq!(status, 405);
    assert_eq!(body["code"], "MethodNotAllowedException");
    assert_eq!(body["requestId"], id.as_str());
    assert!(body["message"].as_str().unwrap().contains("allowed: GET"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_parameter_the_operation_does_not_take_is_a_400_naming_it() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, "correct horse battery").await;
    let root = app.sign_in(&account, "root", "correct horse battery").await;
    // A miscased filter would otherwise be ignored, and the search answer every event.
    let miscased = app.call("GET", "/v1/audit/events?eventname=SignIn", Some(&root), None).await;
    assert_eq!(miscased.status, 400, "{}", miscased.body);
    assert_eq!(miscased.body["code"], "ValidationException");
    let message = miscased.body["message"].as_str().unwrap();
    assert!(message.contains("\"eventname\"") && message.contains("eventName"), "{message}");
    let typo = app.call("GET", "/v1/iam/users?maxresults=1", Some(&root), None).await;
    assert_eq!(typo.status, 400, "{}", typo.body);
    let none = app.call("GET", "/v1/auth/whoami?x=1", Some(&root), None).await;
    assert_eq!(none.status, 400, "{}", none.body);
    assert!(none.body["message"].as_str().unwrap().contains("no query parameter"), "{}", none.body);
    // The parameters it takes still work.
    let fine = app.call("GET", "/v1/audit/events?eventName=SignIn&maxResults=5", Some(&root), None).await;
    assert_eq!(fine.status, 200, "{}", fine.body);
    assert!(fine.body["events"].as_array().unwrap().iter().all(|e| e["eventName"] == "SignIn"));
}
