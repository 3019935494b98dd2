//! IAM's entities in PostgreSQL: accounts, users, groups, roles, managed and
//! inline policies, attachments, access keys and sign-in sessions. Names are
//! validated here as IAM validates them; handlers pass them through.
//!
//! Names are unique without regard to case (no `alice` beside `Alice`), but
//! an entity is found only by its exact name: requests are authorised against
//! the ARN as written, and ARNs match case-sensitively, so a lookup that
//! ignored case would let `/users/ALICE` slip past a Deny on `user/alice`.

pub mod access_keys;
pub mod accounts;
pub mod builtin;
pub mod groups;
pub mod managed;
pub mod names;
pub mod paging;
pub mod policies;
pub mod roles;
pub mod sessions;
pub mod users;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::deps::Unavailable;

/// What an IAM operation can fail with; each maps to one of IAM's codes.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// `NoSuchEntity`
    #[error("{0}")]
    NoSuchEntity(String),
    /// `EntityAlreadyExists`
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// `DeleteConflict`
    #[error("{0}")]
    DeleteConflict(String),
    /// `LimitExceeded`
    #[error("{0}")]
    LimitExceeded(String),
    /// `MalformedPolicyDocument`
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// `ValidationError` / `InvalidInput`
    #[error("{0}")]
    InvalidInput(String),
    /// `PasswordPolicyViolation`
    #[error("{0}")]
    PasswordPolicyViolation(String),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error("database error: {0}")]
    Database(DieselError),
}

impl From<DieselError> for IamError {
    fn from(e: DieselError) -> Self {
        Self::Database(e)
    }
}

/// Whether a database error says the database is away (a connection lost
/// or refused, a server shutting down or starting up), not that the
/// statement was wrong: the request may succeed when retried shortly.
pub fn is_unavailable(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => {
            true
        }
        // 57P01-03 (admin shutdown, crash shutdown, cannot connect now),
        // which diesel reports as Unknown with the server's message.
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message();
            message.starts_with("terminating connection")
                || message.contains("the database system is")
                || message.contains("connection closed")
        }
        DieselError::BrokenTransactionManager => true,
        DieselError::RollbackErrorOnCommit { commit_error, .. } => is_unavailable(commit_error),
        _ => false,
    }
}

/// Whether a database error is a unique-constraint violation.
pub fn is_unique_violation(e: &DieselError) -> bool {
    matches!(e, DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
}

diesel::define_sql_function! {
    /// SQL `lower(text)`.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn a_lost_or_refused_connection_is_unavailable_and_a_wrong_statement_is_not() {
        assert!(is_unavailable(&database_error(DatabaseErrorKind::UnableToSendCommand, "connection reset")));
        assert!(is_unavailable(&database_error(DatabaseErrorKind::ClosedConnection, "closed")));
        assert!(is_unavailable(&database_error(
            DatabaseErrorKind::Unknown,
            "terminating connection due to administrator command"
        )));
        assert!(is_unavailable(&database_error(DatabaseErrorKind::Unknown, "the database system is starting up")));
        assert!(!is_unavailable(&database_error(DatabaseErrorKind::UniqueViolation, "duplicate key")));
        assert!(!is_unavailable(&database_error(DatabaseErrorKind::Unknown, "column \"x\" does not exist")));
        assert!(!is_unavailable(&DieselError::NotFound));
    }
}
