//! Passwords: argon2id hashes and the account's password policy.

use std::sync::OnceLock;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use serde::{Deserialize, Serialize};

/// argon2id with OWASP's recommended cost (19 MiB, 2 passes, 1 lane).
fn hasher() -> Argon2<'static> {
    #[allow(clippy::expect_used)]
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of `password` with a fresh salt.
pub fn hash(password: &str) -> Result<String, String> {
    // The salt comes from the operating system (argon2's getrandom feature).
    hasher().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` is the one hashed in `phc`.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| hasher().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Verifies against a fixed hash and fails: spends the time of a real check
/// when there is no user, so that timing does not tell who exists.
pub fn verify_nobody(password: &str) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("the dummy password nobody has").unwrap_or_default());
    let _ = verify(password, dummy);
    false
}

/// An account's password policy (IAM's `UpdateAccountPasswordPolicy` fields
/// that apply here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PasswordPolicy {
    pub minimum_password_length: usize,
    pub require_symbols: bool,
    pub require_numbers: bool,
    pub require_uppercase_characters: bool,
    pub require_lowercase_characters: bool,
}

impl Default for PasswordPolicy {
    /// 8 characters or more; no character class required.
    fn default() -> Self {
        Self {
            minimum_password_length: 8,
            require_symbols: false,
            require_numbers: false,
            require_uppercase_characters: false,
            require_lowercase_characters: false,
        }
    }
}

/// The longest password accepted (IAM's limit).
pub const MAX_PASSWORD_LENGTH: usize = 128;

impl PasswordPolicy {
    /// `Err` says what the password lacks.
    pub fn check(&self, password: &str) -> Result<(), String> {
        let length = password.chars().count();
        let mut missing = Vec::new();
        if length < self.minimum_password_length {
            missing.push(format!("at least {} characters", self.minimum_password_length));
        }
        if length > MAX_PASSWORD_LENGTH {
            missing.push(format!("at most {MAX_PASSWORD_LENGTH} characters"));
        }
        let has = |f: fn(&char) -> bool| password.chars().any(|c| f(&c));
        if self.require_symbols && !has(|c| c.is_ascii_punctuation()) {
            missing.push("a symbol".to_owned());
        }
        if self.require_numbers && !has(char::is_ascii_digit) {
            missing.push("a digit".to_owned());
        }
        if self.require_uppercase_characters && !has(char::is_ascii_uppercase) {
            missing.push("an upper-case letter".to_owned());
        }
        if self.require_lowercase_characters && !has(char::is_ascii_lowercase) {
            missing.push("a lower-case letter".to_owned());
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("the password does not meet the account's password policy: it needs {}", missing.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let phc = hash("correct horse").expect("hashes");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse", &phc));
        assert!(!verify("wrong horse", &phc));
        assert!(!verify("correct horse", "not a hash"));
        assert!(!verify_nobody("correct horse"));
    }

    #[test]
    fn the_policy_says_what_is_missing() {
        assert!(PasswordPolicy::default().check("longenough").is_ok());
        let error = PasswordPolicy::default().check("short").expect_err("too short");
        assert!(error.contains("at least 8 characters"), "{error}");
        let strict = PasswordPolicy { require_numbers: true, require_symbols: true, ..PasswordPolicy::default() };
        let error = strict.check("longenough").expect_err("no digit or symbol");
        assert!(error.contains("a symbol") && error.contains("a digit"), "{error}");
        assert!(strict.check("longenough1!").is_ok());
    }
}
