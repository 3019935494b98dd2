//! Decisions per second for a principal with 10 policies of 10 statements
//! each (wildcards and conditions), compiled once and evaluated many times;
//! the same workload on the cedar-policy crate beside it.

use std::hint::black_box;
use std::str::FromStr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pipewright_authz::{Context, NamedPolicy, Policy, PolicyKind, Request, evaluate};
use serde_json::{Value, json};

/// One statement of the workload, written once and rendered for both engines.
struct Rule {
    allow: bool,
    action: &'static str,
    resource: String,
    condition: Option<(&'static str, &'static str, &'static str)>, // (operator, key, value)
}

const ACTIONS: [&str; 10] = [
    "codepipeline:Get*",
    "codepipeline:List*",
    "codepipeline:StartPipelineExecution",
    "codepipeline:PutApprovalResult",
    "codepipeline:*StageTransition",
    "iam:Get*",
    "iam:List*",
    "sts:AssumeRole",
    "codepipeline:Retry*",
    "codepipeline:Stop*",
];

fn rules() -> Vec<Vec<Rule>> {
    (0..10)
        .map(|p| {
            (0..10)
                .map(|s| {
                    let n = p * 10 + s;
                    let condition = match n % 4 {
                        0 => Some(("StringEquals", "pw:ResourceTag/team", if n % 8 == 0 { "blue" } else { "red" })),
                        1 => Some(("IpAddress", "pw:SourceIp", "203.0.113.0/24")),
                        2 => Some(("Bool", "pw:SecureTransport", "true")),
                        _ => None,
                    };
                    Rule {
                        // One Deny in ten, on a pipeline nobody asks for.
                        allow: s != 9,
                        action: ACTIONS[(p + s) % ACTIONS.len()],
                        resource: if s == 9 {
                            "arn:pw:codepipeline:*:111122223333:secret*".to_owned()
                        } else {
                            format!("arn:pw:codepipeline:*:111122223333:app{}*", n % 7)
                        },
                        condition,
                    }
                })
                .collect()
        })
        .collect()
}

fn iam_policies(rules: &[Vec<Rule>]) -> Vec<NamedPolicy> {
    rules
        .iter()
        .enumerate()
        .map(|(p, statements)| {
            let statements: Vec<Value> = statements
                .iter()
                .map(|r| {
                    let mut s = json!({
                        "Effect": if r.allow { "Allow" } else { "Deny" },
                        "Action": r.action,
                        "Resource": r.resource,
                    });
                    if let Some((op, key, value)) = r.condition {
                        s["Condition"] = json!({op: {key: value}});
                    }
                    s
                })
                .collect();
            let document = json!({"Version": "2012-10-17", "Statement": statements});
            NamedPolicy::new(format!("policy{p}"), Policy::from_value(&document, PolicyKind::Identity).expect("valid"))
        })
        .collect()
}

fn cedar_policies(rules: &[Vec<Rule>]) -> cedar_policy::PolicySet {
    let mut text = String::new();
    for (i, r) in rules.iter().flatten().enumerate() {
        let effect = if r.allow { "permit" } else { "forbid" };
        let condition = match r.condition {
            Some(("StringEquals", _, value)) => format!(" && context.team == \"{value}\""),
            Some(("IpAddress", _, value)) => format!(" && context.sourceIp.isInRange(ip(\"{value}\"))"),
            Some(("Bool", _, _)) => " && context.secureTransport".to_owned(),
            _ => String::new(),
        };
        text.push_str(&format!(
            "@id(\"s{i}\") {effect}(principal, action, resource) when {{ context.action like \"{}\" && context.resource like \"{}\"{condition} }};\n",
            r.action.to_ascii_lowercase(),
            r.resource
        ));
    }
    cedar_policy::PolicySet::from_str(&text).expect("valid Cedar")
}

/// (action, resource, team, source IP, secure transport)
const REQUESTS: [(&str, &str, &str, &str, bool); 8] = [
    ("codepipeline:GetPipeline", "arn:pw:codepipeline:local:111122223333:app3", "blue", "203.0.113.7", true),
    ("codepipeline:GetPipelineState", "arn:pw:codepipeline:local:111122223333:app1/Prod", "red", "198.51.100.1", true),
    ("codepipeline:StartPipelineExecution", "arn:pw:codepipeline:local:111122223333:app5", "blue", "203.0.113.9", false),
    ("codepipeline:PutApprovalResult", "arn:pw:codepipeline:local:111122223333:app2/Prod/Approve", "red", "203.0.113.9", true),
    ("codepipeline:DeletePipeline", "arn:pw:codepipeline:local:111122223333:app0", "blue", "203.0.113.7", true),
    ("iam:GetUser", "arn:pw:iam::111122223333:user/alice", "blue", "203.0.113.7", true),
    ("codepipeline:GetPipeline", "arn:pw:codepipeline:local:111122223333:secret-keys", "blue", "203.0.113.7", true),
    ("codepipeline:EnableStageTransition", "arn:pw:codepipeline:local:111122223333:app6/Prod", "red", "10.0.0.1", true),
];

fn bench(c: &mut Criterion) {
    let rules = rules();
    let policies = iam_policies(&rules);
    let contexts: Vec<Context> = REQUESTS
        .iter()
        .map(|(_, _, team, ip, secure)| {
            Context::new()
                .with("pw:ResourceTag/team", *team)
                .with("aws:SourceIp", *ip)
                .with("pw:SecureTransport", if *secure { "true" } else { "false" })
                .with("pw:CurrentTime", "2026-11-27T10:00:00Z")
        })
        .collect();

    let mut group = c.benchmark_group("authz");
    group.throughput(Throughput::Elements(REQUESTS.len() as u64));
    group.bench_function("pipewright (100 statements)", |b| {
        b.iter(|| {
            for ((action, resource, ..), context) in REQUESTS.iter().zip(&contexts) {
                black_box(evaluate(&policies, None, &Request { action, resource, context }));
            }
        })
    });

    let cedar = cedar_policies(&rules);
    let authorizer = cedar_policy::Authorizer::new();
    let entities = cedar_policy::Entities::empty();
    let principal = cedar_policy::EntityUid::from_str("User::\"alice\"").expect("uid");
    let action = cedar_policy::EntityUid::from_str("Action::\"call\"").expect("uid");
    let resource = cedar_policy::EntityUid::from_str("Resource::\"r\"").expect("uid");
    let cedar_requests: Vec<cedar_policy::Request> = REQUESTS
        .iter()
        .map(|(a, r, team, ip, secure)| {
            let context = cedar_policy::Context::from_json_value(
                json!({"action": a.to_ascii_lowercase(), "resource": r, "team": team,
                       "sourceIp": {"__extn": {"fn": "ip", "arg": ip}}, "secureTransport": secure}),
                None,
            )
            .expect("context");
            cedar_policy::Request::new(principal.clone(), action.clone(), resource.clone(), context, None)
                .expect("request")
        })
        .collect();
    // Both engines must agree on the workload before they are timed.
    for (((a, r, ..), context), cedar_request) in REQUESTS.iter().zip(&contexts).zip(&cedar_requests) {
        let ours = evaluate(&policies, None, &Request { action: a, resource: r, context }).is_allowed();
        let theirs = authorizer.is_authorized(cedar_request, &cedar, &entities).decision() == cedar_policy::Decision::Allow;
        assert_eq!(ours, theirs, "the engines disagree on {a} {r}");
    }
    group.bench_function("cedar-policy (100 policies)", |b| {
        b.iter(|| {
            for request in &cedar_requests {
                black_box(authorizer.is_authorized(request, &cedar, &entities));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
