//! The policy simulator: one JSON request in, one JSON decision out. Backs
//! the `pipewright-authz simulate` command and, later, iam:SimulateCustomPolicy.
//!
//! Request: `{"identityPolicies": [..], "sessionPolicy": p|null,
//! "trustPolicy": p|null, "principal": {"arn", "account", "type"}, "action",
//! "resource", "context": {"key": "value" or ["values"]}}`; a policy is a JSON
//! object or a string holding one. The context is exactly what is given.

use serde_json::{Value, json};

use crate::context::Context;
use crate::eval::{NamedPolicy, Principal, PrincipalType, Request, evaluate, evaluate_assume_role, evaluate_principal};
use crate::policy::{Policy, PolicyError, PolicyKind};

/// Why a simulation request could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SimulationError {
    /// `MalformedPolicyDocument` or `InvalidInput`.
    pub code: &'static str,
    pub message: String,
}

impl SimulationError {
    fn input(message: impl Into<String>) -> Self {
        Self { code: "InvalidInput", message: message.into() }
    }

    /// `{"error": {"code", "message"}}`
    pub fn to_json(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

/// Decides one simulation request given as JSON text (duplicate keys, which
/// would silently drop an element of a policy, are rejected).
pub fn simulate_json(text: &str) -> Result<Value, SimulationError> {
    let request = crate::strict_json::parse(text).map_err(|e| {
        let duplicate = e.to_string().contains("appears twice");
        SimulationError {
            code: if duplicate { PolicyError::CODE } else { "InvalidInput" },
            message: format!("the request is not valid JSON: {e}"),
        }
    })?;
    simulate(&request)
}

/// Decides one simulation request.
pub fn simulate(input: &Value) -> Result<Value, SimulationError> {
    let Value::Object(request) = input else {
        return Err(SimulationError::input("the request must be a JSON object"));
    };
    const FIELDS: [&str; 8] =
        ["identityPolicies", "sessionPolicy", "trustPolicy", "principal", "action", "resource", "context", "comment"];
    if let Some(unknown) = request.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(SimulationError::input(format!("unknown field {unknown:?} (fields: {})", FIELDS.join(", "))));
    }
    let text = |name: &str| match request.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
        _ => Err(SimulationError::input(format!("{name} must be a non-empty string"))),
    };
    let action = text("action")?;
    let resource = text("resource")?;

    let identity = match request.get("identityPolicies") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, p)| policy(&format!("identityPolicies[{i}]"), p, PolicyKind::Identity))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(SimulationError::input("identityPolicies must be an array of policies"));
        }
    };
    let session = optional_policy(request.get("sessionPolicy"), "sessionPolicy", PolicyKind::Identity)?;
    let trust = optional_policy(request.get("trustPolicy"), "trustPolicy", PolicyKind::Trust)?;
    let context = context(request.get("context"))?;
    let principal = principal(request.get("principal"))?;

    let request = Request { action, resource, context: &context };
    let evaluation = match (&trust, &principal) {
        (Some(trust), Some(caller)) => evaluate_assume_role(&identity, session.as_ref(), trust, caller, &request),
        (Some(_), None) => {
            return Err(SimulationError::input("a trustPolicy needs the calling principal"));
        }
        (None, Some(caller)) => evaluate_principal(caller, &identity, session.as_ref(), &request),
        (None, None) => evaluate(&identity, session.as_ref(), &request),
    };
    serde_json::to_value(&evaluation).map_err(|e| SimulationError::input(e.to_string()))
}

fn optional_policy(
    value: Option<&Value>,
    name: &str,
    kind: PolicyKind,
) -> Result<Option<NamedPolicy>, SimulationError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => policy(name, value, kind).map(Some),
    }
}

fn policy(name: &str, value: &Value, kind: PolicyKind) -> Result<NamedPolicy, SimulationError> {
    let malformed = |e: PolicyError| SimulationError { code: PolicyError::CODE, message: format!("{name}: {e}") };
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Object(_) => value.to_string(),
        _ => {
            return Err(malformed(PolicyError("a policy must be a JSON object or a string holding one".into())));
        }
    };
    Policy::parse(&text, kind).map(|p| NamedPolicy::new(name, p)).map_err(malformed)
}

fn context(value: Option<&Value>) -> Result<Context, SimulationError> {
    let mut context = Context::new();
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(context);
    };
    let Value::Object(entries) = value else {
        return Err(SimulationError::input("context must be an object of keys and values"));
    };
    let scalar = |key: &str, v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(SimulationError::input(format!("context {key:?}: a value is a string or an array of strings"))),
    };
    for (key, v) in entries {
        match v {
            Value::Array(items) => {
                context.insert(key, items.iter().map(|i| scalar(key, i)).collect::<Result<Vec<_>, _>>()?);
            }
            other => {
                context.insert(key, scalar(key, other)?);
            }
        }
    }
    Ok(context)
}

fn principal(value: Option<&Value>) -> Result<Option<Principal>, SimulationError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let field = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| SimulationError::input(format!("principal.{name} must be a string")))
    };
    let arn = field("arn")?;
    let parsed: crate::arn::Arn =
        arn.parse().map_err(|e: crate::arn::ArnError| SimulationError::input(format!("principal.arn: {e}")))?;
    let account = match value.get("account") {
        Some(Value::String(account)) => account.clone(),
        None | Some(Value::Null) => parsed.account.clone(),
        Some(_) => return Err(SimulationError::input("principal.account must be a string")),
    };
    let kind = match value.get("type").and_then(Value::as_str) {
        Some("Root") => PrincipalType::Root,
        Some("User") => PrincipalType::User,
        Some("AssumedRole") => PrincipalType::AssumedRole,
        None => match parsed.resource_type() {
            "root" => PrincipalType::Root,
            "assumed-role" => PrincipalType::AssumedRole,
            _ => PrincipalType::User,
        },
        Some(other) => {
            return Err(SimulationError::input(format!("principal.type {other:?} must be Root, User or AssumedRole")));
        }
    };
    Ok(Some(Principal { arn: arn.to_owned(), account, kind }))
}
