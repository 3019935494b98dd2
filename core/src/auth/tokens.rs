//! Access tokens: short-lived JWTs (HS256) naming the principal and its
//! session. What a token may do is decided per request from the principal's
//! current policies; the token only says who it is.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
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
    /// A session token of temporary credentials (AssumeRole over the AWS
    /// endpoint): it only goes with a SigV4 signature by the session's
    /// derived secret, never alone as a bearer token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sigv4: bool,
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
            sigv4: false,
        }
    }
}

/// One key of the ring, by its id.
struct TokenKey {
    id: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    signs_from: DateTime<Utc>,
    verifies_until: Option<DateTime<Utc>>,
}

/// A key of the ring as configured or loaded: id, secret, when it signs
/// from, and until when it verifies (`None`: for as long as it is kept).
pub type KeySpec = (String, Vec<u8>, DateTime<Utc>, Option<DateTime<Utc>>);

/// The access tokens' keys, shared by every clone: the newest whose time
/// has come signs (its id in the token's `kid`), the others verify until
/// they retire. [`TokenKeys::replace`] swaps in a reloaded ring.
#[derive(Clone)]
pub struct TokenKeys {
    ring: Arc<RwLock<Arc<Vec<TokenKey>>>>,
    validation: Validation,
}

/// A token that is not one of ours, or no longer valid.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired; sign in again or refresh it")]
    Expired,
    #[error("the access token is not valid")]
    Invalid,
    /// Its `kid` names no key of the ring (a key made since the ring was
    /// loaded, or none at all).
    #[error("the access token is not valid")]
    UnknownKey,
}

impl TokenKeys {
    /// A ring of one key that signs and verifies.
    pub fn new(secret: &[u8]) -> Self {
        let id = crate::keyring::key_id(crate::keyring::Purpose::Jwt, secret);
        Self::from_keys(vec![(id, secret.to_vec(), DateTime::<Utc>::UNIX_EPOCH, None)])
    }

    /// A ring of keys, oldest first.
    pub fn from_keys(keys: Vec<KeySpec>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let ring = Self { ring: Arc::new(RwLock::new(Arc::new(Vec::new()))), validation };
        ring.replace(keys);
        ring
    }

    /// Swaps in a reloaded ring (every clone sees it).
    pub fn replace(&self, keys: Vec<KeySpec>) {
        let keys = keys
            .into_iter()
            .map(|(id, secret, signs_from, verifies_until)| TokenKey {
                id,
                encoding: EncodingKey::from_secret(&secret),
                decoding: DecodingKey::from_secret(&secret),
                signs_from,
                verifies_until,
            })
            .collect();
        *self.ring.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
    }

    fn current(&self) -> Arc<Vec<TokenKey>> {
        self.ring.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The ids of the keys that verify now, oldest first.
    pub fn key_ids(&self) -> Vec<String> {
        let now = Utc::now();
        self.current().iter().filter(|k| k.verifies_until.is_none_or(|u| now < u)).map(|k| k.id.clone()).collect()
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let ring = self.current();
        let now = Utc::now();
        let key = ring
            .iter()
            .rev()
            .find(|k| k.signs_from <= now)
            .or_else(|| ring.first())
            .ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.id.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
    }

    /// The token's claims, when a key of the ring that still verifies
    /// signed it: the one its `kid` names, or (a token made before keys
    /// had ids) any.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let kid = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?.kid;
        let ring = self.current();
        let now = Utc::now();
        if let Some(kid) = &kid
            && !ring.iter().any(|k| &k.id == kid)
        {
            return Err(TokenError::UnknownKey);
        }
        let mut last = TokenError::Invalid;
        for key in ring.iter().filter(|k| k.verifies_until.is_none_or(|u| now < u)) {
            if kid.as_deref().is_some_and(|kid| kid != key.id) {
                continue;
            }
            match jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                    last = TokenError::Expired;
                }
                Err(_) => {}
            }
        }
        Err(last)
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
        assert!(matches!(TokenKeys::new(&[8u8; 32]).verify(&token), Err(TokenError::UnknownKey)));
        assert!(matches!(keys.verify("not.a.token"), Err(TokenError::Invalid)));
        let expired = keys.sign(&claims(-60)).expect("signs");
        assert!(matches!(keys.verify(&expired), Err(TokenError::Expired)));
    }

    #[test]
    fn a_rotated_ring_signs_with_the_new_key_and_still_verifies_the_old_until_it_retires() {
        let now = Utc::now();
        // A token made before keys had ids carries no kid.
        let before =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(60), &EncodingKey::from_secret(&[1u8; 32]))
                .unwrap();
        let soon = now + chrono::TimeDelta::seconds(60);
        let ring = TokenKeys::from_keys(vec![
            ("old".into(), vec![1u8; 32], DateTime::<Utc>::UNIX_EPOCH, Some(soon)),
            ("new".into(), vec![2u8; 32], now - chrono::TimeDelta::seconds(1), None),
        ]);
        let after = ring.sign(&claims(60)).expect("signs");
        assert_eq!(jsonwebtoken::decode_header(&after).unwrap().kid.as_deref(), Some("new"));
        assert!(ring.verify(&after).is_ok());
        assert!(ring.verify(&before).is_ok(), "a token of the old key without a kid verifies by trying each key");
        ring.replace(vec![
            ("old".into(), vec![1u8; 32], DateTime::<Utc>::UNIX_EPOCH, Some(now)),
            ("new".into(), vec![2u8; 32], now, None),
        ]);
        assert!(matches!(ring.verify(&before), Err(TokenError::Invalid)), "a retired key verifies nothing");
        // A kid naming a key that is not the one that signed is refused.
        let forged_kid = {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("new".into());
            jsonwebtoken::encode(&header, &claims(60), &EncodingKey::from_secret(&[1u8; 32])).unwrap()
        };
        assert!(ring.verify(&forged_kid).is_err());
    }
}
