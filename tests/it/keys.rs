//! The keys every api process shares (decision 016): made once in the
//! database, sealed under the secrets key, each with an id, rotated without
//! a moment when a token or a digest stops verifying.

use std::time::Duration;

use pipewright_core::keyring::{self, Purpose};
use serde_json::{Value, json};

use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";

async fn whoami(client: &reqwest::Client, base: &str, token: &str) -> u16 {
    client.get(format!("{base}/v1/auth/whoami")).bearer_auth(token).send().await.unwrap().status().as_u16()
}

async fn public_keys(client: &reqwest::Client, base: &str) -> Vec<Value> {
    let keys: Value = client.get(format!("{base}/v1/audit/public-key")).send().await.unwrap().json().await.unwrap();
    keys["publicKeyList"].as_array().expect("a list").clone()
}

async fn verified(client: &reqwest::Client, base: &str, token: &str, digests: i64) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = client
            .get(format!("{base}/v1/audit/verify"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if last["digestsChecked"].as_i64().unwrap_or(0) >= digests {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread")]
async fn another_api_with_its_own_data_folder_accepts_the_tokens_and_verifies_the_digests_of_the_first() {
    let app = TestApp::spawn().await;
    let other = app.another_api().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    assert_eq!(whoami(&app.client, &other, &root).await, 200, "a token of the first works on the second");
    assert_eq!(app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": "k"}))).await.status, 201);
    assert_eq!(public_keys(&app.client, &app.url("")).await, public_keys(&app.client, &other).await);
    let there = verified(&app.client, &other, &root, 1).await;
    assert_eq!(there["valid"], true, "{there}");
    assert!(there["digestsChecked"].as_i64().unwrap() >= 1, "{there}");
    // No key was written to either data folder: they are in the database.
    assert!(!app.config.data_dir.join("jwt.key").exists());
    assert!(!app.config.data_dir.join("audit-signing.key").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_with_another_secrets_key_refuses_to_start_and_says_why() {
    let app = TestApp::spawn().await;
    let mut config = app.config.clone();
    config.data_dir = app.config.data_dir.join("stranger");
    let cipher = pipewright_core::secrets::Cipher::from_config(&config).unwrap();
    let db = pipewright_core::db::Db::connect(&config.database_url, 1).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let refused = keyring::SharedKeys::open(&mut conn, &config, &cipher).await.err().expect("refused");
    assert!(refused.to_string().contains("the same PIPEWRIGHT_SECRETS_KEY"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_keys_sign_new_tokens_and_digests_while_the_old_ones_still_verify() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let before = verified(&app.client, &app.url(""), &root, 1).await;
    assert_eq!(before["valid"], true, "{before}");

    // Rotated as if a minute had passed since (the new keys sign at once).
    let cipher = pipewright_core::secrets::Cipher::from_config(&app.config).unwrap();
    let db = pipewright_core::db::Db::connect(&app.config.database_url, 1).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let past = chrono::Utc::now() - keyring::PROPAGATION - chrono::TimeDelta::seconds(1);
    let grace = Some(chrono::TimeDelta::seconds(900));
    let (jwt, _) = keyring::rotate(&mut conn, &cipher, Purpose::Jwt, past, grace).await.unwrap();
    let (audit, _) = keyring::rotate(&mut conn, &cipher, Purpose::Audit, past, None).await.unwrap();

    // A process started now signs with the new keys and still takes the old.
    let other = app.another_api().await;
    assert_eq!(whoami(&app.client, &other, &root).await, 200, "a token of the old key still works");
    let signed_in = app
        .client
        .post(format!("{other}/v1/auth/sign-in"))
        .json(&json!({"account": account, "userName": "root", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let fresh: Value = signed_in.json().await.unwrap();
    let fresh = fresh["accessToken"].as_str().unwrap().to_owned();
    let header = fresh.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], jwt.as_str(), "the new key signs");

    let keys = public_keys(&app.client, &other).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[1]["keyId"], audit.as_str());
    assert!(keys[0]["validityEndTime"].is_string() && keys[1].get("validityEndTime").is_none(), "{keys:?}");

    // Events sealed by the new key; the first process, which has not
    // reloaded yet, verifies them too (it reloads before verifying).
    assert_eq!(
        app.client
            .post(format!("{other}/v1/iam/users"))
            .bearer_auth(&fresh)
            .json(&json!({"userName": "after-rotation"}))
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let digests = before["digestsChecked"].as_i64().unwrap() + 1;
    for base in [other.clone(), app.url("")] {
        let after = verified(&app.client, &base, &fresh, digests).await;
        assert_eq!(after["valid"], true, "{base}: {after}");
        assert!(after["digestsChecked"].as_i64().unwrap() >= digests, "{base}: {after}");
    }
    let by_new: String = app
        .sql_text(&format!(
            "SELECT count(*)::text FROM audit_digests WHERE account_id = '{account}' AND key_id = '{audit}'"
        ))
        .await;
    assert_ne!(by_new.trim(), "0", "a digest names the new key");
}
