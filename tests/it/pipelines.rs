//! Pipeline declarations, as a team writes, copies, changes and guards them.

use serde_json::{Value, json};

use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";

fn kind(category: &str, provider: &str) -> Value {
    json!({"category": category, "owner": "Pipewright", "provider": provider, "version": "1"})
}

/// Source(Git) → Build (two actions in parallel, then a test of one's
/// output) → Approval → Deploy (two artifacts in), with variables and
/// namespaces.
pub fn four_stages(name: &str) -> Value {
    json!({
        "name": name,
        "executionMode": "QUEUED",
        "variables": [{"name": "environment", "defaultValue": "staging", "description": "where to deploy"}],
        "stages": [
            {"name": "Source", "actions": [{
                "name": "Checkout", "actionTypeId": kind("Source", "Git"), "runOrder": 1,
                "configuration": {"repositoryUrl": "/srv/git/web.git", "branch": "main"},
                "outputArtifacts": [{"name": "SourceOut"}], "namespace": "SourceVariables"}]},
            {"name": "Build", "actions": [
                {"name": "Compile", "actionTypeId": kind("Build", "Shell"), "runOrder": 1,
                 "configuration": {"commands": "make build", "outputFiles": "dist/**"},
                 "inputArtifacts": [{"name": "SourceOut"}], "outputArtifacts": [{"name": "BuildOut"}],
                 "namespace": "BuildVariables"},
                {"name": "Docs", "actionTypeId": kind("Build", "Shell"), "runOrder": 1,
                 "configuration": {"commands": "make docs"},
                 "inputArtifacts": [{"name": "SourceOut"}], "outputArtifacts": [{"name": "DocsOut"}]},
                {"name": "UnitTest", "actionTypeId": kind("Test", "Shell"), "runOrder": 2,
                 "configuration": {"commands": "make test COMMIT=#{SourceVariables.CommitId}"},
                 "inputArtifacts": [{"name": "BuildOut"}]}]},
            {"name": "Approve", "actions": [{
                "name": "Review", "actionTypeId": kind("Approval", "Manual"),
                "configuration": {"customData": "Release #{BuildVariables.VERSION}?"}}]},
            {"name": "Deploy", "actions": [{
                "name": "Release", "actionTypeId": kind("Deploy", "Shell"), "timeoutInMinutes": 30,
                "configuration": {"commands": "./deploy.sh #{variables.environment}"},
                "inputArtifacts": [{"name": "BuildOut"}, {"name": "DocsOut"}]}]}
        ]
    })
}

async fn root(app: &TestApp) -> (String, String) {
    let account = app.create_account(None, PASSWORD).await;
    let token = app.sign_in(&account, "root", PASSWORD).await;
    (account, token)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_is_copied_by_reading_it_and_creating_another_from_the_same_document() {
    let app = TestApp::spawn().await;
    let (account, root) = root(&app).await;
    let created = app
        .call(
            "POST",
            "/v1/pipelines",
            Some(&root),
            Some(json!({"pipeline": four_stages("web"), "tags": [{"key": "team", "value": "blue"}]})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["pipeline"]["version"], 1);
    assert_eq!(created.body["tags"], json!([{"key": "team", "value": "blue"}]));

    let got = app.call("GET", "/v1/pipelines/web", Some(&root), None).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["metadata"]["pipelineArn"], format!("arn:pw:codepipeline:local:{account}:web"));
    let mut document = got.body["pipeline"].clone();
    assert_eq!(document["stages"][1]["actions"][1]["runOrder"], 1, "defaults are filled in: {document}");
    assert_eq!(document["pipelineType"], "V2");
    document["name"] = json!("web-copy");
    let copied = app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": document}))).await;
    assert_eq!(copied.status, 201, "{}", copied.body);
    let copy = app.call("GET", "/v1/pipelines/web-copy", Some(&root), None).await;
    let mut original = got.body["pipeline"].clone();
    original["name"] = json!("web-copy");
    assert_eq!(copy.body["pipeline"], original, "the copy is identical but for its name");

    // The same document as YAML, out and in.
    let yaml = app
        .client
        .get(app.url("/v1/pipelines/web"))
        .bearer_auth(&root)
        .header("accept", "application/yaml")
        .send()
        .await
        .unwrap();
    assert_eq!(yaml.headers()["content-type"], "application/yaml");
    let text = yaml.text().await.unwrap();
    assert!(text.contains("name: web\n") && text.contains("provider: Git"), "{text}");
    let body = text.replace("pipeline:\n  name: web\n", "pipeline:\n  name: web-yaml\n");
    assert!(body.contains("name: web-yaml"), "{body}");
    let broken_yaml = app
        .client
        .post(app.url("/v1/pipelines"))
        .bearer_auth(&root)
        .header("content-type", "application/yaml")
        .body("pipeline: [1, 2]")
        .send()
        .await
        .unwrap();
    assert_eq!(broken_yaml.status(), 400);
    let broken_yaml: Value = broken_yaml.json().await.unwrap();
    assert_eq!(broken_yaml["errors"][0]["path"], "pipeline", "{broken_yaml}");
    assert!(!broken_yaml["message"].as_str().unwrap().starts_with("pipeline: pipeline:"), "{broken_yaml}");
    let from_yaml = app
        .client
        .post(app.url("/v1/pipelines"))
        .bearer_auth(&root)
        .header("content-type", "application/yaml")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(from_yaml.status(), 201, "{}", from_yaml.text().await.unwrap());
    let yaml_copy = app.call("GET", "/v1/pipelines/web-yaml", Some(&root), None).await;
    original["name"] = json!("web-yaml");
    assert_eq!(yaml_copy.body["pipeline"], original);

    // A name taken, a list by prefix in pages, and a delete.
    let again = app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": four_stages("web")}))).await;
    assert_eq!((again.status, again.body["code"].as_str()), (409, Some("PipelineNameInUseException")));
    let page = app.call("GET", "/v1/pipelines?namePrefix=web-&maxResults=1", Some(&root), None).await;
    assert_eq!(page.body["pipelines"][0]["name"], "web-copy", "{}", page.body);
    assert_eq!(page.body["pipelines"][0]["executionMode"], "QUEUED");
    let token = page.body["nextToken"].as_str().unwrap();
    let next = app
        .call("GET", &format!("/v1/pipelines?namePrefix=web-&maxResults=1&nextToken={token}"), Some(&root), None)
        .await;
    assert_eq!(next.body["pipelines"][0]["name"], "web-yaml", "{}", next.body);
    assert!(next.body["nextToken"].is_null(), "{}", next.body);
    assert_eq!(app.call("DELETE", "/v1/pipelines/web-yaml", Some(&root), None).await.status, 204);
    let gone = app.call("GET", "/v1/pipelines/web-yaml", Some(&root), None).await;
    assert_eq!((gone.status, gone.body["code"].as_str()), (404, Some("PipelineNotFoundException")));

    let types = app.call("GET", "/v1/action-types", Some(&root), None).await;
    let ids: Vec<String> = types.body["actionTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{}/{}", t["id"]["category"].as_str().unwrap(), t["id"]["provider"].as_str().unwrap()))
        .collect();
    for expected in ["Source/Git", "Source/Upload", "Build/Shell", "Test/Shell", "Deploy/Shell", "Approval/Manual"] {
        assert!(ids.contains(&expected.to_owned()), "{expected} in {ids:?}");
    }
}

/// Applies `change` to a valid pipeline.
fn broken(change: impl FnOnce(&mut Value)) -> Value {
    let mut pipeline = four_stages("broken");
    change(&mut pipeline);
    pipeline
}

#[tokio::test(flavor = "multi_thread")]
async fn each_broken_declaration_gets_a_400_naming_the_path_and_the_rule() {
    let app = TestApp::spawn().await;
    let (_, root) = root(&app).await;
    let git = kind("Source", "Git");
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("a bad character in the name", broken(|p| p["name"] = json!("my pipeline!")), "name", "NamePattern"),
        // No URL can name `..` (clients remove the segment): refused, as `.` is.
        ("a name of dots", broken(|p| p["name"] = json!("..")), "name", "NamePattern"),
        ("a stage named .", broken(|p| p["stages"][1]["name"] = json!(".")), "stages[1].name", "NamePattern"),
        ("a name too long", broken(|p| p["name"] = json!("x".repeat(101))), "name", "NameLength"),
        ("one stage only", broken(|p| p["stages"] = json!([p["stages"][0].clone()])), "stages", "TooFewStages"),
        (
            "51 stages",
            broken(|p| {
                let mut stages = vec![p["stages"][0].clone()];
                for i in 0..50 {
                    stages.push(json!({"name": format!("S{i}"), "actions": [{"name": "a", "actionTypeId": kind("Approval", "Manual")}]}));
                }
                p["stages"] = json!(stages);
            }),
            "stages",
            "TooManyStages",
        ),
        (
            "a build action in the first stage",
            broken(|p| p["stages"][0]["actions"][0]["actionTypeId"] = kind("Build", "Shell")),
            "stages[0].actions[0].actionTypeId.category",
            "NonSourceInFirstStage",
        ),
        (
            "a source action in a later stage",
            broken(
                |p| p["stages"][2]["actions"][0] = json!({"name": "Late", "actionTypeId": git, "configuration": {"repositoryUrl": "/x"}, "outputArtifacts": [{"name": "LateOut"}]}),
            ),
            "stages[2].actions[0].actionTypeId.category",
            "SourceOutsideFirstStage",
        ),
        (
            "two stages of one name",
            broken(|p| p["stages"][2]["name"] = json!("Build")),
            "stages[2].name",
            "DuplicateStageName",
        ),
        (
            "two actions of one name",
            broken(|p| p["stages"][1]["actions"][1]["name"] = json!("Compile")),
            "stages[1].actions[1].name",
            "DuplicateActionName",
        ),
        (
            "one artifact produced twice",
            broken(|p| p["stages"][1]["actions"][1]["outputArtifacts"][0]["name"] = json!("BuildOut")),
            "stages[1].actions[1].outputArtifacts[0]",
            "DuplicateOutputArtifact",
        ),
        (
            "an input nobody produces",
            broken(|p| p["stages"][3]["actions"][0]["inputArtifacts"][0]["name"] = json!("Nowhere")),
            "stages[3].actions[0].inputArtifacts[0]",
            "ArtifactNotProducedUpstream",
        ),
        (
            "an input produced in parallel",
            broken(|p| p["stages"][1]["actions"][2]["runOrder"] = json!(1)),
            "stages[1].actions[2].inputArtifacts[0]",
            "ArtifactNotProducedUpstream",
        ),
        (
            "an input produced later",
            broken(|p| {
                p["stages"][1]["actions"][1]["inputArtifacts"] = json!([{"name": "SourceOut"}, {"name": "BuildOut"}])
            }),
            "stages[1].actions[1].inputArtifacts[1]",
            "ArtifactNotProducedUpstream",
        ),
        (
            "runOrder 0",
            broken(|p| p["stages"][1]["actions"][0]["runOrder"] = json!(0)),
            "stages[1].actions[0].runOrder",
            "RunOrderRange",
        ),
        (
            "runOrder 1000",
            broken(|p| p["stages"][3]["actions"][0]["runOrder"] = json!(1000)),
            "stages[3].actions[0].runOrder",
            "RunOrderRange",
        ),
        (
            "an unknown provider",
            broken(|p| p["stages"][1]["actions"][0]["actionTypeId"]["provider"] = json!("Gradle")),
            "stages[1].actions[0].actionTypeId",
            "UnknownActionType",
        ),
        (
            "an unknown category",
            broken(|p| p["stages"][1]["actions"][0]["actionTypeId"]["category"] = json!("Lint")),
            "stages[1].actions[0].actionTypeId.category",
            "UnknownCategory",
        ),
        (
            "required configuration missing",
            broken(|p| p["stages"][1]["actions"][0]["configuration"] = json!({})),
            "stages[1].actions[0].configuration",
            "MissingConfiguration",
        ),
        (
            "configuration the type lacks",
            broken(|p| p["stages"][1]["actions"][0]["configuration"]["colour"] = json!("red")),
            "stages[1].actions[0].configuration.colour",
            "UnknownConfiguration",
        ),
        (
            "two outputs from a Git source",
            broken(|p| p["stages"][0]["actions"][0]["outputArtifacts"] = json!([{"name": "A"}, {"name": "B"}])),
            "stages[0].actions[0].outputArtifacts",
            "ArtifactCount",
        ),
        (
            "an input to an approval",
            broken(|p| p["stages"][2]["actions"][0]["inputArtifacts"] = json!([{"name": "BuildOut"}])),
            "stages[2].actions[0].inputArtifacts",
            "ArtifactCount",
        ),
        (
            "an undeclared pipeline variable",
            broken(|p| p["stages"][3]["actions"][0]["configuration"]["commands"] = json!("deploy #{variables.region}")),
            "stages[3].actions[0].configuration.commands",
            "UnknownVariable",
        ),
        (
            "an unknown namespace",
            broken(|p| p["stages"][3]["actions"][0]["configuration"]["commands"] = json!("deploy #{Nope.X}")),
            "stages[3].actions[0].configuration.commands",
            "UnknownNamespace",
        ),
        (
            "a namespace of a parallel action",
            broken(|p| p["stages"][1]["actions"][1]["configuration"]["commands"] = json!("make #{BuildVariables.V}")),
            "stages[1].actions[1].configuration.commands",
            "NamespaceNotUpstream",
        ),
        (
            "one namespace twice",
            broken(|p| p["stages"][1]["actions"][1]["namespace"] = json!("BuildVariables")),
            "stages[1].actions[1].namespace",
            "DuplicateNamespace",
        ),
        (
            "a one-minute timeout",
            broken(|p| p["stages"][3]["actions"][0]["timeoutInMinutes"] = json!(1)),
            "stages[3].actions[0].timeoutInMinutes",
            "TimeoutRange",
        ),
        (
            "a boolean that is not",
            broken(|p| p["stages"][0]["actions"][0]["configuration"]["pollForSourceChanges"] = json!("maybe")),
            "stages[0].actions[0].configuration.pollForSourceChanges",
            "ConfigurationType",
        ),
        (
            "environment variables that are not JSON",
            broken(|p| p["stages"][1]["actions"][0]["configuration"]["environmentVariables"] = json!("A=1")),
            "stages[1].actions[0].configuration.environmentVariables",
            "ConfigurationType",
        ),
        ("an empty stage", broken(|p| p["stages"][2]["actions"] = json!([])), "stages[2].actions", "EmptyStage"),
        (
            "one variable twice",
            broken(|p| p["variables"] = json!([{"name": "v"}, {"name": "v"}])),
            "variables[1].name",
            "DuplicateVariableName",
        ),
        ("a role that is not a role ARN", broken(|p| p["roleArn"] = json!("admin")), "roleArn", "RoleArnPattern"),
        (
            "a trigger on a non-Git action",
            broken(|p| {
                p["triggers"] = json!([{"providerType": "Git", "gitConfiguration": {"sourceActionName": "Compile"}}])
            }),
            "triggers[0].gitConfiguration.sourceActionName",
            "TriggerSourceAction",
        ),
        (
            "a secret given as its mask",
            broken(|p| p["stages"][0]["actions"][0]["configuration"]["token"] = json!("****")),
            "stages[0].actions[0].configuration.token",
            "MaskedSecret",
        ),
        ("an unknown execution mode", broken(|p| p["executionMode"] = json!("SOMETIMES")), "executionMode", "Shape"),
        ("a V1 pipeline with variables", broken(|p| p["pipelineType"] = json!("V1")), "variables", "V2Only"),
        (
            "an S3 store without a bucket",
            broken(|p| p["artifactStore"] = json!({"type": "S3"})),
            "artifactStore.location",
            "ArtifactStoreLocation",
        ),
        (
            "a runOrder that is text",
            broken(|p| p["stages"][1]["actions"][0]["runOrder"] = json!("first")),
            "stages[1].actions[0].runOrder",
            "Shape",
        ),
        (
            "a misspelt field",
            broken(|p| p["stages"][1]["actions"][0]["inputArtifact"] = json!([])),
            "stages[1].actions[0].inputArtifact",
            "Shape",
        ),
        // No field accepted and ignored: what is not built is refused, named.
        (
            "a stage that would retry itself",
            broken(|p| p["stages"][1]["onFailure"] = json!({"result": "RETRY"})),
            "stages[1].onFailure.result",
            "NotSupported",
        ),
        (
            "a trigger pattern that is not a glob",
            broken(|p| {
                p["triggers"] = json!([{"providerType": "Git", "gitConfiguration": {"sourceActionName": "Checkout",
                    "push": [{"branches": {"includes": ["release/[1-"]}}]}}])
            }),
            "triggers[0].gitConfiguration.push[0].branches.includes[0]",
            "TriggerPattern",
        ),
        (
            "a push filter with tags and file paths",
            broken(|p| {
                p["triggers"] = json!([{"providerType": "Git", "gitConfiguration": {"sourceActionName": "Checkout",
                    "push": [{"tags": {"includes": ["v*"]}, "filePaths": {"includes": ["src/**"]}}]}}])
            }),
            "triggers[0].gitConfiguration.push[0].filePaths",
            "TriggerFilters",
        ),
        (
            "a pull-request event that does not exist",
            broken(|p| {
                p["triggers"] = json!([{"providerType": "Git", "gitConfiguration": {"sourceActionName": "Checkout",
                    "pullRequest": [{"events": ["MERGED"], "branches": {"includes": ["main"]}}]}}])
            }),
            "triggers[0].gitConfiguration.pullRequest[0].events[0]",
            "TriggerFilters",
        ),
        (
            "a fourth push filter",
            broken(|p| {
                let one = json!({"branches": {"includes": ["main"]}});
                p["triggers"] = json!([{"providerType": "Git", "gitConfiguration": {"sourceActionName": "Checkout",
                    "push": [one.clone(), one.clone(), one.clone(), one]}}])
            }),
            "triggers[0].gitConfiguration.push",
            "TooManyFilters",
        ),
    ];
    assert!(cases.len() >= 20);
    for (what, pipeline, path, rule) in cases {
        let answer = app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": pipeline}))).await;
        assert_eq!(answer.status, 400, "{what}: {}", answer.body);
        let code = answer.body["code"].as_str().unwrap();
        assert!(["InvalidStructureException", "ValidationException"].contains(&code), "{what}: {}", answer.body);
        let errors = answer.body["errors"].as_array().unwrap_or_else(|| panic!("{what}: no errors in {}", answer.body));
        assert!(
            errors.iter().any(|e| e["path"] == path && e["rule"] == rule),
            "{what}: expected {path} {rule} in {}",
            answer.body
        );
        assert!(answer.body["message"].as_str().unwrap().contains(errors[0]["path"].as_str().unwrap()), "{what}");
    }
    let none = app.call("GET", "/v1/pipelines", Some(&root), None).await;
    assert_eq!(none.body["pipelines"], json!([]), "no broken pipeline was stored");
    // Each is in the audit log as a CreatePipeline of CodePipeline's, even
    // those whose body could not be read.
    let mut events = Vec::new();
    for _ in 0..150 {
        let found =
            app.call("GET", "/v1/audit/events?eventName=CreatePipeline&maxResults=100", Some(&root), None).await;
        events = found.body["events"].as_array().unwrap().clone();
        if events.len() >= 35 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await; // rejected calls are written in batches
    }
    assert!(events.len() >= 35, "{}", events.len());
    assert!(events.iter().all(|e| e["eventSource"] == "codepipeline.pipewright" && e["httpStatus"] == 400));
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_updates_from_one_version_one_wins_and_the_other_gets_409() {
    let app = TestApp::spawn().await;
    let (_, root) = root(&app).await;
    assert_eq!(
        app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": four_stages("web")}))).await.status,
        201
    );
    let current = app.call("GET", "/v1/pipelines/web", Some(&root), None).await.body["pipeline"].clone();
    assert_eq!(current["version"], 1);

    let mut first = current.clone();
    first["executionMode"] = json!("PARALLEL");
    let mut second = current.clone();
    second["executionMode"] = json!("SUPERSEDED");
    let (a, b) = tokio::join!(
        app.call("PUT", "/v1/pipelines/web", Some(&root), Some(json!({"pipeline": first}))),
        app.call("PUT", "/v1/pipelines/web", Some(&root), Some(json!({"pipeline": second}))),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{} {}", a.body, b.body);
    let lost = if a.status == 409 { &a } else { &b };
    assert_eq!(lost.body["code"], "ConcurrentModificationException");
    let message = lost.body["message"].as_str().unwrap();
    assert!(message.contains("pipeline \"web\" is at version 2"), "{}", lost.body);
    let won = if a.status == 200 { &a } else { &b };
    assert_eq!(won.body["pipeline"]["version"], 2);

    // Both versions stay readable.
    let now = app.call("GET", "/v1/pipelines/web", Some(&root), None).await;
    assert_eq!(now.body["pipeline"]["executionMode"], won.body["pipeline"]["executionMode"]);
    let old = app.call("GET", "/v1/pipelines/web?version=1", Some(&root), None).await;
    assert_eq!(old.body["pipeline"]["executionMode"], "QUEUED", "{}", old.body);
    let missing = app.call("GET", "/v1/pipelines/web?version=9", Some(&root), None).await;
    assert_eq!((missing.status, missing.body["code"].as_str()), (404, Some("PipelineVersionNotFoundException")));

    // A rename, a missing version and an invalid change are refused; nothing changes.
    let mut renamed = now.body["pipeline"].clone();
    renamed["name"] = json!("other");
    let refused = app.call("PUT", "/v1/pipelines/web", Some(&root), Some(json!({"pipeline": renamed}))).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let mut unversioned = now.body["pipeline"].clone();
    unversioned.as_object_mut().unwrap().remove("version");
    let refused = app.call("PUT", "/v1/pipelines/web", Some(&root), Some(json!({"pipeline": unversioned}))).await;
    assert!(refused.body["message"].as_str().unwrap().contains("version"), "{}", refused.body);
    let mut invalid = now.body["pipeline"].clone();
    invalid["stages"][1]["actions"][0]["runOrder"] = json!(0);
    let refused = app.call("PUT", "/v1/pipelines/web", Some(&root), Some(json!({"pipeline": invalid}))).await;
    assert_eq!(refused.body["code"], "InvalidStructureException", "{}", refused.body);
    assert_eq!(app.call("GET", "/v1/pipelines/web", Some(&root), None).await.body["pipeline"]["version"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_whose_policy_names_one_pipeline_cannot_see_or_touch_another_and_tags_decide_too() {
    let app = TestApp::spawn().await;
    let (account, root) = root(&app).await;
    for (name, team) in [("web", "blue"), ("billing", "red")] {
        let body = json!({"pipeline": four_stages(name), "tags": [{"key": "team", "value": team}]});
        assert_eq!(app.call("POST", "/v1/pipelines", Some(&root), Some(body)).await.status, 201);
    }
    app.create_user(&root, "dev", PASSWORD, &[]).await;
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["codepipeline:GetPipeline", "codepipeline:UpdatePipeline", "codepipeline:ListTagsForResource"],
         "Resource": format!("arn:pw:codepipeline:*:{account}:web")}]});
    let put = app
        .call("PUT", "/v1/iam/users/dev/policies/web-only", Some(&root), Some(json!({"policyDocument": policy})))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let dev = app.sign_in(&account, "dev", PASSWORD).await;

    let mine = app.call("GET", "/v1/pipelines/web", Some(&dev), None).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    let mut changed = mine.body["pipeline"].clone();
    changed["executionMode"] = json!("PARALLEL");
    assert_eq!(app.call("PUT", "/v1/pipelines/web", Some(&dev), Some(json!({"pipeline": changed}))).await.status, 200);
    let web_arn = format!("arn:pw:codepipeline:local:{account}:web");
    assert_eq!(app.call("GET", &format!("/v1/tags?resourceArn={web_arn}"), Some(&dev), None).await.status, 200);

    let billing_arn = format!("arn:pw:codepipeline:local:{account}:billing");
    let theirs = app.call("GET", "/v1/pipelines/billing", Some(&dev), None).await;
    assert_eq!(theirs.status, 403, "{}", theirs.body);
    assert!(theirs.body["message"].as_str().unwrap().contains(&billing_arn), "{}", theirs.body);
    assert!(!theirs.body.to_string().contains("make build"), "nothing of billing shows");
    let mut billing = four_stages("billing");
    billing["version"] = json!(1);
    assert_eq!(
        app.call("PUT", "/v1/pipelines/billing", Some(&dev), Some(json!({"pipeline": billing}))).await.status,
        403
    );
    assert_eq!(app.call("DELETE", "/v1/pipelines/billing", Some(&dev), None).await.status, 403);
    assert_eq!(
        app.call("DELETE", "/v1/pipelines/web", Some(&dev), None).await.status,
        403,
        "not allowed on web either"
    );
    assert_eq!(app.call("GET", &format!("/v1/tags?resourceArn={billing_arn}"), Some(&dev), None).await.status, 403);
    assert_eq!(app.call("GET", "/v1/pipelines", Some(&dev), None).await.status, 403, "listing names them all");
    assert_eq!(
        app.call("POST", "/v1/pipelines", Some(&dev), Some(json!({"pipeline": four_stages("new")}))).await.status,
        403
    );

    // Tags: the blue team may read blue pipelines, and must tag what it creates blue.
    app.create_user(&root, "blue", PASSWORD, &[]).await;
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "codepipeline:GetPipeline", "Resource": "*",
         "Condition": {"StringEquals": {"pw:ResourceTag/team": "blue"}}},
        {"Effect": "Allow", "Action": "codepipeline:CreatePipeline", "Resource": "*",
         "Condition": {"StringEquals": {"pw:RequestTag/team": "blue"}, "ForAllValues:StringEquals": {"pw:TagKeys": ["team"]}}},
        {"Effect": "Allow", "Action": ["codepipeline:TagResource", "codepipeline:UntagResource"], "Resource": "*",
         "Condition": {"StringEquals": {"pw:ResourceTag/team": "blue"}, "ForAllValues:StringEquals": {"pw:TagKeys": ["owner", "team"]}}}]});
    let put = app
        .call("PUT", "/v1/iam/users/blue/policies/blue-team", Some(&root), Some(json!({"policyDocument": policy})))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let blue = app.sign_in(&account, "blue", PASSWORD).await;
    assert_eq!(app.call("GET", "/v1/pipelines/web", Some(&blue), None).await.status, 200);
    assert_eq!(app.call("GET", "/v1/pipelines/billing", Some(&blue), None).await.status, 403);
    let untagged = app.call("POST", "/v1/pipelines", Some(&blue), Some(json!({"pipeline": four_stages("site")}))).await;
    assert_eq!(untagged.status, 403, "{}", untagged.body);
    let red = json!({"pipeline": four_stages("site"), "tags": [{"key": "team", "value": "red"}]});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&blue), Some(red)).await.status, 403);
    let tagged = json!({"pipeline": four_stages("site"), "tags": [{"key": "team", "value": "blue"}]});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&blue), Some(tagged)).await.status, 201);
    let add = json!({"resourceArn": web_arn, "tags": [{"key": "owner", "value": "ana"}]});
    let added = app.call("POST", "/v1/tags", Some(&blue), Some(add)).await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(added.body["tags"], json!([{"key": "team", "value": "blue"}, {"key": "owner", "value": "ana"}]));
    let other_key = json!({"resourceArn": web_arn, "tags": [{"key": "cost", "value": "1"}]});
    assert_eq!(app.call("POST", "/v1/tags", Some(&blue), Some(other_key)).await.status, 403, "TagKeys decide");
    let on_red = json!({"resourceArn": billing_arn, "tags": [{"key": "owner", "value": "ana"}]});
    assert_eq!(app.call("POST", "/v1/tags", Some(&blue), Some(on_red)).await.status, 403);
    // Retagging web red takes it out of the blue team's reach.
    let retag = app
        .call(
            "POST",
            "/v1/tags",
            Some(&root),
            Some(json!({"resourceArn": web_arn, "tags": [{"key": "team", "value": "red"}]})),
        )
        .await;
    assert_eq!(retag.status, 200);
    assert_eq!(app.call("GET", "/v1/pipelines/web", Some(&blue), None).await.status, 403);
    let untag = app.call("DELETE", &format!("/v1/tags?resourceArn={web_arn}&tagKeys=owner"), Some(&root), None).await;
    assert_eq!(untag.body["tags"], json!([{"key": "team", "value": "red"}]), "{}", untag.body);
    let spaced = json!({"resourceArn": web_arn, "tags": [{"key": "team ", "value": "blue"}]});
    let spaced = app.call("POST", "/v1/tags", Some(&blue), Some(spaced)).await;
    assert_eq!((spaced.status, spaced.body["code"].as_str()), (400, Some("InvalidTagsException")), "{}", spaced.body);
    let twice = json!({"pipeline": four_stages("twice"), "tags": [{"key": "team", "value": "red"}, {"key": "Team", "value": "blue"}]});
    assert_eq!(app.call("POST", "/v1/pipelines", Some(&blue), Some(twice)).await.status, 400);
    let reserved = app
        .call(
            "POST",
            "/v1/tags",
            Some(&root),
            Some(json!({"resourceArn": web_arn, "tags": [{"key": "pw:x", "value": "1"}]})),
        )
        .await;
    assert_eq!((reserved.status, reserved.body["code"].as_str()), (400, Some("InvalidTagsException")));

    // A tag read through a policy variable (no condition key names it) still
    // decides: a Deny on the user named by the pipeline's `denied-user` tag.
    app.create_user(&root, "ana", PASSWORD, &[]).await;
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "codepipeline:GetPipeline", "Resource": "*"},
        {"Effect": "Deny", "Action": "codepipeline:*", "Resource": "*",
         "Condition": {"StringEquals": {"pw:username": "${pw:ResourceTag/denied-user}"}}}]});
    let put = app
        .call("PUT", "/v1/iam/users/ana/policies/by-tag", Some(&root), Some(json!({"policyDocument": policy})))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let ana = app.sign_in(&account, "ana", PASSWORD).await;
    assert_eq!(app.call("GET", "/v1/pipelines/web", Some(&ana), None).await.status, 200);
    let deny_ana = json!({"resourceArn": web_arn, "tags": [{"key": "denied-user", "value": "ana"}]});
    assert_eq!(app.call("POST", "/v1/tags", Some(&root), Some(deny_ana)).await.status, 200);
    assert_eq!(app.call("GET", "/v1/pipelines/web", Some(&ana), None).await.status, 403, "the tag's Deny applies");
    assert_eq!(app.call("GET", "/v1/pipelines/billing", Some(&ana), None).await.status, 200);

    // Every one of those calls is in the audit log, found by the pipeline's ARN.
    let events =
        app.call("GET", &format!("/v1/audit/events?resourceArn={web_arn}&maxResults=100"), Some(&root), None).await;
    let names: Vec<&str> =
        events.body["events"].as_array().unwrap().iter().map(|e| e["eventName"].as_str().unwrap()).collect();
    for expected in ["CreatePipeline", "UpdatePipeline", "TagResource", "UntagResource", "DeletePipeline"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let denied = app
        .call(
            "GET",
            &format!("/v1/audit/events?resourceArn={billing_arn}&errorCode=AccessDeniedException"),
            Some(&root),
            None,
        )
        .await;
    assert!(denied.body["events"].as_array().unwrap().len() >= 4, "{}", denied.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_configuration_is_masked_kept_across_updates_and_never_recorded() {
    let app = TestApp::spawn().await;
    let (_, root) = root(&app).await;
    let secret = "ghp_averysecrettoken123";
    let mut pipeline = four_stages("private");
    pipeline["stages"][0]["actions"][0]["configuration"]["token"] = json!(secret);
    let created = app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": pipeline}))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["pipeline"]["stages"][0]["actions"][0]["configuration"]["token"], "****");
    let got = app.call("GET", "/v1/pipelines/private", Some(&root), None).await;
    assert_eq!(got.body["pipeline"]["stages"][0]["actions"][0]["configuration"]["token"], "****");

    // Sent back masked, the secret stays; the change around it is made.
    let mut changed = got.body["pipeline"].clone();
    changed["stages"][0]["actions"][0]["configuration"]["branch"] = json!("release");
    let updated = app.call("PUT", "/v1/pipelines/private", Some(&root), Some(json!({"pipeline": changed}))).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let table = stored_declarations(&app).await;
    assert!(table.contains(secret) && table.contains("release"), "the secret is kept");

    // A masked secret is not carried to a new repository: it must be given again.
    let mut moved = updated.body["pipeline"].clone();
    moved["stages"][0]["actions"][0]["configuration"]["repositoryUrl"] = json!("https://elsewhere.example/x.git");
    let refused = app.call("PUT", "/v1/pipelines/private", Some(&root), Some(json!({"pipeline": moved}))).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["errors"][0]["rule"], "MaskedSecret", "{}", refused.body);

    let audit = app.audit_table_text().await;
    assert!(audit.contains("CreatePipeline") && audit.contains("UpdatePipeline"));
    assert!(!audit.contains(secret), "the secret reached the audit table");
}

async fn stored_declarations(app: &TestApp) -> String {
    use diesel_async::RunQueryDsl;
    let mut conn = pipewright_core::db::connect_one(&app.config.database_url).await.unwrap();
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
        "(SELECT coalesce(string_agg(declaration::text, E'\\n'), '') FROM pipelines)",
    ))
    .get_result(&mut conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_can_allow_a_transition_on_one_stage_only() {
    let app = TestApp::spawn().await;
    let (account, root) = root(&app).await;
    assert_eq!(
        app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": four_stages("web")}))).await.status,
        201
    );
    app.create_user(&root, "releaser", PASSWORD, &[]).await;
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["codepipeline:DisableStageTransition", "codepipeline:EnableStageTransition"],
        "Resource": format!("arn:pw:codepipeline:*:{account}:web/Deploy")}]});
    let put = app
        .call(
            "PUT",
            "/v1/iam/users/releaser/policies/deploy-gate",
            Some(&root),
            Some(json!({"policyDocument": policy})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let releaser = app.sign_in(&account, "releaser", PASSWORD).await;

    let path = "/v1/pipelines/web/stages/Deploy/transitions/inbound";
    let disabled = app
        .call(
            "POST",
            &format!("{path}/disable"),
            Some(&releaser),
            Some(json!({"reason": "Release freeze (until Monday)"})),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    let state = &disabled.body["inboundTransitionState"];
    assert_eq!(state["enabled"], false);
    assert_eq!(state["disabledReason"], "Release freeze (until Monday)");
    assert_eq!(state["lastChangedBy"], format!("arn:pw:iam::{account}:user/releaser"));
    let other = app
        .call(
            "POST",
            "/v1/pipelines/web/stages/Approve/transitions/inbound/disable",
            Some(&releaser),
            Some(json!({"reason": "no"})),
        )
        .await;
    assert_eq!(other.status, 403, "{}", other.body);
    assert!(
        other.body["message"].as_str().unwrap().contains(&format!("arn:pw:codepipeline:local:{account}:web/Approve"))
    );
    let enabled = app.call("POST", &format!("{path}/enable"), Some(&releaser), None).await;
    assert_eq!(
        (enabled.status, &enabled.body["inboundTransitionState"]["enabled"]),
        (200, &json!(true)),
        "{}",
        enabled.body
    );

    // What is wrong with a request is said plainly.
    let first = app
        .call(
            "POST",
            "/v1/pipelines/web/stages/Source/transitions/inbound/disable",
            Some(&root),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(first.status, 400, "{}", first.body);
    let missing = app
        .call(
            "POST",
            "/v1/pipelines/web/stages/Nope/transitions/inbound/disable",
            Some(&root),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!((missing.status, missing.body["code"].as_str()), (404, Some("StageNotFoundException")));
    let bad_reason =
        app.call("POST", &format!("{path}/disable"), Some(&root), Some(json!({"reason": "a <script>"}))).await;
    assert_eq!(bad_reason.status, 400, "{}", bad_reason.body);

    // The stage's events are found by the pipeline's ARN.
    let events = app
        .call(
            "GET",
            &format!(
                "/v1/audit/events?resourceArn=arn:pw:codepipeline:local:{account}:web&eventName=DisableStageTransition"
            ),
            Some(&root),
            None,
        )
        .await;
    let found = events.body["events"].as_array().unwrap();
    assert!(
        found.iter().any(|e| e["resources"][0]["arn"] == format!("arn:pw:codepipeline:local:{account}:web/Deploy")
            && e["httpStatus"] == 200),
        "{}",
        events.body
    );
    assert!(found.iter().any(|e| e["errorCode"] == "AccessDeniedException"), "{}", events.body);
}

/// Every list pages with one token format (base64url of `pw1:` and where the
/// page stopped), and each refuses a token it did not give.
#[tokio::test(flavor = "multi_thread")]
async fn every_list_pages_with_one_token_format() {
    let app = TestApp::spawn().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    for name in ["one", "two"] {
        let made = app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": four_stages(name)}))).await;
        assert_eq!(made.status, 201, "{}", made.body);
        let user = app.call("POST", "/v1/iam/users", Some(&root), Some(json!({"userName": name}))).await;
        assert_eq!(user.status, 201);
    }
    let mut events = Value::Null;
    for _ in 0..50 {
        events = app.call("GET", "/v1/audit/events?maxResults=1", Some(&root), None).await.body;
        if events["nextToken"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let pipelines = app.call("GET", "/v1/pipelines?maxResults=1", Some(&root), None).await.body;
    let users = app.call("GET", "/v1/iam/users?maxResults=1", Some(&root), None).await.body;
    for (list, page) in [("/v1/pipelines", &pipelines), ("/v1/iam/users", &users), ("/v1/audit/events", &events)] {
        let token = page["nextToken"].as_str().unwrap_or_else(|| panic!("{list}: {page}"));
        assert!(token.starts_with("cHcxO"), "{list}: {token} is not base64url of pw1:…");
        let bad = app.call("GET", &format!("{list}?nextToken=bm90LW91cnM"), Some(&root), None).await;
        assert_eq!(bad.status, 400, "{list}: {}", bad.body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelines_are_listed_by_name_or_latest_activity_first_in_pages() {
    let app = TestApp::spawn().await;
    let (_, root) = root(&app).await;
    for name in ["alpha", "bravo", "charlie"] {
        let made = app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": four_stages(name)}))).await;
        assert_eq!(made.status, 201, "{}", made.body);
    }
    // bravo runs again: it is now the latest active.
    let started = app.call("POST", "/v1/pipelines/bravo/executions", Some(&root), Some(json!({}))).await;
    assert_eq!(started.status, 200, "{}", started.body);

    let pages = |sort: &'static str| {
        let (app, root) = (&app, root.clone());
        async move {
            let (mut names, mut token, mut activity) = (Vec::new(), String::new(), Vec::new());
            loop {
                let path = format!("/v1/pipelines?maxResults=1&sortBy={sort}&nextToken={token}");
                let page = app.call("GET", &path, Some(&root), None).await;
                assert_eq!(page.status, 200, "{}", page.body);
                names.push(page.body["pipelines"][0]["name"].as_str().unwrap().to_owned());
                activity.push(page.body["pipelines"][0]["lastActivity"].as_str().unwrap().to_owned());
                match page.body["nextToken"].as_str() {
                    Some(next) => token = next.to_owned(),
                    None => return (names, activity),
                }
            }
        }
    };
    let (by_name, _) = pages("NAME").await;
    assert_eq!(by_name, ["alpha", "bravo", "charlie"]);
    let (by_activity, times) = pages("LAST_ACTIVITY").await;
    assert_eq!(by_activity, ["bravo", "charlie", "alpha"]);
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // A wrong order is named; a token of one order is not taken by another.
    let wrong = app.call("GET", "/v1/pipelines?sortBy=NEWEST", Some(&root), None).await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert!(wrong.body["message"].as_str().unwrap().contains("sortBy"), "{}", wrong.body);
    let first = app.call("GET", "/v1/pipelines?maxResults=1", Some(&root), None).await;
    let token = first.body["nextToken"].as_str().unwrap();
    let mixed =
        app.call("GET", &format!("/v1/pipelines?sortBy=LAST_ACTIVITY&nextToken={token}"), Some(&root), None).await;
    assert_eq!(mixed.status, 400, "{}", mixed.body);
    // A token forged to carry a NUL (base64 of `pw1:2024-01-01T00:00:00Z|\0`)
    // is refused, not passed to PostgreSQL (which failed the call with 500).
    for sort in ["NAME", "LAST_ACTIVITY"] {
        let forged = "cHcxOjIwMjQtMDEtMDFUMDA6MDA6MDBafAA";
        let path = format!("/v1/pipelines?sortBy={sort}&nextToken={forged}");
        let answer = app.call("GET", &path, Some(&root), None).await;
        assert_eq!(answer.status, 400, "{}", answer.body);
    }
}
