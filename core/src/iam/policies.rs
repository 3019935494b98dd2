//! Policies on users, groups and roles: inline documents and attached
//! managed policies, with IAM's quotas, and the set that applies to a caller.

use diesel::{BoolExpressionMethods, ExpressionMethods, JoinOnDsl, OptionalExtension, QueryDsl};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use pipewright_authz::{Policy, PolicyKind};

use super::paging::Page;
use super::{IamError, builtin, names};
use crate::schema::{iam_attached_policies, iam_group_members, iam_inline_policies, iam_policies, iam_policy_versions};

/// What owns policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    User,
    Group,
    Role,
}

impl OwnerKind {
    /// IAM's quota on the inline policies of one entity, in characters
    /// (white space aside), all its inline policies together.
    pub fn inline_quota(self) -> usize {
        match self {
            Self::User => 2_048,
            Self::Group => 5_120,
            Self::Role => 10_240,
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::Role => "role",
        }
    }
}

/// IAM's default quota of managed policies attached to one entity.
pub const ATTACHED_QUOTA: i64 = 10;

fn size(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

/// Validates a document as an identity policy; the text kept is the one given.
pub fn check_document(document: &str) -> Result<(), IamError> {
    Policy::parse_with_limit(document, PolicyKind::Identity, 10_240)
        .map(drop)
        .map_err(|e| IamError::MalformedPolicyDocument(e.to_string()))
}

/// Creates or replaces an inline policy.
pub async fn put_inline(
    conn: &mut AsyncPgConnection,
    kind: OwnerKind,
    account: &str,
    owner_id: &str,
    name: &str,
    document: &str,
) -> Result<(), IamError> {
    names::policy_name(name)?;
    check_document(document)?;
    let others: Vec<(String, String)> = iam_inline_policies::table
        .select((iam_inline_policies::policy_name, iam_inline_policies::document))
        .filter(iam_inline_policies::owner_id.eq(owner_id))
        .load(conn)
        .await?;
    let total: usize = others.iter().filter(|(n, _)| n != name).map(|(_, d)| size(d)).sum::<usize>() + size(document);
    if total > kind.inline_quota() {
        return Err(IamError::LimitExceeded(format!(
            "the inline policies of a {} may total {} characters (white space aside); with this one they would be {total}",
            kind.noun(),
            kind.inline_quota()
        )));
    }
    diesel::insert_into(iam_inline_policies::table)
        .values((
            iam_inline_policies::owner_id.eq(owner_id),
            iam_inline_policies::account_id.eq(account),
            iam_inline_policies::policy_name.eq(name),
            iam_inline_policies::document.eq(document),
        ))
        .on_conflict((iam_inline_policies::owner_id, iam_inline_policies::policy_name))
        .do_update()
        .set(iam_inline_policies::document.eq(document))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get_inline(conn: &mut AsyncPgConnection, owner_id: &str, name: &str) -> Result<String, IamError> {
    iam_inline_policies::table
        .select(iam_inline_policies::document)
        .filter(iam_inline_policies::owner_id.eq(owner_id))
        .filter(iam_inline_policies::policy_name.eq(name))
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| IamError::NoSuchEntity(format!("the inline policy {name} cannot be found")))
}

pub async fn delete_inline(conn: &mut AsyncPgConnection, owner_id: &str, name: &str) -> Result<(), IamError> {
    let deleted = diesel::delete(
        iam_inline_policies::table
            .filter(iam_inline_policies::owner_id.eq(owner_id))
            .filter(iam_inline_policies::policy_name.eq(name)),
    )
    .execute(conn)
    .await?;
    if deleted == 0 {
        return Err(IamError::NoSuchEntity(format!("the inline policy {name} cannot be found")));
    }
    Ok(())
}

pub async fn list_inline(
    conn: &mut AsyncPgConnection,
    owner_id: &str,
    page: &Page,
) -> Result<(Vec<String>, Option<String>), IamError> {
    let mut query = iam_inline_policies::table
        .select(iam_inline_policies::policy_name)
        .filter(iam_inline_policies::owner_id.eq(owner_id))
        .order(iam_inline_policies::policy_name)
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(after) = &page.after {
        query = query.filter(iam_inline_policies::policy_name.gt(after.clone()));
    }
    let names: Vec<String> = query.load(conn).await?;
    Ok(page.finish(names, Clone::clone))
}

/// The document of a managed policy's default version: a built-in one, or
/// one of `account`'s own.
pub async fn managed_document(
    conn: &mut AsyncPgConnection,
    account: &str,
    arn: &str,
) -> Result<Option<String>, IamError> {
    if let Some(document) = builtin::document(arn) {
        return Ok(Some(document.to_owned()));
    }
    let Some(name) = arn.strip_prefix(&format!("arn:pw:iam::{account}:policy/")) else { return Ok(None) };
    Ok(iam_policies::table
        .inner_join(
            iam_policy_versions::table.on(iam_policy_versions::policy_id
                .eq(iam_policies::policy_id)
                .and(iam_policy_versions::version_id.eq(iam_policies::default_version_id))),
        )
        .select(iam_policy_versions::document)
        .filter(iam_policies::account_id.eq(account))
        .filter(iam_policies::policy_name.eq(name))
        .first(conn)
        .await
        .optional()?)
}

/// Attaches a managed policy (idempotent), within the quota.
pub async fn attach(conn: &mut AsyncPgConnection, account: &str, owner_id: &str, arn: &str) -> Result<(), IamError> {
    if managed_document(conn, account, arn).await?.is_none() {
        return Err(IamError::NoSuchEntity(format!("policy {arn} does not exist or is not attachable")));
    }
    let attached: i64 = iam_attached_policies::table
        .filter(iam_attached_policies::owner_id.eq(owner_id))
        .filter(iam_attached_policies::policy_arn.ne(arn))
        .count()
        .get_result(conn)
        .await?;
    if attached >= ATTACHED_QUOTA {
        return Err(IamError::LimitExceeded(format!(
            "at most {ATTACHED_QUOTA} managed policies can be attached to one entity"
        )));
    }
    diesel::insert_into(iam_attached_policies::table)
        .values((
            iam_attached_policies::owner_id.eq(owner_id),
            iam_attached_policies::account_id.eq(account),
            iam_attached_policies::policy_arn.eq(arn),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn detach(conn: &mut AsyncPgConnection, owner_id: &str, arn: &str) -> Result<(), IamError> {
    let deleted = diesel::delete(
        iam_attached_policies::table
            .filter(iam_attached_policies::owner_id.eq(owner_id))
            .filter(iam_attached_policies::policy_arn.eq(arn)),
    )
    .execute(conn)
    .await?;
    if deleted == 0 {
        return Err(IamError::NoSuchEntity(format!("policy {arn} is not attached")));
    }
    Ok(())
}

pub async fn list_attached(
    conn: &mut AsyncPgConnection,
    owner_id: &str,
    page: &Page,
) -> Result<(Vec<String>, Option<String>), IamError> {
    let mut query = iam_attached_policies::table
        .select(iam_attached_policies::policy_arn)
        .filter(iam_attached_policies::owner_id.eq(owner_id))
        .order(iam_attached_policies::policy_arn)
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(after) = &page.after {
        query = query.filter(iam_attached_policies::policy_arn.gt(after.clone()));
    }
    let arns: Vec<String> = query.load(conn).await?;
    Ok(page.finish(arns, Clone::clone))
}

/// Every policy that applies to the owners (a user and its groups, or a
/// role): (a name to cite, the document).
pub async fn effective(
    conn: &mut AsyncPgConnection,
    account: &str,
    owner_ids: &[String],
) -> Result<Vec<(String, String)>, IamError> {
    let policies: Vec<(String, String)> = iam_inline_policies::table
        .select((iam_inline_policies::policy_name, iam_inline_policies::document))
        .filter(iam_inline_policies::owner_id.eq_any(owner_ids))
        .load(conn)
        .await?;
    let arns: Vec<String> = iam_attached_policies::table
        .select(iam_attached_policies::policy_arn)
        .filter(iam_attached_policies::owner_id.eq_any(owner_ids))
        .load(conn)
        .await?;
    with_managed(conn, account, policies, arns).await
}

/// `policies` and the documents of the managed policies `arns`.
async fn with_managed(
    conn: &mut AsyncPgConnection,
    account: &str,
    mut policies: Vec<(String, String)>,
    arns: Vec<String>,
) -> Result<Vec<(String, String)>, IamError> {
    for arn in arns {
        if let Some(document) = managed_document(conn, account, &arn).await? {
            policies.push((arn, document));
        }
    }
    Ok(policies)
}

/// The policies of a user and of its groups, as [`effective`] gives them
/// for the user and its groups' ids, with the groups found in the same
/// queries (two round trips, whatever the groups).
pub async fn effective_for_user(
    conn: &mut AsyncPgConnection,
    account: &str,
    user_id: &str,
) -> Result<Vec<(String, String)>, IamError> {
    let groups =
        || iam_group_members::table.select(iam_group_members::group_id).filter(iam_group_members::user_id.eq(user_id));
    let policies: Vec<(String, String)> = iam_inline_policies::table
        .select((iam_inline_policies::policy_name, iam_inline_policies::document))
        .filter(iam_inline_policies::owner_id.eq(user_id).or(iam_inline_policies::owner_id.eq_any(groups())))
        .load(conn)
        .await?;
    let arns: Vec<String> = iam_attached_policies::table
        .select(iam_attached_policies::policy_arn)
        .filter(iam_attached_policies::owner_id.eq(user_id).or(iam_attached_policies::owner_id.eq_any(groups())))
        .load(conn)
        .await?;
    with_managed(conn, account, policies, arns).await
}

/// The ids of the groups `user_id` belongs to.
pub async fn groups_of(conn: &mut AsyncPgConnection, user_id: &str) -> Result<Vec<String>, IamError> {
    Ok(iam_group_members::table
        .select(iam_group_members::group_id)
        .filter(iam_group_members::user_id.eq(user_id))
        .load(conn)
        .await?)
}
