//! The audit log, as a team searches it after the fact.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";

/// Polls LookupEvents until `check` holds (events are written in batches).
async fn events_until(app: &TestApp, token: &str, query: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..150 {
        let answer = app.call("GET", &format!("/v1/audit/events?{query}"), Some(token), None).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        last = answer.body["events"].as_array().cloned().unwrap_or_default();
        if check(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("events for {query:?} never matched: {last:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_ins_denials_invalid_calls_and_changes_are_found_with_their_identity_and_outcome() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let wrong = app
        .call(
            "POST",
            "/v1/auth/sign-in",
            None,
            Some(json!({"account": account, "userName": "root", "password": "a wrong password"})),
        )
        .await;
    assert_eq!(wrong.status, 401);
    app.create_user(&root, "reader", PASSWORD, &["IAMReadOnlyAccess"]).await;
    let reader = app.sign_in(&account, "reader", PASSWORD).await;
    assert_eq!(
        app.call("POST", "/v1/iam/users", Some(&reader), Some(json!({"userName": "mallory"}))).await.status,
        403
    );
    assert_eq!(app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": 7}))).await.status, 400);

    let all = events_until(&app, &root, "maxResults=100", |events| events.len() >= 9).await;
    let names: Vec<&str> = all.iter().map(|e| e["eventName"].as_str().unwrap()).collect();
    for expected in ["SignIn", "CreateUser", "CreateLoginProfile", "AttachUserPolicy"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }

    let failed =
        events_until(&app, &root, "eventName=SignIn&errorCode=NotAuthorizedException", |e| !e.is_empty()).await;
    assert_eq!(failed[0]["userIdentity"]["type"], "Root");
    assert_eq!(failed[0]["httpStatus"], 401);
    assert_eq!(failed[0]["recipientAccountId"], account.as_str());

    let denied = events_until(&app, &root, "errorCode=AccessDeniedException", |e| !e.is_empty()).await;
    assert_eq!(denied[0]["eventName"], "CreateUser");
    assert_eq!(denied[0]["userIdentity"]["type"], "IAMUser");
    assert_eq!(denied[0]["userIdentity"]["userName"], "reader");
    assert_eq!(denied[0]["resources"][0]["arn"], format!("arn:pw:iam::{account}:user/mallory"));
    assert_eq!(denied[0]["eventSource"], "iam.pipewright");
    assert_eq!(denied[0]["readOnly"], false);

    let by_user =
        events_until(&app, &root, "userName=reader", |e| e.iter().any(|x| x["errorCode"] == "AccessDeniedException"))
            .await;
    assert!(by_user.iter().all(|e| e["userIdentity"]["userName"] == "reader"));
    let invalid = events_until(&app, &root, "errorCode=ValidationException", |e| !e.is_empty()).await;
    assert_eq!(invalid[0]["httpStatus"], 400);
    let on_reader =
        events_until(&app, &root, &format!("resourceArn=arn:pw:iam::{account}:user/reader"), |e| e.len() >= 2).await;
    assert!(on_reader.iter().any(|e| e["eventName"] == "CreateLoginProfile"));

    // Newest first, in pages.
    let first = app.call("GET", "/v1/audit/events?maxResults=2", Some(&root), None).await;
    let token = first.body["nextToken"].as_str().expect("more pages").to_owned();
    let second = app.call("GET", &format!("/v1/audit/events?maxResults=2&nextToken={token}"), Some(&root), None).await;
    let t = |v: &Value| v["eventTime"].as_str().unwrap().to_owned();
    assert!(t(&first.body["events"][1]) >= t(&second.body["events"][0]));

    // No secret anywhere in what the log shows.
    let everything = events_until(&app, &root, "maxResults=1000", |_| true).await;
    let text = serde_json::to_string(&everything).unwrap();
    for secret in [PASSWORD, "a wrong password", root.as_str(), reader.as_str()] {
        assert!(!text.contains(secret), "a secret reached the audit log");
    }
    // The reader may not read the log; another account sees none of it.
    assert_eq!(app.call("GET", "/v1/audit/events", Some(&reader), None).await.status, 403);
    let other = app.create_account(None, PASSWORD).await;
    let other_root = app.sign_in(&other, "root", PASSWORD).await;
    let theirs = app.call("GET", "/v1/audit/events?maxResults=1000", Some(&other_root), None).await;
    assert!(!theirs.body.to_string().contains(&account), "{}", theirs.body);
}

/// Runs SQL on the test's own database, as someone with database access would.
async fn tamper(app: &TestApp, sql: &str) {
    use diesel_async::SimpleAsyncConnection;
    let mut conn = pipewright_core::db::connect_one(&app.config.database_url).await.expect("the test database");
    conn.batch_execute(sql).await.expect("the statement runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_the_event_that_was_altered_or_deleted() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    for name in ["u1", "u2", "u3", "u4"] {
        assert_eq!(app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": name}))).await.status, 201);
    }
    let events = events_until(&app, &root, "eventName=CreateUser", |e| e.len() == 4).await;
    let ok = app.call("GET", "/v1/audit/verify", Some(&root), None).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["valid"], true, "{}", ok.body);
    assert!(ok.body["eventsChecked"].as_i64().unwrap() >= 5);

    // Someone edits an event in PostgreSQL: verify names it.
    let altered = events[1]["eventId"].as_str().unwrap();
    tamper(&app, &format!("UPDATE audit_events SET http_status = 200 WHERE event_id = '{altered}'")).await;
    let found = app.call("GET", "/v1/audit/verify", Some(&root), None).await;
    assert_eq!(found.body["valid"], false);
    assert_eq!(found.body["firstInvalid"]["eventId"], altered);
    assert!(found.body["firstInvalid"]["reason"].as_str().unwrap().contains("altered"));
    tamper(&app, &format!("UPDATE audit_events SET http_status = 201 WHERE event_id = '{altered}'")).await;
    assert_eq!(app.call("GET", "/v1/audit/verify", Some(&root), None).await.body["valid"], true, "restored");

    // The columns LookupEvents filters on are checked too: a user name
    // changed by SQL (to hide a user's calls from a search) is named.
    tamper(
        &app,
        &format!(
            "CREATE TABLE lookup_backup AS SELECT event_id, user_name, principal_arn, resource_keys \
             FROM audit_events WHERE event_id = '{altered}'"
        ),
    )
    .await;
    let restore = "UPDATE audit_events a SET user_name = b.user_name, principal_arn = b.principal_arn, \
                   resource_keys = b.resource_keys FROM lookup_backup b WHERE a.event_id = b.event_id";
    for (column, sql) in [
        ("user_name", "user_name = 'someone-else'"),
        ("principal_arn", "principal_arn = 'arn:pw:iam::000000000000:root'"),
        ("resource_keys", "resource_keys = '{}'"),
    ] {
        tamper(&app, &format!("UPDATE audit_events SET {sql} WHERE event_id = '{altered}'")).await;
        let found = app.call("GET", "/v1/audit/verify", Some(&root), None).await;
        assert_eq!(found.body["valid"], false, "{column}: {}", found.body);
        assert_eq!(found.body["firstInvalid"]["eventId"], altered, "{}", found.body);
        assert!(found.body["firstInvalid"]["reason"].as_str().unwrap().contains(column), "{}", found.body);
        tamper(&app, restore).await;
        assert_eq!(
            app.call("GET", "/v1/audit/verify", Some(&root), None).await.body["valid"],
            true,
            "{column} restored"
        );
    }

    // Someone deletes one: verify names it (its successor remembers its id).
    let deleted = events[2]["eventId"].as_str().unwrap();
    tamper(&app, &format!("DELETE FROM audit_events WHERE event_id = '{deleted}'")).await;
    let gap = app.call("GET", "/v1/audit/verify", Some(&root), None).await;
    assert_eq!(gap.body["valid"], false, "{}", gap.body);
    assert!(gap.body["firstInvalid"]["reason"].as_str().unwrap().contains("deleted"), "{}", gap.body);
    assert_eq!(gap.body["firstInvalid"]["eventId"], deleted, "{}", gap.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_and_its_event_commit_together_or_not_at_all() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;

    // The event of a change is there as soon as the change is: no waiting.
    let signed_up = app.call("GET", "/v1/audit/events?eventName=CreateAccount", Some(&root), None).await;
    assert_eq!(signed_up.body["events"][0]["recipientAccountId"], account.as_str(), "{}", signed_up.body);
    let signed_in = app.call("GET", "/v1/audit/events?eventName=SignIn", Some(&root), None).await;
    assert_eq!(signed_in.body["events"][0]["userIdentity"]["type"], "Root", "{}", signed_in.body);
    assert_eq!(app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": "kept"}))).await.status, 201);
    let found = app.call("GET", "/v1/audit/events?eventName=CreateUser", Some(&root), None).await;
    assert_eq!(
        found.body["events"][0]["resources"][0]["arn"],
        format!("arn:pw:iam::{account}:user/kept"),
        "{}",
        found.body
    );

    // When the audit log cannot be written, the change is not made.
    tamper(&app, "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit store down'; END; $$ LANGUAGE plpgsql;
                  CREATE TRIGGER refuse BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE PROCEDURE refuse();").await;
    let refused = app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": "unrecorded"}))).await;
    assert_eq!(
        (refused.status, refused.body["code"].as_str()),
        (503, Some("ServiceUnavailableException")),
        "{}",
        refused.body
    );
    tamper(&app, "DROP TRIGGER refuse ON audit_events;").await;
    assert_eq!(
        app.call("GET", "/v1/iam/users/unrecorded", Some(&root), None).await.status,
        404,
        "the change was undone"
    );
    assert_eq!(app.call("GET", "/v1/iam/users/kept", Some(&root), None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_time_range_exports_as_json_lines_oldest_first() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    for name in ["e1", "e2", "e3"] {
        assert_eq!(app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": name}))).await.status, 201);
    }
    let response = app.client.get(app.url("/v1/audit/export")).bearer_auth(&root).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/x-ndjson"));
    let text = response.text().await.unwrap();
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("one JSON event a line")).collect();
    let created: Vec<&str> = events
        .iter()
        .filter(|e| e["eventName"] == "CreateUser")
        .map(|e| {
            e["requestParameters"]["userName"].as_str().unwrap_or_else(|| e["resources"][0]["arn"].as_str().unwrap())
        })
        .collect();
    assert_eq!(created.len(), 3, "{text}");
    let times: Vec<&str> = events.iter().map(|e| e["eventTime"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    assert!(!text.contains(PASSWORD));
    let future = app.call("GET", "/v1/audit/export?startTime=2100-01-01T00:00:00Z", Some(&root), None).await;
    assert_eq!((future.status, future.body.clone()), (200, Value::Null));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_verify_command_checks_the_chain_straight_from_the_database() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    assert_eq!(app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": "v"}))).await.status, 201);
    // The command opens the audit keys in the database with the secrets key,
    // given as a Kubernetes Secret would give it.
    let secrets_key = std::fs::read_to_string(app.config.data_dir.join("secrets.key")).unwrap();
    let data = std::env::temp_dir().join(format!("pw-audit-cli-{account}"));
    let run = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pipewright"))
            .args(["audit-verify", &account])
            .env("DATABASE_URL", app.config.database_url.expose())
            .env("PIPEWRIGHT_DATA_DIR", &data)
            .env("PIPEWRIGHT_SECRETS_KEY", secrets_key.trim())
            .env_remove("PIPEWRIGHT_CONFIG")
            .output()
    };
    let good = run().await.unwrap();
    let result: Value = serde_json::from_slice(&good.stdout).expect("JSON on stdout");
    assert_eq!((good.status.code(), result["valid"].as_bool()), (Some(0), Some(true)), "{result}");

    let events = events_until(&app, &root, "eventName=CreateUser", |e| !e.is_empty()).await;
    let id = events[0]["eventId"].as_str().unwrap();
    tamper(&app, &format!("UPDATE audit_events SET user_agent = 'forged' WHERE event_id = '{id}'")).await;
    let bad = run().await.unwrap();
    let result: Value = serde_json::from_slice(&bad.stdout).expect("JSON on stdout");
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(result["firstInvalid"]["eventId"], id, "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_is_sealed_into_signed_digests_that_catch_deleted_newest_events() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    assert_eq!(app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": "d"}))).await.status, 201);

    let keys = app.client.get(app.url("/v1/audit/public-key")).send().await.unwrap();
    assert_eq!(keys.status(), 200, "served without credentials");
    let keys: Value = keys.json().await.unwrap();
    let list = keys["publicKeyList"].as_array().expect("a list");
    assert_eq!(list.len(), 1, "{keys}");
    assert!(list[0]["value"].as_str().unwrap().starts_with("-----BEGIN PUBLIC KEY-----"), "{keys}");
    assert_eq!(list[0]["keyId"].as_str().unwrap().len(), 16, "{keys}");
    assert!(list[0]["validityStartTime"].is_string() && list[0].get("validityEndTime").is_none(), "{keys}");

    // Digests are made every second in tests.
    let mut verified = Value::Null;
    for _ in 0..150 {
        verified = app.call("GET", "/v1/audit/verify", Some(&root), None).await.body;
        if verified["digestsChecked"].as_i64().unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(verified["valid"], true, "{verified}");
    assert!(verified["digestsChecked"].as_i64().unwrap() >= 1, "{verified}");

    // A forged digest does not verify.
    tamper(&app, &format!("UPDATE audit_digests SET last_seq = last_seq + 0, signature = 'AAAA' WHERE account_id = '{account}' AND digest_seq = 1")).await;
    let forged = app.call("GET", "/v1/audit/verify", Some(&root), None).await.body;
    assert_eq!(forged["valid"], false, "{forged}");
    assert!(forged["firstInvalid"]["reason"].as_str().unwrap().contains("digest 1"), "{forged}");
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_and_the_answers_of_changes_are_recorded_without_their_secrets() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let created = app
        .call(
            "POST",
            "/v1/iam/users",
            Some(&root),
            Some(json!({"userName": "dana", "tags": [{"key": "team", "value": "ops"}]})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let profile = app
        .call("PUT", "/v1/iam/users/dana/login-profile", Some(&root), Some(json!({"password": "dana's own password"})))
        .await;
    assert!((200..300).contains(&profile.status), "{}", profile.body);
    let key = app.call("POST", "/v1/iam/users/dana/access-keys", Some(&root), None).await;
    assert_eq!(key.status, 201, "{}", key.body);
    let secret = key.body["accessKey"]["secretAccessKey"].as_str().unwrap().to_owned();

    let found = app.call("GET", "/v1/audit/events?eventName=CreateUser", Some(&root), None).await;
    let event = &found.body["events"][0];
    assert_eq!(event["requestParameters"]["userName"], "dana", "{event}");
    assert_eq!(event["requestParameters"]["tags"][0]["value"], "ops", "{event}");
    assert_eq!(event["responseElements"]["user"]["arn"], format!("arn:pw:iam::{account}:user/dana"), "{event}");
    let found = app.call("GET", "/v1/audit/events?eventName=CreateLoginProfile", Some(&root), None).await;
    let event = &found.body["events"][0];
    assert_eq!(event["requestParameters"]["userName"], "dana", "{event}");
    assert_eq!(event["requestParameters"]["password"], "HIDDEN_DUE_TO_SECURITY_REASONS", "{event}");
    assert!(!found.body.to_string().contains("dana's own password"));

    let found = app.call("GET", "/v1/audit/events?eventName=CreateAccessKey", Some(&root), None).await;
    let event = &found.body["events"][0];
    assert_eq!(event["requestParameters"]["userName"], "dana", "{event}");
    assert_eq!(event["responseElements"]["accessKey"]["accessKeyId"], key.body["accessKey"]["accessKeyId"], "{event}");
    assert_eq!(event["responseElements"]["accessKey"]["secretAccessKey"], "HIDDEN_DUE_TO_SECURITY_REASONS", "{event}");
    assert!(!found.body.to_string().contains(&secret));

    // A refresh and a token exchange: no token or secret in the table.
    let signed_in = app
        .call(
            "POST",
            "/v1/auth/sign-in",
            None,
            Some(json!({"account": account, "userName": "root", "password": PASSWORD})),
        )
        .await;
    let refresh = signed_in.body["refreshToken"].as_str().unwrap().to_owned();
    let refreshed = app.call("POST", "/v1/auth/refresh", None, Some(json!({"refreshToken": refresh}))).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let found = app.call("GET", "/v1/audit/events?eventName=RefreshSession", Some(&root), None).await;
    assert_eq!(found.body["events"][0]["userIdentity"]["type"], "Root", "recorded with the change: {}", found.body);
    let exchanged = app
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"accessKeyId": key.body["accessKey"]["accessKeyId"], "secretAccessKey": secret})),
        )
        .await;
    assert_eq!(exchanged.status, 200, "{}", exchanged.body);
    let table = app.audit_table_text().await;
    for token in [
        &secret,
        &refresh,
        refreshed.body["refreshToken"].as_str().unwrap(),
        refreshed.body["accessToken"].as_str().unwrap(),
        exchanged.body["accessToken"].as_str().unwrap(),
        signed_in.body["accessToken"].as_str().unwrap(),
        "dana's own password",
        PASSWORD,
    ] {
        assert!(!table.contains(token), "a secret reached the audit table");
    }

    // Reads have no response elements, as in CloudTrail.
    assert_eq!(app.call("GET", "/v1/iam/users/dana", Some(&root), None).await.status, 200);
    let reads = events_until(&app, &root, "eventName=GetUser", |events| !events.is_empty()).await;
    assert_eq!(reads[0]["requestParameters"]["userName"], "dana", "{:?}", reads[0]);
    assert!(reads[0]["responseElements"].is_null(), "{:?}", reads[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_purges_old_sealed_events_and_the_log_still_verifies() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;

    // The retention period: seven years unless changed, within CloudTrail Lake's bounds.
    let store = app.call("GET", "/v1/audit/event-data-store", Some(&root), None).await;
    assert_eq!(store.body["retentionPeriod"], 2557, "{}", store.body);
    let short = app.call("PUT", "/v1/audit/event-data-store", Some(&root), Some(json!({"retentionPeriod": 1}))).await;
    assert_eq!((short.status, short.body["code"].as_str()), (400, Some("ValidationException")), "{}", short.body);
    assert!(short.body["message"].as_str().unwrap().contains("between 7 and 3653"), "{}", short.body);
    let set = app.call("PUT", "/v1/audit/event-data-store", Some(&root), Some(json!({"retentionPeriod": 30}))).await;
    assert_eq!((set.status, &set.body["retentionPeriod"]), (200, &json!(30)), "{}", set.body);
    assert_eq!(app.call("GET", "/v1/audit/event-data-store", Some(&root), None).await.body["retentionPeriod"], 30);

    for name in ["old1", "old2"] {
        assert_eq!(app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": name}))).await.status, 201);
    }
    // Wait until these are sealed (digests every second in tests): written
    // (in batches), then a digest newer than the ones there were then.
    events_until(&app, &root, "eventName=CreateUser", |events| events.len() >= 2).await;
    let digests = |v: &Value| v["digestsChecked"].as_i64().unwrap_or(0);
    let before = digests(&app.call("GET", "/v1/audit/verify", Some(&root), None).await.body);
    let mut verified = Value::Null;
    for _ in 0..150 {
        verified = app.call("GET", "/v1/audit/verify", Some(&root), None).await.body;
        if digests(&verified) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(verified["valid"], true, "{verified}");
    assert!(digests(&verified) > before, "a digest is made within 15 s: {verified}");

    // Thirty days later, as the sealer sees it: everything sealed so far goes.
    let mut conn = pipewright_core::db::connect_one(&app.config.database_url).await.unwrap();
    let later = chrono::Utc::now() + chrono::Duration::days(31);
    let removed = pipewright_core::audit::retention::purge_all(&mut conn, later).await.unwrap();
    assert!(removed >= 4, "removed {removed}");
    let old = app.call("GET", "/v1/audit/events?eventName=CreateUser", Some(&root), None).await;
    assert_eq!(old.body["events"], json!([]), "{}", old.body);
    let purge = app.call("GET", "/v1/audit/events?eventName=PurgeEvents", Some(&root), None).await;
    assert_eq!(purge.body["events"][0]["responseElements"]["eventsPurged"], removed, "{}", purge.body);

    // The chain still verifies from the cut, digests included.
    assert_eq!(app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": "new"}))).await.status, 201);
    let after = app.call("GET", "/v1/audit/verify", Some(&root), None).await.body;
    assert_eq!(after["valid"], true, "{after}");

    // Deleting more of the oldest events is not a purge: verify says so.
    tamper(
        &app,
        &format!(
            "DELETE FROM audit_events WHERE account_id = '{account}' AND seq = (SELECT min(seq) FROM audit_events WHERE account_id = '{account}')"
        ),
    )
    .await;
    let cut = app.call("GET", "/v1/audit/verify", Some(&root), None).await.body;
    assert_eq!(cut["valid"], false, "{cut}");
    assert!(cut["firstInvalid"]["reason"].as_str().unwrap().contains("deleted"), "{cut}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sealed_newest_events_deleted_with_the_head_rewound_are_still_caught() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    assert_eq!(app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": "d"}))).await.status, 201);
    let mut verified = Value::Null;
    for _ in 0..150 {
        verified = app.call("GET", "/v1/audit/verify", Some(&root), None).await.body;
        if verified["digestsChecked"].as_i64().unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(verified["valid"], true, "{verified}");
    assert!(verified["digestsChecked"].as_i64().unwrap_or(0) >= 1, "a digest is made within 15 s: {verified}");
    // Sealed newest events deleted with the head rewound to match: the digest
    // still knows. (The head is locked first, as the audit writer does, so
    // that an event being appended meanwhile — the verify calls are audited
    // too — lands after the rewound head, as a forger's tool would make it.)
    tamper(&app, &format!("BEGIN; SELECT 1 FROM audit_chain_heads WHERE account_id = '{account}' FOR UPDATE;
                           DELETE FROM audit_events WHERE account_id = '{account}' AND seq >= (SELECT max(last_seq) FROM audit_digests WHERE account_id = '{account}');
                           UPDATE audit_chain_heads h SET seq = e.seq, hash = e.hash, event_id = e.event_id FROM audit_events e
                           WHERE h.account_id = '{account}' AND e.account_id = h.account_id AND e.seq = (SELECT max(seq) FROM audit_events WHERE account_id = '{account}'); COMMIT;")).await;
    let rewound = app.call("GET", "/v1/audit/verify", Some(&root), None).await.body;
    assert_eq!(rewound["valid"], false, "{rewound}");
    // (Deleted, or replaced by events appended since: either way the digest says so.)
    assert!(rewound["firstInvalid"]["reason"].as_str().unwrap().contains("digest"), "{rewound}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answered_call_is_already_in_the_log_when_its_answer_arrives() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    // Many reads, refusals and unauthenticated calls at once: the events of
    // concurrent calls are committed together, each before its answer.
    let calls = (0..300).map(|i| {
        let (app, root) = (&app, root.clone());
        async move {
            match i % 3 {
                0 => app.call("GET", "/v1/auth/whoami", Some(&root), None).await.status,
                1 => app.call("GET", "/v1/iam/users/nobody", Some(&root), None).await.status,
                _ => app.call("GET", "/v1/auth/whoami", Some("not-a-token"), None).await.status,
            }
        }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 100, "{statuses:?}");
    // No waiting: every answered call's event is durable already.
    let counted = app
        .sql_text(
            "SELECT count(*) FILTER (WHERE event_name = 'GetCallerIdentity' AND http_status = 200) || ' ' || \
             count(*) FILTER (WHERE event_name = 'GetUser' AND http_status = 404) || ' ' || \
             count(*) FILTER (WHERE http_status = 401) FROM audit_events",
        )
        .await;
    assert_eq!(counted, "100 100 100");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_without_credentials_records_no_field_that_may_hold_a_secret() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    // A misspelt field and a password sent as a number: refused, and
    // neither value is stored nor echoed.
    let misspelt = json!({"account": account, "userName": "root", "pasword": "misspelt-Secret-1"});
    let typo = app.call("POST", "/v1/auth/sign-in", None, Some(misspelt)).await;
    assert_eq!(typo.status, 400, "{}", typo.body);
    let number = json!({"account": account, "userName": "root", "password": 987_654_321_123_u64});
    let numeric = app.call("POST", "/v1/auth/sign-in", None, Some(number)).await;
    assert_eq!(numeric.status, 400, "{}", numeric.body);
    assert!(!numeric.body.to_string().contains("987654321123"), "the value was echoed: {}", numeric.body);
    assert!(numeric.body["message"].as_str().unwrap().contains("integer"), "{}", numeric.body);
    let stored = app.audit_table_text().await;
    for secret in ["misspelt-Secret-1", "987654321123"] {
        assert!(!stored.contains(secret), "{secret} is in the audit log");
    }
    // The field's name and what identifies the attempt are kept.
    let kept = app
        .sql_text(
            "SELECT string_agg(coalesce(request_parameters->>'pasword', request_parameters->>'password') || ' ' || \
             (request_parameters->>'account'), ',' ORDER BY seq) FROM audit_events WHERE event_name = 'SignIn'",
        )
        .await;
    assert_eq!(kept, format!("HIDDEN_DUE_TO_SECURITY_REASONS {account},HIDDEN_DUE_TO_SECURITY_REASONS {account}"));
}

/// A batch writer's remembered chain head goes stale when a change's own
/// event (or another process) appends meanwhile: its next batch is linked
/// again after the real head, never forking the chain; batches of several
/// accounts go in together.
#[tokio::test(flavor = "multi_thread")]
async fn batches_written_after_a_stale_head_still_make_one_valid_chain() {
    use pipewright_core::audit::{Event, store};
    let app = TestApp::spawn().await;
    let mut conn = pipewright_core::db::connect_one(&app.config.database_url).await.unwrap();
    let event = |account: &str, name: &str| Event {
        event_id: uuid::Uuid::new_v4(),
        recipient_account_id: account.to_owned(),
        event_time: chrono::Utc::now(),
        event_source: "codepipeline.pipewright".into(),
        event_name: name.into(),
        read_only: true,
        user_identity: json!({"type": "Root", "arn": format!("arn:pw:iam::{account}:root"), "userName": "root"}),
        source_ip_address: "127.0.0.1".into(),
        user_agent: "test".into(),
        request_parameters: Some(json!({"name": "web\u{0}"})),
        response_elements: None,
        error_code: None,
        error_message: None,
        http_status: 200,
        request_id: "r".into(),
        resources: vec![],
        shared_event_id: None,
    };
    let (a, b) = ("111111111111", "222222222222");
    let heads = store::Heads::default();
    store::append_batch(&mut conn, &heads, vec![event(a, "GetPipeline"), event(a, "GetPipeline")]).await.unwrap();
    // A change appends its event the locking way: the remembered head is stale.
    store::append(&mut conn, vec![event(a, "UpdatePipeline")]).await.unwrap();
    store::append_batch(
        &mut conn,
        &heads,
        vec![event(a, "GetPipeline"), event(b, "GetPipeline"), event(a, "ListPipelines")],
    )
    .await
    .unwrap();
    for (account, count) in [(a, 5), (b, 1)] {
        let result = store::verify(&mut conn, account, None, None, None).await.unwrap();
        assert!(result.valid, "{account}: {result:?}");
        assert_eq!(result.events_checked, count, "{account}: {result:?}");
    }
}

/// Numbers PostgreSQL writes back in full (300 digits and more) are kept as
/// their text: a caller sending one cannot make the log unreadable
/// (schemathesis found VerifyEvents answering 500 after such a call).
#[tokio::test(flavor = "multi_thread")]
async fn extreme_numbers_a_caller_sends_leave_the_log_readable_and_verifiable() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let body =
        r#"{"policyDocument": {"Version": 2.2250738585072014e-308, "tiny": 5e-324, "huge": 1e300, "Statement": []}}"#;
    let sent = app
        .client
        .put(app.url("/v1/iam/users/nobody/policies/p"))
        .bearer_auth(&root)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_client_error(), "{}", sent.status());
    let mut found = Value::Null;
    for _ in 0..50 {
        let lookup = app.call("GET", "/v1/audit/events?eventName=PutUserPolicy", Some(&root), None).await;
        assert_eq!(lookup.status, 200, "{}", lookup.body);
        found = lookup.body;
        if !found["events"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let document = &found["events"][0]["requestParameters"]["policyDocument"];
    assert_eq!(document["tiny"], "5e-324", "{found}");
    assert_eq!(document["huge"], "1e+300", "{found}");
    let verified = app.call("GET", "/v1/audit/verify?startTime=2000-01-01T00:00:00Z", Some(&root), None).await;
    assert_eq!((verified.status, verified.body["valid"].as_bool()), (200, Some(true)), "{}", verified.body);
}
