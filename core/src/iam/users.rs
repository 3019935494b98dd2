//! IAM users, their login profiles (passwords) and tags.

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::names::{self, Tag};
use super::paging::Page;
use super::{IamError, is_unique_violation, lower};
use crate::auth::ids;
use crate::schema::{iam_access_keys, iam_attached_policies, iam_group_members, iam_inline_policies, iam_users};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = iam_users)]
pub struct User {
    pub user_id: String,
    pub account_id: String,
    pub user_name: String,
    pub path: String,
    pub password_hash: Option<String>,
    pub password_changed_at: Option<DateTime<Utc>>,
    pub tags: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl User {
    pub fn arn(&self) -> String {
        format!("arn:pw:iam::{}:user/{}", self.account_id, self.user_name)
    }

    pub fn tags(&self) -> Vec<Tag> {
        serde_json::from_value(self.tags.clone()).unwrap_or_default()
    }
}

fn no_such_user(name: &str) -> IamError {
    IamError::NoSuchEntity(format!("the user with name {name} cannot be found"))
}

pub async fn create(conn: &mut AsyncPgConnection, account: &str, name: &str, tags: &[Tag]) -> Result<User, IamError> {
    names::user_name(name)?;
    names::check_tags(tags)?;
    let tags = serde_json::to_value(tags).map_err(|e| IamError::InvalidInput(e.to_string()))?;
    diesel::insert_into(iam_users::table)
        .values((
            iam_users::user_id.eq(ids::entity_id("AIDA")),
            iam_users::account_id.eq(account),
            iam_users::user_name.eq(name),
            iam_users::tags.eq(tags),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                IamError::EntityAlreadyExists(format!("a user with name {name} already exists"))
            } else {
                e.into()
            }
        })
}

/// The user named `name` (any case), or `NoSuchEntity`.
pub async fn get(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<User, IamError> {
    find(conn, account, name).await?.ok_or_else(|| no_such_user(name))
}

pub async fn find(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<Option<User>, IamError> {
    if name.contains(char::is_control) {
        return Ok(None);
    }
    Ok(iam_users::table
        .select(User::as_select())
        .filter(iam_users::account_id.eq(account))
        .filter(iam_users::user_name.eq(name))
        .first(conn)
        .await
        .optional()?)
}

pub async fn find_by_id(conn: &mut AsyncPgConnection, user_id: &str) -> Result<Option<User>, IamError> {
    Ok(iam_users::table.select(User::as_select()).find(user_id).first(conn).await.optional()?)
}

/// A page of the account's users, by name.
pub async fn list(
    conn: &mut AsyncPgConnection,
    account: &str,
    page: &Page,
) -> Result<(Vec<User>, Option<String>), IamError> {
    let mut query = iam_users::table
        .select(User::as_select())
        .filter(iam_users::account_id.eq(account))
        .order(lower(iam_users::user_name))
        .limit(page.limit + 1)
        .into_boxed();
    if let Some(after) = &page.after {
        query = query.filter(lower(iam_users::user_name).gt(after.clone()));
    }
    let users = query.load(conn).await?;
    Ok(page.finish(users, |u| u.user_name.to_lowercase()))
}

/// Deletes a user that has nothing left attached, as IAM requires.
pub async fn delete(conn: &mut AsyncPgConnection, account: &str, name: &str) -> Result<(), IamError> {
    let user = get(conn, account, name).await?;
    let inline: i64 = iam_inline_policies::table
        .filter(iam_inline_policies::owner_id.eq(&user.user_id))
        .count()
        .get_result(conn)
        .await?;
    let attached: i64 = iam_attached_policies::table
        .filter(iam_attached_policies::owner_id.eq(&user.user_id))
        .count()
        .get_result(conn)
        .await?;
    let groups: i64 =
        iam_group_members::table.filter(iam_group_members::user_id.eq(&user.user_id)).count().get_result(conn).await?;
    let keys: i64 =
        iam_access_keys::table.filter(iam_access_keys::user_id.eq(&user.user_id)).count().get_result(conn).await?;
    let mut left = Vec::new();
    for (count, what) in
        [(inline, "inline policies"), (attached, "attached policies"), (groups, "groups"), (keys, "access keys")]
    {
        if count > 0 {
            left.push(format!("{count} {what}"));
        }
    }
    if user.password_hash.is_some() {
        left.push("a login profile".to_owned());
    }
    if !left.is_empty() {
        return Err(IamError::DeleteConflict(format!(
            "cannot delete user {name}: it still has {}; remove them first",
            left.join(", ")
        )));
    }
    diesel::delete(iam_users::table.find(&user.user_id)).execute(conn).await?;
    Ok(())
}

/// Sets (or replaces) the user's password; `None` removes the login profile.
pub async fn set_password(conn: &mut AsyncPgConnection, user_id: &str, hash: Option<&str>) -> Result<(), IamError> {
    diesel::update(iam_users::table.find(user_id))
        .set((iam_users::password_hash.eq(hash), iam_users::password_changed_at.eq(hash.map(|_| Utc::now()))))
        .execute(conn)
        .await?;
    Ok(())
}
