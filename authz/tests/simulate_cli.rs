//! `pipewright-authz simulate` as a script calls it.

use std::io::Write;
use std::process::{Command, Stdio};

fn simulate(input: &str) -> (i32, serde_json::Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipewright-authz"))
        .arg("simulate")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the simulator starts");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("written");
    let output = child.wait_with_output().expect("it exits");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    (output.status.code().expect("exit code"), serde_json::from_str(&stdout).expect("JSON"))
}

#[test]
fn a_decision_is_printed_with_its_statements() {
    let (code, result) = simulate(
        r#"{"identityPolicies": [{"Version": "2012-10-17", "Statement": [
              {"Sid": "Read", "Effect": "Allow", "Action": "codepipeline:Get*", "Resource": "*"},
              {"Sid": "NotProd", "Effect": "Deny", "Action": "*", "Resource": "arn:pw:codepipeline:*:*:web/Prod*"}]}],
            "principal": {"arn": "arn:pw:iam::111122223333:user/alice", "account": "111122223333", "type": "User"},
            "action": "codepipeline:GetPipelineState",
            "resource": "arn:pw:codepipeline:local:111122223333:web/Prod",
            "context": {"pw:SourceIp": "203.0.113.7", "pw:TagKeys": ["a", "b"]}}"#,
    );
    assert_eq!(code, 0);
    assert_eq!(result["decision"], "ExplicitDeny");
    assert_eq!(result["matchedStatements"][0]["sid"], "NotProd");
    assert_eq!(result["matchedStatements"][0]["policy"], "identityPolicies[0]");
}

#[test]
fn a_malformed_policy_exits_2_with_the_code() {
    let (code, result) = simulate(
        r#"{"identityPolicies": [{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "NotAction": "iam:*", "Resource": "*"}]}],
            "action": "iam:GetUser", "resource": "*"}"#,
    );
    assert_eq!(code, 2);
    assert_eq!(result["error"]["code"], "MalformedPolicyDocument");
    let message = result["error"]["message"].as_str().expect("a message");
    assert!(message.contains("Statement[0]") && message.contains("NotAction"), "{message}");
}

#[test]
fn a_request_that_is_not_json_exits_2() {
    let (code, result) = simulate("{not json");
    assert_eq!(code, 2);
    assert_eq!(result["error"]["code"], "InvalidInput");
}

/// Cases written independently from AWS's IAM documentation (one JSON line
/// each: id, expected outcome, the rule quoted, the raw request), run through
/// the simulator command exactly as a script would.
#[test]
fn independently_written_iam_cases_agree() {
    let cases = include_str!("data/iam-conformance.jsonl");
    let mut failures = Vec::new();
    let mut count = 0;
    for line in cases.lines().filter(|l| !l.trim().is_empty()) {
        count += 1;
        let case: serde_json::Value = serde_json::from_str(line).expect("a case line");
        let (id, expect) = (case["id"].as_str().expect("id"), case["expect"].as_str().expect("expect"));
        let (code, result) = simulate(case["request"].as_str().expect("request"));
        let got = match code {
            0 => result["decision"].as_str().unwrap_or("?").to_owned(),
            _ => result["error"]["code"].as_str().unwrap_or("?").to_owned(),
        };
        let agrees = match expect {
            "NotAllow" => got != "Allow",
            other => got == other,
        };
        if !agrees {
            failures.push(format!("{id}: expected {expect}, got {got} ({})", case["rule"]));
        }
    }
    assert!(count >= 200, "{count} cases");
    assert!(failures.is_empty(), "{} of {count} disagree:\n{}", failures.len(), failures.join("\n"));
}
