//! IAM roles: trust policies, session durations, tags, and revoking sessions.

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use pipewright_authz::{Policy, PolicyKind};

use super::names::{self, Tag};
use super::paging::Page;
use super::{IamError, is_unique_violation, lower};
use crate::auth::ids;
use crate::schema::{iam_attached_policies, iam_inline_policies, iam_roles};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = iam_roles)]
pub struct Role {
    pub role_id: String,
    pub account_id: String,
    pub role_name: String,
    pub path: String,
    pub trust_policy: String,
    pub description: Option<String>,
    pub max_session_duration: i32,
    pub tags: serde_json::Value,
    pub sessions_revoked_before: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Role {
    pub fn arn(&self) -> String {
        format!("arn:pw:iam::{}:role/{}", self.account_id, self.role_name)
    }

    pub fn tags(&self) -> Vec<Tag> {
        serde_json::from_value(self.tags.clone()).unwrap_or_default()
    }
}

/// What a new role is made of.
pub struct NewRole<'a> {
    pub name: &'a str,
    pub trust_policy: &'a str,
    pub description: Option<&'a str>,
    pub max_session_duration: Option<i32>,
    pub tags: &'a [Tag],
}

/// Validates a trust policy.
pub fn check_trust_policy(document: &str) -> Result<(), IamError> {
    Policy::parse(document, PolicyKind::Trust).map(drop).map_err(|e| IamError::MalformedPolicyDocument(e.to_string()))
}

fn check_duration(seconds: i32) -> Result<(), IamError> {
    if (3600..=43_200).contains(&seconds) {
        Ok(())
    } else {
        Err(IamError::InvalidInput(format!(
            "maxSessionDuration must be between 3600 (1 hour) and 43200 (12 hours) seconds, not {seconds}"
        )))
    }
}

fn no_such_role(name: &str) -> IamError {
    IamError::NoSuchEntity(format!("the role with name {name} cannot be found"))
}

pub async fn create(conn: &mut AsyncPgConnection, account: &str, new: NewRole<'_>) -> Result<Role, IamError> {
    names::role_name(new.name)?;
    names::check_tags(new.tags)?;
    check_trust_policy(new.trust_policy)?;
    let duration = new.max_session_duration.unwrap_or(3600);
    check_duration(duration)?;
    if new.description.is_some_and(|d| d.chars().count() > 1000) {
        return Err(IamError::InvalidInput("description may be at most 1000 characters".to_owned()));
    }
    let tags = serde_json::to_value(new.tags).map_err(|e| IamError::InvalidInput(e.to_string()))?;
    diesel::insert_into(iam_roles::table)
        .values((
            iam_roles::role_id.eq(ids::entity_id("AROA")),
            iam_roles::account_id.eq(account),
            iam_roles::role_name.eq(new.name),
            iam_roles::trust_policy.eq(new.trust_policy),
            iam_roles::description.eq(new.description),
            iam_roles::max_session_duration.eq(duration),
            iam_roles::tags.eq(tags),
        ))
        .returning(Role::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                IamError::EntityAlreadyExists(format!("a role with name {} already exists", new.name))
            } else {
                e.into()
            }
        })
}

pub async fn find(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<Option<Role>, IamError> {
    if name.contains(char::is_control) {
        return Ok(None);
    }
    Ok(iam_roles::table
        .select(Role::as_select())
        .filter(iam_roles::account_id.eq(account))
        .filter(iam_roles::role_name.eq(name))
        .first(conn)
        .await
        .optional()?)
}

pub async fn get(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<Role, IamError> {
    find(conn, account, name).await?.ok_or_else(|| no_such_role(name))
}

pub async fn find_by_id(conn: &mut AsyncPgConnection, role_id: &str) -> Result<Option<Role>, IamError> {
    Ok(iam_roles::table.select(Role::as_select()).find(role_id).first(conn).await.optional()?)
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    account: &str,
    page: &Page,
) -> Result<(Vec<Role>, Option<String>), IamError> {
    let mut query = iam_roles::table
        .select(Role::as_select())
        .filter(iam_roles::account_id.eq(account))
        .order(lower(iam_roles::role_name))
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(after) = &page.after {
        query = query.filter(lower(iam_roles::role_name).gt(after.clone()));
    }
    let roles = query.load(conn).await?;
    Ok(page.finish(roles, |r| r.role_name.to_lowercase()))
}

/// Deletes a role with no policies left on it.
pub async fn delete(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<(), IamError> {
    let role = get(conn, account, name).await?;
    let inline: i64 = iam_inline_policies::table
        .filter(iam_inline_policies::owner_id.eq(&role.role_id))
        .count()
        .get_result(conn)
        .await?;
    let attached: i64 = iam_attached_policies::table
        .filter(iam_attached_policies::owner_id.eq(&role.role_id))
        .count()
        .get_result(conn)
        .await?;
    if inline + attached > 0 {
        return Err(IamError::DeleteConflict(format!(
            "cannot delete role {name}: it still has {inline} inline and {attached} attached policies; remove them first"
        )));
    }
    diesel::delete(iam_roles::table.find(&role.role_id)).execute(conn).await?;
    Ok(())
}

pub async fn update_trust_policy(
    conn: &mut AsyncPgConnection,
    account: &str,
    name: &str,
    document: &str,
) -> Result<(), IamError> {
    check_trust_policy(document)?;
    let role = get(conn, account, name).await?;
    diesel::update(iam_roles::table.find(&role.role_id))
        .set(iam_roles::trust_policy.eq(document))
        .execute(conn)
        .await?;
    Ok(())
}

/// Sessions of the role issued before now stop working.
pub async fn revoke_sessions(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<(), IamError> {
    let role = get(conn, account, name).await?;
    diesel::update(iam_roles::table.find(&role.role_id))
        .set(iam_roles::sessions_revoked_before.eq(Some(Utc::now())))
        .execute(conn)
        .await?;
    Ok(())
}
