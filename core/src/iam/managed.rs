//! Customer managed policies: named, versioned (at most 5 versions, one the
//! default), attachable to users, groups and roles. The built-in ones are
//! listed beside them, read-only.

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::paging::Page;
use super::{IamError, builtin, is_unique_violation, lower, names};
use crate::auth::ids;
use crate::schema::{iam_attached_policies, iam_policies, iam_policy_versions};

/// IAM's limit of versions a managed policy keeps.
pub const MAX_VERSIONS: i64 = 5;
/// IAM's size limit of a managed policy's document.
pub const MAX_DOCUMENT_CHARS: usize = 6_144;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = iam_policies)]
pub struct ManagedPolicy {
    pub policy_id: String,
    pub account_id: String,
    pub policy_name: String,
    pub path: String,
    pub description: Option<String>,
    pub default_version_id: String,
    pub next_version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ManagedPolicy {
    pub fn arn(&self) -> String {
        format!("arn:pw:iam::{}:policy/{}", self.account_id, self.policy_name)
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = iam_policy_versions)]
pub struct PolicyVersion {
    pub policy_id: String,
    pub version_id: String,
    pub document: String,
    pub created_at: DateTime<Utc>,
}

fn check(document: &str) -> Result<(), IamError> {
    pipewright_authz::Policy::parse_with_limit(document, pipewright_authz::PolicyKind::Identity, MAX_DOCUMENT_CHARS)
        .map(drop)
        .map_err(|e| IamError::MalformedPolicyDocument(e.to_string()))
}

fn no_such_policy(name: &str) -> IamError {
    IamError::NoSuchEntity(format!("the policy {name} cannot be found in this account"))
}

/// Creates a policy with its first version, `v1`, as the default.
pub async fn create(
    conn: &mut AsyncPgConnection,
    account: &str,
    name: &str,
    document: &str,
    description: Option<&str>,
) -> Result<ManagedPolicy, IamError> {
    names::policy_name(name)?;
    check(document)?;
    if builtin::BUILTIN_POLICIES.iter().any(|(n, ..)| n.eq_ignore_ascii_case(name)) {
        // Allowed in IAM (different ARN), but confusing; keep names apart.
        return Err(IamError::EntityAlreadyExists(format!("{name} is the name of a built-in policy; choose another")));
    }
    let (account, name, document, description) =
        (account.to_owned(), name.to_owned(), document.to_owned(), description.map(str::to_owned));
    conn.transaction::<_, IamError, _>(async move |conn| {
        let policy = diesel::insert_into(iam_policies::table)
            .values((
                iam_policies::policy_id.eq(ids::entity_id("ANPA")),
                iam_policies::account_id.eq(&account),
                iam_policies::policy_name.eq(&name),
                iam_policies::description.eq(&description),
                iam_policies::default_version_id.eq("v1"),
            ))
            .returning(ManagedPolicy::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    IamError::EntityAlreadyExists(format!("a policy with name {name} already exists"))
                } else {
                    e.into()
                }
            })?;
        diesel::insert_into(iam_policy_versions::table)
            .values((
                iam_policy_versions::policy_id.eq(&policy.policy_id),
                iam_policy_versions::version_id.eq("v1"),
                iam_policy_versions::document.eq(&document),
            ))
            .execute(conn)
            .await?;
        Ok(policy)
    })
    .await
}

pub async fn get(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<ManagedPolicy, IamError> {
    if name.contains(char::is_control) {
        return Err(no_such_policy(name));
    }
    iam_policies::table
        .select(ManagedPolicy::as_select())
        .filter(iam_policies::account_id.eq(account))
        .filter(iam_policies::policy_name.eq(name))
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| no_such_policy(name))
}

/// How many users, groups and roles have the policy attached.
pub async fn attachment_count(conn: &mut AsyncPgConnection, arn: &str) -> Result<i64, IamError> {
    Ok(iam_attached_policies::table.filter(iam_attached_policies::policy_arn.eq(arn)).count().get_result(conn).await?)
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    account: &str,
    page: &Page,
) -> Result<(Vec<ManagedPolicy>, Option<String>), IamError> {
    let mut query = iam_policies::table
        .select(ManagedPolicy::as_select())
        .filter(iam_policies::account_id.eq(account))
        .order(lower(iam_policies::policy_name))
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(after) = &page.after {
        query = query.filter(lower(iam_policies::policy_name).gt(after.clone()));
    }
    let found = query.load(conn).await?;
    Ok(page.finish(found, |p| p.policy_name.to_lowercase()))
}

/// Deletes a policy that is attached nowhere and has no version but its default.
pub async fn delete(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<(), IamError> {
    let policy = get(conn, account, name).await?;
    let attached = attachment_count(conn, &policy.arn()).await?;
    if attached > 0 {
        return Err(IamError::DeleteConflict(format!(
            "cannot delete policy {name}: it is attached to {attached} users, groups or roles; detach it first"
        )));
    }
    let versions = versions(conn, &policy).await?;
    if versions.len() > 1 {
        return Err(IamError::DeleteConflict(format!(
            "cannot delete policy {name}: delete its versions other than the default ({}) first",
            policy.default_version_id
        )));
    }
    diesel::delete(iam_policies::table.find(&policy.policy_id)).execute(conn).await?;
    Ok(())
}

pub async fn versions(conn: &mut AsyncPgConnection, policy: &ManagedPolicy) -> Result<Vec<PolicyVersion>, IamError> {
    Ok(iam_policy_versions::table
        .select(PolicyVersion::as_select())
        .filter(iam_policy_versions::policy_id.eq(&policy.policy_id))
        .order(iam_policy_versions::created_at.desc())
        .load(conn)
        .await?)
}

pub async fn version(
    conn: &mut AsyncPgConnection,
    policy: &ManagedPolicy,
    version_id: &str,
) -> Result<PolicyVersion, IamError> {
    iam_policy_versions::table
        .select(PolicyVersion::as_select())
        .filter(iam_policy_versions::policy_id.eq(&policy.policy_id))
        .filter(iam_policy_versions::version_id.eq(version_id))
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| IamError::NoSuchEntity(format!("policy {} has no version {version_id}", policy.policy_name)))
}

/// Adds a version (at most five are kept), perhaps as the new default.
pub async fn create_version(
    conn: &mut AsyncPgConnection,
    account: &str,
    name: &str,
    document: &str,
    set_as_default: bool,
) -> Result<PolicyVersion, IamError> {
    check(document)?;
    let policy = get(conn, account, name).await?;
    let (document, policy_id) = (document.to_owned(), policy.policy_id.clone());
    conn.transaction::<_, IamError, _>(async move |conn| {
        {
            // Lock the policy row: concurrent versions get distinct numbers.
            let current: ManagedPolicy = iam_policies::table
                .find(&policy_id)
                .select(ManagedPolicy::as_select())
                .for_update()
                .first(conn)
                .await?;
            let count: i64 = iam_policy_versions::table
                .filter(iam_policy_versions::policy_id.eq(&policy_id))
                .count()
                .get_result(conn)
                .await?;
            if count >= MAX_VERSIONS {
                return Err(IamError::LimitExceeded(format!(
                    "policy {} has {MAX_VERSIONS} versions, the most it may keep; delete one first",
                    current.policy_name
                )));
            }
            let version_id = format!("v{}", current.next_version);
            let version = diesel::insert_into(iam_policy_versions::table)
                .values((
                    iam_policy_versions::policy_id.eq(&policy_id),
                    iam_policy_versions::version_id.eq(&version_id),
                    iam_policy_versions::document.eq(&document),
                ))
                .returning(PolicyVersion::as_returning())
                .get_result(conn)
                .await?;
            let default = if set_as_default { version_id } else { current.default_version_id };
            diesel::update(iam_policies::table.find(&policy_id))
                .set((
                    iam_policies::next_version.eq(current.next_version + 1),
                    iam_policies::default_version_id.eq(default),
                    iam_policies::updated_at.eq(Utc::now()),
                ))
                .execute(conn)
                .await?;
            Ok(version)
        }
    })
    .await
}

pub async fn set_default(
    conn: &mut AsyncPgConnection,
    account: &str,
    name: &str,
    version_id: &str,
) -> Result<(), IamError> {
    let policy = get(conn, account, name).await?;
    version(conn, &policy, version_id).await?;
    diesel::update(iam_policies::table.find(&policy.policy_id))
        .set((iam_policies::default_version_id.eq(version_id), iam_policies::updated_at.eq(Utc::now())))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete_version(
    conn: &mut AsyncPgConnection,
    account: &str,
    name: &str,
    version_id: &str,
) -> Result<(), IamError> {
    let policy = get(conn, account, name).await?;
    version(conn, &policy, version_id).await?;
    if policy.default_version_id == version_id {
        return Err(IamError::DeleteConflict(format!(
            "{version_id} is the default version of {name}; make another the default first"
        )));
    }
    diesel::delete(
        iam_policy_versions::table
            .filter(iam_policy_versions::policy_id.eq(&policy.policy_id))
            .filter(iam_policy_versions::version_id.eq(version_id)),
    )
    .execute(conn)
    .await?;
    Ok(())
}
