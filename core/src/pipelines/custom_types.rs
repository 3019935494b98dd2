//! Custom action types (CodePipeline's CreateCustomActionType): an
//! account's own action types, owner `Custom`, whose actions external job
//! workers run through the job API (see `crate::jobs`). Their definitions
//! are kept here, and read as registry entries ([`registry`]) so that
//! validation and masking treat them as the built-in ones.

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ActionTypeId;
use super::action_types::{self, ActionType, CATEGORIES, PropertyType, Registry};
use crate::iam::{IamError, is_unique_violation};
use crate::schema::custom_action_types as c;

/// The owner of custom action types.
pub const OWNER: &str = "Custom";
/// At most this many custom action types in an account.
pub const MAX_PER_ACCOUNT: i64 = 50;

/// Links the console shows for a custom action's runs (CodePipeline's
/// `ActionTypeSettings`): http(s) URL templates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionTypeSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub third_party_configuration_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_url_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_url_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_url_template: Option<String>,
}

/// A configuration property of a custom action type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionConfigurationProperty {
    /// 1–50 characters.
    #[schema(example = "Target")]
    pub name: String,
    pub required: bool,
    pub key: bool,
    /// Never answered (`****`), and not shown to job workers' logs.
    pub secret: bool,
    /// What a job worker may filter PollForJobs by (at most one property).
    #[serde(default)]
    pub queryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `String`, `Number` or `Boolean` (a built-in type's may also be
    /// `JsonObject`, `EnvironmentVariables` or `Headers`: strings of that form).
    #[serde(rename = "type", default = "string_type")]
    #[schema(example = "String")]
    pub kind: String,
}

fn string_type() -> String {
    "String".to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactDetails {
    pub minimum_count: u8,
    pub maximum_count: u8,
}

/// CreateCustomActionType's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomActionTypeDefinition {
    /// `Source`, `Build`, `Test`, `Deploy`, `Approval` or `Invoke`.
    #[schema(example = "Test")]
    pub category: String,
    /// 1–35 of letters, digits, `-_`.
    #[schema(example = "Scan")]
    pub provider: String,
    /// 1–9 of letters, digits, `-_`.
    #[schema(example = "1")]
    pub version: String,
    #[serde(default)]
    pub settings: ActionTypeSettings,
    /// At most 10.
    #[serde(default)]
    pub configuration_properties: Vec<ActionConfigurationProperty>,
    pub input_artifact_details: ArtifactDetails,
    pub output_artifact_details: ArtifactDetails,
}

impl CustomActionTypeDefinition {
    pub fn id(&self) -> ActionTypeId {
        ActionTypeId {
            category: self.category.clone(),
            owner: OWNER.to_owned(),
            provider: self.provider.clone(),
            version: self.version.clone(),
        }
    }
}

/// An action type as GetActionType and ListActionTypes answer it: a
/// built-in one, or a custom one with its settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionTypeView {
    pub id: ActionTypeId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<ActionTypeSettings>,
    pub action_configuration_properties: Vec<ActionConfigurationProperty>,
    pub input_artifact_details: ArtifactDetails,
    pub output_artifact_details: ArtifactDetails,
    /// What a built-in type does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl From<&ActionType> for ActionTypeView {
    fn from(t: &ActionType) -> Self {
        let count = |n: usize| u8::try_from(n).unwrap_or(u8::MAX);
        Self {
            id: t.id.clone(),
            settings: None,
            action_configuration_properties: t
                .properties
                .iter()
                .map(|p| ActionConfigurationProperty {
                    name: p.name.to_string(),
                    required: p.required,
                    key: p.key,
                    secret: p.secret,
                    queryable: p.queryable,
                    description: Some(p.description.to_string()),
                    kind: format!("{:?}", p.kind),
                })
                .collect(),
            input_artifact_details: ArtifactDetails {
                minimum_count: count(t.input_artifact_details.minimum_count),
                maximum_count: count(t.input_artifact_details.maximum_count),
            },
            output_artifact_details: ArtifactDetails {
                minimum_count: count(t.output_artifact_details.minimum_count),
                maximum_count: count(t.output_artifact_details.maximum_count),
            },
            description: Some(t.description.to_string()),
        }
    }
}

impl From<CustomActionTypeDefinition> for ActionTypeView {
    fn from(d: CustomActionTypeDefinition) -> Self {
        Self {
            id: d.id(),
            settings: Some(d.settings),
            action_configuration_properties: d.configuration_properties,
            input_artifact_details: d.input_artifact_details,
            output_artifact_details: d.output_artifact_details,
            description: None,
        }
    }
}

impl CustomActionTypeDefinition {
    /// As a registry entry: what validation, masking and the job API read.
    pub fn action_type(&self) -> ActionType {
        let count = |n: u8| usize::from(n);
        ActionType {
            id: self.id(),
            properties: self
                .configuration_properties
                .iter()
                .map(|p| action_types::Property {
                    name: p.name.clone().into(),
                    required: p.required,
                    secret: p.secret,
                    key: p.key,
                    queryable: p.queryable,
                    description: p.description.clone().unwrap_or_default().into(),
                    kind: match p.kind.as_str() {
                        "Number" => PropertyType::Number,
                        "Boolean" => PropertyType::Boolean,
                        _ => PropertyType::String,
                    },
                    // CodePipeline's limit on a configuration value.
                    max_length: 1000,
                    shell: false,
                })
                .collect(),
            input_artifact_details: action_types::ArtifactDetails {
                minimum_count: count(self.input_artifact_details.minimum_count),
                maximum_count: count(self.input_artifact_details.maximum_count),
            },
            output_artifact_details: action_types::ArtifactDetails {
                minimum_count: count(self.output_artifact_details.minimum_count),
                maximum_count: count(self.output_artifact_details.maximum_count),
            },
            description: "Run by the account's job workers (PollForJobs)".into(),
        }
    }
}

/// The action types the account's pipelines may use: the built-in ones and
/// its custom ones.
pub async fn registry(conn: &mut AsyncPgConnection, account: &str) -> Result<Registry, IamError> {
    Ok(Registry::with(list(conn, account).await?.iter().map(CustomActionTypeDefinition::action_type).collect()))
}

/// Whether a provider's name is a built-in one's (a custom type may not take
/// it: code that recognises built-in providers must not be confused).
fn reserved(provider: &str) -> bool {
    action_types::all().iter().any(|t| t.id.provider.eq_ignore_ascii_case(provider))
}

fn named(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
}

/// Why a definition cannot be stored, naming the field.
pub fn check(d: &CustomActionTypeDefinition) -> Result<(), String> {
    if !CATEGORIES.contains(&d.category.as_str()) || d.category == "Compute" {
        return Err(format!("category: {:?} is not Source, Build, Test, Deploy, Approval or Invoke", d.category));
    }
    if !named(&d.provider, 35) {
        return Err("provider: 1–35 of letters, digits and -_".to_owned());
    }
    if reserved(&d.provider) {
        return Err(format!("provider: {:?} is a built-in provider's name; choose another", d.provider));
    }
    if !named(&d.version, 9) {
        return Err("version: 1–9 of letters, digits and -_".to_owned());
    }
    let templates = [
        ("thirdPartyConfigurationUrl", &d.settings.third_party_configuration_url),
        ("entityUrlTemplate", &d.settings.entity_url_template),
        ("executionUrlTemplate", &d.settings.execution_url_template),
        ("revisionUrlTemplate", &d.settings.revision_url_template),
    ];
    for (field, value) in templates {
        if let Some(value) = value {
            let lower = value.to_ascii_lowercase();
            let web = lower.starts_with("https://") || lower.starts_with("http://");
            if !web || value.len() > 2048 || value.chars().any(char::is_control) {
                return Err(format!("settings.{field}: an http(s) URL of at most 2048 characters"));
            }
        }
    }
    if d.configuration_properties.len() > 10 {
        return Err("configurationProperties: at most 10".to_owned());
    }
    for (i, p) in d.configuration_properties.iter().enumerate() {
        let at = format!("configurationProperties[{i}]");
        if p.name.is_empty() || p.name.chars().count() > 50 || p.name.chars().any(char::is_control) {
            return Err(format!("{at}.name: 1–50 characters"));
        }
        if d.configuration_properties[..i].iter().any(|q| q.name == p.name) {
            return Err(format!("{at}.name: {:?} is named twice", p.name));
        }
        if p.description.as_ref().is_some_and(|s| s.is_empty() || s.chars().count() > 160) {
            return Err(format!("{at}.description: 1–160 characters"));
        }
        if !["String", "Number", "Boolean"].contains(&p.kind.as_str()) {
            return Err(format!("{at}.type: {:?} is not String, Number or Boolean", p.kind));
        }
        if p.queryable && (p.secret || !p.required || !p.key) {
            return Err(format!("{at}.queryable: a queryable property is required, key and not secret"));
        }
    }
    if d.configuration_properties.iter().filter(|p| p.queryable).count() > 1 {
        return Err("configurationProperties: at most one is queryable".to_owned());
    }
    for (field, details) in
        [("inputArtifactDetails", d.input_artifact_details), ("outputArtifactDetails", d.output_artifact_details)]
    {
        if details.maximum_count > 5 || details.minimum_count > details.maximum_count {
            return Err(format!("{field}: counts from 0 to 5, the minimum at most the maximum"));
        }
    }
    Ok(())
}

/// `arn:pw:codepipeline:REGION:ACCOUNT:actiontype:OWNER/CATEGORY/PROVIDER/VERSION`.
pub fn arn(region: &str, account: &str, id: &ActionTypeId) -> String {
    format!(
        "arn:pw:codepipeline:{region}:{account}:actiontype:{}/{}/{}/{}",
        id.owner, id.category, id.provider, id.version
    )
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = c)]
struct Stored {
    definition: serde_json::Value,
    #[allow(dead_code)]
    created_at: DateTime<Utc>,
}

/// Stores a checked definition.
pub async fn create(
    conn: &mut AsyncPgConnection,
    account: &str,
    d: &CustomActionTypeDefinition,
) -> Result<(), IamError> {
    let count: i64 =
        c::table.filter(c::account_id.eq(account)).filter(c::deleted_at.is_null()).count().get_result(conn).await?;
    if count >= MAX_PER_ACCOUNT {
        return Err(IamError::LimitExceeded(format!("at most {MAX_PER_ACCOUNT} custom action types in an account")));
    }
    diesel::insert_into(c::table)
        .values((
            c::account_id.eq(account),
            c::category.eq(&d.category),
            c::provider.eq(&d.provider),
            c::version.eq(&d.version),
            c::definition.eq(serde_json::to_value(d).unwrap_or_default()),
        ))
        .execute(conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                IamError::EntityAlreadyExists(format!(
                    "the action type {} exists, or existed: a deleted type's version is not made again (give a new \
                     version)",
                    d.id()
                ))
            } else {
                e.into()
            }
        })?;
    Ok(())
}

/// The account's custom action type of that id.
pub async fn find(
    conn: &mut AsyncPgConnection,
    account: &str,
    id: &ActionTypeId,
) -> Result<Option<CustomActionTypeDefinition>, IamError> {
    if reserved(&id.provider) {
        // (One made before built-in names were refused is not used.)
        return Ok(None);
    }
    let found: Option<Stored> = c::table
        .find((account, &id.category, &id.provider, &id.version))
        .filter(c::deleted_at.is_null())
        .select(Stored::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok(found.and_then(|s| serde_json::from_value(s.definition).ok()))
}

/// The account's custom action types, by category, provider and version.
pub async fn list(conn: &mut AsyncPgConnection, account: &str) -> Result<Vec<CustomActionTypeDefinition>, IamError> {
    let found: Vec<Stored> = c::table
        .filter(c::account_id.eq(account))
        .filter(c::deleted_at.is_null())
        .order((c::category, c::provider, c::version))
        .select(Stored::as_select())
        .load(conn)
        .await?;
    Ok(found
        .into_iter()
        .filter_map(|s| serde_json::from_value::<CustomActionTypeDefinition>(s.definition).ok())
        .filter(|d| !reserved(&d.provider))
        .collect())
}

/// Deletes one (kept, marked: its version is never made again); whether
/// there was one.
pub async fn delete(conn: &mut AsyncPgConnection, account: &str, id: &ActionTypeId) -> Result<bool, IamError> {
    let marked = diesel::update(
        c::table.find((account, &id.category, &id.provider, &id.version)).filter(c::deleted_at.is_null()),
    )
    .set(c::deleted_at.eq(Some(chrono::Utc::now())))
    .execute(conn)
    .await?;
    Ok(marked == 1)
}
