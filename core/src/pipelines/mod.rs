//! Pipelines: the declaration (CodePipeline's V2 `PipelineDeclaration`, with
//! its field names and meanings), the registry of action types, validation
//! with CodePipeline's rules and limits, and the repository.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod action_types;
pub mod custom_types;
pub mod environment;
pub mod sources;
pub mod store;
pub mod triggers;
pub mod validate;

/// What a masked secret configuration value reads as.
pub const MASK: &str = "****";

/// A pipeline's declaration: JSON (or YAML) in and out, so that a pipeline is
/// copied by reading it and creating another from the same document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineDeclaration {
    /// 1–100 of `A-Za-z0-9.@-_`, unique in the account.
    #[schema(example = "web")]
    pub name: String,
    /// The role the pipeline's actions act as (`arn:pw:iam::ACCOUNT:role/NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_store: Option<ArtifactStore>,
    pub stages: Vec<StageDeclaration>,
    /// Set by the service: 1 when created, one more at each update. An update
    /// names the version it was based on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    /// `SUPERSEDED` (default), `QUEUED` or `PARALLEL`.
    #[serde(default)]
    pub execution_mode: ExecutionMode,
    /// `V2` (default) or `V1`.
    #[serde(default)]
    pub pipeline_type: PipelineType,
    #[serde(default)]
    pub variables: Vec<PipelineVariableDeclaration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<PipelineTriggerDeclaration>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionMode {
    #[default]
    Superseded,
    Queued,
    Parallel,
}

impl ExecutionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Superseded => "SUPERSEDED",
            Self::Queued => "QUEUED",
            Self::Parallel => "PARALLEL",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum PipelineType {
    V1,
    #[default]
    V2,
}

/// Where artifacts are kept: `Local` (the service's data folder, default)
/// or `S3` (an S3-compatible bucket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactStore {
    #[serde(rename = "type")]
    #[schema(example = "Local")]
    pub kind: String,
    #[serde(default)]
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StageDeclaration {
    #[schema(example = "Build")]
    pub name: String,
    pub actions: Vec<ActionDeclaration>,
    /// What to do when the stage fails: `{result: FAIL}` (the execution
    /// fails). `RETRY`, `ROLLBACK` and `retryConfiguration` are refused with
    /// 400 `NotSupported` until they are built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<FailureConditions>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailureConditions {
    pub result: FailureResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_configuration: Option<RetryConfiguration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureResult {
    Fail,
    Retry,
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryConfiguration {
    pub retry_mode: RetryMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RetryMode {
    FailedActions,
    AllActions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionDeclaration {
    #[schema(example = "Compile")]
    pub name: String,
    pub action_type_id: ActionTypeId,
    /// 1–999 (default 1): actions of a stage run in this order, equal
    /// numbers in parallel.
    #[serde(default = "one")]
    pub run_order: i32,
    /// The provider's configuration; values are strings, as in CodePipeline.
    #[serde(default)]
    pub configuration: BTreeMap<String, String>,
    #[serde(default)]
    pub input_artifacts: Vec<ArtifactRef>,
    #[serde(default)]
    pub output_artifacts: Vec<ArtifactRef>,
    /// Makes the action's output variables usable as `#{namespace.NAME}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// 5–86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_in_minutes: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

fn one() -> i32 {
    1
}

/// An action type's category, as CodePipeline's (the document's enum; the
/// field is read as text and checked with the type).
#[derive(Debug, ToSchema)]
pub enum ActionCategory {
    Source,
    Build,
    Test,
    Deploy,
    Approval,
    Invoke,
    Compute,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionTypeId {
    /// `Source`, `Build`, `Test`, `Deploy`, `Approval`, `Invoke` or `Compute`.
    #[schema(example = "Build", value_type = ActionCategory)]
    pub category: String,
    /// `Pipewright` for the built-in types, `Custom` for custom ones.
    #[schema(example = "Pipewright")]
    pub owner: String,
    #[schema(example = "Shell")]
    pub provider: String,
    #[schema(example = "1")]
    pub version: String,
}

impl std::fmt::Display for ActionTypeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}/{}", self.category, self.owner, self.provider, self.version)
    }
}

/// An artifact, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRef {
    #[schema(example = "BuildOutput")]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineVariableDeclaration {
    #[schema(example = "environment")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Starts the pipeline on a source's changes (CodePipeline V2 triggers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineTriggerDeclaration {
    /// `Git`.
    pub provider_type: String,
    pub git_configuration: GitConfiguration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitConfiguration {
    /// A Git source action of the first stage. A trigger replaces the
    /// action's own change detection (a push to its `branch`).
    pub source_action_name: String,
    /// 1–3 push filters; a push that matches any of them starts the pipeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub push: Vec<GitPushFilter>,
    /// 1–3 pull-request filters; pull requests come by webhook only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_request: Vec<GitPullRequestFilter>,
}

/// A push that starts the pipeline: to a branch (`branches`, and
/// `filePaths` among the files the push changed) or of a tag (`tags`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitPushFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<GitFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branches: Option<GitFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_paths: Option<GitFilter>,
}

/// A pull request that starts the pipeline: one of `events`, into a branch
/// of `branches`, changing a file of `filePaths`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitPullRequestFilter {
    /// `OPEN`, `UPDATED`, `CLOSED`; all three when left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// The pull request's destination branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branches: Option<GitFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_paths: Option<GitFilter>,
}

/// Glob patterns (`*` within a path segment, `**` across, `?`, `[...]`,
/// `{a,b}`): a name matches when it matches an include (or there are none)
/// and no exclude. 1–8 of each, each 1–255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["main", "release/*"]))]
    pub includes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
}

/// A problem with a declaration: where, which rule, and what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// The offending field, e.g. `stages[2].actions[0].inputArtifacts[0]`.
    #[schema(example = "stages[2].actions[0].inputArtifacts[0]")]
    pub path: String,
    /// The rule, as a stable name, e.g. `ArtifactNotProducedUpstream`.
    #[schema(example = "ArtifactNotProducedUpstream")]
    pub rule: &'static str,
    pub message: String,
    /// `InvalidStructureException` for the pipeline's shape (stages,
    /// artifacts, action types), else `ValidationException`.
    #[serde(skip)]
    pub structural: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.path, self.message, self.rule)
    }
}

impl PipelineDeclaration {
    /// The declaration with every secret configuration value masked
    /// (`types`: the account's action types; every value of a type it does
    /// not know is masked).
    pub fn masked(&self, types: &action_types::Registry) -> Self {
        let mut copy = self.clone();
        for action in copy.stages.iter_mut().flat_map(|s| s.actions.iter_mut()) {
            for (key, value) in &mut action.configuration {
                if types.is_secret(&action.action_type_id, key) {
                    *value = MASK.to_owned();
                }
            }
        }
        copy
    }

    /// Where an update sends a masked secret back unchanged, the stored value
    /// stays — only for a secret property, and only when the action is the
    /// same one (same stage, name and type) with the same key configuration
    /// (where the secret is sent), so that a secret never goes somewhere new
    /// unseen.
    pub fn keep_secrets_from(&mut self, stored: &Self, types: &action_types::Registry) {
        for stage in &mut self.stages {
            let before_stage = stored.stages.iter().find(|s| s.name == stage.name);
            for action in &mut stage.actions {
                let Some(kind) = types.find(&action.action_type_id) else { continue };
                let is_secret = |key: &str| kind.properties.iter().any(|p| p.secret && p.name == key);
                let Some(before) = before_stage.and_then(|s| {
                    s.actions.iter().find(|a| a.name == action.name && a.action_type_id == action.action_type_id)
                }) else {
                    continue;
                };
                // Where the secret goes: the type's key properties (a Git source's repositoryUrl).
                let public = |c: &BTreeMap<String, String>| -> Vec<(String, String)> {
                    c.iter()
                        .filter(|(k, _)| kind.properties.iter().any(|p| p.key && !p.secret && p.name == k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                };
                if public(&action.configuration) != public(&before.configuration) {
                    continue;
                }
                for (key, value) in &mut action.configuration {
                    if value == MASK
                        && is_secret(key)
                        && let Some(old) = before.configuration.get(key)
                    {
                        value.clone_from(old);
                    }
                }
            }
        }
    }
}
