//! IAM's documented rules, one case each, through the simulator's request
//! format. Each case names the rule it checks; expected outcomes follow the
//! IAM User Guide ("Policy evaluation logic", "Condition operators", "Policy
//! variables", "Principal", "Cross-account policy evaluation logic").

use serde_json::{Value, json};

use crate::simulate::simulate;

const A: &str = "111122223333";
const B: &str = "444455556666";
const PIPE: &str = "arn:pw:codepipeline:local:111122223333:web";
const STAGE: &str = "arn:pw:codepipeline:local:111122223333:web/Prod";
const ACTION: &str = "arn:pw:codepipeline:local:111122223333:web/Prod/Approve";
const ROLE: &str = "arn:pw:iam::111122223333:role/deployer";
const ALICE: &str = "arn:pw:iam::111122223333:user/alice";
const BOB_B: &str = "arn:pw:iam::444455556666:user/bob";

enum Expect {
    Decision(&'static str),
    Malformed(&'static str),
}
use Expect::{Decision, Malformed};

struct Case {
    rule: &'static str,
    request: Value,
    expect: Expect,
}

fn statement(effect: &str, action: &str, resource: &str) -> Value {
    json!({"Effect": effect, "Action": action, "Resource": resource})
}

fn doc(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn allow(action: &str, resource: &str) -> Value {
    doc(vec![statement("Allow", action, resource)])
}

fn deny(action: &str, resource: &str) -> Value {
    doc(vec![statement("Deny", action, resource)])
}

fn with_condition(mut statement: Value, condition: Value) -> Value {
    statement["Condition"] = condition;
    statement
}

/// An identity-policy case.
fn id(
    rule: &'static str,
    policies: Vec<Value>,
    action: &str,
    resource: &str,
    context: Value,
    expect: &'static str,
) -> Case {
    Case {
        rule,
        request: json!({"identityPolicies": policies, "action": action, "resource": resource, "context": context}),
        expect: Decision(expect),
    }
}

/// A condition case: one Allow of everything under `condition`.
fn cond(rule: &'static str, condition: Value, context: Value, expect: &'static str) -> Case {
    let policy = doc(vec![with_condition(statement("Allow", "*", "*"), condition)]);
    id(rule, vec![policy], "codepipeline:GetPipeline", PIPE, context, expect)
}

/// A session-policy case.
fn session(rule: &'static str, identity: Value, session: Value, action: &str, expect: &'static str) -> Case {
    Case {
        rule,
        request: json!({"identityPolicies": [identity], "sessionPolicy": session, "action": action, "resource": PIPE, "context": {}}),
        expect: Decision(expect),
    }
}

/// An AssumeRole case for the role `ROLE` (account A).
fn assume(
    rule: &'static str,
    caller: &str,
    identity: Vec<Value>,
    trust: Value,
    context: Value,
    expect: &'static str,
) -> Case {
    Case {
        rule,
        request: json!({
            "identityPolicies": identity, "trustPolicy": trust,
            "principal": {"arn": caller},
            "action": "sts:AssumeRole", "resource": ROLE, "context": context
        }),
        expect: Decision(expect),
    }
}

fn trust(principal: Value) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]})
}

/// A document the parser must reject, with a fragment of the message.
fn bad(rule: &'static str, policy: Value, message: &'static str) -> Case {
    Case {
        rule,
        request: json!({"identityPolicies": [policy], "action": "a:b", "resource": "*"}),
        expect: Malformed(message),
    }
}

fn bad_trust(rule: &'static str, policy: Value, message: &'static str) -> Case {
    Case {
        rule,
        request: json!({"trustPolicy": policy, "principal": {"arn": ALICE}, "action": "sts:AssumeRole", "resource": ROLE}),
        expect: Malformed(message),
    }
}

fn cases() -> Vec<Case> {
    let none = json!({});
    let get = "codepipeline:GetPipeline";
    vec![
        // Evaluation logic
        id("no policy: implicit deny", vec![], get, PIPE, none.clone(), "ImplicitDeny"),
        id("an Allow that matches allows", vec![allow(get, PIPE)], get, PIPE, none.clone(), "Allow"),
        id("an Allow of another action: implicit deny", vec![allow("codepipeline:ListPipelines", "*")], get, PIPE, none.clone(), "ImplicitDeny"),
        id("an Allow of another resource: implicit deny", vec![allow(get, STAGE)], get, PIPE, none.clone(), "ImplicitDeny"),
        id("explicit Deny overrides Allow in the same policy", vec![doc(vec![statement("Allow", "*", "*"), statement("Deny", get, PIPE)])], get, PIPE, none.clone(), "ExplicitDeny"),
        id("explicit Deny overrides Allow across policies", vec![allow("*", "*"), deny(get, "*")], get, PIPE, none.clone(), "ExplicitDeny"),
        id("a Deny alone is an explicit deny", vec![deny(get, "*")], get, PIPE, none.clone(), "ExplicitDeny"),
        id("a Deny of another action does not deny", vec![allow("*", "*"), deny("codepipeline:DeletePipeline", "*")], get, PIPE, none.clone(), "Allow"),
        id("NotAction allows every other action", vec![doc(vec![json!({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})])], get, PIPE, none.clone(), "Allow"),
        id("NotAction does not allow the listed action", vec![doc(vec![json!({"Effect": "Allow", "NotAction": "codepipeline:Get*", "Resource": "*"})])], get, PIPE, none.clone(), "ImplicitDeny"),
        id("Deny with NotAction denies every other action", vec![allow("*", "*"), doc(vec![json!({"Effect": "Deny", "NotAction": "codepipeline:List*", "Resource": "*"})])], get, PIPE, none.clone(), "ExplicitDeny"),
        id("NotResource allows every other resource", vec![doc(vec![json!({"Effect": "Allow", "Action": "*", "NotResource": STAGE})])], get, PIPE, none.clone(), "Allow"),
        id("NotResource does not allow the listed resource", vec![doc(vec![json!({"Effect": "Allow", "Action": "*", "NotResource": PIPE})])], get, PIPE, none.clone(), "ImplicitDeny"),
        id("Deny with NotResource protects all but the listed", vec![allow("*", "*"), doc(vec![json!({"Effect": "Deny", "Action": "*", "NotResource": STAGE})])], get, PIPE, none.clone(), "ExplicitDeny"),
        id("a statement given as an object, not an array", vec![json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": get, "Resource": PIPE}})], get, PIPE, none.clone(), "Allow"),
        id("Action and Resource as arrays: any entry matches", vec![doc(vec![json!({"Effect": "Allow", "Action": ["iam:GetUser", get], "Resource": [STAGE, PIPE]})])], get, PIPE, none.clone(), "Allow"),
        // Session policies
        session("session policy: both allow", allow("*", "*"), allow(get, PIPE), get, "Allow"),
        session("session policy narrows: identity allows, session does not", allow("*", "*"), allow("codepipeline:ListPipelines", "*"), get, "ImplicitDeny"),
        session("session policy cannot grant what identity does not", allow("codepipeline:ListPipelines", "*"), allow("*", "*"), get, "ImplicitDeny"),
        session("session policy Deny is an explicit deny", allow("*", "*"), doc(vec![statement("Allow", "*", "*"), statement("Deny", get, "*")]), get, "ExplicitDeny"),
        session("identity Deny wins over a session Allow", deny(get, "*"), allow("*", "*"), get, "ExplicitDeny"),
        // Actions
        id("action names are case-insensitive", vec![allow("CodePipeline:getpipeline", PIPE)], get, PIPE, none.clone(), "Allow"),
        id("action wildcard * after a prefix", vec![allow("codepipeline:Get*", PIPE)], get, PIPE, none.clone(), "Allow"),
        id("action wildcard does not cross services", vec![allow("iam:Get*", "*")], get, PIPE, none.clone(), "ImplicitDeny"),
        id("service wildcard codepipeline:*", vec![allow("codepipeline:*", "*")], get, PIPE, none.clone(), "Allow"),
        id("Action * matches everything", vec![allow("*", "*")], "iam:CreateUser", "arn:pw:iam::111122223333:user/x", none.clone(), "Allow"),
        id("action wildcard in the middle", vec![allow("codepipeline:*Pipeline", "*")], get, PIPE, none.clone(), "Allow"),
        id("action ? matches one character", vec![allow("codepipeline:GetPipelin?", "*")], get, PIPE, none.clone(), "Allow"),
        id("action ? does not match two", vec![allow("codepipeline:GetPipeli?", "*")], get, PIPE, none.clone(), "ImplicitDeny"),
        id("action prefix alone does not match longer names", vec![allow("codepipeline:Get", "*")], get, PIPE, none.clone(), "ImplicitDeny"),
        id("the request's action case does not matter", vec![allow(get, PIPE)], "CODEPIPELINE:GETPIPELINE", PIPE, none.clone(), "Allow"),
        // Resources
        id("resource wildcard * spans ARN parts", vec![allow(get, "arn:pw:codepipeline:*")], get, PIPE, none.clone(), "Allow"),
        id("resource web/* matches a stage", vec![allow("*", "arn:pw:codepipeline:*:111122223333:web/*")], "codepipeline:EnableStageTransition", STAGE, none.clone(), "Allow"),
        id("resource web/* matches an action", vec![allow("*", "arn:pw:codepipeline:*:111122223333:web/Prod/*")], "codepipeline:PutApprovalResult", ACTION, none.clone(), "Allow"),
        id("resource web/* does not match the pipeline itself", vec![allow("*", "arn:pw:codepipeline:*:111122223333:web/*")], get, PIPE, none.clone(), "ImplicitDeny"),
        id("resource web* matches webapp too", vec![allow("*", "arn:pw:codepipeline:*:111122223333:web*")], get, "arn:pw:codepipeline:local:111122223333:webapp", none.clone(), "Allow"),
        id("resource ARNs are case-sensitive", vec![allow(get, "arn:pw:codepipeline:local:111122223333:Web")], get, PIPE, none.clone(), "ImplicitDeny"),
        id("resource ? matches one character", vec![allow(get, "arn:pw:codepipeline:local:111122223333:we?")], get, PIPE, none.clone(), "Allow"),
        id("another account's resource does not match", vec![allow(get, "arn:pw:codepipeline:*:444455556666:*")], get, PIPE, none.clone(), "ImplicitDeny"),
        id("an ARN of another partition matches nothing of ours", vec![allow(get, "arn:aws:codepipeline:*:111122223333:web")], get, PIPE, none.clone(), "ImplicitDeny"),
        id("another region does not match", vec![allow(get, "arn:pw:codepipeline:eu-west-1:111122223333:web")], get, PIPE, none.clone(), "ImplicitDeny"),
        id("Resource * matches everything", vec![allow(get, "*")], get, PIPE, none.clone(), "Allow"),
        id("stage-level permission does not reach another stage", vec![allow("codepipeline:EnableStageTransition", STAGE)], "codepipeline:EnableStageTransition", "arn:pw:codepipeline:local:111122223333:web/Beta", none.clone(), "ImplicitDeny"),
        // Policy variables
        id("${pw:username} is substituted", vec![allow("iam:*", "arn:pw:iam::111122223333:user/${pw:username}")], "iam:GetUser", ALICE, json!({"pw:username": "alice"}), "Allow"),
        id("${aws:username} is the same variable", vec![allow("iam:*", "arn:pw:iam::111122223333:user/${aws:username}")], "iam:GetUser", ALICE, json!({"pw:username": "alice"}), "Allow"),
        id("a variable with another value does not match", vec![allow("iam:*", "arn:pw:iam::111122223333:user/${pw:username}")], "iam:GetUser", ALICE, json!({"pw:username": "bob"}), "ImplicitDeny"),
        id("an absent variable makes the resource not match", vec![allow("iam:*", "arn:pw:iam::111122223333:user/${pw:username}")], "iam:GetUser", ALICE, none.clone(), "ImplicitDeny"),
        id("an absent variable takes its default", vec![allow("iam:*", "arn:pw:iam::111122223333:user/${pw:username, 'alice'}")], "iam:GetUser", ALICE, none.clone(), "Allow"),
        id("in version 2008-10-17 variables are literal text", vec![json!({"Version": "2008-10-17", "Statement": [statement("Allow", "iam:*", "arn:pw:iam::111122223333:user/${pw:username}")]})], "iam:GetUser", ALICE, json!({"pw:username": "alice"}), "ImplicitDeny"),
        id("without Version a policy is 2008-10-17", vec![json!({"Statement": [statement("Allow", "iam:*", "arn:pw:iam::111122223333:user/${pw:username}")]})], "iam:GetUser", ALICE, json!({"pw:username": "alice"}), "ImplicitDeny"),
        id("${*} is a literal star", vec![allow("iam:*", "arn:pw:iam::111122223333:user/${*}")], "iam:GetUser", ALICE, none.clone(), "ImplicitDeny"),
        id("${*} matches a literal star", vec![allow("iam:*", "arn:pw:iam::111122223333:user/${*}")], "iam:GetUser", "arn:pw:iam::111122223333:user/*", none.clone(), "Allow"),
        id("a substituted value's * is literal", vec![allow("iam:*", "arn:pw:iam::111122223333:user/${pw:username}")], "iam:GetUser", ALICE, json!({"pw:username": "*"}), "ImplicitDeny"),
        id("a multivalued key is no variable", vec![allow("iam:*", "arn:pw:iam::111122223333:user/${pw:username}")], "iam:GetUser", ALICE, json!({"pw:username": ["alice"]}), "ImplicitDeny"),
        id("a variable before the fifth colon of a resource is not substituted", vec![allow(get, "arn:pw:codepipeline:*:${pw:PrincipalAccount}:*")], get, PIPE, json!({"pw:PrincipalAccount": A}), "ImplicitDeny"),
        id("${pw:PrincipalAccount} after the fifth colon", vec![allow("iam:GetUser", "arn:pw:iam::111122223333:user/${pw:PrincipalAccount}")], "iam:GetUser", "arn:pw:iam::111122223333:user/111122223333", json!({"pw:PrincipalAccount": A}), "Allow"),
        id("a variable in a condition value", vec![doc(vec![with_condition(statement("Allow", "*", "*"), json!({"StringEquals": {"pw:ResourceTag/owner": "${pw:username}"}}))])], get, PIPE, json!({"pw:username": "alice", "pw:ResourceTag/owner": "alice"}), "Allow"),
        id("a condition value whose variable is absent never matches", vec![doc(vec![with_condition(statement("Allow", "*", "*"), json!({"StringEquals": {"pw:ResourceTag/owner": "${pw:username}"}}))])], get, PIPE, json!({"pw:ResourceTag/owner": "alice"}), "ImplicitDeny"),
        id("a tag variable in a resource", vec![allow(get, "arn:pw:codepipeline:*:*:${pw:PrincipalTag/team}-*")], get, "arn:pw:codepipeline:local:111122223333:blue-web", json!({"pw:PrincipalTag/team": "blue"}), "Allow"),
        // String conditions
        cond("StringEquals matches", json!({"StringEquals": {"pw:username": "alice"}}), json!({"pw:username": "alice"}), "Allow"),
        cond("StringEquals is case-sensitive", json!({"StringEquals": {"pw:username": "alice"}}), json!({"pw:username": "Alice"}), "ImplicitDeny"),
        cond("values of one key are ORed", json!({"StringEquals": {"pw:username": ["bob", "alice"]}}), json!({"pw:username": "alice"}), "Allow"),
        cond("StringEquals with an absent key is false", json!({"StringEquals": {"pw:username": "alice"}}), none.clone(), "ImplicitDeny"),
        cond("StringNotEquals holds for another value", json!({"StringNotEquals": {"pw:username": "alice"}}), json!({"pw:username": "bob"}), "Allow"),
        cond("StringNotEquals fails for the value", json!({"StringNotEquals": {"pw:username": "alice"}}), json!({"pw:username": "alice"}), "ImplicitDeny"),
        cond("StringNotEquals with several values: matching any fails", json!({"StringNotEquals": {"pw:username": ["bob", "alice"]}}), json!({"pw:username": "alice"}), "ImplicitDeny"),
        cond("a negated operator holds when the key is absent", json!({"StringNotEquals": {"pw:username": "alice"}}), none.clone(), "Allow"),
        cond("StringEqualsIgnoreCase ignores case", json!({"StringEqualsIgnoreCase": {"pw:username": "ALICE"}}), json!({"pw:username": "alice"}), "Allow"),
        cond("StringNotEqualsIgnoreCase", json!({"StringNotEqualsIgnoreCase": {"pw:username": "ALICE"}}), json!({"pw:username": "alice"}), "ImplicitDeny"),
        cond("StringLike with *", json!({"StringLike": {"pw:UserAgent": "pipewright-cli/*"}}), json!({"pw:UserAgent": "pipewright-cli/1.2"}), "Allow"),
        cond("StringLike with ?", json!({"StringLike": {"pw:username": "al?ce"}}), json!({"pw:username": "alice"}), "Allow"),
        cond("StringLike no match", json!({"StringLike": {"pw:UserAgent": "pipewright-cli/*"}}), json!({"pw:UserAgent": "curl/8"}), "ImplicitDeny"),
        cond("StringNotLike", json!({"StringNotLike": {"pw:UserAgent": "curl/*"}}), json!({"pw:UserAgent": "curl/8"}), "ImplicitDeny"),
        cond("StringNotLike holds for another value", json!({"StringNotLike": {"pw:UserAgent": "curl/*"}}), json!({"pw:UserAgent": "pw/1"}), "Allow"),
        cond("StringEqualsIfExists holds when absent", json!({"StringEqualsIfExists": {"pw:username": "alice"}}), none.clone(), "Allow"),
        cond("StringEqualsIfExists checks a present key", json!({"StringEqualsIfExists": {"pw:username": "alice"}}), json!({"pw:username": "bob"}), "ImplicitDeny"),
        cond("keys under one operator are ANDed (both hold)", json!({"StringEquals": {"pw:username": "alice", "pw:PrincipalAccount": A}}), json!({"pw:username": "alice", "pw:PrincipalAccount": A}), "Allow"),
        cond("keys under one operator are ANDed (one fails)", json!({"StringEquals": {"pw:username": "alice", "pw:PrincipalAccount": A}}), json!({"pw:username": "alice", "pw:PrincipalAccount": B}), "ImplicitDeny"),
        cond("operators are ANDed", json!({"StringEquals": {"pw:username": "alice"}, "Bool": {"pw:SecureTransport": "true"}}), json!({"pw:username": "alice", "pw:SecureTransport": "false"}), "ImplicitDeny"),
        cond("condition keys are case-insensitive", json!({"StringEquals": {"PW:UserName": "alice"}}), json!({"pw:username": "alice"}), "Allow"),
        cond("aws: keys are pw: keys", json!({"StringEquals": {"aws:username": "alice"}}), json!({"pw:username": "alice"}), "Allow"),
        cond("sts:ExternalId is its own key", json!({"StringEquals": {"sts:ExternalId": "x-123"}}), json!({"sts:ExternalId": "x-123"}), "Allow"),
        cond("a number in the policy compares as text", json!({"StringEquals": {"pw:ResourceTag/cost": 12}}), json!({"pw:ResourceTag/cost": "12"}), "Allow"),
        cond("ResourceTag condition", json!({"StringEquals": {"pw:ResourceTag/team": "blue"}}), json!({"pw:ResourceTag/team": "blue"}), "Allow"),
        cond("ResourceTag condition, other team", json!({"StringEquals": {"pw:ResourceTag/team": "blue"}}), json!({"pw:ResourceTag/team": "red"}), "ImplicitDeny"),
        cond("RequestTag condition", json!({"StringEquals": {"pw:RequestTag/env": "prod"}}), json!({"pw:RequestTag/env": "prod"}), "Allow"),
        cond("PrincipalArn StringLike", json!({"StringLike": {"pw:PrincipalArn": "arn:pw:iam::111122223333:user/*"}}), json!({"pw:PrincipalArn": ALICE}), "Allow"),
        cond("PrincipalType StringEquals", json!({"StringEquals": {"pw:PrincipalType": "User"}}), json!({"pw:PrincipalType": "AssumedRole"}), "ImplicitDeny"),
        cond("RequestedRegion", json!({"StringEquals": {"pw:RequestedRegion": "local"}}), json!({"pw:RequestedRegion": "local"}), "Allow"),
        cond("sts:RoleSessionName StringLike", json!({"StringLike": {"sts:RoleSessionName": "ci-*"}}), json!({"sts:RoleSessionName": "ci-42"}), "Allow"),
        // Numeric
        cond("NumericEquals", json!({"NumericEquals": {"pw:MultiFactorAuthAge": "10"}}), json!({"pw:MultiFactorAuthAge": "10"}), "Allow"),
        cond("NumericEquals compares numbers, not text", json!({"NumericEquals": {"pw:MultiFactorAuthAge": "10"}}), json!({"pw:MultiFactorAuthAge": "10.0"}), "Allow"),
        cond("NumericNotEquals", json!({"NumericNotEquals": {"pw:MultiFactorAuthAge": "10"}}), json!({"pw:MultiFactorAuthAge": "11"}), "Allow"),
        cond("NumericLessThan holds", json!({"NumericLessThan": {"pw:MultiFactorAuthAge": "3600"}}), json!({"pw:MultiFactorAuthAge": "100"}), "Allow"),
        cond("NumericLessThan fails at equality", json!({"NumericLessThan": {"pw:MultiFactorAuthAge": "3600"}}), json!({"pw:MultiFactorAuthAge": "3600"}), "ImplicitDeny"),
        cond("NumericLessThanEquals at equality", json!({"NumericLessThanEquals": {"pw:MultiFactorAuthAge": "3600"}}), json!({"pw:MultiFactorAuthAge": "3600"}), "Allow"),
        cond("NumericGreaterThan", json!({"NumericGreaterThan": {"pw:MultiFactorAuthAge": "5"}}), json!({"pw:MultiFactorAuthAge": "4"}), "ImplicitDeny"),
        cond("NumericGreaterThanEquals", json!({"NumericGreaterThanEquals": {"pw:MultiFactorAuthAge": "5"}}), json!({"pw:MultiFactorAuthAge": "5"}), "Allow"),
        cond("a non-numeric context value fails a numeric condition", json!({"NumericLessThan": {"pw:MultiFactorAuthAge": "5"}}), json!({"pw:MultiFactorAuthAge": "soon"}), "ImplicitDeny"),
        cond("NumericLessThanIfExists with the key absent", json!({"NumericLessThanIfExists": {"pw:MultiFactorAuthAge": "5"}}), none.clone(), "Allow"),
        cond("a JSON number as policy value", json!({"NumericLessThan": {"pw:MultiFactorAuthAge": 3600}}), json!({"pw:MultiFactorAuthAge": "60"}), "Allow"),
        // Dates
        cond("DateLessThan holds before", json!({"DateLessThan": {"pw:CurrentTime": "2027-01-01T00:00:00Z"}}), json!({"pw:CurrentTime": "2026-11-27T10:00:00Z"}), "Allow"),
        cond("DateLessThan fails after", json!({"DateLessThan": {"pw:CurrentTime": "2026-01-01T00:00:00Z"}}), json!({"pw:CurrentTime": "2026-11-27T10:00:00Z"}), "ImplicitDeny"),
        cond("DateGreaterThan", json!({"DateGreaterThan": {"pw:CurrentTime": "2026-01-01T00:00:00Z"}}), json!({"pw:CurrentTime": "2026-11-27T10:00:00Z"}), "Allow"),
        cond("DateEquals across time zones", json!({"DateEquals": {"pw:CurrentTime": "2026-01-01T02:00:00+02:00"}}), json!({"pw:CurrentTime": "2026-01-01T00:00:00Z"}), "Allow"),
        cond("DateNotEquals", json!({"DateNotEquals": {"pw:CurrentTime": "2026-01-01T00:00:00Z"}}), json!({"pw:CurrentTime": "2026-01-01T00:00:00Z"}), "ImplicitDeny"),
        cond("a date given as epoch seconds", json!({"DateGreaterThanEquals": {"pw:EpochTime": "1767225600"}}), json!({"pw:EpochTime": "1767225600"}), "Allow"),
        cond("epoch seconds against an ISO date", json!({"DateLessThan": {"pw:CurrentTime": "2026-01-01"}}), json!({"pw:CurrentTime": "1767225599"}), "Allow"),
        cond("DateLessThanEquals at equality", json!({"DateLessThanEquals": {"pw:CurrentTime": "2026-01-01T00:00:00Z"}}), json!({"pw:CurrentTime": "2026-01-01T00:00:00Z"}), "Allow"),
        cond("a date condition with the key absent is false", json!({"DateLessThan": {"pw:CurrentTime": "2027-01-01T00:00:00Z"}}), none.clone(), "ImplicitDeny"),
        cond("an unreadable context date fails", json!({"DateLessThan": {"pw:CurrentTime": "2027-01-01T00:00:00Z"}}), json!({"pw:CurrentTime": "tomorrow"}), "ImplicitDeny"),
        // Bool
        cond("Bool true", json!({"Bool": {"pw:SecureTransport": "true"}}), json!({"pw:SecureTransport": "true"}), "Allow"),
        cond("Bool false against true", json!({"Bool": {"pw:SecureTransport": "true"}}), json!({"pw:SecureTransport": "false"}), "ImplicitDeny"),
        cond("Bool is case-insensitive", json!({"Bool": {"pw:MultiFactorAuthPresent": "TRUE"}}), json!({"pw:MultiFactorAuthPresent": "true"}), "Allow"),
        cond("Bool with a JSON boolean", json!({"Bool": {"pw:MultiFactorAuthPresent": true}}), json!({"pw:MultiFactorAuthPresent": "true"}), "Allow"),
        cond("Bool with the key absent is false", json!({"Bool": {"pw:MultiFactorAuthPresent": "true"}}), none.clone(), "ImplicitDeny"),
        cond("BoolIfExists with the key absent", json!({"BoolIfExists": {"pw:MultiFactorAuthPresent": "false"}}), none.clone(), "Allow"),
        cond("BinaryEquals", json!({"BinaryEquals": {"pw:ResourceTag/key": "QmluYXJ5"}}), json!({"pw:ResourceTag/key": "QmluYXJ5"}), "Allow"),
        cond("BinaryEquals, other bytes", json!({"BinaryEquals": {"pw:ResourceTag/key": "QmluYXJ5"}}), json!({"pw:ResourceTag/key": "QmluYXJ6"}), "ImplicitDeny"),
        // IP addresses
        cond("IpAddress inside the block", json!({"IpAddress": {"pw:SourceIp": "203.0.113.0/24"}}), json!({"pw:SourceIp": "203.0.113.7"}), "Allow"),
        cond("IpAddress outside the block", json!({"IpAddress": {"pw:SourceIp": "203.0.113.0/24"}}), json!({"pw:SourceIp": "198.51.100.7"}), "ImplicitDeny"),
        cond("IpAddress with aws:SourceIp", json!({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}), json!({"pw:SourceIp": "203.0.113.7"}), "Allow"),
        cond("IpAddress with a bare address", json!({"IpAddress": {"pw:SourceIp": "203.0.113.7"}}), json!({"pw:SourceIp": "203.0.113.7"}), "Allow"),
        cond("IpAddress IPv6 block", json!({"IpAddress": {"pw:SourceIp": "2001:db8::/32"}}), json!({"pw:SourceIp": "2001:db8:0:1::7"}), "Allow"),
        cond("IpAddress IPv6 outside", json!({"IpAddress": {"pw:SourceIp": "2001:db8::/32"}}), json!({"pw:SourceIp": "2001:db9::7"}), "ImplicitDeny"),
        cond("IpAddress: several blocks are ORed", json!({"IpAddress": {"pw:SourceIp": ["10.0.0.0/8", "203.0.113.0/24"]}}), json!({"pw:SourceIp": "203.0.113.7"}), "Allow"),
        cond("NotIpAddress outside holds", json!({"NotIpAddress": {"pw:SourceIp": "203.0.113.0/24"}}), json!({"pw:SourceIp": "198.51.100.7"}), "Allow"),
        cond("NotIpAddress inside fails", json!({"NotIpAddress": {"pw:SourceIp": "203.0.113.0/24"}}), json!({"pw:SourceIp": "203.0.113.7"}), "ImplicitDeny"),
        cond("NotIpAddress with the key absent holds", json!({"NotIpAddress": {"pw:SourceIp": "203.0.113.0/24"}}), none.clone(), "Allow"),
        cond("IpAddress with a context value that is no address", json!({"IpAddress": {"pw:SourceIp": "0.0.0.0/0"}}), json!({"pw:SourceIp": "localhost"}), "ImplicitDeny"),
        // ARN operators
        cond("ArnLike per part", json!({"ArnLike": {"pw:PrincipalArn": "arn:pw:iam::*:user/*"}}), json!({"pw:PrincipalArn": ALICE}), "Allow"),
        cond("ArnLike: a * does not span parts", json!({"ArnLike": {"pw:PrincipalArn": "arn:pw:iam:*:user/*"}}), json!({"pw:PrincipalArn": ALICE}), "ImplicitDeny"),
        cond("ArnEquals exact", json!({"ArnEquals": {"pw:PrincipalArn": ALICE}}), json!({"pw:PrincipalArn": ALICE}), "Allow"),
        cond("ArnEquals other user", json!({"ArnEquals": {"pw:PrincipalArn": ALICE}}), json!({"pw:PrincipalArn": BOB_B}), "ImplicitDeny"),
        cond("ArnNotLike", json!({"ArnNotLike": {"pw:PrincipalArn": "arn:pw:iam::444455556666:*"}}), json!({"pw:PrincipalArn": BOB_B}), "ImplicitDeny"),
        cond("ArnNotEquals other value holds", json!({"ArnNotEquals": {"pw:PrincipalArn": ALICE}}), json!({"pw:PrincipalArn": BOB_B}), "Allow"),
        cond("ArnLike against a value that is no ARN", json!({"ArnLike": {"pw:PrincipalArn": "arn:*"}}), json!({"pw:PrincipalArn": "alice"}), "ImplicitDeny"),
        cond("ArnLikeIfExists with the key absent", json!({"ArnLikeIfExists": {"pw:PrincipalArn": "arn:pw:iam::*:user/*"}}), none.clone(), "Allow"),
        // Null
        cond("Null true: the key is absent", json!({"Null": {"pw:ResourceTag/team": "true"}}), none.clone(), "Allow"),
        cond("Null true fails when the key is present", json!({"Null": {"pw:ResourceTag/team": "true"}}), json!({"pw:ResourceTag/team": "blue"}), "ImplicitDeny"),
        cond("Null false: the key is present", json!({"Null": {"pw:ResourceTag/team": "false"}}), json!({"pw:ResourceTag/team": "blue"}), "Allow"),
        cond("Null false fails when absent", json!({"Null": {"pw:ResourceTag/team": "false"}}), none.clone(), "ImplicitDeny"),
        cond("Null counts an empty set as absent", json!({"Null": {"pw:TagKeys": "true"}}), json!({"pw:TagKeys": []}), "Allow"),
        // Set operators
        cond("ForAllValues: every value allowed", json!({"ForAllValues:StringEquals": {"pw:TagKeys": ["team", "env"]}}), json!({"pw:TagKeys": ["env", "team"]}), "Allow"),
        cond("ForAllValues: one value not allowed", json!({"ForAllValues:StringEquals": {"pw:TagKeys": ["team", "env"]}}), json!({"pw:TagKeys": ["env", "cost"]}), "ImplicitDeny"),
        cond("ForAllValues holds for an absent key", json!({"ForAllValues:StringEquals": {"pw:TagKeys": ["team"]}}), none.clone(), "Allow"),
        cond("ForAllValues holds for an empty set", json!({"ForAllValues:StringEquals": {"pw:TagKeys": ["team"]}}), json!({"pw:TagKeys": []}), "Allow"),
        cond("ForAnyValue: one value matches", json!({"ForAnyValue:StringEquals": {"pw:TagKeys": ["team"]}}), json!({"pw:TagKeys": ["env", "team"]}), "Allow"),
        cond("ForAnyValue: none matches", json!({"ForAnyValue:StringEquals": {"pw:TagKeys": ["team"]}}), json!({"pw:TagKeys": ["env"]}), "ImplicitDeny"),
        cond("ForAnyValue fails for an absent key", json!({"ForAnyValue:StringEquals": {"pw:TagKeys": ["team"]}}), none.clone(), "ImplicitDeny"),
        cond("ForAnyValue fails for an empty set", json!({"ForAnyValue:StringEquals": {"pw:TagKeys": ["team"]}}), json!({"pw:TagKeys": []}), "ImplicitDeny"),
        cond("ForAnyValue:StringLike", json!({"ForAnyValue:StringLike": {"pw:TagKeys": ["cost-*"]}}), json!({"pw:TagKeys": ["env", "cost-centre"]}), "Allow"),
        cond("ForAllValues:StringNotEquals: none of the values is forbidden", json!({"ForAllValues:StringNotEquals": {"pw:TagKeys": ["owner"]}}), json!({"pw:TagKeys": ["env", "team"]}), "Allow"),
        cond("ForAllValues:StringNotEquals: a forbidden value", json!({"ForAllValues:StringNotEquals": {"pw:TagKeys": ["owner"]}}), json!({"pw:TagKeys": ["env", "owner"]}), "ImplicitDeny"),
        cond("ForAnyValue:StringNotEquals: some value is not listed", json!({"ForAnyValue:StringNotEquals": {"pw:TagKeys": ["env"]}}), json!({"pw:TagKeys": ["env", "team"]}), "Allow"),
        cond("ForAnyValue:StringEqualsIfExists with the key absent", json!({"ForAnyValue:StringEqualsIfExists": {"pw:TagKeys": ["team"]}}), none.clone(), "Allow"),
        cond("a single-valued operator on a multivalued key: any value", json!({"StringEquals": {"pw:TagKeys": "team"}}), json!({"pw:TagKeys": ["env", "team"]}), "Allow"),
        // A condition on a Deny
        id("a Deny whose condition holds denies", vec![allow("*", "*"), doc(vec![with_condition(statement("Deny", "*", "*"), json!({"Bool": {"pw:SecureTransport": "false"}}))])], get, PIPE, json!({"pw:SecureTransport": "false"}), "ExplicitDeny"),
        id("a Deny whose condition fails does not deny", vec![allow("*", "*"), doc(vec![with_condition(statement("Deny", "*", "*"), json!({"Bool": {"pw:SecureTransport": "false"}}))])], get, PIPE, json!({"pw:SecureTransport": "true"}), "Allow"),
        id("Deny unless from the office network", vec![allow("*", "*"), doc(vec![with_condition(statement("Deny", "*", "*"), json!({"NotIpAddress": {"pw:SourceIp": "203.0.113.0/24"}}))])], get, PIPE, json!({"pw:SourceIp": "198.51.100.1"}), "ExplicitDeny"),
        // AssumeRole and trust policies
        assume("same account: a trust policy naming the user is enough", ALICE, vec![], trust(json!({"PW": ALICE})), none.clone(), "Allow"),
        assume("same account: a trust policy naming the account needs the user's own Allow", ALICE, vec![], trust(json!({"PW": A})), none.clone(), "ImplicitDeny"),
        assume("same account: account in the trust policy and the user's Allow", ALICE, vec![allow("sts:AssumeRole", ROLE)], trust(json!({"PW": A})), none.clone(), "Allow"),
        assume("the account root ARN names the account", ALICE, vec![allow("sts:AssumeRole", ROLE)], trust(json!({"PW": "arn:pw:iam::111122223333:root"})), none.clone(), "Allow"),
        assume("same account: no trust, no AssumeRole whatever the user's policies", ALICE, vec![allow("*", "*")], trust(json!({"PW": BOB_B})), none.clone(), "ImplicitDeny"),
        assume("cross-account: both trust and the caller's policies allow", BOB_B, vec![allow("sts:AssumeRole", ROLE)], trust(json!({"PW": B})), none.clone(), "Allow"),
        assume("cross-account: trust alone is not enough", BOB_B, vec![], trust(json!({"PW": B})), none.clone(), "ImplicitDeny"),
        assume("cross-account: trust naming the user still needs the caller's Allow", BOB_B, vec![], trust(json!({"PW": BOB_B})), none.clone(), "ImplicitDeny"),
        assume("cross-account: the caller's Allow alone is not enough", BOB_B, vec![allow("sts:AssumeRole", "*")], trust(json!({"PW": "999988887777"})), none.clone(), "ImplicitDeny"),
        assume("AWS is accepted for PW in a principal", BOB_B, vec![allow("sts:AssumeRole", ROLE)], trust(json!({"AWS": format!("arn:aws:iam::{B}:root").replace("arn:aws", "arn:pw")})), none.clone(), "Allow"),
        assume("ExternalId condition satisfied", BOB_B, vec![allow("sts:AssumeRole", ROLE)],
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"PW": B}, "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": "ext-42"}}}]}),
            json!({"sts:ExternalId": "ext-42"}), "Allow"),
        assume("ExternalId missing", BOB_B, vec![allow("sts:AssumeRole", ROLE)],
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"PW": B}, "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": "ext-42"}}}]}),
            none.clone(), "ImplicitDeny"),
        assume("ExternalId wrong", BOB_B, vec![allow("sts:AssumeRole", ROLE)],
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"PW": B}, "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": "ext-42"}}}]}),
            json!({"sts:ExternalId": "ext-43"}), "ImplicitDeny"),
        assume("a Deny in the trust policy wins", BOB_B, vec![allow("sts:AssumeRole", ROLE)],
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"PW": B}, "Action": "sts:AssumeRole"},
                {"Effect": "Deny", "Principal": {"PW": BOB_B}, "Action": "sts:AssumeRole"}]}),
            none.clone(), "ExplicitDeny"),
        assume("a Deny in the caller's policies wins", BOB_B, vec![allow("*", "*"), deny("sts:AssumeRole", "*")], trust(json!({"PW": B})), none.clone(), "ExplicitDeny"),
        assume("Principal * with the caller's Allow", BOB_B, vec![allow("sts:AssumeRole", ROLE)], trust(json!("*")), none.clone(), "Allow"),
        assume("Principal * across accounts still needs the caller's Allow", BOB_B, vec![], trust(json!("*")), none.clone(), "ImplicitDeny"),
        assume("a role ARN as principal matches its sessions", "arn:pw:sts::444455556666:assumed-role/ci/run-1", vec![allow("sts:AssumeRole", ROLE)], trust(json!({"PW": "arn:pw:iam::444455556666:role/ci"})), none.clone(), "Allow"),
        assume("a role ARN as principal does not match another role's sessions", "arn:pw:sts::444455556666:assumed-role/other/run-1", vec![allow("sts:AssumeRole", ROLE)], trust(json!({"PW": "arn:pw:iam::444455556666:role/ci"})), none.clone(), "ImplicitDeny"),
        assume("a user ARN does not match another user", "arn:pw:iam::444455556666:user/eve", vec![allow("sts:AssumeRole", ROLE)], trust(json!({"PW": BOB_B})), none.clone(), "ImplicitDeny"),
        assume("a Service principal matches no caller", BOB_B, vec![allow("sts:AssumeRole", ROLE)], trust(json!({"Service": "codepipeline.amazonaws.com"})), none.clone(), "ImplicitDeny"),
        assume("the caller's Allow must name the role", BOB_B, vec![allow("sts:AssumeRole", "arn:pw:iam::111122223333:role/other")], trust(json!({"PW": B})), none.clone(), "ImplicitDeny"),
        assume("the trust policy's action must be sts:AssumeRole", BOB_B, vec![allow("sts:AssumeRole", ROLE)],
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"PW": B}, "Action": "sts:TagSession"}]}),
            none.clone(), "ImplicitDeny"),
        assume("NotPrincipal in a Deny spares the listed caller", ALICE, vec![],
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"PW": ALICE}, "Action": "sts:AssumeRole"},
                {"Effect": "Deny", "NotPrincipal": {"PW": ALICE}, "Action": "sts:AssumeRole"}]}),
            none.clone(), "Allow"),
        assume("NotPrincipal in a Deny denies everyone else", "arn:pw:iam::111122223333:user/mallory", vec![allow("sts:AssumeRole", ROLE)],
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"PW": A}, "Action": "sts:AssumeRole"},
                {"Effect": "Deny", "NotPrincipal": {"PW": ALICE}, "Action": "sts:AssumeRole"}]}),
            none.clone(), "ExplicitDeny"),
        // Malformed documents
        bad("Effect is required", doc(vec![json!({"Action": "*", "Resource": "*"})]), "Effect is missing"),
        bad("Effect is Allow or Deny", doc(vec![json!({"Effect": "allow", "Action": "*", "Resource": "*"})]), "Effect must be"),
        bad("Action or NotAction is required", doc(vec![json!({"Effect": "Allow", "Resource": "*"})]), "Action or NotAction is required"),
        bad("not both Action and NotAction", doc(vec![json!({"Effect": "Allow", "Action": "*", "NotAction": "iam:*", "Resource": "*"})]), "cannot both"),
        bad("not both Resource and NotResource", doc(vec![json!({"Effect": "Allow", "Action": "*", "Resource": "*", "NotResource": "*"})]), "cannot both"),
        bad("identity policies need Resource", doc(vec![json!({"Effect": "Allow", "Action": "*"})]), "Resource or NotResource is required"),
        bad("identity policies name no Principal", doc(vec![json!({"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"})]), "cannot name a Principal"),
        bad("unknown statement element", doc(vec![json!({"Effect": "Allow", "Action": "*", "Resource": "*", "Actions": "x"})]), "unknown element \"Actions\""),
        bad("unknown top-level element", json!({"Version": "2012-10-17", "Statement": [statement("Allow", "*", "*")], "Extra": 1}), "unknown element \"Extra\""),
        bad("unknown Version", json!({"Version": "2020-01-01", "Statement": [statement("Allow", "*", "*")]}), "Version"),
        bad("Statement is required", json!({"Version": "2012-10-17"}), "no Statement"),
        bad("Statement is not empty", json!({"Version": "2012-10-17", "Statement": []}), "must not be empty"),
        bad("a statement is an object", json!({"Version": "2012-10-17", "Statement": ["Allow"]}), "must be a JSON object"),
        bad("unknown condition operator", doc(vec![with_condition(statement("Allow", "*", "*"), json!({"StringEqualz": {"pw:username": "a"}}))]), "unknown condition operator"),
        bad("malformed resource", doc(vec![statement("Allow", "*", "pipeline/web")]), "must be \"*\" or an ARN"),
        bad("malformed action", doc(vec![statement("Allow", "GetPipeline", "*")]), "service:Operation"),
        bad("Sid is alphanumeric", doc(vec![json!({"Sid": "read only", "Effect": "Allow", "Action": "*", "Resource": "*"})]), "letters and digits"),
        bad("Sids are unique", doc(vec![json!({"Sid": "A", "Effect": "Allow", "Action": "*", "Resource": "*"}), json!({"Sid": "A", "Effect": "Deny", "Action": "*", "Resource": "*"})]), "used twice"),
        bad("a numeric condition takes numbers", doc(vec![with_condition(statement("Allow", "*", "*"), json!({"NumericLessThan": {"pw:MultiFactorAuthAge": "soon"}}))]), "is not a number"),
        bad("an IP condition takes CIDR blocks", doc(vec![with_condition(statement("Allow", "*", "*"), json!({"IpAddress": {"pw:SourceIp": "10.0.0.0/40"}}))]), "CIDR"),
        bad("a date condition takes dates", doc(vec![with_condition(statement("Allow", "*", "*"), json!({"DateLessThan": {"pw:CurrentTime": "noon"}}))]), "is not a date"),
        bad("Bool takes true or false", doc(vec![with_condition(statement("Allow", "*", "*"), json!({"Bool": {"pw:SecureTransport": "yes"}}))]), "true or false"),
        bad("Null takes no IfExists", doc(vec![with_condition(statement("Allow", "*", "*"), json!({"NullIfExists": {"pw:SourceIp": "true"}}))]), "Null takes neither"),
        bad("a condition value is not null", doc(vec![with_condition(statement("Allow", "*", "*"), json!({"StringEquals": {"pw:username": null}}))]), "must be a string, number or boolean"),
        bad("Action entries are strings", doc(vec![json!({"Effect": "Allow", "Action": [1], "Resource": "*"})]), "must be strings"),
        bad("size limit of identity policies", doc((0..200).map(|i| json!({"Sid": format!("S{i}"), "Effect": "Allow", "Action": "codepipeline:GetPipeline", "Resource": "*"})).collect()), "at most 6144"),
        bad_trust("trust policies need a Principal", json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}), "needs Principal"),
        bad_trust("a principal ARN has no wildcards", trust(json!({"PW": "arn:pw:iam::444455556666:user/*"})), "wildcards are not allowed"),
        bad_trust("a principal is an account, an ARN or *", trust(json!({"PW": "bob"})), "must be \"*\", an account id or an ARN"),
        bad_trust("unknown principal type", trust(json!({"Federated": "x"})), "not supported"),
    ]
}

#[test]
fn iam_documented_rules() {
    let cases = cases();
    assert!(cases.len() >= 150, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let outcome = simulate(&case.request);
        let ok = match (&case.expect, &outcome) {
            (Decision(want), Ok(result)) => result["decision"] == *want,
            (Malformed(fragment), Err(error)) => {
                error.code == "MalformedPolicyDocument" && error.message.contains(fragment)
            }
            _ => false,
        };
        if !ok {
            let got = match &outcome {
                Ok(result) => result.to_string(),
                Err(error) => error.to_string(),
            };
            let want = match &case.expect {
                Decision(d) => (*d).to_owned(),
                Malformed(m) => format!("MalformedPolicyDocument containing {m:?}"),
            };
            failures.push(format!("{}: wanted {want}, got {got}", case.rule));
        }
    }
    assert!(failures.is_empty(), "{} of {} rules failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
