//! Any bytes as a policy document and as a simulator request: parsing and
//! evaluation must never panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipewright_authz::{Context, NamedPolicy, Policy, PolicyKind, Request, evaluate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = pipewright_authz::simulate::simulate_json(text);
    for kind in [PolicyKind::Identity, PolicyKind::Trust] {
        let Ok(policy) = Policy::parse(text, kind) else { continue };
        let _ = Policy::from_value(&policy.to_json(), kind).expect("canonical JSON parses back");
        let context = Context::new()
            .with("pw:username", "al*ce")
            .with("pw:SourceIp", "203.0.113.7")
            .with("pw:CurrentTime", "2026-11-27T10:00:00Z")
            .with("pw:TagKeys", vec!["team".to_owned(), "env".to_owned()]);
        let policies = [NamedPolicy::new("fuzzed", policy)];
        for (action, resource) in [
            ("codepipeline:GetPipeline", "arn:pw:codepipeline:local:111122223333:web/Prod/Approve"),
            ("sts:AssumeRole", "arn:pw:iam::111122223333:role/r"),
            ("iam:CreateUser", "*"),
        ] {
            let _ = evaluate(&policies, None, &Request { action, resource, context: &context });
        }
    }
});
