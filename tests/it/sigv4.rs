//! SigV4 as the AWS SDKs make it: botocore (the AWS CLI's and boto3's
//! core) signs requests, and `core::sigv4` verifies them — a path and a
//! query that need encoding, a JSON body, the SDK's own headers — and
//! refuses them with another secret or another body.

use pipewright_core::sigv4::{Authorization, Refusal, Request, verify};

use crate::support::run_tool;

const SIGN: &str = r#"
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
method, url, body, target = sys.argv[1:5]
request = AWSRequest(method=method, url=url, data=body.encode(),
    headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target, "User-Agent": "aws-cli/1 test"})
SigV4Auth(Credentials("AKIAEXAMPLE0123", "s3cr3t/Key+with=signs"), "codepipeline", "us-east-1").add_auth(request)
print(json.dumps(sorted(request.headers.items())))
"#;

async fn signed(method: &str, url: &str, body: &str) -> Vec<(String, String)> {
    let printed = run_tool(
        "python3 with botocore (pip install awscli)",
        tokio::process::Command::new("python3").args([
            "-c",
            SIGN,
            method,
            url,
            body,
            "CodePipeline_20150709.GetPipeline",
        ]),
    )
    .await;
    let mut headers: Vec<(String, String)> = serde_json::from_str(printed.trim()).unwrap();
    // botocore signs the URL's host without setting the header; a client sends it.
    headers.push(("Host".to_owned(), "127.0.0.1:8080".to_owned()));
    headers
}

#[tokio::test(flavor = "multi_thread")]
async fn botocores_signatures_verify_and_any_change_is_refused() {
    let body = r#"{"name": "web site", "version": 2}"#;
    let headers = signed("POST", "http://127.0.0.1:8080/aws/a%20b?z=1&a=x%2Fy", body).await;
    let authorization = headers.iter().find(|(n, _)| n == "Authorization").map(|(_, v)| v.as_str());
    let parsed = Authorization::parse(authorization).unwrap();
    assert_eq!(parsed.access_key_id, "AKIAEXAMPLE0123");
    assert_eq!((parsed.region.as_str(), parsed.service.as_str()), ("us-east-1", "codepipeline"));
    let request =
        Request { method: "POST", path: "/aws/a%20b", query: "z=1&a=x%2Fy", headers: &headers, body: body.as_bytes() };
    let now = chrono::Utc::now();
    assert_eq!(verify(&request, &parsed, "s3cr3t/Key+with=signs", now), Ok(()));
    assert_eq!(verify(&request, &parsed, "another", now), Err(Refusal::Mismatch));
    let tampered = Request { body: br#"{"name": "web site", "version": 3}"#, ..request };
    assert_eq!(verify(&tampered, &parsed, "s3cr3t/Key+with=signs", now), Err(Refusal::Mismatch));
    let elsewhere = Request { path: "/aws/other", ..request };
    assert_eq!(verify(&elsewhere, &parsed, "s3cr3t/Key+with=signs", now), Err(Refusal::Mismatch));
    // A path botocore normalises before signing (as an --endpoint-url ending in / makes).
    let headers = signed("POST", "http://127.0.0.1:8080//aws/./x", body).await;
    let authorization = headers.iter().find(|(n, _)| n == "Authorization").map(|(_, v)| v.as_str());
    let odd = Authorization::parse(authorization).unwrap();
    let sent = Request { method: "POST", path: "//aws/./x", query: "", headers: &headers, body: body.as_bytes() };
    assert_eq!(verify(&sent, &odd, "s3cr3t/Key+with=signs", now), Ok(()));
    let later = now + chrono::TimeDelta::minutes(20);
    assert_eq!(verify(&request, &parsed, "s3cr3t/Key+with=signs", later).unwrap_err().code(), "SignatureDoesNotMatch");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_access_keys_secret_is_kept_sealed_for_sigv4_and_an_older_key_still_exchanges_tokens() {
    use pipewright_core::iam::access_keys::{SigningKey, signing_key};
    let app = crate::support::TestApp::spawn().await;
    let password = "correct horse battery";
    let account = app.create_account(None, password).await;
    let root = app.sign_in(&account, "root", password).await;
    app.create_user(&root, "ci", password, &[]).await;
    let made = app.call("POST", "/v1/iam/users/ci/access-keys", Some(&root), None).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let id = made.body["accessKey"]["accessKeyId"].as_str().unwrap().to_owned();
    let secret = made.body["accessKey"]["secretAccessKey"].as_str().unwrap().to_owned();
    let listed = app.call("GET", "/v1/iam/users/ci/access-keys", Some(&root), None).await;
    assert_eq!(listed.body["accessKeyMetadata"][0]["needsRotation"], false, "{}", listed.body);

    let cipher = pipewright_core::secrets::Cipher::from_config(&app.config).unwrap();
    let mut conn = pipewright_core::db::connect_one(&app.config.database_url).await.unwrap();
    match signing_key(&mut conn, &cipher, &id).await.unwrap() {
        SigningKey::Active(key, kept) => {
            use secrecy::ExposeSecret;
            assert_eq!(kept.expose_secret(), secret, "the secret SigV4 checks against is the one shown");
            assert_eq!(key.account_id, account);
        }
        _ => panic!("a new key can sign"),
    }
    assert!(
        !app.sql_text("SELECT coalesce(string_agg(t::text, ''), '') FROM iam_access_keys t").await.contains(&secret)
    );
    assert!(matches!(signing_key(&mut conn, &cipher, "AKIANOSUCHKEY").await.unwrap(), SigningKey::Unknown));

    // A key from before (a hash only): refused for SigV4, still exchanged for tokens.
    {
        use diesel_async::SimpleAsyncConnection;
        conn.batch_execute(&format!("UPDATE iam_access_keys SET sealed_secret = NULL WHERE access_key_id = '{id}'"))
            .await
            .unwrap();
    }
    assert!(matches!(signing_key(&mut conn, &cipher, &id).await.unwrap(), SigningKey::NeedsRotation));
    // ListAccessKeys says so, for the user to rotate it.
    let listed = app.call("GET", "/v1/iam/users/ci/access-keys", Some(&root), None).await;
    assert_eq!(listed.body["accessKeyMetadata"][0]["needsRotation"], true, "{}", listed.body);
    let token = app
        .call("POST", "/v1/auth/token", None, Some(serde_json::json!({"accessKeyId": id, "secretAccessKey": secret})))
        .await;
    assert_eq!(token.status, 200, "{}", token.body);
}
