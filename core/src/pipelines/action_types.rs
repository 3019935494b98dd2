//! The registry of action types: each names its configuration properties
//! (required, secret, of what kind) and how many artifacts it takes and
//! gives. Validation reads only this table (the built-in types, and an
//! account's custom ones through [`Registry`]), so a new provider is one
//! entry.

use std::borrow::Cow;

use serde::Serialize;
use utoipa::ToSchema;

use super::ActionTypeId;

/// The categories CodePipeline knows.
pub const CATEGORIES: [&str; 7] = ["Source", "Build", "Test", "Deploy", "Approval", "Invoke", "Compute"];

/// The owner of the built-in types.
pub const BUILTIN_OWNER: &str = "Pipewright";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum PropertyType {
    String,
    Number,
    Boolean,
    /// A JSON object as a string, its values strings.
    JsonObject,
    /// A JSON object of strings, or a list of `{name, type, value}` where
    /// `type` is `PLAINTEXT` or `SECRETS_MANAGER` (CodeBuild's form).
    EnvironmentVariables,
    /// As `EnvironmentVariables`, named by HTTP header names.
    Headers,
}

/// A configuration property of an action type.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    pub name: Cow<'static, str>,
    pub required: bool,
    /// Never returned, only masked (`****`).
    pub secret: bool,
    pub key: bool,
    pub queryable: bool,
    pub description: Cow<'static, str>,
    #[serde(rename = "type")]
    pub kind: PropertyType,
    /// The longest value accepted, in characters.
    #[serde(skip)]
    pub max_length: usize,
    /// Run by a shell: a variable's value is handed to it as a shell
    /// variable, never pasted into the text.
    #[serde(skip)]
    pub shell: bool,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactDetails {
    pub minimum_count: usize,
    pub maximum_count: usize,
}

/// One action type, as ListActionTypes shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionType {
    pub id: ActionTypeId,
    #[serde(rename = "actionConfigurationProperties")]
    pub properties: Vec<Property>,
    pub input_artifact_details: ArtifactDetails,
    pub output_artifact_details: ArtifactDetails,
    /// What it does.
    pub description: Cow<'static, str>,
}

const VALUE_MAX: usize = 1000;

const fn property(name: &'static str, required: bool, kind: PropertyType, description: &'static str) -> Property {
    Property {
        name: Cow::Borrowed(name),
        required,
        secret: false,
        key: required,
        queryable: false,
        description: Cow::Borrowed(description),
        kind,
        max_length: VALUE_MAX,
        shell: false,
    }
}

fn id(category: &str, provider: &str) -> ActionTypeId {
    ActionTypeId {
        category: category.to_owned(),
        owner: BUILTIN_OWNER.to_owned(),
        provider: provider.to_owned(),
        version: "1".to_owned(),
    }
}

const fn artifacts(minimum_count: usize, maximum_count: usize) -> ArtifactDetails {
    ArtifactDetails { minimum_count, maximum_count }
}

fn shell(category: &str) -> ActionType {
    ActionType {
        id: id(category, "Shell"),
        properties: vec![
            Property {
                max_length: 65_536,
                shell: true,
                ..property(
                    "commands",
                    true,
                    PropertyType::String,
                    "One command a line, run in order with `sh -e` in the workspace",
                )
            },
            property(
                "outputFiles",
                false,
                PropertyType::String,
                "Globs (one a line) of the files that make the output artifact; default everything",
            ),
            Property {
                max_length: 65_536,
                ..property(
                    "environmentVariables",
                    false,
                    PropertyType::EnvironmentVariables,
                    "Environment variables, as a string: a JSON object of values, or a list of {name, type, value} \
                     where type PLAINTEXT is a value and SECRETS_MANAGER names a secret the pipeline's role may read",
                )
            },
            property("timeoutInMinutes", false, PropertyType::Number, "How long the commands may run"),
        ],
        input_artifact_details: artifacts(0, 5),
        output_artifact_details: artifacts(0, 5),
        description: Cow::Borrowed("Runs shell commands in a fresh workspace holding the input artifacts"),
    }
}

/// Every registered action type.
pub fn all() -> &'static [ActionType] {
    static TYPES: std::sync::OnceLock<Vec<ActionType>> = std::sync::OnceLock::new();
    TYPES.get_or_init(|| {
        vec![
            ActionType {
                id: id("Source", "Git"),
                properties: vec![
                    property(
                        "repositoryUrl",
                        true,
                        PropertyType::String,
                        "The repository: a path, file://, http(s)://",
                    ),
                    property("branch", false, PropertyType::String, "The branch to follow (default main)"),
                    property(
                        "pollForSourceChanges",
                        false,
                        PropertyType::Boolean,
                        "Whether to poll for new commits (default true)",
                    ),
                    Property {
                        secret: true,
                        ..property(
                            "token",
                            false,
                            PropertyType::String,
                            "A token for an http(s) repository that needs one",
                        )
                    },
                ],
                input_artifact_details: artifacts(0, 0),
                output_artifact_details: artifacts(1, 1),
                description: Cow::Borrowed("A Git repository's branch; the revision is the commit"),
            },
            ActionType {
                id: id("Source", "Upload"),
                properties: Vec::new(),
                input_artifact_details: artifacts(0, 0),
                output_artifact_details: artifacts(1, 1),
                description: Cow::Borrowed("An archive uploaded with PutSourceRevision"),
            },
            shell("Build"),
            shell("Test"),
            shell("Deploy"),
            ActionType {
                id: id("Approval", "Manual"),
                properties: vec![
                    property("customData", false, PropertyType::String, "Shown to the approver"),
                    property("externalEntityLink", false, PropertyType::String, "A link for the approver to review"),
                ],
                input_artifact_details: artifacts(0, 0),
                output_artifact_details: artifacts(0, 0),
                description: Cow::Borrowed("Waits for PutApprovalResult (Approved or Rejected)"),
            },
            ActionType {
                id: id("Invoke", "HTTP"),
                properties: vec![
                    property(
                        "url",
                        true,
                        PropertyType::String,
                        "The http(s) URL to call; not this host's or a private network's unless the operator allows it",
                    ),
                    property("method", false, PropertyType::String, "GET, POST (default), PUT, PATCH or DELETE"),
                    Property {
                        max_length: 65_536,
                        ..property(
                            "headers",
                            false,
                            PropertyType::Headers,
                            "Request headers, as a string: a JSON object of values, or a list of {name, type, value} \
                             where type SECRETS_MANAGER names a secret the pipeline's role may read",
                        )
                    },
                    Property {
                        max_length: 65_536,
                        ..property(
                            "body",
                            false,
                            PropertyType::String,
                            "The request's body; variables are resolved in it",
                        )
                    },
                    property(
                        "waitForCallback",
                        false,
                        PropertyType::Boolean,
                        "After a 2xx, wait for a callback signed with the secret the request carries (default false)",
                    ),
                    property(
                        "timeoutInMinutes",
                        false,
                        PropertyType::Number,
                        "How long to wait for the callback (default 60)",
                    ),
                ],
                input_artifact_details: artifacts(0, 0),
                output_artifact_details: artifacts(0, 0),
                description: Cow::Borrowed(
                    "Calls a URL; succeeds on a 2xx answer, or on the signed callback it then waits for",
                ),
            },
        ]
    })
}

/// The methods an Invoke/HTTP action may use.
pub const HTTP_METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The built-in action type of that id, if registered.
pub fn find(id: &ActionTypeId) -> Option<&'static ActionType> {
    all().iter().find(|t| t.id == *id)
}

/// The action types an account's pipelines may use: the built-in ones and
/// the account's custom ones (owner `Custom`).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    custom: Vec<ActionType>,
}

impl Registry {
    /// The built-in types only.
    pub fn builtin() -> Self {
        Self::default()
    }

    /// The built-in types and these custom ones.
    pub fn with(custom: Vec<ActionType>) -> Self {
        Self { custom }
    }

    /// The type of that id, built-in or the account's.
    pub fn find(&self, id: &ActionTypeId) -> Option<&ActionType> {
        find(id).or_else(|| self.custom.iter().find(|t| t.id == *id))
    }

    /// Every type, the built-in ones first.
    pub fn all(&self) -> impl Iterator<Item = &ActionType> {
        all().iter().chain(&self.custom)
    }

    /// Whether a configuration value is secret: a secret property of the
    /// type, or any value of a type not (or no longer) known — a custom
    /// type deleted after a pipeline used it keeps its values hidden.
    pub fn is_secret(&self, id: &ActionTypeId, key: &str) -> bool {
        self.find(id).is_none_or(|t| t.properties.iter().any(|p| p.secret && p.name == key))
    }
}
