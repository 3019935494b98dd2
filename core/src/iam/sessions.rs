//! Sign-in and role sessions: each has an id that its tokens carry, so that
//! signing out ends it at once, and a refresh token kept only as a hash.

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::IamError;
use crate::schema::auth_sessions;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = auth_sessions)]
pub struct Session {
    pub session_id: Uuid,
    pub account_id: String,
    pub principal_arn: String,
    pub user_id: Option<String>,
    pub role_id: Option<String>,
    pub session_policy: Option<String>,
    pub refresh_hash: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Session {
    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none() && self.expires_at > Utc::now()
    }
}

/// What a new session is made of.
pub struct NewSession<'a> {
    pub account_id: &'a str,
    pub principal_arn: &'a str,
    pub user_id: Option<&'a str>,
    pub role_id: Option<&'a str>,
    pub session_policy: Option<&'a str>,
    pub refresh_hash: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
}

pub async fn create(conn: &mut AsyncPgConnection, new: NewSession<'_>) -> Result<Session, IamError> {
    Ok(diesel::insert_into(auth_sessions::table)
        .values((
            auth_sessions::session_id.eq(Uuid::new_v4()),
            auth_sessions::account_id.eq(new.account_id),
            auth_sessions::principal_arn.eq(new.principal_arn),
            auth_sessions::user_id.eq(new.user_id),
            auth_sessions::role_id.eq(new.role_id),
            auth_sessions::session_policy.eq(new.session_policy),
            auth_sessions::refresh_hash.eq(new.refresh_hash),
            auth_sessions::expires_at.eq(new.expires_at),
        ))
        .returning(Session::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Option<Session>, IamError> {
    Ok(auth_sessions::table.select(Session::as_select()).find(id).first(conn).await.optional()?)
}

/// Ends the session: its refresh token stops working.
pub async fn revoke(conn: &mut AsyncPgConnection, id: Uuid) -> Result<(), IamError> {
    diesel::update(auth_sessions::table.find(id))
        .set(auth_sessions::revoked_at.eq(Some(Utc::now())))
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces the refresh token's hash (each refresh token works once).
pub async fn rotate_refresh(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    old_hash: &str,
    new_hash: &str,
) -> Result<bool, IamError> {
    let updated = diesel::update(
        auth_sessions::table
            .find(id)
            .filter(auth_sessions::refresh_hash.eq(old_hash))
            .filter(auth_sessions::revoked_at.is_null()),
    )
    .set(auth_sessions::refresh_hash.eq(new_hash))
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// Ends every live session of the user but `keep`; returns them with their
/// expiry, so that their tokens can be refused at once.
pub async fn revoke_for_user(
    conn: &mut AsyncPgConnection,
    user_id: &str,
    keep: Option<Uuid>,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, IamError> {
    let now = Utc::now();
    let mut query = diesel::update(auth_sessions::table)
        .filter(auth_sessions::user_id.eq(user_id))
        .filter(auth_sessions::revoked_at.is_null())
        .filter(auth_sessions::expires_at.gt(now))
        .into_boxed();
    if let Some(keep) = keep {
        query = query.filter(auth_sessions::session_id.ne(keep));
    }
    Ok(query
        .set(auth_sessions::revoked_at.eq(Some(now)))
        .returning((auth_sessions::session_id, auth_sessions::expires_at))
        .get_results(conn)
        .await?)
}
