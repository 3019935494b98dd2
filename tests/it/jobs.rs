//! Custom actions run by job workers through CodePipeline's job API:
//! PollForJobs (waiting for a job), AcknowledgeJob with the nonce,
//! GetJobDetails, the job's artifact URLs, PutJobSuccessResult (with a
//! continuation token, then output variables the next stage reads) and
//! PutJobFailureResult; who may do what; a job nobody ends times out.

use std::time::Duration;

use serde_json::{Value, json};

use crate::executions::{action, kind, state_until, zip_of};
use crate::isolation::upload;
use crate::support::TestApp;

const PASSWORD: &str = "correct horse battery";

fn scan_type() -> Value {
    json!({"category": "Test", "provider": "Scan", "version": "1",
        "settings": {"executionUrlTemplate": "https://scanner.example.com/{Config:Project}/runs/{ExternalExecutionId}?key={Config:ApiKey}"},
        "configurationProperties": [
            {"name": "Project", "required": true, "key": true, "secret": false, "queryable": true, "type": "String"},
            {"name": "ApiKey", "required": false, "key": false, "secret": true, "type": "String"}],
        "inputArtifactDetails": {"minimumCount": 1, "maximumCount": 1},
        "outputArtifactDetails": {"minimumCount": 0, "maximumCount": 1}})
}

fn scan_id() -> Value {
    json!({"category": "Test", "owner": "Custom", "provider": "Scan", "version": "1"})
}

/// Upload → Scan (the custom action, namespace Scan, its report out) →
/// Deploy (a shell that reads the report and `#{Scan.FINDINGS}`).
fn scanned(name: &str, project: &str) -> Value {
    json!({"name": name, "stages": [
        {"name": "Source", "actions": [{"name": "Upload", "actionTypeId": kind("Source", "Upload"), "outputArtifacts": [{"name": "Src"}]}]},
        {"name": "Scan", "actions": [{"name": "Scan", "actionTypeId": scan_id(), "namespace": "Scan",
            "configuration": {"Project": project, "ApiKey": "s3cret-key"},
            "inputArtifacts": [{"name": "Src"}], "outputArtifacts": [{"name": "Report"}]}]},
        {"name": "Deploy", "actions": [{"name": "Check", "actionTypeId": kind("Deploy", "Shell"),
            "configuration": {"commands": "test \"$(cat report.txt)\" = clean\ntest \"#{Scan.FINDINGS}\" = 0"},
            "inputArtifacts": [{"name": "Report"}]}]}]})
}

async fn poll(app: &TestApp, token: &str, project: &str, wait: u32) -> Vec<Value> {
    let body = json!({"actionTypeId": scan_id(), "maxBatchSize": 5, "queryParam": {"Project": project}, "waitTimeSeconds": wait});
    let polled = app.call("POST", "/v1/jobs/poll", Some(token), Some(body)).await;
    assert_eq!(polled.status, 200, "{}", polled.body);
    polled.body["jobs"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_worker_polls_acknowledges_and_completes_a_custom_action_the_next_stage_reads() {
    let app = TestApp::spawn_with_worker_and(|config| config.job_ack_secs = 1).await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    assert_eq!(app.call("POST", "/v1/action-types", Some(&root), Some(scan_type())).await.status, 201);
    let created =
        app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": scanned("scanned", "web")}))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    app.create_user(&root, "worker", PASSWORD, &["PipewrightCustomActionAccess"]).await;
    let worker = app.sign_in(&account, "worker", PASSWORD).await;
    app.create_user(&root, "reader", PASSWORD, &["PipewrightReadOnlyAccess"]).await;
    let reader = app.sign_in(&account, "reader", PASSWORD).await;

    // Nothing yet; a poll that waits gets the job as soon as it is queued.
    assert!(poll(&app, &worker, "web", 0).await.is_empty());
    let waiting = {
        let (app_url, worker) = (app.url(""), worker.clone());
        let client = app.client.clone();
        tokio::spawn(async move {
            let body = json!({"actionTypeId": scan_id(), "queryParam": {"Project": "web"}, "waitTimeSeconds": 20});
            let answer = client
                .post(format!("{}/v1/jobs/poll", app_url.trim_end_matches('/')))
                .bearer_auth(worker)
                .json(&body)
                .send()
                .await
                .unwrap();
            answer.json::<Value>().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    upload(&app, &root, "scanned").await;
    let first = waiting.await.unwrap();
    let job = first["jobs"][0].clone();
    assert!(job["id"].is_string(), "the waiting poll got the job: {first:#}");
    let id = job["id"].as_str().unwrap().to_owned();
    let data = &job["data"];
    assert_eq!(data["actionTypeId"], scan_id());
    assert_eq!(data["actionConfiguration"]["configuration"]["ApiKey"], "s3cret-key", "the worker gets its secret");
    assert_eq!(data["pipelineContext"]["pipelineName"], "scanned");
    assert_eq!(data["pipelineContext"]["stage"]["name"], "Scan");
    assert_eq!(data["outputArtifacts"][0]["name"], "Report");
    // Another project's poll sees nothing; a poll without the queryable property is refused.
    assert!(poll(&app, &worker, "api", 0).await.is_empty());
    let unqueried = app.call("POST", "/v1/jobs/poll", Some(&worker), Some(json!({"actionTypeId": scan_id()}))).await;
    assert_eq!(unqueried.status, 400, "{}", unqueried.body);

    // Not acknowledged within a second, the job goes to the next poller:
    // the first claimer's nonce no longer works.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = poll(&app, &worker, "web", 0).await;
    assert_eq!(again.len(), 1, "handed out again");
    assert_eq!(again[0]["id"], job["id"]);
    let ack = |nonce: Value| json!({"nonce": nonce});
    let stale =
        app.call("POST", &format!("/v1/jobs/{id}/acknowledge"), Some(&worker), Some(ack(job["nonce"].clone()))).await;
    assert_eq!((stale.status, stale.body["code"].as_str()), (400, Some("InvalidNonceException")), "{}", stale.body);
    let taken = app
        .call("POST", &format!("/v1/jobs/{id}/acknowledge"), Some(&worker), Some(ack(again[0]["nonce"].clone())))
        .await;
    assert_eq!(taken.status, 200, "{}", taken.body);
    assert_eq!(taken.body["status"], "InProgress");
    let job = &again[0];

    // Its input through its URL; a reader may not read jobs (they hold secrets).
    let input =
        app.client.get(job["data"]["inputArtifacts"][0]["location"]["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(input.status(), 200);
    assert!(!input.bytes().await.unwrap().is_empty());
    assert_eq!(app.call("GET", &format!("/v1/jobs/{id}"), Some(&reader), None).await.status, 403);
    let details = app.call("GET", &format!("/v1/jobs/{id}"), Some(&worker), None).await;
    assert_eq!(details.status, 200, "{}", details.body);
    assert_eq!(details.body["jobDetails"]["data"]["pipelineContext"]["action"]["name"], "Scan");

    // Half done: the action goes on, a next job carries the token.
    let half =
        json!({"continuationToken": "scan-7", "executionDetails": {"summary": "scanning", "percentComplete": 50}});
    let going = app.call("POST", &format!("/v1/jobs/{id}/success"), Some(&worker), Some(half)).await;
    assert_eq!(going.status, 200, "{}", going.body);
    let state = app.call("GET", "/v1/pipelines/scanned/state", Some(&root), None).await;
    assert_eq!(action(&state.body, "Scan", "Scan")["status"], "InProgress", "{:#}", state.body);
    let next = poll(&app, &worker, "web", 5).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0]["data"]["continuationToken"], "scan-7");
    let next_id = next[0]["id"].as_str().unwrap().to_owned();
    assert_ne!(next_id, id);
    assert_eq!(
        app.call("POST", &format!("/v1/jobs/{next_id}/success"), Some(&worker), Some(json!({}))).await.body["code"],
        "InvalidJobStateException",
        "a result before the job is acknowledged is refused"
    );
    let taken = app
        .call("POST", &format!("/v1/jobs/{next_id}/acknowledge"), Some(&worker), Some(ack(next[0]["nonce"].clone())))
        .await;
    assert_eq!(taken.status, 200, "{}", taken.body);

    // The report out, then the result with an output variable.
    let missing = app
        .call(
            "POST",
            &format!("/v1/jobs/{next_id}/success"),
            Some(&worker),
            Some(json!({"outputVariables": {"FINDINGS": "0"}})),
        )
        .await;
    assert_eq!(missing.status, 400, "the output artifact is uploaded first: {}", missing.body);
    let report_url = next[0]["data"]["outputArtifacts"][0]["location"]["url"].as_str().unwrap().to_owned();
    // Attacks on the job's URLs: a hostile archive, another name, a wrong
    // token, this token on another job's URL. Each refused, nothing kept.
    let data = app.config.data_dir.canonicalize().unwrap();
    let hostile = crate::isolation::tar_gz(&[("report.txt", None), ("out", Some(data.to_str().unwrap()))]);
    let sent =
        app.client.put(&report_url).header("content-type", "application/gzip").body(hostile).send().await.unwrap();
    assert_eq!(sent.status(), 400, "a link out of the archive is refused: {}", sent.text().await.unwrap());
    let token = report_url.rsplit("token=").next().unwrap();
    let tries = [
        (format!("/v1/jobs/{next_id}/artifacts/Src?token={token}"), 400),
        (format!("/v1/jobs/{next_id}/artifacts/Report?token=not-the-token"), 404),
        (format!("/v1/jobs/{id}/artifacts/Report?token={token}"), 404),
        (format!("/v1/jobs/not-a-job/artifacts/Report?token={token}"), 404),
    ];
    for (path, status) in tries {
        let sent = app.client.put(app.url(&path)).body(zip_of(&[("report.txt", "x")])).send().await.unwrap();
        assert_eq!(sent.status(), status, "{path}");
    }
    let put = app
        .client
        .put(&report_url)
        .header("content-type", "application/zip")
        .body(zip_of(&[("report.txt", "clean")]))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    let done = json!({"outputVariables": {"FINDINGS": "0"},
        "executionDetails": {"summary": "no findings", "externalExecutionId": "run-7", "percentComplete": 100}});
    let succeeded = app.call("POST", &format!("/v1/jobs/{next_id}/success"), Some(&worker), Some(done)).await;
    assert_eq!(succeeded.status, 200, "{}", succeeded.body);
    let finished = state_until(&app, &root, "scanned", "the pipeline succeeds", |s| {
        action(s, "Deploy", "Check")["status"] == "Succeeded" || action(s, "Deploy", "Check")["status"] == "Failed"
    })
    .await;
    assert_eq!(action(&finished, "Deploy", "Check")["status"], "Succeeded", "{finished:#}");
    let scan = action(&finished, "Scan", "Scan");
    assert_eq!(scan["status"], "Succeeded");
    assert_eq!(scan["externalExecutionId"], "run-7");
    assert_eq!(scan["summary"], "no findings (100%)");
    assert_eq!(
        scan["externalExecutionUrl"], "https://scanner.example.com/web/runs/run-7?key={Config:ApiKey}",
        "a secret property is never put in the link: {scan:#}"
    );

    // Ended: its result cannot be given again, its URLs no longer work.
    let twice = app.call("POST", &format!("/v1/jobs/{next_id}/success"), Some(&worker), Some(json!({}))).await;
    assert_eq!(twice.body["code"], "InvalidJobStateException", "{}", twice.body);
    let late = app.client.put(&report_url).body(zip_of(&[("report.txt", "x")])).send().await.unwrap();
    assert_eq!(late.status(), 404);
    // Another account sees no job of this one.
    let other = app.create_account(None, PASSWORD).await;
    let other_root = app.sign_in(&other, "root", PASSWORD).await;
    assert_eq!(app.call("GET", &format!("/v1/jobs/{id}"), Some(&other_root), None).await.status, 404);
    let foreign = app
        .call(
            "POST",
            "/v1/jobs/poll",
            Some(&other_root),
            Some(json!({"actionTypeId": scan_id(), "queryParam": {"Project": "web"}})),
        )
        .await;
    assert_eq!(foreign.status, 404, "{}", foreign.body);
    // The audit log has the job calls, never the secret.
    let audit = app.audit_table_text().await;
    for name in ["PollForJobs", "AcknowledgeJob", "PutJobSuccessResult", "PutJobArtifact", "GetJobArtifact"] {
        assert!(audit.contains(name), "{name} is audited");
    }
    assert!(!audit.contains("s3cret-key"));
    let events = app.call("GET", "/v1/audit/events?maxResults=50", Some(&root), None).await;
    let upload = events.body["events"].as_array().unwrap().iter().find(|e| e["eventName"] == "PutJobArtifact").unwrap();
    assert_eq!(upload["userIdentity"]["type"], "Job", "{upload:#}");
    for nonce in [&job["nonce"], &next[0]["nonce"]] {
        assert!(!audit.contains(nonce.as_str().unwrap()), "a nonce stays out of the audit log");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_job_fails_its_action_and_a_job_nobody_ends_times_out() {
    let app = TestApp::spawn_with_worker().await;
    let account = app.create_account(None, PASSWORD).await;
    let root = app.sign_in(&account, "root", PASSWORD).await;
    assert_eq!(app.call("POST", "/v1/action-types", Some(&root), Some(scan_type())).await.status, 201);
    let created =
        app.call("POST", "/v1/pipelines", Some(&root), Some(json!({"pipeline": scanned("failing", "api")}))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    upload(&app, &root, "failing").await;
    let jobs = poll(&app, &root, "api", 20).await;
    let id = jobs[0]["id"].as_str().unwrap();
    let taken = app
        .call("POST", &format!("/v1/jobs/{id}/acknowledge"), Some(&root), Some(json!({"nonce": jobs[0]["nonce"]})))
        .await;
    assert_eq!(taken.status, 200, "{}", taken.body);
    let bad_type = json!({"failureDetails": {"type": "Oops", "message": "x"}});
    assert_eq!(app.call("POST", &format!("/v1/jobs/{id}/failure"), Some(&root), Some(bad_type)).await.status, 400);
    let failure =
        json!({"failureDetails": {"type": "ConfigurationError", "message": "the project api has no scanner"}});
    let failed = app.call("POST", &format!("/v1/jobs/{id}/failure"), Some(&root), Some(failure)).await;
    assert_eq!(failed.status, 200, "{}", failed.body);
    let state =
        state_until(&app, &root, "failing", "the scan fails", |s| action(s, "Scan", "Scan")["status"] == "Failed")
            .await;
    let scan = action(&state, "Scan", "Scan");
    assert_eq!(scan["errorDetails"]["code"], "ConfigurationError", "{scan:#}");
    assert_eq!(scan["errorDetails"]["message"], "the project api has no scanner");

    // A second run whose job nobody ends: an hour later, as far as the
    // database knows, it has timed out.
    upload(&app, &root, "failing").await;
    let jobs = poll(&app, &root, "api", 20).await;
    assert_eq!(jobs.len(), 1);
    {
        use diesel_async::SimpleAsyncConnection;
        let mut conn = pipewright_core::db::connect_one(&app.config.database_url).await.unwrap();
        conn.batch_execute(
            "UPDATE action_executions SET lease_until = now() - interval '1 second' \
             WHERE job_worker AND status = 'InProgress'",
        )
        .await
        .unwrap();
    }
    let state = state_until(&app, &root, "failing", "the job times out", |s| {
        action(s, "Scan", "Scan")["errorDetails"]["code"] == "JobTimedOut"
    })
    .await;
    assert_eq!(action(&state, "Scan", "Scan")["status"], "Failed");
    let id = jobs[0]["id"].as_str().unwrap();
    let late = app
        .call("POST", &format!("/v1/jobs/{id}/acknowledge"), Some(&root), Some(json!({"nonce": jobs[0]["nonce"]})))
        .await;
    assert_eq!(late.body["code"], "InvalidJobStateException", "{}", late.body);
}
