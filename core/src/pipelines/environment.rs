//! A Shell action's `environmentVariables`: a JSON object of plain values,
//! or CodeBuild's list of `{name, type, value}` where `type` is
//! `PLAINTEXT` (the default) or `SECRETS_MANAGER` (the value names a secret
//! of the account, read when the action starts under the pipeline's role).

use serde::{Deserialize, Serialize};

/// One variable of an action's environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentVariable {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: VariableType,
    pub value: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VariableType {
    #[default]
    Plaintext,
    SecretsManager,
}

/// At most this many variables (CodeBuild's environment has no lower one
/// that matters; this bounds a declaration).
const MAX_VARIABLES: usize = 200;

/// The variables `text` declares, or what to fix.
pub fn parse(text: &str) -> Result<Vec<EnvironmentVariable>, String> {
    let variables = entries(text)?;
    for variable in &variables {
        let name = &variable.name;
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.len() <= 255;
        if !valid {
            return Err(format!("{name:?} is not a variable name (letters, digits and _, not starting with a digit)"));
        }
        if loader_sensitive(name) {
            return Err(format!(
                "{name} is read by the system's loader and C library before the sandbox exists; \
                 set it in the commands (export {name}=…) instead"
            ));
        }
        if shell_sensitive(name) {
            return Err(format!(
                "{name} is read by the shell as it starts, before the sandbox's limits are set; \
                 set it in the commands (export {name}=…) instead"
            ));
        }
        if name.starts_with("PW_") {
            return Err(format!("{name}: names starting with PW_ are Pipewright's own"));
        }
    }
    Ok(variables)
}

/// The headers `text` declares (an HTTP call's), or what to fix: names are
/// HTTP tokens, not the transport's own nor Pipewright's.
pub fn parse_headers(text: &str) -> Result<Vec<EnvironmentVariable>, String> {
    let headers = entries(text)?;
    for header in &headers {
        let name = header.name.to_ascii_lowercase();
        let token = !name.is_empty()
            && name.len() <= 255
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        if !token {
            return Err(format!("{:?} is not a header name", header.name));
        }
        let reserved = ["host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"]
            .contains(&name.as_str())
            || name == "keep-alive"
            || name.starts_with("x-pipewright-");
        if reserved {
            return Err(format!("{}: the call sets this header itself", header.name));
        }
        if header.kind == VariableType::Plaintext && header.value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
            return Err(format!("{}: a header's value holds no line break", header.name));
        }
    }
    Ok(headers)
}

/// The entries of a `{name: value}` object or `[{name, type, value}]` list:
/// their shape, count, types, secret names; each name once.
fn entries(text: &str) -> Result<Vec<EnvironmentVariable>, String> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("not JSON ({e}): give a JSON object of strings or a list of {{name, type, value}}"))?;
    let variables = match value {
        serde_json::Value::Object(object) => object
            .into_iter()
            .map(|(name, value)| match value {
                serde_json::Value::String(value) => {
                    Ok(EnvironmentVariable { name, kind: VariableType::Plaintext, value })
                }
                _ => Err(format!("{name}: a value must be a string")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        serde_json::Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                if let Some(kind) = item.get("type").and_then(|t| t.as_str())
                    && !matches!(kind, "PLAINTEXT" | "SECRETS_MANAGER")
                {
                    let why = if kind == "PARAMETER_STORE" { " (Pipewright has no parameter store)" } else { "" };
                    return Err(format!("[{i}].type {kind:?} is not supported{why}: use PLAINTEXT or SECRETS_MANAGER"));
                }
                serde_json::from_value(item).map_err(|e| format!("[{i}]: {e}; an entry is {{name, type, value}}"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err("give a JSON object of strings or a list of {name, type, value}".to_owned()),
    };
    if variables.len() > MAX_VARIABLES {
        return Err(format!("at most {MAX_VARIABLES} variables"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for variable in &variables {
        let name = &variable.name;
        if !seen.insert(name.as_str()) {
            return Err(format!("{name} is declared twice"));
        }
        if variable.kind == VariableType::SecretsManager {
            secret_name(&variable.value).map_err(|e| format!("{name}: {e}"))?;
        }
    }
    Ok(variables)
}

/// Variables the dynamic loader or the C library act on as a program
/// starts (glibc's list of those it ignores for set-user-id programs, and
/// every `LD_`): given to the sandbox tool's own process they would run
/// code or read files on the host before any namespace exists.
pub fn loader_sensitive(name: &str) -> bool {
    const NAMES: [&str; 15] = [
        "GCONV_PATH",
        "GETCONF_DIR",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "LOCALDOMAIN",
        "LOCPATH",
        "MALLOC_ARENA_MAX",
        "MALLOC_PERTURB_",
        "MALLOC_TRACE",
        "NIS_PATH",
        "NLSPATH",
        "RESOLV_HOST_CONF",
        "RES_OPTIONS",
        "TZDIR",
        "MALLOC_CHECK_",
    ];
    name.starts_with("LD_") || name.starts_with("MALLOC_") || NAMES.contains(&name)
}

/// Variables a shell acts on as it starts, before the script's first line
/// (where the sandbox's limits are set): bash (some machines' `sh`) runs
/// `PS4` with `SHELLOPTS=xtrace`, reads `BASH_ENV`, imports functions.
pub fn shell_sensitive(name: &str) -> bool {
    const NAMES: [&str; 8] =
        ["SHELLOPTS", "BASHOPTS", "PS4", "ENV", "BASH_ENV", "BASH_XTRACEFD", "PROMPT_COMMAND", "IFS"];
    name.starts_with("BASH_FUNC_") || NAMES.contains(&name)
}

/// The region and account an ARN names.
pub type RegionAndAccount<'a> = (&'a str, &'a str);

/// The secret a `SECRETS_MANAGER` value names: its name, or its ARN's name
/// (with the ARN's region and account, when one is given).
pub fn secret_name(value: &str) -> Result<(Option<RegionAndAccount<'_>>, &str), String> {
    if let Some(rest) = value.strip_prefix("arn:pw:secretsmanager:") {
        // REGION:ACCOUNT:secret:NAME
        let mut parts = rest.splitn(4, ':');
        let (region, account, kind, name) = (parts.next(), parts.next(), parts.next(), parts.next());
        return match (region, account, kind, name) {
            (Some(region), Some(account), Some("secret"), Some(name)) => {
                crate::secrets::check_name(name)?;
                Ok((Some((region, account)), name))
            }
            _ => Err(format!("{value:?} is not a secret ARN (arn:pw:secretsmanager:REGION:ACCOUNT:secret:NAME)")),
        };
    }
    if value.contains(':') {
        return Err(format!(
            "{value:?}: only a secret's name or ARN is taken (no json-key, version-stage or version-id parts)"
        ));
    }
    crate::secrets::check_name(value)?;
    Ok((None, value))
}

/// The list form, as the runner reads it.
pub fn to_text(variables: &[EnvironmentVariable]) -> String {
    serde_json::to_string(variables).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_are_read_and_mistakes_are_named() {
        let object = parse(r#"{"STAGE": "prod"}"#).unwrap();
        assert_eq!(
            object,
            vec![EnvironmentVariable { name: "STAGE".into(), kind: VariableType::Plaintext, value: "prod".into() }]
        );
        let list = parse(
            r#"[{"name": "TOKEN", "type": "SECRETS_MANAGER", "value": "prod/deploy-token"}, {"name": "A", "value": "1"}]"#,
        )
        .unwrap();
        assert_eq!(list[0].kind, VariableType::SecretsManager);
        assert_eq!(list[1].kind, VariableType::Plaintext);
        assert!(parse(r#"[{"name":"T","type":"SECRETS_MANAGER","value":"arn:pw:secretsmanager:local:111122223333:secret:prod/x"}]"#).is_ok());
        let cases = [
            (r#"[{"name":"T","type":"PARAMETER_STORE","value":"x"}]"#, "no parameter store"),
            (r#"[{"name":"T","type":"SECRETS_MANAGER","value":"prod/x:password"}]"#, "no json-key"),
            (r#"[{"name":"T","type":"SECRETS_MANAGER","value":"bad name!"}]"#, "letters, digits"),
            (r#"[{"name":"T","value":"x","extra":1}]"#, "unknown field"),
            (r#"{"1X": "a"}"#, "not a variable name"),
            (r#"{"PW_INPUT": "a"}"#, "Pipewright's own"),
            (r#"{"LD_PRELOAD": "/workspace/evil.so"}"#, "read by the system's loader"),
            (r#"[{"name": "GCONV_PATH", "value": "/workspace"}]"#, "read by the system's loader"),
            (r#"{"A": 1}"#, "must be a string"),
            (r#"[{"name":"A","value":"1"},{"name":"A","value":"2"}]"#, "declared twice"),
            ("\"text\"", "a JSON object of strings or a list"),
        ];
        for (text, says) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
