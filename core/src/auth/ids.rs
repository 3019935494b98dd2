//! Identifiers and secrets in IAM's shapes: 12-digit account ids, `AIDA…`
//! user ids, `AKIA…` access key ids, 40-character secret keys.

use sha2::{Digest, Sha256};

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS's randomness failing is not something to go on without.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    bytes
}

/// A new 12-digit account id (never starting with 0).
pub fn account_id() -> String {
    let bytes = random_bytes::<12>();
    bytes.iter().enumerate().map(|(i, b)| char::from(b'0' + if i == 0 { 1 + b % 9 } else { b % 10 })).collect()
}

/// `PREFIX` followed by 16 base-32 characters, e.g. `AIDA…` for a user.
pub fn entity_id(prefix: &str) -> String {
    let bytes = random_bytes::<16>();
    let mut id = String::with_capacity(prefix.len() + 16);
    id.push_str(prefix);
    id.extend(bytes.iter().map(|b| char::from(BASE32[usize::from(*b) % 32])));
    id
}

/// A 40-character secret (access key secrets, refresh tokens).
pub fn secret() -> String {
    random_bytes::<40>().iter().map(|b| char::from(SECRET[usize::from(*b) % 64])).collect()
}

/// SHA-256 of a high-entropy secret, hex: how secrets are kept at rest.
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two hashes without leaking where they differ.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let account = account_id();
        assert_eq!(account.len(), 12);
        assert!(account.bytes().all(|b| b.is_ascii_digit()) && !account.starts_with('0'));
        let user = entity_id("AIDA");
        assert!(user.starts_with("AIDA") && user.len() == 20, "{user}");
        assert_ne!(entity_id("AIDA"), entity_id("AIDA"));
        assert_eq!(secret().len(), 40);
        assert_eq!(secret_hash("x").len(), 64);
        assert!(hashes_equal(&secret_hash("x"), &secret_hash("x")));
        assert!(!hashes_equal(&secret_hash("x"), &secret_hash("y")));
    }
}
