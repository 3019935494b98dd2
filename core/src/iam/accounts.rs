//! Accounts: the tenants.

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{IamError, is_unique_violation};
use crate::auth::ids;
use crate::auth::passwords::PasswordPolicy;
use crate::schema::accounts;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = accounts)]
pub struct Account {
    pub account_id: String,
    pub alias: Option<String>,
    pub root_password_hash: String,
    pub password_policy: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl Account {
    pub fn password_policy(&self) -> PasswordPolicy {
        serde_json::from_value(self.password_policy.clone()).unwrap_or_default()
    }
}

/// Creates an account with a new id (the alias, when given, must be free).
pub async fn create(
    conn: &mut AsyncPgConnection,
    alias: Option<&str>,
    root_password_hash: &str,
) -> Result<Account, IamError> {
    if let Some(alias) = alias {
        super::names::account_alias(alias)?;
    }
    // A new id collides with an existing one about once in 10^11 sign-ups.
    for _ in 0..5 {
        let inserted = diesel::insert_into(accounts::table)
            .values((
                accounts::account_id.eq(ids::account_id()),
                accounts::alias.eq(alias),
                accounts::root_password_hash.eq(root_password_hash),
            ))
            .returning(Account::as_returning())
            .get_result(conn)
            .await;
        match inserted {
            Ok(account) => return Ok(account),
            Err(e) if is_unique_violation(&e) && e.to_string().contains("alias") => {
                return Err(IamError::EntityAlreadyExists(format!(
                    "the alias {:?} is taken; choose another",
                    alias.unwrap_or_default()
                )));
            }
            Err(e) if is_unique_violation(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(IamError::InvalidInput("could not allocate an account id; try again".to_owned()))
}

/// The account with this id or alias.
pub async fn find(conn: &mut AsyncPgConnection, id_or_alias: &str) -> Result<Option<Account>, IamError> {
    // PostgreSQL refuses NUL in text; no account has a control character.
    if id_or_alias.contains(char::is_control) {
        return Ok(None);
    }
    let query = accounts::table.select(Account::as_select());
    let found = if id_or_alias.len() == 12 && id_or_alias.bytes().all(|b| b.is_ascii_digit()) {
        query.filter(accounts::account_id.eq(id_or_alias)).first(conn).await
    } else {
        query.filter(accounts::alias.eq(id_or_alias)).first(conn).await
    };
    Ok(found.optional()?)
}
