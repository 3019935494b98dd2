//! Evaluation, as IAM decides: an explicit Deny wins, then an Allow, else the
//! request is implicitly denied. A session policy narrows an assumed-role
//! session (both must allow). `sts:AssumeRole` is decided by the caller's
//! policies and the role's trust policy together.

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
        Some(format!(
            "arn:{}:iam::{}:role/{}",
            arn.partition,
            arn.account,
            arn.role_name()?
        ))
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
    pub name: String,
    pub policy: Policy,
}

impl NamedPolicy {
    pub fn new(name: impl Into<String>, policy: Policy) -> Self {
        Self {
            name: name.into(),
            policy,
        }
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
    pub policy: String,
    pub statement_index: usize,
    pub sid: Option<String>,
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

/// What one set of policies says.
#[derive(Debug, Default)]
struct Verdict {
    allows: Vec<MatchedStatement>,
    denies: Vec<MatchedStatement>,
    /// For trust policies: an allow that named the caller (not only its account).
    allows_caller_directly: bool,
}

impl Verdict {
    fn allowed(&self) -> bool {
        self.denies.is_empty() && !self.allows.is_empty()
    }
}

/// Decides a request over identity policies, narrowed by a session policy
/// when the caller is a session that has one.
pub fn evaluate(
    identity: &[NamedPolicy],
    session: Option<&NamedPolicy>,
    request: &Request<'_>,
) -> Evaluation {
    let action = lowercase(request.action);
    let request = Request {
        action: &action,
        ..request.clone()
    };
    let identity = verdict(identity, &request, None);
    let session = session.map(|s| verdict(std::slice::from_ref(s), &request, None));
    combine(identity, session)
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
    let action = lowercase(request.action);
    let request = Request {
        action: &action,
        ..request.clone()
    };
    let identity_verdict = verdict(identity, &request, None);
    let session_verdict = session.map(|s| verdict(std::slice::from_ref(s), &request, None));
    let trust_verdict = verdict(std::slice::from_ref(trust), &request, Some(caller));
    let role_account = request
        .resource
        .parse::<Arn>()
        .map(|arn| arn.account)
        .unwrap_or_default();
    let same_account = role_account == caller.account;

    let mut denies: Vec<MatchedStatement> = identity_verdict.denies.clone();
    denies.extend(session_verdict.iter().flat_map(|s| s.denies.clone()));
    denies.extend(trust_verdict.denies.clone());
    if !denies.is_empty() {
        return Evaluation {
            decision: Decision::ExplicitDeny,
            matched_statements: denies,
        };
    }
    let caller_allowed = combine(identity_verdict, session_verdict);
    let allowed = trust_verdict.allowed()
        && (caller_allowed.is_allowed() || (same_account && trust_verdict.allows_caller_directly));
    if !allowed {
        return Evaluation {
            decision: Decision::ImplicitDeny,
            matched_statements: Vec::new(),
        };
    }
    let mut matched = caller_allowed.matched_statements;
    matched.extend(trust_verdict.allows);
    Evaluation {
        decision: Decision::Allow,
        matched_statements: matched,
    }
}

fn combine(identity: Verdict, session: Option<Verdict>) -> Evaluation {
    let mut denies = identity.denies;
    if let Some(session) = &session {
        denies.extend(session.denies.iter().cloned());
    }
    if !denies.is_empty() {
        return Evaluation {
            decision: Decision::ExplicitDeny,
            matched_statements: denies,
        };
    }
    let allowed =
        !identity.allows.is_empty() && session.as_ref().is_none_or(|s| !s.allows.is_empty());
    if !allowed {
        return Evaluation {
            decision: Decision::ImplicitDeny,
            matched_statements: Vec::new(),
        };
    }
    let mut matched = identity.allows;
    if let Some(session) = session {
        matched.extend(session.allows);
    }
    Evaluation {
        decision: Decision::Allow,
        matched_statements: matched,
    }
}

fn verdict(policies: &[NamedPolicy], request: &Request<'_>, caller: Option<&Principal>) -> Verdict {
    let mut verdict = Verdict::default();
    for named in policies {
        for (index, statement) in named.policy.statements.iter().enumerate() {
            let Some(direct) = applies(statement, request, caller) else {
                continue;
            };
            let matched = MatchedStatement {
                policy: named.name.clone(),
                statement_index: index,
                sid: statement.sid.clone(),
                effect: statement.effect,
            };
            match statement.effect {
                Effect::Deny => verdict.denies.push(matched),
                Effect::Allow => {
                    verdict.allows_caller_directly |= direct;
                    verdict.allows.push(matched);
                }
            }
        }
    }
    verdict
}

/// Whether the statement applies; for statements with a principal, also
/// whether it named the caller directly (rather than by account).
fn applies(
    statement: &Statement,
    request: &Request<'_>,
    caller: Option<&Principal>,
) -> Option<bool> {
    let action_listed = match &statement.actions {
        Matcher::Is(list) => list.iter().any(|a| a.matches(request.action)),
        Matcher::Not(list) => !list.iter().any(|a| a.matches(request.action)),
    };
    if !action_listed {
        return None;
    }
    let resource_listed = match &statement.resources {
        None => true,
        Some(Matcher::Is(list)) => list
            .iter()
            .any(|r| r.matches(request.resource, request.context)),
        Some(Matcher::Not(list)) => !list
            .iter()
            .any(|r| r.matches(request.resource, request.context)),
    };
    if !resource_listed {
        return None;
    }
    let direct = match (&statement.principals, caller) {
        (None, _) => false,
        (Some(_), None) => return None,
        (Some(Matcher::Is(list)), Some(caller)) => {
            let mut best = None;
            for pattern in list {
                match principal_matches(pattern, caller) {
                    Some(true) => {
                        best = Some(true);
                        break;
                    }
                    Some(false) => best = best.or(Some(false)),
                    None => {}
                }
            }
            best?
        }
        (Some(Matcher::Not(list)), Some(caller)) => {
            if list.iter().any(|p| principal_matches(p, caller).is_some()) {
                return None;
            }
            true
        }
    };
    if !statement
        .conditions
        .iter()
        .all(|c| c.holds(request.context))
    {
        return None;
    }
    Some(direct)
}

/// `Some(true)`: names the caller; `Some(false)`: names the caller's account;
/// `None`: does not match.
fn principal_matches(pattern: &PrincipalPattern, caller: &Principal) -> Option<bool> {
    match pattern {
        PrincipalPattern::Anyone => Some(true),
        PrincipalPattern::Account(account) => (*account == caller.account).then_some(false),
        PrincipalPattern::Arn(arn) => (*arn == caller.arn
            || caller.role_arn().is_some_and(|role| role == *arn))
        .then_some(true),
        PrincipalPattern::Service(_) => None,
    }
}

fn lowercase(action: &str) -> String {
    action.to_ascii_lowercase()
}
