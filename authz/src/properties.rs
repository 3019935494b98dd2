//! Laws of evaluation, checked on random policies and requests:
//! adding a Deny never makes a request allowed; removing an Allow never does;
//! parsing the canonical JSON of a policy gives the same policy.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::context::Context;
use crate::eval::{Decision, NamedPolicy, Request, evaluate};
use crate::policy::{Policy, PolicyKind};

const ACTIONS: [&str; 8] = [
    "*",
    "codepipeline:*",
    "codepipeline:Get*",
    "codepipeline:GetPipeline",
    "codepipeline:?etPipeline",
    "iam:*",
    "iam:CreateUser",
    "sts:AssumeRole",
];
const RESOURCES: [&str; 7] = [
    "*",
    "arn:pw:codepipeline:*",
    "arn:pw:codepipeline:*:111122223333:web",
    "arn:pw:codepipeline:*:111122223333:web/*",
    "arn:pw:codepipeline:local:111122223333:web/Prod/*",
    "arn:pw:iam::111122223333:user/${pw:username}",
    "arn:pw:iam::111122223333:user/${pw:username, 'alice'}",
];
const REQUEST_ACTIONS: [&str; 4] =
    ["codepipeline:GetPipeline", "codepipeline:DeletePipeline", "iam:CreateUser", "sts:AssumeRole"];
const REQUEST_RESOURCES: [&str; 4] = [
    "arn:pw:codepipeline:local:111122223333:web",
    "arn:pw:codepipeline:local:111122223333:web/Prod",
    "arn:pw:codepipeline:local:111122223333:web/Prod/Approve",
    "arn:pw:iam::111122223333:user/alice",
];

fn condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"StringEquals": {"pw:username": "alice"}})),
        Just(json!({"StringNotEquals": {"pw:username": ["alice", "bob"]}})),
        Just(json!({"StringLikeIfExists": {"pw:UserAgent": "cli/*"}})),
        Just(json!({"IpAddress": {"pw:SourceIp": "203.0.113.0/24"}})),
        Just(json!({"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}})),
        Just(json!({"Bool": {"pw:SecureTransport": true}})),
        Just(json!({"NumericLessThan": {"pw:MultiFactorAuthAge": 3600}})),
        Just(json!({"DateGreaterThan": {"pw:CurrentTime": "2026-01-01T00:00:00Z"}})),
        Just(json!({"Null": {"pw:ResourceTag/team": "false"}})),
        Just(json!({"ForAllValues:StringEquals": {"pw:TagKeys": ["team", "env"]}})),
        Just(json!({"ForAnyValue:StringLike": {"pw:TagKeys": "cost-*"}})),
        Just(json!({"ArnLike": {"pw:PrincipalArn": "arn:pw:iam::*:user/*"}})),
    ]
}

fn statement(effect: Option<&'static str>) -> impl Strategy<Value = Value> {
    let effect = match effect {
        Some(effect) => Just(effect).boxed(),
        None => prop_oneof![Just("Allow"), Just("Deny")].boxed(),
    };
    (
        effect,
        any::<bool>(),
        proptest::sample::subsequence(ACTIONS.to_vec(), 1..3),
        any::<bool>(),
        proptest::sample::subsequence(RESOURCES.to_vec(), 1..3),
        proptest::option::of(condition()),
    )
        .prop_map(|(effect, not_action, actions, not_resource, resources, condition)| {
            let mut s = json!({"Effect": effect});
            s[if not_action { "NotAction" } else { "Action" }] = json!(actions);
            s[if not_resource { "NotResource" } else { "Resource" }] = json!(resources);
            if let Some(condition) = condition {
                s["Condition"] = condition;
            }
            s
        })
}

fn policy() -> impl Strategy<Value = Value> {
    proptest::collection::vec(statement(None), 1..5).prop_map(|s| json!({"Version": "2012-10-17", "Statement": s}))
}

fn context() -> impl Strategy<Value = Context> {
    (
        proptest::option::of(prop_oneof![Just("alice"), Just("bob")]),
        proptest::option::of(prop_oneof![Just("203.0.113.9"), Just("10.1.2.3"), Just("2001:db8::1")]),
        proptest::option::of(prop_oneof![Just("true"), Just("false")]),
        proptest::option::of(proptest::sample::subsequence(vec!["team", "env", "cost-x"], 0..3)),
    )
        .prop_map(|(user, ip, secure, tags)| {
            let mut context = Context::new();
            if let Some(user) = user {
                context.insert("pw:username", user);
                context.insert("pw:PrincipalArn", format!("arn:pw:iam::111122223333:user/{user}"));
            }
            if let Some(ip) = ip {
                context.insert("pw:SourceIp", ip);
            }
            if let Some(secure) = secure {
                context.insert("pw:SecureTransport", secure);
            }
            if let Some(tags) = tags {
                context.insert("pw:TagKeys", tags.into_iter().map(str::to_owned).collect::<Vec<_>>());
            }
            context.insert("pw:CurrentTime", "2026-11-27T00:00:00Z");
            context
        })
}

fn compile(values: &[Value]) -> Vec<NamedPolicy> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| NamedPolicy::new(format!("p{i}"), Policy::from_value(v, PolicyKind::Identity).expect("valid")))
        .collect()
}

fn decide(policies: &[Value], action: &str, resource: &str, context: &Context) -> Decision {
    evaluate(&compile(policies), None, &Request { action, resource, context }).decision
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn adding_a_deny_never_allows(
        policies in proptest::collection::vec(policy(), 0..4),
        deny in statement(Some("Deny")),
        action in proptest::sample::select(REQUEST_ACTIONS.to_vec()),
        resource in proptest::sample::select(REQUEST_RESOURCES.to_vec()),
        context in context(),
    ) {
        let before = decide(&policies, action, resource, &context);
        let mut more = policies.clone();
        more.push(json!({"Version": "2012-10-17", "Statement": [deny]}));
        let after = decide(&more, action, resource, &context);
        prop_assert!(after != Decision::Allow || before == Decision::Allow, "{before:?} -> {after:?}");
        if before != Decision::Allow {
            prop_assert_ne!(after, Decision::Allow);
        }
    }

    #[test]
    fn removing_an_allow_never_allows(
        policies in proptest::collection::vec(policy(), 1..4),
        which in any::<proptest::sample::Index>(),
        action in proptest::sample::select(REQUEST_ACTIONS.to_vec()),
        resource in proptest::sample::select(REQUEST_RESOURCES.to_vec()),
        context in context(),
    ) {
        let before = decide(&policies, action, resource, &context);
        let mut fewer = policies.clone();
        let victim = which.index(fewer.len());
        let statements = fewer[victim]["Statement"].as_array().cloned().unwrap_or_default();
        let kept: Vec<Value> = statements.into_iter().filter(|s| s["Effect"] != "Allow").collect();
        if kept.is_empty() {
            fewer.remove(victim);
        } else {
            fewer[victim]["Statement"] = json!(kept);
        }
        let after = decide(&fewer, action, resource, &context);
        prop_assert!(after != Decision::Allow || before == Decision::Allow, "{before:?} -> {after:?}");
    }

    #[test]
    fn canonical_json_parses_back_to_the_same_policy(document in policy()) {
        let first = Policy::from_value(&document, PolicyKind::Identity).expect("valid");
        let canonical = first.to_json();
        let second = Policy::from_value(&canonical, PolicyKind::Identity).expect("canonical form is valid");
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(canonical, second.to_json());
    }

    #[test]
    fn arbitrary_text_never_panics_the_parser(text in ".{0,200}") {
        let _ = Policy::parse(&text, PolicyKind::Identity);
        let _ = Policy::parse(&text, PolicyKind::Trust);
    }
}

/// The obvious recursive matcher, as the reference for the fast one.
fn naive(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|i| naive(rest, &text[i..])),
        Some(('?', rest)) => !text.is_empty() && naive(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && naive(rest, &text[1..]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn globs_match_as_the_obvious_matcher_does(pattern in "[ab*?:/é]{0,8}", text in "[ab:/é]{0,12}") {
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        prop_assert_eq!(
            crate::glob::glob_match(&pattern, &text),
            naive(&chars(&pattern), &chars(&text)),
            "{:?} ~ {:?}", pattern, text
        );
    }
}
