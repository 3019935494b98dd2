//! Policy documents: parsed and validated as IAM does, compiled once for fast
//! evaluation, and serialised back to canonical JSON.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::condition::Condition;
use crate::glob::Glob;
use crate::variables::Template;

/// What a document is for: it decides which elements it must and must not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a user, group or role (and session policies): no
    /// `Principal`; `Resource` or `NotResource` required.
    Identity,
    /// A role's trust policy: `Principal` or `NotPrincipal` required.
    Trust,
}

impl PolicyKind {
    /// IAM's default size limit for the kind, in characters other than white space.
    pub fn default_max_chars(self) -> usize {
        match self {
            Self::Identity => 6_144,
            Self::Trust => 2_048,
        }
    }
}

/// `Version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V2008_10_17,
    V2012_10_17,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2008_10_17 => "2008-10-17",
            Self::V2012_10_17 => "2012-10-17",
        }
    }
}

/// `Effect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Effect {
    Allow,
    Deny,
}

/// A document IAM would reject, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

impl PolicyError {
    /// IAM's error code for it.
    pub const CODE: &'static str = "MalformedPolicyDocument";
}

/// A compiled policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: Version,
    pub id: Option<String>,
    pub statements: Vec<Statement>,
}

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<Arc<str>>,
    pub effect: Effect,
    pub actions: Matcher<ActionPattern>,
    /// `None` only in trust policies, where it means the role itself.
    pub resources: Option<Matcher<ResourcePattern>>,
    pub principals: Option<Matcher<PrincipalPattern>>,
    pub conditions: Vec<Condition>,
}

/// An element and its `Not…` form.
#[derive(Debug, Clone, PartialEq)]
pub enum Matcher<T> {
    Is(Vec<T>),
    Not(Vec<T>),
}

/// An entry of `Action`: matched case-insensitively, `*` and `?` wildcards.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionPattern {
    pub source: String,
    glob: Glob,
}

impl ActionPattern {
    /// `action` must be lowercase ASCII (see [`crate::eval::Request`]).
    pub fn matches(&self, action: &str) -> bool {
        self.glob.matches(action)
    }
}

/// An entry of `Resource`: an ARN pattern, perhaps with policy variables.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourcePattern {
    pub source: String,
    template: Template,
    /// Compiled once when there is nothing to substitute.
    plain: Option<Glob>,
}

impl ResourcePattern {
    pub fn matches(&self, resource: &str, context: &crate::context::Context) -> bool {
        match &self.plain {
            Some(glob) => glob.matches(resource),
            None => self.template.glob(context, false).is_some_and(|g| g.matches(resource)),
        }
    }
}

/// An entry of `Principal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalPattern {
    /// `"*"` or `{"PW": "*"}`: anyone.
    Anyone,
    /// An account id or `arn:…:iam::ACCOUNT:root`: any principal of the account
    /// (whose own policies must then allow, as in IAM).
    Account(String),
    /// A user, role or session ARN.
    Arn(String),
    /// `{"Service": "…"}`: a service principal (`codepipeline.pw` assumes
    /// a pipeline's role).
    Service(String),
}

const STATEMENT_ELEMENTS: [&str; 9] =
    ["Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Principal", "NotPrincipal", "Condition"];

impl Policy {
    /// Parses a JSON document with IAM's default size limit for `kind`.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Self, PolicyError> {
        Self::parse_with_limit(text, kind, kind.default_max_chars())
    }

    /// Parses a JSON document of at most `max_chars` non-white-space characters.
    pub fn parse_with_limit(text: &str, kind: PolicyKind, max_chars: usize) -> Result<Self, PolicyError> {
        let size = text.chars().filter(|c| !c.is_whitespace()).count();
        if size > max_chars {
            return Err(PolicyError(format!(
                "the policy is {size} characters (white space aside); at most {max_chars} are allowed"
            )));
        }
        let value =
            crate::strict_json::parse(text).map_err(|e| PolicyError(format!("the policy is not valid JSON: {e}")))?;
        Self::from_value(&value, kind)
    }

    /// Compiles an already-parsed JSON document (no size limit).
    pub fn from_value(value: &Value, kind: PolicyKind) -> Result<Self, PolicyError> {
        let err = |m: String| Err(PolicyError(m));
        let Value::Object(document) = value else {
            return err("the policy must be a JSON object".to_owned());
        };
        for key in document.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return err(format!(
                    "unknown element {key:?} at the top of the policy (allowed: Version, Id, Statement)"
                ));
            }
        }
        let version = match document.get("Version") {
            None => Version::V2008_10_17,
            Some(Value::String(v)) if v == "2012-10-17" => Version::V2012_10_17,
            Some(Value::String(v)) if v == "2008-10-17" => Version::V2008_10_17,
            Some(other) => {
                return err(format!("Version {other} is not supported: use \"2012-10-17\""));
            }
        };
        let id = match document.get("Id") {
            None => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(other) => return err(format!("Id must be a string, not {other}")),
        };
        let statements = match document.get("Statement") {
            Some(Value::Array(list)) if !list.is_empty() => list.iter().collect::<Vec<_>>(),
            Some(Value::Array(_)) => return err("Statement must not be empty".to_owned()),
            Some(object @ Value::Object(_)) => vec![object],
            Some(other) => {
                return err(format!("Statement must be an object or an array of objects, not {other}"));
            }
            None => return err("the policy has no Statement".to_owned()),
        };
        let variables = version == Version::V2012_10_17;
        let mut sids = HashSet::new();
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(index, value)| {
                let statement = parse_statement(value, kind, variables).map_err(|m| {
                    let sid = value.get("Sid").and_then(Value::as_str);
                    PolicyError(match sid {
                        Some(sid) => format!("Statement[{index}] (Sid {sid:?}): {m}"),
                        None => format!("Statement[{index}]: {m}"),
                    })
                })?;
                if let Some(sid) = &statement.sid
                    && !sids.insert(sid.clone())
                {
                    return Err(PolicyError(format!(
                        "Statement[{index}]: Sid {sid:?} is used twice; statement ids must be unique"
                    )));
                }
                Ok(statement)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { version, id, statements })
    }

    /// The canonical JSON form: arrays everywhere, elements in a fixed order.
    /// Parsing it again gives an equal policy.
    pub fn to_json(&self) -> Value {
        let mut document = Map::new();
        document.insert("Version".into(), json!(self.version.as_str()));
        if let Some(id) = &self.id {
            document.insert("Id".into(), json!(id));
        }
        let statements: Vec<Value> = self.statements.iter().map(Statement::to_json).collect();
        document.insert("Statement".into(), Value::Array(statements));
        Value::Object(document)
    }
}

impl Statement {
    fn to_json(&self) -> Value {
        let mut s = Map::new();
        if let Some(sid) = &self.sid {
            s.insert("Sid".into(), json!(sid));
        }
        s.insert("Effect".into(), json!(self.effect));
        let (name, list) = match &self.actions {
            Matcher::Is(list) => ("Action", list),
            Matcher::Not(list) => ("NotAction", list),
        };
        s.insert(name.into(), json!(list.iter().map(|a| a.source.as_str()).collect::<Vec<_>>()));
        if let Some(resources) = &self.resources {
            let (name, list) = match resources {
                Matcher::Is(list) => ("Resource", list),
                Matcher::Not(list) => ("NotResource", list),
            };
            s.insert(name.into(), json!(list.iter().map(|r| r.source.as_str()).collect::<Vec<_>>()));
        }
        if let Some(principals) = &self.principals {
            let (name, list) = match principals {
                Matcher::Is(list) => ("Principal", list),
                Matcher::Not(list) => ("NotPrincipal", list),
            };
            s.insert(name.into(), principals_to_json(list));
        }
        if !self.conditions.is_empty() {
            let mut block = Map::new();
            for c in &self.conditions {
                let entry = block.entry(c.operator_name.clone()).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(keys) = entry {
                    keys.insert(c.key_name.clone(), json!(c.raw_values));
                }
            }
            s.insert("Condition".into(), Value::Object(block));
        }
        Value::Object(s)
    }
}

fn principals_to_json(list: &[PrincipalPattern]) -> Value {
    if list == [PrincipalPattern::Anyone] {
        return json!("*");
    }
    let mut pw = Vec::new();
    let mut service = Vec::new();
    for p in list {
        match p {
            PrincipalPattern::Anyone => pw.push("*".to_owned()),
            PrincipalPattern::Account(account) => pw.push(account.clone()),
            PrincipalPattern::Arn(arn) => pw.push(arn.clone()),
            PrincipalPattern::Service(name) => service.push(name.clone()),
        }
    }
    let mut map = Map::new();
    if !pw.is_empty() {
        map.insert("PW".into(), json!(pw));
    }
    if !service.is_empty() {
        map.insert("Service".into(), json!(service));
    }
    Value::Object(map)
}

fn parse_statement(value: &Value, kind: PolicyKind, variables: bool) -> Result<Statement, String> {
    let Value::Object(s) = value else {
        return Err("a statement must be a JSON object".to_owned());
    };
    for key in s.keys() {
        if !STATEMENT_ELEMENTS.contains(&key.as_str()) {
            return Err(format!("unknown element {key:?} (allowed: {})", STATEMENT_ELEMENTS.join(", ")));
        }
    }
    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(sid)) => {
            if kind == PolicyKind::Identity && !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(format!("Sid {sid:?} must contain only letters and digits"));
            }
            Some(Arc::from(sid.as_str()))
        }
        Some(other) => return Err(format!("Sid must be a string, not {other}")),
    };
    let effect = match s.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(other) => return Err(format!("Effect must be \"Allow\" or \"Deny\", not {other}")),
        None => return Err("Effect is missing".to_owned()),
    };
    let actions = match (s.get("Action"), s.get("NotAction")) {
        (Some(_), Some(_)) => return Err("Action and NotAction cannot both be present".to_owned()),
        (None, None) => return Err("Action or NotAction is required".to_owned()),
        (Some(v), None) => Matcher::Is(strings("Action", v)?.iter().map(|a| action(a)).collect::<Result<_, _>>()?),
        (None, Some(v)) => Matcher::Not(strings("NotAction", v)?.iter().map(|a| action(a)).collect::<Result<_, _>>()?),
    };
    let resources = match (s.get("Resource"), s.get("NotResource")) {
        (Some(_), Some(_)) => {
            return Err("Resource and NotResource cannot both be present".to_owned());
        }
        (Some(_), None) | (None, Some(_)) if kind == PolicyKind::Trust => {
            return Err("has prohibited field Resource: a trust policy applies to its role".to_owned());
        }
        (None, None) if kind == PolicyKind::Identity => {
            return Err("Resource or NotResource is required".to_owned());
        }
        (None, None) => None,
        (Some(v), None) => {
            Some(Matcher::Is(strings("Resource", v)?.iter().map(|r| resource(r, variables)).collect::<Result<_, _>>()?))
        }
        (None, Some(v)) => Some(Matcher::Not(
            strings("NotResource", v)?.iter().map(|r| resource(r, variables)).collect::<Result<_, _>>()?,
        )),
    };
    let principals = match (s.get("Principal"), s.get("NotPrincipal")) {
        (Some(_), Some(_)) => {
            return Err("Principal and NotPrincipal cannot both be present".to_owned());
        }
        (Some(_), _) | (_, Some(_)) if kind == PolicyKind::Identity => {
            return Err("an identity policy cannot name a Principal: it applies to whom it is attached".to_owned());
        }
        (None, None) if kind == PolicyKind::Trust => {
            return Err("a trust policy needs Principal or NotPrincipal".to_owned());
        }
        (None, None) => None,
        (Some(v), None) => Some(Matcher::Is(principals("Principal", v)?)),
        (None, Some(v)) => Some(Matcher::Not(principals("NotPrincipal", v)?)),
    };
    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(v) => conditions(v, variables)?,
    };
    Ok(Statement { sid, effect, actions, resources, principals, conditions })
}

/// A string, or a non-empty array of strings.
fn strings(element: &str, value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("{element} entries must be strings, not {other}")),
            })
            .collect(),
        Value::Array(_) => Err(format!("{element} must not be empty")),
        other => Err(format!("{element} must be a string or an array of strings, not {other}")),
    }
}

fn action(source: &str) -> Result<ActionPattern, String> {
    let valid = source == "*"
        || source.split_once(':').is_some_and(|(service, name)| {
            !service.is_empty()
                && service.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !name.is_empty()
                && !name.contains(':')
        });
    if !valid {
        return Err(format!(
            "Action {source:?} must be \"*\" or service:Operation (wildcards allowed in the operation)"
        ));
    }
    Ok(ActionPattern { source: source.to_owned(), glob: Glob::new(source, true) })
}

fn resource(source: &str, variables: bool) -> Result<ResourcePattern, String> {
    // A trailing `*` may stand for the parts after the service, as in
    // `arn:pw:codepipeline:*`.
    let parts: Vec<&str> = source.splitn(4, ':').collect();
    let valid = source == "*"
        || (parts.len() == 4
            && parts[0] == "arn"
            && !parts[1].is_empty()
            && !parts[2].is_empty()
            && !parts[2].contains(['*', '?']));
    if !valid {
        return Err(format!(
            "Resource {source:?} must be \"*\" or an ARN (arn:partition:service:region:account:resource, wildcards allowed after the service)"
        ));
    }
    let template = Template::parse_arn(source, variables);
    let plain = template.is_plain().then(|| Glob::new(source, false));
    Ok(ResourcePattern { source: source.to_owned(), template, plain })
}

fn principals(element: &str, value: &Value) -> Result<Vec<PrincipalPattern>, String> {
    match value {
        Value::String(s) if s == "*" => Ok(vec![PrincipalPattern::Anyone]),
        Value::String(s) => Err(format!("{element} {s:?} must be \"*\" or an object such as {{\"PW\": \"arn:…\"}}")),
        Value::Object(map) if !map.is_empty() => {
            let mut list = Vec::new();
            for (kind, entries) in map {
                for entry in strings(&format!("{element}.{kind}"), entries)? {
                    list.push(match kind.as_str() {
                        "PW" | "AWS" => principal_entry(element, &entry)?,
                        "Service" => PrincipalPattern::Service(entry),
                        other => {
                            return Err(format!("{element} type {other:?} is not supported (use PW, AWS or Service)"));
                        }
                    });
                }
            }
            Ok(list)
        }
        other => Err(format!("{element} must be \"*\" or an object, not {other}")),
    }
}

fn principal_entry(element: &str, entry: &str) -> Result<PrincipalPattern, String> {
    if entry == "*" {
        return Ok(PrincipalPattern::Anyone);
    }
    if entry.len() == 12 && entry.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(PrincipalPattern::Account(entry.to_owned()));
    }
    let arn: crate::arn::Arn =
        entry.parse().map_err(|_| format!("{element} {entry:?} must be \"*\", an account id or an ARN"))?;
    if entry.contains(['*', '?']) {
        return Err(format!("{element} {entry:?}: wildcards are not allowed in a principal ARN (use \"*\" alone)"));
    }
    let known = matches!(
        (arn.service.as_str(), arn.resource_type()),
        ("iam", "root" | "user" | "role") | ("sts", "assumed-role")
    );
    if !known {
        return Err(format!("{element} {entry:?} must be an account root, user, role or assumed-role ARN"));
    }
    if arn.service == "iam" && arn.resource == "root" {
        return Ok(PrincipalPattern::Account(arn.account));
    }
    Ok(PrincipalPattern::Arn(entry.to_owned()))
}

fn conditions(value: &Value, variables: bool) -> Result<Vec<Condition>, String> {
    let Value::Object(block) = value else {
        return Err(format!("Condition must be an object of operators, not {value}"));
    };
    let mut list = Vec::new();
    for (operator, keys) in block {
        let Value::Object(keys) = keys else {
            return Err(format!("Condition.{operator} must be an object of condition keys, not {keys}"));
        };
        if keys.is_empty() {
            return Err(format!("Condition.{operator} names no condition key"));
        }
        for (key, values) in keys {
            let raw = condition_values(values).map_err(|m| format!("Condition.{operator}.{key}: {m}"))?;
            list.push(Condition::new(operator, key, raw, variables).map_err(|m| format!("Condition: {m}"))?);
        }
    }
    Ok(list)
}

fn condition_values(value: &Value) -> Result<Vec<String>, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("a value must be a string, number or boolean, not {other}")),
    };
    match value {
        Value::Array(items) if items.is_empty() => Err("needs at least one value".to_owned()),
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => Ok(vec![scalar(other)?]),
    }
}
