//! Accounts, sign-in, sessions and users, as a team would use them.

use serde_json::{Value, json};

use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread")]
async fn accounts_sign_up_and_their_root_users_sign_in_by_id_or_alias() {
    let app = TestApp::spawn().await;
    let alias = format!("team-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let account = app.create_account(Some(&alias), PASSWORD).await;
    assert_eq!(account.len(), 12);

    let taken = app.call("POST", "/v1/accounts", None, Some(json!({"alias": alias, "rootPassword": PASSWORD}))).await;
    assert_eq!((taken.status, taken.body["code"].as_str()), (409, Some("EntityAlreadyExistsException")));
    let weak = app.call("POST", "/v1/accounts", None, Some(json!({"rootPassword": "short"}))).await;
    assert_eq!((weak.status, weak.body["code"].as_str()), (400, Some("PasswordPolicyViolationException")));
    let bad_alias =
        app.call("POST", "/v1/accounts", None, Some(json!({"alias": "Bad Alias", "rootPassword": PASSWORD}))).await;
    assert_eq!((bad_alias.status, bad_alias.body["code"].as_str()), (400, Some("InvalidInputException")));

    for name in [account.as_str(), alias.as_str()] {
        let token = app.sign_in(name, "root", PASSWORD).await;
        let me = app.call("GET", "/v1/auth/whoami", Some(&token), None).await;
        assert_eq!(me.status, 200);
        assert_eq!(
            me.body,
            json!({"account": account, "arn": format!("arn:pw:iam::{account}:root"), "userId": account})
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let mut answers = Vec::new();
    for (acct, user) in [(account.as_str(), "root"), (account.as_str(), "nobody"), ("999999999999", "root")] {
        let answer = app
            .call(
                "POST",
                "/v1/auth/sign-in",
                None,
                Some(json!({"account": acct, "userName": user, "password": "wrong password"})),
            )
            .await;
        assert_eq!(answer.status, 401);
        answers.push((answer.body["code"].clone(), answer.body["message"].clone()));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(answers[0].0, "NotAuthorizedException");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_user_reads_and_is_denied_every_change_with_an_iam_message() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    app.create_user(&root, "reader", PASSWORD, &["IAMReadOnlyAccess", "PipewrightReadOnlyAccess"]).await;
    let reader = app.sign_in(&account, "reader", PASSWORD).await;

    let me = app.call("GET", "/v1/auth/whoami", Some(&reader), None).await;
    assert_eq!(me.body["arn"], format!("arn:pw:iam::{account}:user/reader"));
    assert!(me.body["userId"].as_str().unwrap().starts_with("AIDA"));

    let listed = app.call("GET", "/v1/iam/users", Some(&reader), None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["users"][0]["userName"], "reader");
    assert_eq!(app.call("GET", "/v1/iam/users/reader", Some(&reader), None).await.status, 200);
    let attached = app.call("GET", "/v1/iam/users/reader/attached-policies", Some(&reader), None).await;
    assert_eq!(attached.body["attachedPolicies"].as_array().unwrap().len(), 2, "{}", attached.body);

    let changes = [
        ("POST", "/v1/iam/users", json!({"userName": "mallory"}), "iam:CreateUser", "user/mallory"),
        ("DELETE", "/v1/iam/users/reader", json!(null), "iam:DeleteUser", "user/reader"),
        (
            "PUT",
            "/v1/iam/users/reader/login-profile",
            json!({"password": "another password"}),
            "iam:CreateLoginProfile",
            "user/reader",
        ),
        (
            "PUT",
            "/v1/iam/users/reader/policies/all",
            json!({"policyDocument": {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}}),
            "iam:PutUserPolicy",
            "user/reader",
        ),
        (
            "POST",
            "/v1/iam/users/reader/attached-policies",
            json!({"policyArn": "arn:pw:iam::pw:policy/AdministratorAccess"}),
            "iam:AttachUserPolicy",
            "user/reader",
        ),
    ];
    for (method, path, body, action, resource) in changes {
        let body = (!body.is_null()).then_some(body);
        let denied = app.call(method, path, Some(&reader), body).await;
        assert_eq!(denied.status, 403, "{method} {path}: {}", denied.body);
        assert_eq!(denied.body["code"], "AccessDeniedException");
        let expected = format!(
            "User: arn:pw:iam::{account}:user/reader is not authorized to perform: {action} on resource: arn:pw:iam::{account}:{resource} because no identity-based policy allows the {action} action"
        );
        assert_eq!(denied.body["message"], expected.as_str());
    }
    // Nothing changed.
    let users = app.call("GET", "/v1/iam/users", Some(&root), None).await;
    assert_eq!(users.body["users"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_explicit_deny_wins_and_policies_apply_at_once() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    app.create_user(&root, "admin", PASSWORD, &["IAMFullAccess"]).await;
    let admin = app.sign_in(&account, "admin", PASSWORD).await;
    assert_eq!(app.call("POST", "/v1/iam/users", Some(&admin), Some(json!({"userName": "bob"}))).await.status, 201);

    let deny = json!({"policyDocument": {"Version": "2012-10-17", "Statement": [
        {"Sid": "NoDeletes", "Effect": "Deny", "Action": "iam:Delete*", "Resource": "*"}]}});
    assert_eq!(app.call("PUT", "/v1/iam/users/admin/policies/no-deletes", Some(&root), Some(deny)).await.status, 200);
    let denied = app.call("DELETE", "/v1/iam/users/bob", Some(&admin), None).await;
    assert_eq!(denied.status, 403);
    assert!(
        denied.body["message"].as_str().unwrap().ends_with("with an explicit deny in an identity-based policy"),
        "{}",
        denied.body
    );

    assert_eq!(app.call("DELETE", "/v1/iam/users/admin/policies/no-deletes", Some(&root), None).await.status, 204);
    assert_eq!(app.call("DELETE", "/v1/iam/users/bob", Some(&admin), None).await.status, 204);
    assert_eq!(app.call("GET", "/v1/iam/users/bob", Some(&admin), None).await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_policies_and_missing_entities_get_iam_errors() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    assert_eq!(app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": "alice"}))).await.status, 201);
    let again = app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": "ALICE"}))).await;
    assert_eq!((again.status, again.body["code"].as_str()), (409, Some("EntityAlreadyExistsException")));

    let malformed = app
        .call(
            "PUT",
            "/v1/iam/users/alice/policies/p",
            Some(&root),
            Some(
                json!({"policyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*"}]}}),
            ),
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.body["code"], "MalformedPolicyDocumentException");
    assert!(
        malformed.body["message"].as_str().unwrap().contains("Statement[0]: Resource or NotResource is required"),
        "{}",
        malformed.body
    );

    let missing = app.call("GET", "/v1/iam/users/nobody", Some(&root), None).await;
    assert_eq!((missing.status, missing.body["code"].as_str()), (404, Some("NoSuchEntityException")));
    let no_policy = app
        .call(
            "POST",
            "/v1/iam/users/alice/attached-policies",
            Some(&root),
            Some(json!({"policyArn": "arn:pw:iam::pw:policy/NoSuchPolicy"})),
        )
        .await;
    assert_eq!(no_policy.status, 404);

    // A user with something attached cannot be deleted until it is removed.
    let doc = json!({"policyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"iam:Get*\",\"Resource\":\"*\"}}"});
    assert_eq!(app.call("PUT", "/v1/iam/users/alice/policies/read", Some(&root), Some(doc)).await.status, 200);
    let stored = app.call("GET", "/v1/iam/users/alice/policies/read", Some(&root), None).await;
    assert_eq!(stored.body["policyDocument"]["Statement"]["Action"], "iam:Get*");
    let conflict = app.call("DELETE", "/v1/iam/users/alice", Some(&root), None).await;
    assert_eq!((conflict.status, conflict.body["code"].as_str()), (409, Some("DeleteConflictException")));
    assert!(conflict.body["message"].as_str().unwrap().contains("1 inline policies"));
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_listed_in_pages() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    for name in ["carol", "alice", "bob", "dave", "erin"] {
        assert_eq!(app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": name}))).await.status, 201);
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/v1/iam/users?maxResults=2&nextToken={t}"),
            None => "/v1/iam/users?maxResults=2".to_owned(),
        };
        let page = app.call("GET", &path, Some(&root), None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        names.extend(page.body["users"].as_array().unwrap().iter().map(|u| u["userName"].as_str().unwrap().to_owned()));
        match page.body["nextToken"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(names, ["alice", "bob", "carol", "dave", "erin"]);
    let bad = app.call("GET", "/v1/iam/users?maxResults=0", Some(&root), None).await;
    assert_eq!((bad.status, bad.body["code"].as_str()), (400, Some("InvalidInputException")));
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_out_ends_the_session_at_once_and_refresh_tokens_work_once() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let signed_in = app
        .call(
            "POST",
            "/v1/auth/sign-in",
            None,
            Some(json!({"account": account, "userName": "root", "password": PASSWORD})),
        )
        .await;
    let token = signed_in.body["accessToken"].as_str().unwrap().to_owned();
    let refresh = signed_in.body["refreshToken"].as_str().unwrap().to_owned();

    let refreshed = app.call("POST", "/v1/auth/refresh", None, Some(json!({"refreshToken": refresh}))).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let second = refreshed.body["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(app.call("GET", "/v1/auth/whoami", Some(&second), None).await.status, 200);

    assert_eq!(app.call("POST", "/v1/auth/sign-out", Some(&token), None).await.status, 204);
    for t in [&token, &second] {
        let after = app.call("GET", "/v1/auth/whoami", Some(t), None).await;
        assert_eq!(
            (after.status, after.body["code"].as_str()),
            (401, Some("UnrecognizedClientException")),
            "{}",
            after.body
        );
    }
    let new_refresh = refreshed.body["refreshToken"].as_str().unwrap();
    let after_sign_out = app.call("POST", "/v1/auth/refresh", None, Some(json!({"refreshToken": new_refresh}))).await;
    assert_eq!(after_sign_out.status, 401);
    let reused = app.call("POST", "/v1/auth/refresh", None, Some(json!({"refreshToken": refresh}))).await;
    assert_eq!((reused.status, reused.body["code"].as_str()), (401, Some("UnrecognizedClientException")));

    let garbage = app.call("GET", "/v1/auth/whoami", Some("not-a-token"), None).await;
    assert_eq!((garbage.status, garbage.body["code"].as_str()), (401, Some("UnrecognizedClientException")));
    let none = app.call("GET", "/v1/auth/whoami", None, None).await;
    assert_eq!((none.status, none.body["code"].as_str()), (401, Some("MissingAuthenticationTokenException")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_wrong_passwords_is_throttled_and_the_right_one_works_afterwards() {
    let app = TestApp::spawn_with(|config| config.signin_window_secs = 2).await;
    let account = app.create_account(None, PASSWORD).await;
    let attempt = |password: &'static str| {
        app.call(
            "POST",
            "/v1/auth/sign-in",
            None,
            Some(json!({"account": account, "userName": "root", "password": password})),
        )
    };
    for _ in 0..5 {
        assert_eq!(attempt("wrong password").await.status, 401);
    }
    let throttled = attempt("wrong password").await;
    assert_eq!(
        (throttled.status, throttled.body["code"].as_str()),
        (429, Some("ThrottlingException")),
        "{}",
        throttled.body
    );
    // While throttled, even the right password waits: nothing is learnt by guessing.
    assert_eq!(attempt(PASSWORD).await.status, 429);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(attempt(PASSWORD).await.status, 200);
}

/// Signs in from `from` (an X-Forwarded-For hop a trusted proxy added).
async fn sign_in_from(app: &TestApp, from: &str, body: Value) -> (u16, Value) {
    let sent =
        app.client.post(app.url("/v1/auth/sign-in")).header("x-forwarded-for", from).json(&body).send().await.unwrap();
    (sent.status().as_u16(), sent.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_count_per_user_across_addresses_and_names_and_a_known_device_still_signs_in() {
    // The test's client is the trusted proxy: X-Forwarded-For names the client.
    let app = TestApp::spawn_with(|config| config.trusted_proxies = "127.0.0.1".to_owned()).await;
    let alias = format!("team-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let account = app.create_account(Some(&alias), PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    app.create_user(&root, "alice", PASSWORD, &[]).await;
    let as_alice = |account: &str, password: &str, device: Option<&str>| json!({"account": account, "userName": "alice", "password": password, "deviceToken": device});
    // Alice's laptop signs in once and is known from then on.
    let (status, laptop) = sign_in_from(&app, "198.51.100.1", as_alice(&account, PASSWORD, None)).await;
    assert_eq!(status, 200, "{laptop}");
    let device = laptop["deviceToken"].as_str().unwrap().to_owned();
    assert!(!app.audit_table_text().await.contains(&device), "a device token is a credential: never in the audit log");

    // 40 wrong passwords from 8 addresses, by alias and by id in turn: the
    // user's counter holds all of them, whatever the address or the name.
    let mut statuses = Vec::new();
    for i in 0..40 {
        let name = if i % 2 == 0 { alias.as_str() } else { account.as_str() };
        let from = format!("203.0.113.{}", i % 8 + 1);
        statuses.push(sign_in_from(&app, &from, as_alice(name, "wrong password", None)).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 20, "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    // A new address does not help the attacker, not even with the right password…
    let (status, _) = sign_in_from(&app, "192.0.2.77", as_alice(&account, PASSWORD, None)).await;
    assert_eq!(status, 429);
    // …while Alice's known device signs in.
    let (status, body) = sign_in_from(&app, "198.51.100.1", as_alice(&alias, PASSWORD, Some(&device))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deviceToken"], device.as_str(), "the device stays the same");
    // A new password forgets the devices that knew the old one.
    let new_password = "another horse battery";
    let changed = app
        .call("PUT", "/v1/iam/users/alice/login-profile", Some(&root), Some(json!({"password": new_password})))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let (status, _) = sign_in_from(&app, "198.51.100.1", as_alice(&alias, new_password, Some(&device))).await;
    assert_eq!(status, 429, "the old device is a new one now, and alice's failures are over the limit");

    // Made-up accounts from one address: the address is throttled for
    // anyone new, but not for a user's known device there.
    let shared = "192.0.2.200";
    for i in 0..31 {
        let made_up = json!({"account": format!("nobody-{i}"), "userName": "x", "password": "guess"});
        sign_in_from(&app, shared, made_up).await;
    }
    app.create_user(&root, "bob", PASSWORD, &[]).await;
    let bob = |device: Option<&str>| json!({"account": account, "userName": "bob", "password": PASSWORD, "deviceToken": device});
    let (status, _) = sign_in_from(&app, shared, bob(None)).await;
    assert_eq!(status, 429, "a new client of the flooded address waits out the window");
    let (status, body) = sign_in_from(&app, "198.51.100.9", bob(None)).await;
    assert_eq!(status, 200, "{body}");
    let bobs = body["deviceToken"].as_str().unwrap().to_owned();
    let (status, body) = sign_in_from(&app, shared, bob(Some(&bobs))).await;
    assert_eq!(status, 200, "Bob's known device signs in from the flooded address: {body}");
    // A device token is Bob's: it is no help to anyone else.
    let (status, _) = sign_in_from(&app, shared, as_alice(&account, PASSWORD, Some(&bobs))).await;
    assert_eq!(status, 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_for_from_a_client_that_is_no_trusted_proxy_is_not_believed() {
    let app = TestApp::spawn().await;
    for i in 0..30 {
        let made_up = json!({"account": format!("nobody-{i}"), "userName": "x", "password": "guess"});
        let (status, _) = sign_in_from(&app, &format!("203.0.113.{i}"), made_up).await;
        assert_eq!(status, 401);
    }
    let (status, body) =
        sign_in_from(&app, "198.51.100.1", json!({"account": "nobody", "userName": "x", "password": "guess"})).await;
    assert_eq!(status, 429, "every attempt counted against the real peer: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_groups_policies_apply_to_its_members_only_while_they_are_members() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    app.create_user(&root, "gina", PASSWORD, &[]).await;
    let gina = app.sign_in(&account, "gina", PASSWORD).await;
    assert_eq!(app.call("GET", "/v1/iam/users", Some(&gina), None).await.status, 403);

    assert_eq!(
        app.call("POST", "/v1/iam/groups", Some(&root), Some(json!({"groupName": "readers"}))).await.status,
        201
    );
    let attach = json!({"policyArn": "arn:pw:iam::pw:policy/IAMReadOnlyAccess"});
    assert_eq!(
        app.call("POST", "/v1/iam/groups/readers/attached-policies", Some(&root), Some(attach)).await.status,
        200
    );
    assert_eq!(app.call("PUT", "/v1/iam/groups/readers/users/gina", Some(&root), None).await.status, 200);

    assert_eq!(app.call("GET", "/v1/iam/users", Some(&gina), None).await.status, 200);
    let group = app.call("GET", "/v1/iam/groups/readers", Some(&gina), None).await;
    assert_eq!(group.status, 200, "{}", group.body);
    assert_eq!(group.body["users"][0]["userName"], "gina");
    assert_eq!(group.body["group"]["arn"], format!("arn:pw:iam::{account}:group/readers"));

    let busy = app.call("DELETE", "/v1/iam/groups/readers", Some(&root), None).await;
    assert_eq!((busy.status, busy.body["code"].as_str()), (409, Some("DeleteConflictException")));
    assert_eq!(app.call("DELETE", "/v1/iam/groups/readers/users/gina", Some(&root), None).await.status, 204);
    assert_eq!(app.call("GET", "/v1/iam/users", Some(&gina), None).await.status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn managed_policies_are_versioned_and_the_default_version_applies() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let allow = |action: &str| json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]});
    let created = app
        .call(
            "POST",
            "/v1/iam/policies",
            Some(&root),
            Some(
                json!({"policyName": "lister", "policyDocument": allow("iam:ListUsers"), "description": "list users"}),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let arn = created.body["policy"]["arn"].as_str().unwrap().to_owned();
    assert_eq!(arn, format!("arn:pw:iam::{account}:policy/lister"));
    assert_eq!(created.body["policy"]["defaultVersionId"], "v1");

    app.create_user(&root, "lou", PASSWORD, &[]).await;
    let attach = json!({"policyArn": arn});
    assert_eq!(app.call("POST", "/v1/iam/users/lou/attached-policies", Some(&root), Some(attach)).await.status, 200);
    let lou = app.sign_in(&account, "lou", PASSWORD).await;
    assert_eq!(app.call("GET", "/v1/iam/users", Some(&lou), None).await.status, 200);

    let v2 = app
        .call(
            "POST",
            "/v1/iam/policies/lister/versions",
            Some(&root),
            Some(json!({"policyDocument": allow("iam:GetUser")})),
        )
        .await;
    assert_eq!((v2.status, v2.body["policyVersion"]["versionId"].as_str()), (201, Some("v2")), "{}", v2.body);
    assert_eq!(app.call("GET", "/v1/iam/users", Some(&lou), None).await.status, 200, "v1 is still the default");
    assert_eq!(
        app.call("PUT", "/v1/iam/policies/lister/default-version", Some(&root), Some(json!({"versionId": "v2"})))
            .await
            .status,
        200
    );
    assert_eq!(app.call("GET", "/v1/iam/users", Some(&lou), None).await.status, 403, "v2 applies at once");
    assert_eq!(app.call("GET", "/v1/iam/users/lou", Some(&lou), None).await.status, 200);

    for _ in 0..3 {
        let more = app
            .call(
                "POST",
                "/v1/iam/policies/lister/versions",
                Some(&root),
                Some(json!({"policyDocument": allow("iam:GetUser")})),
            )
            .await;
        assert_eq!(more.status, 201);
    }
    let sixth = app
        .call(
            "POST",
            "/v1/iam/policies/lister/versions",
            Some(&root),
            Some(json!({"policyDocument": allow("iam:GetUser")})),
        )
        .await;
    assert_eq!((sixth.status, sixth.body["code"].as_str()), (409, Some("LimitExceededException")));
    let versions = app.call("GET", "/v1/iam/policies/lister/versions", Some(&root), None).await;
    assert_eq!(versions.body["versions"].as_array().unwrap().len(), 5);

    let attached = app.call("DELETE", "/v1/iam/policies/lister", Some(&root), None).await;
    assert_eq!((attached.status, attached.body["code"].as_str()), (409, Some("DeleteConflictException")));
    let got = app.call("GET", "/v1/iam/policies/lister", Some(&root), None).await;
    assert_eq!(got.body["policy"]["attachmentCount"], 1);

    let builtin = app.call("GET", "/v1/iam/policies?scope=PW", Some(&root), None).await;
    let names: Vec<&str> =
        builtin.body["policies"].as_array().unwrap().iter().map(|p| p["policyName"].as_str().unwrap()).collect();
    for expected in [
        "PipewrightFullAccess",
        "PipewrightReadOnlyAccess",
        "IAMFullAccess",
        "IAMReadOnlyAccess",
        "AuditReadOnlyAccess",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let local = app.call("GET", "/v1/iam/policies?scope=Local", Some(&root), None).await;
    assert_eq!(local.body["policies"].as_array().unwrap().len(), 1);
    let bad = app.call("GET", "/v1/iam/policies?scope=Everything", Some(&root), None).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn access_keys_are_exchanged_for_tokens_and_their_secret_is_shown_once() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    app.create_user(&root, "ci", PASSWORD, &["IAMReadOnlyAccess"]).await;
    let created = app.call("POST", "/v1/iam/users/ci/access-keys", Some(&root), None).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key_id = created.body["accessKey"]["accessKeyId"].as_str().unwrap().to_owned();
    let secret = created.body["accessKey"]["secretAccessKey"].as_str().unwrap().to_owned();
    assert!(key_id.starts_with("AKIA") && secret.len() == 40);

    let exchange = |id: String, secret: String| {
        app.call("POST", "/v1/auth/token", None, Some(json!({"accessKeyId": id, "secretAccessKey": secret})))
    };
    let token = exchange(key_id.clone(), secret.clone()).await;
    assert_eq!(token.status, 200, "{}", token.body);
    let token = token.body["accessToken"].as_str().unwrap().to_owned();
    let me = app.call("GET", "/v1/auth/whoami", Some(&token), None).await;
    assert_eq!(me.body["arn"], format!("arn:pw:iam::{account}:user/ci"));
    assert_eq!(app.call("GET", "/v1/iam/users", Some(&token), None).await.status, 200);

    let listed = app.call("GET", "/v1/iam/users/ci/access-keys", Some(&root), None).await;
    assert_eq!(listed.body["accessKeyMetadata"][0]["accessKeyId"], key_id.as_str());
    assert!(listed.body["accessKeyMetadata"][0]["lastUsedDate"].is_string(), "{}", listed.body);
    assert!(!listed.body.to_string().contains(&secret), "the secret is never shown again");

    assert_eq!(exchange(key_id.clone(), "x".repeat(40)).await.status, 401);
    assert_eq!(app.call("POST", "/v1/iam/users/ci/access-keys", Some(&root), None).await.status, 201);
    let third = app.call("POST", "/v1/iam/users/ci/access-keys", Some(&root), None).await;
    assert_eq!((third.status, third.body["code"].as_str()), (409, Some("LimitExceededException")));

    // A role session assumed with the key's token.
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"PW": format!("arn:pw:iam::{account}:user/ci")}, "Action": "sts:AssumeRole"}]});
    let role = app
        .call("POST", "/v1/iam/roles", Some(&root), Some(json!({"roleName": "r", "assumeRolePolicyDocument": trust})))
        .await;
    assert_eq!(role.status, 201, "{}", role.body);
    let assumed = app
        .call(
            "POST",
            "/v1/sts/assume-role",
            Some(&token),
            Some(json!({"roleArn": role.body["role"]["arn"], "roleSessionName": "ci-job"})),
        )
        .await;
    assert_eq!(assumed.status, 200, "{}", assumed.body);
    let session = assumed.body["credentials"]["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(app.call("GET", "/v1/auth/whoami", Some(&session), None).await.status, 200);

    let path = format!("/v1/iam/users/ci/access-keys/{key_id}");
    assert_eq!(app.call("PATCH", &path, Some(&root), Some(json!({"status": "Inactive"}))).await.status, 200);
    let ended = app.call("GET", "/v1/auth/whoami", Some(&session), None).await;
    assert_eq!(ended.status, 401, "the role session ends with the key: {}", ended.body);
    assert_eq!(exchange(key_id.clone(), secret.clone()).await.status, 401, "an inactive key gets no token");
    // A token it gave before ends with it, and comes back with it.
    let ended = app.call("GET", "/v1/iam/users", Some(&token), None).await;
    assert_eq!(
        (ended.status, ended.body["code"].as_str()),
        (401, Some("UnrecognizedClientException")),
        "{}",
        ended.body
    );
    assert!(ended.body["message"].as_str().unwrap().contains("inactive or deleted"), "{}", ended.body);
    assert_eq!(app.call("PATCH", &path, Some(&root), Some(json!({"status": "Active"}))).await.status, 200);
    assert_eq!(app.call("GET", "/v1/iam/users", Some(&token), None).await.status, 200);
    assert_eq!(app.call("PATCH", &path, Some(&root), Some(json!({"status": "Inactive"}))).await.status, 200);
    assert_eq!(app.call("PATCH", &path, Some(&root), Some(json!({"status": "Sleeping"}))).await.status, 400);
    assert_eq!(app.call("DELETE", &path, Some(&root), None).await.status, 204);
    assert_eq!(app.call("DELETE", &path, Some(&root), None).await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_are_simulated_over_http_as_authz_decides_them() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    let custom = json!({
        "policyInputList": [{"Version": "2012-10-17", "Statement": [
            {"Sid": "Read", "Effect": "Allow", "Action": "codepipeline:Get*", "Resource": "*",
             "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}},
            {"Sid": "NoProd", "Effect": "Deny", "Action": "*", "Resource": "arn:pw:codepipeline:*:*:web/Prod*"}]}],
        "actionNames": ["codepipeline:GetPipeline", "codepipeline:DeletePipeline"],
        "resourceArns": ["arn:pw:codepipeline:local:111122223333:web", "arn:pw:codepipeline:local:111122223333:web/Prod"],
        "contextEntries": [{"contextKeyName": "aws:SourceIp", "contextKeyValues": ["203.0.113.7"], "contextKeyType": "ip"}]
    });
    let answer = app.call("POST", "/v1/iam/simulate-custom-policy", Some(&root), Some(custom)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let decisions: Vec<(String, String, String)> = answer.body["evaluationResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["evalActionName"].as_str().unwrap().into(),
                r["evalResourceName"].as_str().unwrap().rsplit(':').next().unwrap().into(),
                r["evalDecision"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = |a: &str, r: &str, d: &str| (a.to_owned(), r.to_owned(), d.to_owned());
    assert_eq!(
        decisions,
        vec![
            expect("codepipeline:GetPipeline", "web", "allowed"),
            expect("codepipeline:GetPipeline", "web/Prod", "explicitDeny"),
            expect("codepipeline:DeletePipeline", "web", "implicitDeny"),
            expect("codepipeline:DeletePipeline", "web/Prod", "explicitDeny"),
        ]
    );
    assert_eq!(answer.body["evaluationResults"][1]["matchedStatements"][0]["sid"], "NoProd");

    let malformed = app
        .call(
            "POST",
            "/v1/iam/simulate-custom-policy",
            Some(&root),
            Some(json!({"policyInputList": [{"Statement": {"Effect": "Allow"}}], "actionNames": ["a:b"]})),
        )
        .await;
    assert_eq!((malformed.status, malformed.body["code"].as_str()), (400, Some("MalformedPolicyDocumentException")));

    app.create_user(&root, "sam", PASSWORD, &["IAMReadOnlyAccess"]).await;
    let principal = app
        .call(
            "POST",
            "/v1/iam/simulate-principal-policy",
            Some(&root),
            Some(json!({
            "policySourceArn": format!("arn:pw:iam::{account}:user/sam"),
            "actionNames": ["iam:ListUsers", "iam:CreateUser"]})),
        )
        .await;
    assert_eq!(principal.status, 200, "{}", principal.body);
    assert_eq!(principal.body["evaluationResults"][0]["evalDecision"], "allowed");
    assert_eq!(
        principal.body["evaluationResults"][0]["matchedStatements"][0]["sourcePolicyId"],
        "arn:pw:iam::pw:policy/IAMReadOnlyAccess"
    );
    assert_eq!(principal.body["evaluationResults"][1]["evalDecision"], "implicitDeny");
    let elsewhere = app
        .call(
            "POST",
            "/v1/iam/simulate-principal-policy",
            Some(&root),
            Some(json!({"policySourceArn": "arn:pw:iam::999999999999:user/sam", "actionNames": ["iam:ListUsers"]})),
        )
        .await;
    assert_eq!(
        elsewhere.status, 403,
        "another account's principal is not the caller's to simulate: {}",
        elsewhere.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_learns_what_it_may_do_itself_as_its_calls_would_be_decided() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    app.create_user(&root, "reader", PASSWORD, &["PipewrightReadOnlyAccess"]).await;
    let reader = app.sign_in(&account, "reader", PASSWORD).await;
    let web = format!("arn:pw:codepipeline:local:{account}:web");
    let checks = json!({"checks": [
        {"action": "codepipeline:GetPipelineState", "resource": web},
        {"action": "codepipeline:StartPipelineExecution", "resource": web},
        {"action": "codepipeline:PutApprovalResult", "resource": format!("{web}/Approve/Review")}]});
    let answer = app.call("POST", "/v1/auth/simulate", Some(&reader), Some(checks.clone())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let allowed: Vec<bool> =
        answer.body["results"].as_array().unwrap().iter().map(|r| r["allowed"].as_bool().unwrap()).collect();
    assert_eq!(allowed, [true, false, false]);
    assert_eq!(answer.body["results"][0]["message"], Value::Null);
    let refusal = answer.body["results"][1]["message"].as_str().unwrap();
    assert!(
        refusal.contains(&format!("arn:pw:iam::{account}:user/reader"))
            && refusal.contains("codepipeline:StartPipelineExecution")
            && refusal.contains(&web),
        "{refusal}"
    );
    // The same words the call itself is refused with.
    let tried = app.call("POST", "/v1/pipelines/web/executions", Some(&reader), Some(json!({}))).await;
    assert_eq!((tried.status, tried.body["message"].as_str()), (403, Some(refusal)));

    // The root may do everything.
    let answer = app.call("POST", "/v1/auth/simulate", Some(&root), Some(checks.clone())).await;
    assert!(answer.body["results"].as_array().unwrap().iter().all(|r| r["allowed"] == true), "{}", answer.body);

    // Bad input is named; a caller without credentials is not answered.
    for (body, names) in [
        (json!({"checks": []}), "checks"),
        (json!({"checks": vec![json!({"action": "codepipeline:GetPipeline", "resource": "*"}); 51]}), "checks"),
        (json!({"checks": [{"action": "GetPipeline", "resource": "*"}]}), "checks[0].action"),
        (json!({"checks": [{"action": "codepipeline:GetPipeline", "resource": ""}]}), "checks[0].resource"),
    ] {
        let answer = app.call("POST", "/v1/auth/simulate", Some(&reader), Some(body)).await;
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert!(answer.body["message"].as_str().unwrap().contains(names), "{}", answer.body);
    }
    assert_eq!(app.call("POST", "/v1/auth/simulate", None, Some(checks)).await.status, 401);

    // It is in the caller's audit log, as a read.
    let found = app.call("GET", "/v1/audit/events?eventName=SimulateCallerPolicy", Some(&root), None).await;
    let event = &found.body["events"].as_array().unwrap()[0];
    assert_eq!(event["readOnly"], true, "{event}");
}

#[tokio::test(flavor = "multi_thread")]
async fn iam_names_no_url_can_hold_are_refused() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    // `/v1/iam/users/..` is `/v1/iam` to every client: such a user could
    // never be read, changed or deleted.
    for (path, body) in [
        ("/v1/iam/users", json!({"userName": ".."})),
        ("/v1/iam/groups", json!({"groupName": "."})),
        (
            "/v1/iam/roles",
            json!({"roleName": "..", "assumeRolePolicyDocument":
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"PW": "*"}, "Action": "sts:AssumeRole"}]}}),
        ),
    ] {
        let refused = app.call("POST", path, Some(&root), Some(body)).await;
        assert_eq!(refused.status, 400, "{path}: {}", refused.body);
        assert!(refused.body["message"].as_str().unwrap().contains("no URL can name it"), "{}", refused.body);
    }
}
