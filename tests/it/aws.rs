//! The AWS endpoint driven by the real AWS tools from PyPI: the AWS CLI
//! (awscli) and boto3, configured as a user would (a profile with an access
//! key, `endpoint_url` per service in the config file).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::executions::{BUILD, Repo, release_pipeline};
use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";

/// An AWS CLI configuration in a folder of its own: one profile per access key.
struct AwsTools {
    dir: PathBuf,
}

/// What a command printed, and whether it succeeded.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl AwsTools {
    fn new(app: &TestApp, profiles: &[(&str, &str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("pw-aws-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let endpoint = app.url("/aws");
        let mut config = String::new();
        let mut credentials = String::new();
        for (profile, key, secret) in profiles {
            config.push_str(&format!(
                "[profile {profile}]\nregion = {}\noutput = json\nservices = pipewright\n\n",
                app.config.region
            ));
            credentials
                .push_str(&format!("[{profile}]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n\n"));
        }
        config.push_str("[services pipewright]\n");
        for service in ["codepipeline", "cloudtrail", "sts", "iam"] {
            config.push_str(&format!("{service} =\n  endpoint_url = {endpoint}\n"));
        }
        std::fs::write(dir.join("config"), config).unwrap();
        std::fs::write(dir.join("credentials"), credentials).unwrap();
        Self { dir }
    }

    fn command(&self, program: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(program);
        command
            .current_dir(&self.dir)
            .env("AWS_CONFIG_FILE", self.dir.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.dir.join("credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE");
        command
    }

    async fn run(&self, command: &mut tokio::process::Command) -> Ran {
        let output = command.output().await.unwrap_or_else(|e| {
            panic!("could not start ({e}); bash deploy/local-services.sh installs awscli and boto3")
        });
        Ran {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `aws --profile PROFILE ARGS…`
    async fn aws(&self, profile: &str, args: &[&str]) -> Ran {
        self.run(self.command("aws").arg("--profile").arg(profile).args(args)).await
    }

    /// `aws …`, which must succeed; its JSON output.
    async fn ok(&self, profile: &str, args: &[&str]) -> Value {
        let ran = self.aws(profile, args).await;
        assert!(ran.ok, "aws {args:?} failed:\n{}{}", ran.stdout, ran.stderr);
        if ran.stdout.trim().is_empty() { Value::Null } else { ran.json() }
    }

    /// A Python script with boto3, given the profile and `args`; its JSON output.
    async fn boto3(&self, script: &str, args: &[&str]) -> Value {
        let ran = self.run(self.command("python3").arg("-c").arg(script).args(args)).await;
        assert!(ran.ok, "the boto3 script failed:\n{}{}", ran.stdout, ran.stderr);
        ran.json()
    }
}

impl Drop for AwsTools {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new account with users `dev` (CodePipeline and audit reading) and
/// `nobody` (no policy), each with an access key; the root's token.
async fn account_with_keys(app: &TestApp) -> (String, String, Vec<(String, String, String)>) {
    account_with(app, &["PipewrightFullAccess", "AuditReadOnlyAccess"]).await
}

/// As [`account_with_keys`], with `dev`'s policies.
async fn account_with(app: &TestApp, policies: &[&str]) -> (String, String, Vec<(String, String, String)>) {
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    app.create_user(&root, "dev", PASSWORD, policies).await;
    app.create_user(&root, "nobody", PASSWORD, &[]).await;
    let mut keys = Vec::new();
    for (profile, user) in [("pipewright", "dev"), ("nobody", "nobody")] {
        let made = app.call("POST", &format!("/v1/iam/users/{user}/access-keys"), Some(&root), None).await;
        assert_eq!(made.status, 201, "{}", made.body);
        let key = &made.body["accessKey"];
        keys.push((
            profile.to_owned(),
            key["accessKeyId"].as_str().unwrap().to_owned(),
            key["secretAccessKey"].as_str().unwrap().to_owned(),
        ));
    }
    (account, root, keys)
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn profiles(keys: &[(String, String, String)]) -> Vec<(&str, &str, &str)> {
    keys.iter().map(|(p, k, s)| (p.as_str(), k.as_str(), s.as_str())).collect()
}

fn action_of<'a>(state: &'a Value, stage: &str, action: &str) -> &'a Value {
    let stage = state["stageStates"].as_array().unwrap().iter().find(|s| s["stageName"] == stage).unwrap();
    stage["actionStates"].as_array().unwrap().iter().find(|a| a["actionName"] == action).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_cli_copies_a_pipeline_runs_and_approves_it_and_cloudtrail_finds_each_call() {
    let app = TestApp::spawn_with_worker().await;
    let (account, root, keys) = account_with_keys(&app).await;
    let repo = Repo::new("hello");
    let body = json!({"pipeline": release_pipeline("web", &repo.path, BUILD)});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&root), Some(body)).await.status, 201);
    let aws = AwsTools::new(&app, &profiles(&keys));

    // The copy flow: get-pipeline, a new name, create-pipeline from the file.
    let mut web = aws.ok("pipewright", &["codepipeline", "get-pipeline", "--name", "web"]).await;
    assert_eq!(web["metadata"]["pipelineArn"], format!("arn:pw:codepipeline:{}:{account}:web", app.config.region));
    assert!(web["metadata"]["created"].is_f64() || web["metadata"]["created"].is_i64(), "epoch seconds: {web}");
    web["pipeline"]["name"] = json!("web-copy");
    // (As with AWS, the CLI takes no `metadata` back.)
    web.as_object_mut().unwrap().remove("metadata");
    std::fs::write(aws.dir.join("web.json"), web.to_string()).unwrap();
    let created =
        aws.ok("pipewright", &["codepipeline", "create-pipeline", "--cli-input-json", "file://web.json"]).await;
    assert_eq!(created["pipeline"]["name"], "web-copy");
    assert_eq!(created["pipeline"]["version"], 1);

    let started = aws.ok("pipewright", &["codepipeline", "start-pipeline-execution", "--name", "web-copy"]).await;
    let execution = started["pipelineExecutionId"].as_str().unwrap().to_owned();

    // get-pipeline-state shows each execution at its approval (the one
    // create-pipeline started, then ours), with the token to answer.
    let mut approved_ours = false;
    let mut status = Value::Null;
    for _ in 0..120 {
        let state = aws.ok("pipewright", &["codepipeline", "get-pipeline-state", "--name", "web-copy"]).await;
        let stage = state["stageStates"].as_array().unwrap().iter().find(|s| s["stageName"] == "Approve").unwrap();
        let review = &action_of(&state, "Approve", "Review")["latestExecution"];
        if review["status"] == "InProgress"
            && let Some(token) = review["token"].as_str()
        {
            assert!(review["lastStatusChange"].is_number(), "epoch seconds: {review}");
            let waiting = stage["latestExecution"]["pipelineExecutionId"].as_str().unwrap().to_owned();
            let approved = aws
                .ok(
                    "pipewright",
                    &[
                        "codepipeline",
                        "put-approval-result",
                        "--pipeline-name",
                        "web-copy",
                        "--stage-name",
                        "Approve",
                        "--action-name",
                        "Review",
                        "--result",
                        "summary=ship it,status=Approved",
                        "--token",
                        token,
                    ],
                )
                .await;
            assert!(approved["approvedAt"].is_number(), "{approved}");
            approved_ours |= waiting == execution;
        }
        let got = aws
            .ok(
                "pipewright",
                &[
                    "codepipeline",
                    "get-pipeline-execution",
                    "--pipeline-name",
                    "web-copy",
                    "--pipeline-execution-id",
                    &execution,
                ],
            )
            .await;
        status = got["pipelineExecution"]["status"].clone();
        if status == "Succeeded" || status == "Failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(status, "Succeeded");
    assert!(approved_ours, "our execution was never seen at its approval");
    let listed =
        aws.ok("pipewright", &["codepipeline", "list-pipeline-executions", "--pipeline-name", "web-copy"]).await;
    let summaries = listed["pipelineExecutionSummaries"].as_array().unwrap();
    assert!(summaries.iter().any(|s| s["pipelineExecutionId"] == execution.as_str() && s["status"] == "Succeeded"));

    // Transitions, tags, an update.
    let transition = |verb: &str, kind: &str, reason: Option<&str>| {
        let mut args: Vec<String> =
            ["codepipeline", &format!("{verb}-stage-transition"), "--pipeline-name", "web-copy"]
                .into_iter()
                .chain(["--stage-name", "Deploy", "--transition-type", kind])
                .map(str::to_owned)
                .collect();
        if let Some(reason) = reason {
            args.extend(["--reason".to_owned(), reason.to_owned()]);
        }
        args
    };
    aws.ok("pipewright", &refs(&transition("disable", "Inbound", Some("release freeze")))).await;
    let state = aws.ok("pipewright", &["codepipeline", "get-pipeline-state", "--name", "web-copy"]).await;
    let deploy = state["stageStates"].as_array().unwrap().iter().find(|s| s["stageName"] == "Deploy").unwrap();
    assert_eq!(deploy["inboundTransitionState"]["enabled"], false);
    assert_eq!(deploy["inboundTransitionState"]["disabledReason"], "release freeze");
    let outbound = aws.aws("pipewright", &refs(&transition("disable", "Outbound", Some("x")))).await;
    assert!(!outbound.ok && outbound.stderr.contains("(ValidationException)"), "{}", outbound.stderr);
    assert!(outbound.stderr.contains("transitionType Outbound"), "{}", outbound.stderr);
    aws.ok("pipewright", &refs(&transition("enable", "Inbound", None))).await;
    let arn = format!("arn:pw:codepipeline:{}:{account}:web-copy", app.config.region);
    aws.ok("pipewright", &["codepipeline", "tag-resource", "--resource-arn", &arn, "--tags", "key=team,value=blue"])
        .await;
    let tags = aws.ok("pipewright", &["codepipeline", "list-tags-for-resource", "--resource-arn", &arn]).await;
    assert_eq!(tags["tags"], json!([{"key": "team", "value": "blue"}]));
    let mut copy = aws.ok("pipewright", &["codepipeline", "get-pipeline", "--name", "web-copy"]).await;
    copy["pipeline"]["variables"][0]["defaultValue"] = json!("production");
    std::fs::write(aws.dir.join("copy.json"), json!({"pipeline": copy["pipeline"]}).to_string()).unwrap();
    let updated =
        aws.ok("pipewright", &["codepipeline", "update-pipeline", "--cli-input-json", "file://copy.json"]).await;
    assert_eq!(updated["pipeline"]["version"], 2);

    // The same user without permission: AWS's AccessDeniedException.
    let refused = aws.aws("nobody", &["codepipeline", "get-pipeline", "--name", "web"]).await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains(&format!(
            "An error occurred (AccessDeniedException) when calling the GetPipeline operation: User: arn:pw:iam::{account}:user/nobody is not authorized to perform: codepipeline:GetPipeline on resource: arn:pw:codepipeline:{}:{account}:web",
            app.config.region
        )),
        "{}",
        refused.stderr
    );

    // CloudTrail's lookup-events lists each call, with the user who made it.
    let events = aws
        .ok(
            "pipewright",
            &["cloudtrail", "lookup-events", "--lookup-attributes", "AttributeKey=Username,AttributeValue=dev"],
        )
        .await;
    let events = events["Events"].as_array().unwrap();
    for name in [
        "GetPipeline",
        "CreatePipeline",
        "StartPipelineExecution",
        "GetPipelineState",
        "PutApprovalResult",
        "GetPipelineExecution",
        "ListPipelineExecutions",
        "DisableStageTransition",
        "EnableStageTransition",
        "TagResource",
        "UpdatePipeline",
    ] {
        let event =
            events.iter().find(|e| e["EventName"] == name).unwrap_or_else(|| panic!("no {name} event in {events:#?}"));
        assert_eq!(event["Username"], "dev");
        assert_eq!(event["EventSource"], "codepipeline.pipewright");
        assert_eq!(event["AccessKeyId"], keys[0].1.as_str());
        let record: Value = serde_json::from_str(event["CloudTrailEvent"].as_str().unwrap()).unwrap();
        assert!(record["userAgent"].as_str().unwrap().contains("aws-cli/"), "{record}");
        assert_eq!(record["userIdentity"]["userName"], "dev");
    }
    let copy_events = aws
        .ok(
            "pipewright",
            &[
                "cloudtrail",
                "lookup-events",
                "--lookup-attributes",
                &format!("AttributeKey=ResourceName,AttributeValue={arn}"),
            ],
        )
        .await;
    assert!(copy_events["Events"].as_array().unwrap().len() >= 8, "{copy_events}");
    assert!(copy_events["Events"].as_array().unwrap().iter().all(|e| {
        e["Resources"].as_array().unwrap().iter().any(|r| {
            r["ResourceName"].as_str().unwrap().starts_with(&arn) && r["ResourceType"] == "AWS::CodePipeline::Pipeline"
        })
    }));
    // The refused call is in the log too, under its AWS name.
    let denied = app.call("GET", "/v1/audit/events?userName=nobody&eventName=GetPipeline", Some(&root), None).await;
    assert_eq!(denied.body["events"][0]["errorCode"], "AccessDeniedException", "{}", denied.body);
}

/// Refusals as AWS gives them, through boto3.
const REFUSALS: &str = r#"
import datetime, json, sys
import boto3, botocore.auth, botocore.exceptions
from botocore.config import Config
profile, wrong = sys.argv[1], sys.argv[2]
def code(make, call):
    try:
        call(make())
        return ["ok", ""]
    except botocore.exceptions.ClientError as e:
        return [e.response["Error"]["Code"], e.response["Error"]["Message"]]
session = boto3.Session(profile_name=profile)
cp = lambda: session.client("codepipeline", config=Config(retries={"max_attempts": 1}))
out = {}
out["ok"] = code(cp, lambda c: c.list_pipelines())
creds = session.get_credentials()
out["wrong_secret"] = code(lambda: boto3.client("codepipeline", region_name=session.region_name,
    endpoint_url=cp().meta.endpoint_url, aws_access_key_id=creds.access_key, aws_secret_access_key=wrong), lambda c: c.list_pipelines())
out["unknown_key"] = code(lambda: boto3.client("codepipeline", region_name=session.region_name,
    endpoint_url=cp().meta.endpoint_url, aws_access_key_id="AKIAUNKNOWNKEY000000", aws_secret_access_key=wrong), lambda c: c.list_pipelines())
out["other_region"] = code(lambda: boto3.client("codepipeline", region_name="eu-west-1",
    endpoint_url=cp().meta.endpoint_url, aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key), lambda c: c.list_pipelines())
out["unknown_operation"] = code(cp, lambda c: c.list_rule_types())
out["not_implemented_filter"] = code(cp, lambda c: c.list_pipeline_executions(pipelineName="web", filter={"succeededInStage": {"stageName": "Build"}}))
def plain(request, **kwargs):
    del request.headers["Content-Type"]  # (assigning alone would add a second one)
    request.headers["Content-Type"] = "text/plain"
signed_plain = cp()
signed_plain.meta.events.register("before-sign.codepipeline.ListPipelines", plain)
out["plain"] = code(lambda: signed_plain, lambda c: c.list_pipelines())
out["nul"] = code(cp, lambda c: c.get_pipeline(name="a\x00b"))
out["iam_nul"] = code(lambda: session.client("iam"), lambda c: c.get_user(UserName="a\x00b"))
out["fifty_one"] = code(lambda: session.client("cloudtrail"), lambda c: c.lookup_events(MaxResults=51))
out["backwards"] = code(lambda: session.client("cloudtrail"), lambda c: c.lookup_events(
    StartTime=datetime.datetime(2026, 1, 2), EndTime=datetime.datetime(2026, 1, 1)))
out["two_attributes"] = code(lambda: session.client("cloudtrail"), lambda c: c.lookup_events(LookupAttributes=[
    {"AttributeKey": "EventName", "AttributeValue": "x"}, {"AttributeKey": "Username", "AttributeValue": "y"}]))
real = botocore.auth.get_current_datetime
botocore.auth.get_current_datetime = lambda: real() - datetime.timedelta(minutes=20)
out["skewed"] = code(cp, lambda c: c.list_pipelines())
botocore.auth.get_current_datetime = real
# Paginators walk every page.
names = []
for page in cp().get_paginator("list_pipelines").paginate(PaginationConfig={"PageSize": 2}):
    names += [p["name"] for p in page["pipelines"]]
out["pipelines"] = names
events = []
ct = session.client("cloudtrail")
for page in ct.get_paginator("lookup_events").paginate(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "ListPipelines"}],
        PaginationConfig={"PageSize": 2}):
    events += [e["EventId"] for e in page["Events"]]
out["events"] = events
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn boto3_is_refused_as_aws_refuses_and_its_paginators_walk_every_page() {
    let app = TestApp::spawn().await;
    let (_account, root, keys) = account_with_keys(&app).await;
    for name in ["a", "b", "c", "d", "e"] {
        let pipeline = json!({"pipeline": {"name": name, "stages": [
            {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": {"category": "Source", "owner": "Pipewright", "provider": "Upload", "version": "1"}, "outputArtifacts": [{"name": "Out"}]}]},
            {"name": "Check", "actions": [{"name": "Run", "actionTypeId": {"category": "Test", "owner": "Pipewright", "provider": "Shell", "version": "1"}, "configuration": {"commands": "true"}, "inputArtifacts": [{"name": "Out"}]}]}
        ]}});
        let created = app.call("POST", "/v1/pipelines", Some(&root), Some(pipeline)).await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let aws = AwsTools::new(&app, &profiles(&keys));
    let out = aws.boto3(REFUSALS, &["pipewright", "not-the-secret"]).await;
    assert_eq!(out["ok"][0], "ok");
    // A signed call is the key's use.
    let listed = app.call("GET", "/v1/iam/users/dev/access-keys", Some(&root), None).await;
    assert!(listed.body["accessKeyMetadata"][0]["lastUsedDate"].is_string(), "{}", listed.body);
    assert_eq!(out["wrong_secret"][0], "InvalidSignatureException", "{out}");
    assert!(out["wrong_secret"][1].as_str().unwrap().starts_with("The request signature we calculated does not match"));
    assert_eq!(out["unknown_key"][0], "UnrecognizedClientException", "{out}");
    assert!(
        out["unknown_key"][1].as_str().unwrap().starts_with("The security token included in the request is invalid")
    );
    assert_eq!(out["other_region"][0], "InvalidSignatureException", "{out}");
    assert!(out["other_region"][1].as_str().unwrap().contains("Credential should be scoped to a valid region"));
    assert_eq!(out["unknown_operation"][0], "UnknownOperationException", "{out}");
    assert_eq!(out["not_implemented_filter"][0], "ValidationException", "{out}");
    assert!(out["not_implemented_filter"][1].as_str().unwrap().contains("filter"));
    assert_eq!(out["skewed"][0], "InvalidSignatureException", "{out}");
    assert!(out["skewed"][1].as_str().unwrap().starts_with("Signature expired:"), "{out}");
    assert_eq!(out["pipelines"], json!(["a", "b", "c", "d", "e"]));
    // A signed call in another media type, a NUL character (JSON and form),
    // two lookup attributes: each refused, naming what to fix.
    assert_eq!(out["plain"][0], "UnsupportedMediaTypeException", "{out}");
    assert_eq!(out["nul"][0], "ValidationException", "{out}");
    assert_eq!(out["iam_nul"][0], "ValidationError", "{out}");
    assert!(out["iam_nul"][1].as_str().unwrap().contains("NUL"), "{out}");
    assert_eq!(out["two_attributes"][0], "ValidationException", "{out}");
    assert_eq!(out["fifty_one"][0], "ValidationException", "{out}");
    assert_eq!(out["backwards"][0], "InvalidTimeRangeException", "{out}");
    // A call refused after its signature was verified is in its account's
    // log, as its caller's; a made-up operation is not named by its caller.
    let unknown = app.call("GET", "/v1/audit/events?errorCode=UnknownOperationException", Some(&root), None).await;
    let event = &unknown.body["events"][0];
    assert_eq!(event["userIdentity"]["userName"], "dev", "{}", unknown.body);
    assert_eq!(event["eventName"], "UnknownOperation", "{}", unknown.body);
    let plain = app.call("GET", "/v1/audit/events?errorCode=UnsupportedMediaTypeException", Some(&root), None).await;
    assert_eq!(plain.body["events"][0]["eventName"], "ListPipelines", "{}", plain.body);
    // Each ListPipelines page above was a call (three pages, and the first call).
    let events = out["events"].as_array().unwrap();
    assert!(events.len() >= 4, "{out}");
    let unique: std::collections::HashSet<_> = events.iter().collect();
    assert_eq!(unique.len(), events.len(), "a page repeated an event: {out}");

    // A key made inactive signs nothing from then on.
    let off = app
        .call(
            "PATCH",
            &format!("/v1/iam/users/dev/access-keys/{}", keys[0].1),
            Some(&root),
            Some(json!({"status": "Inactive"})),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.body);
    let refused = aws.aws("pipewright", &["codepipeline", "list-pipelines"]).await;
    assert!(refused.stderr.contains("(UnrecognizedClientException)"), "{}", refused.stderr);

    // Unsigned calls, each refused in AWS's form (JSON 1.1, `__type`, 400,
    // a request id): a bearer token (it is for /v1), none at all, a query
    // string (fields go in the body), a NUL character (refused at the edge).
    let target = "CodePipeline_20150709.ListPipelines";
    // Two Authorization headers: which one would a proxy in front believe?
    let twice =
        "AWS4-HMAC-SHA256 Credential=AKIAX/20261207/local/codepipeline/aws4_request, SignedHeaders=host, Signature=00";
    for (path, authorization, body, code) in [
        ("/aws", Some(vec![format!("Bearer {root}")]), "{}", "IncompleteSignatureException"),
        ("/aws", Some(vec![twice.to_owned(), twice.to_owned()]), "{}", "IncompleteSignatureException"),
        ("/aws", None, "{}", "MissingAuthenticationTokenException"),
        ("/aws?x=1", None, "{}", "ValidationException"),
        ("/aws", None, r#"{"name": "a\u0000"}"#, "ValidationException"),
    ] {
        let mut request = app
            .client
            .post(app.url(path))
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .body(body);
        for value in authorization.into_iter().flatten() {
            request = request.header("authorization", value);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 400, "{path} {body}");
        assert_eq!(answer.headers()["content-type"], "application/x-amz-json-1.1");
        assert!(answer.headers().contains_key("x-amzn-requestid"), "{path} {body}");
        let got: Value = answer.json().await.unwrap();
        assert_eq!(got["__type"], code, "{path} {body}: {got}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sts_assume_role_gives_credentials_a_profile_uses_across_accounts_and_iam_speaks_the_query_protocol() {
    let app = TestApp::spawn().await;
    let (account, root, keys) = account_with(&app, &["AdministratorAccess"]).await;
    let dev = app.sign_in(&account, "dev", PASSWORD).await;
    // Account B: a role that account A may assume, reading pipelines only.
    let other = app.create_account(None, PASSWORD).await;
    let other_root = app.sign_in(&other, "root", PASSWORD).await;
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:pw:iam::{account}:root")}, "Action": "sts:AssumeRole"}]});
    let role = app
        .call(
            "POST",
            "/v1/iam/roles",
            Some(&other_root),
            Some(json!({"roleName": "reader", "assumeRolePolicyDocument": trust})),
        )
        .await;
    assert_eq!(role.status, 201, "{}", role.body);
    let attached = app
        .call(
            "POST",
            "/v1/iam/roles/reader/attached-policies",
            Some(&other_root),
            Some(json!({"policyArn": "arn:pw:iam::pw:policy/PipewrightReadOnlyAccess"})),
        )
        .await;
    assert_eq!(attached.status, 200, "{}", attached.body);
    let pipeline = json!({"pipeline": {"name": "b-site", "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": {"category": "Source", "owner": "Pipewright", "provider": "Upload", "version": "1"}, "outputArtifacts": [{"name": "Out"}]}]},
        {"name": "Check", "actions": [{"name": "Run", "actionTypeId": {"category": "Test", "owner": "Pipewright", "provider": "Shell", "version": "1"}, "configuration": {"commands": "true"}, "inputArtifacts": [{"name": "Out"}]}]}
    ]}});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&other_root), Some(pipeline)).await.status, 201);
    let role_arn = format!("arn:pw:iam::{other}:role/reader");
    let aws = AwsTools::new(&app, &profiles(&keys));

    // STS and IAM over the query protocol.
    let me = aws.ok("pipewright", &["sts", "get-caller-identity"]).await;
    assert_eq!(me["Arn"], format!("arn:pw:iam::{account}:user/dev"));
    assert_eq!(me["Account"], account.as_str());
    let user =
        aws.ok("pipewright", &["iam", "create-user", "--user-name", "ci-bot", "--tags", "Key=team,Value=blue"]).await;
    assert_eq!(user["User"]["Arn"], format!("arn:pw:iam::{account}:user/ci-bot"));
    assert_eq!(user["User"]["Tags"], json!([{"Key": "team", "Value": "blue"}]));
    aws.ok(
        "pipewright",
        &[
            "iam",
            "attach-user-policy",
            "--user-name",
            "ci-bot",
            "--policy-arn",
            "arn:pw:iam::pw:policy/PipewrightReadOnlyAccess",
        ],
    )
    .await;
    let policies = aws.ok("pipewright", &["iam", "list-attached-user-policies", "--user-name", "ci-bot"]).await;
    assert_eq!(policies["AttachedPolicies"][0]["PolicyName"], "PipewrightReadOnlyAccess");
    let users = aws.ok("pipewright", &["iam", "list-users"]).await;
    let names: Vec<&str> = users["Users"].as_array().unwrap().iter().map(|u| u["UserName"].as_str().unwrap()).collect();
    assert!(names.contains(&"ci-bot") && names.contains(&"nobody"), "{users}");
    let refused = aws.aws("nobody", &["iam", "create-user", "--user-name", "intruder"]).await;
    assert!(
        refused.stderr.contains(&format!(
            "An error occurred (AccessDenied) when calling the CreateUser operation: User: arn:pw:iam::{account}:user/nobody is not authorized to perform: iam:CreateUser"
        )),
        "{}",
        refused.stderr
    );
    let missing = aws.aws("pipewright", &["iam", "get-user", "--user-name", "nobody-at-all"]).await;
    assert!(missing.stderr.contains("(NoSuchEntity)"), "{}", missing.stderr);
    // A policy ARN of another account does not reach this account's policy of that name.
    let elsewhere =
        aws.aws("pipewright", &["iam", "get-policy", "--policy-arn", &format!("arn:pw:iam::{other}:policy/x")]).await;
    assert!(elsewhere.stderr.contains("(ValidationError)"), "{}", elsewhere.stderr);
    // A built-in policy by its ARN.
    let builtin = aws
        .ok("pipewright", &["iam", "get-policy", "--policy-arn", "arn:pw:iam::pw:policy/PipewrightReadOnlyAccess"])
        .await;
    assert_eq!(builtin["Policy"]["Arn"], "arn:pw:iam::pw:policy/PipewrightReadOnlyAccess", "{builtin}");
    let unknown =
        aws.aws("pipewright", &["iam", "get-policy", "--policy-arn", "arn:pw:iam::pw:policy/NoSuchOne"]).await;
    assert!(unknown.stderr.contains("(ValidationError)"), "{}", unknown.stderr);
    // Forms the query protocol refuses: a key twice, a list numbered from
    // far away (it would have made a thousand members), a gap, bytes that
    // are not UTF-8. Each a 400 naming it.
    for (form, says) in [
        ("Action=ListUsers&Version=2010-05-08&PathPrefix=%2F&PathPrefix=%2Fx", "PathPrefix is given twice"),
        ("Action=CreateUser&Version=2010-05-08&UserName=z&Tags.member.1000.Key=k", "numbered 1 to n"),
        ("Action=CreateUser&Version=2010-05-08&UserName=z&Tags.member.1.Key=a&Tags.member.3.Key=b", "numbered 1 to n"),
        ("Action=CreateUser&Version=2010-05-08&UserName=%FF", "UTF-8"),
        ("Action=ListUsers&Action=CreateUser&Version=2010-05-08", "Action is given twice"),
        ("Action=ListUsers&Version=2010-05-08&PathPrefix=%2F&pathPrefix=%2Fx", "pathPrefix is given twice"),
        ("Action=CreateUser&Version=2010-05-08&UserName=z&Tags.member.01.Key=k", "Tags.member.N"),
        ("Action=CreateUser&Version=2010-05-08&UserName=z&Tags.member.1.Key=k&Tags.member.1.key=j", "is given twice"),
    ] {
        let out = aws.boto3(RAW_FORM, &["pipewright", form]).await;
        assert_eq!(out[0], 400, "{form}: {out}");
        assert!(out[1].as_str().unwrap().contains(says), "{form}: {out}");
        assert!(out[1].as_str().unwrap().contains("<Code>ValidationError</Code>"), "{form}: {out}");
    }
    // The IAM change's record holds its answer (the XML is made from it).
    let created = app.call("GET", "/v1/audit/events?eventName=CreateUser&userName=dev", Some(&root), None).await;
    let made = created.body["events"].as_array().unwrap().iter().find(|e| e["httpStatus"] == 200).unwrap();
    assert_eq!(made["responseElements"]["user"]["userName"], "ci-bot", "{}", created.body);

    // AssumeRole across accounts: temporary credentials with a session token.
    let assumed =
        aws.ok("pipewright", &["sts", "assume-role", "--role-arn", &role_arn, "--role-session-name", "cli"]).await;
    let credentials = &assumed["Credentials"];
    let key_id = credentials["AccessKeyId"].as_str().unwrap().to_owned();
    assert!(key_id.starts_with("ASIA"), "{assumed}");
    assert_eq!(assumed["AssumedRoleUser"]["Arn"], format!("arn:pw:sts::{other}:assumed-role/reader/cli"));
    // Used through a profile of their own…
    let session_profile = format!(
        "[session]\naws_access_key_id = {key_id}\naws_secret_access_key = {}\naws_session_token = {}\n",
        credentials["SecretAccessKey"].as_str().unwrap(),
        credentials["SessionToken"].as_str().unwrap()
    );
    let mut files = std::fs::read_to_string(aws.dir.join("credentials")).unwrap();
    files.push_str(&session_profile);
    std::fs::write(aws.dir.join("credentials"), files).unwrap();
    let mut config = std::fs::read_to_string(aws.dir.join("config")).unwrap();
    config = config.replacen(
        "[services pipewright]",
        &format!(
            "[profile session]\nregion = {region}\nservices = pipewright\n\n[profile reader]\nrole_arn = {role_arn}\nsource_profile = pipewright\nrole_session_name = by-profile\nregion = {region}\nservices = pipewright\n\n[services pipewright]",
            region = app.config.region
        ),
        1,
    );
    std::fs::write(aws.dir.join("config"), config).unwrap();
    let seen = aws.ok("session", &["codepipeline", "list-pipelines"]).await;
    assert_eq!(seen["pipelines"][0]["name"], "b-site");
    let denied = aws.aws("session", &["codepipeline", "delete-pipeline", "--name", "b-site"]).await;
    assert!(denied.stderr.contains("(AccessDeniedException)"), "{}", denied.stderr);
    assert!(denied.stderr.contains(&format!("arn:pw:sts::{other}:assumed-role/reader/cli")), "{}", denied.stderr);
    // …and by the CLI itself, from a profile naming the role.
    let who = aws.ok("reader", &["sts", "get-caller-identity"]).await;
    assert_eq!(who["Arn"], format!("arn:pw:sts::{other}:assumed-role/reader/by-profile"));
    let got = aws.ok("reader", &["codepipeline", "get-pipeline", "--name", "b-site"]).await;
    assert_eq!(got["metadata"]["pipelineArn"], format!("arn:pw:codepipeline:{}:{other}:b-site", app.config.region));

    // The session token alone is no bearer token (as an AWS session token
    // is nothing without its secret)…
    let alone = app.call("GET", "/v1/pipelines", Some(credentials["SessionToken"].as_str().unwrap()), None).await;
    assert_eq!(alone.status, 401, "{}", alone.body);
    // …and a role session's bearer token (from /v1) is no session token,
    // even with the key id and secret derived from its session.
    let bearer = app
        .call(
            "POST",
            "/v1/sts/assume-role",
            Some(&dev),
            Some(json!({"roleArn": role_arn, "roleSessionName": "bearer"})),
        )
        .await;
    assert_eq!(bearer.status, 200, "{}", bearer.body);
    let bearer_token = bearer.body["credentials"]["accessToken"].as_str().unwrap();
    let services = pipewright_core::services::Services::connect(&app.config).await.ok().unwrap();
    let ring = crate::support::shared_keys(&app.config, &services).await;
    let cipher = pipewright_core::secrets::Cipher::from_config(&app.config).unwrap();
    let bearer_sid = ring.tokens.verify(bearer_token).unwrap().sid;
    let derived = pipewright_core::iam::access_keys::session_credentials(&cipher, bearer_sid);
    use secrecy::ExposeSecret;
    let out = aws
        .boto3(
            &REFUSED_SESSION.replace("TOKEN", bearer_token),
            &[&derived.access_key_id, derived.secret_access_key.expose_secret()],
        )
        .await;
    assert_eq!(out[0], "UnrecognizedClientException", "{out}");

    // A session token that is not one, or the key id of another session.
    let forged = REFUSED_SESSION.replace("TOKEN", "not-a-token");
    let out = aws.boto3(&forged, &[&key_id, credentials["SecretAccessKey"].as_str().unwrap()]).await;
    assert_eq!(out[0], "UnrecognizedClientException", "{out}");
    let other_key = REFUSED_SESSION.replace("TOKEN", credentials["SessionToken"].as_str().unwrap());
    let out = aws.boto3(&other_key, &["ASIA0000000000000000", credentials["SecretAccessKey"].as_str().unwrap()]).await;
    assert_eq!(out[0], "UnrecognizedClientException", "{out}");
    let wrong_secret = aws.boto3(&other_key, &[&key_id, "not-the-secret"]).await;
    assert_eq!(wrong_secret[0], "InvalidSignatureException", "{wrong_secret}");

    // An expired session: ExpiredTokenException, as AWS says it.
    let keys = ring;
    let sid = uuid::Uuid::new_v4();
    let mut claims = pipewright_core::auth::tokens::Claims::new(
        format!("arn:pw:sts::{other}:assumed-role/reader/old"),
        other.clone(),
        pipewright_core::auth::tokens::PrincipalKind::AssumedRole,
        "AROAOLD:old".to_owned(),
        sid,
        900,
    );
    claims.iat -= 7200;
    claims.exp -= 7200;
    claims.sigv4 = true;
    let expired = keys.tokens.sign(&claims).unwrap();
    let old = pipewright_core::iam::access_keys::session_credentials(&cipher, sid);
    let out = aws
        .boto3(
            &REFUSED_SESSION.replace("TOKEN", &expired),
            &[&old.access_key_id, old.secret_access_key.expose_secret()],
        )
        .await;
    assert_eq!(out[0], "ExpiredTokenException", "{out}");
    assert_eq!(out[1], "The security token included in the request is expired", "{out}");
}

/// A form signed for IAM by the profile's key and sent as it is; the
/// answer's status and body.
const RAW_FORM: &str = r#"
import json, sys, urllib.request, urllib.error
import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
session = boto3.Session(profile_name=sys.argv[1])
endpoint = session.client("iam").meta.endpoint_url
request = AWSRequest(method="POST", url=endpoint, data=sys.argv[2].encode(),
    headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
SigV4Auth(session.get_credentials(), "iam", session.region_name).add_auth(request)
sent = urllib.request.Request(endpoint, data=sys.argv[2].encode(), headers=dict(request.headers.items()), method="POST")
try:
    with urllib.request.urlopen(sent) as answer:
        print(json.dumps([answer.status, answer.read().decode()]))
except urllib.error.HTTPError as e:
    print(json.dumps([e.code, e.read().decode()]))
"#;

/// A CodePipeline call with temporary credentials (key id and secret as
/// arguments, the session token written in); its error code and message.
const REFUSED_SESSION: &str = r#"
import json, sys
import boto3, botocore.config, botocore.exceptions
session = boto3.Session(profile_name="pipewright")
endpoint = session.client("codepipeline").meta.endpoint_url
client = boto3.client("codepipeline", region_name=session.region_name, endpoint_url=endpoint,
    aws_access_key_id=sys.argv[1], aws_secret_access_key=sys.argv[2], aws_session_token="TOKEN",
    config=botocore.config.Config(retries={"max_attempts": 1}))
try:
    client.list_pipelines()
    print(json.dumps(["ok", ""]))
except botocore.exceptions.ClientError as e:
    print(json.dumps([e.response["Error"]["Code"], e.response["Error"]["Message"]]))
"#;

/// IAM's operations through boto3 (query protocol, XML answers): users,
/// groups, roles, managed and inline policies, access keys, a login
/// profile, simulation; each answer parsed by botocore's own model.
const IAM_TOUR: &str = r#"import json, sys
import boto3, botocore.exceptions
s = boto3.Session(profile_name=sys.argv[1])
iam = s.client("iam")
doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "codepipeline:Get*", "Resource": "*"}]})
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:pw:iam::%s:root" % s.client("sts").get_caller_identity()["Account"]}, "Action": "sts:AssumeRole"}]})
n = "1"
steps = [
 ("create_user", dict(UserName="u"+n)),
 ("get_user", dict(UserName="u"+n)),
 ("get_user", dict()),
 ("list_users", dict(MaxItems=1)),
 ("put_user_policy", dict(UserName="u"+n, PolicyName="p", PolicyDocument=doc)),
 ("get_user_policy", dict(UserName="u"+n, PolicyName="p")),
 ("list_user_policies", dict(UserName="u"+n)),
 ("create_group", dict(GroupName="g"+n)),
 ("add_user_to_group", dict(GroupName="g"+n, UserName="u"+n)),
 ("get_group", dict(GroupName="g"+n)),
 ("list_groups", dict()),
 ("attach_group_policy", dict(GroupName="g"+n, PolicyArn="arn:pw:iam::pw:policy/PipewrightReadOnlyAccess")),
 ("list_attached_group_policies", dict(GroupName="g"+n)),
 ("create_policy", dict(PolicyName="mp"+n, PolicyDocument=doc)),
 ("list_policies", dict(Scope="Local")),
 ("create_role", dict(RoleName="r"+n, AssumeRolePolicyDocument=trust)),
 ("get_role", dict(RoleName="r"+n)),
 ("list_roles", dict()),
 ("put_role_policy", dict(RoleName="r"+n, PolicyName="p", PolicyDocument=doc)),
 ("get_role_policy", dict(RoleName="r"+n, PolicyName="p")),
 ("update_assume_role_policy", dict(RoleName="r"+n, PolicyDocument=trust)),
 ("create_access_key", dict(UserName="u"+n)),
 ("list_access_keys", dict(UserName="u"+n)),
 ("list_access_keys", dict()),
 ("create_login_profile", dict(UserName="u"+n, Password="correct horse battery staple 1!")),
 ("simulate_principal_policy", dict(PolicySourceArn="arn:pw:iam::%s:user/u%s" % (s.client("sts").get_caller_identity()["Account"], n), ActionNames=["codepipeline:GetPipeline", "iam:CreateUser"])),
 ("simulate_custom_policy", dict(PolicyInputList=[doc], ActionNames=["codepipeline:GetPipeline"])),
 ("remove_user_from_group", dict(GroupName="g"+n, UserName="u"+n)),
 ("detach_group_policy", dict(GroupName="g"+n, PolicyArn="arn:pw:iam::pw:policy/PipewrightReadOnlyAccess")),
 ("delete_user_policy", dict(UserName="u"+n, PolicyName="p")),
]
out = []
for name, args in steps:
    try:
        r = getattr(iam, name)(**args)
        r.pop("ResponseMetadata", None)
        out.append([name, "ok", r])
    except botocore.exceptions.ClientError as e:
        out.append([name, e.response["Error"]["Code"], e.response["Error"]["Message"]])
print(json.dumps(out, default=str))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn boto3_drives_iam_users_groups_roles_policies_keys_and_simulation() {
    let app = TestApp::spawn().await;
    let (account, _root, keys) = account_with(&app, &["AdministratorAccess"]).await;
    let aws = AwsTools::new(&app, &profiles(&keys));
    let out = aws.boto3(IAM_TOUR, &["pipewright"]).await;
    let steps = out.as_array().unwrap();
    for step in steps {
        assert_eq!(step[1], "ok", "{step}");
    }
    let answer = |name: &str, nth: usize| steps.iter().filter(|s| s[0] == name).nth(nth).unwrap()[2].clone();
    // The caller's own user where UserName is left out, as IAM does.
    assert_eq!(answer("get_user", 1)["User"]["UserName"], "dev");
    assert_eq!(answer("list_access_keys", 1)["AccessKeyMetadata"][0]["UserName"], "dev");
    // Policy documents come back as botocore decodes IAM's (URL-encoded JSON).
    assert_eq!(answer("get_user_policy", 0)["PolicyDocument"]["Statement"][0]["Action"], "codepipeline:Get*");
    assert_eq!(
        answer("get_role", 0)["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"],
        format!("arn:pw:iam::{account}:root")
    );
    assert_eq!(answer("list_users", 0)["IsTruncated"], true);
    assert!(answer("list_users", 0)["Marker"].is_string());
    assert!(answer("create_access_key", 0)["AccessKey"]["SecretAccessKey"].is_string());
    let results = answer("simulate_principal_policy", 0)["EvaluationResults"].clone();
    assert_eq!(results[0]["EvalDecision"], "allowed", "{results}");
    assert_eq!(results[1]["EvalDecision"], "implicitDeny", "{results}");
    assert_eq!(answer("get_group", 0)["Users"][0]["UserName"], "u1");
}

/// CodePipeline's other operations through boto3 (JSON 1.1): custom action
/// types, the job API, webhooks, stop, action executions, retry, tags,
/// deletes; each answer parsed by botocore's own model.
const CODEPIPELINE_TOUR: &str = r#"import json, sys
import boto3, botocore.exceptions
s = boto3.Session(profile_name=sys.argv[1])
cp = s.client("codepipeline")
pipeline = sys.argv[2]
action_type = {"category": "Test", "owner": "Custom", "provider": "Scan", "version": "1"}
out = []
def step(op, **args):
    try:
        r = getattr(cp, op)(**args)
        r.pop("ResponseMetadata", None)
        out.append([op, "ok", r])
        return r
    except botocore.exceptions.ClientError as e:
        out.append([op, e.response["Error"]["Code"], e.response["Error"]["Message"]])
        return None
step("create_custom_action_type", category="Test", provider="Scan", version="1",
     settings={"executionUrlTemplate": "https://scanner.example.com/{Config:Project}/runs/{ExternalExecutionId}"},
     configurationProperties=[{"name": "Project", "required": True, "key": True, "secret": False, "queryable": True, "type": "String"}],
     inputArtifactDetails={"minimumCount": 1, "maximumCount": 1}, outputArtifactDetails={"minimumCount": 0, "maximumCount": 1})
step("list_action_types", actionOwnerFilter="Custom")
step("get_action_type", **action_type)
step("poll_for_jobs", actionTypeId=action_type, maxBatchSize=1, queryParam={"Project": "web"})
step("put_webhook", webhook={"name": "hook", "targetPipeline": pipeline, "targetAction": "Checkout",
     "filters": [{"jsonPath": "$.ref", "matchEquals": "refs/heads/main"}], "authentication": "GITHUB_HMAC",
     "authenticationConfiguration": {"SecretToken": "a-secret-token-of-some-length"}})
step("list_webhooks")
step("delete_webhook", name="hook")
started = step("start_pipeline_execution", name=pipeline)
ex = started["pipelineExecutionId"] if started else "none"
step("stop_pipeline_execution", pipelineName=pipeline, pipelineExecutionId=ex, abandon=True, reason="enough")
step("get_pipeline_execution", pipelineName=pipeline, pipelineExecutionId=ex)
step("list_action_executions", pipelineName=pipeline, filter={"pipelineExecutionId": ex})
step("retry_stage_execution", pipelineName=pipeline, stageName="Build", pipelineExecutionId=ex, retryMode="FAILED_ACTIONS")
arn = step("get_pipeline", name=pipeline)["metadata"]["pipelineArn"]
step("tag_resource", resourceArn=arn, tags=[{"key": "team", "value": "blue"}, {"key": "tier", "value": "1"}])
step("untag_resource", resourceArn=arn, tagKeys=["tier"])
step("list_tags_for_resource", resourceArn=arn)
step("delete_custom_action_type", category="Test", provider="Scan", version="1")
step("delete_pipeline", name=pipeline)
step("list_pipelines")
step("get_pipeline", name=pipeline)
print(json.dumps(out, default=str))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn boto3_drives_action_types_jobs_webhooks_stops_retries_tags_and_deletes() {
    let app = TestApp::spawn_with_worker().await;
    let (_account, root, keys) = account_with_keys(&app).await;
    let repo = Repo::new("hello");
    let slow = "sleep 30";
    let body = json!({"pipeline": release_pipeline("tour", &repo.path, slow)});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&root), Some(body)).await.status, 201);
    let aws = AwsTools::new(&app, &profiles(&keys));
    let out = aws.boto3(CODEPIPELINE_TOUR, &["pipewright", "tour"]).await;
    let steps = out.as_array().unwrap();
    let answer = |name: &str| steps.iter().rfind(|s| s[0] == name).unwrap().clone();
    for step in steps {
        match step[0].as_str().unwrap() {
            // A stopped execution's stage that did not fail is not retried.
            "retry_stage_execution" => assert_eq!(step[1], "StageNotRetryableException", "{step}"),
            "get_pipeline" if step == steps.last().unwrap() => {
                assert_eq!(step[1], "PipelineNotFoundException", "{step}")
            }
            _ => assert_eq!(step[1], "ok", "{step}"),
        }
    }
    assert_eq!(answer("list_action_types")[2]["actionTypes"][0]["id"]["provider"], "Scan");
    assert_eq!(answer("put_webhook")[2]["webhook"]["definition"]["authenticationConfiguration"]["SecretToken"], "****");
    assert_eq!(answer("get_pipeline_execution")[2]["pipelineExecution"]["status"], "Stopped");
    assert_eq!(answer("get_pipeline_execution")[2]["pipelineExecution"]["statusSummary"], "enough");
    assert_eq!(answer("list_tags_for_resource")[2]["tags"], json!([{"key": "team", "value": "blue"}]));
    assert!(answer("list_pipelines")[2]["pipelines"].as_array().unwrap().is_empty());
}
