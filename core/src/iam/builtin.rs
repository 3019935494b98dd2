//! The managed policies every account has, at `arn:pw:iam::pw:policy/NAME`.

/// (name, description, document)
pub const BUILTIN_POLICIES: [(&str, &str, &str); 7] = [
    (
        "AdministratorAccess",
        "Everything, on every resource of the account",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    ),
    (
        "PipewrightFullAccess",
        "Every pipeline operation, and the pipelines' notification rules",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["codepipeline:*","codestar-notifications:*"],"Resource":"*"}]}"#,
    ),
    (
        "PipewrightReadOnlyAccess",
        "See every pipeline, its state and history, and its notification rules; change nothing (custom actions' jobs, which hold their secrets, are not read)",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["codepipeline:GetPipeline","codepipeline:GetPipelineState","codepipeline:GetPipelineExecution","codepipeline:GetActionType","codepipeline:GetActionExecutionLog","codepipeline:GetActionExecutionArtifact","codepipeline:List*","codestar-notifications:Describe*","codestar-notifications:List*"],"Resource":"*"}]}"#,
    ),
    (
        "PipewrightCustomActionAccess",
        "What a custom action's job worker does: poll for jobs, acknowledge them, read them and give their results",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["codepipeline:AcknowledgeJob","codepipeline:GetJobDetails","codepipeline:PollForJobs","codepipeline:PutJobFailureResult","codepipeline:PutJobSuccessResult"],"Resource":"*"}]}"#,
    ),
    (
        "IAMFullAccess",
        "Every IAM operation",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#,
    ),
    (
        "IAMReadOnlyAccess",
        "Read users, groups, roles and policies, and simulate policies",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:Get*","iam:List*","iam:SimulateCustomPolicy","iam:SimulatePrincipalPolicy"],"Resource":"*"}]}"#,
    ),
    (
        "AuditReadOnlyAccess",
        "Search, verify and export the audit log",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["audit:LookupEvents","audit:VerifyEvents","audit:ExportEvents","audit:Get*"],"Resource":"*"}]}"#,
    ),
];

/// The account part of a built-in policy's ARN.
pub const BUILTIN_ACCOUNT: &str = "pw";

/// The document of the built-in policy named by `arn`, if it is one.
pub fn document(arn: &str) -> Option<&'static str> {
    let name = arn.strip_prefix("arn:pw:iam::pw:policy/")?;
    BUILTIN_POLICIES.iter().find(|(n, ..)| *n == name).map(|(_, _, doc)| *doc)
}

#[cfg(test)]
mod tests {
    use pipewright_authz::{Policy, PolicyKind};

    use super::*;

    #[test]
    fn every_builtin_policy_is_valid_and_found_by_arn() {
        for (name, _, doc) in BUILTIN_POLICIES {
            Policy::parse(doc, PolicyKind::Identity).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(document(&format!("arn:pw:iam::pw:policy/{name}")), Some(doc));
        }
        assert_eq!(document("arn:pw:iam::111122223333:policy/PipewrightFullAccess"), None);
    }
}
