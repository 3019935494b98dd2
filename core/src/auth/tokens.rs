//! Access tokens: short-lived JWTs (HS256) naming the principal and its
//! session. What a token may do is decided per request from the principal's
//! current policies; the token only says who it is.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const ISSUER: &str = "pipewright";

/// Who a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrincipalKind {
    Root,
    User,
    AssumedRole,
}

/// For an assumed-role session: who assumed the role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIdentity {
    /// The caller's ARN (a user, root, or another role session).
    pub arn: String,
    pub account: String,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The principal's ARN.
    pub sub: String,
    /// The account the principal acts in.
    pub acct: String,
    pub typ: PrincipalKind,
    /// IAM's principal id: the account id (root), the user id, or
    /// `ROLEID:session-name`.
    pub uid: String,
    /// The user's or role's name (none for root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The sign-in or role session, for revocation.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    /// The access key exchanged for this token, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// For a role session: the role's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<SourceIdentity>,
    /// The session was made by a role session (role chaining).
    #[serde(default)]
    pub chained: bool,
}

impl Claims {
    /// Fresh claims valid for `lifetime_secs` from now.
    pub fn new(sub: String, acct: String, typ: PrincipalKind, uid: String, sid: Uuid, lifetime_secs: i64) -> Self {
        let now = chrono::Utc::now().timestamp();
        Self {
            sub,
            acct,
            typ,
            uid,
            name: None,
            sid,
            iat: now,
            exp: now + lifetime_secs,
            iss: ISSUER.to_owned(),
            key: None,
            role: None,
            src: None,
            chained: false,
        }
    }
}

/// The signing key, ready to sign and check tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// A token that is not one of ours, or no longer valid.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired; sign in again or refresh it")]
    Expired,
    #[error("the access token is not valid")]
    Invalid,
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|data| data.claims).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(lifetime: i64) -> Claims {
        Claims::new(
            "arn:pw:iam::111122223333:user/alice".into(),
            "111122223333".into(),
            PrincipalKind::User,
            "AIDAEXAMPLE".into(),
            Uuid::new_v4(),
            lifetime,
        )
    }

    #[test]
    fn a_signed_token_verifies_and_others_do_not() {
        let keys = TokenKeys::new(&[7u8; 32]);
        let token = keys.sign(&claims(60)).expect("signs");
        assert_eq!(keys.verify(&token).expect("valid").sub, "arn:pw:iam::111122223333:user/alice");
        assert!(matches!(TokenKeys::new(&[8u8; 32]).verify(&token), Err(TokenError::Invalid)));
        assert!(matches!(keys.verify("not.a.token"), Err(TokenError::Invalid)));
        let expired = keys.sign(&claims(-60)).expect("signs");
        assert!(matches!(keys.verify(&expired), Err(TokenError::Expired)));
    }
}
