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

/// Whether a database error is a unique-constraint violation.
pub fn is_unique_violation(e: &DieselError) -> bool {
    matches!(e, DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
}

diesel::define_sql_function! {
    /// SQL `lower(text)`.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}
