//! HMAC-SHA256 signatures of bodies, as webhooks carry them (`HEX` or
//! `sha256=HEX`): made for notifications, checked (in constant time) for
//! webhook deliveries and Invoke callbacks.

/// `sha256=` and the hex HMAC-SHA256 of `body` with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag: String = ring::hmac::sign(&key, body).as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={tag}")
}

/// Whether `given` (`sha256=HEX`, or `HEX`) is the HMAC-SHA256 of `body`
/// with `secret`; compared in constant time.
pub fn verify(secret: &[u8], body: &[u8], given: &str) -> bool {
    let hex = given.trim();
    let hex = hex.strip_prefix("sha256=").unwrap_or(hex);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    decode_hex(hex).is_some_and(|tag| ring::hmac::verify(&key, body, &tag).is_ok())
}

/// Whether `given` is `secret` itself (GitLab's token), compared in
/// constant time whatever the lengths (through an HMAC of each).
pub fn same_secret(secret: &[u8], given: &[u8]) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let expected = ring::hmac::sign(&key, secret);
    ring::hmac::verify(&key, given, expected.as_ref()).is_ok()
}

/// A SHA-256 tag's bytes from hex (64 digits), or nothing.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_checks_only_with_its_secret_and_body() {
        let signed = sign(b"k", b"body");
        assert!(verify(b"k", b"body", &signed));
        assert!(verify(b"k", b"body", signed.trim_start_matches("sha256=")));
        assert!(!verify(b"k", b"other", &signed));
        assert!(!verify(b"x", b"body", &signed));
        assert!(!verify(b"k", b"body", "sha256=00"));
        assert!(!verify(b"k", b"body", "sha256=zz"));
        assert!(same_secret(b"token", b"token"));
        assert!(!same_secret(b"token", b"toke"));
    }
}
