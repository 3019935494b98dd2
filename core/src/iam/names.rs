//! IAM's rules for names, paths and tags, checked once at the edge.

use serde::{Deserialize, Serialize};

use super::IamError;

/// Checks an IAM name: 1 to `max` characters of letters, digits and `+=,.@_-`.
pub fn check_name(kind: &str, name: &str, max: usize) -> Result<(), IamError> {
    let valid = !name.is_empty()
        && name.chars().count() <= max
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if name == "." || name == ".." {
        // No URL can name it: clients and browsers remove such a path segment.
        return Err(IamError::InvalidInput(format!("{kind} cannot be {name:?}: no URL can name it")));
    }
    if valid {
        Ok(())
    } else {
        Err(IamError::InvalidInput(format!("{kind} {name:?} is not valid: use 1 to {max} letters, digits or +=,.@_-")))
    }
}

pub fn user_name(name: &str) -> Result<(), IamError> {
    check_name("userName", name, 64)
}

pub fn group_name(name: &str) -> Result<(), IamError> {
    check_name("groupName", name, 128)
}

pub fn role_name(name: &str) -> Result<(), IamError> {
    check_name("roleName", name, 64)
}

pub fn policy_name(name: &str) -> Result<(), IamError> {
    check_name("policyName", name, 128)
}

/// An account alias: 3 to 63 lower-case letters, digits and single hyphens,
/// not starting or ending with a hyphen, and not all digits (so it cannot be
/// taken for an account id).
pub fn account_alias(alias: &str) -> Result<(), IamError> {
    let bytes = alias.as_bytes();
    let valid = (3..=63).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
        && !alias.contains("--")
        && !bytes.iter().all(u8::is_ascii_digit);
    if valid {
        Ok(())
    } else {
        Err(IamError::InvalidInput(format!(
            "alias {alias:?} is not valid: use 3 to 63 lower-case letters, digits and single hyphens, \
             starting and ending with a letter or digit, not only digits"
        )))
    }
}

/// A tag, as IAM has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// At most 50 tags, keys 1–128 and values 0–256 characters, keys unique
/// regardless of case, none starting with `pw:` or `aws:` (reserved).
pub fn check_tags(tags: &[Tag]) -> Result<(), IamError> {
    if tags.len() > 50 {
        return Err(IamError::LimitExceeded(format!("{} tags given; at most 50 are allowed", tags.len())));
    }
    let mut seen = std::collections::HashSet::new();
    for tag in tags {
        let key_len = tag.key.chars().count();
        if key_len == 0 || key_len > 128 || tag.value.chars().count() > 256 {
            return Err(IamError::InvalidInput(format!(
                "tag {:?}: keys are 1 to 128 characters and values at most 256",
                tag.key
            )));
        }
        let lower = tag.key.to_lowercase();
        if lower.starts_with("pw:") || lower.starts_with("aws:") {
            return Err(IamError::InvalidInput(format!(
                "tag key {:?}: the prefixes pw: and aws: are reserved",
                tag.key
            )));
        }
        if !seen.insert(lower) {
            return Err(IamError::InvalidInput(format!("tag key {:?} is given twice", tag.key)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_iam() {
        assert!(user_name("alice.smith+ci@example=1,x_y-z").is_ok());
        assert!(user_name("").is_err());
        assert!(user_name("has space").is_err());
        assert!(user_name(&"a".repeat(65)).is_err());
        assert!(group_name(&"a".repeat(128)).is_ok());
        assert!(account_alias("team-blue").is_ok());
        for bad in ["ab", "Team", "-team", "team-", "te--am", "123456789012", "team_blue"] {
            assert!(account_alias(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_follow_iam() {
        let tag = |k: &str| Tag { key: k.into(), value: "v".into() };
        assert!(check_tags(&[tag("team"), tag("env")]).is_ok());
        assert!(check_tags(&[tag("team"), tag("Team")]).is_err());
        assert!(check_tags(&[tag("aws:x")]).is_err());
        assert!(check_tags(&(0..51).map(|i| tag(&i.to_string())).collect::<Vec<_>>()).is_err());
    }
}
