//! IAM groups and their members.

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, JoinOnDsl, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::paging::Page;
use super::users::User;
use super::{IamError, is_unique_violation, lower, names};
use crate::auth::ids;
use crate::schema::{iam_attached_policies, iam_group_members, iam_groups, iam_inline_policies, iam_users};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = iam_groups)]
pub struct Group {
    pub group_id: String,
    pub account_id: String,
    pub group_name: String,
    pub path: String,
    pub created_at: DateTime<Utc>,
}

impl Group {
    pub fn arn(&self) -> String {
        format!("arn:pw:iam::{}:group/{}", self.account_id, self.group_name)
    }
}

pub async fn create(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<Group, IamError> {
    names::group_name(name)?;
    diesel::insert_into(iam_groups::table)
        .values((
            iam_groups::group_id.eq(ids::entity_id("AGPA")),
            iam_groups::account_id.eq(account),
            iam_groups::group_name.eq(name),
        ))
        .returning(Group::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                IamError::EntityAlreadyExists(format!("a group with name {name} already exists"))
            } else {
                e.into()
            }
        })
}

pub async fn get(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<Group, IamError> {
    if name.contains(char::is_control) {
        return Err(IamError::NoSuchEntity(format!("the group with name {name:?} cannot be found")));
    }
    iam_groups::table
        .select(Group::as_select())
        .filter(iam_groups::account_id.eq(account))
        .filter(iam_groups::group_name.eq(name))
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| IamError::NoSuchEntity(format!("the group with name {name} cannot be found")))
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    account: &str,
    page: &Page,
) -> Result<(Vec<Group>, Option<String>), IamError> {
    let mut query = iam_groups::table
        .select(Group::as_select())
        .filter(iam_groups::account_id.eq(account))
        .order(lower(iam_groups::group_name))
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(after) = &page.after {
        query = query.filter(lower(iam_groups::group_name).gt(after.clone()));
    }
    let groups = query.load(conn).await?;
    Ok(page.finish(groups, |g| g.group_name.to_lowercase()))
}

/// The group's users, by name.
pub async fn members(conn: &mut AsyncPgConnection, group_id: &str) -> Result<Vec<User>, IamError> {
    Ok(iam_users::table
        .inner_join(iam_group_members::table.on(iam_group_members::user_id.eq(iam_users::user_id)))
        .filter(iam_group_members::group_id.eq(group_id))
        .select(User::as_select())
        .order(lower(iam_users::user_name))
        .load(conn)
        .await?)
}

/// Deletes a group with no members or policies left.
pub async fn delete(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<(), IamError> {
    let group = get(conn, account, name).await?;
    let members: i64 = iam_group_members::table
        .filter(iam_group_members::group_id.eq(&group.group_id))
        .count()
        .get_result(conn)
        .await?;
    let inline: i64 = iam_inline_policies::table
        .filter(iam_inline_policies::owner_id.eq(&group.group_id))
        .count()
        .get_result(conn)
        .await?;
    let attached: i64 = iam_attached_policies::table
        .filter(iam_attached_policies::owner_id.eq(&group.group_id))
        .count()
        .get_result(conn)
        .await?;
    if members + inline + attached > 0 {
        return Err(IamError::DeleteConflict(format!(
            "cannot delete group {name}: it still has {members} users, {inline} inline and {attached} attached policies; remove them first"
        )));
    }
    diesel::delete(iam_groups::table.find(&group.group_id)).execute(conn).await?;
    Ok(())
}

/// IAM's quota of groups one user may be in.
pub const GROUPS_PER_USER: i64 = 10;

pub async fn add_user(conn: &mut AsyncPgConnection, group_id: &str, user_id: &str) -> Result<(), IamError> {
    let groups: i64 = iam_group_members::table
        .filter(iam_group_members::user_id.eq(user_id))
        .filter(iam_group_members::group_id.ne(group_id))
        .count()
        .get_result(conn)
        .await?;
    if groups >= GROUPS_PER_USER {
        return Err(IamError::LimitExceeded(format!("a user can be in at most {GROUPS_PER_USER} groups")));
    }
    diesel::insert_into(iam_group_members::table)
        .values((iam_group_members::group_id.eq(group_id), iam_group_members::user_id.eq(user_id)))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn remove_user(conn: &mut AsyncPgConnection, group_id: &str, user_id: &str) -> Result<(), IamError> {
    let removed = diesel::delete(
        iam_group_members::table
            .filter(iam_group_members::group_id.eq(group_id))
            .filter(iam_group_members::user_id.eq(user_id)),
    )
    .execute(conn)
    .await?;
    if removed == 0 {
        return Err(IamError::NoSuchEntity("the user is not in the group".to_owned()));
    }
    Ok(())
}
