//! Evaluation, as IAM decides: an explicit Deny wins, then an Allow, else the
//! request is implicitly denied. A session policy narrows an assumed-role
//! session (both must allow). `sts:AssumeRole` is decided by the caller's
//! policies and the role's trust policy together.

use std::sync::Arc;

use serde::Serialize;

use crate::arn::Arn;
use crate::context::Context;
use crate::policy::{Effect, Matcher, Policy, PrincipalPattern, Statement};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum PrincipalType {
    Root,
    User,
    AssumedRole,
    /// A service acting for an account (`arn` is its name, e.g.
    /// `codepipeline.pw`): only a trust policy's `{"Service": …}` (or `*`)
    /// names it.
    Service,
}

/// The caller, as evaluation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub arn: String,
    pub account: String,
    pub kind: PrincipalType,
}

impl Principal {
    /// For a session `…:sts::A:assumed-role/R/S`, the role `…:iam::A:role/R`.
    fn role_arn(&self) -> Option<String> {
        let arn: Arn = self.arn.parse().ok()?;
        if arn.service != "sts" || arn.resource_type() != "assumed-role" {
            return None;
        }
        Some(format!("arn:{}:iam::{}:role/{}", arn.partition, arn.account, arn.role_name()?))
    }
}

/// One request to decide. `action` is matched case-insensitively.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    pub context: &'a Context,
}

/// A policy with the name that decisions cite.
#[derive(Debug, Clone)]
pub struct NamedPolicy {
    pub name: Arc<str>,
    pub policy: Policy,
}

impl NamedPolicy {
    pub fn new(name: impl Into<Arc<str>>, policy: Policy) -> Self {
        Self { name: name.into(), policy }
    }
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Decision {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

/// A statement that took part in the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchedStatement {
    /// The policy's name (for the simulator: `identityPolicies[0]`,
    /// `sessionPolicy`, `trustPolicy`).
    pub policy: Arc<str>,
    pub statement_index: usize,
    pub sid: Option<Arc<str>>,
    pub effect: Effect,
}

/// A decision and the statements that made it: the denying statements of an
/// explicit deny, the allowing ones of an allow, none for an implicit deny.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    pub decision: Decision,
    pub matched_statements: Vec<MatchedStatement>,
}

impl Evaluation {
    pub fn is_allowed(&self) -> bool {
        self.decision == Decision::Allow
    }
}

/// What one set of policies says: the statements that applied, as
/// (policy, statement) indices, named only once the decision is made.
#[derive(Debug, Default)]
struct Verdict<'p> {
    policies: &'p [NamedPolicy],
    allows: Vec<(usize, usize)>,
    denies: Vec<(usize, usize)>,
    /// For trust policies: how closely the strongest Allow named the caller.
    strongest_allow: Option<Named>,
}

/// How a trust policy's principal named the caller, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Named {
    /// By its account (or the statement names no principal): the caller's own
    /// policies must allow as well.
    Account,
    /// By the role whose session calls: the session policy still applies.
    Role,
    /// Exactly (user ARN, session ARN, or `*`).
    Exactly,
}

impl Verdict<'_> {
    fn allowed(&self) -> bool {
        self.denies.is_empty() && !self.allows.is_empty()
    }

    fn name(&self, list: &[(usize, usize)], out: &mut Vec<MatchedStatement>) {
        for &(p, s) in list {
            let named = &self.policies[p];
            let statement = &named.policy.statements[s];
            out.push(MatchedStatement {
                policy: named.name.clone(),
                statement_index: s,
                sid: statement.sid.clone(),
                effect: statement.effect,
            });
        }
    }
}

/// Decides a request over identity policies, narrowed by a session policy
/// when the caller is a session that has one.
pub fn evaluate(identity: &[NamedPolicy], session: Option<&NamedPolicy>, request: &Request<'_>) -> Evaluation {
    let action = lowercase(request.action);
    let request = Request { action: &action, ..request.clone() };
    let identity = verdict(identity, &request, None);
    let session = session.map(|s| verdict(std::slice::from_ref(s), &request, None));
    combine(identity, session)
}

/// Decides a request of `caller` as IAM does for a principal: the account's
/// root user may do anything in its own account (but never assume a role);
/// a resource of another account is denied, since Pipewright has no
/// resource-based policies to grant it (roles are reached by assuming them).
pub fn evaluate_principal(
    caller: &Principal,
    identity: &[NamedPolicy],
    session: Option<&NamedPolicy>,
    request: &Request<'_>,
) -> Evaluation {
    let evaluation = evaluate(identity, session, request);
    if evaluation.decision == Decision::ExplicitDeny {
        return evaluation;
    }
    let resource_account = request.resource.parse::<Arn>().map(|arn| arn.account).ok();
    let foreign = resource_account.as_deref().is_some_and(|a| a.len() == 12 && a != caller.account);
    if foreign {
        return Evaluation { decision: Decision::ImplicitDeny, matched_statements: Vec::new() };
    }
    if caller.kind == PrincipalType::Root && !request.action.eq_ignore_ascii_case("sts:AssumeRole") {
        return Evaluation { decision: Decision::Allow, matched_statements: evaluation.matched_statements };
    }
    evaluation
}

/// Decides `sts:AssumeRole` of the role at `request.resource` by `caller`:
/// the caller's policies (and session policy) and the role's trust policy.
/// Across accounts both must allow; in the role's own account a trust policy
/// that names the caller is enough, while one that names only the account
/// needs the caller's policies to allow as well.
pub fn evaluate_assume_role(
    identity: &[NamedPolicy],
    session: Option<&NamedPolicy>,
    trust: &NamedPolicy,
    caller: &Principal,
    request: &Request<'_>,
) -> Evaluation {
    // AWS: "You cannot call AssumeRole by using AWS root account credentials".
    if caller.kind == PrincipalType::Root {
        return Evaluation { decision: Decision::ImplicitDeny, matched_statements: Vec::new() };
    }
    let action = lowercase(request.action);
    let request = Request { action: &action, ..request.clone() };
    let identity_verdict = verdict(identity, &request, None);
    let session_verdict = session.map(|s| verdict(std::slice::from_ref(s), &request, None));
    let trust_verdict = verdict(std::slice::from_ref(trust), &request, Some(caller));
    let role_account = request.resource.parse::<Arn>().map(|arn| arn.account).unwrap_or_default();
    let same_account = role_account == caller.account;

    let denied = !identity_verdict.denies.is_empty()
        || session_verdict.as_ref().is_some_and(|s| !s.denies.is_empty())
        || !trust_verdict.denies.is_empty();
    if denied {
        let mut denies = Vec::new();
        identity_verdict.name(&identity_verdict.denies, &mut denies);
        if let Some(s) = &session_verdict {
            s.name(&s.denies, &mut denies);
        }
        trust_verdict.name(&trust_verdict.denies, &mut denies);
        return Evaluation { decision: Decision::ExplicitDeny, matched_statements: denies };
    }
    // In the role's own account a trust policy that names the caller grants
    // by itself; one that names the caller's role is still narrowed by the
    // session policy (IAM: "resource-based policies that grant permissions to
    // an IAM role ARN are limited by ... a session policy").
    let session_allows = session_verdict.as_ref().is_none_or(Verdict::allowed);
    let granted_by_trust = same_account
        && match trust_verdict.strongest_allow {
            Some(Named::Exactly) => true,
            Some(Named::Role) => session_allows,
            _ => false,
        };
    let caller_allowed = combine(identity_verdict, session_verdict);
    let allowed = trust_verdict.allowed() && (caller_allowed.is_allowed() || granted_by_trust);
    if !allowed {
        return Evaluation { decision: Decision::ImplicitDeny, matched_statements: Vec::new() };
    }
    let mut matched = caller_allowed.matched_statements;
    trust_verdict.name(&trust_verdict.allows, &mut matched);
    Evaluation { decision: Decision::Allow, matched_statements: matched }
}

fn combine(identity: Verdict<'_>, session: Option<Verdict<'_>>) -> Evaluation {
    if !identity.denies.is_empty() || session.as_ref().is_some_and(|s| !s.denies.is_empty()) {
        let mut denies = Vec::new();
        identity.name(&identity.denies, &mut denies);
        if let Some(session) = &session {
            session.name(&session.denies, &mut denies);
        }
        return Evaluation { decision: Decision::ExplicitDeny, matched_statements: denies };
    }
    let allowed = !identity.allows.is_empty() && session.as_ref().is_none_or(|s| !s.allows.is_empty());
    if !allowed {
        return Evaluation { decision: Decision::ImplicitDeny, matched_statements: Vec::new() };
    }
    let mut matched = Vec::new();
    identity.name(&identity.allows, &mut matched);
    if let Some(session) = &session {
        session.name(&session.allows, &mut matched);
    }
    Evaluation { decision: Decision::Allow, matched_statements: matched }
}

fn verdict<'p>(policies: &'p [NamedPolicy], request: &Request<'_>, caller: Option<&Principal>) -> Verdict<'p> {
    let mut verdict = Verdict { policies, ..Verdict::default() };
    for (p, named) in policies.iter().enumerate() {
        for (index, statement) in named.policy.statements.iter().enumerate() {
            let Some(named) = applies(statement, request, caller) else { continue };
            let matched = (p, index);
            match statement.effect {
                Effect::Deny => verdict.denies.push(matched),
                Effect::Allow => {
                    verdict.strongest_allow = verdict.strongest_allow.max(Some(named));
                    verdict.allows.push(matched);
                }
            }
        }
    }
    verdict
}

/// Whether the statement applies, and for a statement with a principal how
/// closely it named the caller.
fn applies(statement: &Statement, request: &Request<'_>, caller: Option<&Principal>) -> Option<Named> {
    let action_listed = match &statement.actions {
        Matcher::Is(list) => list.iter().any(|a| a.matches(request.action)),
        Matcher::Not(list) => !list.iter().any(|a| a.matches(request.action)),
    };
    if !action_listed {
        return None;
    }
    let resource_listed = match &statement.resources {
        None => true,
        Some(Matcher::Is(list)) => list.iter().any(|r| r.matches(request.resource, request.context)),
        Some(Matcher::Not(list)) => !list.iter().any(|r| r.matches(request.resource, request.context)),
    };
    if !resource_listed {
        return None;
    }
    let named = match (&statement.principals, caller) {
        (None, _) => Named::Account,
        (Some(_), None) => return None,
        (Some(Matcher::Is(list)), Some(caller)) => list.iter().filter_map(|p| principal_matches(p, caller)).max()?,
        (Some(Matcher::Not(list)), Some(caller)) => {
            if list.iter().any(|p| principal_matches(p, caller).is_some()) {
                return None;
            }
            Named::Exactly
        }
    };
    if !statement.conditions.iter().all(|c| c.holds(request.context)) {
        return None;
    }
    Some(named)
}

/// How `pattern` names the caller, if it does.
fn principal_matches(pattern: &PrincipalPattern, caller: &Principal) -> Option<Named> {
    if caller.kind == PrincipalType::Service {
        return match pattern {
            PrincipalPattern::Anyone => Some(Named::Exactly),
            PrincipalPattern::Service(name) => (*name == caller.arn).then_some(Named::Exactly),
            _ => None,
        };
    }
    match pattern {
        PrincipalPattern::Anyone => Some(Named::Exactly),
        PrincipalPattern::Account(account) => (*account == caller.account).then_some(Named::Account),
        PrincipalPattern::Arn(arn) if *arn == caller.arn => Some(Named::Exactly),
        PrincipalPattern::Arn(arn) => caller.role_arn().is_some_and(|role| role == *arn).then_some(Named::Role),
        PrincipalPattern::Service(_) => None,
    }
}

/// Whether `trust` lets the service `service` assume the role at
/// `request.resource` for `account` (as CodePipeline assumes a pipeline's
/// service role): an Allow naming the service, and no Deny.
pub fn service_may_assume(trust: &NamedPolicy, service: &str, account: &str, context: &Context) -> bool {
    let caller = Principal { arn: service.to_owned(), account: account.to_owned(), kind: PrincipalType::Service };
    let resource = String::new();
    let request = Request { action: "sts:assumerole", resource: &resource, context };
    verdict(std::slice::from_ref(trust), &request, Some(&caller)).allowed()
}

fn lowercase(action: &str) -> String {
    action.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyKind;

    fn trust(document: &str) -> NamedPolicy {
        NamedPolicy::new("trust", Policy::parse(document, PolicyKind::Trust).expect("a trust policy"))
    }

    #[test]
    fn a_service_assumes_a_role_only_when_its_trust_policy_names_the_service() {
        let context = Context::new();
        let names = |principal: &str| {
            trust(&format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":"sts:AssumeRole"}}]}}"#
            ))
        };
        let service = names(r#"{"Service":"codepipeline.pw"}"#);
        assert!(service_may_assume(&service, "codepipeline.pw", "111122223333", &context));
        assert!(!service_may_assume(&service, "codebuild.pw", "111122223333", &context));
        // An account or a user names no service.
        let account = names(r#"{"PW":"arn:pw:iam::111122223333:root"}"#);
        assert!(!service_may_assume(&account, "codepipeline.pw", "111122223333", &context));
        assert!(service_may_assume(&names(r#""*""#), "codepipeline.pw", "111122223333", &context));
        // A Deny of the service wins.
        let denied = trust(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Principal":{"Service":"codepipeline.pw"},"Action":"sts:AssumeRole"},
                {"Effect":"Deny","Principal":"*","Action":"sts:AssumeRole"}]}"#,
        );
        assert!(!service_may_assume(&denied, "codepipeline.pw", "111122223333", &context));
        // A user's ARN never names the service.
        let user = names(r#"{"PW":"arn:pw:iam::111122223333:user/codepipeline.pw"}"#);
        assert!(!service_may_assume(&user, "codepipeline.pw", "111122223333", &context));
    }
}
