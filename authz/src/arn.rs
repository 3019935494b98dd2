//! Amazon Resource Names in Pipewright's partition (`arn:pw:…`): parsing,
//! formatting and the constructors for every resource the service has.

use std::fmt;
use std::str::FromStr;

/// Our partition.
pub const PARTITION: &str = "pw";

/// A 12-digit account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AccountId {
    type Err = ArnError;

    fn from_str(s: &str) -> Result<Self, ArnError> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ArnError(format!("account id {s:?} must be 12 digits")))
        }
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ARN could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArnError(pub String);

/// An ARN: `arn:partition:service:region:account:resource`. Any well-formed
/// ARN parses, of any partition and service; the constructors make ours.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arn {
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account: String,
    pub resource: String,
}

impl Arn {
    fn ours(service: &str, region: &str, account: &AccountId, resource: String) -> Self {
        Self {
            partition: PARTITION.to_owned(),
            service: service.to_owned(),
            region: region.to_owned(),
            account: account.to_string(),
            resource,
        }
    }

    /// `arn:pw:codepipeline:REGION:ACCOUNT:PIPELINE`
    pub fn pipeline(region: &str, account: &AccountId, pipeline: &str) -> Self {
        Self::ours("codepipeline", region, account, pipeline.to_owned())
    }

    /// `arn:pw:codepipeline:REGION:ACCOUNT:PIPELINE/STAGE`
    pub fn stage(region: &str, account: &AccountId, pipeline: &str, stage: &str) -> Self {
        Self::ours("codepipeline", region, account, format!("{pipeline}/{stage}"))
    }

    /// `arn:pw:codepipeline:REGION:ACCOUNT:PIPELINE/STAGE/ACTION`
    pub fn action(region: &str, account: &AccountId, pipeline: &str, stage: &str, action: &str) -> Self {
        Self::ours("codepipeline", region, account, format!("{pipeline}/{stage}/{action}"))
    }

    /// `arn:pw:iam::ACCOUNT:root`
    pub fn root(account: &AccountId) -> Self {
        Self::ours("iam", "", account, "root".to_owned())
    }

    /// `arn:pw:iam::ACCOUNT:user/NAME`
    pub fn user(account: &AccountId, name: &str) -> Self {
        Self::ours("iam", "", account, format!("user/{name}"))
    }

    /// `arn:pw:iam::ACCOUNT:group/NAME`
    pub fn group(account: &AccountId, name: &str) -> Self {
        Self::ours("iam", "", account, format!("group/{name}"))
    }

    /// `arn:pw:iam::ACCOUNT:role/NAME`
    pub fn role(account: &AccountId, name: &str) -> Self {
        Self::ours("iam", "", account, format!("role/{name}"))
    }

    /// `arn:pw:iam::ACCOUNT:policy/NAME`
    pub fn policy(account: &AccountId, name: &str) -> Self {
        Self::ours("iam", "", account, format!("policy/{name}"))
    }

    /// `arn:pw:iam::pw:policy/NAME`, a built-in managed policy.
    pub fn builtin_policy(name: &str) -> Self {
        Self {
            partition: PARTITION.to_owned(),
            service: "iam".to_owned(),
            region: String::new(),
            account: PARTITION.to_owned(),
            resource: format!("policy/{name}"),
        }
    }

    /// `arn:pw:sts::ACCOUNT:assumed-role/ROLE/SESSION`
    pub fn assumed_role(account: &AccountId, role: &str, session: &str) -> Self {
        Self::ours("sts", "", account, format!("assumed-role/{role}/{session}"))
    }

    /// `arn:pw:audit:REGION:ACCOUNT:events`
    pub fn audit_events(region: &str, account: &AccountId) -> Self {
        Self::ours("audit", region, account, "events".to_owned())
    }

    /// The resource's type: the part before the first `/` (`user`, `role`,
    /// `assumed-role`, …), or the whole resource when it has none.
    pub fn resource_type(&self) -> &str {
        self.resource.split('/').next().unwrap_or(&self.resource)
    }

    /// For `…:role/NAME` or `…:assumed-role/NAME/SESSION`, the role's name.
    pub fn role_name(&self) -> Option<&str> {
        let mut parts = self.resource.split('/');
        match (parts.next(), parts.next()) {
            (Some("role" | "assumed-role"), Some(name)) => Some(name),
            _ => None,
        }
    }
}

impl FromStr for Arn {
    type Err = ArnError;

    fn from_str(s: &str) -> Result<Self, ArnError> {
        let mut parts = s.splitn(6, ':');
        let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ArnError(format!(
                "{s:?} is not an ARN: expected arn:partition:service:region:account:resource"
            )));
        };
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return Err(ArnError(format!("{s:?} is not an ARN: partition, service and resource must not be empty")));
        }
        Ok(Self {
            partition: partition.to_owned(),
            service: service.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            resource: resource.to_owned(),
        })
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "arn:{}:{}:{}:{}:{}", self.partition, self.service, self.region, self.account, self.resource)
    }
}

/// Splits an ARN-shaped string into its six parts, the last keeping its
/// colons; `None` when it has fewer.
pub fn split_six(s: &str) -> Option<[&str; 6]> {
    let mut parts = s.splitn(6, ':');
    Some([parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountId {
        "111122223333".parse().expect("12 digits")
    }

    #[test]
    fn our_arns_format_and_parse_back() {
        let a = account();
        let cases = [
            (Arn::pipeline("local", &a, "web"), "arn:pw:codepipeline:local:111122223333:web"),
            (Arn::stage("local", &a, "web", "Prod"), "arn:pw:codepipeline:local:111122223333:web/Prod"),
            (
                Arn::action("local", &a, "web", "Prod", "Approve"),
                "arn:pw:codepipeline:local:111122223333:web/Prod/Approve",
            ),
            (Arn::root(&a), "arn:pw:iam::111122223333:root"),
            (Arn::user(&a, "alice"), "arn:pw:iam::111122223333:user/alice"),
            (Arn::group(&a, "devs"), "arn:pw:iam::111122223333:group/devs"),
            (Arn::role(&a, "deployer"), "arn:pw:iam::111122223333:role/deployer"),
            (Arn::policy(&a, "p"), "arn:pw:iam::111122223333:policy/p"),
            (Arn::builtin_policy("PipewrightReadOnlyAccess"), "arn:pw:iam::pw:policy/PipewrightReadOnlyAccess"),
            (Arn::assumed_role(&a, "deployer", "s1"), "arn:pw:sts::111122223333:assumed-role/deployer/s1"),
            (Arn::audit_events("local", &a), "arn:pw:audit:local:111122223333:events"),
        ];
        for (arn, text) in cases {
            assert_eq!(arn.to_string(), text);
            assert_eq!(text.parse::<Arn>().expect("parses"), arn);
        }
    }

    #[test]
    fn other_partitions_parse_and_bad_shapes_do_not() {
        let aws: Arn = "arn:aws:s3:::bucket/key:with:colons".parse().expect("an AWS ARN");
        assert_eq!(aws.partition, "aws");
        assert_eq!(aws.resource, "bucket/key:with:colons");
        for bad in ["", "arn", "arn:pw:iam", "arn:pw:iam::1:", "urn:pw:iam::1:root", "arn::iam::1:root"] {
            assert!(bad.parse::<Arn>().is_err(), "{bad:?}");
        }
        assert!("12345678901".parse::<AccountId>().is_err());
        assert!("12345678901a".parse::<AccountId>().is_err());
    }

    #[test]
    fn role_names_come_from_roles_and_sessions() {
        let a = account();
        assert_eq!(Arn::role(&a, "r").role_name(), Some("r"));
        assert_eq!(Arn::assumed_role(&a, "r", "s").role_name(), Some("r"));
        assert_eq!(Arn::user(&a, "u").role_name(), None);
    }
}
