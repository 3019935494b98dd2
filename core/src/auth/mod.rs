//! Authentication: passwords, generated identifiers and secrets, and the
//! access tokens (JWT) that callers present.

pub mod ids;
pub mod passwords;
pub mod tokens;
